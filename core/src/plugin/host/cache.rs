//! A read cache of one plugin's key-value namespace, kept current by the store's watch
//! feed: plugins read small flags on every call (luna: `disabled/<key>`), and a read of
//! the durable store costs a read transaction (embedded) or a network round trip
//! (etcd). Values, and the absence of a value, are cached on read; every committed
//! transaction touching the namespace removes the keys it wrote, whichever node
//! committed it, before the next read is answered.
//!
//! Correctness rests on three rules:
//! - the feed is subscribed before the first value is cached, and drained (every
//!   pending event applied) at the start of every read;
//! - a value read from the store is cached only when no change of the namespace was
//!   applied between the read's start and its insertion (an epoch counter), so a value
//!   read just before a commit cannot outlive that commit's event;
//! - writes made through this host remove their key at once (a networked store's feed
//!   may deliver the event later), lagging or a closed feed clears everything (and a
//!   closed feed turns caching off), and the cache is bypassed while the store reports
//!   itself unreachable and cleared when it comes back.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, MutexGuard, PoisonError},
};

use tokio::sync::broadcast::{self, error::TryRecvError};

use crate::store::{Store, StoreError, WatchEvent};

/// Most entries kept; the cache starts afresh when full (it holds flags, a few per key).
const MAX_ENTRIES: usize = 16_384;

struct State {
    feed: broadcast::Receiver<Arc<WatchEvent>>,
    entries: HashMap<String, Option<Vec<u8>>>,
    /// Raised by every change applied and every reset.
    epoch: u64,
    /// False once the feed closed: every read goes to the store.
    following: bool,
    /// The store was seen unreachable since the last read that used the cache.
    was_unreachable: bool,
}

/// The read cache of one namespace (see the module docs).
pub(super) struct KvCache {
    namespace: String,
    state: Mutex<State>,
}

impl KvCache {
    /// A cache of the keys under `namespace` of `store`, following its feed from now.
    pub(super) fn new(store: &dyn Store, namespace: &str) -> KvCache {
        KvCache {
            namespace: namespace.to_string(),
            state: Mutex::new(State {
                feed: store.watch(),
                entries: HashMap::new(),
                epoch: 0,
                following: true,
                was_unreachable: false,
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Applies every event the feed holds.
    fn drain(&self, st: &mut State) {
        loop {
            match st.feed.try_recv() {
                Ok(event) => {
                    for change in &event.changes {
                        if change.key.starts_with(&self.namespace) {
                            st.entries.remove(&change.key);
                            st.epoch += 1;
                        }
                    }
                }
                Err(TryRecvError::Empty) => return,
                Err(TryRecvError::Lagged(_)) => {
                    st.entries.clear();
                    st.epoch += 1;
                }
                Err(TryRecvError::Closed) => {
                    st.entries.clear();
                    st.epoch += 1;
                    st.following = false;
                    return;
                }
            }
        }
    }

    /// The value of `full_key` (a key of this namespace), from the cache or the store.
    pub(super) fn get(
        &self,
        store: &dyn Store,
        full_key: &str,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        let epoch = {
            let mut st = self.lock();
            self.drain(&mut st);
            if !st.following {
                drop(st);
                return Ok(store.get(full_key)?.map(|e| e.value));
            }
            if !store.reachable() {
                st.was_unreachable = true;
                drop(st);
                return Ok(store.get(full_key)?.map(|e| e.value));
            }
            if st.was_unreachable {
                // Back: what was cached may have changed meanwhile.
                st.was_unreachable = false;
                st.entries.clear();
                st.epoch += 1;
            } else if let Some(v) = st.entries.get(full_key) {
                return Ok(v.clone());
            }
            st.epoch
        };
        let value = store.get(full_key)?.map(|e| e.value);
        let mut st = self.lock();
        self.drain(&mut st);
        if st.following && st.epoch == epoch {
            if st.entries.len() >= MAX_ENTRIES {
                st.entries.clear();
            }
            st.entries.insert(full_key.to_string(), value.clone());
        }
        Ok(value)
    }

    /// Forgets `full_key` after a write through this host (attempted or done).
    pub(super) fn written(&self, full_key: &str) {
        let mut st = self.lock();
        st.entries.remove(full_key);
        st.epoch += 1;
    }

    /// How many values are cached (tests).
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.lock().entries.len()
    }
}

//! An in-memory [`Store`] for unit tests: same semantics as the embedded backend, nothing
//! persisted.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::{Arc, Mutex};

use tokio::sync::broadcast;

use super::{
    Condition, Entry, Store, StoreError, WATCH_CAPACITY, WatchEvent, Write, check_conditions,
    event, lock,
};

/// An in-memory [`Store`]; state is lost when it is dropped. Cheap to create: one per test.
#[derive(Debug)]
pub struct MemoryStore {
    state: Mutex<State>,
    events: broadcast::Sender<Arc<WatchEvent>>,
}

#[derive(Debug, Default)]
struct State {
    revision: u64,
    /// key -> (revision that last wrote it, value)
    entries: BTreeMap<String, (u64, Vec<u8>)>,
}

impl MemoryStore {
    /// An empty store at revision 0.
    pub fn new() -> Self {
        Self {
            state: Mutex::new(State::default()),
            events: broadcast::channel(WATCH_CAPACITY).0,
        }
    }
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::new()
    }
}

impl Store for MemoryStore {
    fn get(&self, key: &str) -> Result<Option<Entry>, StoreError> {
        let state = lock(&self.state);
        Ok(state.entries.get(key).map(|(revision, value)| Entry {
            key: key.to_owned(),
            value: value.clone(),
            revision: *revision,
        }))
    }

    fn scan(&self, prefix: &str) -> Result<Vec<Entry>, StoreError> {
        let state = lock(&self.state);
        Ok(state
            .entries
            .range::<str, _>((Bound::Included(prefix), Bound::Unbounded))
            .take_while(|(key, _)| key.starts_with(prefix))
            .map(|(key, (revision, value))| Entry {
                key: key.clone(),
                value: value.clone(),
                revision: *revision,
            })
            .collect())
    }

    fn commit(&self, conditions: &[Condition], writes: Vec<Write>) -> Result<u64, StoreError> {
        // Held through the broadcast so that events go out in revision order.
        let mut state = lock(&self.state);
        check_conditions(conditions, |key| {
            Ok(state.entries.get(key).map(|(revision, _)| *revision))
        })?;
        if writes.is_empty() {
            return Ok(state.revision);
        }
        let revision = state
            .revision
            .checked_add(1)
            .ok_or_else(|| StoreError::Backend {
                backend: "memory",
                message: "store revision overflow".to_owned(),
            })?;
        for write in &writes {
            match write {
                Write::Put(key, value) => {
                    state.entries.insert(key.clone(), (revision, value.clone()));
                }
                Write::Delete(key) => {
                    state.entries.remove(key);
                }
            }
        }
        state.revision = revision;
        // No subscribers is not an error.
        let _ = self.events.send(event(revision, writes));
        Ok(revision)
    }

    fn revision(&self) -> Result<u64, StoreError> {
        Ok(lock(&self.state).revision)
    }

    fn watch(&self) -> broadcast::Receiver<Arc<WatchEvent>> {
        self.events.subscribe()
    }
}

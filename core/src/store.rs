//! Durable state behind one small trait.
//!
//! Everything keyhold persists (key stores, credentials, key maps, plugin state) lives in a
//! [`Store`]: an ordered map from UTF-8 keys to small opaque values (JSON documents of a few
//! KB), with
//!
//! - a **store revision**: a counter that every committed transaction raises by exactly one,
//!   kept in the same transaction as the data so the two can never diverge;
//! - **conditional transactions** ([`Store::commit`]): a list of [`Condition`]s checked and a
//!   list of [`Write`]s applied atomically, as one transaction with one new revision, durable
//!   (fsync'd) before `commit` returns;
//! - a **watch feed** ([`Store::watch`]): every committed transaction, in revision order, to
//!   every subscriber, which is how each node rebuilds its in-memory snapshot.
//!
//! Backends: [`EmbeddedStore`] (the default, a single crash-safe `redb` file, one process at a
//! time), [`EtcdStore`] (clustered: every node on one etcd) and [`MemoryStore`] (for unit
//! tests). Code above this module is written once against the trait.
//!
//! # Following the store
//!
//! To build a snapshot and keep it current without missing a change:
//!
//! 1. subscribe first ([`Store::watch`]),
//! 2. then read ([`Store::scan`]); each [`Entry`] carries the revision that last wrote it,
//! 3. then apply every [`WatchEvent`] in order. Events older than the scan may arrive first;
//!    applying them is harmless because later events (which the scan already reflects) follow
//!    in order, and a consumer may skip a change whose key it holds at a newer revision.
//! 4. On [`tokio::sync::broadcast::error::RecvError::Lagged`] the subscriber missed events:
//!    start again from step 1 (resubscribe or keep the receiver, then rescan).

mod embedded;
mod etcd;
mod memory;

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tokio::sync::broadcast;

pub use embedded::EmbeddedStore;
pub(crate) use etcd::connect_options as etcd_connect_options;
pub use etcd::{EtcdSettings, EtcdStore, EtcdTls, LOG_RETAIN};
pub use memory::MemoryStore;

/// How many transactions a [`Store::watch`] subscriber may fall behind before it receives
/// [`broadcast::error::RecvError::Lagged`] and has to rescan.
pub const WATCH_CAPACITY: usize = 1024;

/// One key and its value, as read from a [`Store`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// The key.
    pub key: String,
    /// The value, opaque to the store (keyhold stores JSON).
    pub value: Vec<u8>,
    /// The store revision of the transaction that last wrote this key; usable in
    /// [`Condition::Revision`] for compare-and-swap.
    pub revision: u64,
}

/// A precondition of [`Store::commit`]; when one fails the commit writes nothing and returns
/// [`StoreError::Conflict`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Condition {
    /// The key does not exist.
    Absent(String),
    /// The key exists (with any value).
    Exists(String),
    /// The key exists and was last written by the transaction with this store revision
    /// (the [`Entry::revision`] it was read with): compare-and-swap.
    Revision(String, u64),
}

impl Condition {
    /// The key this condition is about.
    pub fn key(&self) -> &str {
        match self {
            Condition::Absent(key) | Condition::Exists(key) | Condition::Revision(key, _) => key,
        }
    }

    /// Whether the condition holds, given the revision of the key's current entry
    /// (`None` when the key is absent).
    pub fn holds(&self, current: Option<u64>) -> bool {
        match self {
            Condition::Absent(_) => current.is_none(),
            Condition::Exists(_) => current.is_some(),
            Condition::Revision(_, revision) => current == Some(*revision),
        }
    }
}

/// One write of a [`Store::commit`]. Writes apply in order, so when a transaction writes a key
/// twice the last write wins.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Write {
    /// Sets the key to the value, creating it if absent.
    Put(String, Vec<u8>),
    /// Removes the key; removing an absent key is not an error.
    Delete(String),
}

impl Write {
    /// The key this write is about.
    pub fn key(&self) -> &str {
        match self {
            Write::Put(key, _) | Write::Delete(key) => key,
        }
    }

    /// The change a watcher sees for this write.
    fn into_change(self) -> Change {
        match self {
            Write::Put(key, value) => Change {
                key,
                value: Some(value),
            },
            Write::Delete(key) => Change { key, value: None },
        }
    }
}

/// One key written by a committed transaction, as seen by watchers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Change {
    /// The key.
    pub key: String,
    /// The new value, or `None` when the key was deleted.
    pub value: Option<Vec<u8>>,
}

/// One committed transaction, as delivered to every [`Store::watch`] subscriber.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WatchEvent {
    /// The store revision the transaction created; events arrive in increasing revision
    /// order, each exactly one more than the previous unless the subscriber lagged.
    pub revision: u64,
    /// The transaction's writes, in the order they were given to [`Store::commit`]
    /// (a key written twice appears twice; apply in order).
    pub changes: Vec<Change>,
}

/// Errors of a [`Store`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// A [`Condition`] of [`Store::commit`] did not hold; nothing was written.
    #[error("store conflict: the condition on key {key:?} does not hold")]
    Conflict {
        /// The key of the first condition that failed.
        key: String,
    },
    /// The backend failed (I/O, database, lock); the operation may be retried later.
    #[error("{backend} store: {message}")]
    Backend {
        /// Which backend failed (`"redb"`, `"memory"`, ...).
        backend: &'static str,
        /// What failed, with enough context (file path, operation) to act on.
        message: String,
    },
    /// The transaction is larger than the backend takes in one commit (etcd: its
    /// `--max-txn-ops` and `--max-request-bytes`); nothing was written.
    #[error("{backend} store: {message}")]
    TooLarge {
        /// Which backend refused.
        backend: &'static str,
        /// What is too large, and the limit.
        message: String,
    },
    /// Stored data could not be decoded or the database file is damaged.
    #[error("store data corrupt at key {key:?}: {message}")]
    Corrupt {
        /// The key whose entry is damaged; empty when the damage is not tied to one key
        /// (e.g. a damaged database file).
        key: String,
        /// What is wrong.
        message: String,
    },
}

/// The most one commit of a backend may carry (see [`Store::commit_limits`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CommitLimits {
    /// Writes (after a key written twice counts once).
    pub writes: usize,
    /// Conditions.
    pub conditions: usize,
    /// Bytes of the writes' keys and values together.
    pub bytes: usize,
}

impl CommitLimits {
    /// Checks one commit against the limits: `Err` says what is too large.
    pub fn check(&self, conditions: usize, writes: &[Write]) -> Result<(), String> {
        let distinct: std::collections::BTreeSet<&str> = writes.iter().map(Write::key).collect();
        let bytes: usize = writes
            .iter()
            .map(|w| match w {
                Write::Put(key, value) => key.len() + value.len(),
                Write::Delete(key) => key.len(),
            })
            .sum();
        if distinct.len() > self.writes {
            return Err(format!(
                "one transaction would write {} keys; this backend takes at most {} per transaction",
                distinct.len(),
                self.writes
            ));
        }
        if conditions > self.conditions {
            return Err(format!(
                "one transaction would check {conditions} conditions; this backend takes at most {} per transaction",
                self.conditions
            ));
        }
        if bytes > self.bytes {
            return Err(format!(
                "one transaction would write {bytes} bytes; this backend takes at most {} per transaction",
                self.bytes
            ));
        }
        Ok(())
    }
}

/// Durable, ordered key-value state with conditional transactions, a revision counter and a
/// change feed. Implementations are cheap to share (`Arc<dyn Store>`) and safe to call from
/// many threads; calls block on I/O, so async code calls them via `spawn_blocking` (or
/// accepts a short block for these small, local operations).
pub trait Store: Send + Sync + 'static {
    /// Reads one key; `None` when absent.
    fn get(&self, key: &str) -> Result<Option<Entry>, StoreError>;

    /// Every entry whose key starts with `prefix`, in key order (byte-wise), from one
    /// consistent snapshot. The prefix is a plain string prefix: `"a/"` matches `"a/x"` but not
    /// `"a0"` or `"ab/"`. An empty prefix returns everything. Uses a range query, so its cost
    /// is proportional to the result, not to the store.
    fn scan(&self, prefix: &str) -> Result<Vec<Entry>, StoreError>;

    /// Atomically checks every condition, then applies every write, as ONE transaction with
    /// ONE new revision, durable (fsync'd) before this returns `Ok`. Returns the new revision.
    ///
    /// - Any failed condition: [`StoreError::Conflict`] naming its key, and nothing written.
    /// - Empty `writes`: the conditions are still checked, but no new revision is created;
    ///   returns the current revision.
    /// - On success the transaction is sent to every [`Store::watch`] subscriber, after it is
    ///   durable and in revision order.
    fn commit(&self, conditions: &[Condition], writes: Vec<Write>) -> Result<u64, StoreError>;

    /// The current store revision: 0 for a new store, raised by one by every commit that has
    /// writes.
    fn revision(&self) -> Result<u64, StoreError>;

    /// Subscribes to every transaction committed from now on, in order. A subscriber that
    /// falls more than [`WATCH_CAPACITY`] events behind receives
    /// [`broadcast::error::RecvError::Lagged`] and must rescan (see the module docs).
    fn watch(&self) -> broadcast::Receiver<Arc<WatchEvent>>;

    /// The most one [`Store::commit`] may carry; `None` (the default): no limit beyond
    /// memory. A larger commit is refused with [`StoreError::TooLarge`].
    fn commit_limits(&self) -> Option<CommitLimits> {
        None
    }

    /// Whether the backend answered lately: `false` while a networked backend (etcd)
    /// cannot be reached (its calls then fail at once with [`StoreError::Backend`]).
    /// Always `true` for local backends.
    fn reachable(&self) -> bool {
        true
    }

    /// Sets `key` to `value` unconditionally; returns the new revision.
    fn put(&self, key: &str, value: Vec<u8>) -> Result<u64, StoreError> {
        self.commit(&[], vec![Write::Put(key.to_owned(), value)])
    }

    /// Deletes `key`; `false` when it was absent (and then no new revision is created).
    fn delete(&self, key: &str) -> Result<bool, StoreError> {
        match self.commit(
            &[Condition::Exists(key.to_owned())],
            vec![Write::Delete(key.to_owned())],
        ) {
            Ok(_) => Ok(true),
            Err(StoreError::Conflict { .. }) => Ok(false),
            Err(err) => Err(err),
        }
    }

    /// Creates `key` with `value`; `false` when it exists already (and then nothing is
    /// written).
    fn create(&self, key: &str, value: Vec<u8>) -> Result<bool, StoreError> {
        match self.commit(
            &[Condition::Absent(key.to_owned())],
            vec![Write::Put(key.to_owned(), value)],
        ) {
            Ok(_) => Ok(true),
            Err(StoreError::Conflict { .. }) => Ok(false),
            Err(err) => Err(err),
        }
    }
}

/// Checks `conditions` in order; `revision_of(key)` gives the revision of the key's current
/// entry, `None` when absent.
fn check_conditions(
    conditions: &[Condition],
    mut revision_of: impl FnMut(&str) -> Result<Option<u64>, StoreError>,
) -> Result<(), StoreError> {
    for condition in conditions {
        if !condition.holds(revision_of(condition.key())?) {
            return Err(StoreError::Conflict {
                key: condition.key().to_owned(),
            });
        }
    }
    Ok(())
}

/// Builds the event for a committed transaction.
fn event(revision: u64, writes: Vec<Write>) -> Arc<WatchEvent> {
    Arc::new(WatchEvent {
        revision,
        changes: writes.into_iter().map(Write::into_change).collect(),
    })
}

/// Locks a mutex, recovering it when a panicking thread poisoned it: every critical section
/// here leaves its data consistent (or the data is the database's own).
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests;

//! The default [`Store`]: one `redb` database file, crash-safe, no server, one process at a
//! time.
//!
//! # File layout
//!
//! - table `kv` (`&str -> &[u8]`): each value is the little-endian `u64` revision that last
//!   wrote the key, followed by the value bytes;
//! - table `meta` (`&str -> u64`): `revision` (the store revision) and `format` (this layout's
//!   version, [`FORMAT`]).
//!
//! The revision lives in the same redb transaction as the data, so the two cannot diverge.
//! Every commit uses redb's [`Durability::Immediate`]: the commit is fsync'd before
//! [`Store::commit`] returns. redb's copy-on-write B-trees and double-buffered commit slots
//! make a transaction all-or-nothing across a crash.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use redb::{
    Database, DatabaseError, Durability, ReadOnlyTable, ReadableDatabase, ReadableTable,
    StorageError, TableDefinition, TableError, WriteTransaction,
};
use tokio::sync::broadcast;

use super::{
    Condition, Entry, Store, StoreError, WATCH_CAPACITY, WatchEvent, Write, check_conditions,
    event, lock,
};

const BACKEND: &str = "redb";
const DATA: TableDefinition<&str, &[u8]> = TableDefinition::new("kv");
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
const META_REVISION: &str = "revision";
const META_FORMAT: &str = "format";
/// The version of the file layout described in the module docs.
const FORMAT: u64 = 1;
/// Bytes of the revision prefix of every stored value.
const REVISION_LEN: usize = 8;

/// redb page cache size.
const CACHE_BYTES: usize = 64 * 1024 * 1024;

/// A [`Store`] in a single `redb` file.
///
/// The file is locked while the store is open: a second open of the same file, from this or
/// another process, fails with [`StoreError::Backend`] ("locked by another process") instead
/// of waiting. Reads are MVCC snapshots and never wait for a writer; commits are serialised.
///
/// After an I/O error during a commit, redb refuses further writes on this handle (each
/// returns [`StoreError::Backend`]); drop the store and open it again, which repairs the file.
pub struct EmbeddedStore {
    db: Database,
    path: PathBuf,
    /// Serialises commits with their broadcast, so that events go out in revision order.
    writer: Mutex<()>,
    events: broadcast::Sender<Arc<WatchEvent>>,
}

impl std::fmt::Debug for EmbeddedStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddedStore")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl EmbeddedStore {
    /// Opens the store file at `path`, creating it (and its parent directories) when missing.
    ///
    /// The whole file is integrity-checked on open (every page checksum), so a damaged or
    /// truncated file is reported as an error rather than trusted; after a crash redb repairs
    /// the file here, rolling back to the last durable commit.
    ///
    /// # Errors
    /// - [`StoreError::Backend`] when the file is open elsewhere ("database is locked by
    ///   another process"), cannot be created or read, or is not a redb database;
    /// - [`StoreError::Corrupt`] when the file is a damaged database or a store of an
    ///   unknown format.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|err| StoreError::Backend {
                backend: BACKEND,
                message: format!("cannot create directory {}: {err}", parent.display()),
            })?;
        }
        let db = Database::builder()
            // The data plane never reads the store (it has its own snapshot): a small
            // page cache is enough and keeps resident memory down at scale.
            .set_cache_size(CACHE_BYTES)
            .set_check_integrity_on_open(true)
            .create(path)
            .map_err(|err| open_error(path, err))?;
        let store = Self {
            db,
            path: path.to_owned(),
            writer: Mutex::new(()),
            events: broadcast::channel(WATCH_CAPACITY).0,
        };
        store.initialise()?;
        Ok(store)
    }

    /// The path of the store file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Creates the tables of a new file and checks the format of an existing one.
    fn initialise(&self) -> Result<(), StoreError> {
        let txn = self
            .db
            .begin_write()
            .map_err(|e| self.err("begin write", e))?;
        let result = (|| {
            let mut meta = txn.open_table(META).map_err(|e| self.table_err(e))?;
            txn.open_table(DATA).map_err(|e| self.table_err(e))?;
            let format = meta
                .get(META_FORMAT)
                .map_err(|e| self.storage_err("read format", e))?
                .map(|guard| guard.value());
            match format {
                Some(FORMAT) => Ok(false),
                None => {
                    meta.insert(META_FORMAT, FORMAT)
                        .map_err(|e| self.storage_err("write format", e))?;
                    Ok(true)
                }
                Some(other) => Err(StoreError::Corrupt {
                    key: String::new(),
                    message: format!(
                        "{}: store format {other} is not supported (this build reads format {FORMAT})",
                        self.path.display()
                    ),
                }),
            }
        })();
        match result {
            Ok(true) => self.finish(txn),
            Ok(false) | Err(_) => {
                let _ = txn.abort();
                result.map(|_| ())
            }
        }
    }

    /// Commits a write transaction durably.
    fn finish(&self, mut txn: WriteTransaction) -> Result<(), StoreError> {
        // The default, set explicitly: Ok from commit() means fsync'd.
        txn.set_durability(Durability::Immediate)
            .map_err(|e| self.err("set durability", e))?;
        txn.commit().map_err(|e| self.err("commit", e))
    }

    /// Checks the conditions and applies the writes inside `txn`. Returns the revision and
    /// whether there is anything to commit: `(new revision, true)`, or `(current revision,
    /// false)` when `writes` is empty.
    fn apply(
        &self,
        txn: &WriteTransaction,
        conditions: &[Condition],
        writes: &[Write],
    ) -> Result<(u64, bool), StoreError> {
        let mut data = txn.open_table(DATA).map_err(|e| self.table_err(e))?;
        let mut meta = txn.open_table(META).map_err(|e| self.table_err(e))?;
        let current = meta
            .get(META_REVISION)
            .map_err(|e| self.storage_err("read revision", e))?
            .map_or(0, |guard| guard.value());
        check_conditions(conditions, |key| {
            match data.get(key).map_err(|e| self.storage_err("read", e))? {
                Some(guard) => Ok(Some(decode(key, guard.value())?.0)),
                None => Ok(None),
            }
        })?;
        if writes.is_empty() {
            return Ok((current, false));
        }
        let revision = current.checked_add(1).ok_or_else(|| StoreError::Corrupt {
            key: String::new(),
            message: "store revision overflow".to_owned(),
        })?;
        let mut buffer = Vec::new();
        for write in writes {
            match write {
                Write::Put(key, value) => {
                    buffer.clear();
                    buffer.extend_from_slice(&revision.to_le_bytes());
                    buffer.extend_from_slice(value);
                    data.insert(key.as_str(), buffer.as_slice())
                        .map_err(|e| self.storage_err("write", e))?;
                }
                Write::Delete(key) => {
                    data.remove(key.as_str())
                        .map_err(|e| self.storage_err("delete", e))?;
                }
            }
        }
        meta.insert(META_REVISION, revision)
            .map_err(|e| self.storage_err("write revision", e))?;
        Ok((revision, true))
    }

    fn err(&self, what: &str, err: impl std::fmt::Display) -> StoreError {
        StoreError::Backend {
            backend: BACKEND,
            message: format!("{what} ({}): {err}", self.path.display()),
        }
    }

    fn storage_err(&self, what: &str, err: StorageError) -> StoreError {
        match err {
            StorageError::Corrupted(message) => StoreError::Corrupt {
                key: String::new(),
                message: format!("{what} ({}): {message}", self.path.display()),
            },
            other => self.err(what, other),
        }
    }

    /// The data table in a fresh read transaction; `None` before anything was written.
    fn read_data(&self) -> Result<Option<ReadOnlyTable<&'static str, &'static [u8]>>, StoreError> {
        let txn = self
            .db
            .begin_read()
            .map_err(|e| self.err("begin read", e))?;
        match txn.open_table(DATA) {
            Ok(table) => Ok(Some(table)),
            Err(TableError::TableDoesNotExist(_)) => Ok(None),
            Err(err) => Err(self.table_err(err)),
        }
    }

    fn table_err(&self, err: TableError) -> StoreError {
        match err {
            TableError::Storage(storage) => self.storage_err("open table", storage),
            other => self.err("open table", other),
        }
    }
}

/// Maps an error of `Database::create` to a clear message.
fn open_error(path: &Path, err: DatabaseError) -> StoreError {
    let path = path.display();
    match err {
        DatabaseError::DatabaseAlreadyOpen | DatabaseError::LockProtocolMismatch => {
            StoreError::Backend {
                backend: BACKEND,
                message: format!(
                    "cannot open {path}: database is locked by another process (or already open in this one)"
                ),
            }
        }
        DatabaseError::Storage(StorageError::Corrupted(message)) => StoreError::Corrupt {
            key: String::new(),
            message: format!("cannot open {path}: the database file is damaged: {message}"),
        },
        DatabaseError::Storage(StorageError::Io(io))
            if io.kind() == std::io::ErrorKind::UnexpectedEof =>
        {
            StoreError::Backend {
                backend: BACKEND,
                message: format!(
                    "cannot open {path}: file truncated or not a redb database file: {io}"
                ),
            }
        }
        DatabaseError::Storage(StorageError::Io(io))
            if io.kind() == std::io::ErrorKind::InvalidData =>
        {
            StoreError::Backend {
                backend: BACKEND,
                message: format!("cannot open {path}: not a redb database file: {io}"),
            }
        }
        other => StoreError::Backend {
            backend: BACKEND,
            message: format!("cannot open {path}: {other}"),
        },
    }
}

/// Splits a stored value into (revision, value bytes).
fn decode<'a>(key: &str, stored: &'a [u8]) -> Result<(u64, &'a [u8]), StoreError> {
    match stored.split_first_chunk::<REVISION_LEN>() {
        Some((revision, value)) => Ok((u64::from_le_bytes(*revision), value)),
        None => Err(StoreError::Corrupt {
            key: key.to_owned(),
            message: format!(
                "stored value is {} bytes, shorter than its {REVISION_LEN}-byte revision",
                stored.len()
            ),
        }),
    }
}

fn entry(key: &str, stored: &[u8]) -> Result<Entry, StoreError> {
    let (revision, value) = decode(key, stored)?;
    Ok(Entry {
        key: key.to_owned(),
        value: value.to_vec(),
        revision,
    })
}

impl Store for EmbeddedStore {
    fn get(&self, key: &str) -> Result<Option<Entry>, StoreError> {
        let Some(table) = self.read_data()? else {
            return Ok(None);
        };
        match table.get(key).map_err(|e| self.storage_err("read", e))? {
            Some(guard) => Ok(Some(entry(key, guard.value())?)),
            None => Ok(None),
        }
    }

    fn scan(&self, prefix: &str) -> Result<Vec<Entry>, StoreError> {
        let Some(table) = self.read_data()? else {
            return Ok(Vec::new());
        };
        let mut entries = Vec::new();
        // Keys order byte-wise, so the keys with the prefix are one contiguous run starting at
        // the prefix itself.
        for item in table
            .range(prefix..)
            .map_err(|e| self.storage_err("scan", e))?
        {
            let (key, value) = item.map_err(|e| self.storage_err("scan", e))?;
            let key = key.value();
            if !key.starts_with(prefix) {
                break;
            }
            entries.push(entry(key, value.value())?);
        }
        Ok(entries)
    }

    fn commit(&self, conditions: &[Condition], writes: Vec<Write>) -> Result<u64, StoreError> {
        let _writer = lock(&self.writer);
        let txn = self
            .db
            .begin_write()
            .map_err(|e| self.err("begin write", e))?;
        match self.apply(&txn, conditions, &writes) {
            Ok((revision, true)) => {
                self.finish(txn)?;
                // Durable now; no subscribers is not an error.
                let _ = self.events.send(event(revision, writes));
                Ok(revision)
            }
            Ok((revision, false)) => {
                let _ = txn.abort();
                Ok(revision)
            }
            Err(err) => {
                let _ = txn.abort();
                Err(err)
            }
        }
    }

    fn revision(&self) -> Result<u64, StoreError> {
        let txn = self
            .db
            .begin_read()
            .map_err(|e| self.err("begin read", e))?;
        let meta = match txn.open_table(META) {
            Ok(table) => table,
            Err(TableError::TableDoesNotExist(_)) => return Ok(0),
            Err(err) => return Err(self.table_err(err)),
        };
        Ok(meta
            .get(META_REVISION)
            .map_err(|e| self.storage_err("read revision", e))?
            .map_or(0, |guard| guard.value()))
    }

    fn watch(&self) -> broadcast::Receiver<Arc<WatchEvent>> {
        self.events.subscribe()
    }
}

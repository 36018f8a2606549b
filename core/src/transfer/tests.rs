//! Export and import on in-memory stores: round trips, every refusal, commits that fit
//! the target's limits, and a partial import left by a failure.

use std::sync::{
    Arc,
    atomic::{AtomicUsize, Ordering},
};

use tokio::sync::broadcast;

use super::*;
use crate::store::{Entry, MemoryStore, WatchEvent};

fn key(byte: u8) -> MasterKey {
    MasterKey::from_bytes(&[byte; 32])
}

/// A memory store with commit limits, counting commits; it fails the commit numbered
/// `fail_at` (from 1) and, once, writes `sneak` during the first scan.
#[derive(Default)]
struct Limited {
    inner: MemoryStore,
    limits: Option<CommitLimits>,
    commits: AtomicUsize,
    fail_at: Option<usize>,
    sneak: std::sync::Mutex<Option<(String, Vec<u8>)>>,
}

impl Store for Limited {
    fn get(&self, key: &str) -> Result<Option<Entry>, StoreError> {
        self.inner.get(key)
    }
    fn scan(&self, prefix: &str) -> Result<Vec<Entry>, StoreError> {
        let out = self.inner.scan(prefix);
        if let Some((k, v)) = self.sneak.lock().unwrap().take() {
            self.inner.put(&k, v)?;
        }
        out
    }
    fn commit(&self, conditions: &[Condition], writes: Vec<Write>) -> Result<u64, StoreError> {
        if let Some(limits) = self.limits {
            limits
                .check(conditions.len(), &writes)
                .map_err(|message| StoreError::TooLarge {
                    backend: "test",
                    message,
                })?;
        }
        let n = self.commits.fetch_add(1, Ordering::SeqCst) + 1;
        if self.fail_at == Some(n) {
            return Err(StoreError::Backend {
                backend: "test",
                message: "the store went away".into(),
            });
        }
        self.inner.commit(conditions, writes)
    }
    fn revision(&self) -> Result<u64, StoreError> {
        self.inner.revision()
    }
    fn watch(&self) -> broadcast::Receiver<Arc<WatchEvent>> {
        self.inner.watch()
    }
    fn commit_limits(&self) -> Option<CommitLimits> {
        self.limits
    }
}

/// A store with `n` entries (binary values among them) and its check value.
fn source(n: usize, master: &MasterKey) -> MemoryStore {
    let store = MemoryStore::new();
    check::ensure(&store, master).unwrap();
    for i in 0..n {
        store
            .put(&format!("k/{i:04}"), vec![i as u8, 0, 255, b'"'])
            .unwrap();
    }
    store
}

fn contents(store: &dyn Store) -> Vec<(String, Vec<u8>)> {
    store
        .scan("")
        .unwrap()
        .into_iter()
        .map(|e| (e.key, e.value))
        .collect()
}

fn exported(store: &dyn Store, master: &MasterKey) -> Vec<u8> {
    encode(&export(store, master, "test key", "memory").unwrap())
}

#[test]
fn a_store_round_trips_through_the_file() {
    let master = key(1);
    let from = source(40, &master);
    from.delete("k/0003").unwrap();
    let bytes = exported(&from, &master);
    let file = parse(&bytes).unwrap();
    assert_eq!(file.source_revision, from.revision().unwrap());
    assert_eq!(file.entries.len(), 40, "39 entries and the check value");
    let to = MemoryStore::new();
    let report = import(&to, &master, "test key", &file).unwrap();
    assert_eq!((report.entries, report.commits), (40, 1));
    assert_eq!(contents(&to), contents(&from));
    // The imported store's check value is the source's: the same master key opens it.
    assert_eq!(
        check::ensure(&to, &master).unwrap(),
        check::Ensured::Verified
    );
}

#[test]
fn a_store_without_a_check_value_gets_one_from_the_export() {
    let master = key(1);
    let from = MemoryStore::new();
    from.put("a", b"1".to_vec()).unwrap();
    let file = parse(&exported(&from, &master)).unwrap();
    assert_eq!(file.entries.len(), 1);
    let to = MemoryStore::new();
    import(&to, &master, "test key", &file).unwrap();
    assert!(to.get(CHECK_KEY).unwrap().is_some());
    assert_eq!(
        check::verify(&master, &to.get(CHECK_KEY).unwrap().unwrap().value),
        Ok(())
    );
    assert!(check::verify(&key(2), &to.get(CHECK_KEY).unwrap().unwrap().value).is_err());
}

#[test]
fn another_master_key_is_refused_before_anything_is_written() {
    let from = source(3, &key(1));
    // Exporting with another key than the store's is refused too.
    let err = export(&from, &key(2), "secrets.master_key_file = /x", "memory").unwrap_err();
    assert!(
        matches!(err, TransferError::MasterKeyMismatch { .. }),
        "{err}"
    );
    assert!(err.to_string().contains("/x"), "{err}");
    let file = parse(&exported(&from, &key(1))).unwrap();
    let to = MemoryStore::new();
    let err = import(&to, &key(2), "secrets.master_key_file = /y", &file).unwrap_err();
    let text = err.to_string();
    assert!(
        matches!(err, TransferError::MasterKeyMismatch { .. }),
        "{text}"
    );
    assert!(
        text.contains("/y") && text.contains("export's check value"),
        "{text}"
    );
    assert!(text.contains("nothing was written"), "{text}");
    assert_eq!(to.revision().unwrap(), 0);
}

#[test]
fn damage_edits_and_other_versions_are_refused() {
    let master = key(1);
    let bytes = exported(&source(5, &master), &master);
    let to = MemoryStore::new();
    let refuse = |bytes: &[u8]| match parse(bytes) {
        Ok(file) => import(&to, &master, "k", &file).unwrap_err(),
        Err(e) => e,
    };
    // An edited value (still valid base64).
    let mut file = parse(&bytes).unwrap();
    file.entries[1].value = B64.encode(b"edited");
    let err = refuse(&encode(&file));
    assert!(
        matches!(&err, TransferError::Corrupt(m) if m.contains("mac")),
        "{err}"
    );
    // An entry dropped, entries out of order, a value that is not base64.
    let mut dropped = parse(&bytes).unwrap();
    dropped.entries.remove(2);
    assert!(matches!(
        refuse(&encode(&dropped)),
        TransferError::Corrupt(_)
    ));
    let mut swapped = parse(&bytes).unwrap();
    swapped.entries.swap(1, 2);
    assert!(matches!(refuse(&encode(&swapped)), TransferError::Corrupt(m) if m.contains("order")));
    let mut not_b64 = parse(&bytes).unwrap();
    not_b64.entries[0].value = "%%%".into();
    assert!(matches!(refuse(&encode(&not_b64)), TransferError::Corrupt(m) if m.contains("base64")));
    // Cut short.
    let err = refuse(&bytes[..bytes.len() / 2]);
    assert!(matches!(&err, TransferError::Corrupt(_)), "{err}");
    // Not an export at all.
    assert!(matches!(refuse(b"hello"), TransferError::NotAnExport(_)));
    assert!(matches!(
        refuse(br#"{"format":"something-else","version":1}"#),
        TransferError::NotAnExport(m) if m.contains("something-else")
    ));
    // Another version.
    let mut v2: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    v2["version"] = 2.into();
    let err = refuse(&serde_json::to_vec(&v2).unwrap());
    assert!(
        matches!(err, TransferError::UnsupportedVersion { found: 2 }),
        "{err}"
    );
    assert!(err.to_string().contains("version 2"), "{err}");
    assert_eq!(to.revision().unwrap(), 0, "nothing written");
}

#[test]
fn only_an_empty_store_is_imported_into() {
    let master = key(1);
    let file = parse(&exported(&source(2, &master), &master)).unwrap();
    let to = MemoryStore::new();
    to.put("x", b"1".to_vec()).unwrap();
    to.put("y", b"1".to_vec()).unwrap();
    let err = import(&to, &master, "k", &file).unwrap_err();
    assert!(
        matches!(err, TransferError::TargetNotEmpty { entries: 2 }),
        "{err}"
    );
    assert!(err.to_string().contains("holds 2 entries"), "{err}");
    assert_eq!(to.revision().unwrap(), 2);
}

#[test]
fn commits_fit_the_targets_limits_and_the_marker_spans_them() {
    let master = key(1);
    let file = parse(&exported(&source(35, &master), &master)).unwrap();
    let limits = CommitLimits {
        writes: 10,
        conditions: 10,
        bytes: 1 << 20,
    };
    let to = Limited {
        limits: Some(limits),
        ..Limited::default()
    };
    let mut rx = to.watch();
    let report = import(&to, &master, "k", &file).unwrap();
    // 36 entries, 9 per commit (one write and one condition kept for the marker).
    assert_eq!((report.entries, report.commits), (36, 4));
    assert_eq!(to.commits.load(Ordering::SeqCst), 4);
    assert!(to.get(IMPORT_MARKER).unwrap().is_none());
    assert_eq!(to.scan("").unwrap().len(), 36);
    let first = rx.try_recv().unwrap();
    assert!(
        first
            .changes
            .iter()
            .any(|c| c.key == IMPORT_MARKER && c.value.is_some())
    );
    let mut last = first;
    while let Ok(e) = rx.try_recv() {
        last = e;
    }
    assert!(
        last.changes
            .iter()
            .any(|c| c.key == IMPORT_MARKER && c.value.is_none())
    );
}

#[test]
fn a_partial_import_is_detected_by_import_and_export() {
    let master = key(1);
    let file = parse(&exported(&source(35, &master), &master)).unwrap();
    let to = Limited {
        limits: Some(CommitLimits {
            writes: 10,
            conditions: 128,
            bytes: 1 << 20,
        }),
        fail_at: Some(3),
        ..Limited::default()
    };
    let err = import(&to, &master, "k", &file).unwrap_err();
    assert!(
        matches!(&err, TransferError::UnfinishedImport(m) if m.contains("after 2 of 4")),
        "{err}"
    );
    let message = unfinished_import(&to).unwrap().expect("the marker stays");
    assert!(
        message.contains("did not finish") && message.contains("etcdctl del"),
        "{message}"
    );
    let again = import(&to, &master, "k", &file).unwrap_err();
    assert!(
        matches!(again, TransferError::UnfinishedImport(_)),
        "{again}"
    );
    let export_err = export(&to, &master, "k", "t").unwrap_err();
    assert!(
        matches!(export_err, TransferError::UnfinishedImport(_)),
        "{export_err}"
    );
    // A failure on the first commit leaves nothing.
    let clean = Limited {
        limits: to.limits,
        fail_at: Some(1),
        ..Limited::default()
    };
    assert!(matches!(
        import(&clean, &master, "k", &file),
        Err(TransferError::Store(_))
    ));
    assert_eq!(clean.revision().unwrap(), 0);
}

#[test]
fn an_export_reads_every_entry_at_one_revision() {
    let master = key(1);
    let store = Limited::default();
    check::ensure(&store, &master).unwrap();
    store.put("a", b"1".to_vec()).unwrap();
    // A commit lands while the first scan runs: that snapshot is not used.
    *store.sneak.lock().unwrap() = Some(("b".into(), b"2".to_vec()));
    let file = export(&store, &master, "k", "t").unwrap();
    assert_eq!(file.source_revision, 3);
    let keys: Vec<_> = file.entries.iter().map(|e| e.key.as_str()).collect();
    assert_eq!(keys, ["a", "b", CHECK_KEY]);
}

#[test]
fn batches_respect_writes_and_bytes() {
    let limits = CommitLimits {
        writes: 4,
        conditions: 100,
        bytes: MARKER_BYTES + 100,
    };
    assert_eq!(plan_batches(&[1; 7], limits), [0..3, 3..6, 6..7]);
    // Bytes: 60 + 60 > 100; an entry larger than the limit goes alone.
    assert_eq!(
        plan_batches(&[60, 60, 500, 10, 10], limits),
        [0..1, 1..2, 2..3, 3..5]
    );
    assert!(plan_batches(&[], limits).is_empty());
    // Conditions bound it too.
    let few = CommitLimits {
        conditions: 3,
        ..limits
    };
    assert_eq!(plan_batches(&[1; 5], few), [0..2, 2..4, 4..5]);
}

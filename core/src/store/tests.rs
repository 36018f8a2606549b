//! The behaviour every store backend must have, crash safety of the embedded backend.

use super::*;
use tokio::sync::broadcast::error::TryRecvError;

fn change(key: &str, value: Option<&[u8]>) -> Change {
    Change {
        key: key.into(),
        value: value.map(<[u8]>::to_vec),
    }
}

fn put(key: &str, value: &str) -> Write {
    Write::Put(key.to_owned(), value.as_bytes().to_vec())
}

fn keys(entries: &[Entry]) -> Vec<&str> {
    entries.iter().map(|e| e.key.as_str()).collect()
}

fn value(s: &dyn Store, key: &str) -> Option<Vec<u8>> {
    s.get(key).expect("get").map(|e| e.value)
}

fn expect_event(rx: &mut broadcast::Receiver<Arc<WatchEvent>>) -> Arc<WatchEvent> {
    rx.try_recv().expect("an event was sent")
}

/// The behaviour every backend must have. `s` must be a new, empty store.
pub(super) fn behaves_like_a_store(s: &dyn Store) {
    let mut rx1 = s.watch();
    let mut rx2 = s.watch();
    assert_eq!(s.revision().unwrap(), 0);
    assert_eq!(s.get("a/x").unwrap(), None);
    assert!(s.scan("").unwrap().is_empty());

    // put / get; one revision per commit; Entry.revision is the commit's revision.
    assert_eq!(s.put("a/x", b"1".to_vec()).unwrap(), 1);
    assert_eq!(
        s.get("a/x").unwrap(),
        Some(Entry {
            key: "a/x".into(),
            value: b"1".to_vec(),
            revision: 1
        })
    );
    assert_eq!(s.revision().unwrap(), 1);
    let rev = s
        .commit(
            &[],
            vec![
                put("ab/1", "ab"),
                put("a0", "a0"),
                put("a/", "dir"),
                put("a/c", "c"),
                put("a/b", "b"),
                put("a", "a"),
                put("b/1", "b"),
                put("", "empty key"),
            ],
        )
        .unwrap();
    assert_eq!(rev, 2);
    assert_eq!(s.revision().unwrap(), 2);
    assert_eq!(s.get("a/x").unwrap().unwrap().revision, 1, "untouched key");
    assert_eq!(s.get("a/b").unwrap().unwrap().revision, 2);

    // scan: key order, prefix isolation.
    assert_eq!(keys(&s.scan("a/").unwrap()), ["a/", "a/b", "a/c", "a/x"]);
    assert_eq!(
        keys(&s.scan("a").unwrap()),
        ["a", "a/", "a/b", "a/c", "a/x", "a0", "ab/1"]
    );
    assert_eq!(keys(&s.scan("ab/").unwrap()), ["ab/1"]);
    assert_eq!(keys(&s.scan("b").unwrap()), ["b/1"]);
    assert!(s.scan("c").unwrap().is_empty());
    assert!(s.scan("a/xx").unwrap().is_empty());
    assert_eq!(s.scan("").unwrap().len(), 9);
    let scanned = s.scan("a/").unwrap();
    assert_eq!(scanned[3].value, b"1");
    assert_eq!(scanned[3].revision, 1);
    assert_eq!(scanned[0].revision, 2);

    // Overwrite.
    assert_eq!(s.put("a/x", b"2".to_vec()).unwrap(), 3);
    assert_eq!(
        s.get("a/x").unwrap().map(|e| (e.value, e.revision)),
        Some((b"2".to_vec(), 3))
    );

    // delete: true once, then false without a revision bump.
    assert!(s.delete("a/x").unwrap());
    assert_eq!(s.revision().unwrap(), 4);
    assert_eq!(s.get("a/x").unwrap(), None);
    assert!(!s.delete("a/x").unwrap());
    assert_eq!(s.revision().unwrap(), 4);
    assert_eq!(keys(&s.scan("a/").unwrap()), ["a/", "a/b", "a/c"]);

    // create: true when absent, false (nothing written) when present.
    assert!(s.create("c/1", b"first".to_vec()).unwrap());
    assert_eq!(s.revision().unwrap(), 5);
    assert!(!s.create("c/1", b"second".to_vec()).unwrap());
    assert_eq!(s.revision().unwrap(), 5);
    assert_eq!(value(s, "c/1").unwrap(), b"first");

    // Every condition kind, passing.
    let c1_rev = s.get("c/1").unwrap().unwrap().revision;
    let rev = s
        .commit(
            &[
                Condition::Absent("c/2".into()),
                Condition::Exists("a/b".into()),
                Condition::Revision("c/1".into(), c1_rev),
            ],
            vec![put("c/1", "swapped"), put("c/2", "new")],
        )
        .unwrap();
    assert_eq!(rev, 6);
    assert_eq!(value(s, "c/1").unwrap(), b"swapped");
    assert_eq!(value(s, "c/2").unwrap(), b"new");

    // Every condition kind, failing: Conflict naming the key, nothing written (both keys
    // of a two-write commit checked), no revision.
    let failing = [
        (Condition::Absent("c/1".into()), "c/1"),
        (Condition::Exists("c/9".into()), "c/9"),
        (Condition::Revision("c/1".into(), c1_rev), "c/1"), // stale
        (Condition::Revision("c/9".into(), 6), "c/9"),      // absent
    ];
    for (condition, key) in failing {
        let err = s
            .commit(
                &[Condition::Exists("a/b".into()), condition.clone()],
                vec![
                    put("c/1", "lost"),
                    put("c/3", "lost"),
                    Write::Delete("a/b".into()),
                ],
            )
            .unwrap_err();
        match err {
            StoreError::Conflict { key: k } => assert_eq!(k, key, "{condition:?}"),
            other => panic!("{condition:?}: expected a conflict, got {other:?}"),
        }
        assert_eq!(value(s, "c/1").unwrap(), b"swapped", "{condition:?}");
        assert_eq!(value(s, "c/3"), None, "{condition:?}");
        assert!(value(s, "a/b").is_some(), "{condition:?}");
        assert_eq!(s.revision().unwrap(), 6);
    }

    // Empty writes: no revision; conditions still checked.
    assert_eq!(s.commit(&[], vec![]).unwrap(), 6);
    assert_eq!(
        s.commit(&[Condition::Exists("c/1".into())], vec![])
            .unwrap(),
        6
    );
    assert!(matches!(
        s.commit(&[Condition::Absent("c/1".into())], vec![]),
        Err(StoreError::Conflict { .. })
    ));
    assert_eq!(s.revision().unwrap(), 6);

    // A key written twice in one transaction: the last write wins.
    let rev = s
        .commit(
            &[],
            vec![
                put("d", "1"),
                Write::Delete("d".into()),
                put("e", "1"),
                put("e", "2"),
            ],
        )
        .unwrap();
    assert_eq!(rev, 7);
    assert_eq!(value(s, "d"), None);
    assert_eq!(value(s, "e").unwrap(), b"2");
    // Deleting an absent key unconditionally is a (no-op) transaction of its own.
    assert_eq!(s.commit(&[], vec![Write::Delete("zz".into())]).unwrap(), 8);

    // Large-ish values round-trip.
    let big = vec![0x5a_u8; 64 * 1024];
    s.put("big", big.clone()).unwrap();
    assert_eq!(value(s, "big").unwrap(), big);
    s.put("empty", Vec::new()).unwrap();
    assert_eq!(value(s, "empty").unwrap(), b"");

    // Watch: both subscribers receive every transaction, in order, with its changes.
    let expected: Vec<(u64, Vec<Change>)> = vec![
        (1, vec![change("a/x", Some(b"1"))]),
        (2, vec![]), // checked by length below
        (3, vec![change("a/x", Some(b"2"))]),
        (4, vec![change("a/x", None)]),
        (5, vec![change("c/1", Some(b"first"))]),
        (
            6,
            vec![change("c/1", Some(b"swapped")), change("c/2", Some(b"new"))],
        ),
        (
            7,
            vec![
                change("d", Some(b"1")),
                change("d", None),
                change("e", Some(b"1")),
                change("e", Some(b"2")),
            ],
        ),
        (8, vec![change("zz", None)]),
        (
            9,
            vec![Change {
                key: "big".into(),
                value: Some(big),
            }],
        ),
        (
            10,
            vec![Change {
                key: "empty".into(),
                value: Some(Vec::new()),
            }],
        ),
    ];
    for rx in [&mut rx1, &mut rx2] {
        for (revision, changes) in &expected {
            let event = expect_event(rx);
            assert_eq!(event.revision, *revision);
            if *revision == 2 {
                assert_eq!(event.changes.len(), 8);
                assert_eq!(event.changes[0].key, "ab/1");
                assert_eq!(event.changes[7].key, "");
            } else {
                assert_eq!(&event.changes, changes, "revision {revision}");
            }
        }
        assert!(
            matches!(rx.try_recv(), Err(TryRecvError::Empty)),
            "no event for failed or empty commits"
        );
    }

    // A late subscriber sees only what follows; a dropped one does not disturb commits.
    let mut late = s.watch();
    drop(rx1);
    let rev = s.put("f", b"f".to_vec()).unwrap();
    assert_eq!(expect_event(&mut late).revision, rev);
    assert_eq!(expect_event(&mut rx2).revision, rev);

    // A subscriber more than WATCH_CAPACITY behind lags, and is told so.
    let mut slow = s.watch();
    for i in 0..WATCH_CAPACITY + 5 {
        s.commit(
            &[],
            vec![Write::Put("lag".into(), i.to_string().into_bytes())],
        )
        .unwrap();
    }
    assert!(matches!(slow.try_recv(), Err(TryRecvError::Lagged(_))));
}

/// Concurrent committers: revisions are unique and dense, events arrive in order.
pub(super) fn concurrent_commits(s: Arc<dyn Store>) {
    let mut rx = s.watch();
    let start = s.revision().unwrap();
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let s = Arc::clone(&s);
            std::thread::spawn(move || {
                (0..50)
                    .map(|i| s.put(&format!("t{t}/{i:03}"), vec![t]).unwrap())
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let mut revisions: Vec<u64> = threads
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .collect();
    revisions.sort_unstable();
    assert_eq!(revisions, (start + 1..=start + 200).collect::<Vec<_>>());
    for expected in start + 1..=start + 200 {
        assert_eq!(expect_event(&mut rx).revision, expected);
    }
    assert_eq!(s.scan("t2/").unwrap().len(), 50);
}

#[test]
fn memory_behaves_like_a_store() {
    behaves_like_a_store(&MemoryStore::new());
    concurrent_commits(Arc::new(MemoryStore::new()));
}

#[test]
fn embedded_behaves_like_a_store() {
    let dir = tempfile::tempdir().unwrap();
    behaves_like_a_store(&EmbeddedStore::open(&dir.path().join("store.redb")).unwrap());
    concurrent_commits(Arc::new(
        EmbeddedStore::open(&dir.path().join("concurrent.redb")).unwrap(),
    ));
}

#[test]
fn embedded_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nested/dirs/store.redb");
    {
        let s = EmbeddedStore::open(&path).unwrap();
        assert_eq!(s.path(), path);
        s.put("k/1", b"one".to_vec()).unwrap();
        s.commit(&[], vec![put("k/2", "two"), put("k/3", "three")])
            .unwrap();
        assert!(s.delete("k/3").unwrap());
    }
    let s = EmbeddedStore::open(&path).unwrap();
    assert_eq!(s.revision().unwrap(), 3);
    let entries = s.scan("k/").unwrap();
    assert_eq!(keys(&entries), ["k/1", "k/2"]);
    assert_eq!(
        (entries[0].value.as_slice(), entries[0].revision),
        (&b"one"[..], 1)
    );
    assert_eq!(
        (entries[1].value.as_slice(), entries[1].revision),
        (&b"two"[..], 2)
    );
    assert_eq!(s.put("k/4", Vec::new()).unwrap(), 4, "revisions continue");
}

fn assert_locked(result: Result<EmbeddedStore, StoreError>) {
    match result {
        Err(err @ StoreError::Backend { .. }) => {
            let message = err.to_string();
            assert!(message.contains("locked by another process"), "{message}");
        }
        other => panic!("expected a lock error, got {other:?}"),
    }
}

#[test]
fn embedded_second_open_fails_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.redb");
    let first = EmbeddedStore::open(&path).unwrap();
    first.put("k", b"v".to_vec()).unwrap();
    assert_locked(EmbeddedStore::open(&path));
    // The first handle is unaffected; once it is closed the file opens again.
    assert_eq!(value(&first, "k").unwrap(), b"v");
    drop(first);
    let again = EmbeddedStore::open(&path).unwrap();
    assert_eq!(value(&again, "k").unwrap(), b"v");
}

/// Opening a damaged file must return an error (or a repaired store), never panic.
fn open_damaged(path: &std::path::Path) -> Result<EmbeddedStore, StoreError> {
    std::panic::catch_unwind(|| EmbeddedStore::open(path))
        .unwrap_or_else(|_| panic!("EmbeddedStore::open panicked on {}", path.display()))
}

fn filled_store(path: &std::path::Path) {
    let s = EmbeddedStore::open(path).unwrap();
    for i in 0..200 {
        s.put(&format!("key/{i:04}"), vec![b'x'; 1000]).unwrap();
    }
}

#[test]
fn embedded_rejects_garbage_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("garbage.redb");
    std::fs::write(&path, b"this is not a redb database file ".repeat(300)).unwrap();
    let err = open_damaged(&path).unwrap_err();
    eprintln!("garbage: {err}");
    assert!(err.to_string().contains("not a redb database"), "{err}");
}

#[test]
fn embedded_rejects_truncated_file() {
    let dir = tempfile::tempdir().unwrap();
    for cut in [100_u64, 4096, 0] {
        let path = dir.path().join(format!("truncated-{cut}.redb"));
        filled_store(&path);
        let len = std::fs::metadata(&path).unwrap().len();
        let keep = if cut == 0 { len / 2 } else { cut };
        std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .unwrap()
            .set_len(keep)
            .unwrap();
        match open_damaged(&path) {
            Err(err) => eprintln!("truncated to {keep} of {len}: {err}"),
            Ok(s) => panic!(
                "truncated to {keep} of {len}: opened at revision {:?}",
                s.revision()
            ),
        }
    }
}

#[test]
fn embedded_rejects_damaged_pages() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("damaged.redb");
    filled_store(&path);
    let mut bytes = std::fs::read(&path).unwrap();
    let len = bytes.len();
    // Damage the middle of the file (data pages), not the header.
    for b in &mut bytes[len / 3..len / 3 + 8192] {
        *b ^= 0xff;
    }
    std::fs::write(&path, &bytes).unwrap();
    match open_damaged(&path) {
        Err(err) => eprintln!("damaged: {err}"),
        Ok(s) => {
            // Only acceptable if every entry still reads back intact.
            let entries = s.scan("key/").unwrap();
            eprintln!("damaged: opened, {} entries", entries.len());
            assert_eq!(entries.len(), 200);
            assert!(entries.iter().all(|e| e.value == vec![b'x'; 1000]));
        }
    }
}

const CRASH_WRITER_ENV: &str = "KEYHOLD_STORE_CRASH_WRITER";
const PAIR_LEN: usize = 3000;

fn crash_writer(path: &std::path::Path) -> ! {
    use std::io::Write as _;
    let s = EmbeddedStore::open(path).expect("writer: open");
    let start = s.revision().expect("writer: revision");
    let mut out = std::io::stdout().lock();
    // libtest has printed "test <name> ... " without a newline: end that line first.
    writeln!(out).expect("writer: stdout");
    for n in start + 1.. {
        // Both keys get the same value in one transaction: after a crash they must match.
        let mut value = n.to_string().into_bytes();
        value.resize(PAIR_LEN + (n as usize % 7) * 1000, b'.');
        let rev = s
            .commit(
                &[],
                vec![
                    Write::Put("pair/a".into(), value.clone()),
                    Write::Put(format!("ack/{n:010}"), Vec::new()),
                    Write::Put("pair/b".into(), value),
                ],
            )
            .expect("writer: commit");
        writeln!(out, "ack {n} {rev}")
            .and_then(|()| out.flush())
            .expect("writer: stdout");
    }
    unreachable!()
}

/// Runs a writer in a child process (this test binary, re-executed), kills it with SIGKILL
/// mid-stream, and checks that every acknowledged commit survived, atomically.
#[test]
fn embedded_survives_sigkill() {
    use std::io::BufRead as _;
    use std::process::{Command, Stdio};

    if let Some(path) = std::env::var_os(CRASH_WRITER_ENV) {
        crash_writer(std::path::Path::new(&path));
    }
    // The name libtest knows this test by: the module path without the crate name.
    let module = module_path!().split_once("::").map_or("", |(_, rest)| rest);
    let name = format!("{module}::embedded_survives_sigkill");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("crash.redb");

    let mut recovered = 0;
    for round in 0..3 {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args(["--exact", &name, "--nocapture", "--test-threads=1"])
            .env(CRASH_WRITER_ENV, &path)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let mut last_ack = None;
        let mut acks = 0;
        for line in std::io::BufReader::new(stdout).lines() {
            let line = line.unwrap();
            let Some((_, ack)) = line.split_once("ack ") else {
                continue;
            };
            let (n, rev) = ack.split_once(' ').unwrap();
            let (n, rev): (u64, u64) = (n.parse().unwrap(), rev.parse().unwrap());
            assert_eq!(n, rev, "one revision per commit");
            assert_eq!(n, last_ack.unwrap_or(recovered) + 1, "every ack is seen");
            last_ack = Some(n);
            acks += 1;
            if acks == 50 {
                // The child holds the file: another process cannot open it.
                assert_locked(EmbeddedStore::open(&path));
            }
            if acks >= 300 {
                break;
            }
        }
        child.kill().unwrap();
        child.wait().unwrap();
        let last_ack = last_ack.expect("the writer acknowledged commits");

        let s = EmbeddedStore::open(&path).expect("reopen after SIGKILL");
        let revision = s.revision().unwrap();
        assert!(
            revision >= last_ack,
            "round {round}: revision {revision} < last ack {last_ack}"
        );
        let acked = s.scan("ack/").unwrap();
        assert_eq!(
            acked.len() as u64,
            revision,
            "one ack key per committed revision"
        );
        for (i, entry) in acked.iter().enumerate() {
            assert_eq!(entry.key, format!("ack/{:010}", i + 1));
            assert_eq!(entry.revision, i as u64 + 1);
        }
        let a = s.get("pair/a").unwrap().unwrap();
        let b = s.get("pair/b").unwrap().unwrap();
        assert_eq!(a.value, b.value, "round {round}: torn transaction");
        assert_eq!(a.revision, revision);
        assert_eq!(b.revision, revision);
        assert!(a.value.starts_with(format!("{revision}.").as_bytes()));
        eprintln!("round {round}: {acks} acks, last {last_ack}, recovered revision {revision}");
        recovered = revision;
    }
}

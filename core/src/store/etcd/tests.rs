//! The etcd backend against a real etcd (Debian's `etcd-server`), started per test on
//! loopback ports chosen at run time.

use std::time::Instant;

use keyhold_testkit::etcd::{Etcd, EtcdCluster};

use super::*;
use crate::store::tests::{behaves_like_a_store, concurrent_commits};

fn settings(etcd: &Etcd, prefix: &str) -> EtcdSettings {
    settings_for(vec![etcd.url.clone()], prefix)
}

fn settings_for(endpoints: Vec<String>, prefix: &str) -> EtcdSettings {
    EtcdSettings {
        endpoints,
        prefix: prefix.into(),
        user: None,
        tls: None,
        timeout: Duration::from_secs(5),
        log_retain: LOG_RETAIN,
    }
}

/// Opens a store with `settings`, waiting for etcd to come up.
fn open_with(settings: EtcdSettings) -> EtcdStore {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match EtcdStore::open(&settings) {
            Ok(s) => return s,
            Err(e) if Instant::now() > deadline => panic!("etcd did not come up: {e}"),
            Err(_) => std::thread::sleep(Duration::from_millis(100)),
        }
    }
}

fn open(etcd: &Etcd, prefix: &str) -> EtcdStore {
    open_with(settings(etcd, prefix))
}

#[test]
fn etcd_behaves_like_a_store() {
    let etcd = Etcd::start();
    behaves_like_a_store(&open(&etcd, "one/"));
    concurrent_commits(Arc::new(open(&etcd, "two/")));
}

/// Polls `rx` until an event comes (the follower delivers asynchronously).
fn next_event(rx: &mut broadcast::Receiver<Arc<WatchEvent>>) -> Arc<WatchEvent> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match rx.try_recv() {
            Ok(e) => return e,
            Err(broadcast::error::TryRecvError::Empty) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(10))
            }
            Err(e) => panic!("no event: {e:?}"),
        }
    }
}

#[test]
fn two_nodes_share_state_and_see_every_transaction_in_order() {
    let etcd = Etcd::start();
    let (a, b) = (open(&etcd, "c/"), open(&etcd, "c/"));
    let (mut rx_a, mut rx_b) = (a.watch(), b.watch());
    // Interleaved commits on both nodes: one revision sequence, both feeds in order.
    for i in 0..20u64 {
        let node = if i % 2 == 0 { &a } else { &b };
        assert_eq!(
            node.put(&format!("k/{i:02}"), vec![i as u8]).unwrap(),
            i + 1
        );
    }
    for rx in [&mut rx_a, &mut rx_b] {
        for expected in 1..=20u64 {
            let e = next_event(rx);
            assert_eq!(e.revision, expected);
            assert_eq!(e.changes[0].key, format!("k/{:02}", expected - 1));
        }
    }
    assert_eq!(b.get("k/04").unwrap().unwrap().revision, 5);
    assert_eq!(a.scan("k/").unwrap().len(), 20);
    // A compare-and-swap that lost on the other node is a conflict, naming the key.
    let entry = a.get("k/00").unwrap().unwrap();
    b.put("k/00", b"moved".to_vec()).unwrap();
    let err = a
        .commit(
            &[Condition::Revision("k/00".into(), entry.revision)],
            vec![Write::Put("k/00".into(), b"lost".to_vec())],
        )
        .unwrap_err();
    assert!(matches!(err, StoreError::Conflict { key } if key == "k/00"));
    // Prefixes are separate stores.
    let other = open(&etcd, "d/");
    assert_eq!(other.revision().unwrap(), 0);
    assert!(other.scan("").unwrap().is_empty());
}

#[test]
fn an_unreachable_etcd_is_a_backend_error_and_the_follower_resumes() {
    let mut etcd = Etcd::start();
    let s = open(&etcd, "r/");
    let mut rx = s.watch();
    s.put("x", b"1".to_vec()).unwrap();
    assert_eq!(next_event(&mut rx).revision, 1);
    // Another node's commit is delivered through the watch.
    let other = open(&etcd, "r/");
    other.put("y", b"2".to_vec()).unwrap();
    assert_eq!(next_event(&mut rx).revision, 2);
    etcd.stop();
    let err = s.get("x").unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::Backend {
                backend: "etcd",
                ..
            }
        ),
        "{err}"
    );
}

/// Retries `f` until etcd answers again (after a restart).
fn eventually<T>(mut f: impl FnMut() -> Result<T, StoreError>) -> T {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match f() {
            Ok(v) => return v,
            Err(e) if Instant::now() > deadline => panic!("etcd did not come back: {e}"),
            Err(_) => std::thread::sleep(Duration::from_millis(100)),
        }
    }
}

#[test]
fn after_an_etcd_restart_the_follower_resumes_without_missing_a_transaction() {
    let mut etcd = Etcd::start();
    let (a, b) = (open(&etcd, "s/"), open(&etcd, "s/"));
    let mut rx = a.watch();
    b.put("k/1", b"1".to_vec()).unwrap();
    assert_eq!(next_event(&mut rx).revision, 1);
    etcd.restart();
    for i in 2..=6u64 {
        let rev = eventually(|| b.put(&format!("k/{i}"), vec![i as u8]));
        assert_eq!(rev, i);
    }
    for expected in 2..=6u64 {
        let e = next_event(&mut rx);
        assert_eq!(e.revision, expected);
        assert_eq!(e.changes[0].key, format!("k/{expected}"));
    }
}

#[test]
fn a_node_that_missed_more_than_the_log_keeps_gets_the_current_state() {
    let etcd = Etcd::start();
    let settings = EtcdSettings {
        log_retain: 3,
        ..settings(&etcd, "g/")
    };
    let (a, b) = (open_with(settings.clone()), open_with(settings));
    let mut rx = a.watch();
    b.put("stays", b"1".to_vec()).unwrap();
    b.put("goes", b"1".to_vec()).unwrap();
    for expected in 1..=2 {
        assert_eq!(next_event(&mut rx).revision, expected);
    }
    // Node A stops following; B commits more than the log keeps.
    a.inner
        .paused
        .store(true, std::sync::atomic::Ordering::SeqCst);
    // Wake A's watch so that it notices the pause (an event it then drops).
    b.put("wake", b"1".to_vec()).unwrap();
    std::thread::sleep(Duration::from_millis(500));
    assert!(b.delete("goes").unwrap());
    for i in 0..10u8 {
        b.put("counter", vec![i]).unwrap();
    }
    let now = b.revision().unwrap();
    assert!(b.get("goes").unwrap().is_none());
    a.inner
        .paused
        .store(false, std::sync::atomic::Ordering::SeqCst);
    // What A delivers, applied in order, must give B's current state.
    let mut state: std::collections::BTreeMap<String, Vec<u8>> = [
        ("stays".into(), b"1".to_vec()),
        ("goes".into(), b"1".to_vec()),
    ]
    .into();
    let mut last = 2;
    while last < now {
        let e = next_event(&mut rx);
        assert!(e.revision > last, "revisions increase");
        last = e.revision;
        for c in &e.changes {
            match &c.value {
                Some(v) => state.insert(c.key.clone(), v.clone()),
                None => state.remove(&c.key),
            };
        }
    }
    let current: std::collections::BTreeMap<String, Vec<u8>> = b
        .scan("")
        .unwrap()
        .into_iter()
        .map(|e| (e.key, e.value))
        .collect();
    assert_eq!(state, current);
    assert!(!state.contains_key("goes"), "the deletion is delivered");
    // A follows again after the resynchronization.
    b.put("after", b"x".to_vec()).unwrap();
    assert_eq!(next_event(&mut rx).revision, now + 1);
}

/// Two nodes on a 3-member cluster commit and read without pause while each member in
/// turn is killed (SIGKILL) and brought back: no call fails (each is tried again on a
/// member that answers), no commit is applied twice (the revision counter equals the
/// number of acknowledged commits), and a node's feed delivers every one once, in order.
#[test]
fn killed_members_cost_no_call_and_no_commit_applies_twice() {
    use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
    let mut etcd = EtcdCluster::start(3);
    let settings = settings_for(etcd.endpoints(), "f/");
    let (a, b) = (
        Arc::new(open_with(settings.clone())),
        Arc::new(open_with(settings)),
    );
    let mut rx = a.watch();
    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = [a.clone(), b.clone()]
        .into_iter()
        .enumerate()
        .map(|(n, store)| {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut acknowledged = Vec::new();
                while !stop.load(SeqCst) {
                    let key = format!("w{n}/{:06}", acknowledged.len());
                    let rev = store
                        .put(&key, vec![n as u8])
                        .unwrap_or_else(|e| panic!("commit {key}: {e}"));
                    let read = store.get(&key).unwrap_or_else(|e| panic!("get {key}: {e}"));
                    assert_eq!(read.map(|e| e.revision), Some(rev), "{key}");
                    acknowledged.push((key, rev));
                }
                acknowledged
            })
        })
        .collect();
    for member in 0..3 {
        std::thread::sleep(Duration::from_millis(400));
        etcd.kill(member);
        std::thread::sleep(Duration::from_millis(800));
        etcd.restart(member);
    }
    std::thread::sleep(Duration::from_millis(300));
    stop.store(true, SeqCst);
    let mut revisions = Vec::new();
    let mut keys = std::collections::BTreeSet::new();
    for w in writers {
        for (key, rev) in w.join().expect("writer") {
            revisions.push(rev);
            keys.insert(key);
        }
    }
    revisions.sort_unstable();
    let total = revisions.len() as u64;
    assert!(total > 20, "the writers kept committing ({total})");
    assert_eq!(revisions, (1..=total).collect::<Vec<_>>());
    assert_eq!(a.revision().unwrap(), total, "no commit applied twice");
    assert_eq!(b.scan("").unwrap().len() as u64, total);
    let mut delivered = std::collections::BTreeSet::new();
    for expected in 1..=total {
        let e = next_event(&mut rx);
        assert_eq!(e.revision, expected);
        assert_eq!(e.changes.len(), 1);
        assert!(delivered.insert(e.changes[0].key.clone()), "delivered once");
    }
    assert_eq!(delivered, keys);
    println!("{total} commits while each of 3 members was killed and restarted");
}

#[test]
fn the_largest_commit_etcd_takes_by_default_goes_through_and_a_larger_one_is_refused_clearly() {
    let etcd = Etcd::start();
    // log_retain 1: every commit also trims a log record (its third own operation).
    let s = open_with(EtcdSettings {
        log_retain: 1,
        ..settings(&etcd, "big/")
    });
    s.put("first", b"1".to_vec()).unwrap();
    let puts = |n: usize| -> Vec<Write> {
        (0..n)
            .map(|i| Write::Put(format!("k/{i:03}"), vec![b'v'; 64]))
            .collect()
    };
    let conditions: Vec<Condition> = (0..127)
        .map(|i| Condition::Absent(format!("k/{i:03}")))
        .collect();
    // 125 writes + counter + log record + trim = 128 operations, 1 + 127 compares.
    let limits = s.commit_limits().unwrap();
    assert_eq!((limits.writes, limits.conditions), (125, 127));
    s.commit(&conditions, puts(125)).unwrap();
    assert_eq!(s.scan("k/").unwrap().len(), 125);
    let err = s.commit(&[], puts(126)).unwrap_err();
    assert!(matches!(err, StoreError::TooLarge { .. }), "{err}");
    assert!(err.to_string().contains("--max-txn-ops 128"), "{err}");
    // Values near the request size limit: refused before etcd says "request is too large".
    let big = vec![Write::Put("big".into(), vec![0; 800_000])];
    assert!(matches!(
        s.commit(&[], big).unwrap_err(),
        StoreError::TooLarge { .. }
    ));
    let fits = vec![Write::Put("fits".into(), vec![0; 690_000])];
    s.commit(&[], fits).unwrap();
}

#[test]
fn an_unreachable_etcd_is_reported_fails_fast_and_is_noticed_when_back() {
    let mut etcd = Etcd::start();
    let s = open(&etcd, "u/");
    assert!(s.reachable());
    s.put("a", b"1".to_vec()).unwrap();
    etcd.stop();
    // The first call finds out; the follower finds out on its own too.
    let deadline = Instant::now() + Duration::from_secs(30);
    while s.reachable() {
        assert!(Instant::now() < deadline, "still reachable");
        let _ = s.get("a");
        std::thread::sleep(Duration::from_millis(20));
    }
    let err = s.put("b", b"2".to_vec()).unwrap_err().to_string();
    assert!(
        err.contains("has been unreachable") && err.contains(&etcd.url),
        "{err}"
    );
    assert!(err.ends_with("nothing was changed"), "{err}");
    etcd.restart();
    // Nobody calls: the follower notices that etcd is back.
    let deadline = Instant::now() + Duration::from_secs(30);
    while !s.reachable() {
        assert!(Instant::now() < deadline, "still unreachable");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(s.put("b", b"2".to_vec()).unwrap(), 2);
}

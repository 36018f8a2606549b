//! Tests of the routing snapshot: building it, and updating it per committed change.

use super::*;
use crate::{
    model::keys,
    store::{MemoryStore, Write},
};

fn ctx() -> RoutingContext {
    RoutingContext {
        master: Arc::new(MasterKey::from_bytes(&[9u8; 32])),
        sources: Arc::new(Sources::default()),
        default_quota: None,
        client_trust: Default::default(),
    }
}

fn record(id: &str, prefix: &str) -> StoreRecord {
    StoreRecord::sample(id, prefix)
}

fn put_store(s: &MemoryStore, rec: &StoreRecord) -> u64 {
    s.put(&keys::store(&rec.id), serde_json::to_vec(rec).unwrap())
        .unwrap()
}

fn put_credential(
    s: &MemoryStore,
    ctx: &RoutingContext,
    store_id: &str,
    akid: &str,
    secret: &str,
) -> u64 {
    let key = keys::credential(store_id, akid);
    let rec = CredentialRecord {
        access_key_id: akid.into(),
        sealed_secret: ctx.master.seal(secret.as_bytes(), &key),
        created_at_ns: 0,
        origin: "test".into(),
    };
    s.put(&key, serde_json::to_vec(&rec).unwrap()).unwrap()
}

fn put_key(s: &MemoryStore, store_id: &str, ext: &str, blocked: bool) -> u64 {
    let rec = HyokKeyRecord {
        external_id: ext.into(),
        source_key: format!("src-{ext}"),
        blocked,
        aws: None,
        created_at: 0,
        allow_weak_key: false,
    };
    s.put(
        &keys::hyok_key(store_id, ext),
        serde_json::to_vec(&rec).unwrap(),
    )
    .unwrap()
}

/// Stores "a" (with one credential of `secret` and key "k1") and "b" at these prefixes.
fn two_stores(prefix_a: &str, prefix_b: &str, secret: &str) -> (MemoryStore, RoutingContext) {
    let s = MemoryStore::new();
    let c = ctx();
    put_store(&s, &record("a", prefix_a));
    put_store(&s, &record("b", prefix_b));
    put_credential(&s, &c, "a", "AKIDAAAAAAAAAAAAAAAA", secret);
    put_key(&s, "a", "k1", false);
    (s, c)
}

/// Applies every event received so far.
fn follow(
    routing: Routing,
    rx: &mut tokio::sync::broadcast::Receiver<Arc<WatchEvent>>,
    s: &MemoryStore,
    ctx: &RoutingContext,
) -> Routing {
    let mut r = routing;
    while let Ok(ev) = rx.try_recv() {
        r = r.apply(&ev, s, ctx).unwrap();
    }
    r
}

fn same_content(a: &Routing, b: &Routing) {
    assert_eq!(a.len(), b.len());
    for route in a.stores() {
        let other = b.by_id(&route.record.id).expect("store in both");
        assert_eq!(route.record, other.record);
        assert_eq!(route.base_path, other.base_path);
        let credentials = |r: &StoreRoute| {
            let mut c: Vec<_> = r
                .credentials
                .iter()
                .map(|(k, v)| (k.clone(), v.to_vec()))
                .collect();
            c.sort();
            c
        };
        assert_eq!(credentials(route), credentials(other));
        assert_eq!(*route.keys, *other.keys);
    }
}

#[test]
fn build_indexes_by_base_lb_path_and_id() {
    let (s, c) = two_stores("tenants/a", "", "secret-a");
    let r = Routing::build(&s, &c, None).unwrap();
    assert_eq!(r.len(), 2);
    let a = r.by_base("/tenants/a/kms/xks/v1").unwrap();
    assert_eq!(
        &**a.credentials.get("AKIDAAAAAAAAAAAAAAAA").unwrap(),
        b"secret-a"
    );
    assert_eq!(&*a.keys.get("k1").unwrap().source_key, "src-k1");
    assert!(r.by_base("/kms/xks/v1").is_some());
    assert!(r.by_lb_path("/tenants/a/keyhold-health").is_some());
    assert!(r.by_lb_path("/keyhold-health").is_some());
    assert!(
        a.source.is_err(),
        "no source configured: the route says why"
    );
}

#[test]
fn apply_touches_only_the_changed_store() {
    let (s, c) = two_stores("a", "b", "one");
    let mut rx = s.watch();
    let r0 = Routing::build(&s, &c, None).unwrap();
    let b0 = r0.by_id("b").unwrap().clone();
    let a0 = r0.by_id("a").unwrap().clone();

    // Add a credential to a: b untouched (same Arc), a's keys map reused.
    let rev = put_credential(&s, &c, "a", "AKIDBBBBBBBBBBBBBBBB", "two");
    let r1 = follow(r0, &mut rx, &s, &c);
    assert_eq!(r1.revision, rev);
    assert!(Arc::ptr_eq(r1.by_id("b").unwrap(), &b0));
    let a1 = r1.by_id("a").unwrap();
    assert_eq!(a1.credentials.len(), 2);
    assert!(
        Arc::ptr_eq(&a1.keys, &a0.keys),
        "keys not rebuilt for a credential change"
    );
    assert!(
        Arc::ptr_eq(&a1.metrics, &a0.metrics),
        "metrics survive updates"
    );
    assert!(
        Arc::ptr_eq(&a1.health, &a0.health),
        "health cache survives updates"
    );

    // Block a: credentials and keys reused, flag visible.
    let mut blocked = record("a", "a");
    blocked.blocked = true;
    put_store(&s, &blocked);
    let r2 = follow(r1, &mut rx, &s, &c);
    let a2 = r2.by_id("a").unwrap();
    assert!(a2.record.blocked);
    assert!(r2.by_base("/a/kms/xks/v1").unwrap().record.blocked);
    assert_eq!(a2.credentials.len(), 2);

    // Delete a credential, block a key, add a key.
    s.delete(&keys::credential("a", "AKIDAAAAAAAAAAAAAAAA"))
        .unwrap();
    put_key(&s, "a", "k1", true);
    put_key(&s, "a", "k2", false);
    let r3 = follow(r2, &mut rx, &s, &c);
    let a3 = r3.by_id("a").unwrap();
    assert!(!a3.credentials.contains_key("AKIDAAAAAAAAAAAAAAAA"));
    assert!(a3.keys.get("k1").unwrap().blocked);
    assert!(a3.keys.contains_key("k2"));

    // The incremental result equals a full rebuild.
    same_content(&r3, &Routing::build(&s, &c, None).unwrap());
}

#[test]
fn stores_appear_and_disappear() {
    let s = MemoryStore::new();
    let c = ctx();
    let mut rx = s.watch();
    let r0 = Routing::build(&s, &c, None).unwrap();
    // Credentials written before the store record (one transaction, any order).
    let cred_key = keys::credential("n", "AKIDCCCCCCCCCCCCCCCC");
    let cred = CredentialRecord {
        access_key_id: "AKIDCCCCCCCCCCCCCCCC".into(),
        sealed_secret: c.master.seal(b"s", &cred_key),
        created_at_ns: 0,
        origin: "test".into(),
    };
    s.commit(
        &[],
        vec![
            Write::Put(cred_key, serde_json::to_vec(&cred).unwrap()),
            Write::Put(
                keys::store("n"),
                serde_json::to_vec(&record("n", "new")).unwrap(),
            ),
        ],
    )
    .unwrap();
    let r1 = follow(r0, &mut rx, &s, &c);
    let n = r1.by_base("/new/kms/xks/v1").expect("new store served");
    assert_eq!(n.credentials.len(), 1);
    s.delete(&keys::store("n")).unwrap();
    let r2 = follow(r1, &mut rx, &s, &c);
    assert!(r2.by_base("/new/kms/xks/v1").is_none());
    assert!(r2.by_lb_path("/new/keyhold-health").is_none());
    assert!(r2.is_empty());
}

#[test]
fn bad_records_are_skipped_not_fatal() {
    let s = MemoryStore::new();
    let c = ctx();
    put_store(&s, &record("a", "a"));
    s.put(&keys::store("bad"), b"not json".to_vec()).unwrap();
    // A credential sealed under another master key (or moved) does not unseal.
    let other = MasterKey::from_bytes(&[1u8; 32]);
    let key = keys::credential("a", "AKIDDDDDDDDDDDDDDDDD");
    let rec = CredentialRecord {
        access_key_id: "AKIDDDDDDDDDDDDDDDDD".into(),
        sealed_secret: other.seal(b"x", &key),
        created_at_ns: 0,
        origin: "test".into(),
    };
    s.put(&key, serde_json::to_vec(&rec).unwrap()).unwrap();
    let r = Routing::build(&s, &c, None).unwrap();
    assert_eq!(r.len(), 1);
    assert!(r.by_id("a").unwrap().credentials.is_empty());
}

#[test]
fn quotas_come_from_the_store_or_the_default() {
    let s = MemoryStore::new();
    let mut c = ctx();
    c.default_quota = Some(Quota {
        rate: 10.0,
        burst: 2.0,
    });
    let mut own = record("a", "a");
    own.quota = Some(Quota {
        rate: 1.0,
        burst: 1.0,
    });
    put_store(&s, &own);
    put_store(&s, &record("b", "b"));
    let r = Routing::build(&s, &c, None).unwrap();
    assert_eq!(
        r.by_id("a").unwrap().quota.as_ref().unwrap().quota().rate,
        1.0
    );
    assert_eq!(
        r.by_id("b").unwrap().quota.as_ref().unwrap().quota().rate,
        10.0
    );
    c.default_quota = None;
    let r = Routing::build(&s, &c, None).unwrap();
    assert!(r.by_id("b").unwrap().quota.is_none());
}

/// A store whose reads fail while `failing` is set (a backend hiccup).
struct FlakyStore {
    inner: MemoryStore,
    failing: std::sync::atomic::AtomicBool,
}

impl FlakyStore {
    fn check(&self) -> Result<(), StoreError> {
        if self.failing.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(StoreError::Backend {
                backend: "test",
                message: "read failed".into(),
            });
        }
        Ok(())
    }
}

impl Store for FlakyStore {
    fn get(&self, key: &str) -> Result<Option<crate::store::Entry>, StoreError> {
        self.check()?;
        self.inner.get(key)
    }
    fn scan(&self, prefix: &str) -> Result<Vec<crate::store::Entry>, StoreError> {
        self.check()?;
        self.inner.scan(prefix)
    }
    fn commit(
        &self,
        conditions: &[crate::store::Condition],
        writes: Vec<Write>,
    ) -> Result<u64, StoreError> {
        self.inner.commit(conditions, writes)
    }
    fn revision(&self) -> Result<u64, StoreError> {
        self.inner.revision()
    }
    fn watch(&self) -> tokio::sync::broadcast::Receiver<Arc<WatchEvent>> {
        self.inner.watch()
    }
}

#[test]
fn a_failed_update_is_followed_by_a_whole_rebuild_so_no_change_is_lost() {
    let (inner, c) = two_stores("pa", "pb", "secret-a");
    let s = FlakyStore {
        inner,
        failing: false.into(),
    };
    let initial = Routing::build(&s, &c, None).unwrap();
    let base_a = model::xks_base_path("pa");
    assert_eq!(initial.by_base(&base_a).unwrap().credentials.len(), 1);
    let mut rx = s.watch();

    // The credential is deleted while reads fail: the update fails, whole rebuild too.
    s.failing.store(true, std::sync::atomic::Ordering::SeqCst);
    s.delete(&keys::credential("a", "AKIDAAAAAAAAAAAAAAAA"))
        .unwrap();
    let deleted = rx.try_recv().unwrap();
    assert!(initial.next(Some(&deleted), false, &s, &c).is_err());

    // The next event concerns the other store only. Applied on top of the stale
    // snapshot it would leave the deleted credential in force; as the update after a
    // failure it rebuilds everything.
    s.failing.store(false, std::sync::atomic::Ordering::SeqCst);
    put_key(&s.inner, "b", "kb", false);
    let unrelated = rx.try_recv().unwrap();
    let on_top = initial.apply(&unrelated, &s, &c).unwrap();
    assert_eq!(
        on_top.by_base(&base_a).unwrap().credentials.len(),
        1,
        "what applying on top would serve"
    );
    let next = initial
        .next(Some(&unrelated), true, &s, &c)
        .unwrap()
        .expect("rebuilt");
    assert!(next.by_base(&base_a).unwrap().credentials.is_empty());
    assert!(next.revision >= unrelated.revision);
    // A failure with nothing to apply (a retry) rebuilds too; an old event is a no-op.
    assert!(next.next(None, true, &s, &c).unwrap().is_some());
    assert!(next.next(Some(&deleted), false, &s, &c).unwrap().is_none());
}

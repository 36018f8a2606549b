//! The host's key-value store keeps the SDK's promises, on the real store.

use std::sync::Arc;

use keyhold_sdk::{abi_stable::std_types::ROption, testing::check_host_kv};

use super::*;
use crate::store::MemoryStore;

fn host(store: &Arc<dyn Store>, source: &str) -> HostBox {
    StoreHost::new(store.clone(), source).boxed()
}

#[test]
fn store_host_keeps_the_kv_promises() {
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    check_host_kv(&host(&store, "a")).unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn compare_and_swap_is_namespaced_and_sees_other_writers() {
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let (a, b) = (host(&store, "a"), host(&store, "b"));
    let put = |h: &HostBox, v: &[u8]| h.kv_put("k".into(), v.into()).unwrap();
    put(&a, b"one");
    // Source b has no entry "k": its own view is empty.
    assert!(
        !b.kv_compare_and_swap(
            "k".into(),
            ROption::RSome((&b"one"[..]).into()),
            ROption::RNone
        )
        .unwrap()
    );
    // A second writer of the same source (another node) changes the entry between a
    // read and a compare-and-swap: the stale swap is refused.
    let a2 = host(&store, "a");
    put(&a2, b"two");
    assert!(
        !a.kv_compare_and_swap(
            "k".into(),
            ROption::RSome((&b"one"[..]).into()),
            ROption::RSome((&b"three"[..]).into())
        )
        .unwrap()
    );
    assert_eq!(a.kv_get("k".into()).unwrap().unwrap().as_slice(), b"two");
}

/// The value `host` reads for `key`, as bytes.
fn read(h: &HostBox, key: &str) -> Option<Vec<u8>> {
    h.kv_get(key.into())
        .unwrap()
        .into_option()
        .map(|v| v.into_vec())
}

#[test]
fn reads_are_cached_and_every_commit_to_the_namespace_refreshes_them() {
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let plain = StoreHost::new(store.clone(), "a");
    let a = plain.clone().boxed();
    // Absence is cached too.
    assert_eq!(read(&a, "disabled/k"), None);
    assert_eq!(plain.cache.get().map(|c| c.len()), Some(1));
    assert_eq!(read(&a, "disabled/k"), None);
    // Another writer of the namespace (another node's host) sets it: seen at once.
    let a2 = host(&store, "a");
    a2.kv_put("disabled/k".into(), (&b"1"[..]).into()).unwrap();
    assert_eq!(read(&a, "disabled/k"), Some(b"1".to_vec()));
    // A commit straight into the store (not through any host), then a deletion.
    let full = format!("{}disabled/k", crate::model::keys::plugin_namespace("a"));
    store.put(&full, b"2".to_vec()).unwrap();
    assert_eq!(read(&a, "disabled/k"), Some(b"2".to_vec()));
    assert!(store.delete(&full).unwrap());
    assert_eq!(read(&a, "disabled/k"), None);
    // Writes through the host itself, each read back at once.
    a.kv_put("disabled/k".into(), (&b"3"[..]).into()).unwrap();
    assert_eq!(read(&a, "disabled/k"), Some(b"3".to_vec()));
    assert!(
        a.kv_compare_and_swap(
            "disabled/k".into(),
            ROption::RSome((&b"3"[..]).into()),
            ROption::RSome((&b"4"[..]).into())
        )
        .unwrap()
    );
    assert_eq!(read(&a, "disabled/k"), Some(b"4".to_vec()));
    assert!(a.kv_delete("disabled/k".into()).unwrap());
    assert_eq!(read(&a, "disabled/k"), None);
    assert!(
        a.kv_create("disabled/k".into(), (&b"5"[..]).into())
            .unwrap()
    );
    assert_eq!(read(&a, "disabled/k"), Some(b"5".to_vec()));
    // Another source's namespace is not this cache's business, nor visible.
    assert_eq!(read(&host(&store, "b"), "disabled/k"), None);
}

#[test]
fn a_cache_that_fell_behind_the_feed_starts_afresh() {
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let a = host(&store, "a");
    assert_eq!(read(&a, "flag"), None);
    // More transactions than the feed buffers, while the cache reads nothing: it lags.
    let full = format!("{}flag", crate::model::keys::plugin_namespace("a"));
    for i in 0..(crate::store::WATCH_CAPACITY + 10) {
        store.put(&full, i.to_string().into_bytes()).unwrap();
    }
    let last = (crate::store::WATCH_CAPACITY + 9).to_string().into_bytes();
    assert_eq!(read(&a, "flag"), Some(last.clone()));
    assert_eq!(read(&a, "flag"), Some(last));
}

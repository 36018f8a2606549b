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

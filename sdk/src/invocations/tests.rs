//! Tests of the invocation counter on an in-memory host.

use super::*;
use crate::testing::MemoryHost;

fn stored(host: &MemoryHost, name: &str) -> Option<u64> {
    host.entries()
        .get(&kv_key(name))
        .map(|v| Reserved::from_bytes(v).unwrap().reserved)
}

#[test]
fn reserves_a_block_before_using_it() {
    let host = MemoryHost::new();
    let boxed = host.boxed();
    let counter = InvocationCounter::new();
    assert_eq!(counter.count(&boxed, "k"), 0);
    assert_eq!(counter.take(&boxed, "k").unwrap(), 0);
    assert_eq!(stored(&host, "k"), Some(BLOCK));
    for i in 1..10 {
        assert_eq!(counter.take(&boxed, "k").unwrap(), i);
    }
    assert_eq!(counter.count(&boxed, "k"), 10);
    assert_eq!(stored(&host, "k"), Some(BLOCK), "one write per block");
    // A restart (a new counter) never reuses a reserved number.
    let restarted = InvocationCounter::new();
    assert_eq!(restarted.count(&boxed, "k"), BLOCK);
    assert_eq!(restarted.take(&boxed, "k").unwrap(), BLOCK);
    assert_eq!(stored(&host, "k"), Some(2 * BLOCK));
}

#[test]
fn two_nodes_reserve_disjoint_blocks() {
    let host = MemoryHost::new();
    let boxed = host.boxed();
    let (a, b) = (InvocationCounter::new(), InvocationCounter::new());
    assert_eq!(a.take(&boxed, "k").unwrap(), 0);
    assert_eq!(b.take(&boxed, "k").unwrap(), BLOCK);
    assert_eq!(a.take(&boxed, "k").unwrap(), 1);
    assert_eq!(stored(&host, "k"), Some(2 * BLOCK));
}

#[test]
fn refuses_at_the_limit_and_warns_past_half() {
    let host = MemoryHost::new();
    let boxed = host.boxed();
    host.set_entry(
        &kv_key("k"),
        Reserved {
            reserved: LIMIT - 2,
        }
        .to_bytes(),
    );
    let counter = InvocationCounter::new();
    assert_eq!(counter.take(&boxed, "k").unwrap(), LIMIT - 2);
    assert_eq!(counter.take(&boxed, "k").unwrap(), LIMIT - 1);
    let err = counter.take(&boxed, "k").unwrap_err();
    assert!(matches!(err, KeySourceError::Disabled { .. }), "{err:?}");
    let text = err.to_string();
    assert!(
        text.contains("rotate") && text.contains("4294967296"),
        "{text}"
    );
    let logs = host.logs();
    assert!(
        logs.iter()
            .any(|(l, m)| *l == LogLevel::Warn && m.contains("rotate"))
    );
    assert!(
        logs.iter()
            .any(|(l, m)| *l == LogLevel::Error && m.contains("rotate"))
    );
    // Refused again, logged once.
    assert!(counter.take(&boxed, "k").is_err());
    let errors = host
        .logs()
        .iter()
        .filter(|(l, _)| *l == LogLevel::Error)
        .count();
    assert_eq!(errors, 1);
    // Other keys are unaffected.
    assert_eq!(counter.take(&boxed, "other").unwrap(), 0);
}

#[test]
fn no_warning_below_half() {
    let host = MemoryHost::new();
    let boxed = host.boxed();
    host.set_entry(
        &kv_key("k"),
        Reserved {
            reserved: WARN_AT - BLOCK,
        }
        .to_bytes(),
    );
    let counter = InvocationCounter::new();
    counter.take(&boxed, "k").unwrap();
    assert!(host.logs().is_empty(), "{:?}", host.logs());
    host.set_entry(
        &kv_key("j"),
        Reserved {
            reserved: WARN_AT - 1,
        }
        .to_bytes(),
    );
    counter.take(&boxed, "j").unwrap();
    assert_eq!(host.logs().len(), 1);
}

#[test]
fn forget_starts_a_key_again_from_zero() {
    let host = MemoryHost::new();
    let boxed = host.boxed();
    let counter = InvocationCounter::new();
    counter.take(&boxed, "k").unwrap();
    counter.forget(&boxed, "k").unwrap();
    assert_eq!(stored(&host, "k"), None);
    assert_eq!(counter.take(&boxed, "k").unwrap(), 0);
}

#[test]
fn a_malformed_counter_is_an_internal_error() {
    let host = MemoryHost::new();
    host.set_entry(&kv_key("k"), b"lots".to_vec());
    let err = InvocationCounter::new()
        .take(&host.boxed(), "k")
        .unwrap_err();
    assert!(matches!(err, KeySourceError::Internal { .. }));
}

/// A host whose store can be switched off (etcd down): every KV call then fails.
#[derive(Clone, Default)]
struct FlakyHost {
    inner: MemoryHost,
    down: std::sync::Arc<std::sync::atomic::AtomicBool>,
    calls_while_down: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl FlakyHost {
    fn set_down(&self, down: bool) {
        self.down.store(down, std::sync::atomic::Ordering::SeqCst);
    }

    fn refuse<T>(&self) -> Option<abi_stable::std_types::RResult<T, KeySourceError>> {
        if !self.down.load(std::sync::atomic::Ordering::SeqCst) {
            return None;
        }
        self.calls_while_down
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Some(abi_stable::std_types::RResult::RErr(
            KeySourceError::unavailable("host store: etcd is unreachable"),
        ))
    }

    fn boxed(&self) -> HostBox {
        crate::Host_TO::from_value(self.clone(), abi_stable::sabi_trait::TD_Opaque)
    }
}

impl crate::Host for FlakyHost {
    fn kv_get(
        &self,
        key: abi_stable::std_types::RStr<'_>,
    ) -> abi_stable::std_types::RResult<ROption<abi_stable::std_types::RVec<u8>>, KeySourceError>
    {
        self.refuse().unwrap_or_else(|| self.inner.kv_get(key))
    }
    fn kv_put(
        &self,
        key: abi_stable::std_types::RStr<'_>,
        value: RSlice<'_, u8>,
    ) -> abi_stable::std_types::RResult<(), KeySourceError> {
        self.refuse()
            .unwrap_or_else(|| self.inner.kv_put(key, value))
    }
    fn kv_create(
        &self,
        key: abi_stable::std_types::RStr<'_>,
        value: RSlice<'_, u8>,
    ) -> abi_stable::std_types::RResult<bool, KeySourceError> {
        self.refuse()
            .unwrap_or_else(|| self.inner.kv_create(key, value))
    }
    fn kv_compare_and_swap(
        &self,
        key: abi_stable::std_types::RStr<'_>,
        expected: ROption<RSlice<'_, u8>>,
        new: ROption<RSlice<'_, u8>>,
    ) -> abi_stable::std_types::RResult<bool, KeySourceError> {
        self.refuse()
            .unwrap_or_else(|| self.inner.kv_compare_and_swap(key, expected, new))
    }
    fn kv_delete(
        &self,
        key: abi_stable::std_types::RStr<'_>,
    ) -> abi_stable::std_types::RResult<bool, KeySourceError> {
        self.refuse().unwrap_or_else(|| self.inner.kv_delete(key))
    }
    fn kv_list(
        &self,
        prefix: abi_stable::std_types::RStr<'_>,
    ) -> abi_stable::std_types::RResult<abi_stable::std_types::RVec<crate::KvEntry>, KeySourceError>
    {
        self.refuse().unwrap_or_else(|| self.inner.kv_list(prefix))
    }
    fn log(&self, level: LogLevel, message: abi_stable::std_types::RStr<'_>) {
        self.inner.log(level, message)
    }
}

#[test]
fn blocks_reserved_ahead_keep_encryption_going_while_the_store_is_down() {
    let host = FlakyHost::default();
    let boxed = host.boxed();
    let counter = InvocationCounter::new();
    // Half of the first block: the second is reserved ahead.
    for i in 0..BLOCK / 2 {
        assert_eq!(counter.take(&boxed, "k").unwrap(), i);
    }
    assert_eq!(stored(&host.inner, "k"), Some(2 * BLOCK));
    host.set_down(true);
    // The rest of the block and the whole spare need no store.
    for i in BLOCK / 2..2 * BLOCK {
        assert_eq!(counter.take(&boxed, "k").unwrap(), i);
    }
    let err = counter.take(&boxed, "k").unwrap_err();
    assert!(matches!(err, KeySourceError::Unavailable { .. }), "{err:?}");
    // Back: reserving resumes where the store says.
    host.set_down(false);
    assert_eq!(counter.take(&boxed, "k").unwrap(), 2 * BLOCK);
}

#[test]
fn a_failed_reservation_ahead_costs_no_encryption_and_is_retried_sparingly() {
    let host = FlakyHost::default();
    let boxed = host.boxed();
    let counter = InvocationCounter::new();
    counter.take(&boxed, "k").unwrap();
    host.set_down(true);
    // Reaching half of the block tries to reserve ahead: it fails, encryption goes on,
    // and it is not tried again on every encryption.
    for i in 1..BLOCK {
        assert_eq!(counter.take(&boxed, "k").unwrap(), i);
    }
    let tries = host
        .calls_while_down
        .load(std::sync::atomic::Ordering::SeqCst);
    // Once per AHEAD_RETRY (one second), not on each of the 32768 encryptions.
    assert!(
        (1..1000).contains(&tries),
        "{tries} reservations tried while down"
    );
    assert!(counter.take(&boxed, "k").is_err(), "the block is used up");
    host.set_down(false);
    assert_eq!(counter.take(&boxed, "k").unwrap(), BLOCK);
}

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

//! 16 threads x 100 encrypt/decrypt round trips through a pool of 4 sessions, and a
//! bounded wait (Timeout) when the pool is exhausted.

use std::time::Instant;

use keyhold_sdk::{
    DecryptInput, KeySourceError, KeySourceImpl, KeyUsage, NewKey, abi_stable::std_types::RSlice,
    testing::MemoryHost,
};
use keyhold_testkit::luna::LunaToken;
use plugin_luna::LunaSource;

/// A source on a fresh token `label` (`pool_size` sessions, `op_timeout_ms`), with key
/// `key`.
fn source_with_key(label: &str, pool_size: usize, op_timeout_ms: u64, key: &str) -> LunaSource {
    let token = LunaToken::labelled(label);
    let config = serde_json::json!({"pool_size": pool_size, "op_timeout_ms": op_timeout_ms});
    let source = LunaSource::open(&token.config(config), MemoryHost::new().boxed()).unwrap();
    source.create_key(NewKey::new(key, KeyUsage::ALL)).unwrap();
    source
}

#[test]
fn sixteen_threads_share_four_sessions() {
    // A generous wait bound: the machine running the tests may be busy.
    let source = source_with_key("concurrency", 4, 30000, "c");
    std::thread::scope(|scope| {
        for t in 0..16u8 {
            let source = &source;
            scope.spawn(move || {
                for i in 0..100u32 {
                    let mut pt = vec![t; 1 + (i as usize % 100)];
                    pt.extend_from_slice(&i.to_le_bytes());
                    let aad = [t, i as u8, 7];
                    let e = source.encrypt("c", &pt, &aad).unwrap();
                    let back = source
                        .decrypt(
                            "c",
                            DecryptInput {
                                iv: RSlice::from_slice(&e.iv),
                                ciphertext: RSlice::from_slice(&e.ciphertext),
                                tag: RSlice::from_slice(&e.tag),
                                aad: RSlice::from_slice(&aad),
                            },
                        )
                        .unwrap();
                    assert_eq!(back, pt, "thread {t} round {i}");
                }
            });
        }
    });
}

#[test]
fn exhausted_pool_times_out() {
    let source = source_with_key("exhaust", 2, 100, "x");
    let a = source.pool().acquire().ok().unwrap();
    let b = source.pool().acquire().ok().unwrap();
    let start = Instant::now();
    let err = source.encrypt("x", b"p", b"").unwrap_err();
    assert!(matches!(err, KeySourceError::Timeout { .. }), "{err}");
    assert_eq!(err.kind(), keyhold_sdk::KeySourceErrorKind::Timeout);
    assert!(start.elapsed().as_millis() >= 100);
    assert_eq!(
        source.health()[0].status,
        keyhold_sdk::HealthStatus::Degraded,
        "health answers (without error) while the pool is exhausted"
    );
    drop(a);
    source.encrypt("x", b"p", b"").unwrap();
    drop(b);
}

//! 16 threads x 100 encrypt/decrypt round trips through a pool of 4 sessions, and a
//! bounded wait (Timeout) when the pool is exhausted.

mod common;

use std::time::Instant;

use keyhold_sdk::{
    DecryptInput, KeySourceError, KeySourceImpl, KeyUsage, NewKey, abi_stable::std_types::RSlice,
    testing::MemoryHost,
};
use plugin_luna::LunaSource;

#[test]
fn sixteen_threads_share_four_sessions() {
    common::new_token("concurrency");
    // A generous wait bound: the machine running the tests may be busy.
    let source = LunaSource::open(
        &common::config(
            "concurrency",
            serde_json::json!({"pool_size": 4, "op_timeout_ms": 30000}),
        ),
        MemoryHost::new().boxed(),
    )
    .unwrap();
    source.create_key(NewKey::new("c", KeyUsage::ALL)).unwrap();
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
    common::new_token("exhaust");
    let source = LunaSource::open(
        &common::config(
            "exhaust",
            serde_json::json!({"pool_size": 2, "op_timeout_ms": 100}),
        ),
        MemoryHost::new().boxed(),
    )
    .unwrap();
    source.create_key(NewKey::new("x", KeyUsage::ALL)).unwrap();
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

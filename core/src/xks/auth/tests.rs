//! Tests of request authentication's signing-key cache (signature checks are tested
//! in `sigv4` and end to end).

use super::*;

#[test]
fn signing_key_cache_is_bounded() {
    let cache = SigningKeyCache::default();
    let scope = |i: usize| {
        (
            "AKID".to_string(),
            format!("2026{i:04}"),
            "us-east-1".to_string(),
        )
    };
    assert!(cache.get(&scope(0)).is_none());
    cache.insert(scope(0), [7u8; 32]);
    assert_eq!(cache.get(&scope(0)), Some([7u8; 32]));
    for i in 1..=SigningKeyCache::CAPACITY {
        cache.insert(scope(i), [i as u8; 32]);
    }
    // Full: emptied, then the newest entry kept.
    assert!(cache.get(&scope(0)).is_none());
    assert_eq!(
        cache.get(&scope(SigningKeyCache::CAPACITY)),
        Some([SigningKeyCache::CAPACITY as u8; 32])
    );
}

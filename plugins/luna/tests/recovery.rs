//! Recovery without re-opening the plugin: sessions logged out underneath, token
//! re-initialised underneath (keys gone), health always answering.

use keyhold_sdk::{
    HealthStatus, KeySourceError, KeySourceImpl, KeyUsage, NewKey, testing::MemoryHost,
};
use keyhold_testkit::luna::{LunaToken, round_trip};
use plugin_luna::LunaSource;

/// A fresh token `label`, a source on it with `pool_size` sessions, and key `k` on it
/// (one round trip done).
fn token_with_key(label: &str, pool_size: usize) -> (LunaToken, LunaSource) {
    let token = LunaToken::labelled(label);
    let source = LunaSource::open(
        &token.config(serde_json::json!({ "pool_size": pool_size })),
        MemoryHost::new().boxed(),
    )
    .unwrap();
    source.create_key(NewKey::new("k", KeyUsage::ALL)).unwrap();
    round_trip(&source, "k").unwrap();
    (token, source)
}

#[test]
fn logged_out_underneath_recovers_transparently() {
    let (token, source) = token_with_key("logout", 3);

    // C_Logout from another session of this process logs every session out.
    token.logout_underneath();

    // The next request succeeds after a transparent re-open and re-login.
    round_trip(&source, "k").unwrap();
    assert_eq!(source.health()[0].status, HealthStatus::Active);
    for _ in 0..5 {
        round_trip(&source, "k").unwrap();
    }
}

#[test]
fn token_reinitialised_underneath_means_not_found_then_works_again() {
    let (token, source) = token_with_key("reinit", 2);
    let serial = source.health()[0].id.clone();

    // Re-initialise the token from another process (softhsm2-util), while the plugin
    // holds open, logged-in sessions and a cached handle.
    token.reinit_from_another_process();

    // The keys are gone: NotFound (or a clean error first), never a wrong answer.
    let mut saw_not_found = false;
    for _ in 0..3 {
        match source.encrypt("k", b"x", b"") {
            Err(KeySourceError::NotFound { .. }) => {
                saw_not_found = true;
                break;
            }
            Err(KeySourceError::Unavailable { .. } | KeySourceError::Internal { .. }) => {}
            other => panic!("after re-init: {other:?}"),
        }
    }
    assert!(
        saw_not_found,
        "a key of the re-initialised token is NotFound"
    );
    let health = source.health();
    assert_eq!(health.len(), 1);
    assert_eq!(health[0].id, serial);

    // New keys work on the re-initialised token without re-opening the plugin.
    source.create_key(NewKey::new("k2", KeyUsage::ALL)).unwrap();
    round_trip(&source, "k2").unwrap();
}

#[test]
fn token_gone_is_unavailable_and_recovers_when_back() {
    let (token, source) = token_with_key("vanishing-token", 2);
    let serial = source.health()[0].id.clone();

    // The token disappears (its store is moved away, like an unplugged partition).
    let dir = token.store_dir();
    let away = dir.with_extension("away");
    std::fs::rename(&dir, &away).unwrap();
    let health = source.health();
    assert_eq!(health[0].status, HealthStatus::Unavailable, "{health:?}");
    assert_eq!(health[0].id, serial, "health still names the token");
    let err = source.encrypt("k", b"x", b"").unwrap_err();
    eprintln!("encrypt while the token is gone: {err:?}");
    assert!(
        matches!(
            err,
            KeySourceError::Unavailable { .. } | KeySourceError::NotFound { .. }
        ),
        "{err:?}"
    );

    // The token store is back. SoftHSM2 (2.6.1) does not show a token again once it
    // saw it vanish: its slot list is built at C_Initialize, so within this process the
    // token stays gone. The source keeps answering cleanly (no panic, no error from
    // health); with Luna, a partition that comes back is found again by label on the
    // next request (the slot is re-found each time the pool is invalidated).
    std::fs::rename(&away, &dir).unwrap();
    for _ in 0..3 {
        match round_trip(&source, "k") {
            Ok(()) | Err(KeySourceError::Unavailable { .. }) => {}
            Err(other) => panic!("after the token came back: {other:?}"),
        }
    }
    assert_eq!(source.health().len(), 1);
}

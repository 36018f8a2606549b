//! Recovery without re-opening the plugin: sessions logged out underneath, token
//! re-initialised underneath (keys gone), health always answering.

mod common;

use keyhold_sdk::{
    DecryptInput, HealthStatus, KeySourceError, KeySourceImpl, KeyUsage, NewKey,
    abi_stable::std_types::RSlice, testing::MemoryHost,
};
use plugin_luna::{LunaSource, pkcs11::find_slot};

fn round_trip(source: &LunaSource, key: &str) -> Result<(), KeySourceError> {
    let e = source.encrypt(key, b"payload", b"aad")?;
    let pt = source.decrypt(
        key,
        DecryptInput {
            iv: RSlice::from_slice(&e.iv),
            ciphertext: RSlice::from_slice(&e.ciphertext),
            tag: RSlice::from_slice(&e.tag),
            aad: RSlice::from_slice(b"aad"),
        },
    )?;
    assert_eq!(pt, b"payload");
    Ok(())
}

#[test]
fn logged_out_underneath_recovers_transparently() {
    common::new_token("logout");
    let source = LunaSource::open(
        &common::config("logout", serde_json::json!({"pool_size": 3})),
        MemoryHost::new().boxed(),
    )
    .unwrap();
    source.create_key(NewKey::new("k", KeyUsage::ALL)).unwrap();
    round_trip(&source, "k").unwrap();

    // C_Logout from another session of this process logs every session out.
    let ctx = common::ctx();
    let (slot, _) = find_slot(&ctx, "logout").unwrap().unwrap();
    let session = ctx.open_rw_session(slot).unwrap();
    session.logout().unwrap();
    drop(session);

    // The next request succeeds after a transparent re-open and re-login.
    round_trip(&source, "k").unwrap();
    assert_eq!(source.health()[0].status, HealthStatus::Active);
    for _ in 0..5 {
        round_trip(&source, "k").unwrap();
    }
}

#[test]
fn token_reinitialised_underneath_means_not_found_then_works_again() {
    common::new_token("reinit");
    let source = LunaSource::open(
        &common::config("reinit", serde_json::json!({"pool_size": 2})),
        MemoryHost::new().boxed(),
    )
    .unwrap();
    source.create_key(NewKey::new("k", KeyUsage::ALL)).unwrap();
    round_trip(&source, "k").unwrap();
    let serial = source.health()[0].id.clone();

    // Re-initialise the token from another process (softhsm2-util), while the plugin
    // holds open, logged-in sessions and a cached handle.
    let env = common::env();
    let out = std::process::Command::new("softhsm2-util")
        .env("SOFTHSM2_CONF", &env.conf)
        .args([
            "--init-token",
            "--token",
            "reinit",
            "--label",
            "reinit",
            "--so-pin",
            common::SO_PIN,
            "--pin",
            common::USER_PIN,
        ])
        .output()
        .expect("softhsm2-util runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

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

/// The token directory (SoftHSM2 file backend) of the token labelled `label`.
fn token_dir(label: &str) -> std::path::PathBuf {
    let tokens = common::env().dir.join("tokens");
    let padded = format!("{label:<32}");
    std::fs::read_dir(&tokens)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|dir| {
            std::fs::read(dir.join("token.object"))
                .map(|b| b.windows(32).any(|w| w == padded.as_bytes()))
                .unwrap_or(false)
        })
        .expect("the token's directory")
}

#[test]
fn token_gone_is_unavailable_and_recovers_when_back() {
    common::new_token("vanishing-token");
    let source = LunaSource::open(
        &common::config("vanishing-token", serde_json::json!({"pool_size": 2})),
        MemoryHost::new().boxed(),
    )
    .unwrap();
    source.create_key(NewKey::new("k", KeyUsage::ALL)).unwrap();
    round_trip(&source, "k").unwrap();
    let serial = source.health()[0].id.clone();

    // The token disappears (its store is moved away, like an unplugged partition).
    let dir = token_dir("vanishing-token");
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

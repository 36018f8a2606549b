//! The XKS end-to-end suite over a luna (PKCS#11) key store on SoftHSM2: the same test
//! bodies the ctm store passes (keyhold_tests::suite), plus what only a token can show:
//! health details from the token, recovery from sessions logged out and a token
//! re-initialised underneath the running server, and sources that cannot open.
//!
//! Each test gets a fresh token (keyhold_tests::luna): the server's reconcile creates the
//! health-check key and the four demo keys on it through the plugin.

use std::time::Duration;

use keyhold_sdk::{KeySourceImpl, KeyUsage, NewKey, testing::MemoryHost};
use keyhold_tests::{
    RawRequest, Reply, Sealed, SourceFixture, TestServer, XksClient,
    fixture::{HEALTH_KEY, KEY_ALL, KEY_ENCRYPT_ONLY, LB_HEALTH},
    luna::{self, LunaToken},
};

keyhold_tests::xks_suite!(SourceFixture::luna(); operations);
keyhold_tests::xks_suite!(SourceFixture::luna(); errors);
keyhold_tests::xks_suite!(
    SourceFixture::luna();
    aws_sigv4_signed_requests_verify_with_both_credentials,
);

#[tokio::test(flavor = "multi_thread")]
async fn health_names_the_token_serial_and_model() {
    let token = LunaToken::new();
    let server = TestServer::builder().source(token.source()).start().await;
    assert!(server.running.failed_sources.is_empty());
    let h = server.client().health().await.ok_json();
    let fleet = h["ekmFleetDetails"].as_array().expect("fleet details");
    assert_eq!(fleet.len(), 1, "one token, one node: {h}");
    assert_eq!(fleet[0]["id"], token.serial().as_str(), "{h}");
    let model = fleet[0]["model"].as_str().expect("model");
    assert!(model.contains(&token.model()), "{model}");
    assert!(model.contains(&token.label), "{model}");
    assert_eq!(fleet[0]["healthStatus"], "ACTIVE", "{h}");
    assert!(
        h["ekmVendor"].as_str().expect("vendor").contains("SoftHSM"),
        "{h}"
    );
    server.stop().await;
}

/// A round trip that must succeed.
async fn round_trip(c: &XksClient, what: &str) {
    let plaintext = format!("recovery {what}").into_bytes();
    let sealed = c.encrypt_ok(KEY_ALL, &plaintext, Some(b"aad")).await;
    assert_eq!(
        c.decrypt_ok(KEY_ALL, &sealed, Some(b"aad")).await,
        plaintext,
        "{what}"
    );
}

/// Asserts a reply is either 200 or a clean XKS JSON error; true on 200.
fn ok_or_clean_error(reply: &Reply) -> bool {
    if reply.status.as_u16() == 200 {
        return true;
    }
    let name = reply.json()["errorName"]
        .as_str()
        .unwrap_or_else(|| panic!("not an XKS error: {reply:?}"))
        .to_string();
    reply.assert_error(reply.status.as_u16(), &name);
    false
}

/// A server on a fresh token (health cached for 1 s), a round trip done, and
/// `plaintext` sealed under the all-usage key.
async fn serving_token(plaintext: &[u8]) -> (LunaToken, TestServer, Sealed) {
    let token = LunaToken::new();
    let server = TestServer::builder()
        .source(token.source())
        .xks_line("health_cache_seconds = 1")
        .start()
        .await;
    let c = server.client();
    let before = c.encrypt_ok(KEY_ALL, plaintext, None).await;
    round_trip(&c, "before").await;
    (token, server, before)
}

/// Whether an encryption succeeds within five attempts (the others being clean XKS
/// errors).
async fn recovers(c: &XksClient, plaintext: &[u8]) -> bool {
    for _ in 0..5 {
        let reply = c.encrypt(KEY_ALL, plaintext, None, false).await;
        if ok_or_clean_error(&reply) {
            return true;
        }
    }
    false
}

#[tokio::test(flavor = "multi_thread")]
async fn sessions_logged_out_underneath_recover_without_restart() {
    let (token, server, before) = serving_token(b"sealed before the logout").await;
    let c = server.client();

    // C_Logout from another session of the server's process: every pooled session of
    // the plugin is logged out underneath it.
    token.logout_underneath();

    // The next requests answer 200 (transparent re-login) or, at worst, a clean XKS
    // error; within a few attempts they succeed, and then keep succeeding.
    assert!(
        recovers(&c, b"after the logout").await,
        "requests succeed again after a logout underneath"
    );
    for i in 0..5 {
        round_trip(&c, &format!("after logout {i}")).await;
    }
    assert_eq!(
        c.decrypt_ok(KEY_ALL, &before, None).await,
        b"sealed before the logout"
    );
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let h = c.health().await.ok_json();
    assert_eq!(h["ekmFleetDetails"][0]["healthStatus"], "ACTIVE", "{h}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn token_reinitialised_underneath_is_key_not_found_then_works_again() {
    let (token, server, before) = serving_token(b"sealed before the re-init").await;
    let c = server.client();

    // Re-initialise the token from another process while the server holds logged-in
    // sessions and cached key handles: every key is destroyed.
    token.reinit_from_another_process();

    // The key is gone: KeyNotFoundException (possibly after a clean error while the
    // plugin re-opens its sessions), never a wrong answer or a hang.
    let mut saw_not_found = false;
    for _ in 0..5 {
        let reply = c.encrypt(KEY_ALL, b"after the re-init", None, false).await;
        assert_ne!(reply.status.as_u16(), 200, "the key was destroyed");
        ok_or_clean_error(&reply);
        if reply.json()["errorName"] == "KeyNotFoundException" {
            reply.assert_error(404, "KeyNotFoundException");
            saw_not_found = true;
            break;
        }
    }
    assert!(saw_not_found, "a destroyed key is KeyNotFoundException");
    c.decrypt(KEY_ALL, &before, None)
        .await
        .assert_error(404, "KeyNotFoundException");
    c.metadata(KEY_ALL)
        .await
        .assert_error(404, "KeyNotFoundException");
    // Health keeps answering (the health-check key is gone too).
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let h = c.health().await.ok_json();
    assert_eq!(
        h["ekmFleetDetails"][0]["healthStatus"], "UNAVAILABLE",
        "{h}"
    );
    assert_eq!(h["ekmFleetDetails"][0]["id"], token.serial().as_str());
    let lb = c.send(&RawRequest::new("GET", LB_HEALTH, "")).await;
    assert_eq!(lb.status.as_u16(), 503);

    // An administrator re-creates the keys on the token (through the plugin, in this
    // process): the running server finds them by label, without a restart.
    let admin = plugin_luna::LunaSource::open(
        &token.config(serde_json::json!({})),
        MemoryHost::new().boxed(),
    )
    .expect("admin opens the token");
    for (name, usage) in [(HEALTH_KEY, KeyUsage::ALL), (KEY_ALL, KeyUsage::ALL)] {
        admin
            .create_key(NewKey::new(name, usage))
            .expect("re-create key");
    }
    assert!(recovers(&c, b"x").await, "the re-created key serves again");
    round_trip(&c, "after re-creation").await;
    // Old ciphertexts were under the destroyed key: they do not decrypt (cleanly).
    c.decrypt(KEY_ALL, &before, None)
        .await
        .assert_error(400, "InvalidCiphertextException");
    // Keys that were not re-created stay not found.
    c.encrypt(KEY_ENCRYPT_ONLY, b"x", None, false)
        .await
        .assert_error(404, "KeyNotFoundException");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let h = c.health().await.ok_json();
    assert_eq!(h["ekmFleetDetails"][0]["healthStatus"], "ACTIVE", "{h}");
    let lb = c.send(&RawRequest::new("GET", LB_HEALTH, "")).await;
    assert_eq!(lb.status.as_u16(), 200);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn wrong_pin_unknown_label_and_missing_module_fail_the_source_not_the_server() {
    let env = luna::env();
    let token = LunaToken::new();
    let wrong_pin = "wrong-pin-424242";
    let wrong_pin_file = env.dir.join(format!("wrong-{}.pin", token.label));
    std::fs::write(&wrong_pin_file, format!("{wrong_pin}\n")).expect("PIN file");
    let unknown_label = format!("{}-missing", token.label);
    let missing_module = env.dir.join("no-such-pkcs11-module.so");
    // A first start with the right PIN creates the store and its keys; on a fresh data
    // directory a store whose source cannot open is skipped altogether (not served).
    let server = TestServer::builder().source(token.source()).start().await;
    let sealed = server.client().encrypt_ok(KEY_ALL, b"x", None).await;
    let dir = server.stop().await;

    let server = TestServer::builder()
        .in_dir(dir)
        .source(luna::luna_source(
            "luna",
            &luna::plugin_module(),
            &token.label,
            &wrong_pin_file,
            "",
        ))
        .extra_source(luna::luna_source(
            "luna-unknown",
            &luna::plugin_module(),
            &unknown_label,
            &env.pin_file,
            "",
        ))
        .extra_source(luna::luna_source(
            "luna-no-module",
            &missing_module.to_string_lossy(),
            &token.label,
            &env.pin_file,
            "",
        ))
        .start()
        .await;
    let failed = &server.running.failed_sources;
    println!("failed sources: {failed:#?}");
    assert_eq!(failed.len(), 3, "{failed:?}");
    let reason = |name: &str| -> String {
        failed
            .iter()
            .find(|(n, _)| n == name)
            .unwrap_or_else(|| panic!("{name} in failed_sources: {failed:?}"))
            .1
            .clone()
    };
    let r = reason("luna");
    assert!(r.contains(&token.label) && r.contains("PIN"), "{r}");
    assert!(!r.contains(wrong_pin) && !r.contains(luna::USER_PIN), "{r}");
    let r = reason("luna-unknown");
    assert!(r.contains(&unknown_label), "{r}");
    let r = reason("luna-no-module");
    assert!(r.contains(&*missing_module.to_string_lossy()), "{r}");
    for (_, r) in failed {
        assert!(!r.contains(luna::USER_PIN) && !r.contains(wrong_pin), "{r}");
    }

    let c = server.client();
    c.assert_key_ops_fail(KEY_ALL, &sealed, 500, "InternalException")
        .await;
    let h = c.health().await.ok_json();
    let fleet = h["ekmFleetDetails"].as_array().expect("fleet");
    assert!(
        fleet.iter().all(|n| n["healthStatus"] == "UNAVAILABLE"),
        "{h}"
    );
    let lb = c.send(&RawRequest::new("GET", LB_HEALTH, "")).await;
    assert_eq!(lb.status.as_u16(), 503);
    let dir = server.stop().await;

    // The right PIN again: the same data directory serves, the old ciphertext decrypts.
    let server = TestServer::builder()
        .in_dir(dir)
        .source(token.source())
        .start()
        .await;
    assert!(server.running.failed_sources.is_empty());
    assert_eq!(
        server.client().decrypt_ok(KEY_ALL, &sealed, None).await,
        b"x"
    );
    server.stop().await;
}

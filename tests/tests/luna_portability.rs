//! A keyhold server on a PKCS#11 v2.20 module (the test-only shim over SoftHSM2,
//! `tests/pkcs11-shim`: no CKA_DESTROYABLE, token information cryptoki cannot parse):
//! the store's keys are created and served; a source on a token without AES-GCM fails
//! to open, naming the mechanism, and leaves the server running.

use std::path::PathBuf;

use keyhold_sdk::testing::built_cdylib;
use keyhold_tests::{
    TestServer,
    fixture::KEY_ALL,
    luna::{self, LunaToken},
};

/// The shim library copied under a name holding `flavour` (`plain`, `nogcm`): each
/// copy is its own module instance.
fn shim(flavour: &str, tag: &str) -> PathBuf {
    let env = luna::env();
    let copy = env.dir.join(format!("libshim-{flavour}-{tag}.so"));
    std::fs::copy(built_cdylib("libkeyhold_pkcs11_shim.so"), &copy).expect("copy the shim");
    copy
}

#[tokio::test(flavor = "multi_thread")]
async fn a_v2_20_module_serves_a_store_and_a_token_without_gcm_fails_its_source() {
    let env = luna::env();
    let token = LunaToken::new();
    let no_gcm = LunaToken::new();
    let plain = shim("plain", &token.label);
    let nogcm = shim("nogcm", &no_gcm.label);
    let server = TestServer::builder()
        .source(luna::luna_source(
            "luna",
            &plain.to_string_lossy(),
            &token.label,
            &env.pin_file,
            "",
        ))
        .extra_source(luna::luna_source(
            "luna-nogcm",
            &nogcm.to_string_lossy(),
            &no_gcm.label,
            &env.pin_file,
            "",
        ))
        .start()
        .await;
    let failed = &server.running.failed_sources;
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert_eq!(failed[0].0, "luna-nogcm");
    assert!(failed[0].1.contains("CKM_AES_GCM"), "{failed:?}");

    // The reconcile created the store's keys without CKA_DESTROYABLE; they serve.
    let c = server.client();
    let sealed = c.encrypt_ok(KEY_ALL, b"on a v2.20 module", None).await;
    assert_eq!(
        c.decrypt_ok(KEY_ALL, &sealed, None).await,
        b"on a v2.20 module"
    );
    let h = c.health().await.ok_json();
    let fleet = h["ekmFleetDetails"].as_array().expect("fleet details");
    assert!(
        fleet
            .iter()
            .any(|n| n["model"].as_str().unwrap_or("").contains(&token.label)
                && n["healthStatus"] == "ACTIVE"),
        "{h}"
    );
    server.stop().await;
}

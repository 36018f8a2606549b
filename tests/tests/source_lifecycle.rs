//! Key sources and HSM connections at run time, through the admin API on SoftHSM2: a
//! connection changed only when its test passes, sources reopened (stores keep
//! serving) and deleted, store routes by name, patches that change nothing, and the
//! HYOK key rules over the PKCS#11 attributes of keys made outside keyhold
//! (extractable, not sensitive, not private, duplicated labels).

use cryptoki::object::Attribute;
use keyhold_tests::{
    Sealed, TestServer, XksClient,
    admin::{
        AdminClient, credential_of, data_key, etag, expect_error, expect_status, health_check_key,
    },
    fixture::{HEALTH_KEY, STORE},
    luna::{self, LunaToken},
};
use serde_json::{Value, json};

fn hsm_body(name: &str, label: &str, pin_file: &std::path::Path) -> Value {
    json!({
        "name": name,
        "module": luna::plugin_module(),
        "token_label": label,
        "pin_file": pin_file.to_string_lossy(),
        "module_env": {"SOFTHSM2_CONF": luna::env().conf.to_string_lossy()},
        "pool_size": 2,
    })
}

/// The audit records of the server in `dir` whose action is `action`.
fn audited(dir: &std::path::Path, action: &str) -> Vec<Value> {
    let text = std::fs::read_to_string(dir.join("audit.jsonl")).expect("audit log");
    text.lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|r| r.to_string().contains(&format!("\"action\":\"{action}\"")))
        .collect()
}

/// An AES-256 key labelled `label` made on the token with cryptoki (outside keyhold),
/// with the given attributes; encrypt and decrypt allowed.
fn pkcs11_key(token: &LunaToken, label: &str, extractable: bool, sensitive: bool, private: bool) {
    token.generate_aes_key(
        label,
        &[
            Attribute::Extractable(extractable),
            Attribute::Sensitive(sensitive),
            Attribute::Private(private),
            Attribute::Destroyable(false),
        ],
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn connection_patch_reopen_and_delete_source() {
    if !luna::available() {
        eprintln!("SoftHSM2 is not installed: skipped");
        return;
    }
    let token = LunaToken::new();
    let env = luna::env();
    let server = TestServer::admin_only().start().await;
    let root = server.root().await;
    let first = server.path().join("first.pin");
    std::fs::copy(&env.pin_file, &first).expect("copy PIN file");
    let r = root
        .post(
            "/api/v1/connections/hsm",
            &hsm_body("hsm1", &token.label, &first),
        )
        .await;
    expect_status(&r, 201);

    // A wrong PIN: the changed connection fails its test, nothing is saved (nothing
    // of this process is logged in to the token yet).
    let wrong = server.path().join("wrong.pin");
    std::fs::write(&wrong, "wrong-pin-000111\n").expect("write PIN file");
    let path = "/api/v1/connections/hsm/hsm1";
    let msg = expect_error(
        &root
            .patch(path, &json!({"pin_file": wrong.to_string_lossy()}), None)
            .await,
        422,
        "connection_test_failed",
    );
    assert!(
        msg.contains(&token.label) && msg.contains("nothing was saved"),
        "{msg}"
    );
    assert!(!msg.contains("wrong-pin-000111"), "never the PIN: {msg}");
    let got = expect_status(&root.get(path).await, 200);
    assert_eq!(got["pin_file"], first.to_string_lossy().as_ref());
    // token_label is a source's binding; unknown fields are refused; bad values too.
    let msg = expect_error(
        &root
            .patch(path, &json!({"token_label": "other"}), None)
            .await,
        422,
        "token_label_immutable",
    );
    assert!(msg.contains(&token.label), "{msg}");
    for (body, code) in [
        (json!({"pin": "1234"}), "invalid_json"),
        (json!({"pool_size": 0}), "invalid_input"),
        (json!({"pin_env": "A", "pin_file": "/b"}), "invalid_input"),
    ] {
        expect_error(&root.patch(path, &body, None).await, 400, code);
    }
    expect_error(
        &root
            .patch(
                "/api/v1/connections/hsm/nope",
                &json!({"pool_size": 1}),
                None,
            )
            .await,
        404,
        "not_found",
    );
    assert_eq!(audited(server.path(), "update_hsm_connection").len(), 5);

    // A source, its keys, a store (HYOK key created through the store's name).
    let r = root
        .post(
            "/api/v1/sources",
            &json!({"name": "hsm-src", "plugin": "luna", "hsm_connection": "hsm1"}),
        )
        .await;
    assert_eq!(expect_status(&r, 201)["status"], "opened");
    expect_status(
        &root
            .create_source_key("hsm-src", &health_check_key("hc"))
            .await,
        201,
    );
    expect_status(
        &root.create_source_key("hsm-src", &data_key("data-1")).await,
        201,
    );
    let r = root
        .create_store(&json!({"name": "hsm-store", "source": "hsm-src", "health_check_key": "hc"}))
        .await;
    let created = expect_status(&r, 201);
    let file = &created["credentials_file"];
    let uri_path = file["XksProxyUriPath"]
        .as_str()
        .expect("uri path")
        .to_string();
    let xks = XksClient::new(server.transport(), credential_of(file), &uri_path);
    let r = root
        .create_hyok_key("/api/v1/stores/hsm-store", "k1", "data-1")
        .await;
    expect_status(&r, 201);

    // The right PIN in a new file: tested, saved, audited with the fields changed.
    let rotated = server.path().join("rotated.pin");
    std::fs::copy(&env.pin_file, &rotated).expect("copy PIN file");
    let body = json!({"pin_file": rotated.to_string_lossy(), "op_timeout_ms": 5000});
    let got = expect_status(&root.patch(path, &body, None).await, 200);
    assert_eq!(got["pin_file"], rotated.to_string_lossy().as_ref());
    assert_eq!(got["op_timeout_ms"], 5000);
    let records = audited(server.path(), "update_hsm_connection");
    assert_eq!(records.len(), 6);
    assert!(
        records[5].to_string().contains("op_timeout_ms"),
        "{}",
        records[5]
    );
    // The same values again: no change, no audit record.
    let same = expect_status(&root.patch(path, &body, None).await, 200);
    assert_eq!(same, got);
    assert_eq!(audited(server.path(), "update_hsm_connection").len(), 6);
    // The source keeps its session until reopened; the old PIN file goes away.
    std::fs::remove_file(&first).expect("remove the old PIN file");
    let sealed = xks.encrypt_ok("k1", b"before reopen", None).await;

    // GET one source; reopen it (the PIN from the new file only: the old one is gone):
    // opened, audited, and the store keeps serving, old ciphertexts included.
    let src = expect_status(&root.get("/api/v1/sources/hsm-src").await, 200);
    assert_eq!(
        (src["status"].as_str(), src["hsm_connection"].as_str()),
        (Some("opened"), Some("hsm1"))
    );
    expect_error(&root.get("/api/v1/sources/nope").await, 404, "not_found");
    let r = root
        .post("/api/v1/sources/hsm-src/reopen", &json!({}))
        .await;
    let reopened = expect_status(&r, 200);
    assert_eq!(reopened["status"], "opened", "{reopened}");
    assert_eq!(audited(server.path(), "reopen_source").len(), 1);
    assert_eq!(xks.decrypt_ok("k1", &sealed, None).await, b"before reopen");
    let again = xks.encrypt_ok("k1", b"after reopen", None).await;
    assert_eq!(xks.decrypt_ok("k1", &again, None).await, b"after reopen");
    xks.health().await.ok_json();
    expect_error(
        &root.post("/api/v1/sources/nope/reopen", &json!({})).await,
        404,
        "not_found",
    );
    // A reopen that fails (the PIN file gone) answers `failed` with the reason, and
    // the store is unavailable until a reopen succeeds.
    let aside = server.path().join("rotated.pin.aside");
    std::fs::rename(&rotated, &aside).expect("move the PIN file away");
    let r = root
        .post("/api/v1/sources/hsm-src/reopen", &json!({}))
        .await;
    let failed = expect_status(&r, 200);
    assert_eq!(failed["status"], "failed", "{failed}");
    let reason = failed["reason"].as_str().expect("reason");
    assert!(
        reason.contains("hsm-src") && !reason.contains(luna::USER_PIN),
        "{reason}"
    );
    let refused = xks.encrypt("k1", b"while failed", None, false).await;
    assert_ne!(refused.status.as_u16(), 200, "{refused:?}");
    std::fs::rename(&aside, &rotated).expect("restore the PIN file");
    let r = root
        .post("/api/v1/sources/hsm-src/reopen", &json!({}))
        .await;
    assert_eq!(expect_status(&r, 200)["status"], "opened");
    assert_eq!(xks.decrypt_ok("k1", &sealed, None).await, b"before reopen");
    assert_eq!(audited(server.path(), "reopen_source").len(), 4);
    // The configuration file's source reopens from the file.
    let r = root.post("/api/v1/sources/ctm/reopen", &json!({})).await;
    assert_eq!(expect_status(&r, 200)["status"], "opened");

    // The connection's refusal says how to follow it; the source's names its store.
    let msg = expect_error(&root.delete(path).await, 409, "connection_in_use");
    assert!(
        msg.contains("hsm-src") && msg.contains("keyhold source delete"),
        "{msg}"
    );
    let msg = expect_error(
        &root.delete("/api/v1/sources/hsm-src").await,
        409,
        "source_in_use",
    );
    assert!(msg.contains("'hsm-store'"), "{msg}");
    let msg = expect_error(
        &root.delete("/api/v1/sources/ctm").await,
        422,
        "source_declared_in_config",
    );
    assert!(msg.contains("configuration file"), "{msg}");

    // An unused source is deleted (and closed); then gone.
    let r = root
        .post(
            "/api/v1/sources",
            &json!({"name": "spare", "plugin": "luna", "hsm_connection": "hsm1"}),
        )
        .await;
    expect_status(&r, 201);
    assert_eq!(
        root.delete("/api/v1/sources/spare").await.status.as_u16(),
        204
    );
    expect_error(&root.get("/api/v1/sources/spare").await, 404, "not_found");
    expect_error(
        &root.delete("/api/v1/sources/spare").await,
        404,
        "not_found",
    );
    let listed = expect_status(&root.get("/api/v1/sources").await, 200);
    assert!(!listed.to_string().contains("spare"), "{listed}");
    expect_error(
        &root
            .create_store(&json!({"name": "s2", "source": "spare", "health_check_key": "hc"}))
            .await,
        404,
        "not_found",
    );
    assert_eq!(audited(server.path(), "delete_source").len(), 4);

    // Store, then source, then connection: each delete now follows.
    let store = "/api/v1/stores/hsm-store";
    let r = root.delete(&format!("{store}/keys/k1")).await;
    assert_eq!(r.status.as_u16(), 204);
    assert_eq!(
        root.delete(&format!("{store}?confirm=true"))
            .await
            .status
            .as_u16(),
        204
    );
    assert_eq!(
        root.delete("/api/v1/sources/hsm-src").await.status.as_u16(),
        204
    );
    assert_eq!(root.delete(path).await.status.as_u16(), 204);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn store_routes_by_name_and_patches_that_change_nothing() {
    let server = TestServer::admin_only().start().await;
    let root = server.root().await;
    expect_status(
        &root.create_source_key("ctm", &health_check_key("hc")).await,
        201,
    );
    expect_status(&root.create_source_key("ctm", &data_key("d1")).await, 201);
    let r = root
        .create_store(&json!({"name": "by name", "source": "ctm", "health_check_key": "hc"}))
        .await;
    let id = expect_status(&r, 201)["store"]["id"]
        .as_str()
        .expect("id")
        .to_string();

    // Every store route takes the name (percent-encoded) as well as the id.
    let by_name = "/api/v1/stores/by%20name";
    let got = root.get(by_name).await;
    assert_eq!(expect_status(&got, 200)["id"], id.as_str());
    expect_status(&root.create_hyok_key(by_name, "k1", "d1").await, 201);
    let tag = etag(&root.get(&format!("/api/v1/stores/{id}")).await);
    let key = expect_status(&root.get(&format!("{by_name}/keys/k1")).await, 200);
    assert_eq!(key["source_key"], "d1");
    let listed = expect_status(&root.get(&format!("/api/v1/stores/{id}/keys")).await, 200);
    assert_eq!(listed.as_array().expect("array").len(), 1);
    let creds = expect_status(&root.get(&format!("{by_name}/credentials")).await, 200);
    assert_eq!(creds.as_array().expect("array").len(), 1);
    expect_error(
        &root.get("/api/v1/stores/no-such-store").await,
        404,
        "not_found",
    );

    // A patch that changes nothing keeps the version and writes no audit record.
    let before = audited(server.path(), "update_store").len();
    let r = root
        .patch(
            by_name,
            &json!({"name": "by name", "max_credentials": 20, "success_audit": false}),
            Some(&tag),
        )
        .await;
    let unchanged = expect_status(&r, 200);
    assert_eq!(etag(&r), tag, "same version");
    assert_eq!(unchanged["name"], "by name");
    assert_eq!(audited(server.path(), "update_store").len(), before);
    // A real change bumps it and is audited.
    let r = root
        .patch(by_name, &json!({"success_audit": true}), Some(&tag))
        .await;
    expect_status(&r, 200);
    assert_ne!(etag(&r), tag);
    assert_eq!(audited(server.path(), "update_store").len(), before + 1);

    // Accounts: the same.
    let account = json!({"id": "111122223333", "name": "acct", "regions": ["us-east-1"]});
    expect_status(&root.post("/api/v1/accounts", &account).await, 201);
    let path = "/api/v1/accounts/111122223333";
    let body = json!({"name": "acct", "regions": ["us-east-1"]});
    let r = root.request("PUT", path, Some(&body), &[]).await;
    expect_status(&r, 200);
    assert_eq!(audited(server.path(), "update_account").len(), 0);
    let body = json!({"name": "renamed"});
    let r = root.request("PUT", path, Some(&body), &[]).await;
    assert_eq!(expect_status(&r, 200)["name"], "renamed");
    assert_eq!(audited(server.path(), "update_account").len(), 1);
    server.stop().await;
}

/// A server on a luna token (the fixture store `acme`, health cached for 1 s), and its
/// admin API.
async fn luna_server(token: &LunaToken) -> (TestServer, AdminClient) {
    let server = TestServer::builder()
        .source(token.source())
        .xks_line("health_cache_seconds = 1")
        .admin()
        .start()
        .await;
    let root = server.root().await;
    (server, root)
}

/// Whether a refusal names the deletable attribute: `CKA_DESTROYABLE` where the module
/// has it (SoftHSM2), the plain rule where it does not (the PKCS#11 2.20 shim of the
/// test matrix, where keyhold keeps the promise itself).
fn names_deletable(msg: &str) -> bool {
    msg.contains("CKA_DESTROYABLE must be false") || msg.contains("the key must not be deletable")
}

#[tokio::test(flavor = "multi_thread")]
async fn hyok_keys_follow_the_pkcs11_key_rules() {
    if !luna::available() {
        eprintln!("SoftHSM2 is not installed: skipped");
        return;
    }
    let token = LunaToken::new();
    let (server, root) = luna_server(&token).await;
    pkcs11_key(&token, "strong", false, true, true);
    pkcs11_key(&token, "extractable", true, true, true);
    pkcs11_key(&token, "not-sensitive", false, false, true);
    pkcs11_key(&token, "public", false, true, false);
    let store = format!("/api/v1/stores/{STORE}");
    for (key, attribute) in [
        ("extractable", "CKA_EXTRACTABLE must be false"),
        ("not-sensitive", "CKA_SENSITIVE must be true"),
        ("public", "CKA_PRIVATE must be true"),
    ] {
        let r = root
            .create_hyok_key(&store, &format!("hyok-{key}"), key)
            .await;
        let msg = expect_error(&r, 422, "invalid_key");
        assert!(
            msg.contains(attribute) && msg.contains("allow_weak_key"),
            "{key}: {msg}"
        );
    }
    expect_status(
        &root.create_hyok_key(&store, "hyok-strong", "strong").await,
        201,
    );

    // The explicit relaxation: created, stored, shown and audited.
    let body = json!({"external_id": "hyok-weak", "source_key": "public", "allow_weak_key": true});
    let created = expect_status(&root.post(&format!("{store}/keys"), &body).await, 201);
    assert_eq!(created["allow_weak_key"], true);
    let got = expect_status(&root.get(&format!("{store}/keys/hyok-weak")).await, 200);
    assert_eq!(got["allow_weak_key"], true);
    let strong = expect_status(&root.get(&format!("{store}/keys/hyok-strong")).await, 200);
    assert!(strong.get("allow_weak_key").is_none(), "{strong}");
    let records = audited(server.path(), "create_hyok_key");
    let weak: Vec<_> = records
        .iter()
        .filter(|r| r["event"]["details"]["allow_weak_key"] == true)
        .collect();
    assert_eq!(weak.len(), 1, "{records:?}");
    assert!(weak[0].to_string().contains("hyok-weak"));
    let c = server.client();
    let sealed = c.encrypt_ok("hyok-weak", b"weak but allowed", None).await;
    assert_eq!(
        c.decrypt_ok("hyok-weak", &sealed, None).await,
        b"weak but allowed"
    );

    // A deletable key is no health-check key (store create and patch).
    let r = root
        .create_source_key(
            "luna",
            &json!({"name": "hc-deletable", "usage": ["encrypt", "decrypt", "wrap", "unwrap"],
                    "deletable": true}),
        )
        .await;
    expect_status(&r, 201);
    let r = root
        .create_store(&json!({"name": "s2", "source": "luna", "health_check_key": "hc-deletable"}))
        .await;
    let msg = expect_error(&r, 422, "invalid_key");
    assert!(names_deletable(&msg), "{msg}");
    let tag = etag(&root.get(&store).await);
    let r = root
        .patch(
            &store,
            &json!({"health_check_key": "hc-deletable"}),
            Some(&tag),
        )
        .await;
    let msg = expect_error(&r, 422, "invalid_key");
    assert!(names_deletable(&msg), "{msg}");
    let got = expect_status(&root.get(&store).await, 200);
    assert_eq!(got["health_check_key"], HEALTH_KEY);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn duplicated_labels_are_refused_in_the_admin_api() {
    if !luna::available() {
        eprintln!("SoftHSM2 is not installed: skipped");
        return;
    }
    let token = LunaToken::new();
    let (server, root, store, _sealed) = bound_then_duplicated(&token).await;
    pkcs11_key(&token, "dup-hc", false, true, true);
    pkcs11_key(&token, "dup-hc", false, true, true);
    let r = root.create_hyok_key(&store, "k-dup", "shared").await;
    let msg = expect_error(&r, 409, "source_key_duplicate");
    assert!(msg.contains("'shared'") && msg.contains("2 keys"), "{msg}");
    let r = root
        .create_store(&json!({"name": "s2", "source": "luna", "health_check_key": "dup-hc"}))
        .await;
    let msg = expect_error(&r, 409, "source_key_duplicate");
    assert!(msg.contains("'dup-hc'") && msg.contains("2 keys"), "{msg}");
    let tag = etag(&root.get(&store).await);
    let r = root
        .patch(&store, &json!({"health_check_key": "dup-hc"}), Some(&tag))
        .await;
    expect_error(&r, 409, "source_key_duplicate");
    // The HYOK key bound before the duplicate appeared still exists.
    expect_status(&root.get(&format!("{store}/keys/k-shared")).await, 200);
    server.stop().await;
}

/// A server on `token` with a HYOK key `k-shared` bound to the label `shared` while it
/// was unique (and used once: the sealed answer), then a second object with that label
/// made outside keyhold. Answers the server, root's client, the store's path and the
/// sealed answer.
async fn bound_then_duplicated(token: &LunaToken) -> (TestServer, AdminClient, String, Sealed) {
    let (server, root) = luna_server(token).await;
    let store = format!("/api/v1/stores/{STORE}");
    pkcs11_key(token, "shared", false, true, true);
    expect_status(
        &root.create_hyok_key(&store, "k-shared", "shared").await,
        201,
    );
    let sealed = server
        .client()
        .encrypt_ok("k-shared", b"unique label", None)
        .await;
    pkcs11_key(token, "shared", false, true, true);
    (server, root, store, sealed)
}

/// A lookup of a duplicated label is a key manager fault, and health reports it.
#[tokio::test(flavor = "multi_thread")]
async fn a_duplicated_label_fails_as_a_key_manager_fault_and_degrades_health() {
    if !luna::available() {
        eprintln!("SoftHSM2 is not installed: skipped");
        return;
    }
    let token = LunaToken::new();
    let (server, root, _store, sealed) = bound_then_duplicated(&token).await;
    let c = server.client();

    // Reopened (as after a restart, the source scans the token again), the bound HYOK
    // key is a key manager fault (InternalException), not a malformed request; health
    // turns DEGRADED naming the label.
    let r = root.post("/api/v1/sources/luna/reopen", &json!({})).await;
    expect_status(&r, 200);
    c.assert_key_ops_fail("k-shared", &sealed, 500, "InternalException")
        .await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let h = c.health().await.ok_json();
        let fleet = h["ekmFleetDetails"].to_string();
        if fleet.contains("DEGRADED") {
            assert!(fleet.contains("shared"), "{h}");
            break;
        }
        assert!(std::time::Instant::now() < deadline, "never DEGRADED: {h}");
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    server.stop().await;
}

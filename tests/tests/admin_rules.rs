//! The product's refusing rules (docs/product.md, "Rules") as the admin API enforces
//! them: one test per rule, each checking the HTTP status, the stable `error.code` and
//! that the message names the rule. Cases tests/tests/admin.rs already covers are not
//! repeated here.

use keyhold_tests::{
    SourceFixture, TestServer,
    admin::{
        AdminClient, created_store_id, data_key, etag, expect_error, expect_status,
        health_check_key,
    },
};
use serde_json::{Value, json};

/// The health-check key of source `ctm`.
const HC: &str = "rules-hc";
/// A valid health-check key of the second source `ctm2`.
const HC2: &str = "rules-hc2";
/// A data key of `ctm`.
const DATA: &str = "rules-data";
/// A data key of `ctm2` only.
const DATA2: &str = "rules-data2";

/// Two ctm sources (`ctm`, `ctm2`), no store, the admin API.
async fn server() -> TestServer {
    TestServer::builder()
        .source(SourceFixture::ctm())
        .extra_source(SourceFixture::ctm_named("ctm2", "ctm2.key"))
        .without_store()
        .admin()
        .start()
        .await
}

async fn source_key(root: &AdminClient, source: &str, body: Value) {
    expect_status(&root.create_source_key(source, &body).await, 201);
}

/// Health-check and data keys in both sources.
async fn keys(root: &AdminClient) {
    source_key(root, "ctm", health_check_key(HC)).await;
    source_key(root, "ctm2", health_check_key(HC2)).await;
    for (source, name) in [("ctm", DATA), ("ctm2", DATA2)] {
        source_key(root, source, data_key(name)).await;
    }
}

/// The server, a root client, and the health-check and data keys in both sources.
async fn server_with_keys() -> (TestServer, AdminClient) {
    let server = server().await;
    let root = server.root().await;
    keys(&root).await;
    (server, root)
}

/// Creates a store on `source`; returns its admin path.
async fn store(root: &AdminClient, name: &str, source: &str, hc: &str) -> String {
    let r = root
        .create_store(&json!({"name": name, "source": source, "health_check_key": hc}))
        .await;
    let id = created_store_id(&r);
    format!("/api/v1/stores/{id}")
}

/// PATCHes the store with its current ETag.
async fn patch(root: &AdminClient, store: &str, body: Value) -> keyhold_tests::Reply {
    let r = root.get(store).await;
    expect_status(&r, 200);
    root.patch(store, &body, Some(&etag(&r))).await
}

#[tokio::test(flavor = "multi_thread")]
async fn a_blocked_store_says_why_it_refuses_updates_and_credentials() {
    let (server, root) = server_with_keys().await;
    let store = store(&root, "blocked-one", "ctm", HC).await;
    expect_status(&root.post(&format!("{store}/block"), &json!({})).await, 200);
    let r = patch(&root, &store, json!({"success_audit": true})).await;
    let msg = expect_error(&r, 409, "store_blocked");
    assert!(
        msg.contains("blocked-one") && msg.contains("blocked") && msg.contains("unblock"),
        "{msg}"
    );
    let r = root.post(&format!("{store}/credentials"), &json!({})).await;
    let msg = expect_error(&r, 409, "store_blocked");
    assert!(msg.contains("blocked") && msg.contains("unblock"), "{msg}");
    // Nothing changed: still one credential, the setting unchanged.
    let creds = expect_status(&root.get(&format!("{store}/credentials")).await, 200);
    assert_eq!(creds.as_array().expect("array").len(), 1);
    let s = expect_status(&root.get(&store).await, 200);
    assert_eq!(s["success_audit"], false);
    // Unblocked, both work.
    expect_status(
        &root.post(&format!("{store}/unblock"), &json!({})).await,
        200,
    );
    expect_status(
        &patch(&root, &store, json!({"success_audit": true})).await,
        200,
    );
    expect_status(
        &root.post(&format!("{store}/credentials"), &json!({})).await,
        201,
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn deleting_a_store_with_keys_is_refused_naming_the_count() {
    let (server, root) = server_with_keys().await;
    let store = store(&root, "with-keys", "ctm", HC).await;
    // A source key backs one HYOK key at most: k2 gets its own.
    source_key(&root, "ctm", data_key("rules-data-k2")).await;
    for (ext, source_key) in [("k1", DATA), ("k2", "rules-data-k2")] {
        let r = root.create_hyok_key(&store, ext, source_key).await;
        expect_status(&r, 201);
    }
    let r = root.delete(&format!("{store}?confirm=true")).await;
    let msg = expect_error(&r, 409, "store_has_keys");
    assert!(msg.contains("2 HYOK keys"), "{msg}");
    assert!(msg.contains("with-keys"), "{msg}");
    expect_status(&root.get(&store).await, 200);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn patch_cannot_move_a_store_to_another_source_or_container() {
    let (server, root) = server_with_keys().await;
    let store = store(&root, "bound", "ctm", HC).await;
    // Another source that exists: still refused.
    let r = patch(&root, &store, json!({"source": "ctm2"})).await;
    let msg = expect_error(&r, 422, "source_immutable");
    assert!(
        msg.contains("immutable") && msg.contains("'ctm'") && msg.contains("bound"),
        "{msg}"
    );
    let r = patch(&root, &store, json!({"container": "other-partition"})).await;
    let msg = expect_error(&r, 422, "source_immutable");
    assert!(
        msg.contains("immutable") && msg.contains("container"),
        "{msg}"
    );
    // Refused together with an allowed change: nothing changes.
    let r = patch(&root, &store, json!({"name": "moved", "source": "ctm2"})).await;
    expect_error(&r, 422, "source_immutable");
    let s = expect_status(&root.get(&store).await, 200);
    assert_eq!(s["source"], "ctm");
    assert_eq!(s["name"], "bound");
    // Repeating the current source is no change and allowed.
    let r = patch(
        &root,
        &store,
        json!({"source": "ctm", "name": "still-bound"}),
    )
    .await;
    assert_eq!(expect_status(&r, 200)["name"], "still-bound");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_health_check_key_must_come_from_the_stores_own_source() {
    let (server, root) = server_with_keys().await;
    // HC2 is a valid health-check key, of ctm2: a ctm store refuses it.
    let r = root
        .create_store(&json!({"name": "mixed", "source": "ctm", "health_check_key": HC2}))
        .await;
    let msg = expect_error(&r, 404, "source_key_not_found");
    assert!(msg.contains("'ctm'") && msg.contains(HC2), "{msg}");
    assert!(
        msg.contains("key source 'ctm2' holds a key of that name"),
        "the source that has it is named: {msg}"
    );
    expect_error(&root.get("/api/v1/stores/mixed").await, 404, "not_found");
    // A name no source holds says just that.
    let r = root
        .create_store(
            &json!({"name": "nowhere", "source": "ctm", "health_check_key": "no-such-hc"}),
        )
        .await;
    let msg = expect_error(&r, 404, "source_key_not_found");
    assert!(
        msg.contains("no-such-hc") && !msg.contains("holds a key"),
        "{msg}"
    );
    // The same key on its own source's store is fine.
    store(&root, "on-ctm2", "ctm2", HC2).await;
    // And an existing ctm store cannot switch to it either.
    let s = store(&root, "on-ctm", "ctm", HC).await;
    let r = patch(&root, &s, json!({"health_check_key": HC2})).await;
    let msg = expect_error(&r, 404, "source_key_not_found");
    assert!(msg.contains("'ctm'") && msg.contains(HC2), "{msg}");
    assert_eq!(
        expect_status(&root.get(&s).await, 200)["health_check_key"],
        HC
    );
    // A HYOK key on a ctm2 source key is refused on the ctm store, naming ctm2.
    source_key(&root, "ctm2", data_key("ctm2-data")).await;
    let r = root.create_hyok_key(&s, "k-elsewhere", "ctm2-data").await;
    let msg = expect_error(&r, 404, "source_key_not_found");
    assert!(
        msg.contains("'ctm'") && msg.contains("key source 'ctm2' holds a key of that name"),
        "{msg}"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn health_check_key_attributes_are_named_when_wrong() {
    let (server, root) = server_with_keys().await;
    source_key(
        &root,
        "ctm",
        json!({"name": "deletable-hc", "usage": ["encrypt", "decrypt", "wrap", "unwrap"],
               "deletable": true}),
    )
    .await;
    source_key(&root, "ctm", data_key("no-wrap-hc")).await;
    let cases = [
        ("deletable-hc", &["deletable"][..]),
        ("no-wrap-hc", &["WRAP", "UNWRAP"][..]),
    ];
    for (key, named) in cases {
        let r = root
            .create_store(&json!({"name": "hc-test", "source": "ctm", "health_check_key": key}))
            .await;
        let msg = expect_error(&r, 422, "invalid_key");
        for n in named {
            assert!(msg.contains(n), "{key}: names {n}: {msg}");
        }
    }
    // PATCH applies the same rule.
    let s = store(&root, "hc-patch", "ctm", HC).await;
    let r = patch(&root, &s, json!({"health_check_key": "deletable-hc"})).await;
    let msg = expect_error(&r, 422, "invalid_key");
    assert!(msg.contains("deletable"), "{msg}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn max_credentials_bounds_hold_on_patch_too() {
    let (server, root) = server_with_keys().await;
    let s = store(&root, "bounds", "ctm", HC).await;
    for bad in [0, 1, 21] {
        let r = patch(&root, &s, json!({"max_credentials": bad})).await;
        let msg = expect_error(&r, 400, "invalid_input");
        assert!(msg.contains("max credentials"), "{bad}: {msg}");
    }
    assert_eq!(
        expect_status(&root.get(&s).await, 200)["max_credentials"],
        20
    );
    for good in [2, 20] {
        let r = patch(&root, &s, json!({"max_credentials": good})).await;
        assert_eq!(expect_status(&r, 200)["max_credentials"], good);
    }
    // The bounds themselves are accepted on creation.
    for (name, good) in [("bounds-2", 2), ("bounds-20", 20)] {
        let r = root
            .create_store(
                &json!({"name": name, "source": "ctm", "health_check_key": HC,
                        "max_credentials": good}),
            )
            .await;
        assert_eq!(expect_status(&r, 201)["store"]["max_credentials"], good);
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_hyok_key_needs_a_source_key_of_the_stores_own_source() {
    let (server, root) = server_with_keys().await;
    let s = store(&root, "hyok", "ctm", HC).await;
    // DATA2 exists, in ctm2 only: mixing sources is refused.
    for source_key in [DATA2, "no-such-key"] {
        let r = root.create_hyok_key(&s, "k", source_key).await;
        let msg = expect_error(&r, 404, "source_key_not_found");
        assert!(msg.contains("'ctm'") && msg.contains(source_key), "{msg}");
    }
    let keys = expect_status(&root.get(&format!("{s}/keys")).await, 200);
    assert_eq!(keys, json!([]));
    // Its own source's key works.
    let r = root.create_hyok_key(&s, "k", DATA).await;
    expect_status(&r, 201);
    server.stop().await;
}

//! Tenant isolation over the wire: what an unauthenticated load balancer learns, which
//! sources a non-admin may see, and the per-account SigV4 regions.

use std::time::SystemTime;

use keyhold_tests::{
    Credential, RawRequest, SourceFixture, TestServer, XksClient,
    admin::{
        AdminClient, created_store_id, credential_of, data_key, expect_error, expect_status,
        health_check_key,
    },
    bodies,
    fixture::LB_HEALTH,
    sign::Signer,
};
use serde_json::json;

/// Health-check and data keys of `ctm` and `ctm2`.
const HC: &str = "tenant-hc";
const HC2: &str = "tenant-hc2";
const DATA: &str = "tenant-data";
const DATA2: &str = "tenant-data2";

/// Two ctm sources (`ctm`, `ctm2`) with a health-check and a data key each, no store,
/// the admin API; and a root client.
async fn server_with_keys() -> (TestServer, AdminClient) {
    let server = TestServer::builder()
        .source(SourceFixture::ctm())
        .extra_source(SourceFixture::ctm_named("ctm2", "ctm2.key"))
        .without_store()
        .admin()
        .start()
        .await;
    let root = server.root().await;
    for (source, key) in [
        ("ctm", health_check_key(HC)),
        ("ctm2", health_check_key(HC2)),
        ("ctm", data_key(DATA)),
        ("ctm2", data_key(DATA2)),
    ] {
        expect_status(&root.create_source_key(source, &key).await, 201);
    }
    (server, root)
}

/// Creates account `id` whose ACL is `acl`.
async fn account(root: &AdminClient, id: &str, acl: serde_json::Value) {
    let r = root
        .post(
            "/api/v1/accounts",
            &json!({"id": id, "name": format!("acc-{id}"), "acl": acl}),
        )
        .await;
    expect_status(&r, 201);
}

/// Creates users `names` (group `users`, password `correct horse`).
async fn users(root: &AdminClient, names: &[&str]) {
    for name in names {
        let r = root
            .create_user(name, "correct horse", Some(&json!(["users"])))
            .await;
        expect_status(&r, 201);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn source_keys_are_seen_only_through_a_viewable_account() {
    let (server, root) = server_with_keys().await;
    users(&root, &["bob", "carol"]).await;
    account(
        &root,
        "111122223333",
        json!([{"principal": "user:bob", "permissions": ["view"]}]),
    )
    .await;
    let r = root
        .create_store(
            &json!({"name": "bobs", "account": "111122223333", "source": "ctm",
                              "health_check_key": HC}),
        )
        .await;
    created_store_id(&r);
    // A store on ctm2 without an account: admins only.
    let r = root
        .create_store(&json!({"name": "roots", "source": "ctm2", "health_check_key": HC2}))
        .await;
    created_store_id(&r);
    let anon = server.admin();
    let bob = anon.login("bob", "correct horse").await;
    let carol = anon.login("carol", "correct horse").await;

    // bob views an account with a store on ctm: he sees ctm's keys, not ctm2's.
    let keys = expect_status(&bob.get("/api/v1/sources/ctm/keys").await, 200);
    assert!(keys.to_string().contains(DATA), "{keys}");
    expect_status(
        &bob.get(&format!("/api/v1/sources/ctm/keys/{DATA}")).await,
        200,
    );
    for path in [
        "/api/v1/sources/ctm2/keys".to_string(),
        format!("/api/v1/sources/ctm2/keys/{DATA2}"),
        "/api/v1/sources/no-such-source/keys".to_string(),
    ] {
        let msg = expect_error(&bob.get(&path).await, 403, "forbidden");
        assert!(!msg.contains(DATA2) && !msg.contains("roots"), "{msg}");
    }
    // carol views no account: no source at all.
    for path in [
        "/api/v1/sources/ctm/keys".to_string(),
        format!("/api/v1/sources/ctm/keys/{HC}"),
    ] {
        expect_error(&carol.get(&path).await, 403, "forbidden");
    }
    // Creating source keys stays admins-only.
    let r = bob.create_source_key("ctm", &data_key("bobs-own")).await;
    expect_error(&r, 403, "admin_only");
    // Admins are unrestricted.
    let keys = expect_status(&root.get("/api/v1/sources/ctm2/keys").await, 200);
    assert!(keys.to_string().contains(DATA2), "{keys}");
    expect_status(
        &root.get(&format!("/api/v1/sources/ctm2/keys/{HC2}")).await,
        200,
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn load_balancer_health_answers_status_only() {
    // A first start creates the store; the restart loads a broken library for its source.
    let server = TestServer::start_default().await;
    let c = server.client();
    let lb = c.send(&RawRequest::new("GET", LB_HEALTH, "")).await;
    assert_eq!(lb.status.as_u16(), 200);
    assert_eq!(lb.json(), serde_json::json!({ "status": "ACTIVE" }));
    let dir = server.stop().await;

    let server = TestServer::builder()
        .in_dir(dir)
        .source(SourceFixture::built_library("ctm", "libplugin_bad_abi.so"))
        .start()
        .await;
    let failed = &server.running.failed_sources;
    assert_eq!(failed.len(), 1, "{failed:?}");
    let c = server.client();
    let lb = c.send(&RawRequest::new("GET", LB_HEALTH, "")).await;
    assert_eq!(lb.status.as_u16(), 503);
    let body = String::from_utf8_lossy(&lb.body).to_string();
    // Fixed body: the status, nothing about the library, the module or the failure.
    assert_eq!(
        lb.json(),
        serde_json::json!({ "status": "UNAVAILABLE" }),
        "{body}"
    );
    for detail in ["999", "bad_abi", "libplugin", "not loaded", "reason", "ctm"] {
        assert!(!body.contains(detail), "{detail} in {body}");
    }
    // Authenticated callers still see the key managers' status.
    let h = c.health().await.ok_json();
    assert_eq!(
        h["ekmFleetDetails"][0]["healthStatus"], "UNAVAILABLE",
        "{h}"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_source_key_is_bound_to_one_hyok_key_of_one_store() {
    let (server, root) = server_with_keys().await;
    users(&root, &["alice", "bob"]).await;
    // Account A (alice manages keys), account B (bob's, alice cannot see it).
    account(
        &root,
        "111111111111",
        json!([{"principal": "user:alice", "permissions": ["view", "manage_keys"]}]),
    )
    .await;
    account(
        &root,
        "222222222222",
        json!([{"principal": "user:bob", "permissions": ["view", "manage_keys"]}]),
    )
    .await;
    let mut paths = Vec::new();
    for (name, acc) in [("store-a", "111111111111"), ("store-b", "222222222222")] {
        let r = root
            .create_store(&json!({"name": name, "account": acc, "source": "ctm",
                                  "health_check_key": HC}))
            .await;
        paths.push(format!("/api/v1/stores/{}", created_store_id(&r)));
    }
    let (a, b) = (&paths[0], &paths[1]);
    let anon = server.admin();
    let alice = anon.login("alice", "correct horse").await;
    let bob = anon.login("bob", "correct horse").await;
    expect_status(&bob.create_hyok_key(b, "b-key", DATA).await, 201);

    // alice cannot bind B's source key: refused, without naming B's store.
    let msg = expect_error(
        &alice.create_hyok_key(a, "stolen", DATA).await,
        409,
        "source_key_in_use",
    );
    assert!(
        msg.contains(DATA) && msg.contains("another key store"),
        "{msg}"
    );
    assert!(!msg.contains("store-b"), "{msg}");
    // An admin sees which store holds it; a second key of the same store is refused too.
    let msg = expect_error(
        &root.create_hyok_key(a, "stolen", DATA).await,
        409,
        "source_key_in_use",
    );
    assert!(msg.contains("'store-b'"), "{msg}");
    let msg = expect_error(
        &bob.create_hyok_key(b, "b-key-2", DATA).await,
        409,
        "source_key_in_use",
    );
    assert!(msg.contains("'store-b'"), "{msg}");
    // A health-check key backs no HYOK key.
    expect_error(
        &alice.create_hyok_key(a, "hc", HC).await,
        409,
        "source_key_is_health_check_key",
    );
    let keys = expect_status(&alice.get(&format!("{a}/keys")).await, 200);
    assert_eq!(keys, json!([]));

    // Once B's key is deleted, the source key is free again.
    expect_status(&bob.delete(&format!("{b}/keys/b-key")).await, 204);
    expect_status(&alice.create_hyok_key(a, "mine", DATA).await, 201);
    expect_error(
        &bob.create_hyok_key(b, "b-key", DATA).await,
        409,
        "source_key_in_use",
    );
    // The binding survives a restart.
    let builder = server.builder.clone();
    let dir = server.stop().await;
    let server = builder.in_dir(dir).start().await;
    let root = server.root().await;
    expect_error(
        &root.create_hyok_key(b, "b-key", DATA).await,
        409,
        "source_key_in_use",
    );
    server.stop().await;
}

/// A GetHealthStatus request of `xks` signed with `cred` for `region`.
fn health_signed_for(xks: &XksClient, cred: &Credential, region: &str) -> RawRequest {
    let mut req = RawRequest::post_json(&xks.op_path("/health"), &bodies::health());
    let authority = xks.transport.authority();
    req.set_header("host", &authority);
    let signer = Signer {
        region,
        ..Signer::xks(cred)
    };
    let headers = req.headers.iter().map(|(n, v)| (n.as_str(), v.as_str()));
    let added = signer
        .headers(
            "POST",
            &authority,
            &req.path,
            headers,
            &req.body,
            SystemTime::now(),
        )
        .expect("sign");
    req.headers.extend(added);
    req
}

#[tokio::test(flavor = "multi_thread")]
async fn requests_signed_for_a_region_the_account_does_not_allow_are_refused() {
    let (server, root) = server_with_keys().await;
    let r = root
        .post(
            "/api/v1/accounts",
            &json!({"id": "333344445555", "name": "regional", "regions": ["eu-west-1"]}),
        )
        .await;
    expect_status(&r, 201);
    let mut clients = Vec::new();
    for (name, account, hc) in [
        ("regional", Some("333344445555"), HC),
        ("anywhere", None, HC2),
    ] {
        let source = if hc == HC { "ctm" } else { "ctm2" };
        let mut body = json!({"name": name, "source": source, "health_check_key": hc});
        if let Some(a) = account {
            body["account"] = json!(a);
        }
        let created = expect_status(&root.create_store(&body).await, 201);
        let file = &created["credentials_file"];
        let cred = credential_of(file);
        let path = file["XksProxyUriPath"].as_str().expect("uri path");
        clients.push((XksClient::new(server.transport(), cred.clone(), path), cred));
    }
    let (regional, regional_cred) = &clients[0];
    let (anywhere, anywhere_cred) = &clients[1];

    // The account allows eu-west-1 only.
    let ok = regional
        .send(&health_signed_for(regional, regional_cred, "eu-west-1"))
        .await;
    ok.ok_json();
    for region in ["us-east-1", "eu-west-2"] {
        let reply = regional
            .send(&health_signed_for(regional, regional_cred, region))
            .await;
        reply.assert_error(401, "AuthenticationFailedException");
        let msg = reply.json()["errorMessage"].to_string();
        assert!(msg.contains(region), "{msg}");
    }
    // A store without an account accepts any region.
    for region in ["us-east-1", "ap-south-1"] {
        anywhere
            .send(&health_signed_for(anywhere, anywhere_cred, region))
            .await
            .ok_json();
    }
    // The account's regions change: the data plane applies it without a restart.
    let r = root
        .request(
            "PUT",
            "/api/v1/accounts/333344445555",
            Some(&json!({"regions": ["eu-west-1", "us-east-1"]})),
            &[],
        )
        .await;
    expect_status(&r, 200);
    regional
        .send(&health_signed_for(regional, regional_cred, "us-east-1"))
        .await
        .ok_json();
    regional
        .send(&health_signed_for(regional, regional_cred, "eu-west-2"))
        .await
        .assert_error(401, "AuthenticationFailedException");
    server.stop().await;
}

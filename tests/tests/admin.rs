//! The admin REST API end to end: over HTTP against a running keyhold, with the XKS
//! data plane checked with the credentials the API hands out.

use std::os::unix::fs::PermissionsExt;

use keyhold_tests::{
    TestServer, XksClient,
    admin::access_key_ids,
    admin::{
        AdminClient, created_store_id, credential_of, data_key, etag, expect_error, expect_status,
        health_check_key,
    },
};
use serde_json::{Value, json};

const HC: &str = "admin-hc";

async fn server() -> TestServer {
    TestServer::admin_only().start().await
}

/// The server, a root client, the health-check key and a data key.
async fn server_with_keys() -> (TestServer, AdminClient) {
    let server = server().await;
    let root = server.root().await;
    health_and_data_keys(&root).await;
    (server, root)
}

/// Creates the health-check key (ALL usage, non-exportable, non-deletable) and a data key.
async fn health_and_data_keys(root: &AdminClient) {
    let r = root.create_source_key("ctm", &health_check_key(HC)).await;
    let k = expect_status(&r, 201);
    assert_eq!(k["name"], HC);
    assert_eq!(k["exportable"], false);
    let r = root.create_source_key("ctm", &data_key("data-1")).await;
    expect_status(&r, 201);
}

#[tokio::test(flavor = "multi_thread")]
async fn lifecycle_of_an_unlinked_ctm_store() {
    let (server, root) = server_with_keys().await;
    let r = root.get(&format!("/api/v1/sources/ctm/keys/{HC}")).await;
    let k = expect_status(&r, 200);
    assert_eq!(k["valid_health_check_key"], true, "{k}");

    // Create: the credentials file in the AWS console's shape, once.
    let r = root
        .create_store(
            &json!({"name": "life", "source": "ctm", "health_check_key": HC,
                    "max_credentials": 2}),
        )
        .await;
    let created = expect_status(&r, 201);
    let file = &created["credentials_file"];
    let uri_path = file["XksProxyUriPath"].as_str().expect("XksProxyUriPath");
    assert_eq!(
        file.as_object().expect("object").keys().collect::<Vec<_>>(),
        ["XksProxyAuthenticationCredential", "XksProxyUriPath"]
    );
    assert!(created["health_check_path"].as_str().is_some());
    let id = created["store"]["id"].as_str().expect("id").to_string();
    let store = format!("/api/v1/stores/{id}");
    let first = credential_of(file);
    let xks = XksClient::new(server.transport(), first.clone(), uri_path);
    xks.health().await.ok_json();

    // Rotation: a second credential, both work; a third evicts the oldest at once.
    let r = root.post(&format!("{store}/credentials"), &json!({})).await;
    let second = credential_of(&expect_status(&r, 201));
    xks.health().await.ok_json();
    xks.with_cred(second.clone()).health().await.ok_json();
    let r = root.post(&format!("{store}/credentials"), &json!({})).await;
    let third = credential_of(&expect_status(&r, 201));
    xks.assert_unauthenticated().await;
    xks.with_cred(second.clone()).health().await.ok_json();
    let xks = xks.with_cred(third.clone());
    xks.health().await.ok_json();
    let listed = expect_status(&root.get(&format!("{store}/credentials")).await, 200);
    let ids: Vec<&str> = access_key_ids(&listed);
    assert_eq!(
        ids,
        [second.access_key_id.as_str(), third.access_key_id.as_str()]
    );
    assert!(
        !listed.to_string().contains(&third.secret),
        "no secrets listed"
    );
    // Delete the second one: requests signed with it fail from then on.
    let r = root
        .delete(&format!("{store}/credentials/{}", second.access_key_id))
        .await;
    expect_status(&r, 204);
    xks.with_cred(second)
        .health()
        .await
        .assert_error(401, "AuthenticationFailedException");

    // Block / unblock.
    expect_status(&root.post(&format!("{store}/block"), &json!({})).await, 200);
    xks.health()
        .await
        .assert_error(400, "InvalidStateException");
    expect_status(
        &root.post(&format!("{store}/unblock"), &json!({})).await,
        200,
    );
    xks.health().await.ok_json();

    // PATCH needs If-Match with the current version.
    let r = root.get(&store).await;
    let tag = etag(&r);
    let patch = json!({"name": "life-renamed", "success_audit": true});
    let r = root.patch(&store, &patch, Some(&tag)).await;
    let patched = expect_status(&r, 200);
    assert_eq!(patched["name"], "life-renamed");
    let new_tag = etag(&r);
    assert_ne!(new_tag, tag);
    let r = root
        .patch(&store, &json!({"mtls": false}), Some(&tag))
        .await;
    expect_error(&r, 412, "version_mismatch");
    let r = root.patch(&store, &json!({"mtls": false}), None).await;
    expect_error(&r, 428, "precondition_required");
    let r = root
        .patch(&store, &json!({"source": "other"}), Some(&new_tag))
        .await;
    let msg = expect_error(&r, 422, "source_immutable");
    assert!(msg.contains("immutable"), "{msg}");

    // HYOK key from a source key: metadata and encrypt work through XKS.
    let r = root.create_hyok_key(&store, "k1", "data-1").await;
    expect_status(&r, 201);
    let md = xks.metadata("k1").await.ok_json();
    assert_eq!(md["keyStatus"], "ENABLED", "{md}");
    let sealed = xks.encrypt_ok("k1", b"hello", None).await;
    assert_eq!(xks.decrypt_ok("k1", &sealed, None).await, b"hello");
    let k = expect_status(&root.get(&format!("{store}/keys/k1")).await, 200);
    assert_eq!(k["source_key"], "data-1");
    expect_status(
        &root
            .post(&format!("{store}/keys/k1/block"), &json!({}))
            .await,
        200,
    );
    xks.encrypt("k1", b"x", None, false)
        .await
        .assert_error(400, "InvalidStateException");
    expect_status(
        &root
            .post(&format!("{store}/keys/k1/unblock"), &json!({}))
            .await,
        200,
    );
    xks.encrypt_ok("k1", b"x", None).await;

    // Deletion: refused while keys exist, then without confirmation; then done.
    let r = root.delete(&format!("{store}?confirm=true")).await;
    let msg = expect_error(&r, 409, "store_has_keys");
    assert!(msg.contains("1 HYOK key"), "{msg}");
    expect_status(&root.delete(&format!("{store}/keys/k1")).await, 204);
    let r = root.delete(&store).await;
    expect_error(&r, 409, "confirmation_required");
    expect_status(&root.delete(&format!("{store}?confirm=true")).await, 204);
    xks.health()
        .await
        .assert_error(404, "InvalidUriPathException");
    expect_error(&root.get(&store).await, 404, "not_found");

    // The audit log verifies and holds the admin actions (never a secret).
    let dir = server.stop().await;
    let path = dir.path().join("audit.jsonl");
    let count = keyhold_tests::server::verify_audit(dir.path());
    assert!(count > 0);
    let text = std::fs::read_to_string(&path).expect("audit");
    for action in [
        "create_root_user",
        "login",
        "create_source_key",
        "create_store",
        "add_credential",
        "delete_credential",
        "block_store",
        "unblock_store",
        "update_store",
        "create_hyok_key",
        "block_hyok_key",
        "delete_hyok_key",
        "delete_store",
    ] {
        assert!(
            text.contains(&format!("\"action\":\"{action}\"")),
            "audit lacks {action}"
        );
    }
    assert!(text.contains("refused: version_mismatch"));
    for secret in [&first.secret, &third.secret] {
        assert!(!text.contains(secret.as_str()), "a secret in the audit log");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn every_rule_refusal_has_a_code_and_a_reason() {
    let (server, root) = server_with_keys().await;
    let r = root
        .create_source_key(
            "ctm",
            &json!({"name": "leaky", "usage": ["encrypt", "decrypt", "wrap", "unwrap"],
                    "exportable": true}),
        )
        .await;
    expect_status(&r, 201);
    let k = expect_status(&root.get("/api/v1/sources/ctm/keys/leaky").await, 200);
    assert_eq!(k["valid_health_check_key"], false);
    assert!(
        !k["problems"].as_array().expect("problems").is_empty(),
        "{k}"
    );

    let base = json!({"name": "r1", "source": "ctm", "health_check_key": HC});
    let with = |patch: Value| {
        let mut b = base.clone();
        for (k, v) in patch.as_object().expect("object") {
            b[k] = v.clone();
        }
        b
    };
    let r = root
        .post(
            "/api/v1/stores",
            &with(json!({"health_check_key": "leaky"})),
        )
        .await;
    let msg = expect_error(&r, 422, "invalid_key");
    assert!(msg.contains("export"), "names the attribute: {msg}");
    for bad in [1, 21] {
        let r = root
            .create_store(&with(json!({"max_credentials": bad})))
            .await;
        let msg = expect_error(&r, 400, "invalid_input");
        assert!(msg.contains("max credentials"), "{msg}");
    }
    let r = root
        .create_store(&with(json!({"uri_path_prefix": "p/one"})))
        .await;
    let id = created_store_id(&r);
    let r = root
        .create_store(&with(json!({"uri_path_prefix": "p/two"})))
        .await;
    expect_error(&r, 409, "already_exists");
    let r = root
        .post(
            "/api/v1/stores",
            &with(json!({"name": "r2", "uri_path_prefix": "p/one"})),
        )
        .await;
    let msg = expect_error(&r, 409, "already_exists");
    assert!(msg.contains("prefix"), "{msg}");
    let r = root.create_store(&with(json!({"source": "nope"}))).await;
    expect_error(&r, 404, "not_found");

    // A blocked store refuses credential additions and updates.
    let store = format!("/api/v1/stores/{id}");
    let r = root.post(&format!("{store}/block"), &json!({})).await;
    expect_status(&r, 200);
    let tag = etag(&r);
    let r = root.post(&format!("{store}/credentials"), &json!({})).await;
    expect_error(&r, 409, "store_blocked");
    let r = root.patch(&store, &json!({"name": "x"}), Some(&tag)).await;
    expect_error(&r, 409, "store_blocked");
    let r = root.create_hyok_key(&store, "k", "data-1").await;
    expect_error(&r, 409, "store_blocked");

    // Unknown objects and malformed requests.
    expect_error(&root.get("/api/v1/stores/nope").await, 404, "not_found");
    expect_error(
        &root.delete("/api/v1/stores/nope/keys/k").await,
        404,
        "not_found",
    );
    let r = root.request("POST", "/api/v1/stores", None, &[]).await;
    let msg = expect_error(&r, 400, "invalid_json");
    assert!(msg.contains("missing field"), "{msg}");
    let mut raw = keyhold_tests::RawRequest::new("POST", "/api/v1/stores", "{not json");
    raw = raw.with_header(
        "authorization",
        &format!("Bearer {}", root.token.as_deref().unwrap_or("")),
    );
    let conn = root.transport.connect().await.expect("connect");
    let r = conn.send(&raw).await.expect("send");
    expect_error(&r, 400, "invalid_json");
    let r = root.create_store(&with(json!({"colour": "blue"}))).await;
    let msg = expect_error(&r, 400, "invalid_json");
    assert!(msg.contains("colour"), "{msg}");
    expect_error(&root.get("/api/v1/nothing-here").await, 404, "not_found");
    expect_error(
        &root.delete("/api/v1/sources").await,
        405,
        "method_not_allowed",
    );
    let r = root
        .post("/api/v1/accounts", &json!({"id": "12345", "name": "short"}))
        .await;
    expect_error(&r, 400, "invalid_input");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn acl_grants_decide_what_users_may_do() {
    let (server, root) = server_with_keys().await;
    for (name, groups) in [
        ("bob", json!(["users"])),
        ("carol", json!(["users"])),
        ("ada", json!(["admins"])),
    ] {
        let r = root.create_user(name, "correct horse", Some(&groups)).await;
        expect_status(&r, 201);
    }
    let r = root
        .post(
            "/api/v1/accounts",
            &json!({"id": "111122223333", "name": "prod", "regions": ["eu-west-1"],
                    "acl": [{"principal": "user:bob", "permissions": ["view"]}]}),
        )
        .await;
    expect_status(&r, 201);
    let store_body = json!({"name": "acl-1", "account": "111122223333", "source": "ctm",
                            "health_check_key": HC});
    let r = root.create_store(&store_body).await;
    let id = created_store_id(&r);
    let store = format!("/api/v1/stores/{id}");

    let anon = server.admin();
    let bob = anon.login("bob", "correct horse").await;
    let carol = anon.login("carol", "correct horse").await;
    let ada = anon.login("ada", "correct horse").await;

    // Without a grant: 403 naming the permission; the list is filtered.
    let msg = expect_error(&carol.get(&store).await, 403, "forbidden");
    assert!(msg.contains("'view'"), "{msg}");
    let listed = expect_status(&carol.get("/api/v1/stores").await, 200);
    assert_eq!(listed.as_array().expect("array").len(), 0);
    // View only: may read, not create, block or rotate.
    expect_status(&bob.get(&store).await, 200);
    expect_status(&bob.get(&format!("{store}/credentials")).await, 200);
    let listed = expect_status(&bob.get("/api/v1/stores").await, 200);
    assert_eq!(listed.as_array().expect("array").len(), 1);
    let mut body = store_body.clone();
    body["name"] = json!("acl-2");
    let msg = expect_error(&bob.create_store(&body).await, 403, "forbidden");
    assert!(msg.contains("create_store"), "{msg}");
    let msg = expect_error(
        &bob.post(&format!("{store}/credentials"), &json!({})).await,
        403,
        "forbidden",
    );
    assert!(msg.contains("manage_credentials"), "{msg}");
    expect_error(&bob.get("/api/v1/users").await, 403, "admin_only");
    expect_error(
        &bob.post(
            "/api/v1/accounts",
            &json!({"id": "999988887777", "name": "x"}),
        )
        .await,
        403,
        "admin_only",
    );
    // Stores without an account are for admins only.
    let r = root
        .create_store(&json!({"name": "acl-root", "source": "ctm", "health_check_key": HC}))
        .await;
    let root_store = created_store_id(&r);
    expect_error(
        &bob.get(&format!("/api/v1/stores/{root_store}")).await,
        403,
        "forbidden",
    );
    // With the grant (via the users group): allowed.
    let r = root
        .request(
            "PUT",
            "/api/v1/accounts/111122223333",
            Some(&json!({"acl": [
                {"principal": "user:bob", "permissions": ["view"]},
                {"principal": "group:users", "permissions": ["view", "create_store", "manage_credentials"]}
            ]})),
            &[],
        )
        .await;
    expect_status(&r, 200);
    expect_status(&bob.create_store(&body).await, 201);
    expect_status(
        &carol
            .post(&format!("{store}/credentials"), &json!({}))
            .await,
        201,
    );
    let msg = expect_error(
        &carol.post(&format!("{store}/block"), &json!({})).await,
        403,
        "forbidden",
    );
    assert!(msg.contains("block"), "{msg}");
    // Admins are always allowed.
    expect_status(&ada.get(&format!("/api/v1/stores/{root_store}")).await, 200);
    expect_status(&ada.post(&format!("{store}/block"), &json!({})).await, 200);
    // An account with stores cannot be deleted.
    expect_error(
        &root.delete("/api/v1/accounts/111122223333").await,
        409,
        "account_in_use",
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn tokens_sessions_and_passwords() {
    let server = server().await;
    let anon = server.admin();
    // Wrong password, no token, garbage token: 401.
    let r = anon.try_login("root", "wrong password").await;
    expect_error(&r, 401, "unauthenticated");
    let r = anon.try_login("nobody", "wrong password").await;
    expect_error(&r, 401, "unauthenticated");
    expect_error(&anon.get("/api/v1/stores").await, 401, "unauthenticated");
    expect_error(
        &anon.with_token("kh_nope.nope").get("/api/v1/stores").await,
        401,
        "unauthenticated",
    );
    let root = server.root().await;
    // An API token: shown once, listed without its secret, revocable.
    let r = root
        .post("/api/v1/tokens", &json!({"description": "ci pipeline"}))
        .await;
    let t = expect_status(&r, 201);
    let bearer = t["token"].as_str().expect("token").to_string();
    let api = anon.with_token(&bearer);
    expect_status(&api.get("/api/v1/stores").await, 200);
    let listed = expect_status(&root.get("/api/v1/tokens").await, 200);
    assert!(listed.to_string().contains("ci pipeline"));
    let secret = bearer.split_once('.').expect("bearer").1;
    assert!(!listed.to_string().contains(secret), "no secrets listed");
    let r = root
        .delete(&format!("/api/v1/tokens/{}", t["id"].as_str().expect("id")))
        .await;
    expect_status(&r, 204);
    expect_error(&api.get("/api/v1/stores").await, 401, "unauthenticated");
    // A user cannot revoke someone else's token; changes their own password.
    let r = root.create_user("dave", "first password", None).await;
    assert_eq!(expect_status(&r, 201)["groups"], json!(["users"]));
    let dave = anon.login("dave", "first password").await;
    let root_tokens = expect_status(&root.get("/api/v1/tokens").await, 200);
    let root_token_id = root_tokens[0]["id"].as_str().expect("id");
    expect_error(
        &dave
            .delete(&format!("/api/v1/tokens/{root_token_id}"))
            .await,
        404,
        "not_found",
    );
    let r = dave
        .request(
            "PUT",
            "/api/v1/users/dave/password",
            Some(&json!({"password": "second password", "current_password": "first password"})),
            &[],
        )
        .await;
    expect_status(&r, 204);
    let r = anon.try_login("dave", "first password").await;
    expect_error(&r, 401, "unauthenticated");
    let dave = anon.login("dave", "second password").await;
    let r = root.create_user("weak", "short", None).await;
    expect_error(&r, 400, "invalid_input");
    // Logout revokes the session; deleting a user revokes theirs.
    expect_status(&dave.post("/api/v1/logout", &json!({})).await, 204);
    expect_error(&dave.get("/api/v1/stores").await, 401, "unauthenticated");
    let dave = anon.login("dave", "second password").await;
    expect_status(&root.delete("/api/v1/users/dave").await, 204);
    expect_error(&dave.get("/api/v1/stores").await, 401, "unauthenticated");
    expect_error(&root.delete("/api/v1/users/root").await, 409, "last_admin");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn session_tokens_expire() {
    let server = TestServer::admin_only()
        .admin_line("session_ttl_seconds = 1")
        .start()
        .await;
    let root = server.root().await;
    // A wait, not a timing assertion: the session lives 1 s.
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    let msg = expect_error(&root.get("/api/v1/stores").await, 401, "unauthenticated");
    assert!(msg.contains("expired"), "{msg}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn root_password_is_generated_once_into_a_private_file() {
    let server = server().await;
    let file = server.path().join("root-password");
    assert_eq!(
        server.running.root_password_file.as_deref(),
        Some(file.as_path())
    );
    let mode = std::fs::metadata(&file).expect("file").permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "root-password is private");
    let password = server.root_password();
    assert!(password.len() >= 24);
    server.root().await;
    // A restart does not create or print it again; the password still works.
    let builder = server.builder.clone();
    let dir = server.stop().await;
    std::fs::remove_file(&file).expect("remove");
    let server = builder.in_dir(dir).start().await;
    assert!(server.running.root_password_file.is_none());
    assert!(!file.exists());
    server.admin().login("root", &password).await;
    let log = std::fs::read_to_string(server.path().join("audit.jsonl")).expect("audit");
    assert!(!log.contains(&password), "the password is never audited");
    server.stop().await;
}

/// The password file is written before root is committed: a first start that died in
/// between left a file and no root, and the next first start replaces that file with
/// the password root really gets.
#[tokio::test(flavor = "multi_thread")]
async fn a_password_file_left_by_an_interrupted_first_start_is_replaced() {
    let dir = std::sync::Arc::new(tempfile::tempdir().expect("tempdir"));
    let file = dir.path().join("root-password");
    std::fs::write(&file, "left-by-a-crash-before-root-was-committed\n").expect("write");
    let server = TestServer::admin_only().in_dir(dir).start().await;
    assert_eq!(
        server.running.root_password_file.as_deref(),
        Some(file.as_path())
    );
    let password = server.root_password();
    assert_ne!(password, "left-by-a-crash-before-root-was-committed");
    server.admin().login("root", &password).await;
    let mode = std::fs::metadata(&file).expect("file").permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "root-password is private");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn root_password_from_the_environment() {
    let var = format!("KEYHOLD_TEST_ROOT_PW_{}", std::process::id());
    // SAFETY: set before the server starts; a unique name nothing else reads.
    unsafe { std::env::set_var(&var, "from the environment") };
    let server = TestServer::admin_only()
        .root_password_env(&var)
        .start()
        .await;
    assert!(server.running.root_password_file.is_none());
    assert!(!server.path().join("root-password").exists());
    server.admin().login("root", "from the environment").await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn openapi_document_covers_every_served_route() {
    let server = server().await;
    let anon = server.admin();
    let r = anon.get("/api/v1/openapi.json").await;
    let doc = expect_status(&r, 200);
    assert_eq!(
        doc,
        serde_json::from_str::<Value>(keyhold::admin::openapi_json()).expect("json")
    );
    let paths = doc["paths"].as_object().expect("paths");
    let methods = ["GET", "POST", "PUT", "PATCH", "DELETE"];
    let mut documented = 0;
    for (path, item) in paths {
        let concrete = path.replace(['{', '}'], "");
        for method in methods {
            let r = anon.request(method, &concrete, None, &[]).await;
            if item.get(method.to_lowercase()).is_some() {
                documented += 1;
                // Every documented route is served: no 404/405 from the router (401,
                // 400 or 200 instead).
                assert!(
                    ![404, 405].contains(&r.status.as_u16()),
                    "{method} {path} is not served: {}",
                    r.status
                );
            } else {
                // And the router serves nothing the document does not list.
                expect_error(&r, 405, "method_not_allowed");
            }
        }
    }
    assert_eq!(documented, 71, "the admin API's 71 routes");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn admin_api_serves_https_with_the_development_certificate() {
    let server = TestServer::start_admin_https().await;
    let ca = std::fs::read_to_string(server.path().join("tls/ca.pem")).expect("dev CA");
    let addr = server.running.admin_addr.expect("admin addr");
    let transport = keyhold_tests::Transport::https(addr, &ca);
    let https = AdminClient::new(transport.clone());
    let root = https.login("root", &server.root_password()).await;
    expect_status(&root.get("/api/v1/sources").await, 200);
    let h2 = AdminClient::new(transport.with_proto(keyhold_tests::Proto::Http2));
    expect_error(&h2.get("/api/v1/stores").await, 401, "unauthenticated");
    // Plain HTTP to the TLS listener gets no API answer.
    let plain = AdminClient::new(keyhold_tests::Transport::plain(addr));
    let conn = plain.transport.connect().await.expect("tcp connect");
    let r = conn
        .send(&keyhold_tests::RawRequest::new(
            "GET",
            "/api/v1/openapi.json",
            "",
        ))
        .await;
    assert!(r.map(|r| r.status.as_u16() != 200).unwrap_or(true));
    server.stop().await;
}

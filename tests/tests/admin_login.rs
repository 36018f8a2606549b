//! Login hardening and revocation over HTTP against a running keyhold: a login flood
//! is throttled per user and per address (429 with `Retry-After`) without growing the
//! audit log per refused attempt, an oversized user name never reaches the audit log,
//! XKS calls keep succeeding during a flood, and password changes and user deletion
//! revoke that user's sessions and tokens.

use keyhold_tests::{
    TestServer,
    admin::{AdminClient, expect_error, expect_status},
};
use serde_json::json;

/// `USER_FAILURES` in `core/src/admin/throttle.rs`.
const USER_FAILURES: usize = 5;
/// `ADDRESS_FAILURES` in `core/src/admin/throttle.rs`.
const ADDRESS_FAILURES: usize = 20;

fn audit_text(server: &TestServer) -> String {
    std::fs::read_to_string(server.path().join("audit.jsonl")).expect("audit log")
}

async fn add_user(root: &AdminClient, name: &str, password: &str) {
    let r = root
        .create_user(name, password, Some(&json!(["users"])))
        .await;
    expect_status(&r, 201);
}

fn retry_after(r: &keyhold_tests::Reply) -> u64 {
    r.headers
        .get("retry-after")
        .expect("Retry-After")
        .to_str()
        .expect("ascii")
        .parse()
        .expect("seconds")
}

#[tokio::test(flavor = "multi_thread")]
async fn a_login_flood_for_one_user_is_throttled_and_others_still_log_in() {
    let server = TestServer::admin_only().start().await;
    let root = server.root().await;
    add_user(&root, "victim", "victim password").await;
    add_user(&root, "bystander", "bystander password").await;
    let anon = server.admin();
    let before = audit_text(&server).lines().count();
    for _ in 0..USER_FAILURES {
        let r = anon.try_login("victim", "wrong password").await;
        expect_error(&r, 401, "unauthenticated");
    }
    let after_failures = audit_text(&server);
    assert_eq!(after_failures.lines().count(), before + USER_FAILURES);
    for _ in 0..50 {
        let r = anon.try_login("victim", "wrong password").await;
        expect_error(&r, 429, "too_many_attempts");
        assert!(retry_after(&r) >= 1);
    }
    // Even the right password waits: the check is not made at all.
    let r = anon.try_login("victim", "victim password").await;
    expect_error(&r, 429, "too_many_attempts");
    // Refused attempts are not written to the audit log one by one.
    assert_eq!(audit_text(&server), after_failures);
    // Another user logs in from the same address.
    anon.login("bystander", "bystander password").await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn failures_from_one_address_throttle_every_name_from_it() {
    let server = TestServer::admin_only().start().await;
    let anon = server.admin();
    for i in 0..ADDRESS_FAILURES {
        let r = anon
            .try_login(&format!("nobody{i}"), "wrong password")
            .await;
        expect_error(&r, 401, "unauthenticated");
    }
    let r = anon.try_login("root", &server.root_password()).await;
    expect_error(&r, 429, "too_many_attempts");
    assert!(retry_after(&r) >= 1);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_oversized_user_name_is_refused_and_never_audited() {
    let server = TestServer::admin_only().start().await;
    let root = server.root().await;
    let before = audit_text(&server).len();
    let long = "A".repeat(100 * 1024);
    let r = server.admin().try_login(&long, "some password").await;
    let message = expect_error(&r, 400, "invalid_input");
    assert!(message.len() < 1024, "{} bytes", message.len());
    let escape = format!("{}\n{}", "B".repeat(40), "\u{1b}[31m".repeat(4000));
    let r = server.admin().try_login(&escape, "some password").await;
    expect_error(&r, 400, "invalid_input");
    assert_eq!(
        audit_text(&server).len(),
        before,
        "login refusals not audited"
    );
    // Creating such a user is refused and audited with a cut, escaped name.
    let r = root.create_user(&long, "long enough", None).await;
    expect_error(&r, 400, "invalid_input");
    let r = root.create_user(&escape, "long enough", None).await;
    expect_error(&r, 400, "invalid_input");
    let text = audit_text(&server);
    assert!(
        text.len() - before < 4096,
        "audit grew {} bytes",
        text.len() - before
    );
    assert!(!text.contains(&"A".repeat(100)));
    assert!(!text.contains('\u{1b}'));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn xks_health_keeps_succeeding_during_a_login_flood() {
    let server = TestServer::builder().admin().start().await;
    let root = server.root().await;
    add_user(&root, "victim", "victim password").await;
    let flood: Vec<_> = (0..80)
        .map(|_| {
            let anon = server.admin();
            tokio::spawn(async move { anon.try_login("victim", "wrong password").await })
        })
        .collect();
    let xks = server.client();
    for _ in 0..40 {
        xks.health().await.ok_json();
    }
    for f in flood {
        let r = f.await.expect("join");
        match r.status.as_u16() {
            401 => {}
            429 | 503 => assert!(retry_after(&r) >= 1),
            other => panic!("unexpected {other}: {}", String::from_utf8_lossy(&r.body)),
        }
    }
    xks.health().await.ok_json();
    // Whatever got through, the user is locked now.
    let r = server.admin().try_login("victim", "wrong password").await;
    expect_error(&r, 429, "too_many_attempts");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_password_change_revokes_other_sessions_and_tokens() {
    let server = TestServer::admin_only().start().await;
    let root = server.root().await;
    add_user(&root, "carol", "first password").await;
    let anon = server.admin();
    let current = anon.login("carol", "first password").await;
    let other = anon.login("carol", "first password").await;
    let r = current
        .post("/api/v1/tokens", &json!({"description": "ci"}))
        .await;
    let api = anon.with_token(expect_status(&r, 201)["token"].as_str().expect("token"));
    // Carol changes her own password: this session stays, the others go.
    let r = current
        .request(
            "PUT",
            "/api/v1/users/carol/password",
            Some(&json!({"password": "second password", "current_password": "first password"})),
            &[],
        )
        .await;
    expect_status(&r, 204);
    expect_status(&current.get("/api/v1/tokens").await, 200);
    for revoked in [&other, &api] {
        expect_error(&revoked.get("/api/v1/tokens").await, 401, "unauthenticated");
    }
    // An admin's change revokes every one, the current session included.
    let r = root
        .request(
            "PUT",
            "/api/v1/users/carol/password",
            Some(&json!({"password": "third password"})),
            &[],
        )
        .await;
    expect_status(&r, 204);
    expect_error(&current.get("/api/v1/tokens").await, 401, "unauthenticated");
    anon.login("carol", "third password").await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_token_of_a_deleted_and_re_created_user_is_refused() {
    let server = TestServer::admin_only().start().await;
    let root = server.root().await;
    add_user(&root, "dave", "dave password").await;
    let dave = server.admin().login("dave", "dave password").await;
    let r = dave
        .post("/api/v1/tokens", &json!({"description": "ci"}))
        .await;
    let api = server
        .admin()
        .with_token(expect_status(&r, 201)["token"].as_str().expect("token"));
    expect_status(&root.delete("/api/v1/users/dave").await, 204);
    add_user(&root, "dave", "dave password").await;
    for old in [&dave, &api] {
        expect_error(&old.get("/api/v1/tokens").await, 401, "unauthenticated");
    }
    server.admin().login("dave", "dave password").await;
    server.stop().await;
}

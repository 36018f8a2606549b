//! The console's administration pages against a real keyhold over TLS, driven as a
//! browser without scripts would: accounts and their ACLs (a version conflict between
//! two edits), users, API tokens (the bearer offered once as a download, never in a
//! page), connections with their test, the audit log (filters, paging, chain status),
//! operations (schedules, jobs, nodes); each create once accepted and once refused with
//! the API's code in the banner; and a user who is not an admin sees only what the ACLs
//! grant.

use keyhold_tests::{
    Reply, TestServer,
    admin::{AdminClient, etag, expect_status},
    aws::get_until,
    console::{ConsoleClient, header, input_value, text},
};
use serde_json::json;

const ACCOUNT: &str = "111122223333";
const OTHER_ACCOUNT: &str = "444455556666";
const ALICE_PASSWORD: &str = "alice-console-password";

/// A TLS admin listener; the root API client; a console client signed in as root.
async fn setup() -> (TestServer, AdminClient, ConsoleClient) {
    let server = TestServer::start_admin_https().await;
    let console = ConsoleClient::new(&server);
    let api = AdminClient::new(console.transport.clone());
    let root = api.login("root", &server.root_password()).await;
    let mut signed_in = console.clone();
    let r = signed_in.sign_in("root", &server.root_password()).await;
    assert_eq!(r.status.as_u16(), 303, "{}", text(&r));
    (server, root, signed_in)
}

#[track_caller]
fn assert_refused(r: &Reply, status: u16, code: &str) -> String {
    let body = text(r);
    assert_eq!(r.status.as_u16(), status, "{body}");
    assert!(
        body.contains(&format!(
            "role=\"alert\" class=\"error\" data-code=\"{code}\""
        )),
        "expected the banner {code}: {body}"
    );
    body
}

#[track_caller]
fn assert_redirect(r: &Reply, to: &str) {
    assert_eq!(r.status.as_u16(), 303, "{}", text(r));
    assert_eq!(header(r, "location"), Some(to));
}

async fn ok_page(c: &ConsoleClient, path: &str) -> String {
    let r = c.get(path).await;
    assert_eq!(r.status.as_u16(), 200, "GET {path}: {}", text(&r));
    text(&r)
}

#[tokio::test(flavor = "multi_thread")]
async fn every_admin_page_renders_for_an_admin() {
    let (server, _root, c) = setup().await;
    for (path, nav, marks) in [
        (
            "/console/accounts",
            "Accounts",
            &["id=\"create-account-form\"", "for=\"acl\""][..],
        ),
        (
            "/console/users",
            "Users",
            &[
                "<table id=\"users\"",
                "data-name=\"root\"",
                "id=\"create-user-form\"",
            ],
        ),
        (
            "/console/tokens",
            "API tokens",
            &["<table id=\"tokens\"", "id=\"create-token-form\""],
        ),
        (
            "/console/connections",
            "Connections",
            &[
                "<table id=\"aws-connections\"",
                "<table id=\"hsm-connections\"",
                "id=\"create-aws-connection-form\"",
                "id=\"create-hsm-connection-form\"",
            ],
        ),
        (
            "/console/audit",
            "Audit log",
            &[
                "<table id=\"audit-records\"",
                "id=\"audit-filter-form\"",
                "Audit chain verified",
            ],
        ),
        (
            "/console/operations",
            "Operations",
            &[
                "<table id=\"schedules\"",
                "id=\"create-schedule-form\"",
                "<table id=\"nodes\"",
                "(this node)",
            ],
        ),
    ] {
        let page = ok_page(&c, path).await;
        assert!(
            page.contains(&format!("aria-current=\"page\">{nav}</a>")),
            "{path} marks {nav} current: {page}"
        );
        for m in marks {
            assert!(page.contains(m), "{path} has {m}: {page}");
        }
        assert!(page.contains("<main id=\"main\""), "{path}");
        // Every id once: labels and landmarks point at one element.
        let mut ids: Vec<&str> = page
            .split(" id=\"")
            .skip(1)
            .filter_map(|rest| rest.split('"').next())
            .collect();
        let n = ids.len();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), n, "{path} repeats an id: {page}");
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn accounts_are_created_refused_edited_with_conflicts_and_deleted() {
    let (server, root, c) = setup().await;
    let fields = [
        ("id", ACCOUNT),
        ("name", "acme"),
        ("regions", "eu-west-1, us-east-1"),
        ("aws_connection", ""),
        ("acl", "user:alice = view, create_store\ngroup:users = view"),
    ];
    let r = c
        .post("/console/accounts", "/console/accounts", &fields)
        .await;
    assert_redirect(&r, &format!("/console/accounts/{ACCOUNT}?done=created"));
    let page = text(&c.follow(&r).await);
    assert!(page.contains("Account created."), "{page}");
    let acc = expect_status(&root.get(&format!("/api/v1/accounts/{ACCOUNT}")).await, 200);
    assert_eq!(acc["regions"], json!(["eu-west-1", "us-east-1"]));
    assert_eq!(
        acc["acl"][0]["permissions"],
        json!(["view", "create_store"])
    );

    // Refused: the same id again (the API's code), and an ACL the console cannot read.
    let r = c
        .post("/console/accounts", "/console/accounts", &fields)
        .await;
    let body = assert_refused(&r, 409, "already_exists");
    assert_eq!(
        input_value(&body, "name").as_deref(),
        Some("acme"),
        "the form keeps its values"
    );
    let mut bad = fields;
    bad[0] = ("id", OTHER_ACCOUNT);
    bad[4] = ("acl", "user:alice = view, fly");
    let r = c.post("/console/accounts", "/console/accounts", &bad).await;
    let body = assert_refused(&r, 400, "invalid_input");
    assert!(body.contains("unknown permission"), "{body}");

    // Two edits from the same version: the second is refused with the conflict and
    // the form shows the current values.
    let page_path = format!("/console/accounts/{ACCOUNT}");
    let page = ok_page(&c, &page_path).await;
    let stale = input_value(&page, "etag").expect("etag field");
    let api_tag = etag(&root.get(&format!("/api/v1/accounts/{ACCOUNT}")).await);
    assert_eq!(stale, api_tag, "the form carries the API's ETag");
    let edit = |name: &'static str, tag: String| {
        vec![
            ("name", name.to_string()),
            ("regions", "eu-west-1".to_string()),
            ("aws_connection", String::new()),
            ("acl", "user:alice = view".to_string()),
            ("etag", tag),
        ]
    };
    let first: Vec<(&str, String)> = edit("acme-one", stale.clone());
    let pairs: Vec<(&str, &str)> = first.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let r = c.post(&page_path, &page_path, &pairs).await;
    assert_redirect(&r, &format!("/console/accounts/{ACCOUNT}?done=updated"));
    let second = edit("acme-two", stale);
    let pairs: Vec<(&str, &str)> = second.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let r = c.post(&page_path, &page_path, &pairs).await;
    let body = assert_refused(&r, 412, "version_mismatch");
    assert_eq!(
        input_value(&body, "name").as_deref(),
        Some("acme-one"),
        "current values"
    );
    let fresh = input_value(&body, "etag").expect("etag");
    let third = edit("acme-two", fresh);
    let pairs: Vec<(&str, &str)> = third.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let r = c.post(&page_path, &page_path, &pairs).await;
    assert_redirect(&r, &format!("/console/accounts/{ACCOUNT}?done=updated"));
    let acc = expect_status(&root.get(&format!("/api/v1/accounts/{ACCOUNT}")).await, 200);
    assert_eq!(acc["name"], "acme-two");

    // Refresh all without an AWS connection: refused with the API's code.
    let r = c
        .post(&page_path, &format!("{page_path}/refresh"), &[])
        .await;
    assert_eq!(r.status.as_u16(), 409, "{}", text(&r));
    assert!(text(&r).contains("data-code=\""), "{}", text(&r));

    // Delete: the id must be typed.
    let delete = format!("{page_path}/delete");
    let r = c
        .post(&page_path, &delete, &[("confirm_name", "nope")])
        .await;
    assert_refused(&r, 400, "confirmation_mismatch");
    let r = c
        .post(&page_path, &delete, &[("confirm_name", ACCOUNT)])
        .await;
    assert_redirect(&r, "/console/accounts?done=deleted");
    let r = root.get(&format!("/api/v1/accounts/{ACCOUNT}")).await;
    assert_eq!(r.status.as_u16(), 404);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn users_are_created_refused_given_passwords_and_deleted() {
    let (server, root, c) = setup().await;
    let users = "/console/users";
    let r = c
        .post(
            users,
            users,
            &[
                ("name", "bob"),
                ("password", "bob-password-1"),
                ("groups", "users"),
            ],
        )
        .await;
    assert_redirect(&r, "/console/users?done=created");
    let page = text(&c.follow(&r).await);
    assert!(page.contains("data-name=\"bob\""), "{page}");
    let r = c
        .post(
            users,
            users,
            &[("name", "bob"), ("password", "bob-password-1")],
        )
        .await;
    assert_refused(&r, 409, "already_exists");
    let r = c
        .post(users, users, &[("name", "carol"), ("password", "short")])
        .await;
    assert_refused(&r, 400, "invalid_input");
    // An admin sets bob's password; bob signs in with it.
    let r = c
        .post(
            "/console/users/bob",
            "/console/users/bob/password",
            &[("password", "bob-password-2")],
        )
        .await;
    assert_redirect(&r, "/console/users/bob?done=password");
    AdminClient::new(c.transport.clone())
        .login("bob", "bob-password-2")
        .await;
    let r = c.post(users, "/console/users/bob/delete", &[]).await;
    assert_redirect(&r, "/console/users?done=deleted");
    assert_eq!(root.get("/api/v1/users/bob").await.status.as_u16(), 404);
    // The last admin cannot go.
    let r = c.post(users, "/console/users/root/delete", &[]).await;
    assert_eq!(r.status.as_u16(), 409, "{}", text(&r));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_api_token_is_offered_once_and_revoked() {
    let (server, _root, c) = setup().await;
    let tokens = "/console/tokens";
    let r = c
        .post(
            tokens,
            tokens,
            &[("description", "ci"), ("expires_in_days", "0")],
        )
        .await;
    let body = assert_refused(&r, 400, "invalid_input");
    assert!(
        body.contains("expires_at must be in the future"),
        "the API's: {body}"
    );
    let r = c
        .post(
            tokens,
            tokens,
            &[("description", "ci"), ("expires_in_days", "30")],
        )
        .await;
    assert_eq!(r.status.as_u16(), 303, "{}", text(&r));
    let page = text(&c.follow(&r).await);
    let at = page.find("/console/downloads/").expect("the download link");
    let link = &page[at..at + page[at..].find('"').expect("end of link")];
    let r = c.get(link).await;
    assert_eq!(r.status.as_u16(), 200);
    assert!(header(&r, "content-disposition").is_some_and(|d| d.starts_with("attachment")));
    let bearer = text(&r).trim().to_string();
    assert!(bearer.starts_with("kh_"), "{bearer}");
    assert_eq!(c.get(link).await.status.as_u16(), 404, "served once");
    // The token works, is listed without its secret, and never appears in a page.
    let api = AdminClient::new(c.transport.clone()).with_token(&bearer);
    expect_status(&api.get("/api/v1/tokens").await, 200);
    let id = bearer
        .strip_prefix("kh_")
        .and_then(|b| b.split_once('.'))
        .map(|(id, _)| id.to_string())
        .expect("token id");
    let secret = bearer.split_once('.').expect("secret").1;
    let listed = ok_page(&c, tokens).await;
    assert!(listed.contains(&format!("data-name=\"{id}\"")), "{listed}");
    assert!(!listed.contains(secret), "no secret in the page");
    let r = c
        .post(tokens, &format!("/console/tokens/{id}/revoke"), &[])
        .await;
    assert_redirect(&r, "/console/tokens?done=revoked");
    assert_eq!(api.get("/api/v1/tokens").await.status.as_u16(), 401);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn connections_are_created_refused_tested_edited_and_deleted() {
    let (server, root, c) = setup().await;
    let page = "/console/connections";
    let hsm = [
        ("name", "hsm1"),
        ("module", "/nonexistent/libpkcs11.so"),
        ("token_label", "part1"),
        ("pin_env", "KEYHOLD_TEST_NO_PIN"),
        ("pin_file", ""),
        ("pool_size", "2"),
        ("op_timeout_ms", ""),
    ];
    let r = c.post(page, "/console/connections/hsm", &hsm).await;
    assert_redirect(&r, "/console/connections?done=created");
    let mut both = hsm;
    both[0] = ("name", "hsm2");
    both[4] = ("pin_file", "/tmp/pin");
    let r = c.post(page, "/console/connections/hsm", &both).await;
    assert_refused(&r, 400, "invalid_input");
    // The test: Failed, naming the missing module.
    let r = c
        .post(page, "/console/connections/hsm/hsm1/test", &[])
        .await;
    let body = assert_refused(&r, 200, "connection_test_failed");
    assert!(body.contains("/nonexistent/libpkcs11.so"), "{body}");
    // Edit: the token label is fixed (the API's refusal), the page stays.
    let edit = "/console/connections/hsm/hsm1";
    let r = c
        .post(
            edit,
            edit,
            &[
                ("module", "/nonexistent/libpkcs11.so"),
                ("token_label", "other"),
                ("pin_env", "KEYHOLD_TEST_NO_PIN"),
                ("pool_size", "2"),
            ],
        )
        .await;
    assert!(r.status.is_client_error(), "{}", text(&r));
    assert!(text(&r).contains("role=\"alert\""), "{}", text(&r));
    // AWS: created (the secret never shown), refused twice, tested, deleted.
    let aws = [
        ("name", "aws1"),
        ("access_key_id", "AKIAEXAMPLEEXAMPLE01"),
        (
            "secret_access_key",
            "secretSecretSecretSecretSecretSecret0001",
        ),
        ("role_arn", ""),
        ("endpoint_url", "http://127.0.0.1:9"),
    ];
    let r = c.post(page, "/console/connections/aws", &aws).await;
    assert_redirect(&r, "/console/connections?done=created");
    let r = c.post(page, "/console/connections/aws", &aws).await;
    assert_refused(&r, 409, "already_exists");
    let listed = ok_page(&c, page).await;
    assert!(listed.contains("data-name=\"aws1\""), "{listed}");
    assert!(
        !listed.contains("secretSecretSecret"),
        "no secret in the page"
    );
    let r = c
        .post(page, "/console/connections/aws/aws1/test", &[])
        .await;
    assert_refused(&r, 200, "connection_test_failed");
    let r = c
        .post(page, "/console/connections/aws/aws1/delete", &[])
        .await;
    assert_redirect(&r, "/console/connections?done=deleted");
    let r = root.get("/api/v1/connections/aws/aws1").await;
    assert_eq!(r.status.as_u16(), 404);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_audit_page_filters_pages_and_shows_the_chain_status() {
    let (server, root, c) = setup().await;
    expect_status(&root.create_user("alice", ALICE_PASSWORD, None).await, 201);
    let alice = AdminClient::new(c.transport.clone())
        .login("alice", ALICE_PASSWORD)
        .await;
    let r = alice.create_user("mallory", ALICE_PASSWORD, None).await;
    assert_eq!(r.status.as_u16(), 403);
    for i in 0..4 {
        let body = json!({"name": format!("s{i}"), "recurrence": {"type": "daily", "at": "03:00"}});
        expect_status(&root.post("/api/v1/schedules", &body).await, 201);
    }
    let page = ok_page(&c, "/console/audit?user=alice&outcome=failure").await;
    assert!(page.contains("Audit chain verified"), "{page}");
    assert_eq!(page.matches("<tr data-name=").count(), 1, "{page}");
    assert!(page.contains("refused: admin_only"), "{page}");
    assert!(
        page.contains("value=\"alice\""),
        "the filter form keeps its values"
    );
    let page = ok_page(
        &c,
        "/console/audit?user=root&action=create_schedule&limit=2",
    )
    .await;
    assert_eq!(page.matches("<tr data-name=").count(), 2, "{page}");
    let marker = "id=\"audit-older\" rel=\"next\" href=\"";
    let at = page.find(marker).expect("older link") + marker.len();
    let older = page[at..at + page[at..].find('"').expect("end")].replace("&amp;", "&");
    assert!(older.contains("before="), "{older}");
    let page = ok_page(&c, &older).await;
    assert_eq!(page.matches("<tr data-name=").count(), 2, "{page}");
    assert!(page.contains("id=\"audit-newest\""), "{page}");
    let page = ok_page(&c, "/console/audit?outcome=success&store=nothing-here").await;
    assert!(page.contains("No records match."), "{page}");
    // Refused filters show the API's refusal.
    let r = c.get("/console/audit?limit=5000").await;
    assert_refused(&r, 400, "invalid_input");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn schedules_jobs_and_nodes_are_operated() {
    let (server, root, c) = setup().await;
    let page = "/console/operations";
    let r = c
        .post(
            page,
            "/console/operations/schedules",
            &[("name", "nightly"), ("type", "daily"), ("at", "03:00")],
        )
        .await;
    assert_redirect(&r, "/console/operations?done=created");
    let listed = text(&c.follow(&r).await);
    assert!(listed.contains("data-name=\"nightly\""), "{listed}");
    let r = c
        .post(
            page,
            "/console/operations/schedules",
            &[
                ("name", "bad"),
                ("type", "cron"),
                ("expression", "every day"),
            ],
        )
        .await;
    assert_refused(&r, 400, "invalid_input");
    let r = c
        .post(
            page,
            "/console/operations/schedules",
            &[("name", "nightly"), ("type", "daily"), ("at", "03:00")],
        )
        .await;
    assert_refused(&r, 409, "already_exists");
    let r = c
        .post(page, "/console/operations/schedules/nightly/delete", &[])
        .await;
    assert_redirect(&r, "/console/operations?done=deleted");
    let r = c.get("/console/operations/jobs/no-such-job").await;
    assert_refused(&r, 404, "not_found");

    // A job: "refresh all" of an account whose AWS KMS cannot be reached, started from
    // the account's page, followed on its own page, listed, and (ended) not cancelled.
    let conn = json!({"name": "nowhere", "access_key_id": "AKIAEXAMPLEEXAMPLE01",
        "secret_access_key": "secretSecretSecretSecretSecretSecret0001",
        "endpoint_url": "http://127.0.0.1:9"});
    expect_status(&root.post("/api/v1/connections/aws", &conn).await, 201);
    let account = json!({"id": ACCOUNT, "name": "acme", "regions": ["eu-west-1"],
        "aws_connection": "nowhere"});
    expect_status(&root.post("/api/v1/accounts", &account).await, 201);
    let account_page = format!("/console/accounts/{ACCOUNT}");
    let r = c
        .post(&account_page, &format!("{account_page}/refresh"), &[])
        .await;
    assert_eq!(r.status.as_u16(), 303, "{}", text(&r));
    let job_page = header(&r, "location").expect("Location").to_string();
    assert!(
        job_page.starts_with("/console/operations/jobs/"),
        "{job_page}"
    );
    let started = text(&c.follow(&r).await);
    assert!(started.contains("Refresh started."), "{started}");
    let job_id = job_page
        .trim_start_matches("/console/operations/jobs/")
        .split('?')
        .next()
        .expect("job id")
        .to_string();
    let ended = get_until(&root, &format!("/api/v1/jobs/{job_id}"), |j| {
        j["state"] != "running"
    })
    .await;
    let shown = ok_page(&c, &format!("/console/operations/jobs/{job_id}")).await;
    let state = ended["state"].as_str().expect("state");
    assert!(
        shown.contains(&format!("<span id=\"job-state\">{state}</span>")),
        "{shown}"
    );
    let listed = ok_page(&c, page).await;
    assert!(
        listed.contains(&format!("data-name=\"{job_id}\"")),
        "{listed}"
    );
    let r = c
        .post(
            &format!("/console/operations/jobs/{job_id}"),
            &format!("/console/operations/jobs/{job_id}/cancel"),
            &[],
        )
        .await;
    assert_refused(&r, 409, "job_finished");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_user_who_is_not_an_admin_sees_only_what_the_acls_grant() {
    let (server, root, _c) = setup().await;
    expect_status(&root.create_user("alice", ALICE_PASSWORD, None).await, 201);
    for (id, name, acl) in [
        (
            ACCOUNT,
            "granted",
            json!([{"principal": "user:alice", "permissions": ["view"]}]),
        ),
        (OTHER_ACCOUNT, "hidden", json!([])),
    ] {
        let body = json!({"id": id, "name": name, "acl": acl});
        expect_status(&root.post("/api/v1/accounts", &body).await, 201);
    }
    let mut c = ConsoleClient::new(&server);
    let r = c.sign_in("alice", ALICE_PASSWORD).await;
    assert_eq!(r.status.as_u16(), 303, "{}", text(&r));
    let accounts = ok_page(&c, "/console/accounts").await;
    assert!(
        accounts.contains(&format!("data-name=\"{ACCOUNT}\"")),
        "{accounts}"
    );
    assert!(!accounts.contains(OTHER_ACCOUNT), "{accounts}");
    assert!(
        ok_page(&c, &format!("/console/accounts/{ACCOUNT}"))
            .await
            .contains("granted")
    );
    let r = c.get(&format!("/console/accounts/{OTHER_ACCOUNT}")).await;
    assert_refused(&r, 403, "forbidden");
    let fields = [("id", "777788889999"), ("name", "mine"), ("acl", "")];
    let r = c
        .post("/console/accounts", "/console/accounts", &fields)
        .await;
    assert_refused(&r, 403, "admin_only");
    // Admin-only sections say so in place; the pages still render.
    let users = ok_page(&c, "/console/users").await;
    assert!(users.contains("data-code=\"admin_only\""), "{users}");
    assert!(users.contains("Change your password"), "{users}");
    let conns = ok_page(&c, "/console/connections").await;
    assert_eq!(
        conns.matches("data-code=\"admin_only\"").count(),
        2,
        "{conns}"
    );
    let ops = ok_page(&c, "/console/operations").await;
    assert!(ops.contains("data-code=\"admin_only\""), "{ops}");
    let r = c.get("/console/audit").await;
    assert_refused(&r, 403, "admin_only");
    // Her own tokens only, and her own password.
    let tokens = ok_page(&c, "/console/tokens").await;
    assert_eq!(
        tokens.matches("<tr data-name=").count(),
        1,
        "her session: {tokens}"
    );
    let r = c
        .post(
            "/console/users/alice",
            "/console/users/alice/password",
            &[
                ("current_password", ALICE_PASSWORD),
                ("password", "alice-new-password"),
            ],
        )
        .await;
    assert_redirect(&r, "/console/users/alice?done=password");
    server.stop().await;
}

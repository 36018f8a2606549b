//! "Refresh all" jobs through the admin API of a running server: started (202),
//! followed to their end, read and cancelled as the account's ACL allows, one per
//! account at a time. AWS KMS is unreachable here (the end-to-end refresh against the
//! KMS emulator is its own test), so every job ends `failed` with the reason.

use std::time::Duration;

use keyhold_tests::{
    TestServer,
    admin::{AdminClient, expect_error, expect_status},
    cli::KeyholdCli,
};
use serde_json::{Value, json};

const ACCOUNT: &str = "111122223333";

/// An AWS connection to a KMS endpoint nobody listens on, and an account using it.
async fn account(root: &AdminClient) {
    let conn = json!({
        "name": "nowhere",
        "access_key_id": "AKIAKEYHOLDTEST00001",
        "secret_access_key": "kmsStubSecretKey/0123456789+abcdefghijKLMN",
        "endpoint_url": "http://127.0.0.1:9/",
    });
    expect_status(&root.post("/api/v1/connections/aws", &conn).await, 201);
    let acc = json!({
        "id": ACCOUNT,
        "name": "prod",
        "regions": ["eu-west-1"],
        "aws_connection": "nowhere",
        "acl": [
            {"principal": "user:viewer", "permissions": ["view"]},
            {"principal": "user:operator",
             "permissions": ["view", "create_store", "update_store", "manage_keys"]},
        ],
    });
    expect_status(&root.post("/api/v1/accounts", &acc).await, 201);
}

async fn user(server: &TestServer, root: &AdminClient, name: &str) -> AdminClient {
    let r = root
        .create_user(name, "correct horse", Some(&json!(["users"])))
        .await;
    expect_status(&r, 201);
    server.admin().login(name, "correct horse").await
}

/// Polls job `id` until it has ended (the server's own AWS timeouts bound it).
async fn ended(client: &AdminClient, id: &str) -> Value {
    loop {
        let job = expect_status(&client.get(&format!("/api/v1/jobs/{id}")).await, 200);
        if job["state"] != "running" {
            return job;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn refresh_jobs_through_the_api() {
    let server = TestServer::admin_only().start().await;
    let root = server.root().await;
    account(&root).await;
    let viewer = user(&server, &root, "viewer").await;
    let operator = user(&server, &root, "operator").await;

    // Who may start it: admins and users with the refresh permissions.
    let path = format!("/api/v1/accounts/{ACCOUNT}/refresh");
    expect_error(&viewer.post(&path, &json!({})).await, 403, "forbidden");
    expect_error(
        &root
            .post("/api/v1/accounts/999988887777/refresh", &json!({}))
            .await,
        404,
        "not_found",
    );
    let job = expect_status(&operator.post(&path, &json!({})).await, 202);
    assert_eq!(job["kind"], "refresh");
    assert_eq!(job["account"], ACCOUNT);
    assert_eq!(job["started_by"], "operator");
    let id = job["id"].as_str().expect("id").to_string();
    // The viewer follows it; AWS cannot be reached: it fails, saying why.
    let end = ended(&viewer, &id).await;
    assert_eq!(end["state"], "failed", "{end}");
    assert!(end["finished_at"].is_i64(), "{end}");
    let message = end["error"]["message"].as_str().expect("message");
    assert!(message.contains("eu-west-1"), "{message}");
    assert!(end["error"]["code"].as_str().is_some(), "{end}");

    // Listed for those who may view the account; an ended job cannot be cancelled.
    let listed = expect_status(&viewer.get("/api/v1/jobs").await, 200);
    assert_eq!(listed.as_array().map(Vec::len), Some(1), "{listed}");
    let cancel = format!("/api/v1/jobs/{id}/cancel");
    expect_error(&viewer.post(&cancel, &json!({})).await, 403, "forbidden");
    expect_error(
        &operator.post(&cancel, &json!({})).await,
        409,
        "job_finished",
    );
    expect_error(&root.get("/api/v1/jobs/nope").await, 404, "not_found");

    // The account is free again; a user without view sees no job.
    let again = expect_status(&root.post(&path, &json!({})).await, 202);
    assert_ne!(again["id"], job["id"]);
    ended(&root, again["id"].as_str().expect("id")).await;
    let stranger = user(&server, &root, "stranger").await;
    let listed = expect_status(&stranger.get("/api/v1/jobs").await, 200);
    assert_eq!(listed, json!([]));
    expect_error(
        &stranger.get(&format!("/api/v1/jobs/{id}")).await,
        403,
        "forbidden",
    );

    // Starts, cancels and each job's end are audited (the end once the job's task
    // has recorded it).
    let mut audited = String::new();
    for _ in 0..500 {
        server.running.audit.flush().expect("audit flush");
        audited = std::fs::read_to_string(server.cfg.audit_path()).expect("audit log");
        if audited.matches("refresh_account_ended").count() == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        audited.matches("refresh_account_ended").count(),
        2,
        "{audited}"
    );
    assert!(audited.contains(r#""action":"cancel_job""#), "{audited}");
    assert!(audited.contains(r#""outcome":"failed""#), "{audited}");

    // An account without AWS connection cannot be refreshed.
    let bare = json!({"id": "444455556666", "name": "bare", "regions": ["eu-west-1"]});
    expect_status(&root.post("/api/v1/accounts", &bare).await, 201);
    expect_error(
        &root
            .post("/api/v1/accounts/444455556666/refresh", &json!({}))
            .await,
        409,
        "account_without_connection",
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn refresh_jobs_through_the_cli() {
    let server = TestServer::admin_only().start().await;
    let root = server.root().await;
    account(&root).await;
    let cli = KeyholdCli::for_server(&server);
    cli.run_with(
        &["login", "--password-env", "ROOT_PW"],
        "",
        &[("ROOT_PW", &server.root_password())],
    )
    .await
    .expect_code(0);

    // --wait follows the job to its end: AWS is unreachable, so it failed (exit 4),
    // printed with its reason.
    let r = cli
        .run(&["account", "refresh", ACCOUNT, "--wait"])
        .await
        .expect_code(4);
    assert!(r.stdout.contains("state"), "{}", r.stdout);
    assert!(r.stdout.contains("failed"), "{}", r.stdout);
    assert!(
        r.stdout.contains("summary           nothing changed"),
        "{}",
        r.stdout
    );
    assert!(r.stderr.contains("failed: "), "{}", r.stderr);
    let jobs = cli.json(&["job", "list"]).await;
    let id = jobs[0]["id"].as_str().expect("id").to_string();
    assert_eq!(jobs[0]["state"], "failed", "{jobs}");
    let listed = cli.run(&["job", "list"]).await.expect_code(0);
    assert!(listed.stdout.starts_with("ID "), "{}", listed.stdout);
    assert!(listed.stdout.contains(&id), "{}", listed.stdout);
    let shown = cli.json(&["job", "show", &id]).await;
    assert_eq!(shown["id"], id.as_str());
    let r = cli.run(&["job", "cancel", &id]).await.expect_code(3);
    assert!(r.stderr.contains("(job_finished)"), "{}", r.stderr);
    cli.run(&["job", "show", "nope"]).await.expect_code(3);

    // Without --wait: the job as started.
    let started = cli.json(&["account", "refresh", ACCOUNT]).await;
    assert_eq!(started["kind"], "refresh", "{started}");
    assert_eq!(started["account"], ACCOUNT, "{started}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_job_left_running_by_a_stopped_server_is_interrupted_at_the_next_start() {
    let server = TestServer::admin_only().start().await;
    let root = server.root().await;
    account(&root).await;
    // As if the server had stopped in the middle of a refresh.
    let job = keyhold::model::jobs::JobRecord::refresh("j-left".into(), ACCOUNT, "root", 1);
    server
        .store()
        .put(
            &keyhold::model::keys::job("j-left"),
            serde_json::to_vec(&job).expect("json"),
        )
        .expect("put");
    server
        .store()
        .put(
            &keyhold::model::jobs::running_refresh_key(ACCOUNT),
            b"j-left".to_vec(),
        )
        .expect("put");
    let builder = server.builder.clone();
    let dir = server.stop().await;
    let server = builder.in_dir(dir).start().await;
    let root = server.admin().login("root", &server.root_password()).await;
    let left = expect_status(&root.get("/api/v1/jobs/j-left").await, 200);
    assert_eq!(left["state"], "interrupted", "{left}");
    assert!(left["finished_at"].is_i64(), "{left}");
    // The account is free for a new refresh.
    let path = format!("/api/v1/accounts/{ACCOUNT}/refresh");
    expect_status(&root.post(&path, &json!({})).await, 202);
}

//! Credential rotation schedules end to end: the admin API and the CLI manage schedules
//! and assignments; the scheduler, on a clock the test drives, rotates the credential of
//! a linked store at each tick, once after a downtime, and records what happened.
//!
//! AWS is not reachable here: the store is linked by writing its AWS link in the durable
//! store, its account's AWS connection points at a closed port. What a run records is
//! checked against what the rotation answered (a new credential, or AWS's error), not
//! against how the rotation works.

use std::{sync::Arc, time::Duration};

use keyhold::{
    clock::ManualClock,
    model::{AwsLink, ConnectionState, StoreRecord, keys},
};
use keyhold_tests::{
    SourceFixture, TestServer,
    admin::{
        AdminClient, access_key_ids, created_store_id, expect_error, expect_status,
        health_check_key,
    },
    cli::KeyholdCli,
    paths::free_port,
};
use serde_json::{Value, json};
use time::{OffsetDateTime, macros::datetime};

const HC: &str = "hc";

/// Unix seconds of `t`.
fn unix(t: OffsetDateTime) -> i64 {
    t.unix_timestamp()
}

/// Links store `id` to AWS in the durable store (as a link operation would), in
/// `region`, and waits until it is served.
async fn link_in_store(server: &TestServer, id: &str, region: &str) {
    let entry = server
        .store()
        .get(&keys::store(id))
        .expect("store get")
        .expect("store record");
    let mut rec: StoreRecord = serde_json::from_slice(&entry.value).expect("store JSON");
    rec.aws = Some(AwsLink::new(
        "cks-0123456789abcdef0",
        ConnectionState::Connected,
    ));
    rec.region = Some(region.into());
    let rev = server
        .store()
        .put(&keys::store(id), serde_json::to_vec(&rec).expect("json"))
        .expect("store put");
    server.wait_for_revision(rev).await;
}

/// An AWS connection to a closed port, account 111122223333 on it, the health-check
/// key, and a store of that account. Returns the store's id.
async fn store_of_an_account(root: &AdminClient, name: &str) -> String {
    let endpoint = format!("http://127.0.0.1:{}", free_port());
    let r = root
        .post(
            "/api/v1/connections/aws",
            &json!({"name": "unreachable", "access_key_id": "AKIAIOSFODNN7EXAMPLE",
                    "secret_access_key": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
                    "endpoint_url": endpoint}),
        )
        .await;
    expect_status(&r, 201);
    let r = root
        .post(
            "/api/v1/accounts",
            &json!({"id": "111122223333", "name": "prod", "regions": ["eu-west-1"],
                    "aws_connection": "unreachable"}),
        )
        .await;
    expect_status(&r, 201);
    expect_status(
        &root.create_source_key("ctm", &health_check_key(HC)).await,
        201,
    );
    let r = root
        .create_store(
            &json!({"name": name, "source": "ctm", "health_check_key": HC,
                              "account": "111122223333"}),
        )
        .await;
    created_store_id(&r)
}

/// Waits until the store's scheduled rotation has run at `at`; returns the assignment.
async fn ran_at(root: &AdminClient, id: &str, at: OffsetDateTime) -> Value {
    let path = format!("/api/v1/stores/{id}/schedule");
    let wait = async {
        loop {
            let v = expect_status(&root.get(&path).await, 200);
            if v["last_run_at"] == unix(at) {
                return v;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(30), wait)
        .await
        .unwrap_or_else(|_| panic!("no scheduled rotation recorded at {at}"))
}

/// `PUT path` with `body`.
async fn root_put(root: &AdminClient, path: &str, body: Value) -> keyhold_tests::client::Reply {
    root.request("PUT", path, Some(&body), &[]).await
}

/// The store's access key ids.
async fn credentials(root: &AdminClient, id: &str) -> Vec<String> {
    let listed = expect_status(
        &root.get(&format!("/api/v1/stores/{id}/credentials")).await,
        200,
    );
    access_key_ids(&listed)
        .into_iter()
        .map(str::to_string)
        .collect()
}

/// Checks what a run recorded against the credentials before and after it: a new
/// credential named in `ok: <id>`, or an error (code and message) and no new credential.
fn check_recorded(shown: &Value, before: &[String], after: &[String]) {
    let result = shown["last_result"].as_str().expect("last_result");
    match result.strip_prefix("ok: ") {
        Some(akid) => {
            assert!(after.iter().any(|a| a == akid), "{result}: {after:?}");
            assert!(!before.iter().any(|a| a == akid), "{result}: a new one");
        }
        None => {
            assert_eq!(after, before, "a failed rotation adds nothing: {result}");
            let (code, message) = result.split_once(": ").expect("code: message");
            assert!(!code.is_empty() && !message.is_empty(), "{result}");
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn scheduled_rotation_runs_at_each_tick_and_catches_up_once() {
    let start = datetime!(2026-12-02 12:00 UTC);
    let clock = ManualClock::new(start);
    let server = TestServer::admin_only()
        .clock(Arc::new(clock.clone()))
        .start()
        .await;
    let root = server.root().await;
    let id = store_of_an_account(&root, "rotated").await;
    let store = format!("/api/v1/stores/{id}");

    // Schedules: validated, unique, listed with their next tick (by the server's clock).
    for (bad, says) in [
        (
            json!({"type": "monthly", "day": 30, "at": "03:00"}),
            "1 to 28",
        ),
        (json!({"type": "daily", "at": "3pm"}), "HH:MM"),
        (json!({"type": "cron", "expression": "0 3 * *"}), "5 fields"),
        (
            json!({"type": "cron", "expression": "0 25 * * *"}),
            "invalid cron expression",
        ),
    ] {
        let r = root
            .post(
                "/api/v1/schedules",
                &json!({"name": "bad", "recurrence": bad}),
            )
            .await;
        let message = expect_error(&r, 400, "invalid_input");
        assert!(message.contains(says), "{message}");
    }
    let nightly = json!({"name": "nightly", "recurrence": {"type": "daily", "at": "03:00"}});
    let created = expect_status(&root.post("/api/v1/schedules", &nightly).await, 201);
    assert_eq!(created["description"], "every day at 03:00 UTC");
    assert_eq!(
        created["next_run_at"],
        unix(datetime!(2026-12-03 03:00 UTC))
    );
    expect_error(
        &root.post("/api/v1/schedules", &nightly).await,
        409,
        "already_exists",
    );
    let listed = expect_status(&root.get("/api/v1/schedules").await, 200);
    assert_eq!(listed.as_array().map(Vec::len), Some(1), "{listed}");
    assert_eq!(
        expect_status(&root.get("/api/v1/schedules/nightly").await, 200)["recurrence"],
        json!({"type": "daily", "at": "03:00"})
    );
    expect_error(&root.get("/api/v1/schedules/nope").await, 404, "not_found");

    // Only a linked store takes a schedule.
    let assign = json!({"schedule": "nightly"});
    let path = format!("{store}/schedule");
    let put = |body: Value| root_put(&root, &path, body);
    let message = expect_error(
        &put(assign.clone()).await,
        409,
        "schedule_needs_linked_store",
    );
    assert!(message.contains("not linked to AWS KMS"), "{message}");
    link_in_store(&server, &id, "eu-west-1").await;
    expect_error(&put(json!({"schedule": "nope"})).await, 404, "not_found");
    let shown = expect_status(&put(assign.clone()).await, 200);
    assert_eq!(shown["schedule"], "nightly");
    assert_eq!(shown["assigned_at"], unix(start));
    assert_eq!(shown["next_run_at"], unix(datetime!(2026-12-03 03:00 UTC)));
    assert!(shown.get("last_run_at").is_none(), "{shown}");
    let rec = expect_status(&root.get(&store).await, 200);
    assert_eq!(rec["rotation_schedule"], "nightly", "{rec}");
    let message = expect_error(
        &root.delete("/api/v1/schedules/nightly").await,
        409,
        "schedule_in_use",
    );
    assert!(message.contains("'rotated'"), "{message}");

    // The first tick: one rotation, recorded with what it answered.
    let before = credentials(&root, &id).await;
    let tick = datetime!(2026-12-03 03:00 UTC);
    clock.set(tick);
    let shown = ran_at(&root, &id, tick).await;
    assert_eq!(shown["next_run_at"], unix(datetime!(2026-12-04 03:00 UTC)));
    let after = credentials(&root, &id).await;
    check_recorded(&shown, &before, &after);

    // Ten days down: one run when it comes back, the next one counted from then.
    let back = datetime!(2026-12-13 17:45 UTC);
    clock.set(back);
    let shown = ran_at(&root, &id, back).await;
    assert_eq!(shown["next_run_at"], unix(datetime!(2026-12-14 03:00 UTC)));
    let again = credentials(&root, &id).await;
    check_recorded(&shown, &after, &again);
    if shown["last_result"]
        .as_str()
        .is_some_and(|r| r.starts_with("ok: "))
    {
        assert_eq!(again.len(), after.len() + 1, "one run, not ten");
    }

    // Stopped for a week, restarted later: the schedule catches up once at start.
    let builder = server.builder.clone();
    let dir = server.stop().await;
    let later = datetime!(2026-12-20 09:10 UTC);
    let clock = ManualClock::new(later);
    let server = builder.in_dir(dir).clock(Arc::new(clock)).start().await;
    let root = server.root().await;
    let shown = ran_at(&root, &id, later).await;
    assert_eq!(shown["next_run_at"], unix(datetime!(2026-12-21 03:00 UTC)));
    check_recorded(&shown, &again, &credentials(&root, &id).await);

    // Unassign: gone from the store; then the schedule can be deleted.
    expect_status(&root.delete(&format!("{store}/schedule")).await, 204);
    expect_error(
        &root.get(&format!("{store}/schedule")).await,
        404,
        "not_found",
    );
    expect_error(
        &root.delete(&format!("{store}/schedule")).await,
        404,
        "not_found",
    );
    let rec = expect_status(&root.get(&store).await, 200);
    assert!(rec.get("rotation_schedule").is_none(), "{rec}");
    expect_status(&root.delete("/api/v1/schedules/nightly").await, 204);

    // Every change and each of the three runs is in the verified audit log.
    let dir = server.stop().await;
    let path = dir.path().join("audit.jsonl");
    keyhold_tests::server::verify_audit(dir.path());
    let text = std::fs::read_to_string(&path).expect("audit");
    for action in [
        "create_schedule",
        "assign_schedule",
        "unassign_schedule",
        "delete_schedule",
    ] {
        assert!(
            text.contains(&format!("\"action\":\"{action}\"")),
            "audit lacks {action}"
        );
    }
    let runs = text.matches("\"action\":\"scheduled_rotation\"").count();
    assert_eq!(runs, 3, "three scheduled runs audited");
    assert!(text.contains(&format!("\"object\":\"store/{id}\"")));
}

#[tokio::test(flavor = "multi_thread")]
async fn only_admins_manage_schedules() {
    let server = TestServer::admin_only().start().await;
    let root = server.root().await;
    expect_status(
        &root.create_user("bob", "bob's long password 1", None).await,
        201,
    );
    let bob = server.admin().login("bob", "bob's long password 1").await;
    let body = json!({"name": "n", "recurrence": {"type": "daily", "at": "03:00"}});
    expect_error(
        &bob.post("/api/v1/schedules", &body).await,
        403,
        "admin_only",
    );
    expect_status(&root.post("/api/v1/schedules", &body).await, 201);
    // Reading is open to every caller; deleting is not.
    expect_status(&bob.get("/api/v1/schedules/n").await, 200);
    expect_error(&bob.delete("/api/v1/schedules/n").await, 403, "admin_only");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn schedules_through_the_cli() {
    let server = TestServer::builder()
        .source(SourceFixture::ctm())
        .without_store()
        .admin()
        .start()
        .await;
    let root = server.root().await;
    let id = store_of_an_account(&root, "cli-store").await;
    let cli = KeyholdCli::for_server(&server);
    cli.login("root", &server.root_password()).await;

    // Each form; bad input is refused locally (exit 2) with the rule.
    cli.ok(&["schedule", "create", "nightly", "--daily", "03:00"])
        .await;
    let weekly = cli
        .json(&["schedule", "create", "weekly", "--weekly", "sun@23:30"])
        .await;
    assert_eq!(
        weekly["recurrence"],
        json!({"type": "weekly", "day": "sun", "at": "23:30"})
    );
    let monthly = cli
        .ok(&["schedule", "create", "monthly", "--monthly", "28@00:15"])
        .await;
    assert!(
        monthly.contains("every month on day 28 at 00:15 UTC"),
        "{monthly}"
    );
    cli.ok(&[
        "schedule",
        "create",
        "workdays",
        "--cron",
        "*/30 8-18 * * mon-fri",
    ])
    .await;
    for (args, says) in [
        (&["--monthly", "30@03:00"][..], "1 to 28"),
        (&["--monthly", "1"], "N@HH:MM"),
        (&["--weekly", "funday@03:00"], "'funday'"),
        (&["--daily", "25:00"], "HH:MM"),
        (&["--cron", "* * *"], "5 fields"),
        (&["--cron", "0 0 30 2 *"], "never matches"),
        (
            &["--daily", "03:00", "--cron", "0 3 * * *"],
            "cannot be used with",
        ),
        (&[], "required"),
    ] {
        let mut all = vec!["schedule", "create", "x"];
        all.extend(args);
        let r = cli.run(&all).await.expect_code(2);
        assert!(r.stderr.contains(says), "{args:?}: {}", r.stderr);
    }
    let table = cli.ok(&["schedule", "list"]).await;
    for line in [
        "every day at 03:00 UTC",
        "every sunday at 23:30 UTC",
        "cron '*/30 8-18 * * mon-fri' (UTC)",
    ] {
        assert!(table.contains(line), "{table}");
    }
    let shown = cli.json(&["schedule", "show", "nightly"]).await;
    assert_eq!(shown["name"], "nightly");

    // Assigning: refused on an unlinked store (exit 3 with the code), then assigned.
    let r = cli
        .run(&["keystore", "schedule", "assign", "cli-store", "nightly"])
        .await
        .expect_code(3);
    assert!(
        r.stderr.contains("(schedule_needs_linked_store)"),
        "{}",
        r.stderr
    );
    link_in_store(&server, &id, "eu-west-1").await;
    let assigned = cli
        .json(&["keystore", "schedule", "assign", "cli-store", "nightly"])
        .await;
    assert_eq!(
        (assigned["store_id"].as_str(), assigned["schedule"].as_str()),
        (Some(id.as_str()), Some("nightly"))
    );
    let table = cli.ok(&["keystore", "schedule", "show", "cli-store"]).await;
    assert!(
        table.contains("next_run_at") && table.contains("every day at 03:00 UTC"),
        "{table}"
    );
    let r = cli
        .run(&["schedule", "delete", "nightly"])
        .await
        .expect_code(3);
    assert!(
        r.stderr.contains("'cli-store'") && r.stderr.contains("(schedule_in_use)"),
        "{}",
        r.stderr
    );
    let out = cli
        .ok(&["keystore", "schedule", "unassign", "cli-store"])
        .await;
    assert!(out.contains("Unassigned"), "{out}");
    cli.run(&["keystore", "schedule", "show", "cli-store"])
        .await
        .expect_code(3);
    let out = cli.ok(&["schedule", "delete", "nightly"]).await;
    assert!(out.contains("Deleted schedule nightly."), "{out}");
    server.stop().await;
}

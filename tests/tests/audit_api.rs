//! The audit log over the admin API, against a running keyhold whose log spans several
//! segments: `GET /api/v1/audit` lists records newest first, filtered by store (id or
//! name), user, outcome and action, a page at a time (`before`), refusing bad limits;
//! `GET /api/v1/audit/status` verifies the chain, and reports it broken, naming the
//! segment and record, once a segment file is edited on disk; both are for admins only;
//! `keyhold audit list` and `keyhold audit status` drive them.

use keyhold_tests::{
    TestServer, XksClient,
    admin::{
        AdminClient, created_store_id, credential_of, expect_error, expect_status, health_check_key,
    },
    aws::get_until,
    cli::KeyholdCli,
};
use serde_json::{Value, json};

const HC: &str = "audit-hc";
const ALICE: &str = "alice";
const ALICE_PASSWORD: &str = "alice-password-for-audit";

/// An admin-only server whose audit segments hold a few records each.
async fn server() -> TestServer {
    TestServer::admin_only()
        .toml_tail("\n[audit]\nsegment_max_bytes = 4096\n")
        .start()
        .await
}

/// What the tests act on: store `audited` (and its id), store `other`, user alice (not
/// an admin), alice's refused attempt, and XKS requests refused for `audited`.
struct World {
    server: TestServer,
    root: AdminClient,
    alice: AdminClient,
    audited: String,
}

async fn world() -> World {
    let server = server().await;
    let root = server.root().await;
    expect_status(
        &root.create_source_key("ctm", &health_check_key(HC)).await,
        201,
    );
    let r = root
        .create_store(&json!({"name": "audited", "source": "ctm", "health_check_key": HC}))
        .await;
    let created = expect_status(&r, 201);
    let audited = created["store"]["id"].as_str().expect("id").to_string();
    let file = &created["credentials_file"];
    let r = root
        .create_store(&json!({"name": "other", "source": "ctm", "health_check_key": HC}))
        .await;
    created_store_id(&r);
    // A refused change by root: a duplicate name.
    let r = root
        .create_store(&json!({"name": "other", "source": "ctm", "health_check_key": HC}))
        .await;
    assert_eq!(r.status.as_u16(), 409, "duplicate store name");
    expect_status(&root.create_user(ALICE, ALICE_PASSWORD, None).await, 201);
    let alice = server.admin().login(ALICE, ALICE_PASSWORD).await;
    // Alice may not create users: refused and audited.
    expect_error(
        &alice.create_user("mallory", ALICE_PASSWORD, None).await,
        403,
        "admin_only",
    );
    // Block and unblock by id: records naming the store's id.
    let path = format!("/api/v1/stores/{audited}");
    expect_status(&root.post(&format!("{path}/block"), &json!({})).await, 200);
    expect_status(
        &root.post(&format!("{path}/unblock"), &json!({})).await,
        200,
    );
    // XKS requests for keys that do not exist: failures, always audited.
    let uri_path = file["XksProxyUriPath"].as_str().expect("XksProxyUriPath");
    let xks = XksClient::new(server.transport(), credential_of(file), uri_path);
    for i in 0..20 {
        let r = xks
            .encrypt(&format!("missing-{i}"), b"x", None, false)
            .await;
        assert!(r.status.is_client_error(), "{}", r.status);
    }
    // The XKS records are written in the background: wait until all are there.
    get_until(
        &root,
        "/api/v1/audit?store=audited&action=Encrypt&limit=1000",
        |v| v["records"].as_array().map_or(0, Vec::len) == 20,
    )
    .await;
    World {
        server,
        root,
        alice,
        audited,
    }
}

fn records(page: &Value) -> &Vec<Value> {
    page["records"].as_array().expect("records")
}

fn seqs(page: &Value) -> Vec<u64> {
    records(page)
        .iter()
        .map(|r| r["seq"].as_u64().expect("seq"))
        .collect()
}

async fn page(root: &AdminClient, query: &str) -> Value {
    expect_status(&root.get(&format!("/api/v1/audit{query}")).await, 200)
}

#[tokio::test(flavor = "multi_thread")]
async fn records_are_listed_newest_first_filtered_and_paged() {
    let w = world().await;
    let root = &w.root;
    let all = page(root, "?limit=1000").await;
    let all_seqs = seqs(&all);
    assert!(all_seqs.len() > 30, "{all}");
    assert!(
        all_seqs.windows(2).all(|p| p[0] == p[1] + 1),
        "newest first, every record: {all_seqs:?}"
    );
    assert_eq!(*all_seqs.last().expect("records"), 1);
    assert_eq!(all["next_before"], Value::Null, "the first record was read");
    assert_eq!(all["unreadable"], 0);
    let segments = std::fs::read_dir(w.server.path())
        .expect("data dir")
        .filter(|e| {
            e.as_ref()
                .is_ok_and(|e| e.file_name().to_string_lossy().starts_with("audit.jsonl."))
        })
        .count();
    assert!(segments >= 2, "the log spans several segments");

    // By store, by name or by id: its create (named), block/unblock (by id), XKS
    // requests (named); nothing of the other store.
    let by_name = page(root, "?store=audited&limit=1000").await;
    let by_id = page(root, &format!("?store={}&limit=1000", w.audited)).await;
    assert_eq!(by_name, by_id);
    let actions: Vec<&str> = records(&by_name)
        .iter()
        .map(|r| r["action"].as_str().unwrap_or("-"))
        .collect();
    for a in ["create_store", "block_store", "unblock_store", "Encrypt"] {
        assert!(actions.contains(&a), "{a} in {actions:?}");
    }
    for r in records(&by_name) {
        let store = r["store"].as_str().expect("store");
        assert!(store == "audited" || store == w.audited, "{r}");
    }
    assert_eq!(
        records(&by_name)
            .iter()
            .filter(|r| r["kind"] == "xks")
            .count(),
        20
    );
    let xks = records(&by_name)
        .iter()
        .find(|r| r["kind"] == "xks")
        .expect("an XKS record");
    assert_eq!(xks["object"], "store/audited/key/missing-19", "{xks}");
    assert_eq!(xks["success"], false);

    // By user: alice's refused attempt, after her login.
    let alice_all = page(root, "?user=alice").await;
    let actions: Vec<&Value> = records(&alice_all).iter().map(|r| &r["action"]).collect();
    assert_eq!(
        actions,
        [&json!("create_user"), &json!("login")],
        "{alice_all}"
    );
    let alice = page(root, "?user=alice&outcome=failure").await;
    assert_eq!(records(&alice).len(), 1, "{alice}");
    let refused = &records(&alice)[0];
    assert_eq!(refused["action"], "create_user");
    assert_eq!(refused["outcome"], "refused: admin_only");
    assert_eq!(refused["success"], false);

    // By outcome: failures (refusals and XKS errors), successes, an exact outcome.
    let failures = page(root, "?outcome=failure&limit=1000").await;
    assert!(records(&failures).iter().all(|r| r["success"] == false));
    assert_eq!(
        records(&failures).len(),
        22,
        "20 XKS, root's 409, alice's 403"
    );
    let successes = page(root, "?outcome=success&limit=1000").await;
    assert!(records(&successes).iter().all(|r| r["success"] == true));
    assert!(
        records(&successes)
            .iter()
            .any(|r| r["action"] == "create_user" && r["object"] == "user/alice")
    );
    let exact = page(root, "?outcome=refused%3A+admin_only").await;
    assert_eq!(seqs(&exact), seqs(&alice));
    // Combined: root's failed create_store only.
    let combined = page(root, "?user=root&outcome=failure&action=create_store").await;
    assert_eq!(records(&combined).len(), 1, "{combined}");
    assert!(
        records(&combined)[0]["outcome"]
            .as_str()
            .expect("outcome")
            .starts_with("refused: ")
    );

    // Paging: pages of 7 follow `next_before` through every segment.
    let mut walked = Vec::new();
    let mut query = "?limit=7".to_string();
    loop {
        let p = page(root, &query).await;
        assert!(records(&p).len() <= 7);
        walked.extend(seqs(&p));
        match p["next_before"].as_u64() {
            Some(before) => query = format!("?limit=7&before={before}"),
            None => break,
        }
    }
    // Reading adds no records: the walk equals the first listing.
    assert_eq!(walked, all_seqs);
    let first = page(root, "").await;
    assert_eq!(records(&first).len(), 100.min(all_seqs.len()));
    w.server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_queries_and_non_admins_are_refused() {
    let w = world().await;
    for q in [
        "?limit=1001",
        "?limit=0",
        "?limit=many",
        "?before=0",
        "?colour=red",
        "?user=a&user=b",
    ] {
        let m = expect_error(
            &w.root.get(&format!("/api/v1/audit{q}")).await,
            400,
            "invalid_input",
        );
        assert!(!m.is_empty(), "{q}");
    }
    let m = expect_error(
        &w.root.get("/api/v1/audit?limit=1001").await,
        400,
        "invalid_input",
    );
    assert!(m.contains("1 to 1000"), "{m}");
    for path in ["/api/v1/audit", "/api/v1/audit/status"] {
        let m = expect_error(&w.alice.get(path).await, 403, "admin_only");
        assert!(m.contains(ALICE), "{m}");
        expect_error(&w.server.admin().get(path).await, 401, "unauthenticated");
    }
    w.server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_chain_status_is_verified_then_broken_after_an_edit_on_disk() {
    let w = world().await;
    let root = &w.root;
    let status = expect_status(&root.get("/api/v1/audit/status").await, 200);
    assert_eq!(status["state"], "verified", "{status}");
    assert_eq!(status["problems"], json!([]));
    assert!(
        status["segments"].as_u64().expect("segments") >= 2,
        "{status}"
    );
    assert_eq!(status["keyed_from"], 1, "the chain is keyed from the start");
    let newest = seqs(&page(root, "?limit=1").await)[0];
    assert_eq!(status["last_seq"], newest);
    assert_eq!(status["records"], newest);
    let anchor = &status["anchor"];
    assert_eq!(anchor["matched"], true, "{status}");
    assert!(anchor["seq"].as_u64().expect("anchor seq") <= newest);

    // Edit a record of the first (closed) segment: its second line's time.
    let path = w.server.path().join("audit.jsonl");
    let text = std::fs::read_to_string(&path).expect("first segment");
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    let edited = lines[1].replacen("\"time\":\"20", "\"time\":\"19", 1);
    assert_ne!(edited, lines[1]);
    lines[1] = edited;
    std::fs::write(&path, lines.join("\n") + "\n").expect("edit the segment");

    let status = expect_status(&root.get("/api/v1/audit/status").await, 200);
    assert_eq!(status["state"], "broken", "{status}");
    let first = &status["problems"][0];
    assert_eq!(first["kind"], "damaged_segment");
    assert_eq!(first["segment"], "audit.jsonl");
    assert_eq!(first["line"], 2);
    let message = first["message"].as_str().expect("message");
    assert!(message.contains("does not match its hash"), "{message}");
    // The records are still listed, as written.
    let listed = page(root, "?limit=1000").await;
    let second = records(&listed)
        .iter()
        .find(|r| r["seq"] == 2)
        .expect("record 2");
    assert!(second["time"].as_str().expect("time").starts_with("19"));

    // The CLI says the same, and exits 1.
    let cli = KeyholdCli::for_server(&w.server);
    cli.login("root", &w.server.root_password()).await;
    let run = cli.run(&["audit", "status"]).await.expect_code(1);
    assert!(run.stdout.contains("broken"), "{}", run.stdout);
    assert!(
        run.stdout.contains("audit.jsonl: record 2 does not verify"),
        "{}",
        run.stdout
    );
    assert!(run.stderr.contains("does NOT verify"), "{}", run.stderr);
    w.server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_cli_lists_filtered_pages_and_a_verified_status() {
    let w = world().await;
    let cli = KeyholdCli::for_server(&w.server);
    cli.login("root", &w.server.root_password()).await;
    let status = cli.json(&["audit", "status"]).await;
    assert_eq!(status["state"], "verified", "{status}");
    let text = cli.ok(&["audit", "status"]).await;
    assert!(
        text.contains("verified") && text.contains("matches"),
        "{text}"
    );

    let first = cli
        .json(&[
            "audit",
            "list",
            "--store",
            "audited",
            "--outcome",
            "failure",
            "--limit",
            "5",
        ])
        .await;
    assert_eq!(records(&first).len(), 5);
    let before = first["next_before"].as_u64().expect("next_before");
    let api = page(&w.root, "?store=audited&outcome=failure&limit=5").await;
    assert_eq!(first, api, "the CLI shows the API's page");
    let next = cli
        .json(&[
            "audit",
            "list",
            "--store",
            "audited",
            "--outcome",
            "failure",
            "--before",
            &before.to_string(),
        ])
        .await;
    assert!(seqs(&next).iter().all(|s| *s < before));
    assert_eq!(seqs(&first).len() + seqs(&next).len(), 20);

    let table = cli.ok(&["audit", "list", "--user", "alice"]).await;
    assert!(table.starts_with("SEQ"), "{table}");
    assert!(table.contains("refused: admin_only"), "{table}");
    let table = cli.ok(&["audit", "list", "--limit", "2"]).await;
    assert!(table.contains("(older records: add --before "), "{table}");
    // Refusals keep the API's code; exit 3.
    let run = cli
        .run(&["audit", "list", "--limit", "5000"])
        .await
        .expect_code(3);
    assert!(run.stderr.contains("(invalid_input)"), "{}", run.stderr);
    let alice = KeyholdCli::for_server(&w.server);
    alice.login(ALICE, ALICE_PASSWORD).await;
    let run = alice.run(&["audit", "list"]).await.expect_code(3);
    assert!(run.stderr.contains("(admin_only)"), "{}", run.stderr);
    w.server.stop().await;
}

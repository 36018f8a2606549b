//! A store's traffic history over the wire: real signed XKS calls (answered and
//! refused) on a real server whose sampler runs every second
//! (`metrics.history_interval_seconds = 1`), read back through
//! `GET /api/v1/stores/{id}/metrics` and `keyhold keystore metrics`; unknown stores,
//! callers without `view` on the store, and the setting's limits.

use std::time::{Duration, Instant};

use keyhold_tests::{
    Credential, SourceFixture, TestServer,
    admin::{AdminClient, created_store_id, expect_error, expect_status, health_check_key},
    cli::KeyholdCli,
    console::{ConsoleClient, text},
    fixture::{KEY_ALL, KEY_DECRYPT_ONLY, STORE},
};
use serde_json::{Value, json};

const SAMPLED_EVERY_SECOND: &str = "[metrics]\nhistory_interval_seconds = 1\n";

async fn server() -> TestServer {
    TestServer::builder()
        .admin()
        .toml_tail(SAMPLED_EVERY_SECOND)
        .start()
        .await
}

/// Totals over a history's points: (requests, refusals by error name).
fn totals(h: &Value) -> (u64, std::collections::BTreeMap<String, u64>) {
    let mut requests = 0;
    let mut errors = std::collections::BTreeMap::new();
    for p in h["points"].as_array().expect("points") {
        requests += p["requests"].as_u64().expect("requests");
        for (name, n) in p["errors"].as_object().expect("errors") {
            *errors.entry(name.clone()).or_insert(0) += n.as_u64().expect("count");
        }
    }
    (requests, errors)
}

/// Reads `path` until `done` holds for the answer (generous deadline).
async fn poll(root: &AdminClient, path: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let h = expect_status(&root.get(path).await, 200);
        if done(&h) {
            return h;
        }
        assert!(Instant::now() < deadline, "{path} never got there: {h}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn signed_xks_calls_show_up_by_interval_and_error_name() {
    let server = server().await;
    let root = server.root().await;
    let path = format!("/api/v1/stores/{STORE}/metrics");
    let before = expect_status(&root.get(&path).await, 200);
    assert_eq!(before["points"], json!([]), "no traffic yet: {before}");
    assert_eq!(before["interval_seconds"], 1);
    assert_eq!(before["window_seconds"], 360, "360 intervals of 1 s");

    let xks = server.client();
    for i in 0..5u8 {
        xks.encrypt_ok(KEY_ALL, &[i; 16], None).await;
    }
    xks.metadata(KEY_ALL).await.assert_status(200, "metadata");
    for _ in 0..3 {
        xks.encrypt("no-such-key", b"x", None, false)
            .await
            .assert_error(404, "KeyNotFoundException");
    }
    xks.encrypt(KEY_DECRYPT_ONLY, b"x", None, false)
        .await
        .assert_error(400, "InvalidKeyUsageException");
    // Signed with an unknown credential: routed to the store, refused.
    xks.with_cred(Credential::new("AKIDUNKNOWN0000000000", "not-the-secret"))
        .health()
        .await
        .assert_error(401, "AuthenticationFailedException");
    let expected: std::collections::BTreeMap<String, u64> = [
        ("AuthenticationFailedException".to_string(), 1),
        ("InvalidKeyUsageException".to_string(), 1),
        ("KeyNotFoundException".to_string(), 3),
    ]
    .into();

    let h = poll(&root, &path, |h| totals(h).0 >= 11).await;
    assert_eq!(totals(&h), (11, expected.clone()), "{h}");
    let id = server.store_id();
    assert_eq!(
        (h["store"].as_str(), h["name"].as_str()),
        (Some(id.as_str()), Some(STORE))
    );
    let nodes = expect_status(&root.get("/api/v1/nodes").await, 200);
    assert_eq!(h["node"], nodes["this_node"], "the answering node's view");
    let points = h["points"].as_array().expect("points");
    let mut last_at = 0;
    for p in points {
        let at = p["at"].as_i64().expect("at");
        assert!(at > last_at, "newest last: {h}");
        last_at = at;
        let requests = p["requests"].as_u64().expect("requests");
        assert!(requests > 0, "only intervals with requests: {h}");
        assert_eq!(
            p["requests_per_second"].as_f64(),
            Some(requests as f64),
            "1 s intervals"
        );
        if let (Some(p50), Some(p99)) = (p["p50_us"].as_u64(), p["p99_us"].as_u64()) {
            assert!(0 < p50 && p50 <= p99 && p99 <= 5_000_000, "{p}");
        }
    }
    assert!(
        points.iter().any(|p| p["p99_us"].as_u64().is_some()),
        "latencies are recorded: {h}"
    );
    assert!(h["sampled_at"].as_i64().expect("sampled_at") >= last_at);

    // Later samples add nothing for traffic already counted.
    let sampled = h["sampled_at"].as_i64().expect("sampled_at");
    let later = poll(&root, &path, |l| {
        l["sampled_at"].as_i64() >= Some(sampled + 2)
    })
    .await;
    assert_eq!(totals(&later), (11, expected.clone()), "{later}");
    // By id as by name.
    let by_id = expect_status(
        &root.get(&format!("/api/v1/stores/{id}/metrics")).await,
        200,
    );
    assert_eq!(totals(&by_id), (11, expected));

    // The CLI: a table by default, the API's JSON with --output json.
    let cli = KeyholdCli::for_server(&server);
    cli.login("root", &server.root_password()).await;
    let table = cli.ok(&["keystore", "metrics", STORE]).await;
    assert!(
        table.contains(&format!("Key store {STORE} ({id}) on node ")),
        "{table}"
    );
    assert!(
        table.contains("REQUESTS  REQ/S") && table.contains("KeyNotFoundException="),
        "{table}"
    );
    let json = cli.json(&["keystore", "metrics", &id]).await;
    assert_eq!(totals(&json).0, 11, "{json}");
    let missing = cli.run(&["keystore", "metrics", "no-such-store"]).await;
    assert_ne!(missing.code, 0);
    assert!(
        missing.stderr.contains("no-such-store"),
        "{}",
        missing.stderr
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_console_store_page_draws_the_charts_from_the_api() {
    let server = TestServer::builder()
        .admin_line("plain_http = false")
        .toml_tail(SAMPLED_EVERY_SECOND)
        .start()
        .await;
    let mut console = ConsoleClient::new(&server);
    let root = AdminClient::new(console.transport.clone())
        .login("root", &server.root_password())
        .await;
    assert_eq!(
        console
            .sign_in("root", &server.root_password())
            .await
            .status
            .as_u16(),
        303
    );
    let page = format!("/console/stores/{}", server.store_id());
    let r = console.get(&page).await;
    assert_eq!(r.status.as_u16(), 200);
    let html = text(&r);
    assert!(
        html.contains("id=\"store-charts\"") && html.contains("No traffic in the last hour"),
        "{html}"
    );

    let xks = server.client();
    for i in 0..3u8 {
        xks.encrypt_ok(KEY_ALL, &[i; 16], None).await;
    }
    for _ in 0..2 {
        xks.encrypt("no-such-key", b"x", None, false)
            .await
            .assert_error(404, "KeyNotFoundException");
    }
    poll(&root, &format!("/api/v1/stores/{STORE}/metrics"), |h| {
        totals(h).0 >= 5
    })
    .await;
    let r = console.get(&page).await;
    assert_eq!(r.status.as_u16(), 200);
    let html = text(&r);
    assert_eq!(
        html.matches("role=\"img\"").count(),
        3,
        "three charts: {html}"
    );
    for want in [
        "Requests per second, acme",
        "Latency p50 and p99, acme",
        "Refused requests by XKS error, acme",
        ": 5 requests, 2 refused.",
        "KeyNotFoundException",
        "<table id=\"traffic-",
    ] {
        assert!(html.contains(want), "{want}: {html}");
    }
    assert!(!html.contains("No traffic in the last hour"));
    assert!(!html.to_lowercase().contains("<script"));

    // `last` keeps the newest points only, within its bounds.
    let path = format!("/api/v1/stores/{STORE}/metrics");
    let all = expect_status(&root.get(&path).await, 200);
    let newest = expect_status(&root.get(&format!("{path}?last=1")).await, 200);
    assert_eq!(
        newest["points"].as_array().map(Vec::len),
        Some(1),
        "{newest}"
    );
    assert_eq!(
        newest["points"][0]["at"],
        all["points"]
            .as_array()
            .and_then(|p| p.last())
            .expect("points")["at"]
    );
    for bad in ["last=0", "last=361", "last=one", "points=1"] {
        expect_error(
            &root.get(&format!("{path}?{bad}")).await,
            400,
            "invalid_input",
        );
    }

    // The list shows the current rate: traffic keeps flowing until a sampled interval
    // with requests is the newest one the list reads.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let traffic = {
        let stop = stop.clone();
        let xks = server.client();
        tokio::spawn(async move {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                xks.encrypt_ok(KEY_ALL, b"rate", None).await;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    let rate = loop {
        let html = text(&console.get("/console/stores").await);
        let cell = html
            .split("data-metric=\"request-rate\">")
            .nth(1)
            .and_then(|rest| rest.split('<').next())
            .map(str::to_string);
        if let Some(r) = cell.as_deref().and_then(|c| c.parse::<f64>().ok()) {
            if r > 0.0 {
                break r;
            }
        }
        assert!(
            Instant::now() < deadline,
            "no request rate in the list: {html}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    traffic.await.expect("traffic task");
    assert!(rate.is_finite() && rate > 0.0, "{rate}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn unknown_stores_and_callers_without_view_are_refused() {
    let server = TestServer::builder()
        .admin()
        .toml_tail(SAMPLED_EVERY_SECOND)
        .extra_source(SourceFixture::ctm_named("ctm2", "ctm2.key"))
        .start()
        .await;
    let root = server.root().await;
    expect_error(
        &root.get("/api/v1/stores/no-such-store/metrics").await,
        404,
        "not_found",
    );
    expect_error(
        &server
            .admin()
            .get(&format!("/api/v1/stores/{STORE}/metrics"))
            .await,
        401,
        "unauthenticated",
    );

    // bob may view account 111122223333 and its store; carol nothing.
    expect_status(
        &root
            .create_source_key("ctm2", &health_check_key("bobs-hc"))
            .await,
        201,
    );
    let acl = json!([{"principal": "user:bob", "permissions": ["view"]}]);
    let r = root
        .post(
            "/api/v1/accounts",
            &json!({"id": "111122223333", "name": "bobs", "acl": acl}),
        )
        .await;
    expect_status(&r, 201);
    let r = root
        .create_store(
            &json!({"name": "bobs-store", "account": "111122223333", "source": "ctm2",
                              "health_check_key": "bobs-hc"}),
        )
        .await;
    let bobs = created_store_id(&r);
    for user in ["bob", "carol"] {
        let r = root
            .create_user(user, "correct horse", Some(&json!(["users"])))
            .await;
        expect_status(&r, 201);
    }
    let bob = server.admin().login("bob", "correct horse").await;
    let carol = server.admin().login("carol", "correct horse").await;
    let h = expect_status(&bob.get("/api/v1/stores/bobs-store/metrics").await, 200);
    assert_eq!(
        (h["store"].as_str(), h["points"].clone()),
        (Some(bobs.as_str()), json!([]))
    );
    for path in [
        "/api/v1/stores/bobs-store/metrics".to_string(),
        format!("/api/v1/stores/{bobs}/metrics"),
    ] {
        expect_error(&carol.get(&path).await, 403, "forbidden");
    }
    // The config's store has no account: admins only.
    expect_error(
        &bob.get(&format!("/api/v1/stores/{STORE}/metrics")).await,
        403,
        "forbidden",
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_sampling_interval_setting_is_checked() {
    for bad in ["0", "61"] {
        let tail = format!("[metrics]\nhistory_interval_seconds = {bad}\n");
        let refused = TestServer::builder()
            .toml_tail(&tail)
            .toml(std::path::Path::new("/tmp"));
        let err = keyhold::config::Config::from_toml(&refused)
            .err()
            .unwrap_or_else(|| panic!("{bad} accepted"));
        let msg = err.to_string();
        assert!(
            msg.contains("metrics.history_interval_seconds") && msg.contains("1..=60"),
            "{msg}"
        );
    }
}

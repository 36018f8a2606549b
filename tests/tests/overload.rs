//! Overload, quotas, timeouts and metrics, tested for behaviour (not speed): a slow
//! key source (tests/fixtures/plugin-slow) drives the call deadline
//! (DependencyTimeoutException 503), call-slot shedding and the in-flight limit
//! (ThrottlingException 429); per-store quotas; oversize bodies refused before they are
//! read; and the Prometheus endpoint counting all of it.
//!
//! No timing thresholds: generous bounds only where a broken server would otherwise
//! hang the test.

use std::{collections::HashMap, net::SocketAddr, time::Duration};

use keyhold_tests::{
    Credential, RawRequest, Reply, Sealed, SourceFixture, TestServer, XksClient, bodies,
    client::Transport,
    fixture::{BASE, KEY_ALL, KEY_DECRYPT_ONLY, LB_HEALTH},
};
use tokio::io::AsyncWriteExt;

/// Generous bound on an answer that must come without waiting for anything slow.
const PATIENCE: Duration = Duration::from_secs(10);

/// The slow fixture source: crypto and key lookups answer after `delay_ms`.
fn slow(delay_ms: u64) -> SourceFixture {
    SourceFixture::new(
        "slow",
        &format!("plugin = \"slow\"\nconfig = {{ delay_ms = {delay_ms} }}\n"),
    )
}

/// `GET <addr><path>` on the metrics listener.
async fn get(addr: SocketAddr, path: &str) -> Reply {
    let conn = Transport::plain(addr).connect().await.expect("connect");
    tokio::time::timeout(PATIENCE, conn.send(&RawRequest::new("GET", path, "")))
        .await
        .expect("metrics answer")
        .expect("metrics transport")
}

/// The metrics text of a server started with `.metrics()`.
async fn metrics(server: &TestServer) -> String {
    let addr = server.running.metrics_addr.expect("metrics listener");
    let reply = get(addr, "/metrics").await;
    assert_eq!(reply.status.as_u16(), 200);
    assert!(
        reply
            .content_type()
            .is_some_and(|t| t.starts_with("text/plain")),
        "{:?}",
        reply.content_type()
    );
    String::from_utf8(reply.body.to_vec()).expect("UTF-8 metrics")
}

/// The value of the sample `series` (name and labels exactly as rendered), if present.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

#[track_caller]
fn assert_sample(text: &str, series: &str, expected: f64) {
    assert_eq!(
        sample(text, series),
        Some(expected),
        "{series}\n--- metrics ---\n{text}"
    );
}

#[track_caller]
fn assert_samples(text: &str, expected: &[(&str, f64)]) {
    for (series, value) in expected {
        assert_sample(text, series, *value);
    }
}

/// 100 concurrent encrypts that must each succeed or be throttled, with at least one
/// of each (`what` throttles); returns (ok, throttled, the metrics text after).
async fn throttling_burst(server: &TestServer, what: &str) -> (usize, usize, String) {
    let c = server.client();
    let replies = encrypt_burst(&c, 100).await;
    let (ok, throttled) = only_ok_or_throttled(&c, &replies).await;
    println!("{what}: {ok} ok, {throttled} throttled");
    assert!(ok >= 1 && throttled >= 1, "{ok} ok, {throttled} throttled");
    (ok, throttled, metrics(server).await)
}

/// Fires `n` concurrent encrypts (one connection each) of distinct plaintexts.
async fn encrypt_burst(c: &XksClient, n: usize) -> Vec<(Vec<u8>, Reply)> {
    let mut tasks = Vec::new();
    for i in 0..n {
        let c = c.clone();
        tasks.push(tokio::spawn(async move {
            let plaintext = format!("burst message {i}").into_bytes();
            let reply = c.encrypt(KEY_ALL, &plaintext, Some(b"burst"), false).await;
            (plaintext, reply)
        }));
    }
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await.expect("task"));
    }
    out
}

/// Every reply is 200 (checked by decrypting, one at a time, afterwards) or 429
/// ThrottlingException; returns (ok, throttled).
async fn only_ok_or_throttled(c: &XksClient, replies: &[(Vec<u8>, Reply)]) -> (usize, usize) {
    let (mut ok, mut throttled) = (0, 0);
    for (plaintext, reply) in replies {
        match reply.status.as_u16() {
            200 => {
                let sealed = Sealed::from_json(&reply.ok_json());
                assert_eq!(
                    c.decrypt_ok(KEY_ALL, &sealed, Some(b"burst")).await,
                    *plaintext
                );
                ok += 1;
            }
            _ => {
                reply.assert_error(429, "ThrottlingException");
                throttled += 1;
            }
        }
    }
    (ok, throttled)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_source_slower_than_the_deadline_is_dependency_timeout() {
    let server = TestServer::builder()
        .source(slow(300))
        .xks_line("plugin_timeout_ms = 100")
        .start()
        .await;
    assert!(server.running.failed_sources.is_empty());
    let c = server.client();
    let reply = tokio::time::timeout(PATIENCE, c.encrypt(KEY_ALL, b"x", None, false))
        .await
        .expect("answered");
    let msg = reply.assert_error(503, "DependencyTimeoutException");
    println!("encrypt: {msg}");
    tokio::time::timeout(PATIENCE, c.metadata(KEY_ALL))
        .await
        .expect("answered")
        .assert_error(503, "DependencyTimeoutException");
    let sealed = Sealed {
        ciphertext: vec![1; 8],
        iv: vec![2; 12],
        tag: vec![3; 16],
        cdiv: None,
    };
    tokio::time::timeout(PATIENCE, c.decrypt(KEY_ALL, &sealed, None))
        .await
        .expect("answered")
        .assert_error(503, "DependencyTimeoutException");

    // Health keeps answering: the health check times out too, so the node is reported
    // UNAVAILABLE, but the answer comes.
    let h = tokio::time::timeout(PATIENCE, c.health())
        .await
        .expect("health answered")
        .ok_json();
    assert_eq!(
        h["ekmFleetDetails"][0]["healthStatus"], "UNAVAILABLE",
        "{h}"
    );
    let lb = tokio::time::timeout(PATIENCE, c.send(&RawRequest::new("GET", LB_HEALTH, "")))
        .await
        .expect("LB health answered");
    assert_eq!(lb.status.as_u16(), 503);
    assert_eq!(lb.json()["status"], "UNAVAILABLE");
    // Unrelated refusals are still immediate and exact.
    c.encrypt("no-such-key", b"x", None, false)
        .await
        .assert_error(404, "KeyNotFoundException");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn saturated_call_slots_shed_with_throttling() {
    // 2 call slots, each held 100 ms per call; a request waits at most 5 ms for one.
    // 100 simultaneous encrypts cannot all be served: some are shed, some succeed.
    let server = TestServer::builder()
        .source(slow(100))
        .xks_line("plugin_concurrency = 2")
        .xks_line("queue_timeout_ms = 5")
        .xks_line("health_cache_seconds = 60")
        // A call deadline far beyond the delay: no DependencyTimeoutException on a
        // busy machine, only the shedding under test.
        .xks_line("plugin_timeout_ms = 10000")
        .metrics()
        .start()
        .await;
    let c = server.client();
    let (ok, throttled, text) = throttling_burst(&server, "plugin pool").await;
    // Calls shed from the pool: the refused requests, plus at most the background
    // health-check refresh (it runs at start and then every 30 s here, and takes call
    // slots like any request).
    let shed = sample(&text, "keyhold_xks_throttled_total{reason=\"plugin_pool\"}")
        .expect("plugin_pool throttling counter");
    assert!(
        (throttled as f64..=throttled as f64 + 1.0).contains(&shed),
        "{shed} calls shed, {throttled} requests throttled\n{text}"
    );
    assert_samples(
        &text,
        &[
            ("keyhold_xks_throttled_total{reason=\"in_flight\"}", 0.0),
            (
                "keyhold_xks_requests_total{store=\"acme\",operation=\"Encrypt\",outcome=\"ThrottlingException\"}",
                throttled as f64,
            ),
            (
                "keyhold_xks_requests_total{store=\"acme\",operation=\"Encrypt\",outcome=\"ok\"}",
                ok as f64,
            ),
            ("keyhold_plugin_pool_size{source=\"slow\"}", 2.0),
        ],
    );
    // Once the burst is over, requests are served again.
    let sealed = c.encrypt_ok(KEY_ALL, b"after the burst", None).await;
    assert_eq!(
        c.decrypt_ok(KEY_ALL, &sealed, None).await,
        b"after the burst"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn requests_beyond_max_in_flight_are_refused_with_throttling() {
    let server = TestServer::builder()
        .source(slow(200))
        .xks_line("max_in_flight = 4")
        .xks_line("plugin_timeout_ms = 10000")
        .metrics()
        .start()
        .await;
    let (_, throttled, text) = throttling_burst(&server, "in flight").await;
    assert_samples(
        &text,
        &[
            (
                "keyhold_xks_throttled_total{reason=\"in_flight\"}",
                throttled as f64,
            ),
            ("keyhold_xks_throttled_total{reason=\"plugin_pool\"}", 0.0),
            ("keyhold_xks_in_flight", 0.0),
        ],
    );
    server.stop().await;
}

/// The second store of the quota test.
const BETA_BASE: &str = "/tenants/beta/kms/xks/v1";

fn beta_cred() -> Credential {
    Credential::new(
        "BETASTORECREDENTIAL234567A",
        "YmV0YSBzdG9yZSBzZWNyZXQgZm9yIHRlc3RzIGhlcmU=",
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn per_store_quotas_are_independent_and_unauthenticated_requests_are_free() {
    // acme: its own quota, burst 3; beta: the default xks.quota, burst 2. The refill
    // rate is tiny (one request per 100 s) so that no token comes back during the test.
    let server = TestServer::builder()
        .source(SourceFixture::ctm())
        .xks_line("quota = { rate = 0.01, burst = 2 }")
        .store_line("quota = { rate = 0.01, burst = 3 }")
        .metrics()
        .toml_tail(&format!(
            "[[stores]]\nname = \"beta\"\nsource = \"ctm\"\nuri_path_prefix = \"tenants/beta\"\nhealth_check_key = \"beta-health\"\n\n[[stores.credentials]]\naccess_key_id = \"{}\"\nsecret = \"{}\"\n\n[[stores.keys]]\nid = \"beta-key\"\nusage = [\"encrypt\", \"decrypt\"]\n",
            beta_cred().access_key_id,
            beta_cred().secret
        ))
        .start()
        .await;
    let c = server.client();
    let beta = XksClient::new(server.transport(), beta_cred(), BETA_BASE);

    // Unauthenticated and wrongly signed requests are refused before the quota check:
    // they take nothing from the bucket.
    for _ in 0..5 {
        c.send(&RawRequest::post_json(
            &c.op_path("/health"),
            &bodies::health(),
        ))
        .await
        .assert_error(401, "AuthenticationFailedException");
        c.with_cred(Credential::new(
            &Credential::a().access_key_id,
            &"C".repeat(44),
        ))
        .encrypt(KEY_ALL, b"x", None, false)
        .await
        .assert_error(401, "AuthenticationFailedException");
    }

    // acme: 3 requests, then refused at once.
    let sealed = c.encrypt_ok(KEY_ALL, b"within quota", None).await;
    assert_eq!(c.decrypt_ok(KEY_ALL, &sealed, None).await, b"within quota");
    c.health().await.ok_json();
    let msg = c
        .encrypt(KEY_ALL, b"x", None, false)
        .await
        .assert_error(429, "ThrottlingException");
    assert!(msg.contains("quota"), "{msg}");
    c.health().await.assert_error(429, "ThrottlingException");
    // Still authentication first: a bad signature is 401, not 429.
    c.send(&RawRequest::post_json(
        &c.op_path("/health"),
        &bodies::health(),
    ))
    .await
    .assert_error(401, "AuthenticationFailedException");

    // beta is untouched by acme's exhaustion: its own (default) bucket of 2.
    let s = beta.encrypt_ok("beta-key", b"beta", None).await;
    assert_eq!(beta.decrypt_ok("beta-key", &s, None).await, b"beta");
    beta.health().await.assert_error(429, "ThrottlingException");
    // And acme stays refused.
    c.metadata(KEY_ALL)
        .await
        .assert_error(429, "ThrottlingException");

    let text = metrics(&server).await;
    assert_sample(&text, "keyhold_xks_throttled_total{reason=\"quota\"}", 4.0);
    assert_sample(
        &text,
        "keyhold_xks_requests_total{store=\"beta\",operation=\"GetHealthStatus\",outcome=\"ThrottlingException\"}",
        1.0,
    );
    server.stop().await;
}

/// Sends raw bytes, then reads one HTTP/1.1 response: (status, head lower-cased, body).
async fn raw_exchange(addr: SocketAddr, head: &str, body: &[u8]) -> (u16, String, Vec<u8>) {
    let mut tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
    tcp.write_all(head.as_bytes()).await.expect("write head");
    // The server may refuse (and close) before taking the rest.
    let _ = tcp.write_all(body).await;
    let read = async {
        let a = keyhold_tests::raw_http1::read_answer(&mut tcp)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        (a.status, a.head, a.body)
    };
    tokio::time::timeout(PATIENCE, read)
        .await
        .expect("the server answered without waiting for the rest of the body")
}

#[tokio::test(flavor = "multi_thread")]
async fn oversize_bodies_are_refused_before_being_read() {
    let server = TestServer::builder()
        .source(SourceFixture::ctm())
        .start()
        .await;
    let addr = server.running.xks_addr;
    let path = format!("{BASE}/keys/{KEY_ALL}/encrypt");

    // Content-Length of 10 MB, and only a few bytes of it ever sent: the declared
    // length alone is refused, without waiting for the body.
    let head = format!(
        "POST {path} HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\ncontent-length: 10485760\r\n\r\n"
    );
    let (status, headers, body) = raw_exchange(addr, &head, b"{\"requestMetadata\"").await;
    assert_eq!(status, 501, "{headers}");
    assert!(
        headers.to_ascii_lowercase().contains("application/json"),
        "{headers}"
    );
    let json: serde_json::Value = serde_json::from_slice(&body).expect("JSON body");
    assert_eq!(json["errorName"], "UnsupportedOperationException", "{json}");

    // A chunked body (no Content-Length) that grows past the limit: refused as soon as
    // it does.
    let head = format!(
        "POST {path} HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n"
    );
    let mut chunked = Vec::new();
    // 70 chunks of 1 KiB: past the default limit of 64 KiB.
    for _ in 0..70 {
        chunked.extend_from_slice(format!("{:x}\r\n", 1024).as_bytes());
        chunked.extend_from_slice(&[b'x'; 1024]);
        chunked.extend_from_slice(b"\r\n");
    }
    chunked.extend_from_slice(b"0\r\n\r\n");
    let (status, headers, body) = raw_exchange(addr, &head, &chunked).await;
    assert_eq!(status, 501, "{headers}");
    let json: serde_json::Value = serde_json::from_slice(&body).expect("JSON body");
    assert_eq!(json["errorName"], "UnsupportedOperationException", "{json}");

    // A chunked body within the limit is read in full (and is then simply unsigned).
    let mut small = Vec::new();
    small.extend_from_slice(b"2\r\n{}\r\n0\r\n\r\n");
    let (status, _, body) = raw_exchange(addr, &head, &small).await;
    assert_eq!(status, 401);
    let json: serde_json::Value = serde_json::from_slice(&body).expect("JSON body");
    assert_eq!(json["errorName"], "AuthenticationFailedException");
    // The server still serves normal requests.
    server.client().health().await.ok_json();
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn metrics_count_requests_outcomes_latency_and_throttling() {
    let server = TestServer::builder()
        .source(SourceFixture::ctm())
        .store_line("quota = { rate = 0.01, burst = 7 }")
        .metrics()
        .start()
        .await;
    let addr = server.running.metrics_addr.expect("metrics listener");
    assert_ne!(addr.port(), 0);
    let c = server.client();

    // 3 successful encrypts, 1 successful decrypt, 1 tampered decrypt, 1 usage refusal,
    // 1 health: 7 requests, the whole burst; then 1 encrypt over the quota.
    let mut sealed = c.encrypt_ok(KEY_ALL, b"one", None).await;
    c.encrypt_ok(KEY_ALL, b"two", None).await;
    c.encrypt_ok(KEY_ALL, b"three", None).await;
    assert_eq!(c.decrypt_ok(KEY_ALL, &sealed, None).await, b"one");
    sealed.tag[0] ^= 1;
    c.decrypt(KEY_ALL, &sealed, None)
        .await
        .assert_error(400, "InvalidCiphertextException");
    c.encrypt(KEY_DECRYPT_ONLY, b"x", None, false)
        .await
        .assert_error(400, "InvalidKeyUsageException");
    c.health().await.ok_json();
    c.encrypt(KEY_ALL, b"over quota", None, false)
        .await
        .assert_error(429, "ThrottlingException");
    // Unauthenticated (counted, no quota), and an unknown path (unrouted).
    c.send(&RawRequest::post_json(
        &c.op_path("/health"),
        &bodies::health(),
    ))
    .await
    .assert_error(401, "AuthenticationFailedException");
    c.send(&RawRequest::post_json(
        "/nowhere/kms/xks/v1/health",
        &bodies::health(),
    ))
    .await
    .assert_error(404, "InvalidUriPathException");

    let text = metrics(&server).await;
    let req = |op: &str, outcome: &str| {
        format!(
            "keyhold_xks_requests_total{{store=\"acme\",operation=\"{op}\",outcome=\"{outcome}\"}}"
        )
    };
    let expected = [
        (req("Encrypt", "ok"), 3.0),
        (req("Decrypt", "ok"), 1.0),
        (req("Decrypt", "InvalidCiphertextException"), 1.0),
        (req("Encrypt", "InvalidKeyUsageException"), 1.0),
        (req("Encrypt", "ThrottlingException"), 1.0),
        (req("GetHealthStatus", "ok"), 1.0),
        (req("GetHealthStatus", "AuthenticationFailedException"), 1.0),
        (
            "keyhold_xks_requests_total{store=\"\",operation=\"\",outcome=\"InvalidUriPathException\"}".into(),
            1.0,
        ),
        (
            "keyhold_xks_request_duration_seconds_count{store=\"acme\",operation=\"Encrypt\"}".into(),
            5.0,
        ),
        (
            "keyhold_xks_request_duration_seconds_count{store=\"acme\",operation=\"Decrypt\"}".into(),
            2.0,
        ),
        (
            "keyhold_xks_request_duration_seconds_bucket{store=\"acme\",operation=\"Encrypt\",le=\"+Inf\"}".into(),
            5.0,
        ),
    ];
    for (series, value) in &expected {
        assert_sample(&text, series, *value);
    }
    let calls = sample(
        &text,
        "keyhold_plugin_call_duration_seconds_count{source=\"ctm\"}",
    )
    .expect("plugin call histogram");
    assert!(calls >= 5.0, "{calls}\n{text}");
    assert_samples(
        &text,
        &[
            ("keyhold_xks_throttled_total{reason=\"quota\"}", 1.0),
            ("keyhold_xks_throttled_total{reason=\"in_flight\"}", 0.0),
            ("keyhold_plugin_pool_size{source=\"ctm\"}", 64.0),
            ("keyhold_plugin_pool_in_use{source=\"ctm\"}", 0.0),
        ],
    );
    // Every sample line is `name{labels} value` or `name value` with a number.
    let mut names: HashMap<&str, usize> = HashMap::new();
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let (series, value) = line.rsplit_once(' ').expect("sample line");
        value
            .parse::<f64>()
            .unwrap_or_else(|_| panic!("value of {line}"));
        *names
            .entry(series.split('{').next().expect("name"))
            .or_default() += 1;
    }
    assert!(names.contains_key("keyhold_xks_in_flight"), "{names:?}");

    // Only /metrics is served there.
    let reply = get(addr, "/other").await;
    assert_eq!(reply.status.as_u16(), 404);
    let reply = get(addr, "/").await;
    assert_eq!(reply.status.as_u16(), 404);
    server.stop().await;
}

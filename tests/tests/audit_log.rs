//! The audit log against hostile traffic and tampering, end to end:
//! - a flood of unauthenticated garbage grows it by a bounded number of records (the
//!   rest aggregated), while the metrics count every refusal;
//! - a damaged last segment does not stop the server: it starts a new segment, raises
//!   the alert metric and keeps serving; `audit-verify` names the damaged segment;
//! - the chain is keyed and anchored in the store: `keyhold audit-verify` detects a cut
//!   tail and a rewrite recomputed with plain SHA-256;
//! - two `Authorization` headers are refused; a non-GET on the load-balancer health
//!   path is answered 405 with `Allow: GET, HEAD`.

use std::{path::Path, process::Command};

use keyhold::audit::{self, Record};
use keyhold_tests::{RawRequest, TestServer, Transport, bodies, fixture, paths};
use serde_json::json;

/// Every record of the audit log in data directory `dir`, all segments in order.
fn records(dir: &Path) -> Vec<Record> {
    let mut segs: Vec<(u64, std::path::PathBuf)> = std::fs::read_dir(dir)
        .expect("data dir")
        .filter_map(|e| {
            let p = e.ok()?.path();
            let name = p.file_name()?.to_string_lossy().into_owned();
            let n = match name.strip_prefix("audit.jsonl")? {
                "" => 0,
                rest => rest.strip_prefix('.')?.parse().ok()?,
            };
            Some((n, p))
        })
        .collect();
    segs.sort();
    segs.iter()
        .flat_map(|(_, p)| {
            std::fs::read_to_string(p)
                .expect("segment")
                .lines()
                .map(|l| serde_json::from_str(l).expect("record"))
                .collect::<Vec<Record>>()
        })
        .collect()
}

async fn metrics(server: &TestServer) -> String {
    let addr = server.running.metrics_addr.expect("metrics listener");
    let conn = Transport::plain(addr).connect().await.expect("connect");
    let reply = conn
        .send(&RawRequest::new("GET", "/metrics", ""))
        .await
        .expect("metrics");
    String::from_utf8(reply.body.to_vec()).expect("UTF-8")
}

fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_flood_of_unauthenticated_garbage_grows_the_audit_log_by_a_bounded_amount() {
    const FLOOD: usize = 5000;
    let server = TestServer::builder().metrics().start().await;
    let c = server.client();
    let before = records(server.path()).len();
    // A few connections, each sending its share of garbage back to back.
    let mut tasks = Vec::new();
    for t in 0..4 {
        let transport = server.transport();
        let base = c.op_path("");
        tasks.push(tokio::spawn(async move {
            let conn = transport.connect().await.expect("connect");
            let mut refused = 0;
            for i in 0..FLOOD / 4 {
                let req = match i % 3 {
                    0 => RawRequest::post_json(&format!("{base}/health"), &json!({"garbage": i})),
                    1 => RawRequest::new("POST", &format!("/nowhere/{t}/{i}"), "x"),
                    _ => RawRequest::post_json(&format!("{base}/keys/k{i}/encrypt"), &json!("x"))
                        .with_header("authorization", "AWS4-HMAC-SHA256 garbage"),
                };
                let r = conn.send(&req).await.expect("answer");
                assert!(r.status.is_client_error(), "{}", r.status);
                refused += 1;
            }
            refused
        }));
    }
    let mut refused = 0;
    for t in tasks {
        refused += t.await.expect("flood task");
    }
    assert_eq!(refused, FLOOD);
    // Legitimate traffic is still audited as before (success audit is off: nothing).
    c.health().await.assert_status(200, "health");
    let text = metrics(&server).await;
    let aggregated = sample(&text, "keyhold_audit_refusals_aggregated_total").expect("metric");
    let dir = server.dir.clone();
    server.stop().await;

    let recs = records(dir.path());
    let added = recs.len() - before;
    let individual = recs[before..]
        .iter()
        .filter(|r| r.event["kind"] == "xks")
        .count();
    let aggregates: Vec<&Record> = recs[before..]
        .iter()
        .filter(|r| r.event["kind"] == "xks_refusals_aggregated")
        .collect();
    let summed: u64 = aggregates
        .iter()
        .map(|r| r.event["suppressed"].as_u64().expect("suppressed"))
        .sum();
    println!(
        "{FLOOD} refused requests: the audit log grew by {added} records ({individual} individual, {} aggregates summing {summed}); metric {aggregated}",
        aggregates.len()
    );
    // 20 per 10 s interval, plus one aggregate per interval: the flood takes well under
    // a minute, so at most a handful of intervals.
    assert!(added <= 200, "the audit log grew by {added} records");
    assert_eq!(
        individual as u64 + summed,
        FLOOD as u64,
        "every refusal is counted"
    );
    assert_eq!(
        summed as f64, aggregated,
        "the metric counts the aggregated refusals"
    );
    keyhold_tests::server::verify_audit(dir.path());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_damaged_audit_segment_raises_an_alert_and_the_server_keeps_serving() {
    let server = TestServer::builder().metrics().start().await;
    let c = server.client();
    for _ in 0..5 {
        c.encrypt("no-such-key", b"x", None, false).await;
    }
    let builder = server.builder.clone();
    let dir = server.stop().await;
    let path = dir.path().join("audit.jsonl");
    let text = std::fs::read_to_string(&path).expect("audit log");
    let mut lines: Vec<&str> = text.lines().collect();
    assert!(lines.len() >= 4, "{text}");
    lines[1] = "{\"this is\": \"not a record\"}";
    std::fs::write(&path, lines.join("\n") + "\n").expect("damage");

    let server = builder.clone().in_dir(dir.clone()).start().await;
    let c = server.client();
    c.health().await.assert_status(200, "health after damage");
    let text = metrics(&server).await;
    assert_eq!(
        sample(&text, "keyhold_audit_damaged_segments_total"),
        Some(1.0),
        "{text}"
    );
    c.encrypt("no-such-key", b"x", None, false).await;
    server.stop().await;

    let master = keyhold::secrets::MasterKey::load(&keyhold::secrets::MasterKeySource::File(
        dir.path().join("master.key"),
    ))
    .expect("master key");
    let key = audit::ChainKey::from_master(&master);
    let report = audit::verify_all(&path, Some(&key), None).expect("verify");
    assert_eq!(report.damaged.len(), 1, "{:?}", report.problems());
    assert_eq!(report.damaged[0].path, path, "the damaged segment is named");
    assert_eq!(report.damaged[0].line, 2);
    let second = dir.path().join("audit.jsonl.1");
    let first: Record = serde_json::from_str(
        std::fs::read_to_string(&second)
            .expect("new segment")
            .lines()
            .next()
            .expect("a record"),
    )
    .expect("record");
    assert_eq!(first.event["kind"], audit::AFTER_DAMAGE);
    assert!(report.records >= 3, "the new segment verifies: {report:?}");
}

/// Runs `keyhold audit-verify --config <file>`.
fn audit_verify(config: &Path) -> (i32, String) {
    let out = Command::new(paths::keyhold_bin())
        .args(["audit-verify", "--config"])
        .arg(config)
        .env_remove("KEYHOLD_DATA_DIR")
        .output()
        .expect("run keyhold audit-verify");
    (
        out.status.code().unwrap_or(-1),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn audit_verify_detects_a_cut_tail_and_a_rewrite_against_the_store_anchor() {
    let server = TestServer::builder().admin().start().await;
    let root = server.root().await;
    for i in 0..3 {
        let r = root
            .create_user(&format!("user{i}"), "a long password 1", None)
            .await;
        assert_eq!(r.status.as_u16(), 201, "{:?}", r.body);
    }
    let builder = server.builder.clone();
    let dir = server.stop().await;
    let config = dir.path().join("keyhold.toml");
    std::fs::write(&config, builder.toml(dir.path())).expect("config file");
    let (code, out) = audit_verify(&config);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("chain intact") && out.contains("matches the store's anchor"),
        "{out}"
    );

    let path = dir.path().join("audit.jsonl");
    let original = std::fs::read_to_string(&path).expect("audit log");
    let lines: Vec<&str> = original.lines().collect();

    // Cut the last two records: the chain alone still verifies, the anchor does not.
    std::fs::write(&path, lines[..lines.len() - 2].join("\n") + "\n").expect("cut");
    let (code, out) = audit_verify(&config);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("truncated"), "{out}");

    // Edit one record and recompute every hash after it with plain SHA-256 (what an
    // editor without the master key can do).
    let mut prev = audit::GENESIS.to_string();
    let mut rewritten = String::new();
    for (i, line) in lines.iter().enumerate() {
        let mut rec: Record = serde_json::from_str(line).expect("record");
        if i == 2 {
            rec.event["user"] = json!("nobody");
        }
        rec.mac = None;
        rec.prev = prev.clone();
        rec.hash = plain_hash(&rec);
        prev = rec.hash.clone();
        rewritten += &serde_json::to_string(&rec).expect("json");
        rewritten += "\n";
    }
    std::fs::write(&path, rewritten).expect("rewrite");
    let (code, out) = audit_verify(&config);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("rewritten"), "{out}");

    // The original verifies again.
    std::fs::write(&path, original).expect("restore");
    assert_eq!(audit_verify(&config).0, 0);
}

/// The pre-keying chain hash: SHA-256 over prev, seq, time and the event's JSON.
fn plain_hash(rec: &Record) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    h.update(format!("{}\n{}\n{}\n{}", rec.prev, rec.seq, rec.time, rec.event).as_bytes());
    hex::encode(h.finalize())
}

#[tokio::test(flavor = "multi_thread")]
async fn two_authorization_headers_are_refused() {
    let server = TestServer::start_default().await;
    let c = server.client();
    let signed = c.sign(RawRequest::post_json(
        &c.op_path("/health"),
        &bodies::health(),
    ));
    c.send(&signed)
        .await
        .assert_status(200, "one signed header");
    let auth = signed.header("authorization").expect("signed").to_string();
    // The valid signature twice, or followed (or preceded) by another value.
    for second in [auth.as_str(), "AWS4-HMAC-SHA256 Credential=x"] {
        for valid_first in [true, false] {
            let mut req = signed.clone();
            req.remove_header("authorization");
            let (a, b) = if valid_first {
                (auth.as_str(), second)
            } else {
                (second, auth.as_str())
            };
            req = req
                .with_header("authorization", a)
                .with_header("authorization", b);
            let msg = c
                .send(&req)
                .await
                .assert_error(401, "AuthenticationFailedException");
            assert!(msg.contains("more than one Authorization header"), "{msg}");
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_load_balancer_health_path_answers_405_with_allow_get() {
    let server = TestServer::start_default().await;
    let c = server.client();
    let get = c
        .send(&RawRequest::new("GET", fixture::LB_HEALTH, ""))
        .await;
    assert_eq!(get.status.as_u16(), 200);
    for method in ["POST", "PUT", "DELETE", "PATCH"] {
        let r = c
            .send(&RawRequest::new(method, fixture::LB_HEALTH, "{}"))
            .await;
        assert_eq!(r.status.as_u16(), 405, "{method}");
        assert_eq!(
            r.headers.get("allow").and_then(|v| v.to_str().ok()),
            Some("GET, HEAD"),
            "{method}"
        );
        r.assert_error(405, "ValidationException");
    }
    // XKS operation paths still allow POST only.
    let r = c
        .send(&RawRequest::new("GET", &c.op_path("/health"), ""))
        .await;
    assert_eq!(
        r.headers.get("allow").and_then(|v| v.to_str().ok()),
        Some("POST")
    );
}

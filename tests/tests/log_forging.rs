//! Log lines cannot be forged or inflated: request-derived values (the HTTP method,
//! the path's key id, `kmsRequestId`, `kmsOperation`, `encryptionAlgorithm`) carrying
//! newlines, terminal escape sequences or hundreds of kilobytes add one escaped,
//! bounded line to the log per request.
//!
//! This file holds a single test because it installs the process-wide subscriber.

use keyhold_tests::{RawRequest, TestServer, bodies, fixture::KEY_ALL};
use serde_json::json;

/// Most bytes one request may add to the log.
const MAX_GROWTH: usize = 2048;

/// A value that tries to end the log line, start a forged one and color the terminal.
fn forged(tail_len: usize) -> String {
    format!(
        "x\n2026-01-01T00:00:00.000000Z  INFO keyhold::xks: FORGED-LINE admin logged in\r\u{1b}[2J\u{1b}[31mred\u{7}\u{202e}{}",
        "A".repeat(tail_len)
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn log_lines_cannot_be_forged_or_inflated() {
    let buffer = keyhold_tests::logs::CapturedLogs::install("info");
    let server = TestServer::start_default().await;
    let c = server.client();
    let encrypt = c.op_path(&format!("/keys/{KEY_ALL}/encrypt"));

    let mut requests: Vec<(&str, RawRequest)> = Vec::new();
    // Signed: the body's values reach the log line (kmsRequestId, kmsOperation) or the
    // refusal (encryptionAlgorithm).
    let mut body = bodies::encrypt(b"x", None, false);
    body["encryptionAlgorithm"] = json!(forged(100));
    body["requestMetadata"]["kmsRequestId"] = json!(forged(20_000));
    body["requestMetadata"]["kmsOperation"] = json!(forged(20_000));
    requests.push((
        "signed encrypt",
        c.sign(RawRequest::post_json(&encrypt, &body)),
    ));
    let health = json!({"requestMetadata": {"kmsRequestId": forged(20_000), "kmsOperation": forged(20_000)}});
    requests.push((
        "signed health",
        c.sign(RawRequest::post_json(&c.op_path("/health"), &health)),
    ));
    // Unsigned: a 350 KB method, a long key id, a forged algorithm.
    requests.push((
        "350 KB method",
        RawRequest::new(&"M".repeat(350 * 1024), &c.op_path("/health"), "{}"),
    ));
    requests.push((
        "long key id",
        RawRequest::new(
            "POST",
            &c.op_path(&format!("/keys/{}/encrypt", "k".repeat(60_000))),
            "{}",
        ),
    ));
    requests.push((
        "unsigned forged body",
        RawRequest::post_json(&encrypt, &body),
    ));

    let mut growth = Vec::new();
    for (what, req) in &requests {
        let before = buffer.len();
        let status = match c.try_send(req).await {
            Ok(r) => r.status.as_u16().to_string(),
            Err(e) => format!("transport error: {e}"),
        };
        // The request's line is written before the answer is sent.
        let added = buffer.len() - before;
        println!("{what}: {status}, log grew by {added} bytes");
        growth.push((*what, added));
    }
    server.stop().await;

    let logs = buffer.text();
    for (what, added) in &growth {
        assert!(
            *added < MAX_GROWTH,
            "{what} added {added} bytes to the log (at most {MAX_GROWTH} allowed)"
        );
    }
    assert!(!logs.contains('\u{1b}'), "an escape byte reached the log");
    assert!(!logs.contains('\r'), "a carriage return reached the log");
    assert!(
        !logs.contains('\u{202e}'),
        "a bidi override reached the log"
    );
    let forged_lines: Vec<&str> = logs
        .lines()
        .filter(|l| {
            !l.starts_with("20") && !l.trim().is_empty()
                || l.contains("FORGED") && !l.contains("xks request")
        })
        .collect();
    assert!(
        forged_lines.is_empty(),
        "forged log lines: {forged_lines:#?}"
    );
    assert!(
        logs.contains("FORGED-LINE"),
        "the values are logged, escaped: {logs}"
    );
    println!(
        "{}",
        logs.lines()
            .filter(|l| l.contains("FORGED"))
            .collect::<Vec<_>>()
            .join("\n")
    );
}

//! Requests refused at the HTTP layer (malformed: 400, URI too long: 414, headers too
//! large: 431) are answered with the listener's JSON error: an XKS error on the XKS
//! listener, the admin API's error on the admin listener; over HTTP/1.1 both the
//! listener's own limits and what hyper refuses itself, over HTTP/2 the listener's
//! limits.

use std::{net::SocketAddr, time::Duration};

use keyhold_tests::{
    Proto, RawRequest, SourceFixture, TestServer, client::Transport, fixture::BASE,
};
use serde_json::Value;
use tokio::{io::AsyncWriteExt, net::TcpStream};

const PATIENCE: Duration = Duration::from_secs(30);

/// Sends `head` raw over HTTP/1.1 and reads one answer: status, head, body.
async fn exchange(addr: SocketAddr, head: &[u8]) -> (u16, String, Vec<u8>) {
    let mut tcp = TcpStream::connect(addr).await.expect("connect");
    // The server may answer (and close) before taking it all.
    let _ = tcp.write_all(head).await;
    let read = async {
        let a = keyhold_tests::raw_http1::read_answer(&mut tcp)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        (a.status, a.head, a.body)
    };
    tokio::time::timeout(PATIENCE, read)
        .await
        .expect("answered")
}

/// The HTTP/1.1 heads to refuse, with the status each gets: the listener's limits
/// (8 KiB URI, 16 KiB and 100 header fields) and hyper's own (a malformed request
/// line, a URI past 64 KiB, more than 200 fields, a head past its buffer).
fn http1_cases(path: &str) -> Vec<(&'static str, Vec<u8>, u16)> {
    let head = |target: &str, extra: &str| {
        format!("POST {target} HTTP/1.1\r\nhost: localhost\r\ncontent-length: 0\r\n{extra}\r\n")
            .into_bytes()
    };
    let many = |n: usize| (0..n).map(|i| format!("x-h{i}: v\r\n")).collect::<String>();
    vec![
        (
            "malformed request line",
            b"BAD\x01METHOD / HTTP/1.1\r\nhost: x\r\n\r\n".to_vec(),
            400,
        ),
        ("malformed header", head(path, "bad header line\r\n"), 400),
        (
            "URI past the listener's limit",
            head(&format!("{path}?{}", "a".repeat(10_000)), ""),
            414,
        ),
        (
            "URI past hyper's limit",
            head(&format!("{path}?{}", "a".repeat(70_000)), ""),
            414,
        ),
        (
            "a header past the listener's limit",
            head(path, &format!("x-big: {}\r\n", "b".repeat(20_000))),
            431,
        ),
        (
            "more fields than the listener's limit",
            head(path, &many(150)),
            431,
        ),
        (
            "more fields than hyper's limit",
            head(path, &many(300)),
            431,
        ),
        (
            "a head past hyper's buffer",
            head(path, &format!("x-big: {}\r\n", "b".repeat(500_000))),
            431,
        ),
    ]
}

/// The HTTP/2 requests to refuse (the listener's limits), with their status.
fn http2_cases(path: &str) -> Vec<(&'static str, RawRequest, u16)> {
    let mut many = RawRequest::new("POST", path, "");
    for i in 0..150 {
        many = many.with_header(&format!("x-h{i}"), "v");
    }
    vec![
        (
            "URI past the listener's limit",
            RawRequest::new("POST", &format!("{path}?{}", "a".repeat(10_000)), ""),
            414,
        ),
        (
            "a header past the listener's limit",
            RawRequest::new("POST", path, "").with_header("x-big", &"b".repeat(20_000)),
            431,
        ),
        ("more fields than the listener's limit", many, 431),
    ]
}

/// Checks every case on `addr`; `check` validates a JSON body.
async fn refusals_are_json(addr: SocketAddr, path: &str, check: impl Fn(&Value) -> bool) {
    for (what, head, status) in http1_cases(path) {
        let (got, headers, body) = exchange(addr, &head).await;
        assert_eq!(got, status, "HTTP/1.1 {what}: {headers}");
        assert!(
            headers.contains("content-type: application/json"),
            "HTTP/1.1 {what}: {headers}"
        );
        let json: Value = serde_json::from_slice(&body)
            .unwrap_or_else(|e| panic!("HTTP/1.1 {what}: not JSON ({e}): {body:?}"));
        assert!(check(&json), "HTTP/1.1 {what}: {json}");
    }
    let conn = Transport::plain(addr)
        .with_proto(Proto::Http2)
        .connect()
        .await
        .expect("HTTP/2 connection");
    for (what, req, status) in http2_cases(path) {
        let reply = conn
            .send(&req)
            .await
            .unwrap_or_else(|e| panic!("HTTP/2 {what}: {e}"));
        assert_eq!(reply.status.as_u16(), status, "HTTP/2 {what}: {reply:?}");
        assert_eq!(
            reply.content_type(),
            Some("application/json"),
            "HTTP/2 {what}"
        );
        assert!(check(&reply.json()), "HTTP/2 {what}: {}", reply.json());
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn xks_http_layer_refusals_are_xks_json_errors() {
    let server = TestServer::builder()
        .source(SourceFixture::ctm())
        .start()
        .await;
    refusals_are_json(server.running.xks_addr, &format!("{BASE}/health"), |json| {
        json["errorName"] == "ValidationException" && json["errorMessage"].is_string()
    })
    .await;
    // The server still serves.
    server.client().health().await.ok_json();
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn admin_http_layer_refusals_are_admin_json_errors() {
    let server = TestServer::admin_only().start().await;
    let addr = server.running.admin_addr.expect("admin");
    refusals_are_json(addr, "/api/v1/session", |json| {
        ["bad_request", "uri_too_long", "headers_too_large"]
            .contains(&json["error"]["code"].as_str().unwrap_or(""))
            && json["error"]["message"].is_string()
    })
    .await;
    server.stop().await;
}

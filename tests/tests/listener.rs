//! The listeners under hostile clients: slowloris connections (headers dribbled) and
//! stalled bodies (HTTP/1.1 and HTTP/2) do not stop a legitimate client's signed
//! requests, and are closed by the server within the configured timeouts; the
//! connection cap closes excess connections at accept.

use std::{
    convert::Infallible,
    net::SocketAddr,
    pin::Pin,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    task::{Context, Poll},
    time::Duration,
};

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::{Body, Frame};
use hyper_util::rt::{TokioExecutor, TokioIo};
use keyhold::server::stats::{ListenerStats, TimeoutKind};
use keyhold_tests::{
    RawRequest, SourceFixture, TestServer, XksClient, bodies,
    client::Transport,
    fixture::{BASE, KEY_ALL},
};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
    sync::watch,
    time::Instant,
};

/// How long anything may take before the test gives up: generous, it never decides an
/// outcome that should have happened.
const PATIENCE: Duration = Duration::from_secs(30);

/// How much later than its timeout the server may close a hostile connection (a busy
/// shared machine).
const SLACK: Duration = Duration::from_secs(10);

/// The `[xks]` line setting the connection limits.
fn connections(header_ms: u64, body_ms: u64, idle_ms: u64, extra: &str) -> String {
    format!(
        "connections = {{ header_timeout_ms = {header_ms}, body_timeout_ms = {body_ms}, idle_timeout_ms = {idle_ms}{extra} }}"
    )
}

/// What one hostile client saw of the connections it opened.
#[derive(Debug, Default)]
struct Seen {
    /// Connections opened.
    opened: usize,
    /// Connections the server closed.
    closed_by_server: usize,
    /// The longest a connection stayed open until the server closed it.
    longest: Duration,
    /// The answers received (status and `errorName`).
    answers: Vec<(u16, String)>,
    /// Counts the clients that saw the server close a connection.
    first_close: Arc<AtomicUsize>,
}

impl Seen {
    fn closed(&mut self, started: Instant) {
        if self.closed_by_server == 0 {
            self.first_close.fetch_add(1, Ordering::Relaxed);
        }
        self.closed_by_server += 1;
        self.longest = self.longest.max(started.elapsed());
    }
}

/// Opens connections that send a request line and then one header line every 100 ms,
/// never finishing the headers; a new one each time the server closes one.
async fn slowloris(
    addr: SocketAddr,
    mut stop: watch::Receiver<bool>,
    first_close: Arc<AtomicUsize>,
) -> Seen {
    let mut seen = Seen {
        first_close,
        ..Seen::default()
    };
    while !*stop.borrow() {
        let Ok(mut tcp) = TcpStream::connect(addr).await else {
            continue;
        };
        seen.opened += 1;
        let started = Instant::now();
        let _ = tcp
            .write_all(format!("POST {BASE}/health HTTP/1.1\r\nhost: {addr}\r\n").as_bytes())
            .await;
        let mut buf = [0u8; 1024];
        loop {
            tokio::select! {
                read = tcp.read(&mut buf) => {
                    if matches!(read, Ok(0) | Err(_)) {
                        seen.closed(started);
                        break;
                    }
                }
                _ = tokio::time::sleep(Duration::from_millis(100)) => {
                    // A write may still succeed after the server closed: the read sees it.
                    let _ = tcp.write_all(b"x-slow: 1\r\n").await;
                }
                _ = stop.changed() => return seen,
            }
        }
    }
    seen
}

/// Reads everything until the server closes: the bytes, and whether it closed.
async fn read_to_close(tcp: &mut TcpStream, stop: &mut watch::Receiver<bool>) -> (Vec<u8>, bool) {
    let mut all = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        tokio::select! {
            read = tcp.read(&mut buf) => match read {
                Ok(0) | Err(_) => return (all, true),
                Ok(n) => all.extend_from_slice(&buf[..n]),
            },
            _ = stop.changed() => return (all, false),
        }
    }
}

/// The status and `errorName` of a raw HTTP/1.1 response.
fn parse_answer(raw: &[u8]) -> (u16, String) {
    let text = String::from_utf8_lossy(raw);
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = text.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    let name = serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v["errorName"].as_str().map(str::to_string))
        .unwrap_or_else(|| format!("not an XKS error: {text:?}"));
    (status, name)
}

/// Opens HTTP/1.1 connections that send a request's headers and never its body.
async fn stalled_http1(
    addr: SocketAddr,
    mut stop: watch::Receiver<bool>,
    first_close: Arc<AtomicUsize>,
) -> Seen {
    let mut seen = Seen {
        first_close,
        ..Seen::default()
    };
    let head = format!(
        "POST {BASE}/keys/{KEY_ALL}/encrypt HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\ncontent-length: 1000\r\n\r\n{{\"requestMetadata\""
    );
    while !*stop.borrow() {
        let Ok(mut tcp) = TcpStream::connect(addr).await else {
            continue;
        };
        seen.opened += 1;
        let started = Instant::now();
        let _ = tcp.write_all(head.as_bytes()).await;
        let (raw, closed) = read_to_close(&mut tcp, &mut stop).await;
        if !closed {
            break;
        }
        seen.closed(started);
        seen.answers.push(parse_answer(&raw));
    }
    seen
}

/// A request body that never sends a byte.
struct Never;

impl Body for Never {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        Poll::Pending
    }
}

/// Opens HTTP/2 connections each with `streams` requests that send their headers and
/// never their body.
async fn stalled_http2(
    addr: SocketAddr,
    streams: usize,
    mut stop: watch::Receiver<bool>,
    first_close: Arc<AtomicUsize>,
) -> Seen {
    let mut seen = Seen {
        first_close,
        ..Seen::default()
    };
    while !*stop.borrow() {
        let Ok(tcp) = TcpStream::connect(addr).await else {
            continue;
        };
        let Ok((sender, conn)) =
            hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tcp)).await
        else {
            continue;
        };
        seen.opened += 1;
        let started = Instant::now();
        let mut conn = tokio::spawn(conn);
        let mut answers = tokio::task::JoinSet::new();
        for _ in 0..streams {
            let mut sender = sender.clone();
            let req = http::Request::post(format!("http://{addr}{BASE}/keys/{KEY_ALL}/encrypt"))
                .header("content-type", "application/json")
                .header("content-length", "1000")
                .body(Never)
                .expect("request");
            answers.spawn(async move {
                sender.ready().await.ok()?;
                let resp = sender.send_request(req).await.ok()?;
                let status = resp.status().as_u16();
                let body = resp.into_body().collect().await.ok()?.to_bytes();
                let json: serde_json::Value = serde_json::from_slice(&body).ok()?;
                Some((status, json["errorName"].as_str()?.to_string()))
            });
        }
        drop(sender);
        tokio::select! {
            _ = &mut conn => seen.closed(started),
            _ = stop.changed() => {
                conn.abort();
                break;
            }
        }
        while let Some(answer) = answers.join_next().await {
            seen.answers.push(
                answer
                    .ok()
                    .flatten()
                    .unwrap_or((0, "no answer".to_string())),
            );
        }
    }
    seen
}

/// One signed request of the legitimate client (Encrypt or GetHealthStatus, on a fresh
/// connection): whether it succeeded.
async fn legitimate(c: &XksClient, i: usize) -> bool {
    let req = if i % 2 == 0 {
        RawRequest::post_json(&c.op_path("/health"), &bodies::health())
    } else {
        RawRequest::post_json(
            &c.op_path(&format!("/keys/{KEY_ALL}/encrypt")),
            &bodies::encrypt(b"legitimate", None, false),
        )
    };
    matches!(c.try_send(&c.sign(req)).await, Ok(r) if r.status == 200)
}

/// Polls `cond` until it holds (panics with `what` after [`PATIENCE`]).
async fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + PATIENCE;
    while !cond() {
        assert!(Instant::now() < deadline, "gave up waiting: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn xks_stats(server: &TestServer) -> Arc<ListenerStats> {
    server.running.service.listener_metrics().xks.clone()
}

#[tokio::test(flavor = "multi_thread")]
async fn slowloris_and_stalled_bodies_do_not_stop_legitimate_requests() {
    const HEADER_MS: u64 = 1000;
    const BODY_MS: u64 = 1000;
    const SLOWLORIS: usize = 40;
    const STALLED_H1: usize = 20;
    const STALLED_H2: usize = 2;
    const STREAMS: usize = 40;
    // Fewer in-flight slots than stalled requests: a stalled body holding one would
    // throttle the legitimate client.
    let server = TestServer::builder()
        .source(SourceFixture::ctm())
        .xks_line("max_in_flight = 8")
        .xks_line(&connections(HEADER_MS, BODY_MS, 5000, ""))
        .start()
        .await;
    let addr = server.running.xks_addr;
    let stats = xks_stats(&server);
    let (stop_tx, stop) = watch::channel(false);
    let closes = Arc::new(AtomicUsize::new(0));
    let mut slow = Vec::new();
    for _ in 0..SLOWLORIS {
        slow.push(tokio::spawn(slowloris(addr, stop.clone(), closes.clone())));
    }
    let mut stalled = Vec::new();
    for _ in 0..STALLED_H1 {
        stalled.push(tokio::spawn(stalled_http1(
            addr,
            stop.clone(),
            closes.clone(),
        )));
    }
    let mut stalled2 = Vec::new();
    for _ in 0..STALLED_H2 {
        stalled2.push(tokio::spawn(stalled_http2(
            addr,
            STREAMS,
            stop.clone(),
            closes.clone(),
        )));
    }
    let hostile = SLOWLORIS + STALLED_H1 + STALLED_H2;
    wait_until("the hostile connections are open", || {
        stats.open() >= hostile
    })
    .await;

    // The legitimate client, while the attack goes on: until every hostile client saw
    // the server close one of its connections.
    let c = server.client();
    let (mut ok, mut total) = (0usize, 0usize);
    let deadline = Instant::now() + PATIENCE;
    while total < 40 || closes.load(Ordering::Relaxed) < hostile {
        assert!(
            Instant::now() < deadline,
            "the server did not close the hostile connections: {} of {hostile} clients saw a close; {} header and {} body timeouts",
            closes.load(Ordering::Relaxed),
            stats.timeouts(TimeoutKind::Header),
            stats.timeouts(TimeoutKind::Body)
        );
        if legitimate(&c, total).await {
            ok += 1;
        }
        total += 1;
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let _ = stop_tx.send(true);
    eprintln!("legitimate requests during the attack: {ok} of {total} succeeded");
    assert_eq!(ok, total, "every legitimate request succeeds");

    for task in slow {
        let seen = task.await.expect("slowloris task");
        assert!(seen.closed_by_server >= 1, "{seen:?}");
        assert!(
            seen.longest <= Duration::from_millis(HEADER_MS) + SLACK,
            "a slowloris connection stayed open {:?}",
            seen.longest
        );
    }
    for task in stalled.into_iter().chain(stalled2) {
        let seen = task.await.expect("stalled task");
        assert!(seen.closed_by_server >= 1, "{seen:?}");
        assert!(
            seen.longest <= Duration::from_millis(BODY_MS) + SLACK,
            "a stalled connection stayed open {:?}",
            seen.longest
        );
        // Each stalled request is answered (the specification's error for a malformed
        // request) before its connection closes.
        for answer in &seen.answers {
            assert_eq!(
                answer,
                &(400, "ValidationException".to_string()),
                "{seen:?}"
            );
        }
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn connections_beyond_the_cap_are_closed_at_accept() {
    let server = TestServer::builder()
        .source(SourceFixture::ctm())
        .xks_line(&connections(1500, 1000, 1500, ", max_connections = 4"))
        .start()
        .await;
    let addr = server.running.xks_addr;
    let stats = xks_stats(&server);
    let c = server.client();

    // Two connections that never send a request, two kept alive after one.
    let mut silent = Vec::new();
    for _ in 0..2 {
        silent.push(TcpStream::connect(addr).await.expect("connect"));
    }
    let transport = Transport::plain(addr);
    let mut kept = Vec::new();
    for _ in 0..2 {
        let conn = transport.connect().await.expect("connect");
        let req = c.sign(RawRequest::post_json(
            &c.op_path("/health"),
            &bodies::health(),
        ));
        conn.send(&req).await.expect("health").ok_json();
        kept.push(conn);
    }
    wait_until("four connections open", || stats.open() == 4).await;

    // The fifth is closed at once, unanswered.
    let mut fifth = TcpStream::connect(addr).await.expect("connect");
    let _ = fifth
        .write_all(format!("GET /x HTTP/1.1\r\nhost: {addr}\r\n\r\n").as_bytes())
        .await;
    let mut buf = [0u8; 64];
    let read = tokio::time::timeout(PATIENCE, fifth.read(&mut buf))
        .await
        .expect("the fifth connection is closed");
    assert!(
        matches!(read, Ok(0) | Err(_)),
        "closed unanswered: {read:?}"
    );
    assert!(stats.refused() >= 1);

    // Once the idle connections expire, the legitimate client is served.
    let deadline = Instant::now() + PATIENCE;
    while !legitimate(&c, 0).await {
        assert!(Instant::now() < deadline, "never served");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for mut s in silent {
        let read = tokio::time::timeout(PATIENCE, s.read(&mut buf))
            .await
            .expect("the silent connection is closed");
        assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
    }
    assert!(stats.timeouts(TimeoutKind::Header) >= 2);
    wait_until("the kept-alive connections expire", || {
        stats.timeouts(TimeoutKind::Idle) >= 2
    })
    .await;
    let text = server
        .running
        .service
        .render_metrics(&server.running.sources);
    assert!(
        text.lines().any(
            |l| l.starts_with("keyhold_listener_refused_total{listener=\"xks\"}")
                && !l.ends_with(" 0")
        ),
        "{text}"
    );
    drop(kept);
    server.stop().await;
}

//! Answers sent before the request body is read reach the client every time, on the
//! XKS and the admin listener (both over TLS), over HTTP/1.1 and HTTP/2, with curl and
//! with a raw client (tokio + rustls for HTTP/1.1, hyper for HTTP/2): a signed health
//! call to an unknown prefix (404), a 1 MiB body to an XKS path (501), an admin 405
//! with a body (small and 1 MiB). And after a malformed pipelined HTTP/1.1 request, the
//! answers already written still reach the client.

use std::{path::Path, sync::Arc, time::Duration};

use bytes::Bytes;
use keyhold_tests::{
    Credential, Proto, RawRequest, TestServer, bodies,
    client::Transport,
    fixture::{BASE, KEY_ALL, LB_HEALTH},
    paths::toml_str,
    pki::{ClientTls, TestCa},
};
use rustls::ClientConfig;
use rustls::pki_types::ServerName;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};
use tokio_rustls::TlsConnector;

/// Tries per listener, protocol and client.
const TRIES: usize = 200;

/// Curl processes run at once.
const CURL_PARALLEL: usize = 4;

/// Longest one exchange may take (generous: a failure is an error, not slowness).
const PATIENCE: Duration = Duration::from_secs(30);

/// One MiB: past `xks.max_body_bytes`, and past what the server reads of a body it does
/// not want.
const MIB: usize = 1 << 20;

/// XKS and admin API over HTTPS with a certificate of a test CA.
struct Servers {
    server: TestServer,
    ca_pem: String,
    ca_file: std::path::PathBuf,
}

async fn servers() -> Servers {
    let dir = Arc::new(tempfile::tempdir().expect("tempdir"));
    let ca = TestCa::new("keyhold early answers CA");
    let (cert, key) = ca.server_cert().write(dir.path(), "server");
    let (cert, key) = (
        toml_str(cert.to_string_lossy()),
        toml_str(key.to_string_lossy()),
    );
    let ca_file = ca.write(dir.path(), "ca.pem");
    let mut server = TestServer::builder()
        .tls(&[format!("cert_file = {cert}"), format!("key_file = {key}")])
        .admin_line("plain_http = false")
        .admin_line(&format!("tls = {{ cert_file = {cert}, key_file = {key} }}"))
        .in_dir(dir)
        .start()
        .await;
    assert!(server.running.tls && server.running.admin_tls);
    server.ca_pem = Some(ca.pem());
    Servers {
        server,
        ca_pem: ca.pem(),
        ca_file,
    }
}

/// One early-answer request and what must come back.
#[derive(Clone)]
struct Case {
    req: RawRequest,
    status: u16,
    /// JSON pointer and value the body must carry.
    json: (&'static str, &'static str),
}

/// The XKS cases at `authority`: a signed health call to an unknown prefix, and a
/// 1 MiB Encrypt body.
fn xks_cases(authority: &str) -> Vec<Case> {
    let gone = RawRequest::post_json("/tenants/gone/kms/xks/v1/health", &bodies::health())
        .signed_at(&Credential::a(), authority, std::time::SystemTime::now());
    let mut big = RawRequest::new(
        "POST",
        &format!("{BASE}/keys/{KEY_ALL}/encrypt"),
        vec![b'x'; MIB],
    )
    .with_header("content-type", "application/json");
    big.set_header("host", authority);
    vec![
        Case {
            req: gone,
            status: 404,
            json: ("/errorName", "InvalidUriPathException"),
        },
        Case {
            req: big,
            status: 501,
            json: ("/errorName", "UnsupportedOperationException"),
        },
    ]
}

/// The admin cases: a method the route does not allow, with a small and a 1 MiB body.
fn admin_cases(authority: &str) -> Vec<Case> {
    [
        Bytes::from_static(b"{\"a\":1}"),
        Bytes::from(vec![b'x'; MIB]),
    ]
    .into_iter()
    .map(|body| Case {
        req: RawRequest::new("PUT", "/api/v1/openapi.json", body)
            .with_header("content-type", "application/json")
            .with_header("host", authority),
        status: 405,
        json: ("/error/code", "method_not_allowed"),
    })
    .collect()
}

/// Checks an answer; `Err` says what was wrong.
fn check(case: &Case, status: u16, body: &[u8]) -> Result<(), String> {
    let json: serde_json::Value = serde_json::from_slice(body).map_err(|e| {
        format!(
            "status {status}, body not JSON ({e}): {:?}",
            String::from_utf8_lossy(body)
        )
    })?;
    if status != case.status
        || json.pointer(case.json.0).and_then(|v| v.as_str()) != Some(case.json.1)
    {
        return Err(format!("status {status}, body {json}"));
    }
    Ok(())
}

/// Runs curl once for `case`; `Err` on any failure (curl's exit status, wrong answer).
fn curl_once(
    case: &Case,
    url_base: &str,
    ca_file: &Path,
    http2: bool,
    dir: &Path,
) -> Result<(), String> {
    let body_file = dir.join(format!("body-{}", case.req.body.len()));
    if !body_file.exists() {
        std::fs::write(&body_file, &case.req.body).map_err(|e| e.to_string())?;
    }
    let mut args: Vec<String> = vec![
        "-sS".into(),
        if http2 { "--http2" } else { "--http1.1" }.into(),
        "--cacert".into(),
        ca_file.to_string_lossy().into_owned(),
        "-X".into(),
        case.req.method.clone(),
        "--data-binary".into(),
        format!("@{}", body_file.display()),
        "-w".into(),
        "\n%{http_code}".into(),
    ];
    for (name, value) in &case.req.headers {
        if name.eq_ignore_ascii_case("host") {
            continue;
        }
        args.push("-H".into());
        args.push(format!("{name}: {value}"));
    }
    args.push(format!("{url_base}{}", case.req.path));
    let out = std::process::Command::new("curl")
        .args(&args)
        .output()
        .map_err(|e| format!("run curl: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "{} {} ({} bytes): curl exit {:?}: {}",
            case.req.method,
            case.req.path,
            case.req.body.len(),
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let (body, code) = text.rsplit_once('\n').ok_or("no status line")?;
    check(case, code.trim().parse().unwrap_or(0), body.as_bytes())
}

/// Runs `TRIES` curl requests per protocol, the cases in turn, `CURL_PARALLEL` at a
/// time; returns the failures per protocol.
async fn curl_loop(
    cases: Vec<Case>,
    url_base: String,
    ca_file: &Path,
) -> Vec<(Proto, Vec<String>)> {
    let dir = Arc::new(tempfile::tempdir().expect("tempdir"));
    let mut result = Vec::new();
    for (proto, http2) in [(Proto::Http1, false), (Proto::Http2, true)] {
        let mut failures = Vec::new();
        let mut running = tokio::task::JoinSet::new();
        for i in 0..TRIES {
            if running.len() >= CURL_PARALLEL {
                if let Some(Ok(Err(e))) = running.join_next().await {
                    failures.push(e);
                }
            }
            let (case, url_base, ca_file, dir) = (
                cases[i % cases.len()].clone(),
                url_base.clone(),
                ca_file.to_path_buf(),
                dir.clone(),
            );
            running
                .spawn_blocking(move || curl_once(&case, &url_base, &ca_file, http2, dir.path()));
        }
        while let Some(done) = running.join_next().await {
            if let Ok(Err(e)) = done {
                failures.push(e);
            }
        }
        result.push((proto, failures));
    }
    result
}

/// Sends `case` over a fresh TLS connection (ALPN `http/1.1`) with tokio and rustls,
/// writing the body while reading the answer; `Err` on any failure.
async fn raw_http1_once(
    addr: std::net::SocketAddr,
    tls: &Arc<ClientConfig>,
    case: &Case,
) -> Result<(), String> {
    let mut cfg = (**tls).clone();
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    let tcp = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    let name = ServerName::try_from("localhost").map_err(|e| e.to_string())?;
    let stream = TlsConnector::from(Arc::new(cfg))
        .connect(name, tcp)
        .await
        .map_err(|e| format!("TLS: {e}"))?;
    let (mut rd, mut wr) = tokio::io::split(stream);
    let mut head = format!("{} {} HTTP/1.1\r\n", case.req.method, case.req.path);
    for (n, v) in &case.req.headers {
        head += &format!("{n}: {v}\r\n");
    }
    head += &format!("content-length: {}\r\n\r\n", case.req.body.len());
    let body = case.req.body.clone();
    let write = async move {
        wr.write_all(head.as_bytes()).await?;
        wr.write_all(&body).await?;
        wr.flush().await?;
        Ok::<_, std::io::Error>(wr)
    };
    let read = async {
        keyhold_tests::raw_http1::read_answer(&mut rd)
            .await
            .map(|a| (a.status, a.body))
    };
    let (written, answer) = tokio::time::timeout(PATIENCE, async { tokio::join!(write, read) })
        .await
        .map_err(|_| "timed out".to_string())?;
    let (status, body) = answer?;
    written.map_err(|e| format!("write: {e}"))?;
    check(case, status, &body)
}

/// Sends `case` over a fresh HTTP/2 connection with hyper's client; `Err` on any
/// failure.
async fn raw_http2_once(transport: &Transport, case: &Case) -> Result<(), String> {
    let reply = tokio::time::timeout(PATIENCE, async {
        let conn = transport.connect().await?;
        conn.send(&case.req).await
    })
    .await
    .map_err(|_| "timed out".to_string())?
    .map_err(|e| e.to_string())?;
    check(case, reply.status.as_u16(), &reply.body)
}

/// Runs `TRIES` raw requests per protocol, the cases in turn; the failures per
/// protocol.
async fn raw_loop(
    addr: std::net::SocketAddr,
    ca_pem: &str,
    cases: &[Case],
) -> Vec<(Proto, Vec<String>)> {
    let tls = ClientTls::trusting(ca_pem).build();
    let transport = Transport::https(addr, ca_pem).with_proto(Proto::Http2);
    let (mut h1, mut h2) = (Vec::new(), Vec::new());
    for i in 0..TRIES {
        let case = &cases[i % cases.len()];
        if let Err(e) = raw_http1_once(addr, &tls, case).await {
            h1.push(e);
        }
        if let Err(e) = raw_http2_once(&transport, case).await {
            h2.push(e);
        }
    }
    vec![(Proto::Http1, h1), (Proto::Http2, h2)]
}

/// Prints the failure counts and asserts there are none.
fn assert_none(listener: &str, client: &str, results: &[(Proto, Vec<String>)]) {
    for (proto, failures) in results {
        eprintln!(
            "{listener} listener, {client}, {proto:?}: {} failures in {TRIES} tries",
            failures.len()
        );
    }
    for (proto, failures) in results {
        assert!(
            failures.is_empty(),
            "{listener} listener, {client}, {proto:?}: {} failures in {TRIES}, e.g. {:?}",
            failures.len(),
            &failures[..failures.len().min(3)]
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn xks_early_answers_reach_curl() {
    let s = servers().await;
    let addr = s.server.running.xks_addr;
    let cases = xks_cases(&format!("localhost:{}", addr.port()));
    let results = curl_loop(
        cases,
        format!("https://localhost:{}", addr.port()),
        &s.ca_file,
    )
    .await;
    assert_none("xks", "curl", &results);
    s.server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn xks_early_answers_reach_raw_clients() {
    let s = servers().await;
    let addr = s.server.running.xks_addr;
    let cases = xks_cases(&format!("localhost:{}", addr.port()));
    let results = raw_loop(addr, &s.ca_pem, &cases).await;
    assert_none("xks", "raw client", &results);
    s.server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn admin_early_answers_reach_curl() {
    let s = servers().await;
    let addr = s.server.running.admin_addr.expect("admin");
    let cases = admin_cases(&format!("localhost:{}", addr.port()));
    let results = curl_loop(
        cases,
        format!("https://localhost:{}", addr.port()),
        &s.ca_file,
    )
    .await;
    assert_none("admin", "curl", &results);
    s.server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn admin_early_answers_reach_raw_clients() {
    let s = servers().await;
    let addr = s.server.running.admin_addr.expect("admin");
    let cases = admin_cases(&format!("localhost:{}", addr.port()));
    let results = raw_loop(addr, &s.ca_pem, &cases).await;
    assert_none("admin", "raw client", &results);
    s.server.stop().await;
}

/// Pipelined HTTP/1.1 requests, the last one malformed and followed by more input the
/// server never reads: the answers before it still arrive (lingering close), every
/// time.
#[tokio::test(flavor = "multi_thread")]
async fn answers_before_a_malformed_pipelined_request_reach_the_client() {
    let s = servers().await;
    let addr = s.server.running.xks_addr;
    let mut cfg = (*ClientTls::trusting(&s.ca_pem).build()).clone();
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    let connector = TlsConnector::from(Arc::new(cfg));
    let mut input = Vec::new();
    for _ in 0..3 {
        input.extend_from_slice(
            format!("GET {LB_HEALTH} HTTP/1.1\r\nhost: localhost\r\n\r\n").as_bytes(),
        );
    }
    input.extend_from_slice(b"BAD\x01REQUEST / HTTP/1.1\r\n\r\n");
    input.extend_from_slice(&vec![b'z'; 2 << 20]);
    let mut failures = Vec::new();
    for _ in 0..TRIES {
        let outcome = tokio::time::timeout(PATIENCE, async {
            let tcp = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
            let name = ServerName::try_from("localhost").map_err(|e| e.to_string())?;
            let stream = connector
                .connect(name, tcp)
                .await
                .map_err(|e| e.to_string())?;
            let (mut rd, mut wr) = tokio::io::split(stream);
            // Everything is sent before anything is read, as a pipelining client does;
            // the server stops reading at the malformed request (a failed write is not
            // the failure looked for).
            let _ = wr.write_all(&input).await;
            let mut all = Vec::new();
            let result = rd.read_to_end(&mut all).await;
            let text = String::from_utf8_lossy(&all);
            let answers = text.matches("HTTP/1.1 200 ").count();
            if answers != 3 {
                return Err(format!("{answers} of 3 answers ({result:?}): {text:?}"));
            }
            if !text.contains("HTTP/1.1 400 ") {
                return Err(format!("no 400 for the malformed request: {text:?}"));
            }
            Ok(())
        })
        .await
        .unwrap_or_else(|_| Err("timed out".into()));
        if let Err(e) = outcome {
            failures.push(e);
        }
    }
    eprintln!(
        "pipelined then malformed: {} failures in {TRIES} tries",
        failures.len()
    );
    assert!(
        failures.is_empty(),
        "{} failures, e.g. {:?}",
        failures.len(),
        &failures[..failures.len().min(3)]
    );
    s.server.stop().await;
}

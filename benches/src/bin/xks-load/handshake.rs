//! `xks-load handshake`: new TLS connections per second against an https target. Each
//! of `-c N` loops opens a TCP connection, completes the TLS handshake, sends one
//! `GET` (so that TLS 1.3 session tickets, sent after the handshake, are read) and
//! closes; the latency recorded is the handshake's (TCP connect + TLS), the
//! throughput is connections per second.
//!
//! - `--resume`: the client keeps a session store (rustls' in-memory store, shared by
//!   the loops), so every handshake after the first offers a ticket or session id;
//!   what the server did is counted from rustls' `handshake_kind()` and printed
//!   (`resumed=N full=M`).
//! - default: resumption off in the client (every handshake is a full one).

use std::{
    path::PathBuf,
    sync::Arc,
    time::{Duration, Instant},
};

use bytes::Bytes;
use http::Request;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use rustls::{HandshakeKind, client::Resumption};
use tokio::net::TcpStream;

use crate::{BoxError, MAX_CONNECTIONS, MAX_SECONDS, Outcome, Report, Stats};

#[derive(clap::Args, Clone)]
pub struct Args {
    /// https://127.0.0.1:PORT (loopback only).
    #[arg(long)]
    target: String,
    /// PEM CA bundle to trust.
    #[arg(long)]
    cacert: PathBuf,
    /// Path of the one GET sent on each connection.
    #[arg(long, default_value = "/keyhold-handshake-probe")]
    path: String,
    /// Offer resumption (a client session store shared by the loops).
    #[arg(long)]
    resume: bool,
    /// Only TLS 1.2 (default: TLS 1.3 and 1.2, 1.3 preferred).
    #[arg(long)]
    tls12: bool,
    /// Concurrent connection loops.
    #[arg(long, short = 'c', default_value_t = 8)]
    connections: usize,
    /// Measured seconds.
    #[arg(long, short = 'd', default_value_t = 10)]
    duration: u64,
    /// Unmeasured warm-up seconds.
    #[arg(long, default_value_t = 2)]
    warmup: u64,
    /// Client runtime worker threads.
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
    /// Also print one JSON line.
    #[arg(long)]
    json: bool,
}

struct Client {
    addr: std::net::SocketAddr,
    authority: String,
    connector: tokio_rustls::TlsConnector,
    name: rustls_pki_types::ServerName<'static>,
    path: String,
}

fn client(args: &Args) -> Result<Client, BoxError> {
    let uri: http::Uri = args.target.parse()?;
    if uri.scheme_str() != Some("https") {
        return Err("--target must be https://host:port".into());
    }
    let host = uri.host().ok_or("--target has no host")?.to_string();
    let port = uri.port_u16().unwrap_or(443);
    let authority = format!("{host}:{port}");
    let addr = std::net::ToSocketAddrs::to_socket_addrs(&authority)?
        .find(|a| a.ip().is_loopback())
        .ok_or_else(|| format!("refusing {authority}: loopback targets only"))?;
    let mut roots = rustls::RootCertStore::empty();
    use rustls_pki_types::pem::PemObject;
    for cert in rustls_pki_types::CertificateDer::pem_file_iter(&args.cacert)? {
        roots.add(cert?)?;
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let versions: &[&rustls::SupportedProtocolVersion] = if args.tls12 {
        &[&rustls::version::TLS12]
    } else {
        &[&rustls::version::TLS13, &rustls::version::TLS12]
    };
    let mut cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(versions)?
        .with_root_certificates(roots)
        .with_no_client_auth();
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    cfg.resumption = if args.resume {
        Resumption::in_memory_sessions(1024)
    } else {
        Resumption::disabled()
    };
    Ok(Client {
        addr,
        authority,
        connector: tokio_rustls::TlsConnector::from(Arc::new(cfg)),
        name: rustls_pki_types::ServerName::try_from(host)?,
        path: args.path.clone(),
    })
}

/// One connection: handshake (timed), one GET, close. Returns the handshake time and
/// whether it resumed.
async fn connection(c: &Client) -> Result<(Duration, bool), String> {
    let t0 = Instant::now();
    let tcp = TcpStream::connect(c.addr)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    tcp.set_nodelay(true).map_err(|e| e.to_string())?;
    let tls = c
        .connector
        .connect(c.name.clone(), tcp)
        .await
        .map_err(|e| format!("handshake: {e}"))?;
    let took = t0.elapsed();
    let resumed = tls.get_ref().1.handshake_kind() == Some(HandshakeKind::Resumed);
    let (mut sender, conn) = http1::handshake(TokioIo::new(tls))
        .await
        .map_err(|e| format!("http: {e}"))?;
    let driver = tokio::spawn(conn);
    let req = Request::get(c.path.as_str())
        .header(http::header::HOST, c.authority.as_str())
        .header(http::header::CONNECTION, "close")
        .body(Full::new(Bytes::new()))
        .map_err(|e| e.to_string())?;
    let resp = sender
        .send_request(req)
        .await
        .map_err(|e| format!("request: {e}"))?;
    resp.into_body()
        .collect()
        .await
        .map_err(|e| format!("body: {e}"))?;
    drop(sender);
    let _ = driver.await;
    Ok((took, resumed))
}

pub async fn run(args: Args) -> Result<(), BoxError> {
    if args.connections == 0 || args.connections > MAX_CONNECTIONS {
        return Err(format!("--connections must be 1..={MAX_CONNECTIONS}").into());
    }
    if args.duration == 0 || args.duration + args.warmup > MAX_SECONDS {
        return Err(format!("--duration + --warmup must be 1..={MAX_SECONDS} seconds").into());
    }
    let c = Arc::new(client(&args)?);
    // One handshake first: fails fast on a wrong target or CA, and (with --resume)
    // seeds the session store.
    connection(&c).await?;
    let start = Instant::now();
    let measure_from = start + Duration::from_secs(args.warmup);
    let end = measure_from + Duration::from_secs(args.duration);
    let loops: Vec<_> = (0..args.connections)
        .map(|_| {
            let c = c.clone();
            tokio::spawn(async move {
                let mut stats = Stats::new();
                let (mut resumed, mut full) = (0u64, 0u64);
                loop {
                    let t0 = Instant::now();
                    if t0 >= end {
                        break;
                    }
                    let r = connection(&c).await;
                    if t0 < measure_from {
                        continue;
                    }
                    match r {
                        Ok((took, was_resumed)) => {
                            if was_resumed {
                                resumed += 1;
                            } else {
                                full += 1;
                            }
                            stats.record(&Outcome::Ok(Bytes::new()), took, took);
                        }
                        Err(e) => {
                            let d = t0.elapsed();
                            stats.record(&Outcome::Transport(e), d, d);
                        }
                    }
                }
                (stats, resumed, full)
            })
        })
        .collect();
    let mut stats = Stats::new();
    let (mut resumed, mut full) = (0u64, 0u64);
    for l in loops {
        let (s, r, f) = l.await?;
        stats.merge(s);
        resumed += r;
        full += f;
    }
    let secs = Instant::now()
        .min(end)
        .saturating_duration_since(measure_from)
        .as_secs_f64()
        .max(1e-9);
    let mode = format!(
        "handshake-{}{}",
        if args.resume { "resume" } else { "full" },
        if args.tls12 { "-tls12" } else { "" }
    );
    Report {
        target: args.target.clone(),
        op: "handshake",
        size: None,
        mode,
        connections: args.connections,
        sign: "-".into(),
        open_loop: false,
        json: args.json,
        extra: Some(serde_json::json!({"resumed": resumed, "full": full})),
    }
    .print(&stats, secs, None);
    println!("  handshakes: resumed={resumed} full={full}");
    Ok(())
}

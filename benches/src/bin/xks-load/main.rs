//! `xks-load`: drives a running keyhold (loopback only) with SigV4-signed XKS requests
//! over HTTP/1.1 keep-alive connections, plain or TLS (rustls, aws-lc-rs), and reports
//! throughput, latency percentiles and every non-2xx answer by `errorName`.
//!
//! - closed loop (default): N connections, each sending its next request as soon as the
//!   previous answer arrived, for D seconds;
//! - open loop (`--rate R`): a scheduler thread releases requests at fixed intended send
//!   times (one every 1/R s) into a queue served by the N connections; latency is
//!   measured from the *intended* send time, so a stalled server is charged for the
//!   requests it delayed (coordinated omission corrected). The service time (from the
//!   actual send) is reported next to it.
//!
//! Signatures: `--sign per-second` (default) signs each connection's request once per
//! wall-clock second and reuses it within that second (the body is fixed per operation
//! and size); `--sign fresh` signs every request with `aws-sigv4` (costs client CPU on a
//! machine the server shares).
//!
//! Several `--target`s (a cluster's nodes): each connection keeps one keep-alive
//! connection to every target and sends its requests to them in turn (round-robin), as
//! a simple client-side balancer does.
//!
//! `xks-load baseline-server` answers the same response shapes and sizes without doing
//! any work, on the same hyper/rustls stack as keyhold, so keyhold's throughput can be
//! quoted as a fraction of what the HTTP stack allows on the same machine.
//!
//! `xks-load propagation` measures how long a change made on one cluster node takes to
//! reach another (a credential deleted on node A, refused on node B).

mod baseline;
mod handshake;
mod pkcs11;
mod propagation;
mod report;

pub(crate) use report::Report;

use std::{
    collections::BTreeMap,
    net::SocketAddr,
    path::PathBuf,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use bytes::Bytes;
use clap::{Parser, Subcommand, ValueEnum};
use hdrhistogram::Histogram;
use http::{HeaderName, HeaderValue, Request, Uri};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use keyhold_benches::{
    Credential, KEY_ID, Op, PREFIX, decrypt_body_from_encrypt_response, encrypt_body,
    encrypt_body_cdiv, health_body, metadata_body, plaintext, sign_post,
};
use serde_json::Value;
use tokio::{
    io::{AsyncRead, AsyncWrite},
    net::TcpStream,
    sync::Mutex,
};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Longest run or server lifetime accepted, in seconds.
const MAX_SECONDS: u64 = 3600;
/// Most connections accepted.
const MAX_CONNECTIONS: usize = 1024;
/// Highest open-loop rate accepted, requests per second.
const MAX_RATE: u64 = 200_000;

#[derive(Parser)]
#[command(
    name = "xks-load",
    about = "Load generator for keyhold's XKS endpoint (loopback only)"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Drive a running keyhold (or baseline-server) and report.
    Run(RunArgs),
    /// A minimal hyper server answering canned XKS responses without any work.
    BaselineServer(BaselineArgs),
    /// Propagation delay of a change between two nodes of a cluster.
    Propagation(propagation::Args),
    /// The PKCS#11 token's own speed: AES-GCM through cryptoki in a tight loop, one
    /// session per thread (what luna is quoted against).
    Pkcs11(pkcs11::Args),
    /// TLS handshakes per second (full, or resumed with a session store).
    Handshake(handshake::Args),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum SignMode {
    /// Sign every request.
    Fresh,
    /// Sign once per connection per wall-clock second, reuse within the second.
    PerSecond,
}

#[derive(clap::Args, Clone)]
struct RunArgs {
    /// Base URL of the server: http://127.0.0.1:8080 or https://127.0.0.1:8443. Several
    /// (repeat or comma-separate): requests go to them round-robin.
    #[arg(long, value_delimiter = ',', default_value = "http://127.0.0.1:8080")]
    target: Vec<String>,
    /// PEM CA bundle trusted for https targets (e.g. <data_dir>/tls/ca.pem).
    #[arg(long)]
    cacert: Option<PathBuf>,
    /// Key store URI path prefix.
    #[arg(long, default_value = PREFIX)]
    prefix: String,
    /// External key id for metadata/encrypt/decrypt.
    #[arg(long, default_value = KEY_ID)]
    key: String,
    /// SigV4 access key id (default: the conformance store's first credential).
    #[arg(long, default_value_t = Credential::a().access_key_id)]
    access_key_id: String,
    /// SigV4 secret access key.
    #[arg(long, env = "XKS_LOAD_SECRET", default_value_t = Credential::a().secret, hide_default_value = true)]
    secret: String,
    /// Operations to run, one after the other (repeat or comma-separate).
    #[arg(long, value_enum, value_delimiter = ',', default_value = "encrypt")]
    op: Vec<Op>,
    /// Plaintext sizes in bytes for encrypt/decrypt (repeat or comma-separate).
    #[arg(long, value_delimiter = ',', default_value = "32")]
    size: Vec<usize>,
    /// Keep-alive connections.
    #[arg(long, short = 'c', default_value_t = 32)]
    connections: usize,
    /// Measured seconds per operation and size.
    #[arg(long, short = 'd', default_value_t = 10)]
    duration: u64,
    /// Unmeasured warm-up seconds before each measurement.
    #[arg(long, default_value_t = 2)]
    warmup: u64,
    /// Open loop at this many requests per second (default: closed loop).
    #[arg(long)]
    rate: Option<u64>,
    /// Stop after this many requests per operation and size.
    #[arg(long, default_value_t = 50_000_000)]
    max_requests: u64,
    /// Client runtime worker threads.
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// How requests are signed.
    #[arg(long, value_enum, default_value = "per-second")]
    sign: SignMode,
    /// Encrypt asks for a ciphertext data integrity value (SHA_256), as KMS does for
    /// some requests: keyhold then also decrypts what it sealed before answering.
    #[arg(long)]
    cdiv: bool,
    /// Also print one JSON line per result.
    #[arg(long)]
    json: bool,
}

#[derive(clap::Args, Clone)]
struct BaselineArgs {
    /// Loopback address to listen on.
    #[arg(long, default_value = "127.0.0.1:9080")]
    listen: SocketAddr,
    /// Serve HTTPS with keyhold's own TLS configuration (a development PKI is generated
    /// under <data-dir>/tls/; trust <data-dir>/tls/ca.pem).
    #[arg(long)]
    tls: bool,
    /// Where the TLS files go (with --tls).
    #[arg(long, default_value = "baseline-data")]
    data_dir: PathBuf,
    /// Exit after this many seconds.
    #[arg(long, default_value_t = 1800)]
    max_seconds: u64,
}

fn main() -> Result<(), BoxError> {
    let cli = Cli::parse();
    match cli.cmd {
        Cmd::Run(args) => {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(args.threads.clamp(1, 64))
                .enable_all()
                .build()?;
            rt.block_on(run(args))
        }
        Cmd::BaselineServer(args) => {
            // The same runtime shape as `keyhold serve`.
            let rt = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?;
            rt.block_on(baseline::baseline(args))
        }
        Cmd::Propagation(args) => tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()?
            .block_on(propagation::run(args)),
        Cmd::Pkcs11(args) => pkcs11::run(args),
        Cmd::Handshake(args) => tokio::runtime::Builder::new_multi_thread()
            .worker_threads(args.threads.clamp(1, 64))
            .enable_all()
            .build()?
            .block_on(handshake::run(args)),
    }
}

// ---------------------------------------------------------------------------------------
// Client
// ---------------------------------------------------------------------------------------

struct Target {
    addr: SocketAddr,
    authority: String,
    tls: Option<(
        tokio_rustls::TlsConnector,
        rustls_pki_types::ServerName<'static>,
    )>,
}

async fn resolve_target(args: &RunArgs, url: &str) -> Result<Target, BoxError> {
    let uri: Uri = url.parse()?;
    let https = match uri.scheme_str() {
        Some("http") => false,
        Some("https") => true,
        _ => return Err("--target must be http://host:port or https://host:port".into()),
    };
    let host = uri.host().ok_or("--target has no host")?.to_string();
    let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
    let authority = format!("{host}:{port}");
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host(authority.as_str()).await?.collect();
    if addrs.is_empty() || !addrs.iter().all(|a| a.ip().is_loopback()) {
        return Err(format!("refusing {authority}: xks-load only drives loopback targets").into());
    }
    let addr = addrs.iter().find(|a| a.is_ipv4()).unwrap_or(&addrs[0]);
    let tls = if https {
        let mut roots = rustls::RootCertStore::empty();
        let ca = args
            .cacert
            .as_ref()
            .ok_or("https targets need --cacert <ca.pem>")?;
        use rustls_pki_types::pem::PemObject;
        for cert in rustls_pki_types::CertificateDer::pem_file_iter(ca)? {
            roots.add(cert?)?;
        }
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let mut cfg = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots)
            .with_no_client_auth();
        cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
        let name = rustls_pki_types::ServerName::try_from(host.clone())?;
        Some((tokio_rustls::TlsConnector::from(Arc::new(cfg)), name))
    } else {
        None
    };
    Ok(Target {
        addr: *addr,
        authority,
        tls,
    })
}

type Sender = http1::SendRequest<Full<Bytes>>;

async fn handshake<S>(io: S) -> Result<Sender, BoxError>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (sender, conn) = http1::handshake(TokioIo::new(io)).await?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(sender)
}

async fn connect(target: &Target) -> Result<Sender, BoxError> {
    let tcp = TcpStream::connect(target.addr).await?;
    tcp.set_nodelay(true)?;
    match &target.tls {
        None => handshake(tcp).await,
        Some((connector, name)) => handshake(connector.connect(name.clone(), tcp).await?).await,
    }
}

/// What to send: one operation with a fixed body, to each target in turn.
struct Work {
    op: Op,
    size: Option<usize>,
    path: String,
    body: Bytes,
    cred: Credential,
    /// Each target's `host:port` (signed).
    authorities: Vec<String>,
    sign: SignMode,
}

/// A connection's signature cache.
#[derive(Default)]
struct Signature {
    second: u64,
    headers: Vec<(HeaderName, HeaderValue)>,
}

impl Work {
    fn signed_headers(&self, target: usize) -> Vec<(HeaderName, HeaderValue)> {
        sign_post(
            &self.cred,
            &self.authorities[target],
            &self.path,
            &self.body,
        )
        .into_iter()
        .map(|(n, v)| {
            (
                HeaderName::from_bytes(n.as_bytes()).expect("signer header name"),
                HeaderValue::from_str(&v).expect("signer header value"),
            )
        })
        .collect()
    }

    /// The request for target `target`, signed (or the signature of this second reused
    /// from `cache`, that target's).
    fn request(&self, target: usize, cache: &mut Signature) -> Request<Full<Bytes>> {
        let headers = match self.sign {
            SignMode::Fresh => self.signed_headers(target),
            SignMode::PerSecond => {
                let now = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .unwrap_or_default()
                    .as_secs();
                if cache.headers.is_empty() || cache.second != now {
                    cache.headers = self.signed_headers(target);
                    cache.second = now;
                }
                cache.headers.clone()
            }
        };
        let mut b = Request::post(self.path.as_str())
            .header(http::header::HOST, self.authorities[target].as_str())
            .header(http::header::CONTENT_TYPE, "application/json")
            .header(http::header::CONTENT_LENGTH, self.body.len());
        for (n, v) in headers {
            b = b.header(n, v);
        }
        b.body(Full::new(self.body.clone()))
            .expect("request builds")
    }
}

/// Outcome of one request.
pub(crate) enum Outcome {
    Ok(Bytes),
    Refused(String),
    Transport(String),
}

async fn send(sender: &mut Sender, req: Request<Full<Bytes>>) -> Outcome {
    if let Err(e) = sender.ready().await {
        return Outcome::Transport(format!("connection: {e}"));
    }
    let resp = match sender.send_request(req).await {
        Ok(r) => r,
        Err(e) => return Outcome::Transport(format!("send: {e}")),
    };
    let status = resp.status();
    let body = match resp.into_body().collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) => return Outcome::Transport(format!("body: {e}")),
    };
    if status.is_success() {
        Outcome::Ok(body)
    } else {
        let name = serde_json::from_slice::<Value>(&body)
            .ok()
            .and_then(|v| {
                v.get("errorName")
                    .and_then(Value::as_str)
                    .map(str::to_owned)
            })
            .unwrap_or_else(|| "<no errorName>".into());
        Outcome::Refused(format!("{} {name}", status.as_u16()))
    }
}

/// Per-connection (then merged) measurements.
pub(crate) struct Stats {
    latency: Histogram<u64>,
    service: Histogram<u64>,
    ok: u64,
    errors: BTreeMap<String, u64>,
}

impl Stats {
    pub(crate) fn new() -> Stats {
        let h = || Histogram::new_with_bounds(1, 120_000_000, 3).expect("histogram bounds");
        Stats {
            latency: h(),
            service: h(),
            ok: 0,
            errors: BTreeMap::new(),
        }
    }

    pub(crate) fn record(&mut self, outcome: &Outcome, latency: Duration, service: Duration) {
        let us = |d: Duration| (d.as_micros() as u64).clamp(1, 120_000_000);
        self.latency.saturating_record(us(latency));
        self.service.saturating_record(us(service));
        match outcome {
            Outcome::Ok(_) => self.ok += 1,
            Outcome::Refused(name) => *self.errors.entry(name.clone()).or_default() += 1,
            Outcome::Transport(e) => {
                let mut e = e.clone();
                e.truncate(80);
                *self.errors.entry(format!("transport {e}")).or_default() += 1
            }
        }
    }

    pub(crate) fn merge(&mut self, other: Stats) {
        self.latency.add(&other.latency).expect("same bounds");
        self.service.add(&other.service).expect("same bounds");
        self.ok += other.ok;
        for (k, v) in other.errors {
            *self.errors.entry(k).or_default() += v;
        }
    }
}

/// Timing of one measurement.
#[derive(Clone, Copy)]
struct Window {
    /// Requests before this are warm-up and not recorded.
    measure_from: Instant,
    /// No request is started (closed loop) or scheduled (open loop) after this.
    end: Instant,
    /// Hard stop for draining an open-loop backlog.
    hard_end: Instant,
}

async fn reconnect(target: &Target, window: Window) -> Option<Sender> {
    loop {
        match connect(target).await {
            Ok(s) => return Some(s),
            Err(_) if Instant::now() < window.hard_end => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(_) => return None,
        }
    }
}

/// One connection's sending loop: its connection to each target, signature caches and
/// measurements.
struct Worker {
    targets: Arc<Vec<Target>>,
    work: Arc<Work>,
    window: Window,
    senders: Vec<Sender>,
    caches: Vec<Signature>,
    /// The target of the next request (round-robin).
    next: usize,
    stats: Stats,
}

impl Worker {
    /// Connects to every target (retrying until the window's hard end); `None` when it
    /// never could; the first request goes to target `first`.
    async fn connect(
        targets: Arc<Vec<Target>>,
        work: Arc<Work>,
        window: Window,
        first: usize,
    ) -> Option<Worker> {
        let mut senders = Vec::with_capacity(targets.len());
        for target in targets.iter() {
            senders.push(reconnect(target, window).await?);
        }
        Some(Worker {
            caches: targets.iter().map(|_| Signature::default()).collect(),
            targets,
            work,
            window,
            senders,
            next: first,
            stats: Stats::new(),
        })
    }

    /// Sends one request and records it when its start (the `intended` send time, or
    /// the actual one) is in the measured window; reconnects after a transport error.
    /// False when the connection is lost for good.
    async fn exchange(&mut self, intended: Option<Instant>) -> bool {
        let t = self.next % self.targets.len();
        self.next = t + 1;
        let req = self.work.request(t, &mut self.caches[t]);
        let sent = Instant::now();
        let outcome = send(&mut self.senders[t], req).await;
        let done = Instant::now();
        let from = intended.unwrap_or(sent);
        if from >= self.window.measure_from {
            self.stats.record(&outcome, done - from, done - sent);
        }
        if matches!(outcome, Outcome::Transport(_)) {
            match reconnect(&self.targets[t], self.window).await {
                Some(s) => self.senders[t] = s,
                None => return false,
            }
        }
        true
    }
}

type Queue = Arc<Mutex<tokio::sync::mpsc::UnboundedReceiver<Instant>>>;

/// What paces a connection's requests.
#[derive(Clone)]
enum Pace {
    /// Closed loop: the next request as soon as the answer came, while this shared
    /// budget of requests lasts.
    Closed(Arc<AtomicU64>),
    /// Open loop: one request per intended send time taken from the queue.
    Open(Queue),
}

async fn worker(
    targets: Arc<Vec<Target>>,
    work: Arc<Work>,
    window: Window,
    pace: Pace,
    first: usize,
) -> Stats {
    let Some(mut worker) = Worker::connect(targets, work, window, first).await else {
        return Stats::new();
    };
    match pace {
        Pace::Closed(budget) => {
            while Instant::now() < window.end {
                if budget.fetch_sub(1, Ordering::Relaxed) == 0 {
                    budget.store(0, Ordering::Relaxed);
                    break;
                }
                if !worker.exchange(None).await {
                    break;
                }
            }
        }
        Pace::Open(queue) => loop {
            let next = { queue.lock().await.recv().await };
            let Some(intended) = next else { break };
            if Instant::now() > window.hard_end || !worker.exchange(Some(intended)).await {
                break;
            }
        },
    }
    worker.stats
}

/// Releases intended send times at `rate` per second from a dedicated OS thread
/// (`nanosleep` resolution, not tokio's 1 ms timer wheel). Returns the largest lateness
/// of a release, in microseconds.
fn schedule(
    rate: u64,
    start: Instant,
    end: Instant,
    max: u64,
    tx: tokio::sync::mpsc::UnboundedSender<Instant>,
) -> std::thread::JoinHandle<u64> {
    std::thread::spawn(move || {
        let mut late_max = 0u64;
        let interval_ns = 1_000_000_000f64 / rate as f64;
        for i in 0..max {
            let intended = start + Duration::from_nanos((i as f64 * interval_ns) as u64);
            if intended >= end {
                break;
            }
            let now = Instant::now();
            if intended > now {
                std::thread::sleep(intended - now);
            }
            late_max = late_max.max(
                Instant::now()
                    .saturating_duration_since(intended)
                    .as_micros() as u64,
            );
            if tx.send(intended).is_err() {
                break;
            }
        }
        late_max
    })
}

async fn prepare(
    args: &RunArgs,
    targets: &[Target],
    op: Op,
    size: usize,
) -> Result<Arc<Work>, BoxError> {
    let work = |op: Op, body: Vec<u8>, sign: SignMode| Work {
        op,
        size: matches!(op, Op::Encrypt | Op::Decrypt).then_some(size),
        path: op.path(&args.prefix, &args.key),
        body: body.into(),
        cred: Credential::new(&args.access_key_id, &args.secret),
        authorities: targets.iter().map(|t| t.authority.clone()).collect(),
        sign,
    };
    let body = match op {
        Op::Health => health_body(),
        Op::Metadata => metadata_body(),
        Op::Encrypt if args.cdiv => encrypt_body_cdiv(&plaintext(size)),
        Op::Encrypt => encrypt_body(&plaintext(size)),
        Op::Decrypt => {
            // Encrypt once (on the first target) to get a ciphertext to decrypt.
            let enc = work(Op::Encrypt, encrypt_body(&plaintext(size)), SignMode::Fresh);
            let mut sender = connect(&targets[0]).await?;
            let sealed = match send(&mut sender, enc.request(0, &mut Signature::default())).await {
                Outcome::Ok(b) => b,
                Outcome::Refused(e) => return Err(format!("set-up encrypt refused: {e}").into()),
                Outcome::Transport(e) => return Err(format!("set-up encrypt: {e}").into()),
            };
            decrypt_body_from_encrypt_response(&sealed)?
        }
    };
    Ok(Arc::new(work(op, body, args.sign)))
}

async fn run(args: RunArgs) -> Result<(), BoxError> {
    if args.connections == 0 || args.connections > MAX_CONNECTIONS {
        return Err(format!("--connections must be 1..={MAX_CONNECTIONS}").into());
    }
    if args.duration == 0 || args.duration + args.warmup > MAX_SECONDS {
        return Err(format!("--duration + --warmup must be 1..={MAX_SECONDS} seconds").into());
    }
    if args.rate.is_some_and(|r| r == 0 || r > MAX_RATE) {
        return Err(format!("--rate must be 1..={MAX_RATE}").into());
    }
    let mut targets = Vec::with_capacity(args.target.len());
    for url in &args.target {
        targets.push(resolve_target(&args, url).await?);
    }
    let targets = Arc::new(targets);
    let sizes: Vec<usize> = args.size.clone();
    for &op in &args.op {
        let op_sizes = if matches!(op, Op::Encrypt | Op::Decrypt) {
            sizes.clone()
        } else {
            vec![0]
        };
        for size in op_sizes {
            let work = prepare(&args, &targets, op, size).await?;
            run_one(&args, targets.clone(), work).await;
        }
    }
    Ok(())
}

async fn run_one(args: &RunArgs, targets: Arc<Vec<Target>>, work: Arc<Work>) {
    let start = Instant::now();
    let measure_from = start + Duration::from_secs(args.warmup);
    let end = measure_from + Duration::from_secs(args.duration);
    let window = Window {
        measure_from,
        end,
        hard_end: end + Duration::from_secs(10),
    };
    let (pace, open) = match args.rate {
        None => (
            Pace::Closed(Arc::new(AtomicU64::new(args.max_requests))),
            None,
        ),
        Some(rate) => {
            let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
            (Pace::Open(Arc::new(Mutex::new(rx))), Some((rate, tx)))
        }
    };
    let handles: Vec<_> = (0..args.connections)
        .map(|c| {
            let (targets, work, pace) = (targets.clone(), work.clone(), pace.clone());
            tokio::spawn(worker(targets, work, window, pace, c))
        })
        .collect();
    let scheduler = match open {
        None => None,
        Some((rate, tx)) => {
            // Let the connections open before the first intended send time.
            tokio::time::sleep(Duration::from_millis(200)).await;
            Some(schedule(rate, Instant::now(), end, args.max_requests, tx))
        }
    };
    let mut stats = Stats::new();
    for h in handles {
        if let Ok(s) = h.await {
            stats.merge(s);
        }
    }
    let scheduler_late_us = scheduler.and_then(|s| s.join().ok());
    let measured = Instant::now()
        .min(end)
        .saturating_duration_since(measure_from)
        .as_secs_f64()
        .max(1e-9);
    report(args, &work, &stats, measured, scheduler_late_us);
}

fn report(args: &RunArgs, work: &Work, stats: &Stats, secs: f64, late_us: Option<u64>) {
    Report {
        target: args.target.join(","),
        op: if args.cdiv && work.op == Op::Encrypt {
            "encrypt-cdiv"
        } else {
            work.op.name()
        },
        size: work.size,
        mode: match args.rate {
            None => "closed".to_string(),
            Some(r) => format!("open@{r}/s"),
        },
        connections: args.connections,
        sign: format!("{:?}", args.sign),
        open_loop: args.rate.is_some(),
        json: args.json,
        extra: None,
    }
    .print(stats, secs, late_us);
}

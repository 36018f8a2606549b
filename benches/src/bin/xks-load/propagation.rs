//! `xks-load propagation`: how long a change made through one cluster node's admin API
//! takes to reach another node's data plane. Each round adds a credential to a store on
//! node A and polls node B until it authenticates, then deletes it on A and polls B
//! until it is refused (401). Delays are measured from the admin API's answer (the
//! change is committed) to the first answer of B that shows it; B is polled back to
//! back on one keep-alive connection (GetHealthStatus, signed afresh each time).

use std::{
    net::SocketAddr,
    path::PathBuf,
    time::{Duration, Instant},
};

use keyhold_testkit::{
    Credential, RawRequest, Transport,
    admin::{AdminClient, credential_of, expect_status},
    bodies,
    client::Conn,
};
use serde_json::json;

use crate::BoxError;

/// Longest wait for one change to show on node B.
const GIVE_UP: Duration = Duration::from_secs(30);

#[derive(clap::Args, Clone)]
pub struct Args {
    /// Node A's admin API (plain HTTP, loopback), where changes are made.
    #[arg(long, default_value = "http://127.0.0.1:9091")]
    admin: String,
    /// Node B's XKS endpoint (plain HTTP, loopback), where they are observed.
    #[arg(long, default_value = "http://127.0.0.1:8082")]
    target: String,
    /// Admin user.
    #[arg(long, default_value = "root")]
    user: String,
    /// File holding the admin password (e.g. cluster-data/root-password).
    #[arg(long)]
    password_file: PathBuf,
    /// Name of the key store whose credentials are added and deleted.
    #[arg(long, default_value = "acme")]
    store: String,
    /// Rounds (one credential added and deleted each).
    #[arg(long, default_value_t = 20)]
    rounds: usize,
    /// Also print one JSON line with the results.
    #[arg(long)]
    json: bool,
}

/// `http://127.0.0.1:<port>` as a loopback address.
fn loopback(url: &str) -> Result<SocketAddr, BoxError> {
    let addr: SocketAddr = url
        .strip_prefix("http://")
        .ok_or_else(|| format!("{url}: give a plain http:// loopback URL"))?
        .trim_end_matches('/')
        .parse()?;
    if !addr.ip().is_loopback() {
        return Err(format!("refusing {url}: only loopback nodes are measured").into());
    }
    Ok(addr)
}

/// Polls node B (GetHealthStatus signed with `cred`) until it answers `status`; the
/// time from `since`.
async fn until_status(
    conn: &mut Conn,
    transport: &Transport,
    base: &str,
    cred: &Credential,
    status: u16,
    since: Instant,
) -> Result<Duration, BoxError> {
    let path = format!("{base}/health");
    loop {
        let req = RawRequest::post_json(&path, &bodies::health()).signed_at(
            cred,
            &transport.authority(),
            std::time::SystemTime::now(),
        );
        let reply = match conn.send(&req).await {
            Ok(r) => r,
            Err(_) => {
                // The server closed the connection (e.g. after a refusal): a new one.
                *conn = transport.connect().await?;
                continue;
            }
        };
        if reply.status.as_u16() == status {
            return Ok(since.elapsed());
        }
        if since.elapsed() > GIVE_UP {
            return Err(format!(
                "node B still answers {} after {GIVE_UP:?} (waiting for {status})",
                reply.status
            )
            .into());
        }
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Median, minimum and maximum in milliseconds.
fn summary(mut values: Vec<Duration>) -> (f64, f64, f64) {
    values.sort_unstable();
    let at = |i: usize| values.get(i).copied().map_or(0.0, ms);
    (
        at(values.len() / 2),
        at(0),
        at(values.len().saturating_sub(1)),
    )
}

pub async fn run(args: Args) -> Result<(), BoxError> {
    if args.rounds == 0 || args.rounds > 1000 {
        return Err("--rounds must be 1..=1000".into());
    }
    let password = std::fs::read_to_string(&args.password_file)
        .map_err(|e| format!("{}: {e}", args.password_file.display()))?;
    let admin = AdminClient::new(Transport::plain(loopback(&args.admin)?));
    let login = admin.try_login(&args.user, password.trim()).await;
    let token = expect_status(&login, 200)["token"]
        .as_str()
        .ok_or("login: no token")?
        .to_string();
    let admin = admin.with_token(&token);
    let stores = expect_status(&admin.get("/api/v1/stores").await, 200);
    let store = stores
        .as_array()
        .and_then(|all| all.iter().find(|s| s["name"] == args.store.as_str()))
        .ok_or_else(|| format!("no store named {} on {}", args.store, args.admin))?;
    let id = store["id"].as_str().ok_or("store id")?.to_string();
    let base = store["xks_uri_path"]
        .as_str()
        .ok_or("store xks_uri_path")?
        .to_string();
    let transport = Transport::plain(loopback(&args.target)?);
    let mut conn = transport.connect().await?;
    let credentials = format!("/api/v1/stores/{id}/credentials");

    let (mut commits, mut added, mut deleted) = (Vec::new(), Vec::new(), Vec::new());
    for round in 1..=args.rounds {
        let r = admin.post(&credentials, &json!({})).await;
        let cred = credential_of(&expect_status(&r, 201));
        let add = until_status(&mut conn, &transport, &base, &cred, 200, Instant::now()).await?;
        let asked = Instant::now();
        let r = admin
            .delete(&format!("{credentials}/{}", cred.access_key_id))
            .await;
        expect_status(&r, 204);
        let commit = asked.elapsed();
        let delete = until_status(&mut conn, &transport, &base, &cred, 401, Instant::now()).await?;
        println!(
            "round {round:2}: added: served on B {:7.2} ms after A answered; deleted: A answered in {:7.2} ms, refused on B {:7.2} ms later",
            ms(add),
            ms(commit),
            ms(delete)
        );
        commits.push(commit);
        added.push(add);
        deleted.push(delete);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (c, a, d) = (summary(commits), summary(added), summary(deleted));
    println!(
        "{} rounds, A = {}, B = {} (ms: median [min-max])",
        args.rounds, args.admin, args.target
    );
    println!(
        "  delete answered on A (committed to etcd): {:.2} [{:.2}-{:.2}]",
        c.0, c.1, c.2
    );
    println!(
        "  deleted credential refused on B after A's answer: {:.2} [{:.2}-{:.2}]",
        d.0, d.1, d.2
    );
    println!(
        "  added credential served on B after A's answer: {:.2} [{:.2}-{:.2}]",
        a.0, a.1, a.2
    );
    if args.json {
        let line = json!({
            "admin": args.admin, "target": args.target, "rounds": args.rounds,
            "commit_ms": {"median": c.0, "min": c.1, "max": c.2},
            "delete_visible_ms": {"median": d.0, "min": d.1, "max": d.2},
            "add_visible_ms": {"median": a.0, "min": a.1, "max": a.2},
        });
        println!("{line}");
    }
    Ok(())
}

//! `kms-emulator`: runs the KMS emulator on its own (state in memory) and prints its
//! endpoint.

use std::{path::PathBuf, process::ExitCode, time::Duration};

use clap::Parser;
use kms_emulator::{EmulatorConfig, IamRole, IamUser, TlsIdentity};

/// An AWS KMS emulator for external key stores (AWS JSON 1.1 + SigV4, STS AssumeRole).
#[derive(Debug, Parser)]
#[command(name = "kms-emulator", version)]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:4599")]
    listen: String,
    /// The AWS region it plays.
    #[arg(long, default_value = "us-east-1")]
    region: String,
    /// The 12-digit account id.
    #[arg(long, default_value = "111122223333")]
    account: String,
    /// An IAM user: NAME:ACCESS_KEY_ID:SECRET (repeatable).
    #[arg(long = "user", value_name = "NAME:AKID:SECRET")]
    users: Vec<String>,
    /// An assumable role and the users it trusts: ARN=AKID[,AKID] (repeatable).
    #[arg(long = "role", value_name = "ARN=AKID[,AKID]")]
    roles: Vec<String>,
    /// PEM of the CA that issued the XKS proxies' certificates.
    #[arg(long = "xks-ca", value_name = "FILE")]
    xks_ca: Option<PathBuf>,
    /// Serve HTTPS with this certificate chain (PEM).
    #[arg(long, requires = "tls_key", value_name = "FILE")]
    tls_cert: Option<PathBuf>,
    /// The private key of --tls-cert (PEM).
    #[arg(long, requires = "tls_cert", value_name = "FILE")]
    tls_key: Option<PathBuf>,
    /// Deadline of each XKS proxy call, in milliseconds.
    #[arg(long, default_value_t = 250)]
    xks_timeout_ms: u64,
    /// How long CONNECTING and DISCONNECTING last, in milliseconds.
    #[arg(long, default_value_t = 300)]
    transition_ms: u64,
}

fn config(args: &Args) -> Result<EmulatorConfig, String> {
    let mut c = EmulatorConfig::new(&args.region, &args.account);
    for u in &args.users {
        let mut parts = u.splitn(3, ':');
        match (parts.next(), parts.next(), parts.next()) {
            (Some(n), Some(a), Some(s)) if !n.is_empty() && !a.is_empty() && !s.is_empty() => {
                c.users.push(IamUser {
                    name: n.into(),
                    access_key_id: a.into(),
                    secret_access_key: s.into(),
                })
            }
            _ => return Err(format!("--user '{u}': expected NAME:AKID:SECRET")),
        }
    }
    for r in &args.roles {
        let Some((arn, keys)) = r.split_once('=') else {
            return Err(format!("--role '{r}': expected ARN=AKID[,AKID]"));
        };
        c.roles.push(IamRole {
            arn: arn.into(),
            trusted_access_key_ids: keys
                .split(',')
                .filter(|k| !k.is_empty())
                .map(String::from)
                .collect(),
        });
    }
    if let Some(p) = &args.xks_ca {
        c.xks_ca_pem = std::fs::read(p).map_err(|e| format!("--xks-ca {}: {e}", p.display()))?;
    }
    if let (Some(cert), Some(key)) = (&args.tls_cert, &args.tls_key) {
        c.tls = Some(TlsIdentity {
            cert_pem: std::fs::read(cert)
                .map_err(|e| format!("--tls-cert {}: {e}", cert.display()))?,
            key_pem: std::fs::read(key).map_err(|e| format!("--tls-key {}: {e}", key.display()))?,
        });
    }
    c.xks_timeout = Duration::from_millis(args.xks_timeout_ms);
    c.transition_delay = Duration::from_millis(args.transition_ms);
    Ok(c)
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    let cfg = match config(&args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("kms-emulator: {e}");
            return ExitCode::from(2);
        }
    };
    let listener = match std::net::TcpListener::bind(&args.listen) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("kms-emulator: cannot listen on {}: {e}", args.listen);
            return ExitCode::FAILURE;
        }
    };
    let emulator = match kms_emulator::start(cfg, listener).await {
        Ok(e) => e,
        Err(e) => {
            eprintln!("kms-emulator: {e}");
            return ExitCode::FAILURE;
        }
    };
    println!("{}", emulator.endpoint());
    let _ = tokio::signal::ctrl_c().await;
    emulator.shutdown().await;
    ExitCode::SUCCESS
}

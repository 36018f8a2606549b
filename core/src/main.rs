//! The `keyhold` command.
#![forbid(unsafe_code)]

use std::{path::PathBuf, process::ExitCode};

use clap::{Parser, Subcommand};
use keyhold::config::{Config, LogFormat};

mod cli;

/// keyhold: hold-your-own-key server for AWS KMS external key stores.
#[derive(Parser)]
#[command(version = cli::version::line(), about, after_help = cli::EXIT_CODES)]
struct Cli {
    #[command(flatten)]
    global: cli::Global,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Runs the server (the embedded defaults without --config: a ready demo store).
    Serve {
        /// TOML configuration file; `KEYHOLD_*` environment variables override it.
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
    /// Checks a configuration file and opens its declared key sources, as `serve` would
    /// but on a throwaway in-memory store: each source is reported ok or failed with the
    /// reason (exit 0 when all open, 1 when one does not, 2 when the file is invalid).
    CheckConfig {
        /// TOML configuration file.
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
    /// Runs the plugin conformance kit on a built plugin library, loaded as `serve` loads
    /// it (exit 0 when every check passes, 1 when one fails, listing it).
    PluginCheck {
        /// The plugin library, e.g. target/debug/libplugin_acme_hsm.so.
        #[arg(long)]
        library: PathBuf,
        /// The key source's configuration (what `[sources.NAME] config` holds), as JSON.
        #[arg(long, default_value = "{}")]
        config: String,
    },
    /// Prints the embedded default configuration.
    DefaultConfig,
    /// Verifies the audit log: every segment's chain (keyed records with the master key
    /// of the configuration) and its end against the anchor in the store (exit 0 when
    /// intact, 1 when something does not verify, naming the segment and record).
    AuditVerify {
        /// The audit log's first segment (default: `<data_dir>/audit.jsonl` of the
        /// configuration). Alone, without --config, only an unkeyed chain is checked.
        #[arg(long)]
        file: Option<PathBuf>,
        /// Configuration that names the data directory, the master key and the store.
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// Do not read the anchor from the store (e.g. while the server runs and holds
        /// the store): truncation of the tail is then not detected.
        #[arg(long)]
        skip_anchor: bool,
    },
    /// Exports or imports the whole durable store (offline, on the store the
    /// configuration names): move from the embedded store to etcd, back up, restore.
    #[command(subcommand)]
    Store(cli::store_transfer::StoreCmd),
    #[command(flatten)]
    Admin(cli::AdminCommand),
}

fn init_logging(cfg: &Config) {
    use tracing_subscriber::{EnvFilter, fmt};
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&cfg.log.level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(std::io::stderr);
    match cfg.log.format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Admin(cmd) => cli::run(cli.global, cmd),
        Command::AuditVerify {
            file,
            config,
            skip_anchor,
        } => cli::audit_verify::run(file, config.as_deref(), skip_anchor),
        Command::Store(cmd) => cli::store_transfer::run(cmd),
        Command::DefaultConfig => {
            print!("{}", keyhold::config::EMBEDDED_DEFAULTS);
            ExitCode::SUCCESS
        }
        Command::CheckConfig { config } => match Config::load(config.as_deref()) {
            Ok(cfg) => check_config(&cfg),
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::from(2)
            }
        },
        Command::PluginCheck { library, config } => plugin_check(&library, &config),
        Command::Serve { config } => {
            let cfg = match Config::load(config.as_deref()) {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("error: {e}");
                    return ExitCode::from(2);
                }
            };
            init_logging(&cfg);
            tracing::info!("keyhold {}", cli::version::line());
            let runtime = match tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .thread_name("keyhold")
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    eprintln!("error: cannot start the runtime: {e}");
                    return ExitCode::FAILURE;
                }
            };
            runtime.block_on(serve(cfg))
        }
    }
}

/// `check-config` once the file is valid: opens every declared key source.
fn check_config(cfg: &Config) -> ExitCode {
    println!("configuration is valid");
    let checks = keyhold::app::check_sources(cfg);
    for check in &checks {
        match &check.outcome {
            Ok(()) => println!(
                "key source '{}': ok ({})",
                check.name,
                check.library.display()
            ),
            Err(reason) => println!("key source '{}': failed: {reason}", check.name),
        }
    }
    let failed = checks.iter().filter(|c| c.outcome.is_err()).count();
    if failed == 0 {
        ExitCode::SUCCESS
    } else {
        eprintln!(
            "error: {failed} of {} key sources did not open",
            checks.len()
        );
        ExitCode::FAILURE
    }
}

/// `plugin-check`: the conformance kit on a built library.
fn plugin_check(library: &std::path::Path, config: &str) -> ExitCode {
    let config = match serde_json::from_str::<serde_json::Value>(config) {
        Ok(value) => value.to_string(),
        Err(e) => {
            eprintln!("error: --config is not JSON: {e}");
            return ExitCode::from(2);
        }
    };
    let checks = keyhold_sdk::conformance::CHECKS;
    match keyhold_sdk::conformance::run_library(library, &config) {
        Ok(report) => {
            println!(
                "{}: all {} conformance checks passed ({})",
                library.display(),
                report.passed.len(),
                report.passed.join(", ")
            );
            if !report.leftover_keys.is_empty() {
                println!(
                    "keys left in the source: {}",
                    report.leftover_keys.join(", ")
                );
            }
            ExitCode::SUCCESS
        }
        Err(failure) => {
            println!("{}: conformance check FAILED", library.display());
            println!("failed: {failure}");
            let at = checks.iter().position(|c| *c == failure.check);
            let (passed, not_run) = match at {
                Some(i) => (&checks[..i], &checks[i + 1..]),
                None => (&checks[..0], checks),
            };
            println!("passed: {}", list_or_none(passed));
            println!("not run: {}", list_or_none(not_run));
            ExitCode::FAILURE
        }
    }
}

fn list_or_none(names: &[&str]) -> String {
    if names.is_empty() {
        "none".to_string()
    } else {
        names.join(", ")
    }
}

async fn serve(cfg: Config) -> ExitCode {
    let data_dir = cfg.data_dir.clone();
    let running = match keyhold::app::start(cfg).await {
        Ok(r) => r,
        Err(e) => {
            tracing::error!("keyhold did not start: {e}");
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let scheme = if running.tls { "https" } else { "http" };
    for (store, path) in &running.generated_credentials {
        println!(
            "Generated credentials for key store '{store}' (shown once): {}",
            path.display()
        );
        let env = path.with_extension("env");
        let host = if running.xks_addr.ip().is_loopback() {
            format!("localhost:{}", running.xks_addr.port())
        } else {
            running.xks_addr.to_string()
        };
        let cacert = if running.tls {
            format!("--cacert {} ", data_dir.join("tls/ca.pem").display())
        } else {
            String::new()
        };
        println!(
            "Try it:\n  . {}\n  curl -s {cacert}--aws-sigv4 aws:amz:us-east-1:kms-xks-proxy --user \"$XKS_ACCESS_KEY_ID:$XKS_SECRET_ACCESS_KEY\" \\\n    -H 'content-type: application/json' \\\n    -d '{{\"requestMetadata\":{{\"awsPrincipalArn\":\"arn:aws:iam::111122223333:user/me\",\"kmsKeyArn\":\"arn:aws:kms:us-east-1:111122223333:key/demo\",\"kmsOperation\":\"Encrypt\",\"kmsRequestId\":\"try-1\"}},\"plaintext\":\"SGVsbG8sIGtleWhvbGQh\",\"encryptionAlgorithm\":\"AES_GCM\"}}' \\\n    {scheme}://{host}$XKS_URI_PATH/keys/demo-key/encrypt",
            env.display()
        );
    }
    if let (Some(file), Some(addr)) = (&running.root_password_file, running.admin_addr) {
        println!("{}", login_hint(file, addr, running.admin_tls, &data_dir));
    }
    for (source, reason) in &running.failed_sources {
        eprintln!("warning: key source '{source}' is unavailable: {reason}");
    }
    wait_for_signal().await;
    tracing::info!("shutting down");
    running.shutdown().await;
    ExitCode::SUCCESS
}

/// What `serve` prints on a first start: where the root password is and how to log in.
fn login_hint(
    file: &std::path::Path,
    addr: std::net::SocketAddr,
    tls: bool,
    data_dir: &std::path::Path,
) -> String {
    let host = if addr.ip().is_unspecified() || addr.ip().is_loopback() {
        format!("127.0.0.1:{}", addr.port())
    } else if addr.is_ipv6() {
        format!("[{}]:{}", addr.ip(), addr.port())
    } else {
        addr.to_string()
    };
    let url = format!("{}://{host}", if tls { "https" } else { "http" });
    let mut flags = String::new();
    if url != cli::DEFAULT_SERVER {
        flags += &format!(" --server {url}");
    }
    let ca = data_dir.join("tls/ca.pem");
    if tls && ca != std::path::Path::new(cli::DEFAULT_CACERT) {
        flags += &format!(" --cacert {}", ca.display());
    }
    format!(
        "Admin API: {url} (root password in {file})\nLog in with:\n  keyhold{flags} login --user root --password-stdin < {file}",
        file = file.display()
    )
}

async fn wait_for_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}

//! The `keyhold` command.

use std::{path::PathBuf, process::ExitCode};

use clap::{Parser, Subcommand};
use keyhold::config::{Config, LogFormat};

/// keyhold: hold-your-own-key server for AWS KMS external key stores.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
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
    /// Checks a configuration file and exits (0 when valid).
    CheckConfig {
        /// TOML configuration file.
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
    /// Prints the embedded default configuration.
    DefaultConfig,
    /// Verifies an audit log's hash chain (exit 0 when intact, 1 when broken).
    AuditVerify {
        /// The audit log file (default: `<data_dir>/audit.jsonl` of the configuration).
        #[arg(long)]
        file: Option<PathBuf>,
        /// Configuration that names the data directory.
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
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
        Command::AuditVerify { file, config } => {
            let path = match file {
                Some(f) => f,
                None => match Config::load(config.as_deref()) {
                    Ok(c) => c.audit_path(),
                    Err(e) => {
                        eprintln!("error: {e}");
                        return ExitCode::from(2);
                    }
                },
            };
            match keyhold::audit::verify(&path) {
                Ok((n, last)) => {
                    println!(
                        "{}: {n} records, chain intact (last hash {last})",
                        path.display()
                    );
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("error: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::DefaultConfig => {
            print!("{}", keyhold::config::EMBEDDED_DEFAULTS);
            ExitCode::SUCCESS
        }
        Command::CheckConfig { config } => match Config::load(config.as_deref()) {
            Ok(_) => {
                println!("configuration is valid");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::from(2)
            }
        },
        Command::Serve { config } => {
            let cfg = match Config::load(config.as_deref()) {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("error: {e}");
                    return ExitCode::from(2);
                }
            };
            init_logging(&cfg);
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
    for (source, reason) in &running.failed_sources {
        eprintln!("warning: key source '{source}' is unavailable: {reason}");
    }
    wait_for_signal().await;
    tracing::info!("shutting down");
    running.shutdown().await;
    ExitCode::SUCCESS
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

//! The admin command-line interface: `keyhold login`, `keyhold keystore create ...`
//! and friends drive the management REST API (`/api/v1`) of a running keyhold.
//!
//! Output is an aligned table (or `field  value` lines) by default and the API's JSON
//! with `--output json`. Exit codes: 0 ok, 2 usage error (also bad local input),
//! 3 refused by the server (HTTP 4xx), 4 server or connection error (HTTP 5xx,
//! TCP/TLS failure).
//!
//! This file holds what every command shares (the global options, the command enum,
//! the error type and exit codes); each resource has its own module with its clap
//! subcommands, its request bodies and its output. Each request body is one small
//! `Serialize` struct next to the command that sends it (the place to swap in the
//! server's own API types); answers stay JSON values, printed as the server sent them.
//!
//! `routes.rs` maps every admin API route to the command that drives it; a test
//! (tests/tests/cli_routes.rs) holds it to the server's OpenAPI document, so a new
//! route needs a command and an entry there.

use std::{path::PathBuf, process::ExitCode};

use clap::{Args, Subcommand, ValueEnum};

mod accounts;
mod audit;
pub mod audit_verify;
mod client;
mod connections;
mod context;
mod credentials;
mod jobs;
mod keys;
mod login;
mod nodes;
mod output;
mod password;
#[cfg(test)]
mod routes;
mod schedules;
mod session;
mod sources;
mod store_metrics;
pub mod store_transfer;
mod stores;
mod tokens;
mod users;
pub mod version;

#[cfg(test)]
mod tests;

use context::Ctx;

/// Where the CLI keeps the session saved by `login` (`$KEYHOLD_CLI_CONFIG` wins).
pub const CONFIG_ENV: &str = "KEYHOLD_CLI_CONFIG";
/// The default admin API address (the embedded defaults' `[admin] listen`).
pub const DEFAULT_SERVER: &str = "https://127.0.0.1:8444";
/// The CA the embedded defaults generate, used when it exists and no --cacert is given.
pub const DEFAULT_CACERT: &str = "keyhold-data/tls/ca.pem";

/// The exit-code section of `keyhold --help`.
pub const EXIT_CODES: &str = "\
Exit codes:
  0  success
  1  `audit-verify` or `audit status` found a broken chain, `serve` could not start, `check-config` could
     not open a declared key source, `plugin-check` found a failing check, or
     `store export`/`store import` refused (saying why)
  2  usage error (unknown flag, missing argument, unreadable local file, bad local input)
  3  refused by the server (HTTP 4xx: validation, authentication, permission, a rule)
  4  server or connection error (HTTP 5xx, server not reachable, TLS failure)

Admin commands talk to the management API (default https://127.0.0.1:8444 with
keyhold-data/tls/ca.pem). Start with: keyhold login --password-stdin < keyhold-data/root-password";

/// Why a command failed; decides the exit code.
#[derive(Debug)]
pub enum CliError {
    /// Bad local input (exit 2).
    Usage(String),
    /// The server refused (HTTP 4xx; exit 3).
    Refused {
        /// HTTP status.
        status: u16,
        /// The API's error code.
        code: String,
        /// The API's message.
        message: String,
    },
    /// Server error or no connection (exit 4).
    Server(String),
    /// The server answered that something is broken (exit 1): `audit status` of a
    /// chain that does not verify.
    Broken(String),
}

impl CliError {
    fn exit_code(&self) -> u8 {
        match self {
            CliError::Usage(_) => 2,
            CliError::Refused { .. } => 3,
            CliError::Server(_) => 4,
            CliError::Broken(_) => 1,
        }
    }
}

impl std::fmt::Display for CliError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CliError::Usage(m) => write!(f, "{m} (usage)"),
            CliError::Refused { code, message, .. } => write!(f, "{message} ({code})"),
            CliError::Server(m) | CliError::Broken(m) => write!(f, "{m}"),
        }
    }
}

/// The result of a CLI step.
type Result<T> = std::result::Result<T, CliError>;

/// Output format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Output {
    /// Aligned tables and `field  value` lines.
    Table,
    /// The API's JSON, pretty-printed.
    Json,
}

/// Options of every admin command.
#[derive(Args, Debug)]
#[command(next_help_heading = "Global options")]
pub struct Global {
    /// Admin API URL [default: the server saved by `login`, else https://127.0.0.1:8444]
    #[arg(long, env = "KEYHOLD_SERVER", global = true, value_name = "URL")]
    pub server: Option<String>,
    /// CA certificate (PEM) to trust for HTTPS [default: keyhold-data/tls/ca.pem when it exists]
    #[arg(long, env = "KEYHOLD_CACERT", global = true, value_name = "FILE")]
    pub cacert: Option<PathBuf>,
    /// Bearer token [default: the one saved by `login`]
    #[arg(long, env = "KEYHOLD_TOKEN", global = true, hide_env_values = true)]
    #[arg(value_name = "TOKEN")]
    pub token: Option<String>,
    /// Output format
    #[arg(long, value_enum, default_value = "table", global = true)]
    pub output: Output,
}

/// The admin commands (flattened into `keyhold`'s subcommands).
#[derive(Subcommand, Debug)]
pub enum AdminCommand {
    /// Logs in to the admin API and saves the session token
    /// ($KEYHOLD_CLI_CONFIG or ~/.config/keyhold/cli.json, mode 0600)
    Login {
        /// User name
        #[arg(long, default_value = "root")]
        user: String,
        #[command(flatten)]
        password: password::PasswordSource,
    },
    /// Ends the session (revokes the token) and forgets it
    Logout,
    /// API tokens (long-lived, for scripts)
    #[command(subcommand)]
    Token(tokens::TokenCmd),
    /// Admin API users (admins only)
    #[command(subcommand)]
    User(users::UserCmd),
    /// AWS accounts and their ACLs
    #[command(subcommand)]
    Account(accounts::AccountCmd),
    /// Connections to AWS (KMS and STS) and to HSMs (PKCS#11 modules and tokens)
    #[command(subcommand)]
    Connection(Box<connections::ConnectionCmd>),
    /// Key sources (HSMs, CipherTrust, ...)
    #[command(subcommand)]
    Source(sources::SourceCmd),
    /// Keys inside a key source
    #[command(subcommand)]
    SourceKey(sources::SourceKeyCmd),
    /// External key stores (STORE: id or name)
    #[command(subcommand)]
    Keystore(Box<stores::KeystoreCmd>),
    /// XKS proxy authentication credentials of a key store
    #[command(subcommand)]
    Credential(credentials::CredentialCmd),
    /// HYOK keys of a key store (the keys AWS KMS sees)
    #[command(subcommand)]
    Key(keys::KeyCmd),
    /// Credential rotation schedules (times in UTC)
    #[command(subcommand)]
    Schedule(schedules::ScheduleCmd),
    /// Long-running jobs (account refreshes): progress, summary, cancel
    #[command(subcommand)]
    Job(jobs::JobCmd),
    /// The cluster's live nodes (admins only)
    #[command(subcommand)]
    Node(nodes::NodeCmd),
    /// The server's audit log (admins only): records, filtered; chain status
    #[command(subcommand)]
    Audit(audit::AuditCmd),
    /// Prints the admin API's OpenAPI 3.1 document (JSON; every route, body and error)
    Openapi,
}

/// Runs an admin command; prints errors as `error: <message> (<code>)`.
pub fn run(global: Global, cmd: AdminCommand) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::from(4);
        }
    };
    match runtime.block_on(dispatch(global, cmd)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}

/// Hands a command to its resource's module.
async fn dispatch(global: Global, cmd: AdminCommand) -> Result<()> {
    match cmd {
        AdminCommand::Login { user, password } => login::login(&global, &user, &password).await,
        AdminCommand::Logout => login::logout(&global).await,
        AdminCommand::Token(c) => tokens::run(Ctx::new(&global, true)?, c).await,
        AdminCommand::User(c) => users::run(Ctx::new(&global, true)?, c).await,
        AdminCommand::Account(c) => accounts::run(Ctx::new(&global, true)?, c).await,
        AdminCommand::Connection(c) => connections::run(Ctx::new(&global, true)?, *c).await,
        AdminCommand::Source(c) => sources::run(Ctx::new(&global, true)?, c).await,
        AdminCommand::SourceKey(c) => sources::run_keys(Ctx::new(&global, true)?, c).await,
        AdminCommand::Keystore(c) => stores::run(Ctx::new(&global, true)?, *c).await,
        AdminCommand::Credential(c) => credentials::run(Ctx::new(&global, true)?, c).await,
        AdminCommand::Key(c) => keys::run(Ctx::new(&global, true)?, c).await,
        AdminCommand::Schedule(c) => schedules::run(Ctx::new(&global, true)?, c).await,
        AdminCommand::Job(c) => jobs::run(Ctx::new(&global, true)?, c).await,
        AdminCommand::Node(c) => nodes::run(Ctx::new(&global, true)?, c).await,
        AdminCommand::Audit(c) => audit::run(Ctx::new(&global, true)?, c).await,
        AdminCommand::Openapi => {
            let doc = Ctx::new(&global, true)?.get("/openapi.json").await?;
            output::print_json(&doc);
            Ok(())
        }
    }
}

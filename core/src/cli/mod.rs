//! The admin command-line interface: `keyhold login`, `keyhold keystore create ...`
//! and friends drive the management REST API (`/api/v1`) of a running keyhold.
//!
//! Output is an aligned table (or `field  value` lines) by default and the API's JSON
//! with `--output json`. Exit codes: 0 ok, 2 usage error (also bad local input),
//! 3 refused by the server (HTTP 4xx), 4 server or connection error (HTTP 5xx,
//! TCP/TLS failure).

use std::{
    io::{BufRead, Write},
    path::{Path, PathBuf},
    process::ExitCode,
};

use clap::{Args, Subcommand, ValueEnum};
use http::Method;
use serde_json::{Value, json};

mod client;
mod output;

use client::{Client, Reply};

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
  1  `audit-verify` found a broken chain, or `serve` could not start
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
}

impl CliError {
    fn exit_code(&self) -> u8 {
        match self {
            CliError::Usage(_) => 2,
            CliError::Refused { .. } => 3,
            CliError::Server(_) => 4,
        }
    }
}

impl std::fmt::Display for CliError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CliError::Usage(m) => write!(f, "{m} (usage)"),
            CliError::Refused { code, message, .. } => write!(f, "{message} ({code})"),
            CliError::Server(m) => write!(f, "{m}"),
        }
    }
}

type Result<T> = std::result::Result<T, CliError>;

// stdout writes that ignore errors (a closed pipe, e.g. `| head`, is not a panic).
macro_rules! out {
    ($($t:tt)*) => {{
        let _ = write!(std::io::stdout().lock(), $($t)*);
    }};
}
macro_rules! outln {
    ($($t:tt)*) => {{
        let _ = writeln!(std::io::stdout().lock(), $($t)*);
    }};
}

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
pub struct Global {
    /// Admin API URL [default: the server saved by `login`, else https://127.0.0.1:8444]
    #[arg(
        long,
        env = "KEYHOLD_SERVER",
        global = true,
        value_name = "URL",
        help_heading = "Global options"
    )]
    pub server: Option<String>,
    /// CA certificate (PEM) to trust for HTTPS [default: keyhold-data/tls/ca.pem when it exists]
    #[arg(
        long,
        env = "KEYHOLD_CACERT",
        global = true,
        value_name = "FILE",
        help_heading = "Global options"
    )]
    pub cacert: Option<PathBuf>,
    /// Bearer token [default: the one saved by `login`]
    #[arg(
        long,
        env = "KEYHOLD_TOKEN",
        global = true,
        hide_env_values = true,
        help_heading = "Global options",
        value_name = "TOKEN"
    )]
    pub token: Option<String>,
    /// Output format
    #[arg(
        long,
        value_enum,
        default_value = "table",
        global = true,
        help_heading = "Global options"
    )]
    pub output: Output,
}

/// Where a password comes from: never the command line.
#[derive(Args, Debug)]
pub struct PasswordSource {
    /// Read the password from the first line of standard input
    #[arg(long, conflicts_with = "password_env")]
    pub password_stdin: bool,
    /// Read the password from this environment variable
    #[arg(long, value_name = "VAR")]
    pub password_env: Option<String>,
}

impl PasswordSource {
    fn read(&self) -> Result<String> {
        if let Some(var) = &self.password_env {
            return match std::env::var(var) {
                Ok(v) if !v.is_empty() => Ok(v),
                _ => Err(CliError::Usage(format!(
                    "environment variable {var} is not set"
                ))),
            };
        }
        if self.password_stdin {
            let mut line = String::new();
            std::io::stdin()
                .lock()
                .read_line(&mut line)
                .map_err(|e| CliError::Usage(format!("cannot read standard input: {e}")))?;
            let pw = line.trim_end_matches(['\n', '\r']).to_string();
            if pw.is_empty() {
                return Err(CliError::Usage("no password on standard input".into()));
            }
            return Ok(pw);
        }
        Err(CliError::Usage(
            "pass --password-stdin or --password-env VAR (passwords never go on the command line)"
                .into(),
        ))
    }
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
        password: PasswordSource,
    },
    /// Ends the session (revokes the token) and forgets it
    Logout,
    /// API tokens (long-lived, for scripts)
    #[command(subcommand)]
    Token(TokenCmd),
    /// Admin API users (admins only)
    #[command(subcommand)]
    User(UserCmd),
    /// AWS accounts and their ACLs
    #[command(subcommand)]
    Account(AccountCmd),
    /// Key sources (HSMs, CipherTrust, ...)
    #[command(subcommand)]
    Source(SourceCmd),
    /// Keys inside a key source
    #[command(subcommand)]
    SourceKey(SourceKeyCmd),
    /// External key stores (STORE: id or name)
    #[command(subcommand)]
    Keystore(KeystoreCmd),
    /// XKS proxy authentication credentials of a key store
    #[command(subcommand)]
    Credential(CredentialCmd),
    /// HYOK keys of a key store (the keys AWS KMS sees)
    #[command(subcommand)]
    Key(KeyCmd),
}

/// `keyhold token ...`
#[derive(Subcommand, Debug)]
pub enum TokenCmd {
    /// Issues an API token (shown once)
    Create {
        /// What the token is for
        #[arg(long, default_value = "")]
        description: String,
        /// Expiry as a Unix time (default: no expiry)
        #[arg(long, value_name = "UNIX_SECONDS")]
        expires_at: Option<i64>,
    },
    /// Lists your tokens
    List,
    /// Revokes a token by id
    Revoke { id: String },
}

/// `keyhold user ...`
#[derive(Subcommand, Debug)]
pub enum UserCmd {
    /// Creates a user (password from stdin or an environment variable)
    Create {
        name: String,
        /// Groups (repeatable; default: users). `admins` may do everything.
        #[arg(long = "group", value_name = "GROUP")]
        groups: Vec<String>,
        #[command(flatten)]
        password: PasswordSource,
    },
    /// Lists users
    List,
    /// Shows a user
    Get { name: String },
    /// Deletes a user
    Delete { name: String },
    /// Sets a user's password (non-admins: also --current-password-env)
    Passwd {
        name: String,
        #[command(flatten)]
        password: PasswordSource,
        /// Environment variable holding the current password (needed by non-admins)
        #[arg(long, value_name = "VAR")]
        current_password_env: Option<String>,
    },
}

/// An ACL grant `user:bob=view,create_store` or `group:ops=block`.
fn parse_grant(s: &str) -> std::result::Result<Value, String> {
    let (principal, perms) = s
        .split_once('=')
        .ok_or_else(|| format!("'{s}': use user:NAME=perm,perm or group:NAME=perm"))?;
    if !(principal.starts_with("user:") || principal.starts_with("group:")) {
        return Err(format!("'{principal}': use user:NAME or group:NAME"));
    }
    let perms: Vec<&str> = perms
        .split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .collect();
    if perms.is_empty() {
        return Err(format!("'{s}' grants no permission"));
    }
    Ok(json!({"principal": principal, "permissions": perms}))
}

/// `keyhold account ...`
#[derive(Subcommand, Debug)]
pub enum AccountCmd {
    /// Registers an AWS account (12-digit id)
    Create {
        id: String,
        /// A display name
        #[arg(long)]
        name: String,
        /// AWS regions (repeatable)
        #[arg(long = "region", value_name = "REGION")]
        regions: Vec<String>,
        /// ACL entry, e.g. user:bob=view,create_store (repeatable). Permissions: view,
        /// create_store, update_store, delete_store, manage_credentials, block, manage_keys
        #[arg(long = "grant", value_name = "PRINCIPAL=PERMS", value_parser = parse_grant)]
        grants: Vec<Value>,
    },
    /// Lists accounts you may see
    List,
    /// Shows an account
    Get { id: String },
    /// Changes an account (given fields only; --grant replaces the whole ACL)
    Update {
        id: String,
        #[arg(long)]
        name: Option<String>,
        /// AWS regions (repeatable; replaces the list)
        #[arg(long = "region", value_name = "REGION")]
        regions: Vec<String>,
        /// ACL entry (repeatable; replaces the ACL)
        #[arg(long = "grant", value_name = "PRINCIPAL=PERMS", value_parser = parse_grant)]
        grants: Vec<Value>,
        /// Removes every ACL entry
        #[arg(long, conflicts_with = "grants")]
        clear_grants: bool,
    },
    /// Deletes an account
    Delete { id: String },
}

/// `keyhold source ...`
#[derive(Subcommand, Debug)]
pub enum SourceCmd {
    /// Lists key sources and their status
    List,
}

/// `keyhold source-key ...`
#[derive(Subcommand, Debug)]
pub enum SourceKeyCmd {
    /// Creates a key in a source (a health-check key needs all four usages)
    Create {
        source: String,
        name: String,
        /// Usages: encrypt,decrypt,wrap,unwrap
        #[arg(long, value_delimiter = ',', required = true)]
        usage: Vec<String>,
        /// The key may leave the source
        #[arg(long)]
        exportable: bool,
        /// The key may be deleted
        #[arg(long)]
        deletable: bool,
    },
    /// Lists the keys of a source
    List { source: String },
    /// Shows a key (and whether it may serve as a health-check key)
    Get { source: String, name: String },
}

/// `keyhold keystore ...`
#[derive(Subcommand, Debug)]
pub enum KeystoreCmd {
    /// Creates a key store and its first credential (written to --out)
    Create {
        name: String,
        /// Key source
        #[arg(long)]
        source: String,
        /// Health-check key in the source (usage encrypt,decrypt,wrap,unwrap)
        #[arg(long)]
        health_check_key: String,
        /// AWS account (default: none; admins only)
        #[arg(long)]
        account: Option<String>,
        /// URI path prefix (default: generated)
        #[arg(long)]
        prefix: Option<String>,
        /// Credentials kept at once (rotation evicts the oldest)
        #[arg(long)]
        max_credentials: Option<u32>,
        /// Audit successful XKS requests too
        #[arg(long)]
        success_audit: bool,
        /// Require mutual TLS on the XKS endpoint
        #[arg(long)]
        mtls: bool,
        #[command(flatten)]
        secret: SecretOut,
    },
    /// Lists key stores
    List,
    /// Shows a key store
    Get { store: String },
    /// Changes a key store (reads its ETag and sends If-Match, unless --if-match)
    Update {
        store: String,
        /// New name
        #[arg(long)]
        name: Option<String>,
        #[arg(long)]
        max_credentials: Option<u32>,
        #[arg(long)]
        health_check_key: Option<String>,
        #[arg(long, value_name = "BOOL")]
        success_audit: Option<bool>,
        #[arg(long, value_name = "BOOL")]
        mtls: Option<bool>,
        /// Public XKS endpoint (https://FQDN) as AWS KMS reaches it
        #[arg(long, value_name = "URL", conflicts_with = "vpc_service")]
        public_endpoint: Option<String>,
        /// VPC endpoint service name (with --vpc-endpoint)
        #[arg(long, value_name = "NAME", requires = "vpc_endpoint")]
        vpc_service: Option<String>,
        /// VPC private DNS name (with --vpc-service)
        #[arg(long, value_name = "URL", requires = "vpc_service")]
        vpc_endpoint: Option<String>,
        /// The store version you read (the ETag); default: the current one
        #[arg(long, value_name = "VERSION")]
        if_match: Option<String>,
    },
    /// Deletes a key store (needs --confirm; refused while it has HYOK keys)
    Delete {
        store: String,
        /// Really delete it
        #[arg(long)]
        confirm: bool,
    },
    /// Blocks a key store: XKS answers InvalidStateException
    Block { store: String },
    /// Unblocks a key store
    Unblock { store: String },
}

/// Where a new credential's secret goes.
#[derive(Args, Debug)]
pub struct SecretOut {
    /// Write the AWS KMS console credentials file here (mode 0600)
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Also print the secret access key
    #[arg(long)]
    pub show_secret: bool,
}

/// `keyhold credential ...`
#[derive(Subcommand, Debug)]
pub enum CredentialCmd {
    /// Adds a credential (rotation): writes the credentials file to --out
    Add {
        store: String,
        #[command(flatten)]
        secret: SecretOut,
    },
    /// Lists a store's credentials (access key ids only)
    List { store: String },
    /// Deletes a credential
    Delete {
        store: String,
        access_key_id: String,
    },
}

/// `keyhold key ...`
#[derive(Subcommand, Debug)]
pub enum KeyCmd {
    /// Creates a HYOK key backed by a source key
    Create {
        store: String,
        external_id: String,
        /// The key in the store's source
        #[arg(long)]
        source_key: String,
    },
    /// Lists a store's HYOK keys
    List { store: String },
    /// Shows a HYOK key
    Get { store: String, external_id: String },
    /// Blocks a HYOK key
    Block { store: String, external_id: String },
    /// Unblocks a HYOK key
    Unblock { store: String, external_id: String },
    /// Deletes a HYOK key
    Delete { store: String, external_id: String },
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

// ----- the saved session -----

fn config_path() -> Result<PathBuf> {
    if let Some(p) = std::env::var_os(CONFIG_ENV) {
        return Ok(PathBuf::from(p));
    }
    let home = std::env::var_os("HOME")
        .ok_or_else(|| CliError::Usage(format!("HOME is not set: set {CONFIG_ENV}")))?;
    Ok(PathBuf::from(home).join(".config/keyhold/cli.json"))
}

fn load_session() -> Option<Value> {
    let path = config_path().ok()?;
    let text = std::fs::read_to_string(path).ok()?;
    serde_json::from_str(&text).ok()
}

fn write_private(path: &Path, data: &[u8]) -> Result<()> {
    // Holds a token or a secret: wiped when dropped.
    let mut text = zeroize::Zeroizing::new(data.to_vec());
    text.push(b'\n');
    keyhold::secrets::write_private_file(path, &text)
        .map_err(|e| CliError::Usage(format!("cannot write {}: {e}", path.display())))
}

// ----- context -----

struct Ctx {
    client: Client,
    output: Output,
    server: String,
    cacert: Option<PathBuf>,
}

impl Ctx {
    fn new(global: &Global, with_token: bool) -> Result<Ctx> {
        let session = load_session();
        let saved = |k: &str| {
            session
                .as_ref()
                .and_then(|s| s[k].as_str())
                .map(str::to_string)
        };
        let server = global
            .server
            .clone()
            .or_else(|| saved("server"))
            .unwrap_or_else(|| DEFAULT_SERVER.to_string());
        let same_server = saved("server").as_deref() == Some(server.as_str());
        let cacert = global
            .cacert
            .clone()
            .or_else(|| {
                saved("cacert")
                    .filter(|_| same_server)
                    .map(PathBuf::from)
                    .filter(|p| p.is_file())
            })
            .or_else(|| {
                let p = PathBuf::from(DEFAULT_CACERT);
                p.is_file().then_some(p)
            });
        let token = if with_token {
            global
                .token
                .clone()
                .or_else(|| saved("token").filter(|_| same_server))
        } else {
            None
        };
        let client = Client::new(&server, cacert.as_deref(), token)?;
        Ok(Ctx {
            client,
            output: global.output,
            server,
            cacert,
        })
    }

    async fn call(&self, method: Method, path: &str, body: Option<Value>) -> Result<Reply> {
        self.client.send(method, path, body.as_ref(), &[]).await
    }

    async fn get(&self, path: &str) -> Result<Value> {
        Ok(self.call(Method::GET, path, None).await?.json)
    }

    fn json(&self) -> bool {
        self.output == Output::Json
    }

    /// Prints a list: the API's JSON, or a table of `columns`.
    fn list(&self, items: &Value, columns: &[&str]) {
        if self.json() {
            print_json(items);
        } else {
            out!("{}", output::list(items, columns));
        }
    }

    /// Prints one object: the API's JSON, or `field  value` lines.
    fn object(&self, item: &Value) {
        if self.json() {
            print_json(item);
        } else {
            out!("{}", output::object(item, &[]));
        }
    }

    /// Prints a confirmation (table mode) or the JSON body (if any).
    fn done(&self, message: &str, body: &Value) {
        if self.json() {
            if !body.is_null() {
                print_json(body);
            }
        } else {
            outln!("{message}");
        }
    }

    /// A store's id from its id or name.
    async fn store_id(&self, store: &str) -> Result<String> {
        let stores = self.get("/stores").await?;
        let all = stores.as_array().cloned().unwrap_or_default();
        if let Some(s) = all.iter().find(|s| s["id"] == store) {
            return Ok(s["id"].as_str().unwrap_or(store).to_string());
        }
        if let Some(s) = all.iter().find(|s| s["name"] == store) {
            return Ok(s["id"].as_str().unwrap_or(store).to_string());
        }
        Err(CliError::Refused {
            status: 404,
            code: "not_found".into(),
            message: format!(
                "no key store with id or name '{store}' (see `keyhold keystore list`)"
            ),
        })
    }
}

fn print_json(v: &Value) {
    outln!(
        "{}",
        serde_json::to_string_pretty(v).unwrap_or_else(|_| v.to_string())
    );
}

fn seg(s: &str) -> String {
    // Percent-encodes a path segment (ids and names are mostly URL-safe already).
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~:@".contains(&b) {
            out.push(b as char);
        } else {
            out += &format!("%{b:02X}");
        }
    }
    out
}

const STORE_COLUMNS: &[&str] = &[
    "id",
    "name",
    "source",
    "account",
    "uri_path_prefix",
    "health_check_key",
    "max_credentials",
    "blocked",
    "version",
];
const KEY_INFO_COLUMNS: &[&str] = &[
    "name",
    "bits",
    "usage",
    "enabled",
    "exportable",
    "deletable",
];
const HYOK_COLUMNS: &[&str] = &["external_id", "source_key", "blocked", "created_at"];

/// Without --out and --show-secret a new secret would be lost: refused before calling
/// the server.
fn check_secret_out(secret: &SecretOut) -> Result<()> {
    if secret.out.is_none() && !secret.show_secret {
        return Err(CliError::Usage(
            "the secret access key is shown only once: pass --out FILE (and/or --show-secret)"
                .into(),
        ));
    }
    if let Some(out) = &secret.out {
        let parent = out
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        if !parent.is_dir() {
            return Err(CliError::Usage(format!(
                "--out {}: directory {} does not exist",
                out.display(),
                parent.display()
            )));
        }
    }
    Ok(())
}

/// Saves the credentials file; returns (access key id, a copy for display with the
/// secret hidden unless --show-secret).
fn save_credentials(file: &Value, secret: &SecretOut) -> Result<(String, Value)> {
    if let Some(out) = &secret.out {
        let text = serde_json::to_string_pretty(file).unwrap_or_else(|_| file.to_string());
        write_private(out, text.as_bytes())?;
    }
    let akid = file["XksProxyAuthenticationCredential"]["AccessKeyId"]
        .as_str()
        .unwrap_or("?")
        .to_string();
    let mut shown = file.clone();
    if !secret.show_secret {
        if let Some(c) = shown
            .get_mut("XksProxyAuthenticationCredential")
            .and_then(Value::as_object_mut)
        {
            c.insert(
                "RawSecretAccessKey".into(),
                json!(match &secret.out {
                    Some(p) => format!("(hidden: written to {})", p.display()),
                    None => "(hidden)".to_string(),
                }),
            );
        }
    }
    Ok((akid, shown))
}

fn print_credentials(shown: &Value, secret: &SecretOut) {
    let c = &shown["XksProxyAuthenticationCredential"];
    outln!(
        "XKS proxy URI path:  {}",
        output::cell("", &shown["XksProxyUriPath"])
    );
    outln!(
        "Access key id:       {}",
        output::cell("", &c["AccessKeyId"])
    );
    if secret.show_secret {
        outln!(
            "Secret access key:   {}",
            output::cell("", &c["RawSecretAccessKey"])
        );
    }
    if let Some(out) = &secret.out {
        outln!(
            "Credentials file:    {} (mode 0600; upload it in the AWS KMS console)",
            out.display()
        );
    }
}

async fn dispatch(global: Global, cmd: AdminCommand) -> Result<()> {
    match cmd {
        AdminCommand::Login { user, password } => {
            let pw = password.read()?;
            let ctx = Ctx::new(&global, false)?;
            let r = ctx
                .call(
                    Method::POST,
                    "/login",
                    Some(json!({"user": user, "password": pw})),
                )
                .await?;
            let path = config_path()?;
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir).map_err(|e| {
                    CliError::Usage(format!("cannot create {}: {e}", dir.display()))
                })?;
            }
            let cacert = ctx
                .cacert
                .as_ref()
                .filter(|_| ctx.client.is_https())
                .map(|p| std::path::absolute(p).unwrap_or_else(|_| p.clone()));
            let session = json!({
                "server": ctx.server,
                "token": r.json["token"],
                "expires_at": r.json["expires_at"],
                "user": r.json["user"],
                "cacert": cacert,
            });
            write_private(
                &path,
                serde_json::to_string_pretty(&session)
                    .unwrap_or_default()
                    .as_bytes(),
            )?;
            if ctx.json() {
                let mut view = r.json.clone();
                view["token"] = json!("(saved)");
                view["saved_to"] = json!(path);
                print_json(&view);
            } else {
                outln!(
                    "Logged in to {} as {} (session until {}); token saved to {}",
                    ctx.server,
                    output::cell("", &r.json["user"]),
                    output::cell("expires_at", &r.json["expires_at"]),
                    path.display()
                );
            }
            Ok(())
        }
        AdminCommand::Logout => {
            let ctx = Ctx::new(&global, true)?;
            let result = ctx.call(Method::POST, "/logout", None).await;
            let from_session =
                global.token.is_none() && load_session().is_some_and(|s| s["server"] == ctx.server);
            if from_session {
                if let Ok(p) = config_path() {
                    let _ = std::fs::remove_file(p);
                }
            }
            match result {
                Ok(_) => {
                    ctx.done("Logged out.", &Value::Null);
                    Ok(())
                }
                // An expired or revoked session: it is forgotten either way.
                Err(CliError::Refused { status: 401, .. }) if from_session => {
                    ctx.done("Logged out (the session had already ended).", &Value::Null);
                    Ok(())
                }
                Err(e) => Err(e),
            }
        }
        AdminCommand::Token(c) => token(Ctx::new(&global, true)?, c).await,
        AdminCommand::User(c) => user(Ctx::new(&global, true)?, c).await,
        AdminCommand::Account(c) => account(Ctx::new(&global, true)?, c).await,
        AdminCommand::Source(SourceCmd::List) => {
            let ctx = Ctx::new(&global, true)?;
            let v = ctx.get("/sources").await?;
            ctx.list(
                &v,
                &["name", "plugin", "status", "vendor", "model", "reason"],
            );
            Ok(())
        }
        AdminCommand::SourceKey(c) => source_key(Ctx::new(&global, true)?, c).await,
        AdminCommand::Keystore(c) => keystore(Ctx::new(&global, true)?, c).await,
        AdminCommand::Credential(c) => credential(Ctx::new(&global, true)?, c).await,
        AdminCommand::Key(c) => key(Ctx::new(&global, true)?, c).await,
    }
}

async fn token(ctx: Ctx, c: TokenCmd) -> Result<()> {
    match c {
        TokenCmd::Create {
            description,
            expires_at,
        } => {
            let mut body = json!({"description": description});
            if let Some(e) = expires_at {
                body["expires_at"] = json!(e);
            }
            let r = ctx.call(Method::POST, "/tokens", Some(body)).await?;
            ctx.object(&r.json);
            if !ctx.json() {
                outln!("(the token is shown only this once; use it with --token or KEYHOLD_TOKEN)");
            }
        }
        TokenCmd::List => {
            let v = ctx.get("/tokens").await?;
            ctx.list(
                &v,
                &[
                    "id",
                    "user",
                    "kind",
                    "description",
                    "created_at",
                    "expires_at",
                ],
            );
        }
        TokenCmd::Revoke { id } => {
            ctx.call(Method::DELETE, &format!("/tokens/{}", seg(&id)), None)
                .await?;
            ctx.done(&format!("Revoked token {id}."), &Value::Null);
        }
    }
    Ok(())
}

async fn user(ctx: Ctx, c: UserCmd) -> Result<()> {
    match c {
        UserCmd::Create {
            name,
            groups,
            password,
        } => {
            let pw = password.read()?;
            let mut body = json!({"name": name, "password": pw});
            if !groups.is_empty() {
                body["groups"] = json!(groups);
            }
            let r = ctx.call(Method::POST, "/users", Some(body)).await?;
            ctx.object(&r.json);
        }
        UserCmd::List => {
            let v = ctx.get("/users").await?;
            ctx.list(&v, &["name", "groups", "created_at"]);
        }
        UserCmd::Get { name } => {
            let v = ctx.get(&format!("/users/{}", seg(&name))).await?;
            ctx.object(&v);
        }
        UserCmd::Delete { name } => {
            ctx.call(Method::DELETE, &format!("/users/{}", seg(&name)), None)
                .await?;
            ctx.done(&format!("Deleted user {name}."), &Value::Null);
        }
        UserCmd::Passwd {
            name,
            password,
            current_password_env,
        } => {
            let pw = password.read()?;
            let mut body = json!({"password": pw});
            if let Some(var) = current_password_env {
                let cur = std::env::var(&var).map_err(|_| {
                    CliError::Usage(format!("environment variable {var} is not set"))
                })?;
                body["current_password"] = json!(cur);
            }
            ctx.call(
                Method::PUT,
                &format!("/users/{}/password", seg(&name)),
                Some(body),
            )
            .await?;
            ctx.done(&format!("Changed the password of {name}."), &Value::Null);
        }
    }
    Ok(())
}

fn account_view(ctx: &Ctx, acc: &Value) {
    if ctx.json() {
        print_json(acc);
        return;
    }
    out!("{}", output::object(acc, &["acl"]));
    let acl = acc["acl"].as_array().cloned().unwrap_or_default();
    if acl.is_empty() {
        outln!("acl         -");
    } else {
        for (i, e) in acl.iter().enumerate() {
            outln!(
                "{}  {}={}",
                if i == 0 { "acl       " } else { "          " },
                output::cell("", &e["principal"]),
                output::cell("", &e["permissions"])
            );
        }
    }
}

async fn account(ctx: Ctx, c: AccountCmd) -> Result<()> {
    match c {
        AccountCmd::Create {
            id,
            name,
            regions,
            grants,
        } => {
            let body = json!({"id": id, "name": name, "regions": regions, "acl": grants});
            let r = ctx.call(Method::POST, "/accounts", Some(body)).await?;
            account_view(&ctx, &r.json);
        }
        AccountCmd::List => {
            let v = ctx.get("/accounts").await?;
            if ctx.json() {
                print_json(&v);
            } else {
                let rows: Vec<Vec<String>> = v
                    .as_array()
                    .cloned()
                    .unwrap_or_default()
                    .iter()
                    .map(|a| {
                        let acl = a["acl"]
                            .as_array()
                            .cloned()
                            .unwrap_or_default()
                            .iter()
                            .map(|e| {
                                format!(
                                    "{}={}",
                                    output::cell("", &e["principal"]),
                                    output::cell("", &e["permissions"])
                                )
                            })
                            .collect::<Vec<_>>()
                            .join(" ");
                        vec![
                            output::cell("id", &a["id"]),
                            output::cell("name", &a["name"]),
                            output::cell("regions", &a["regions"]),
                            if acl.is_empty() { "-".into() } else { acl },
                        ]
                    })
                    .collect();
                if rows.is_empty() {
                    outln!("(none)");
                } else {
                    out!(
                        "{}",
                        output::table(&["id", "name", "regions", "acl"], &rows)
                    );
                }
            }
        }
        AccountCmd::Get { id } => {
            let v = ctx.get(&format!("/accounts/{}", seg(&id))).await?;
            account_view(&ctx, &v);
        }
        AccountCmd::Update {
            id,
            name,
            regions,
            grants,
            clear_grants,
        } => {
            let mut body = json!({});
            if let Some(n) = name {
                body["name"] = json!(n);
            }
            if !regions.is_empty() {
                body["regions"] = json!(regions);
            }
            if !grants.is_empty() || clear_grants {
                body["acl"] = json!(grants);
            }
            if body.as_object().is_some_and(|o| o.is_empty()) {
                return Err(CliError::Usage(
                    "nothing to change: pass --name, --region, --grant or --clear-grants".into(),
                ));
            }
            let r = ctx
                .call(Method::PUT, &format!("/accounts/{}", seg(&id)), Some(body))
                .await?;
            account_view(&ctx, &r.json);
        }
        AccountCmd::Delete { id } => {
            ctx.call(Method::DELETE, &format!("/accounts/{}", seg(&id)), None)
                .await?;
            ctx.done(&format!("Deleted account {id}."), &Value::Null);
        }
    }
    Ok(())
}

async fn source_key(ctx: Ctx, c: SourceKeyCmd) -> Result<()> {
    match c {
        SourceKeyCmd::Create {
            source,
            name,
            usage,
            exportable,
            deletable,
        } => {
            let body = json!({"name": name, "usage": usage, "exportable": exportable,
                              "deletable": deletable});
            let r = ctx
                .call(
                    Method::POST,
                    &format!("/sources/{}/keys", seg(&source)),
                    Some(body),
                )
                .await?;
            ctx.object(&r.json);
        }
        SourceKeyCmd::List { source } => {
            let v = ctx.get(&format!("/sources/{}/keys", seg(&source))).await?;
            ctx.list(&v, KEY_INFO_COLUMNS);
        }
        SourceKeyCmd::Get { source, name } => {
            let v = ctx
                .get(&format!("/sources/{}/keys/{}", seg(&source), seg(&name)))
                .await?;
            ctx.object(&v);
        }
    }
    Ok(())
}

async fn keystore(ctx: Ctx, c: KeystoreCmd) -> Result<()> {
    match c {
        KeystoreCmd::Create {
            name,
            source,
            health_check_key,
            account,
            prefix,
            max_credentials,
            success_audit,
            mtls,
            secret,
        } => {
            check_secret_out(&secret)?;
            let mut body = json!({"name": name, "source": source,
                                  "health_check_key": health_check_key,
                                  "success_audit": success_audit, "mtls": mtls});
            if let Some(a) = account {
                body["account"] = json!(a);
            }
            if let Some(p) = prefix {
                body["uri_path_prefix"] = json!(p);
            }
            if let Some(m) = max_credentials {
                body["max_credentials"] = json!(m);
            }
            let r = ctx.call(Method::POST, "/stores", Some(body)).await?;
            let (_, shown) = save_credentials(&r.json["credentials_file"], &secret)?;
            if ctx.json() {
                let mut view = r.json.clone();
                view["credentials_file"] = shown;
                print_json(&view);
            } else {
                out!("{}", output::object(&r.json["store"], &[]));
                outln!();
                print_credentials(&shown, &secret);
            }
        }
        KeystoreCmd::List => {
            let v = ctx.get("/stores").await?;
            ctx.list(&v, STORE_COLUMNS);
        }
        KeystoreCmd::Get { store } => {
            let id = ctx.store_id(&store).await?;
            let v = ctx.get(&format!("/stores/{}", seg(&id))).await?;
            ctx.object(&v);
        }
        KeystoreCmd::Update {
            store,
            name,
            max_credentials,
            health_check_key,
            success_audit,
            mtls,
            public_endpoint,
            vpc_service,
            vpc_endpoint,
            if_match,
        } => {
            let mut body = json!({});
            if let Some(v) = name {
                body["name"] = json!(v);
            }
            if let Some(v) = max_credentials {
                body["max_credentials"] = json!(v);
            }
            if let Some(v) = health_check_key {
                body["health_check_key"] = json!(v);
            }
            if let Some(v) = success_audit {
                body["success_audit"] = json!(v);
            }
            if let Some(v) = mtls {
                body["mtls"] = json!(v);
            }
            if let Some(e) = public_endpoint {
                body["location"] = json!({"type": "public", "endpoint": e});
            }
            if let (Some(s), Some(e)) = (vpc_service, vpc_endpoint) {
                body["location"] = json!({"type": "vpc", "service_name": s, "endpoint": e});
            }
            if body.as_object().is_some_and(|o| o.is_empty()) {
                return Err(CliError::Usage(
                    "nothing to change: pass --name, --max-credentials, --health-check-key, \
                     --success-audit, --mtls or an endpoint"
                        .into(),
                ));
            }
            let id = ctx.store_id(&store).await?;
            let path = format!("/stores/{}", seg(&id));
            let tag = match if_match {
                Some(v) => {
                    let v = v.trim().trim_matches('"');
                    format!("\"{v}\"")
                }
                None => {
                    let r = ctx.call(Method::GET, &path, None).await?;
                    r.header("etag").ok_or_else(|| {
                        CliError::Server("the server sent no ETag for the store".into())
                    })?
                }
            };
            let r = ctx
                .client
                .send(Method::PATCH, &path, Some(&body), &[("if-match", tag)])
                .await?;
            ctx.object(&r.json);
        }
        KeystoreCmd::Delete { store, confirm } => {
            let id = ctx.store_id(&store).await?;
            let q = if confirm { "?confirm=true" } else { "" };
            let r = ctx
                .call(Method::DELETE, &format!("/stores/{}{q}", seg(&id)), None)
                .await;
            match r {
                Err(CliError::Refused {
                    status,
                    code,
                    message,
                }) if code == "confirmation_required" => {
                    return Err(CliError::Refused {
                        status,
                        code,
                        message: format!("{message} (add --confirm)"),
                    });
                }
                r => {
                    r?;
                }
            }
            ctx.done(&format!("Deleted key store {store} ({id})."), &Value::Null);
        }
        KeystoreCmd::Block { store } => {
            let id = ctx.store_id(&store).await?;
            let r = ctx
                .call(Method::POST, &format!("/stores/{}/block", seg(&id)), None)
                .await?;
            ctx.done(&format!("Blocked key store {store}."), &r.json);
        }
        KeystoreCmd::Unblock { store } => {
            let id = ctx.store_id(&store).await?;
            let r = ctx
                .call(Method::POST, &format!("/stores/{}/unblock", seg(&id)), None)
                .await?;
            ctx.done(&format!("Unblocked key store {store}."), &r.json);
        }
    }
    Ok(())
}

async fn credential(ctx: Ctx, c: CredentialCmd) -> Result<()> {
    match c {
        CredentialCmd::Add { store, secret } => {
            check_secret_out(&secret)?;
            let id = ctx.store_id(&store).await?;
            let r = ctx
                .call(
                    Method::POST,
                    &format!("/stores/{}/credentials", seg(&id)),
                    None,
                )
                .await?;
            let (_, shown) = save_credentials(&r.json, &secret)?;
            let evicted: Vec<String> = r
                .header("x-keyhold-evicted-credentials")
                .map(|v| {
                    v.split(',')
                        .filter(|s| !s.is_empty())
                        .map(str::to_string)
                        .collect()
                })
                .unwrap_or_default();
            if ctx.json() {
                let mut view = shown;
                view["evicted"] = json!(evicted);
                print_json(&view);
            } else {
                print_credentials(&shown, &secret);
                for e in &evicted {
                    outln!("Evicted (oldest, over max_credentials): {e}");
                }
            }
        }
        CredentialCmd::List { store } => {
            let id = ctx.store_id(&store).await?;
            let v = ctx
                .get(&format!("/stores/{}/credentials", seg(&id)))
                .await?;
            ctx.list(&v, &["access_key_id", "created_at"]);
        }
        CredentialCmd::Delete {
            store,
            access_key_id,
        } => {
            let id = ctx.store_id(&store).await?;
            ctx.call(
                Method::DELETE,
                &format!("/stores/{}/credentials/{}", seg(&id), seg(&access_key_id)),
                None,
            )
            .await?;
            ctx.done(
                &format!("Deleted credential {access_key_id}."),
                &Value::Null,
            );
        }
    }
    Ok(())
}

async fn key(ctx: Ctx, c: KeyCmd) -> Result<()> {
    match c {
        KeyCmd::Create {
            store,
            external_id,
            source_key,
        } => {
            let id = ctx.store_id(&store).await?;
            let r = ctx
                .call(
                    Method::POST,
                    &format!("/stores/{}/keys", seg(&id)),
                    Some(json!({"external_id": external_id, "source_key": source_key})),
                )
                .await?;
            ctx.object(&r.json);
        }
        KeyCmd::List { store } => {
            let id = ctx.store_id(&store).await?;
            let v = ctx.get(&format!("/stores/{}/keys", seg(&id))).await?;
            ctx.list(&v, HYOK_COLUMNS);
        }
        KeyCmd::Get { store, external_id } => {
            let id = ctx.store_id(&store).await?;
            let v = ctx
                .get(&format!("/stores/{}/keys/{}", seg(&id), seg(&external_id)))
                .await?;
            ctx.object(&v);
        }
        KeyCmd::Block { store, external_id } => {
            let id = ctx.store_id(&store).await?;
            let r = ctx
                .call(
                    Method::POST,
                    &format!("/stores/{}/keys/{}/block", seg(&id), seg(&external_id)),
                    None,
                )
                .await?;
            ctx.done(&format!("Blocked key {external_id}."), &r.json);
        }
        KeyCmd::Unblock { store, external_id } => {
            let id = ctx.store_id(&store).await?;
            let r = ctx
                .call(
                    Method::POST,
                    &format!("/stores/{}/keys/{}/unblock", seg(&id), seg(&external_id)),
                    None,
                )
                .await?;
            ctx.done(&format!("Unblocked key {external_id}."), &r.json);
        }
        KeyCmd::Delete { store, external_id } => {
            let id = ctx.store_id(&store).await?;
            ctx.call(
                Method::DELETE,
                &format!("/stores/{}/keys/{}", seg(&id), seg(&external_id)),
                None,
            )
            .await?;
            ctx.done(&format!("Deleted key {external_id}."), &Value::Null);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grants_parse() {
        assert_eq!(
            parse_grant("user:bob=view,create_store").unwrap(),
            json!({"principal": "user:bob", "permissions": ["view", "create_store"]})
        );
        assert!(parse_grant("bob=view").is_err());
        assert!(parse_grant("user:bob=").is_err());
        assert_eq!(seg("a b/c"), "a%20b%2Fc");
    }
}

//! Configuration: a TOML file (or the embedded defaults), overridden by
//! `KEYHOLD_`-prefixed environment variables with `__` for nesting
//! (`KEYHOLD_XKS__LISTEN=127.0.0.1:9000` sets `xks.listen`).
//!
//! Besides server settings, a config file can *declare* key sources, key stores, their
//! credentials and keys; [`crate::reconcile`] creates or reconciles them at start.

use std::{
    collections::BTreeMap,
    net::SocketAddr,
    path::{Path, PathBuf},
};

use figment::{
    Figment,
    providers::{Env, Format, Toml},
};
use serde::Deserialize;

use crate::model;

mod aws;
mod listener;
mod metrics;
mod store;
mod tls;

pub use aws::{AccountDecl, AwsConnectionDecl, AwsDecls};
pub use listener::ConnectionsConfig;
pub use metrics::MetricsConfig;
pub use store::{EtcdConfig, NodeConfig, StoreBackend, StoreConfig};
pub use tls::{ClientAuth, TlsConfig};

/// The top-level keys of the configuration (what `KEYHOLD_<KEY>__...` may override).
pub const TOP_LEVEL_KEYS: [&str; 12] = [
    "data_dir", "log", "store", "secrets", "plugins", "xks", "metrics", "audit", "admin",
    "sources", "stores", "aws",
];

/// The embedded defaults: what `keyhold serve` runs without a config file.
pub const EMBEDDED_DEFAULTS: &str = include_str!("../../config/default.toml");

/// Why a configuration is refused. The message names the offending key.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file named on the command line does not exist or cannot be read.
    #[error("config file {path}: {reason}")]
    File {
        /// The path given.
        path: PathBuf,
        /// Why it cannot be used.
        reason: String,
    },
    /// Parsing or typing failed (figment names the key and where it came from).
    #[error("invalid configuration: {0}")]
    Parse(Box<figment::Error>),
    /// A value is well-typed but breaks a rule.
    #[error("invalid configuration: {key}: {reason}")]
    Invalid {
        /// The offending key, e.g. `stores[0].keys[2].usage`.
        key: String,
        /// The rule it breaks.
        reason: String,
    },
}

fn invalid(key: impl Into<String>, reason: impl std::fmt::Display) -> ConfigError {
    ConfigError::Invalid {
        key: key.into(),
        reason: reason.to_string(),
    }
}

/// The whole configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Where durable state lives (store file, generated keys and certificates).
    pub data_dir: PathBuf,
    /// Logging.
    #[serde(default)]
    pub log: LogConfig,
    /// Durable store backend.
    #[serde(default)]
    pub store: StoreConfig,
    /// This node's identity in a cluster.
    #[serde(default)]
    pub node: NodeConfig,
    /// Master key sealing secrets at rest.
    #[serde(default)]
    pub secrets: SecretsConfig,
    /// Where plugin libraries are found.
    #[serde(default)]
    pub plugins: PluginsConfig,
    /// The XKS data plane.
    pub xks: XksConfig,
    /// Prometheus metrics.
    #[serde(default)]
    pub metrics: MetricsConfig,
    /// The hash-chained audit log.
    #[serde(default)]
    pub audit: AuditConfig,
    /// The management REST API.
    #[serde(default)]
    pub admin: AdminConfig,
    /// Declared key sources, by name.
    #[serde(default)]
    pub sources: BTreeMap<String, SourceDecl>,
    /// Declared key stores.
    #[serde(default)]
    pub stores: Vec<StoreDecl>,
    /// Declared AWS connections and accounts.
    #[serde(default)]
    pub aws: AwsDecls,
}

/// Logging settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    /// A `tracing` filter, e.g. `info` or `keyhold=debug,info`. `RUST_LOG` wins.
    #[serde(default = "default_log_level")]
    pub level: String,
    /// `text` or `json`.
    #[serde(default = "default_log_format")]
    pub format: LogFormat,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            level: default_log_level(),
            format: default_log_format(),
        }
    }
}

/// Log line format.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

fn default_log_level() -> String {
    "info".into()
}
fn default_log_format() -> LogFormat {
    LogFormat::Text
}

/// Master key settings. Without either source, a key file is generated in the data
/// directory (development default, logged loudly).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecretsConfig {
    /// A file holding 32 raw bytes or base64 of 32 bytes.
    pub master_key_file: Option<PathBuf>,
    /// An environment variable holding base64 of 32 bytes.
    pub master_key_env: Option<String>,
}

/// Plugin discovery.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PluginsConfig {
    /// Directory holding `libplugin_<name>.so`; default: the keyhold executable's
    /// directory.
    pub dir: Option<PathBuf>,
}

/// XKS data-plane settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct XksConfig {
    /// Listener address.
    pub listen: SocketAddr,
    /// Serve plain HTTP instead of HTTPS. Only for tests, or behind a TLS-terminating
    /// proxy; AWS KMS itself requires HTTPS.
    #[serde(default)]
    pub plain_http: bool,
    /// TLS settings (ignored with `plain_http`).
    #[serde(default)]
    pub tls: TlsConfig,
    /// Retired: `xksProxyFleetSize` is the number of live nodes (see [`crate::cluster`]);
    /// a configuration that still sets it is refused with that explanation.
    pub fleet_size: Option<u32>,
    /// How long a deep health check result is reused (1..=60 seconds).
    #[serde(default = "default_health_cache_seconds")]
    pub health_cache_seconds: u64,
    /// Deadline of one key-source call, in milliseconds (AWS KMS waits 250 ms in all).
    #[serde(default = "default_plugin_timeout_ms")]
    pub plugin_timeout_ms: u64,
    /// Most key-source calls in flight at once.
    #[serde(default = "default_plugin_concurrency")]
    pub plugin_concurrency: usize,
    /// Largest request body accepted, in bytes.
    #[serde(default = "default_max_body_bytes")]
    pub max_body_bytes: usize,
    /// Most requests answered at once; beyond it requests are refused at once with
    /// `ThrottlingException` instead of queueing.
    #[serde(default = "default_max_in_flight")]
    pub max_in_flight: usize,
    /// Longest a request waits for a free key-source call slot before it is shed with
    /// `ThrottlingException`, in milliseconds.
    #[serde(default = "default_queue_timeout_ms")]
    pub queue_timeout_ms: u64,
    /// Default per-store request quota (`{ rate = 1800, burst = 3600 }`); none when
    /// absent. A store's own `quota` wins.
    pub quota: Option<crate::model::Quota>,
    /// Connection limits of the XKS listener (`[xks.connections]`).
    #[serde(default)]
    pub connections: ConnectionsConfig,
}

fn default_max_in_flight() -> usize {
    4096
}
fn default_queue_timeout_ms() -> u64 {
    20
}

fn default_health_cache_seconds() -> u64 {
    30
}
fn default_plugin_timeout_ms() -> u64 {
    200
}
fn default_plugin_concurrency() -> usize {
    64
}
fn default_max_body_bytes() -> usize {
    64 * 1024
}

/// Audit log settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditConfig {
    /// The JSON-lines file (the first segment; the next ones are `<path>.1`, `.2`, ...);
    /// default `<data_dir>/audit.jsonl`.
    pub path: Option<PathBuf>,
    /// A segment this long or longer is followed by a new one, in bytes (64 MiB).
    #[serde(default = "default_segment_max_bytes")]
    pub segment_max_bytes: u64,
    /// Length of the interval over which refusals of unauthenticated XKS requests are
    /// rate-limited, in seconds (10).
    #[serde(default = "default_refusal_interval_seconds")]
    pub refusal_interval_seconds: u64,
    /// Refusals of unauthenticated XKS requests recorded one by one per interval; the
    /// rest are counted in one aggregate record per interval (20).
    #[serde(default = "default_refusal_records_per_interval")]
    pub refusal_records_per_interval: u32,
}

impl Default for AuditConfig {
    fn default() -> Self {
        AuditConfig {
            path: None,
            segment_max_bytes: default_segment_max_bytes(),
            refusal_interval_seconds: default_refusal_interval_seconds(),
            refusal_records_per_interval: default_refusal_records_per_interval(),
        }
    }
}

fn default_segment_max_bytes() -> u64 {
    crate::audit::DEFAULT_SEGMENT_MAX_BYTES
}
fn default_refusal_interval_seconds() -> u64 {
    10
}
fn default_refusal_records_per_interval() -> u32 {
    20
}

/// The management REST API (`/api/v1/...`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminConfig {
    /// Listener address; no admin API when absent.
    pub listen: Option<SocketAddr>,
    /// Serve plain HTTP instead of HTTPS (tests only, or behind a TLS proxy).
    #[serde(default)]
    pub plain_http: bool,
    /// TLS settings (ignored with `plain_http`); the development certificate by default.
    #[serde(default)]
    pub tls: TlsConfig,
    /// Lifetime of a login session token, in seconds.
    #[serde(default = "default_session_ttl_seconds")]
    pub session_ttl_seconds: u64,
    /// Environment variable holding the initial `root` password; a random one is
    /// generated (printed once, written to `<data_dir>/root-password`) otherwise.
    pub root_password_env: Option<String>,
    /// Connection limits of the admin listener (`[admin.connections]`).
    #[serde(default)]
    pub connections: ConnectionsConfig,
}

impl Default for AdminConfig {
    fn default() -> Self {
        AdminConfig {
            listen: None,
            plain_http: false,
            tls: TlsConfig::default(),
            session_ttl_seconds: default_session_ttl_seconds(),
            root_password_env: None,
            connections: ConnectionsConfig::default(),
        }
    }
}

fn default_session_ttl_seconds() -> u64 {
    3600
}

/// A declared key source.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceDecl {
    /// Plugin kind: `ctm`, `luna`, or a third-party plugin's name. The library is
    /// `libplugin_<plugin>.so` in the plugin directory unless `library` is given.
    pub plugin: String,
    /// Explicit path of the plugin library.
    pub library: Option<PathBuf>,
    /// The key source's own configuration, handed to the plugin as JSON.
    #[serde(default = "empty_table")]
    pub config: serde_json::Value,
    /// Call the key source on the request's own thread instead of the blocking pool:
    /// `true` only for sources whose calls never wait on I/O for long (ctm:
    /// microseconds, in memory); `"auto"` while the source proves fast (PKCS#11 tokens
    /// that answer in tens of microseconds; see [`crate::plugin::InlineCalls`]); it
    /// saves a thread hand-off per request. Default false.
    #[serde(default)]
    pub inline_calls: crate::plugin::InlineCalls,
}

fn empty_table() -> serde_json::Value {
    serde_json::Value::Object(Default::default())
}

/// A declared key store.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreDecl {
    /// Unique name.
    pub name: String,
    /// The key source (a key of `[sources]`); fixed forever once the store exists.
    pub source: String,
    /// URI path prefix; generated (`keystores/<id>`) when absent.
    pub uri_path_prefix: Option<String>,
    /// Source key name of the health-check key; created when missing.
    pub health_check_key: String,
    /// Max credentials (2..=20, default 20).
    pub max_credentials: Option<u32>,
    /// Declared credentials. A store left with none gets one generated at creation,
    /// written once to `<data_dir>/credentials/<store>.json`.
    #[serde(default)]
    pub credentials: Vec<CredentialDecl>,
    /// Declared HYOK keys.
    #[serde(default)]
    pub keys: Vec<KeyDecl>,
    /// The store's own request quota (`{ rate = ..., burst = ... }`).
    pub quota: Option<crate::model::Quota>,
    /// The AWS account it belongs to (declared in `[aws.accounts]` or existing).
    pub account: Option<String>,
    /// Its AWS region (one of the account's regions).
    pub region: Option<String>,
    /// Where AWS KMS reaches it (`{ type = "public", endpoint = "https://..." }` or
    /// `{ type = "vpc", service_name = "...", endpoint = "https://..." }`).
    pub location: Option<crate::model::XksLocation>,
    /// Link it to AWS KMS (its external key store is created there, or found there
    /// by endpoint and path), after the server started.
    #[serde(default)]
    pub linked: bool,
    /// Connect it on AWS KMS once linked.
    #[serde(default)]
    pub connected: bool,
}

/// A declared credential: the secret inline, from an environment variable, or a file.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CredentialDecl {
    /// Access key id.
    pub access_key_id: String,
    /// Secret inline (fine for examples; prefer `secret_env`/`secret_file`).
    pub secret: Option<String>,
    /// Environment variable holding the secret.
    pub secret_env: Option<String>,
    /// File holding the secret.
    pub secret_file: Option<PathBuf>,
}

impl std::fmt::Debug for CredentialDecl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CredentialDecl")
            .field("access_key_id", &self.access_key_id)
            .field("secret", &self.secret.as_ref().map(|_| "<redacted>"))
            .field("secret_env", &self.secret_env)
            .field("secret_file", &self.secret_file)
            .finish()
    }
}

/// A declared HYOK key.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyDecl {
    /// External key id (what AWS KMS puts in XKS paths).
    pub id: String,
    /// Name of the key in the store's source; default: the external key id. Created
    /// with `usage` when missing.
    pub source_key: Option<String>,
    /// Key usage: any of `encrypt`, `decrypt`, `wrap`, `unwrap`.
    pub usage: Vec<String>,
    /// Whether the source key is enabled (default true).
    #[serde(default = "yes")]
    pub enabled: bool,
}

fn yes() -> bool {
    true
}

impl Config {
    /// Loads the configuration: the file (or the embedded defaults when `file` is
    /// `None`), then `KEYHOLD_*` environment variables; then validates it.
    pub fn load(file: Option<&Path>) -> Result<Config, ConfigError> {
        Self::load_with_env(file, Self::env_provider())
    }

    /// The `KEYHOLD_*` environment provider. Only variables naming a top-level section
    /// count as configuration, so that other `KEYHOLD_*` variables (a secret referenced
    /// by `secret_env`, a PIN, a test's own settings) are not mistaken for it.
    pub fn env_provider() -> Env {
        Env::prefixed("KEYHOLD_")
            .filter(|key| {
                let first = key.as_str().split("__").next().unwrap_or("");
                TOP_LEVEL_KEYS.iter().any(|k| first.eq_ignore_ascii_case(k))
            })
            .split("__")
    }

    /// As [`Config::load`], with an explicit environment provider (for tests).
    pub fn load_with_env(file: Option<&Path>, env: Env) -> Result<Config, ConfigError> {
        let base = match file {
            Some(path) => {
                // figment silently treats a missing file as empty: check first.
                std::fs::metadata(path).map_err(|e| ConfigError::File {
                    path: path.to_path_buf(),
                    reason: e.to_string(),
                })?;
                Figment::from(Toml::file_exact(path))
            }
            None => Figment::from(Toml::string(EMBEDDED_DEFAULTS)),
        };
        let config: Config = base
            .merge(env)
            .extract()
            .map_err(|e| ConfigError::Parse(Box::new(e)))?;
        config.validate()?;
        Ok(config)
    }

    /// Parses a TOML string (no environment), for tests and tools.
    pub fn from_toml(text: &str) -> Result<Config, ConfigError> {
        let config: Config = Figment::from(Toml::string(text))
            .extract()
            .map_err(|e| ConfigError::Parse(Box::new(e)))?;
        config.validate()?;
        Ok(config)
    }

    /// Checks the `[aws]` declarations.
    fn validate_aws(&self) -> Result<(), ConfigError> {
        for (name, c) in &self.aws.connections {
            let key = format!("aws.connections.{name}");
            model::validate_name("AWS connection", name).map_err(|e| invalid(&key, e))?;
            let secrets = [
                c.secret_access_key.is_some(),
                c.secret_access_key_env.is_some(),
                c.secret_access_key_file.is_some(),
            ];
            if secrets.iter().filter(|s| **s).count() != 1 {
                return Err(invalid(
                    key,
                    "set exactly one of secret_access_key, secret_access_key_env and secret_access_key_file",
                ));
            }
        }
        for (id, a) in &self.aws.accounts {
            let key = format!("aws.accounts.{id}");
            model::validate_account_id(id).map_err(|e| invalid(&key, e))?;
            for region in &a.regions {
                model::validate_region(region).map_err(|e| invalid(format!("{key}.regions"), e))?;
            }
        }
        for (i, store) in self.stores.iter().enumerate() {
            if let (Some(account), Some(region)) = (&store.account, &store.region) {
                if let Some(a) = self.aws.accounts.get(account) {
                    if !a.regions.contains(region) {
                        return Err(invalid(
                            format!("stores[{i}].region"),
                            format!("'{region}' is not among aws.accounts.{account}.regions"),
                        ));
                    }
                }
            }
        }
        Ok(())
    }

    /// Checks every rule that typing cannot express, naming the offending key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.store.validate()?;
        self.node.validate()?;
        let x = &self.xks;
        if !(1..=60).contains(&x.health_cache_seconds) {
            return Err(invalid(
                "xks.health_cache_seconds",
                "must be 1..=60 (AWS requires cached health results no older than a minute)",
            ));
        }
        if x.fleet_size.is_some() {
            return Err(invalid(
                "xks.fleet_size",
                "is no longer set by hand: health reports the number of live nodes (1 on the embedded store, the registered nodes on etcd); remove it",
            ));
        }
        if x.plugin_timeout_ms == 0 || x.plugin_timeout_ms > 10_000 {
            return Err(invalid("xks.plugin_timeout_ms", "must be 1..=10000"));
        }
        if self.audit.segment_max_bytes < 4096 {
            return Err(invalid("audit.segment_max_bytes", "must be at least 4096"));
        }
        if self.audit.refusal_interval_seconds == 0 {
            return Err(invalid(
                "audit.refusal_interval_seconds",
                "must be greater than zero",
            ));
        }
        if x.max_in_flight == 0 {
            return Err(invalid("xks.max_in_flight", "must be greater than zero"));
        }
        if x.queue_timeout_ms > x.plugin_timeout_ms {
            return Err(invalid(
                "xks.queue_timeout_ms",
                "must not exceed xks.plugin_timeout_ms",
            ));
        }
        if let Some(q) = &x.quota {
            q.validate().map_err(|e| invalid("xks.quota", e))?;
        }
        x.connections.validate("xks.connections")?;
        self.admin.connections.validate("admin.connections")?;
        self.metrics.validate()?;
        if self.admin.session_ttl_seconds == 0 {
            return Err(invalid(
                "admin.session_ttl_seconds",
                "must be greater than zero",
            ));
        }
        if self.admin.tls.cert_file.is_some() != self.admin.tls.key_file.is_some() {
            return Err(invalid(
                "admin.tls",
                "give both cert_file and key_file, or neither",
            ));
        }
        if x.plugin_concurrency == 0 {
            return Err(invalid(
                "xks.plugin_concurrency",
                "must be greater than zero",
            ));
        }
        if x.max_body_bytes < 32 * 1024 {
            return Err(invalid(
                "xks.max_body_bytes",
                "must be at least 32768 (the XKS minimum sizes need ~24 KiB)",
            ));
        }
        x.tls.validate_xks()?;
        self.admin.tls.validate_admin()?;
        if self.secrets.master_key_file.is_some() && self.secrets.master_key_env.is_some() {
            return Err(invalid(
                "secrets",
                "set master_key_file or master_key_env, not both",
            ));
        }
        for (name, source) in &self.sources {
            let key = format!("sources.{name}");
            model::validate_name("source", name).map_err(|e| invalid(&key, e))?;
            if source.plugin.is_empty()
                || !source
                    .plugin
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
            {
                return Err(invalid(
                    format!("{key}.plugin"),
                    "must be a plugin name of letters, digits, '_' and '-'",
                ));
            }
            if !source.config.is_object() {
                return Err(invalid(format!("{key}.config"), "must be a table"));
            }
        }
        self.validate_aws()?;
        let mut names = std::collections::HashSet::new();
        let mut prefixes = std::collections::HashSet::new();
        for (i, store) in self.stores.iter().enumerate() {
            let key = format!("stores[{i}]");
            model::validate_name("store", &store.name)
                .map_err(|e| invalid(format!("{key}.name"), e))?;
            if !names.insert(store.name.as_str()) {
                return Err(invalid(
                    format!("{key}.name"),
                    format!("store '{}' is declared twice", store.name),
                ));
            }
            if store.connected && !store.linked {
                return Err(invalid(
                    format!("{key}.connected"),
                    "a store can only be connected on AWS KMS when linked: set linked = true",
                ));
            }
            if store.linked {
                let missing = [
                    ("account", store.account.is_none()),
                    ("region", store.region.is_none()),
                    (
                        "location",
                        matches!(
                            store.location,
                            None | Some(crate::model::XksLocation::Unset)
                        ),
                    ),
                ];
                if let Some((field, _)) = missing.iter().find(|(_, m)| *m) {
                    return Err(invalid(
                        format!("{key}.{field}"),
                        "a linked store needs account, region and location",
                    ));
                }
            }
            if let Some(region) = &store.region {
                model::validate_region(region).map_err(|e| invalid(format!("{key}.region"), e))?;
            }
            if !self.sources.contains_key(&store.source) {
                return Err(invalid(
                    format!("{key}.source"),
                    format!("no key source named '{}' in [sources]", store.source),
                ));
            }
            if let Some(prefix) = &store.uri_path_prefix {
                let p = model::normalize_uri_path_prefix(prefix)
                    .map_err(|e| invalid(format!("{key}.uri_path_prefix"), e))?;
                if !prefixes.insert(p) {
                    return Err(invalid(
                        format!("{key}.uri_path_prefix"),
                        "another store uses the same prefix",
                    ));
                }
            }
            if store.health_check_key.is_empty() {
                return Err(invalid(
                    format!("{key}.health_check_key"),
                    "must not be empty",
                ));
            }
            if let Some(q) = &store.quota {
                q.validate()
                    .map_err(|e| invalid(format!("{key}.quota"), e))?;
            }
            if let Some(max) = store.max_credentials {
                model::validate_max_credentials(max)
                    .map_err(|e| invalid(format!("{key}.max_credentials"), e))?;
            }
            let max = store.max_credentials.unwrap_or(model::MAX_CREDENTIALS);
            if store.credentials.len() > max as usize {
                return Err(invalid(
                    format!("{key}.credentials"),
                    format!(
                        "{} declared, but max_credentials is {max}",
                        store.credentials.len()
                    ),
                ));
            }
            let mut akids = std::collections::HashSet::new();
            for (j, cred) in store.credentials.iter().enumerate() {
                let ckey = format!("{key}.credentials[{j}]");
                model::validate_access_key_id(&cred.access_key_id)
                    .map_err(|e| invalid(format!("{ckey}.access_key_id"), e))?;
                if !akids.insert(cred.access_key_id.as_str()) {
                    return Err(invalid(
                        format!("{ckey}.access_key_id"),
                        "declared twice in this store",
                    ));
                }
                let given = [
                    cred.secret.is_some(),
                    cred.secret_env.is_some(),
                    cred.secret_file.is_some(),
                ]
                .iter()
                .filter(|b| **b)
                .count();
                if given != 1 {
                    return Err(invalid(
                        ckey,
                        "give exactly one of secret, secret_env, secret_file",
                    ));
                }
                if let Some(secret) = &cred.secret {
                    model::validate_secret(secret)
                        .map_err(|e| invalid(format!("{ckey}.secret"), e))?;
                }
            }
            let mut ids = std::collections::HashSet::new();
            for (j, k) in store.keys.iter().enumerate() {
                let kkey = format!("{key}.keys[{j}]");
                model::validate_external_key_id(&k.id)
                    .map_err(|e| invalid(format!("{kkey}.id"), e))?;
                if !ids.insert(k.id.as_str()) {
                    return Err(invalid(
                        format!("{kkey}.id"),
                        "declared twice in this store",
                    ));
                }
                keyhold_sdk::KeyUsage::parse_list(&k.usage).map_err(|bad| {
                    invalid(
                        format!("{kkey}.usage"),
                        format!("unknown usage '{bad}' (use encrypt, decrypt, wrap, unwrap)"),
                    )
                })?;
                if k.source_key.as_deref() == Some("") {
                    return Err(invalid(format!("{kkey}.source_key"), "must not be empty"));
                }
            }
        }
        Ok(())
    }

    /// The audit log file.
    pub fn audit_path(&self) -> PathBuf {
        self.audit
            .path
            .clone()
            .unwrap_or_else(|| self.data_dir.join("audit.jsonl"))
    }

    /// The embedded store's file.
    pub fn store_path(&self) -> PathBuf {
        self.store
            .path
            .clone()
            .unwrap_or_else(|| self.data_dir.join("keyhold.redb"))
    }

    /// Where the master key comes from.
    pub fn master_key_source(&self) -> crate::secrets::MasterKeySource {
        use crate::secrets::MasterKeySource;
        match (&self.secrets.master_key_env, &self.secrets.master_key_file) {
            (Some(var), _) => MasterKeySource::Env(var.clone()),
            (None, Some(file)) => MasterKeySource::File(file.clone()),
            (None, None) => MasterKeySource::GeneratedFile(self.data_dir.join("master.key")),
        }
    }

    /// The directory plugin libraries are loaded from.
    pub fn plugin_dir(&self) -> PathBuf {
        if let Some(dir) = &self.plugins.dir {
            return dir.clone();
        }
        std::env::current_exe()
            .ok()
            .and_then(|exe| exe.parent().map(Path::to_path_buf))
            .unwrap_or_else(|| PathBuf::from("."))
    }

    /// The library file of a declared source.
    pub fn library_path(&self, source: &SourceDecl) -> PathBuf {
        source.library.clone().unwrap_or_else(|| {
            self.plugin_dir()
                .join(format!("libplugin_{}.so", source.plugin.replace('-', "_")))
        })
    }
}

#[cfg(test)]
mod tests;

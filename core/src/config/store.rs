//! `[store]`: which durable store backend keyhold runs on, and how it reaches etcd.

use std::path::PathBuf;

use serde::Deserialize;

use super::{ConfigError, invalid};

/// Durable store settings.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreConfig {
    /// `embedded` (default: one `redb` file, one node) or `etcd` (a cluster).
    #[serde(default)]
    pub backend: StoreBackend,
    /// The embedded store's file; default `<data_dir>/keyhold.redb`.
    pub path: Option<PathBuf>,
    /// etcd settings (with `backend = "etcd"`).
    pub etcd: Option<EtcdConfig>,
}

/// Which store backend (`store.backend`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StoreBackend {
    /// A single `redb` file.
    #[default]
    Embedded,
    /// etcd.
    Etcd,
}

/// `[store.etcd]`: how to reach etcd.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EtcdConfig {
    /// Client URLs (`http://host:2379`, or `https://` with `ca_file`).
    pub endpoints: Vec<String>,
    /// Prefix of every key keyhold writes (default `keyhold/`); clusters sharing one
    /// etcd need different prefixes.
    #[serde(default = "default_etcd_prefix")]
    pub prefix: String,
    /// Deadline of each etcd call, milliseconds (default 5000).
    #[serde(default = "default_etcd_timeout_ms")]
    pub timeout_ms: u64,
    /// etcd user (with `password_env` or `password_file`).
    pub user: Option<String>,
    /// Environment variable holding the etcd password.
    pub password_env: Option<String>,
    /// File holding the etcd password.
    pub password_file: Option<PathBuf>,
    /// PEM CA bundle of etcd's certificate (TLS).
    pub ca_file: Option<PathBuf>,
    /// PEM client certificate (with `key_file`).
    pub cert_file: Option<PathBuf>,
    /// PEM client key.
    pub key_file: Option<PathBuf>,
    /// How many transactions are kept in etcd for nodes catching up after a break
    /// (default 10000, at least 100); a node cut off for longer reloads the whole state.
    #[serde(default = "default_etcd_log_retain")]
    pub log_retain: u64,
    /// Lifetime of a node's etcd lease, seconds (default 10, 2..=300): a node that stops
    /// heartbeating drops out of the node list and the fleet size, and loses the lead of
    /// the once-only jobs, this long after its last heartbeat (heartbeats every third of
    /// it).
    #[serde(default = "default_lease_ttl_seconds")]
    pub lease_ttl_seconds: u64,
}

fn default_lease_ttl_seconds() -> u64 {
    10
}

/// `[node]`: this node's identity.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeConfig {
    /// The node's id in the node list and in its audit records; by default one is
    /// generated at the first start and kept in `<data_dir>/node-id`.
    pub id: Option<String>,
}

impl NodeConfig {
    /// Checks the id, when given.
    pub fn validate(&self) -> Result<(), ConfigError> {
        match &self.id {
            Some(id) => crate::cluster::validate_node_id(id).map_err(|e| invalid("node.id", e)),
            None => Ok(()),
        }
    }
}

fn default_etcd_log_retain() -> u64 {
    crate::store::LOG_RETAIN
}

fn default_etcd_prefix() -> String {
    "keyhold/".into()
}
fn default_etcd_timeout_ms() -> u64 {
    5000
}

impl EtcdConfig {
    /// The store settings, reading the password from its source.
    pub fn settings(&self) -> Result<crate::store::EtcdSettings, ConfigError> {
        let password = match (&self.password_env, &self.password_file) {
            (Some(var), None) => Some(std::env::var(var).map_err(|_| {
                invalid(
                    "store.etcd.password_env",
                    format!("environment variable {var} is not set"),
                )
            })?),
            (None, Some(path)) => Some(
                std::fs::read_to_string(path)
                    .map_err(|e| {
                        invalid(
                            "store.etcd.password_file",
                            format!("cannot read {}: {e}", path.display()),
                        )
                    })?
                    .trim_end_matches(['\r', '\n'])
                    .to_string(),
            ),
            (None, None) => None,
            (Some(_), Some(_)) => {
                return Err(invalid(
                    "store.etcd",
                    "set password_env or password_file, not both",
                ));
            }
        };
        let user = match (&self.user, password) {
            (Some(u), Some(p)) => Some((u.clone(), p)),
            (None, None) => None,
            _ => {
                return Err(invalid(
                    "store.etcd.user",
                    "an etcd user needs a password (password_env or password_file), and a password a user",
                ));
            }
        };
        let tls = match (&self.ca_file, &self.cert_file, &self.key_file) {
            (None, None, None) => None,
            (Some(ca), cert, key) if cert.is_some() == key.is_some() => {
                Some(crate::store::EtcdTls {
                    ca_file: ca.clone(),
                    cert_file: cert.clone(),
                    key_file: key.clone(),
                })
            }
            _ => {
                return Err(invalid(
                    "store.etcd",
                    "TLS needs ca_file, and cert_file and key_file together",
                ));
            }
        };
        if self.endpoints.is_empty() {
            return Err(invalid(
                "store.etcd.endpoints",
                "give at least one etcd client URL",
            ));
        }
        if self.timeout_ms == 0 {
            return Err(invalid(
                "store.etcd.timeout_ms",
                "must be greater than zero",
            ));
        }
        if self.log_retain < 100 {
            return Err(invalid("store.etcd.log_retain", "must be at least 100"));
        }
        if !(2..=300).contains(&self.lease_ttl_seconds) {
            return Err(invalid("store.etcd.lease_ttl_seconds", "must be 2..=300"));
        }
        Ok(crate::store::EtcdSettings {
            endpoints: self.endpoints.clone(),
            prefix: self.prefix.clone(),
            user,
            tls,
            timeout: std::time::Duration::from_millis(self.timeout_ms),
            log_retain: self.log_retain,
        })
    }
}

impl StoreConfig {
    /// Checks the backend and its settings, naming the offending key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        match (self.backend, &self.etcd) {
            (StoreBackend::Etcd, None) => {
                return Err(invalid(
                    "store.etcd",
                    "store.backend = \"etcd\" needs [store.etcd] with its endpoints",
                ));
            }
            (StoreBackend::Etcd, Some(etcd)) => {
                if self.path.is_some() {
                    return Err(invalid(
                        "store.path",
                        "is the embedded store's file: not used with store.backend = \"etcd\"",
                    ));
                }
                etcd.settings()?;
            }
            (StoreBackend::Embedded, Some(_)) => {
                return Err(invalid(
                    "store.etcd",
                    "is set but store.backend is \"embedded\": set store.backend = \"etcd\" to use it",
                ));
            }
            (StoreBackend::Embedded, None) => {}
        }
        Ok(())
    }
}

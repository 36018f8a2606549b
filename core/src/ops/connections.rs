//! Connections: AWS connections (credentials sealed at rest) and HSM connections
//! (PKCS#11 module, token label, a *reference* to the PIN), their connection tests,
//! and luna key sources opened at run time from HSM connections.

use std::{
    path::PathBuf,
    sync::{Arc, mpsc},
    time::Duration,
};

use zeroize::Zeroizing;

use super::{OpError, Operations, decode, to_json};
use crate::{
    api::connections::{ConnectionTest, NewAwsConnection, NewHsmConnection},
    aws::{self, AwsLimits, AwsSettings},
    model::{
        self, AccountRecord, AwsConnectionRecord, HsmConnectionRecord, SourceRecord, keys,
        rules::RuleViolation,
    },
    plugin::{self, CallLimits, KeySourceHandle, LoadedPlugin, StoreHost},
    store::{Condition, StoreError, Write},
};

/// Where plugin libraries are and how opened key sources are called: what opening a
/// key source at run time needs.
#[derive(Debug, Clone)]
pub struct PluginSettings {
    /// The plugin directory (`libplugin_<name>.so`).
    pub dir: PathBuf,
    /// Call limits of opened key sources.
    pub limits: CallLimits,
    /// The key sources the configuration file declares (reopened from there).
    pub declared: std::collections::BTreeMap<String, DeclaredSource>,
}

/// A key source declared in the configuration file, as reopening it needs it.
#[derive(Debug, Clone)]
pub struct DeclaredSource {
    /// The plugin kind.
    pub plugin: String,
    /// The library it is loaded from.
    pub library: PathBuf,
    /// Its plugin configuration.
    pub config: serde_json::Value,
    /// Whether its calls run inline (see `SourceDecl::inline_calls`).
    pub inline_calls: crate::plugin::InlineCalls,
}

/// How long a connection test may take.
pub const CONNECTION_TEST_TIMEOUT: Duration = Duration::from_secs(10);
/// How long opening a key source from an HSM connection may take.
pub(super) const SOURCE_OPEN_TIMEOUT: Duration = Duration::from_secs(30);
/// The AWS connection test's limits: one call, answered within the connection test's
/// bound.
const AWS_TEST_LIMITS: AwsLimits = AwsLimits {
    connect_timeout: Duration::from_secs(3),
    attempt_timeout: Duration::from_secs(5),
    operation_timeout: CONNECTION_TEST_TIMEOUT,
    max_attempts: 2,
};

fn in_use(what: &str, name: &str, users: &[String], kind: &str, how: &str) -> OpError {
    OpError::Rule(RuleViolation {
        code: "connection_in_use",
        message: format!(
            "{what} '{name}' is still used by {kind} {}: {how}",
            users.join(", ")
        ),
    })
}

mod hsm;

fn validate_aws_text(field: &'static str, v: &str, max: usize) -> Result<(), OpError> {
    if v.is_empty() || v.len() > max || v.chars().any(char::is_control) {
        return Err(OpError::Input(format!(
            "{field} must be 1 to {max} characters without control characters"
        )));
    }
    Ok(())
}

fn validate_endpoint(field: &str, url: &str) -> Result<(), OpError> {
    let uri: http::Uri = url
        .parse()
        .map_err(|e| OpError::Input(format!("{field} '{url}' is not a URL: {e}")))?;
    match (uri.scheme_str(), uri.host()) {
        (Some("http" | "https"), Some(_)) => Ok(()),
        _ => Err(OpError::Input(format!(
            "{field} '{url}' must be an http:// or https:// URL with a host"
        ))),
    }
}

/// Reads CA bundle `path` and checks it holds at least one usable CA certificate.
fn read_ca_file(path: &str) -> Result<Vec<u8>, OpError> {
    if !path.starts_with('/') {
        return Err(OpError::Input(format!(
            "ca_file '{path}' must be an absolute path (of a PEM bundle on the server)"
        )));
    }
    let pem = std::fs::read(path)
        .map_err(|e| OpError::Input(format!("ca_file '{path}' cannot be read: {e}")))?;
    aws::tls::parse_ca_pem(&pem)
        .map_err(|e| OpError::Input(format!("ca_file '{path}' is not a CA bundle: {e}")))?;
    Ok(pem)
}

impl Operations {
    /// Where plugins are (for opening key sources at run time).
    pub fn with_plugins(mut self, settings: PluginSettings) -> Self {
        self.plugins = Some(settings);
        self
    }

    // ----- AWS connections -----

    /// Creates an AWS connection; its secret is sealed with its store key as context.
    pub fn create_aws_connection(
        &self,
        new: NewAwsConnection,
    ) -> Result<AwsConnectionRecord, OpError> {
        model::validate_name("AWS connection", &new.name)?;
        let akid = &new.access_key_id;
        if !(16..=128).contains(&akid.len()) || !akid.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(OpError::Input(
                "access_key_id must be 16 to 128 letters and digits (e.g. AKIA...)".into(),
            ));
        }
        validate_aws_text("secret_access_key", &new.secret_access_key, 128)?;
        if let Some(arn) = &new.role_arn {
            validate_aws_text("role_arn", arn, 2048)?;
            if !arn.starts_with("arn:") || !arn.contains(":role/") {
                return Err(OpError::Input(format!(
                    "role_arn '{arn}' is not an IAM role ARN (arn:aws:iam::<account>:role/<name>)"
                )));
            }
        }
        if let Some(url) = &new.endpoint_url {
            validate_endpoint("endpoint_url", url)?;
        }
        if let Some(url) = &new.sts_endpoint_url {
            validate_endpoint("sts_endpoint_url", url)?;
        }
        if let Some(path) = &new.ca_file {
            read_ca_file(path)?;
        }
        let key = keys::aws_connection(&new.name);
        let record = AwsConnectionRecord {
            name: new.name.clone(),
            access_key_id: new.access_key_id,
            sealed_secret_access_key: self.master.seal(new.secret_access_key.as_bytes(), &key),
            role_arn: new.role_arn,
            endpoint_url: new.endpoint_url,
            sts_regional_endpoints: new.sts_regional_endpoints,
            sts_endpoint_url: new.sts_endpoint_url,
            ca_file: new.ca_file,
            created_at: model::now_unix(),
        };
        self.create_entry(key, to_json(&record), "AWS connection", &new.name)?;
        Ok(record)
    }

    /// One AWS connection (the secret stays sealed).
    pub fn get_aws_connection(&self, name: &str) -> Result<AwsConnectionRecord, OpError> {
        decode(&self.entry(&keys::aws_connection(name), "AWS connection", name)?)
    }

    /// Every AWS connection.
    pub fn list_aws_connections(&self) -> Result<Vec<AwsConnectionRecord>, OpError> {
        self.decode_all(keys::AWS_CONNECTIONS)
    }

    /// Deletes an AWS connection; refused while an account uses it.
    pub fn delete_aws_connection(&self, name: &str) -> Result<(), OpError> {
        // Binding an account to the connection rewrites its record (bumping its
        // revision), so an account bound meanwhile makes this fail.
        self.delete_connection(keys::aws_connection(name), "AWS connection", name, || {
            let users = self.list_accounts()?.into_iter();
            let users = users.filter(|a| a.aws_connection.as_deref() == Some(name));
            Ok((
                users.map(|a| a.id).collect(),
                "AWS accounts",
                "change or delete them first",
            ))
        })
    }

    /// The conditions and writes that bind a record to AWS connection `name`: it must
    /// exist, and its record is rewritten so that a concurrent delete fails.
    pub(super) fn bind_aws_connection(&self, name: &str) -> Result<(Condition, Write), OpError> {
        let key = keys::aws_connection(name);
        let entry = self.entry(&key, "AWS connection", name)?;
        Ok((
            Condition::Revision(key.clone(), entry.revision),
            Write::Put(key, entry.value),
        ))
    }

    /// How to reach AWS KMS in `region` through AWS connection `connection`: its
    /// settings with the secret opened and the CA file read, and the default limits.
    pub fn aws_settings(&self, connection: &str, region: &str) -> Result<AwsSettings, OpError> {
        model::validate_region(region)?;
        let key = keys::aws_connection(connection);
        let rec: AwsConnectionRecord = decode(&self.entry(&key, "AWS connection", connection)?)?;
        let secret = self
            .master
            .open(&rec.sealed_secret_access_key, &key)
            .map_err(|e| OpError::Input(format!("AWS connection '{connection}': {e}")))?;
        let secret = String::from_utf8(secret.to_vec()).map_err(|_| {
            OpError::Input(format!(
                "AWS connection '{connection}': the sealed secret is not text"
            ))
        })?;
        let ca_pem = match &rec.ca_file {
            Some(path) => Some(
                read_ca_file(path)
                    .map_err(|e| OpError::Input(format!("AWS connection '{connection}': {e}")))?,
            ),
            None => None,
        };
        Ok(AwsSettings {
            connection: connection.to_string(),
            region: region.to_string(),
            access_key_id: rec.access_key_id,
            secret_access_key: Zeroizing::new(secret),
            role_arn: rec.role_arn,
            endpoint_url: rec.endpoint_url,
            sts_endpoint_url: rec.sts_endpoint_url,
            sts_regional_endpoints: rec.sts_regional_endpoints,
            ca_pem,
            limits: AwsLimits::default(),
        })
    }

    /// Tests an AWS connection: a KMS `ListKeys` call (of one key) through the AWS SDK
    /// with the connection's credentials (the role assumed when it has one), to its
    /// endpoint (the override, else `https://kms.<region>.amazonaws.com`), bounded in
    /// time; `Failed` names AWS's error code and what to do.
    pub fn test_aws_connection(
        &self,
        name: &str,
        region: Option<&str>,
    ) -> Result<ConnectionTest, OpError> {
        let region = region.unwrap_or("us-east-1");
        let mut settings = self.aws_settings(name, region)?;
        settings.limits = AWS_TEST_LIMITS;
        let endpoint = settings
            .endpoint_url
            .clone()
            .unwrap_or_else(|| format!("https://kms.{region}.amazonaws.com"));
        let outcome = aws::connect(&settings);
        let outcome = match outcome {
            Ok(kms) => run_async(async move { kms.probe().await }),
            Err(e) => Err(e),
        };
        let mut out = match outcome {
            Ok(()) => ConnectionTest::ready(),
            Err(e) => ConnectionTest::failed(format!(
                "AWS connection '{name}' (region {region}, endpoint {endpoint}): {e}"
            )),
        };
        out.endpoint = Some(endpoint);
        Ok(out)
    }

    // ----- HSM connections -----

    /// Creates an HSM connection (a reference to the PIN, never the PIN).
    pub fn create_hsm_connection(
        &self,
        new: NewHsmConnection,
    ) -> Result<HsmConnectionRecord, OpError> {
        model::validate_name("HSM connection", &new.name)?;
        if new.token_label.is_empty() || new.token_label.len() > 32 {
            return Err(OpError::Input(
                "token_label must be 1 to 32 characters (a PKCS#11 token label)".into(),
            ));
        }
        let key = keys::hsm_connection(&new.name);
        let record = HsmConnectionRecord {
            name: new.name.clone(),
            module: new.module,
            token_label: new.token_label,
            pin_env: new.pin_env,
            pin_file: new.pin_file,
            module_env: new.module_env,
            pool_size: new.pool_size,
            op_timeout_ms: new.op_timeout_ms,
            created_at: model::now_unix(),
        };
        hsm::validate(&record)?;
        self.create_entry(key, to_json(&record), "HSM connection", &new.name)?;
        Ok(record)
    }

    /// One HSM connection.
    pub fn get_hsm_connection(&self, name: &str) -> Result<HsmConnectionRecord, OpError> {
        decode(&self.entry(&keys::hsm_connection(name), "HSM connection", name)?)
    }

    /// Every HSM connection.
    pub fn list_hsm_connections(&self) -> Result<Vec<HsmConnectionRecord>, OpError> {
        self.decode_all(keys::HSM_CONNECTIONS)
    }

    /// Deletes an HSM connection; refused while a key source was made from it.
    pub fn delete_hsm_connection(&self, name: &str) -> Result<(), OpError> {
        self.delete_connection(keys::hsm_connection(name), "HSM connection", name, || {
            let users = self.decode_all::<SourceRecord>(keys::SOURCES)?.into_iter();
            let users = users.filter(|s| s.hsm_connection.as_deref() == Some(name));
            Ok((
                users.map(|s| s.name).collect(),
                "key sources",
                "delete them first (`keyhold source delete <name>`, or DELETE \
                 /api/v1/sources/<name>; a source still used by a key store must lose its \
                 stores first)",
            ))
        })
    }

    /// Deletes the connection at `key` unless `users` (what uses it, and what those
    /// are called) names some: then `connection_in_use`. A concurrent change of the
    /// connection's record makes the delete fail.
    fn delete_connection(
        &self,
        key: String,
        what: &'static str,
        name: &str,
        users: impl FnOnce() -> Result<(Vec<String>, &'static str, &'static str), OpError>,
    ) -> Result<(), OpError> {
        let entry = self.entry(&key, what, name)?;
        let (users, kind, how) = users()?;
        if !users.is_empty() {
            return Err(in_use(what, name, &users, kind, how));
        }
        self.commit_read(
            &[Condition::Revision(key.clone(), entry.revision)],
            vec![Write::Delete(key)],
            what,
            name,
            entry.revision,
        )
    }

    pub(super) fn plugin_settings(&self) -> Result<&PluginSettings, OpError> {
        self.plugins
            .as_ref()
            .ok_or_else(|| OpError::Input("this server cannot open key sources at run time".into()))
    }

    /// Tests an HSM connection: loads the luna plugin and opens a key source with the
    /// connection's configuration (one session), bounded in time; `Ready` with the
    /// token's model, or the plugin's reason (never the PIN).
    pub fn test_hsm_connection(&self, name: &str) -> Result<ConnectionTest, OpError> {
        let rec = self.get_hsm_connection(name)?;
        self.test_hsm_record(&rec)
    }

    /// [`Operations::test_hsm_connection`] of a connection record (saved or not).
    pub(super) fn test_hsm_record(
        &self,
        rec: &HsmConnectionRecord,
    ) -> Result<ConnectionTest, OpError> {
        let name = &rec.name;
        let settings = self.plugin_settings()?.clone();
        let mut config = rec.luna_config();
        config["pool_size"] = 1.into();
        let host_name = format!(".connection-test-{name}");
        let opened = open_source(
            &settings,
            "luna",
            &host_name,
            &config,
            StoreHost::new(self.store.clone(), &host_name),
            CONNECTION_TEST_TIMEOUT,
        );
        let prefix = format!("HSM connection '{name}' (token '{}')", rec.token_label);
        Ok(match opened {
            Err(reason) => ConnectionTest::failed(format!("{prefix}: {reason}")),
            Ok((_, source)) => {
                let nodes = source.health().into_vec();
                let bad = nodes
                    .iter()
                    .find(|n| n.status == keyhold_sdk::HealthStatus::Unavailable);
                match (bad, nodes.first()) {
                    (Some(n), _) => {
                        ConnectionTest::failed(format!("{prefix}: token unavailable: {}", n.model))
                    }
                    (None, None) => {
                        ConnectionTest::failed(format!("{prefix}: the key source reports no HSM"))
                    }
                    (None, Some(n)) => ConnectionTest {
                        model: Some(n.model.to_string()),
                        ..ConnectionTest::ready()
                    },
                }
            }
        })
    }

    /// Creates a key source from an HSM connection and opens it in the running server
    /// (stores created on it afterwards are served). Only `luna` sources are made from
    /// connections; the `ctm` source is built in (declared in the config file).
    pub fn create_source(
        &self,
        name: &str,
        plugin_name: &str,
        hsm_connection: &str,
    ) -> Result<SourceRecord, OpError> {
        model::validate_name("source", name)?;
        if plugin_name != "luna" {
            return Err(OpError::Input(format!(
                "plugin '{plugin_name}': only 'luna' key sources are created from HSM connections \
                 (the 'ctm' source is built in and declared in the configuration file)"
            )));
        }
        if name.starts_with('.') {
            return Err(OpError::Input(
                "source names must not start with '.'".into(),
            ));
        }
        let conn_key = keys::hsm_connection(hsm_connection);
        let conn_entry = self.entry(&conn_key, "HSM connection", hsm_connection)?;
        let conn: HsmConnectionRecord = decode(&conn_entry)?;
        let already = || OpError::AlreadyExists {
            what: "key source",
            id: name.to_string(),
        };
        if self.sources.contains(name) || self.store.get(&keys::source(name))?.is_some() {
            return Err(already());
        }
        let settings = self.plugin_settings()?.clone();
        let config = conn.luna_config();
        let (lib, source) = open_source(
            &settings,
            plugin_name,
            name,
            &config,
            StoreHost::new(self.store.clone(), name),
            SOURCE_OPEN_TIMEOUT,
        )
        .map_err(|reason| OpError::SourceUnavailable {
            source_name: name.to_string(),
            reason,
        })?;
        let handle = Arc::new(
            KeySourceHandle::new(name, Some(lib), source, settings.limits)
                .with_host(StoreHost::new(self.store.clone(), name)),
        );
        if !self.sources.add(name, handle) {
            return Err(already());
        }
        let record = SourceRecord {
            name: name.to_string(),
            plugin: plugin_name.to_string(),
            container: Some(conn.token_label.clone()),
            created_at: model::now_unix(),
            hsm_connection: Some(hsm_connection.to_string()),
            config: Some(config),
            generation: 0,
        };
        let source_key = keys::source(name);
        let result = self.store.commit(
            &[
                Condition::Absent(source_key.clone()),
                Condition::Revision(conn_key.clone(), conn_entry.revision),
            ],
            vec![
                Write::Put(source_key.clone(), to_json(&record)),
                // Rewritten so that a concurrent delete of the connection fails.
                Write::Put(conn_key, conn_entry.value),
            ],
        );
        match result {
            Ok(_) => {
                tracing::info!(source = %name, connection = %hsm_connection, "key source created and opened");
                Ok(record)
            }
            Err(e) => {
                self.sources.remove(name);
                Err(match e {
                    StoreError::Conflict { key } if key == source_key => already(),
                    StoreError::Conflict { .. } => OpError::VersionMismatch {
                        what: "HSM connection",
                        id: hsm_connection.to_string(),
                        expected: conn_entry.revision,
                        actual: 0,
                    },
                    e => e.into(),
                })
            }
        }
    }
}

/// The account record with its AWS connection binding checked (used by account
/// creation and update).
pub(super) fn check_account_connection(
    ops: &Operations,
    record: &AccountRecord,
) -> Result<Option<(Condition, Write)>, OpError> {
    match &record.aws_connection {
        None => Ok(None),
        Some(name) => ops.bind_aws_connection(name).map(Some),
    }
}

/// Loads `libplugin_<plugin>.so` from the plugin directory and opens a key source on a
/// thread of its own, waiting at most `timeout` (a plugin stuck in its module is left
/// behind, and reported).
pub fn open_source(
    settings: &PluginSettings,
    plugin_name: &str,
    source_name: &str,
    config: &serde_json::Value,
    host: StoreHost,
    timeout: Duration,
) -> Result<(LoadedPlugin, keyhold_sdk::KeySourceBox), String> {
    let path = settings
        .dir
        .join(format!("libplugin_{}.so", plugin_name.replace('-', "_")));
    open_source_at(path, source_name, config, host, timeout)
}

/// [`open_source`] from the library at `path`.
pub fn open_source_at(
    path: PathBuf,
    source_name: &str,
    config: &serde_json::Value,
    host: StoreHost,
    timeout: Duration,
) -> Result<(LoadedPlugin, keyhold_sdk::KeySourceBox), String> {
    let (tx, rx) = mpsc::channel();
    let (source_name, config) = (source_name.to_string(), config.clone());
    std::thread::Builder::new()
        .name("keyhold-open-source".into())
        .spawn(move || {
            let opened = plugin::load(&path).and_then(|lib| {
                let source = lib.open(&source_name, &config, host.boxed())?;
                Ok((lib, source))
            });
            let _ = tx.send(opened.map_err(|e| match e {
                plugin::PluginError::Open { reason, .. } => reason.to_string(),
                other => other.to_string(),
            }));
        })
        .map_err(|e| format!("cannot start a thread: {e}"))?;
    match rx.recv_timeout(timeout) {
        Ok(r) => r,
        Err(_) => Err(format!(
            "the plugin did not open the key source within {} s",
            timeout.as_secs()
        )),
    }
}

/// Runs a future to completion from synchronous code (a blocking-pool thread of the
/// server's runtime, or no runtime at all in unit tests).
pub(super) fn run_async<T>(fut: impl std::future::Future<Output = T>) -> T {
    match tokio::runtime::Handle::try_current() {
        Ok(handle) => handle.block_on(fut),
        Err(_) => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map(|rt| rt.block_on(fut))
            .unwrap_or_else(|e| panic!("cannot build a runtime: {e}")),
    }
}

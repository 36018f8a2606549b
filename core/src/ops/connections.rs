//! Connections: AWS connections (credentials sealed at rest) and HSM connections
//! (PKCS#11 module, token label, a *reference* to the PIN), their connection tests,
//! and luna key sources opened at run time from HSM connections.

use std::{
    path::PathBuf,
    sync::{Arc, mpsc},
    time::{Duration, SystemTime},
};

use zeroize::Zeroizing;

use super::{OpError, Operations, decode, to_json};
use crate::{
    api::connections::{ConnectionTest, NewAwsConnection, NewHsmConnection},
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
}

/// How long a connection test may take.
pub const CONNECTION_TEST_TIMEOUT: Duration = Duration::from_secs(10);
/// How long opening a key source from an HSM connection may take.
const SOURCE_OPEN_TIMEOUT: Duration = Duration::from_secs(30);
/// How long the AWS connection test waits for the endpoint.
const AWS_TEST_TIMEOUT: Duration = Duration::from_secs(5);

fn in_use(what: &str, name: &str, users: &[String], kind: &str) -> OpError {
    OpError::Rule(RuleViolation {
        code: "connection_in_use",
        message: format!(
            "{what} '{name}' is still used by {kind} {}: change or delete them first",
            users.join(", ")
        ),
    })
}

fn validate_aws_text(field: &'static str, v: &str, max: usize) -> Result<(), OpError> {
    if v.is_empty() || v.len() > max || v.chars().any(char::is_control) {
        return Err(OpError::Input(format!(
            "{field} must be 1 to {max} characters without control characters"
        )));
    }
    Ok(())
}

fn validate_endpoint(url: &str) -> Result<(), OpError> {
    let uri: http::Uri = url
        .parse()
        .map_err(|e| OpError::Input(format!("endpoint_url '{url}' is not a URL: {e}")))?;
    match (uri.scheme_str(), uri.host()) {
        (Some("http" | "https"), Some(_)) => Ok(()),
        _ => Err(OpError::Input(format!(
            "endpoint_url '{url}' must be an http:// or https:// URL with a host"
        ))),
    }
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
            validate_endpoint(url)?;
        }
        let key = keys::aws_connection(&new.name);
        let record = AwsConnectionRecord {
            name: new.name.clone(),
            access_key_id: new.access_key_id,
            sealed_secret_access_key: self.master.seal(new.secret_access_key.as_bytes(), &key),
            role_arn: new.role_arn,
            endpoint_url: new.endpoint_url,
            sts_regional_endpoints: new.sts_regional_endpoints,
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
            Ok((users.map(|a| a.id).collect(), "AWS accounts"))
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

    /// Tests an AWS connection: a SigV4-signed KMS `ListKeys` call to its endpoint
    /// (the override, else `https://kms.<region>.amazonaws.com`), bounded in time.
    pub fn test_aws_connection(
        &self,
        name: &str,
        region: Option<&str>,
    ) -> Result<ConnectionTest, OpError> {
        let key = keys::aws_connection(name);
        let rec: AwsConnectionRecord = decode(&self.entry(&key, "AWS connection", name)?)?;
        let region = region.unwrap_or("us-east-1").to_string();
        model::validate_region(&region)?;
        let secret = self
            .master
            .open(&rec.sealed_secret_access_key, &key)
            .map_err(|e| OpError::Input(format!("AWS connection '{name}': {e}")))?;
        let secret = Zeroizing::new(String::from_utf8_lossy(&secret).into_owned());
        let endpoint = rec
            .endpoint_url
            .clone()
            .unwrap_or_else(|| format!("https://kms.{region}.amazonaws.com"));
        let call = aws::list_keys(
            endpoint.clone(),
            region.clone(),
            rec.access_key_id.clone(),
            secret,
        );
        let outcome = run_async(async move {
            match tokio::time::timeout(AWS_TEST_TIMEOUT, call).await {
                Ok(r) => r,
                Err(_) => Err(format!("no answer within {} s", AWS_TEST_TIMEOUT.as_secs())),
            }
        });
        let mut out = match outcome {
            Ok(()) => ConnectionTest::ready(),
            Err(reason) => ConnectionTest::failed(format!(
                "AWS KMS ListKeys at {endpoint} (region {region}): {reason}"
            )),
        };
        out.endpoint = Some(endpoint);
        Ok(out)
    }

    /// How to reach AWS KMS in `region` with AWS connection `name` (secret opened).
    /// Placeholder until the SDK client lands: no CA, no STS override.
    pub fn aws_settings(
        &self,
        name: &str,
        region: &str,
    ) -> Result<crate::aws::AwsSettings, OpError> {
        let key = keys::aws_connection(name);
        let rec: AwsConnectionRecord = decode(&self.entry(&key, "AWS connection", name)?)?;
        let secret = self
            .master
            .open(&rec.sealed_secret_access_key, &key)
            .map_err(|e| OpError::Input(format!("AWS connection '{name}': {e}")))?;
        Ok(crate::aws::AwsSettings {
            region: region.to_string(),
            access_key_id: rec.access_key_id,
            secret_access_key: Zeroizing::new(String::from_utf8_lossy(&secret).into_owned()),
            role_arn: rec.role_arn,
            endpoint_url: rec.endpoint_url,
            sts_endpoint_url: None,
            sts_regional_endpoints: rec.sts_regional_endpoints,
            ca_pem: None,
            limits: crate::aws::AwsLimits::default(),
        })
    }

    // ----- HSM connections -----

    /// Creates an HSM connection (a reference to the PIN, never the PIN).
    pub fn create_hsm_connection(
        &self,
        new: NewHsmConnection,
    ) -> Result<HsmConnectionRecord, OpError> {
        model::validate_name("HSM connection", &new.name)?;
        if new.module.is_empty() || !new.module.starts_with('/') {
            return Err(OpError::Input(
                "module must be the absolute path of the PKCS#11 library".into(),
            ));
        }
        if new.token_label.is_empty() || new.token_label.len() > 32 {
            return Err(OpError::Input(
                "token_label must be 1 to 32 characters (a PKCS#11 token label)".into(),
            ));
        }
        match (&new.pin_env, &new.pin_file) {
            (Some(_), Some(_)) | (None, None) => {
                return Err(OpError::Input(
                    "set exactly one of pin_env (a variable name) and pin_file (a path): \
                     the PIN itself is never stored"
                        .into(),
                ));
            }
            (Some(v), None) if v.is_empty() || v.contains('=') => {
                return Err(OpError::Input(format!(
                    "pin_env '{v}' is not an environment variable name"
                )));
            }
            (None, Some(f)) if !f.starts_with('/') => {
                return Err(OpError::Input("pin_file must be an absolute path".into()));
            }
            _ => {}
        }
        if new.pool_size == Some(0) {
            return Err(OpError::Input("pool_size must be at least 1".into()));
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
            Ok((users.map(|s| s.name).collect(), "key sources"))
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
        users: impl FnOnce() -> Result<(Vec<String>, &'static str), OpError>,
    ) -> Result<(), OpError> {
        let entry = self.entry(&key, what, name)?;
        let (users, kind) = users()?;
        if !users.is_empty() {
            return Err(in_use(what, name, &users, kind));
        }
        self.commit_read(
            &[Condition::Revision(key.clone(), entry.revision)],
            vec![Write::Delete(key)],
            what,
            name,
            entry.revision,
        )
    }

    fn plugin_settings(&self) -> Result<&PluginSettings, OpError> {
        self.plugins
            .as_ref()
            .ok_or_else(|| OpError::Input("this server cannot open key sources at run time".into()))
    }

    /// Tests an HSM connection: loads the luna plugin and opens a key source with the
    /// connection's configuration (one session), bounded in time; `Ready` with the
    /// token's model, or the plugin's reason (never the PIN).
    pub fn test_hsm_connection(&self, name: &str) -> Result<ConnectionTest, OpError> {
        let rec = self.get_hsm_connection(name)?;
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
        let handle = Arc::new(KeySourceHandle::new(
            name,
            Some(lib),
            source,
            settings.limits,
        ));
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

/// A minimal AWS KMS JSON-protocol client: one signed `ListKeys` call.
mod aws {
    use std::sync::Arc;

    use bytes::Bytes;
    use http_body_util::{BodyExt, Full};
    use hyper_util::rt::TokioIo;
    use tokio::io::{AsyncRead, AsyncWrite};
    use zeroize::Zeroizing;

    use super::SystemTime;

    const TARGET: &str = "TrentService.ListKeys";
    const CONTENT_TYPE: &str = "application/x-amz-json-1.1";

    /// Sends `ListKeys` to `endpoint`; `Ok` on HTTP 200, else the status and AWS's
    /// error type and message, or the transport error.
    pub(super) async fn list_keys(
        endpoint: String,
        region: String,
        access_key_id: String,
        secret: Zeroizing<String>,
    ) -> Result<(), String> {
        let uri: http::Uri = endpoint
            .parse()
            .map_err(|e| format!("invalid endpoint URL: {e}"))?;
        let https = match uri.scheme_str() {
            Some("https") => true,
            Some("http") => false,
            _ => return Err("the endpoint URL must be http:// or https://".into()),
        };
        let host = uri
            .host()
            .ok_or("the endpoint URL has no host")?
            .to_string();
        let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
        let authority = match uri.port_u16() {
            Some(p) => format!("{host}:{p}"),
            None => host.clone(),
        };
        let path = match uri.path() {
            "" => "/",
            p => p,
        };
        let body = b"{}".to_vec();
        let headers = sign(
            &access_key_id,
            &secret,
            &region,
            &format!(
                "{}://{authority}{path}",
                if https { "https" } else { "http" }
            ),
            &authority,
            &body,
        )?;
        let mut req = http::Request::builder()
            .method("POST")
            .uri(path)
            .header("host", &authority)
            .header("content-type", CONTENT_TYPE)
            .header("x-amz-target", TARGET);
        for (n, v) in headers {
            req = req.header(n, v);
        }
        let req = req
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| format!("cannot build the request: {e}"))?;
        let tcp = tokio::net::TcpStream::connect((host.as_str(), port))
            .await
            .map_err(|e| format!("cannot connect to {host}:{port}: {e}"))?;
        let (status, body) = if https {
            let tls = tls_connector()?;
            let name = rustls_pki_types::ServerName::try_from(host.clone())
                .map_err(|e| format!("invalid host name '{host}': {e}"))?;
            let stream = tls
                .connect(name, tcp)
                .await
                .map_err(|e| format!("TLS handshake with {host}:{port} failed: {e}"))?;
            send(stream, req).await?
        } else {
            send(tcp, req).await?
        };
        if status == 200 {
            return Ok(());
        }
        let json: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
        let kind = json["__type"]
            .as_str()
            .map(|t| t.rsplit('#').next().unwrap_or(t).to_string())
            .unwrap_or_else(|| "no AWS error type".into());
        let message = json["message"]
            .as_str()
            .or_else(|| json["Message"].as_str())
            .map(str::to_string)
            .unwrap_or_else(|| String::from_utf8_lossy(&body).chars().take(200).collect());
        Err(format!("HTTP {status}: {kind}: {message}"))
    }

    async fn send<S>(stream: S, req: http::Request<Full<Bytes>>) -> Result<(u16, Bytes), String>
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| format!("HTTP handshake failed: {e}"))?;
        let driver = tokio::spawn(async move {
            let _ = conn.await;
        });
        let resp = sender
            .send_request(req)
            .await
            .map_err(|e| format!("request failed: {e}"))?;
        let status = resp.status().as_u16();
        let body = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| format!("reading the answer failed: {e}"))?
            .to_bytes();
        driver.abort();
        Ok((status, body))
    }

    /// A TLS client trusting the system's CA bundle.
    fn tls_connector() -> Result<tokio_rustls::TlsConnector, String> {
        use rustls_pki_types::{CertificateDer, pem::PemObject};
        let mut roots = rustls::RootCertStore::empty();
        let bundle = std::env::var("SSL_CERT_FILE")
            .unwrap_or_else(|_| "/etc/ssl/certs/ca-certificates.crt".into());
        if let Ok(certs) = CertificateDer::pem_file_iter(&bundle) {
            for cert in certs.flatten() {
                let _ = roots.add(cert);
            }
        }
        let config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::aws_lc_rs::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS setup: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth();
        Ok(tokio_rustls::TlsConnector::from(Arc::new(config)))
    }

    /// The SigV4 headers (`x-amz-date`, `authorization`) for a KMS request.
    fn sign(
        access_key_id: &str,
        secret: &str,
        region: &str,
        url: &str,
        authority: &str,
        body: &[u8],
    ) -> Result<Vec<(String, String)>, String> {
        use aws_credential_types::Credentials;
        use aws_sigv4::{
            http_request::{SignableBody, SignableRequest, SigningSettings, sign},
            sign::v4::SigningParams,
        };
        use aws_smithy_runtime_api::client::identity::Identity;
        let identity: Identity =
            Credentials::new(access_key_id, secret, None, None, "keyhold-connection").into();
        let params = SigningParams::builder()
            .identity(&identity)
            .region(region)
            .name("kms")
            .time(SystemTime::now())
            .settings(SigningSettings::default())
            .build()
            .map_err(|e| format!("signing: {e}"))?
            .into();
        let headers = [
            ("host", authority),
            ("content-type", CONTENT_TYPE),
            ("x-amz-target", TARGET),
        ];
        let signable =
            SignableRequest::new("POST", url, headers.into_iter(), SignableBody::Bytes(body))
                .map_err(|e| format!("signing: {e}"))?;
        let (instructions, _) = sign(signable, &params)
            .map_err(|e| format!("signing: {e}"))?
            .into_parts();
        Ok(instructions
            .headers()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect())
    }
}

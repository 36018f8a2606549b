//! [`super::Kms`] on `aws-sdk-kms`: [`SdkKms`], and [`connect`], which builds (or reuses)
//! the client of a connection's settings.

use std::{
    collections::HashMap,
    sync::{Arc, LazyLock, Mutex},
};

use aws_sdk_kms::{
    Client,
    config::{BehaviorVersion, Credentials, Region, retry::RetryConfig, timeout::TimeoutConfig},
    error::SdkError,
    types::{
        ConnectionStateType, CustomKeyStoreType, CustomKeyStoresListEntry, KeyMetadata, OriginType,
        XksProxyAuthenticationCredentialType, XksProxyConnectivityType,
    },
};
use sha2::{Digest, Sha256};

use super::{
    AwsError, AwsErrorKind, AwsKey, AwsKeyStore, AwsLimits, AwsSettings, Kms, XksConnectivity,
    XksCredential, XksStoreSpec, XksStoreUpdate,
    credentials::{self, ConnectionCredentials},
    errors::{self, Service},
    tls,
};
use crate::model::ConnectionState;

/// Clients kept for reuse (connections and cached role credentials); beyond this many
/// distinct settings the cache starts over.
const MAX_CACHED: usize = 64;

/// Clients by the fingerprint of their settings.
static CLIENTS: LazyLock<Mutex<HashMap<[u8; 32], Arc<SdkKms>>>> =
    LazyLock::new(|| Mutex::new(HashMap::new()));

/// The client of `settings`: reused while the settings stay the same (the cache is
/// keyed by a SHA-256 fingerprint of every setting, the secret included, never by the
/// secret in clear).
pub fn connect(settings: &AwsSettings) -> Result<Arc<dyn Kms>, AwsError> {
    let key = fingerprint(settings);
    let mut clients = CLIENTS.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(c) = clients.get(&key) {
        return Ok(c.clone());
    }
    let client = Arc::new(SdkKms::new(settings)?);
    if clients.len() >= MAX_CACHED {
        clients.clear();
    }
    clients.insert(key, client.clone());
    Ok(client)
}

fn opt(v: &Option<String>) -> &[u8] {
    v.as_deref().map(str::as_bytes).unwrap_or(b"\0none")
}

/// A SHA-256 fingerprint of every field of `settings` (each length-prefixed).
fn fingerprint(s: &AwsSettings) -> [u8; 32] {
    let mut h = Sha256::new();
    let mut field = |v: &[u8]| {
        h.update((v.len() as u64).to_be_bytes());
        h.update(v);
    };
    field(s.connection.as_bytes());
    field(s.region.as_bytes());
    field(s.access_key_id.as_bytes());
    field(s.secret_access_key.as_bytes());
    field(opt(&s.role_arn));
    field(opt(&s.endpoint_url));
    field(opt(&s.sts_endpoint_url));
    field(format!("{:?}", s.sts_regional_endpoints).as_bytes());
    field(s.ca_pem.as_deref().unwrap_or(b"\0none"));
    field(format!("{:?}", s.limits).as_bytes());
    h.finalize().into()
}

/// AWS KMS through `aws-sdk-kms`, for one account (connection) and region.
#[derive(Debug)]
pub struct SdkKms {
    client: Client,
    credentials: ConnectionCredentials,
}

/// `url` checked as an `http(s)://host` endpoint URL.
fn check_url(field: &str, url: &str) -> Result<(), AwsError> {
    let ok = url
        .parse::<http::Uri>()
        .is_ok_and(|u| matches!(u.scheme_str(), Some("http" | "https")) && u.host().is_some());
    if ok {
        Ok(())
    } else {
        Err(AwsError::new(
            AwsErrorKind::Config,
            format!("the AWS connection's {field} '{url}' is not an http(s):// URL with a host"),
        ))
    }
}

fn timeouts(limits: &AwsLimits) -> TimeoutConfig {
    TimeoutConfig::builder()
        .connect_timeout(limits.connect_timeout)
        .operation_attempt_timeout(limits.attempt_timeout)
        .operation_timeout(limits.operation_timeout)
        .build()
}

fn retries(limits: &AwsLimits) -> RetryConfig {
    RetryConfig::standard().with_max_attempts(limits.max_attempts.max(1))
}

impl SdkKms {
    /// A client for `settings` (prefer [`connect`], which reuses clients).
    pub fn new(s: &AwsSettings) -> Result<SdkKms, AwsError> {
        if let Some(url) = &s.endpoint_url {
            check_url("endpoint_url", url)?;
        }
        if let Some(url) = &s.sts_endpoint_url {
            check_url("sts_endpoint_url", url)?;
        }
        let http = tls::http_client(s.ca_pem.as_deref())?;
        let keys = Credentials::new(
            &s.access_key_id,
            s.secret_access_key.as_str(),
            None,
            None,
            "keyhold-connection",
        );
        let credentials = match &s.role_arn {
            None => ConnectionCredentials::fixed(keys),
            Some(role_arn) => {
                let (url, signing_region) = credentials::sts_endpoint(
                    s.sts_endpoint_url.as_deref(),
                    s.sts_regional_endpoints,
                    &s.region,
                );
                let conf = aws_sdk_sts::Config::builder()
                    .behavior_version(aws_sdk_sts::config::BehaviorVersion::latest())
                    .region(aws_sdk_sts::config::Region::new(signing_region))
                    .endpoint_url(url)
                    .credentials_provider(keys.clone())
                    .http_client(http.clone())
                    .timeout_config(timeouts(&s.limits))
                    .retry_config(retries(&s.limits))
                    .build();
                ConnectionCredentials::role(
                    keys,
                    aws_sdk_sts::Client::from_conf(conf),
                    role_arn.clone(),
                    credentials::session_name(&s.connection),
                )
            }
        };
        let mut conf = aws_sdk_kms::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(s.region.clone()))
            .credentials_provider(credentials.clone())
            .http_client(http)
            .timeout_config(timeouts(&s.limits))
            .retry_config(retries(&s.limits));
        if let Some(url) = &s.endpoint_url {
            conf = conf.endpoint_url(url);
        }
        Ok(SdkKms {
            client: Client::from_conf(conf.build()),
            credentials,
        })
    }

    /// Resolves the credentials first (assuming the role when needed), so that a
    /// refused role is reported as such rather than as a failed KMS call.
    async fn ready(&self) -> Result<(), AwsError> {
        self.credentials.resolve().await.map(|_| ())
    }
}

/// A KMS error of `op`.
fn kms_err<E, R>(op: &'static str) -> impl FnOnce(SdkError<E, R>) -> AwsError
where
    E: aws_sdk_kms::error::ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug,
{
    move |e| errors::from_sdk(Service::Kms, op, e)
}

/// An answer lacking what AWS KMS always sends.
fn incomplete(op: &str, what: &str) -> AwsError {
    AwsError::new(
        AwsErrorKind::Service,
        format!("AWS KMS {op} answered without {what}; check that the endpoint is AWS KMS"),
    )
}

fn connectivity(c: &XksConnectivity) -> (XksProxyConnectivityType, Option<String>) {
    match c {
        XksConnectivity::Public => (XksProxyConnectivityType::PublicEndpoint, None),
        XksConnectivity::Vpc { service_name } => (
            XksProxyConnectivityType::VpcEndpointService,
            Some(service_name.clone()),
        ),
    }
}

fn credential(
    op: &str,
    c: &XksCredential,
) -> Result<XksProxyAuthenticationCredentialType, AwsError> {
    XksProxyAuthenticationCredentialType::builder()
        .access_key_id(&c.access_key_id)
        .raw_secret_access_key(c.secret.as_str())
        .build()
        .map_err(|e| {
            AwsError::new(
                AwsErrorKind::Config,
                format!("AWS KMS {op}: incomplete XKS proxy credential: {e}"),
            )
        })
}

/// AWS KMS's `ConnectionState` name as a [`ConnectionState`] (unknown names: `FAILED`).
pub fn connection_state(name: &str) -> ConnectionState {
    match name {
        "CONNECTED" => ConnectionState::Connected,
        "CONNECTING" => ConnectionState::Connecting,
        "DISCONNECTED" => ConnectionState::Disconnected,
        "DISCONNECTING" => ConnectionState::Disconnecting,
        _ => ConnectionState::Failed,
    }
}

fn key_store(e: &CustomKeyStoresListEntry) -> AwsKeyStore {
    let xks = e.xks_proxy_configuration();
    let connectivity = match xks.and_then(|x| x.connectivity()) {
        Some(XksProxyConnectivityType::VpcEndpointService) => XksConnectivity::Vpc {
            service_name: xks
                .and_then(|x| x.vpc_endpoint_service_name())
                .unwrap_or_default()
                .to_string(),
        },
        _ => XksConnectivity::Public,
    };
    AwsKeyStore {
        id: e.custom_key_store_id().unwrap_or_default().to_string(),
        name: e.custom_key_store_name().unwrap_or_default().to_string(),
        connection_state: e
            .connection_state()
            .map(ConnectionStateType::as_str)
            .map(connection_state)
            .unwrap_or(ConnectionState::Disconnected),
        connection_error_code: e.connection_error_code().map(|c| c.as_str().to_string()),
        uri_endpoint: xks
            .and_then(|x| x.uri_endpoint())
            .unwrap_or_default()
            .to_string(),
        uri_path: xks
            .and_then(|x| x.uri_path())
            .unwrap_or_default()
            .to_string(),
        connectivity,
        access_key_id: xks.and_then(|x| x.access_key_id()).map(str::to_string),
    }
}

fn key(m: &KeyMetadata) -> AwsKey {
    AwsKey {
        key_id: m.key_id().to_string(),
        arn: m.arn().unwrap_or_default().to_string(),
        key_state: m
            .key_state()
            .map(|s| s.as_str().to_string())
            .unwrap_or_default(),
        custom_key_store_id: m.custom_key_store_id().map(str::to_string),
        xks_key_id: m
            .xks_key_configuration()
            .and_then(|x| x.id())
            .map(str::to_string),
    }
}

impl SdkKms {
    /// Every page of `DescribeCustomKeyStores` (of store `id` when given).
    async fn describe_stores(&self, id: Option<&str>) -> Result<Vec<AwsKeyStore>, AwsError> {
        const OP: &str = "DescribeCustomKeyStores";
        self.ready().await?;
        let stores = self
            .client
            .describe_custom_key_stores()
            .set_custom_key_store_id(id.map(str::to_string))
            .into_paginator()
            .items()
            .send()
            .try_collect()
            .await
            .map_err(kms_err(OP))?;
        Ok(stores
            .iter()
            .filter(|e| e.custom_key_store_type() == Some(&CustomKeyStoreType::ExternalKeyStore))
            .map(key_store)
            .collect())
    }
}

/// Calls the custom key store operation `$method` (AWS name `$op`) on store `$id`,
/// which answers nothing but success or an error.
macro_rules! store_call {
    ($self:ident, $method:ident, $op:literal, $id:expr) => {{
        $self.ready().await?;
        $self
            .client
            .$method()
            .custom_key_store_id($id)
            .send()
            .await
            .map_err(kms_err($op))?;
        Ok(())
    }};
}

#[async_trait::async_trait]
impl Kms for SdkKms {
    async fn probe(&self) -> Result<(), AwsError> {
        self.ready().await?;
        self.client
            .list_keys()
            .limit(1)
            .send()
            .await
            .map_err(kms_err("ListKeys"))?;
        Ok(())
    }

    async fn create_xks_store(&self, spec: &XksStoreSpec) -> Result<String, AwsError> {
        const OP: &str = "CreateCustomKeyStore";
        self.ready().await?;
        let (connectivity, service) = connectivity(&spec.connectivity);
        let out = self
            .client
            .create_custom_key_store()
            .custom_key_store_name(&spec.name)
            .custom_key_store_type(CustomKeyStoreType::ExternalKeyStore)
            .xks_proxy_uri_endpoint(&spec.uri_endpoint)
            .xks_proxy_uri_path(&spec.uri_path)
            .xks_proxy_connectivity(connectivity)
            .set_xks_proxy_vpc_endpoint_service_name(service)
            .xks_proxy_authentication_credential(credential(OP, &spec.credential)?)
            .send()
            .await
            .map_err(kms_err(OP))?;
        out.custom_key_store_id()
            .map(str::to_string)
            .ok_or_else(|| incomplete(OP, "CustomKeyStoreId"))
    }

    async fn list_xks_stores(&self) -> Result<Vec<AwsKeyStore>, AwsError> {
        self.describe_stores(None).await
    }

    async fn describe_xks_store(&self, id: &str) -> Result<AwsKeyStore, AwsError> {
        let mut stores = self.describe_stores(Some(id)).await?;
        match stores.pop() {
            Some(s) => Ok(s),
            None => Err(errors::answered(
                Service::Kms,
                "DescribeCustomKeyStores",
                "CustomKeyStoreNotFoundException",
                Some(&format!("{id} is not an external key store")),
            )),
        }
    }

    async fn update_xks_store(&self, id: &str, update: &XksStoreUpdate) -> Result<(), AwsError> {
        const OP: &str = "UpdateCustomKeyStore";
        self.ready().await?;
        let (connectivity, service) = match &update.connectivity {
            Some(c) => {
                let (c, s) = connectivity(c);
                (Some(c), s)
            }
            None => (None, None),
        };
        let credential = match &update.credential {
            Some(c) => Some(credential(OP, c)?),
            None => None,
        };
        self.client
            .update_custom_key_store()
            .custom_key_store_id(id)
            .set_new_custom_key_store_name(update.name.clone())
            .set_xks_proxy_uri_endpoint(update.uri_endpoint.clone())
            .set_xks_proxy_uri_path(update.uri_path.clone())
            .set_xks_proxy_connectivity(connectivity)
            .set_xks_proxy_vpc_endpoint_service_name(service)
            .set_xks_proxy_authentication_credential(credential)
            .send()
            .await
            .map_err(kms_err(OP))?;
        Ok(())
    }

    async fn connect_store(&self, id: &str) -> Result<(), AwsError> {
        store_call!(self, connect_custom_key_store, "ConnectCustomKeyStore", id)
    }

    async fn disconnect_store(&self, id: &str) -> Result<(), AwsError> {
        store_call!(
            self,
            disconnect_custom_key_store,
            "DisconnectCustomKeyStore",
            id
        )
    }

    async fn delete_store(&self, id: &str) -> Result<(), AwsError> {
        store_call!(self, delete_custom_key_store, "DeleteCustomKeyStore", id)
    }

    async fn create_xks_key(
        &self,
        store_id: &str,
        xks_key_id: &str,
        description: &str,
    ) -> Result<AwsKey, AwsError> {
        const OP: &str = "CreateKey";
        self.ready().await?;
        let out = self
            .client
            .create_key()
            .origin(OriginType::ExternalKeyStore)
            .custom_key_store_id(store_id)
            .xks_key_id(xks_key_id)
            .description(description)
            .send()
            .await
            .map_err(kms_err(OP))?;
        out.key_metadata()
            .map(key)
            .ok_or_else(|| incomplete(OP, "KeyMetadata"))
    }

    async fn list_key_ids(&self) -> Result<Vec<String>, AwsError> {
        const OP: &str = "ListKeys";
        self.ready().await?;
        let keys = self
            .client
            .list_keys()
            .into_paginator()
            .items()
            .send()
            .try_collect()
            .await
            .map_err(kms_err(OP))?;
        Ok(keys
            .iter()
            .filter_map(|k| k.key_id())
            .map(str::to_string)
            .collect())
    }

    async fn describe_key(&self, key_id: &str) -> Result<AwsKey, AwsError> {
        const OP: &str = "DescribeKey";
        self.ready().await?;
        let out = self
            .client
            .describe_key()
            .key_id(key_id)
            .send()
            .await
            .map_err(kms_err(OP))?;
        out.key_metadata()
            .map(key)
            .ok_or_else(|| incomplete(OP, "KeyMetadata"))
    }

    async fn schedule_key_deletion(&self, key_id: &str, pending_days: i32) -> Result<(), AwsError> {
        self.ready().await?;
        self.client
            .schedule_key_deletion()
            .key_id(key_id)
            .pending_window_in_days(pending_days)
            .send()
            .await
            .map_err(kms_err("ScheduleKeyDeletion"))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests;

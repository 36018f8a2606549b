//! AWS KMS as keyhold drives it: the [`Kms`] trait (what managing linked key stores
//! needs of AWS KMS), the shapes it speaks in, and [`AwsError`], every way a call can
//! fail, with what to do about it. [`sdk`] implements it with `aws-sdk-kms` (and
//! `aws-sdk-sts` for assumed roles); [`connect`] gives the client of a connection.

use std::time::Duration;

use zeroize::Zeroizing;

use crate::model::{ConnectionState, StsRegionalEndpoints};

pub mod sdk;

pub use sdk::connect;

/// How to reach AWS KMS for one account and region: the AWS connection's settings with
/// its secret opened.
#[derive(Clone)]
pub struct AwsSettings {
    /// The region whose KMS is called (the store's region).
    pub region: String,
    /// The IAM access key id of the connection.
    pub access_key_id: String,
    /// Its secret access key.
    pub secret_access_key: Zeroizing<String>,
    /// A role assumed (through STS) with those credentials.
    pub role_arn: Option<String>,
    /// KMS endpoint override (else `https://kms.<region>.amazonaws.com`).
    pub endpoint_url: Option<String>,
    /// STS endpoint override (else chosen by `sts_regional_endpoints`).
    pub sts_endpoint_url: Option<String>,
    /// Regional or global STS endpoint.
    pub sts_regional_endpoints: StsRegionalEndpoints,
    /// Extra CA certificates (PEM) trusted for the endpoints (a private CA, an
    /// emulator); none: the public web PKI.
    pub ca_pem: Option<Vec<u8>>,
    /// Time limits and retries.
    pub limits: AwsLimits,
}

impl std::fmt::Debug for AwsSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AwsSettings")
            .field("region", &self.region)
            .field("access_key_id", &self.access_key_id)
            .field("role_arn", &self.role_arn)
            .field("endpoint_url", &self.endpoint_url)
            .field("sts_endpoint_url", &self.sts_endpoint_url)
            .field("sts_regional_endpoints", &self.sts_regional_endpoints)
            .finish_non_exhaustive()
    }
}

/// Time limits and retries of AWS calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AwsLimits {
    /// TCP + TLS connect.
    pub connect_timeout: Duration,
    /// One attempt of a call.
    pub attempt_timeout: Duration,
    /// A whole call, retries included.
    pub operation_timeout: Duration,
    /// Attempts per call (1 = no retry); throttling and transient errors are retried
    /// with backoff.
    pub max_attempts: u32,
}

impl Default for AwsLimits {
    fn default() -> Self {
        AwsLimits {
            connect_timeout: Duration::from_secs(3),
            attempt_timeout: Duration::from_secs(10),
            operation_timeout: Duration::from_secs(30),
            max_attempts: 4,
        }
    }
}

/// How AWS KMS reaches an external key store's proxy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum XksConnectivity {
    /// A public endpoint (`PUBLIC_ENDPOINT`).
    Public,
    /// A VPC endpoint service (`VPC_ENDPOINT_SERVICE`).
    Vpc {
        /// The VPC endpoint service name.
        service_name: String,
    },
}

/// An XKS proxy authentication credential sent to AWS KMS.
#[derive(Clone)]
pub struct XksCredential {
    /// Access key id.
    pub access_key_id: String,
    /// Raw secret access key.
    pub secret: Zeroizing<String>,
}

impl std::fmt::Debug for XksCredential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("XksCredential")
            .field("access_key_id", &self.access_key_id)
            .finish_non_exhaustive()
    }
}

/// `CreateCustomKeyStore` of an external key store.
#[derive(Debug, Clone)]
pub struct XksStoreSpec {
    /// `CustomKeyStoreName`.
    pub name: String,
    /// `XksProxyUriEndpoint` (`https://host[:port]`).
    pub uri_endpoint: String,
    /// `XksProxyUriPath` (`/<prefix>/kms/xks/v1`).
    pub uri_path: String,
    /// `XksProxyConnectivity` (+ service name).
    pub connectivity: XksConnectivity,
    /// `XksProxyAuthenticationCredential`.
    pub credential: XksCredential,
}

/// `UpdateCustomKeyStore` of an external key store: absent fields stay.
#[derive(Debug, Clone, Default)]
pub struct XksStoreUpdate {
    /// `NewCustomKeyStoreName`.
    pub name: Option<String>,
    /// `XksProxyUriEndpoint`.
    pub uri_endpoint: Option<String>,
    /// `XksProxyUriPath`.
    pub uri_path: Option<String>,
    /// `XksProxyConnectivity` (+ service name).
    pub connectivity: Option<XksConnectivity>,
    /// `XksProxyAuthenticationCredential`.
    pub credential: Option<XksCredential>,
}

/// An external key store as AWS KMS describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AwsKeyStore {
    /// `CustomKeyStoreId` (`cks-...`).
    pub id: String,
    /// `CustomKeyStoreName`.
    pub name: String,
    /// `ConnectionState`.
    pub connection_state: ConnectionState,
    /// `ConnectionErrorCode` (when `FAILED`, or the last failure).
    pub connection_error_code: Option<String>,
    /// `XksProxyConfiguration.UriEndpoint`.
    pub uri_endpoint: String,
    /// `XksProxyConfiguration.UriPath`.
    pub uri_path: String,
    /// `XksProxyConfiguration.Connectivity` (+ service name).
    pub connectivity: XksConnectivity,
    /// `XksProxyConfiguration.AccessKeyId`: the credential AWS KMS signs with.
    pub access_key_id: Option<String>,
}

/// A KMS key as AWS KMS describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AwsKey {
    /// `KeyId` (a UUID).
    pub key_id: String,
    /// `Arn`.
    pub arn: String,
    /// `KeyState`, e.g. `Enabled`, `PendingDeletion`, `Unavailable`.
    pub key_state: String,
    /// `CustomKeyStoreId`, when in a custom key store.
    pub custom_key_store_id: Option<String>,
    /// `XksKeyConfiguration.Id`: the external key id, when in an external key store.
    pub xks_key_id: Option<String>,
}

/// What managing linked stores needs of AWS KMS: one method per KMS API operation used
/// (paged operations answer every page). Implemented by [`sdk::SdkKms`].
#[async_trait::async_trait]
pub trait Kms: Send + Sync {
    /// A cheap authenticated call (`ListKeys` of one key): the connection test.
    async fn probe(&self) -> Result<(), AwsError>;
    /// `CreateCustomKeyStore` (`EXTERNAL_KEY_STORE`); the new store's id.
    async fn create_xks_store(&self, spec: &XksStoreSpec) -> Result<String, AwsError>;
    /// `DescribeCustomKeyStores`, every external key store of the account and region.
    async fn list_xks_stores(&self) -> Result<Vec<AwsKeyStore>, AwsError>;
    /// `DescribeCustomKeyStores` of one store.
    async fn describe_xks_store(&self, id: &str) -> Result<AwsKeyStore, AwsError>;
    /// `UpdateCustomKeyStore`.
    async fn update_xks_store(&self, id: &str, update: &XksStoreUpdate) -> Result<(), AwsError>;
    /// `ConnectCustomKeyStore` (answers at once; the state goes through `CONNECTING`).
    async fn connect_store(&self, id: &str) -> Result<(), AwsError>;
    /// `DisconnectCustomKeyStore` (answers at once; through `DISCONNECTING`).
    async fn disconnect_store(&self, id: &str) -> Result<(), AwsError>;
    /// `DeleteCustomKeyStore`.
    async fn delete_store(&self, id: &str) -> Result<(), AwsError>;
    /// `CreateKey` with `Origin=EXTERNAL_KEY_STORE` in store `store_id` for external
    /// key `xks_key_id`.
    async fn create_xks_key(
        &self,
        store_id: &str,
        xks_key_id: &str,
        description: &str,
    ) -> Result<AwsKey, AwsError>;
    /// `ListKeys`: the id of every KMS key of the account and region.
    async fn list_key_ids(&self) -> Result<Vec<String>, AwsError>;
    /// `DescribeKey`.
    async fn describe_key(&self, key_id: &str) -> Result<AwsKey, AwsError>;
    /// `ScheduleKeyDeletion` after `pending_days` (7..=30).
    async fn schedule_key_deletion(&self, key_id: &str, pending_days: i32) -> Result<(), AwsError>;
}

/// How an AWS call failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AwsErrorKind {
    /// AWS answered with an error code (see [`AwsError::code`]).
    Service,
    /// AWS kept throttling after every retry.
    Throttled,
    /// No answer in time.
    Timeout,
    /// The endpoint could not be reached (DNS, TCP, TLS).
    Unreachable,
    /// No usable credentials: refused keys, or a role that could not be assumed.
    Credentials,
    /// The settings cannot work (e.g. an invalid endpoint URL or CA file).
    Config,
}

/// A failed AWS call: its kind, AWS's error code when AWS answered, and a message that
/// says what happened and what to do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct AwsError {
    /// How it failed.
    pub kind: AwsErrorKind,
    /// AWS's error code (e.g. `CustomKeyStoreInvalidStateException`), when AWS answered.
    pub code: Option<String>,
    /// What happened and what to do.
    pub message: String,
}

impl AwsError {
    /// An error of `kind` with no AWS error code.
    pub fn new(kind: AwsErrorKind, message: impl Into<String>) -> AwsError {
        AwsError {
            kind,
            code: None,
            message: message.into(),
        }
    }

    /// An error AWS answered with `code`.
    pub fn service(code: impl Into<String>, message: impl Into<String>) -> AwsError {
        AwsError {
            kind: AwsErrorKind::Service,
            code: Some(code.into()),
            message: message.into(),
        }
    }

    /// Whether AWS answered with `code`.
    pub fn is(&self, code: &str) -> bool {
        self.code.as_deref() == Some(code)
    }

    /// The admin API's stable error code for it.
    pub fn api_code(&self) -> &'static str {
        match self.kind {
            AwsErrorKind::Service => "aws_error",
            AwsErrorKind::Throttled => "aws_throttled",
            AwsErrorKind::Timeout => "aws_timeout",
            AwsErrorKind::Unreachable => "aws_unreachable",
            AwsErrorKind::Credentials => "aws_credentials",
            AwsErrorKind::Config => "aws_config",
        }
    }

    /// The admin API's HTTP status for it.
    pub fn http_status(&self) -> u16 {
        match self.kind {
            AwsErrorKind::Service => match self.code.as_deref().unwrap_or("") {
                c if c.ends_with("NotFoundException") => 404,
                c if c.ends_with("InUseException")
                    || c.ends_with("InvalidStateException")
                    || c == "CustomKeyStoreHasCMKsException"
                    || c == "XksKeyAlreadyInUseException" =>
                {
                    409
                }
                "ValidationException" => 400,
                _ => 502,
            },
            AwsErrorKind::Throttled => 503,
            AwsErrorKind::Timeout => 504,
            AwsErrorKind::Unreachable | AwsErrorKind::Credentials => 502,
            AwsErrorKind::Config => 400,
        }
    }
}

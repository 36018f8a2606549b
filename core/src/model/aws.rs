//! The AWS side of the domain: a linked store's AWS external key store ([`AwsLink`] and
//! its [`ConnectionState`]), a linked HYOK key's KMS key ([`KmsKeyLink`]), and the AWS
//! connections keyhold reaches AWS KMS with ([`AwsConnectionRecord`]).

use serde::{Deserialize, Serialize};

/// The AWS external key store a linked store corresponds to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AwsLink {
    /// The AWS custom key store id (`cks-...`).
    pub custom_key_store_id: String,
    /// Its connection state as last seen.
    pub connection_state: ConnectionState,
    /// AWS's `ConnectionErrorCode` as last seen (why it is `FAILED`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connection_error_code: Option<String>,
}

impl AwsLink {
    /// A link to AWS store `custom_key_store_id` in `state`, without error code.
    pub fn new(custom_key_store_id: impl Into<String>, state: ConnectionState) -> AwsLink {
        AwsLink {
            custom_key_store_id: custom_key_store_id.into(),
            connection_state: state,
            connection_error_code: None,
        }
    }
}

/// The AWS KMS key a linked HYOK key corresponds to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct KmsKeyLink {
    /// The KMS key id (a UUID).
    pub key_id: String,
    /// The KMS key ARN.
    pub key_arn: String,
}

/// AWS KMS's connection state of an external key store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ConnectionState {
    /// Connected.
    Connected,
    /// Connecting (transient).
    Connecting,
    /// Disconnected.
    Disconnected,
    /// Disconnecting (transient).
    Disconnecting,
    /// The last connection attempt failed.
    Failed,
}

impl ConnectionState {
    /// The AWS name, e.g. `CONNECTED`.
    pub fn as_str(self) -> &'static str {
        match self {
            ConnectionState::Connected => "CONNECTED",
            ConnectionState::Connecting => "CONNECTING",
            ConnectionState::Disconnected => "DISCONNECTED",
            ConnectionState::Disconnecting => "DISCONNECTING",
            ConnectionState::Failed => "FAILED",
        }
    }
}

/// How an AWS connection reaches AWS STS.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum StsRegionalEndpoints {
    /// The region's own STS endpoint (AWS's recommendation).
    #[default]
    Regional,
    /// The global `sts.amazonaws.com` endpoint.
    Legacy,
}

/// An AWS connection: credentials (the secret sealed at rest) or a role, and how to
/// reach AWS. The secret is never returned by the API.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AwsConnectionRecord {
    /// Unique name.
    pub name: String,
    /// The IAM access key id.
    pub access_key_id: String,
    /// The secret access key, sealed under the master key with this record's store
    /// key as context (see [`crate::secrets::MasterKey::seal`]).
    pub sealed_secret_access_key: String,
    /// A role to assume with these credentials.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role_arn: Option<String>,
    /// An endpoint override (e.g. a VPC endpoint or a test double) instead of
    /// `https://kms.<region>.amazonaws.com`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint_url: Option<String>,
    /// STS regional endpoints setting (when `sts_endpoint_url` is not set).
    #[serde(default)]
    pub sts_regional_endpoints: StsRegionalEndpoints,
    /// An STS endpoint override (assumed roles) instead of the one
    /// `sts_regional_endpoints` chooses.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sts_endpoint_url: Option<String>,
    /// Absolute path of a PEM bundle of CA certificates trusted (alone) for the
    /// endpoints, instead of the platform's roots; read at each use.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<String>,
    /// Creation time, Unix seconds.
    pub created_at: i64,
}

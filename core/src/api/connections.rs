//! AWS and HSM connections: `/api/v1/connections/aws`, `/api/v1/connections/hsm`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use zeroize::Zeroizing;

use crate::model::AwsConnectionRecord;
pub use crate::model::{HsmConnectionRecord as HsmConnection, StsRegionalEndpoints};

/// `POST /api/v1/connections/aws` body.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewAwsConnection {
    /// Unique name.
    pub name: String,
    /// The IAM access key id.
    pub access_key_id: String,
    /// The secret access key: sealed at rest, never returned.
    #[schema(value_type = String)]
    pub secret_access_key: Zeroizing<String>,
    /// A role to assume with these credentials.
    pub role_arn: Option<String>,
    /// An endpoint override instead of `https://kms.<region>.amazonaws.com`.
    pub endpoint_url: Option<String>,
    /// How STS is reached (assumed roles): the region's endpoint
    /// `https://sts.<region>.amazonaws.com` (`regional`) or the global
    /// `https://sts.amazonaws.com` (`legacy`), unless `sts_endpoint_url` is set.
    #[serde(default)]
    pub sts_regional_endpoints: StsRegionalEndpoints,
    /// An STS endpoint override (assumed roles).
    #[serde(default)]
    pub sts_endpoint_url: Option<String>,
    /// Absolute path, on the server, of a PEM bundle of CA certificates trusted alone
    /// for the endpoints (a private CA, an emulator) instead of the platform's roots.
    #[serde(default)]
    pub ca_file: Option<String>,
}

/// An AWS connection as the API shows it: never the secret, sealed or not.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AwsConnection {
    /// Unique name.
    pub name: String,
    /// The IAM access key id.
    pub access_key_id: String,
    /// A role to assume.
    pub role_arn: Option<String>,
    /// The endpoint override.
    pub endpoint_url: Option<String>,
    /// How STS is reached.
    pub sts_regional_endpoints: StsRegionalEndpoints,
    /// The STS endpoint override.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sts_endpoint_url: Option<String>,
    /// The CA bundle trusted for the endpoints.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<String>,
    /// Creation time, Unix seconds.
    pub created_at: i64,
}

impl From<&AwsConnectionRecord> for AwsConnection {
    fn from(c: &AwsConnectionRecord) -> Self {
        AwsConnection {
            name: c.name.clone(),
            access_key_id: c.access_key_id.clone(),
            role_arn: c.role_arn.clone(),
            endpoint_url: c.endpoint_url.clone(),
            sts_regional_endpoints: c.sts_regional_endpoints,
            sts_endpoint_url: c.sts_endpoint_url.clone(),
            ca_file: c.ca_file.clone(),
            created_at: c.created_at,
        }
    }
}

/// `POST /api/v1/connections/aws/{name}/test` body.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AwsConnectionTest {
    /// The region whose KMS endpoint is called (default `us-east-1`).
    pub region: Option<String>,
}

/// `POST /api/v1/connections/hsm` body. The PIN is referenced, never sent.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewHsmConnection {
    /// Unique name.
    pub name: String,
    /// Path of the PKCS#11 module.
    pub module: String,
    /// Label of the token (partition).
    pub token_label: String,
    /// Environment variable holding the PIN.
    pub pin_env: Option<String>,
    /// File holding the PIN.
    pub pin_file: Option<String>,
    /// Environment for the module (e.g. SoftHSM2's `SOFTHSM2_CONF`).
    #[serde(default)]
    pub module_env: BTreeMap<String, String>,
    /// Pooled sessions of a key source made from it.
    pub pool_size: Option<u32>,
    /// Session wait bound, milliseconds.
    pub op_timeout_ms: Option<u64>,
}

/// `PATCH /api/v1/connections/hsm/{name}` body: the fields to change (all optional).
/// The changed connection is tested before it is saved.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HsmConnectionPatch {
    /// Path of the PKCS#11 module (absolute).
    #[serde(default)]
    pub module: Option<String>,
    /// Not patchable (a key source's binding): a different label is refused with 422
    /// `token_label_immutable`; the current one is accepted as no change.
    #[serde(default)]
    pub token_label: Option<String>,
    /// Environment variable holding the PIN (clears `pin_file`).
    #[serde(default)]
    pub pin_env: Option<String>,
    /// Absolute path of a file holding the PIN (clears `pin_env`).
    #[serde(default)]
    pub pin_file: Option<String>,
    /// Environment for the module; replaces the whole map (`{}` clears it).
    #[serde(default)]
    pub module_env: Option<BTreeMap<String, String>>,
    /// Pooled sessions of a key source made from it (at least 1).
    #[serde(default)]
    pub pool_size: Option<u32>,
    /// Session wait bound, milliseconds (at least 1).
    #[serde(default)]
    pub op_timeout_ms: Option<u64>,
}

impl HsmConnectionPatch {
    /// The names of the fields this patch sets (for the audit record).
    pub fn fields(&self) -> Vec<&'static str> {
        [
            ("module", self.module.is_some()),
            ("token_label", self.token_label.is_some()),
            ("pin_env", self.pin_env.is_some()),
            ("pin_file", self.pin_file.is_some()),
            ("module_env", self.module_env.is_some()),
            ("pool_size", self.pool_size.is_some()),
            ("op_timeout_ms", self.op_timeout_ms.is_some()),
        ]
        .into_iter()
        .filter_map(|(name, set)| set.then_some(name))
        .collect()
    }
}

/// Whether a connection test reached its target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub enum TestStatus {
    /// Reached and usable.
    Ready,
    /// Not usable: see the reason.
    Failed,
}

/// The outcome of a connection test: `Ready`, or `Failed` with the reason.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ConnectionTest {
    /// `Ready` or `Failed`.
    pub status: TestStatus,
    /// Why it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The HSM's model (HSM connections that are ready).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// The endpoint tried (AWS connections).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
}

impl ConnectionTest {
    /// A test that succeeded.
    pub fn ready() -> ConnectionTest {
        ConnectionTest {
            status: TestStatus::Ready,
            reason: None,
            model: None,
            endpoint: None,
        }
    }

    /// A test that failed for `reason`.
    pub fn failed(reason: impl Into<String>) -> ConnectionTest {
        ConnectionTest {
            status: TestStatus::Failed,
            reason: Some(reason.into()),
            model: None,
            endpoint: None,
        }
    }
}

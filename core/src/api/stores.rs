//! External key stores: `/api/v1/stores`.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

pub use crate::model::{
    AwsLink, ConnectionState, CredentialsFile, Quota, StoreKind, StoreRecord, XksLocation,
};
use crate::{model, ops::Versioned};

/// `POST /api/v1/stores` body: an unlinked key store.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewStore {
    /// Unique name.
    pub name: String,
    /// The AWS account it belongs to (none: only admins manage it).
    pub account: Option<String>,
    /// Key source name (fixed forever).
    pub source: String,
    /// URI path prefix; generated (`keystores/<id>`) when absent.
    pub uri_path_prefix: Option<String>,
    /// A key of the source that the plugin accepts as health-check key.
    pub health_check_key: String,
    /// 2..=20, default 20.
    #[schema(minimum = 2, maximum = 20)]
    pub max_credentials: Option<u32>,
    /// Where AWS reaches the store.
    #[serde(default)]
    pub location: XksLocation,
    /// Audit successful crypto operations.
    #[serde(default)]
    pub success_audit: bool,
    /// Require mutual TLS.
    #[serde(default)]
    pub mtls: bool,
    /// PEM CA bundle client certificates must chain to (default: the XKS listener's
    /// `xks.tls.client_ca_file`).
    #[serde(default)]
    pub mtls_ca_pem: Option<String>,
    /// Accepted client certificate subject CNs (default: the listener's
    /// `xks.tls.client_cn`, else `cks.kms.<region>.amazonaws.com`).
    #[serde(default)]
    pub mtls_cns: Vec<String>,
    /// The AWS region (one of the account's regions); required for a linked store.
    #[serde(default)]
    pub region: Option<String>,
    /// Also create the external key store on AWS KMS (needs account, region and
    /// location); AWS KMS first checks that it reaches this proxy.
    #[serde(default)]
    pub linked: bool,
    /// A credential rotation schedule assigned once the store is linked (needs
    /// `linked`); the answer's `rotation` shows it with its next run.
    #[serde(default)]
    pub rotation_schedule: Option<String>,
}

/// `PATCH /api/v1/stores/{id}` body: absent fields stay as they are; `source` and
/// `container` may only repeat the current values.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StorePatch {
    /// New name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// New XKS location.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub location: Option<XksLocation>,
    /// New health-check key.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub health_check_key: Option<String>,
    /// New max credentials (2..=20).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_credentials: Option<u32>,
    /// Success-audit toggle.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub success_audit: Option<bool>,
    /// mTLS toggle.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mtls: Option<bool>,
    /// New client CA bundle (PEM); `""` removes it (the listener's CA applies).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mtls_ca_pem: Option<String>,
    /// New accepted client CNs; `[]` removes them (the defaults apply).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mtls_cns: Option<Vec<String>>,
    /// Must equal the current source if given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// Must equal the current container if given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub container: Option<String>,
    /// The AWS region (one of the account's regions; fixed once linked).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
}

impl StorePatch {
    /// The names of the fields the patch sets (for the audit record).
    pub fn fields(&self) -> Vec<&'static str> {
        [
            ("name", self.name.is_some()),
            ("location", self.location.is_some()),
            ("health_check_key", self.health_check_key.is_some()),
            ("max_credentials", self.max_credentials.is_some()),
            ("success_audit", self.success_audit.is_some()),
            ("mtls", self.mtls.is_some()),
            ("mtls_ca_pem", self.mtls_ca_pem.is_some()),
            ("mtls_cns", self.mtls_cns.is_some()),
            ("source", self.source.is_some()),
            ("container", self.container.is_some()),
            ("region", self.region.is_some()),
        ]
        .into_iter()
        .filter(|(_, set)| *set)
        .map(|(n, _)| n)
        .collect()
    }
}

/// A key store as the API shows it; its `version` is also the response's `ETag`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Store {
    /// The stored record.
    #[serde(flatten)]
    pub record: StoreRecord,
    /// Its version (send it back in `If-Match`).
    pub version: u64,
    /// The AWS account it belongs to.
    pub account: Option<String>,
    /// Its `XksProxyUriPath`.
    pub xks_uri_path: String,
    /// Its load-balancer health-check path.
    pub health_check_path: String,
}

impl Store {
    /// The view of `store`, which belongs to `account`.
    pub fn new(store: Versioned<StoreRecord>, account: Option<String>) -> Store {
        Store {
            xks_uri_path: store.value.xks_base_path(),
            health_check_path: model::lb_health_path(&store.value.uri_path_prefix),
            record: store.value,
            version: store.version,
            account,
        }
    }
}

/// A new store with its first credential (shown only here).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CreatedStore {
    /// The store.
    pub store: Store,
    /// The credentials file for the AWS KMS console.
    pub credentials_file: CredentialsFile,
    /// The store's load-balancer health-check path.
    pub health_check_path: String,
    /// The scheduled rotation set at creation (schedule, next run), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rotation: Option<crate::model::RotationState>,
}

/// `POST /api/v1/stores/{id}/link` body (and the query of its preview): edits of the
/// networking details before the AWS external key store is created. Absent: as stored.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LinkRequest {
    /// The name on AWS KMS (renames the store here too).
    #[serde(default)]
    pub name: Option<String>,
    /// Where AWS KMS reaches the store.
    #[serde(default)]
    pub location: Option<XksLocation>,
    /// The AWS region (one of the account's regions).
    #[serde(default)]
    pub region: Option<String>,
}

/// What linking a store will create on AWS KMS: shown for review before linking.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct LinkPlan {
    /// `CustomKeyStoreName`.
    pub name: String,
    /// The AWS account.
    pub account: Option<String>,
    /// The AWS region.
    pub region: Option<String>,
    /// `XksProxyUriEndpoint` (none until a location is set).
    pub uri_endpoint: Option<String>,
    /// `XksProxyUriPath`.
    pub uri_path: String,
    /// Connectivity (public endpoint or VPC endpoint service).
    pub location: XksLocation,
    /// The credential AWS KMS will sign with (the store's newest).
    pub access_key_id: String,
}

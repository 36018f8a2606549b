//! Domain objects and their rules: pure functions, no I/O, unit-tested in place.
//!
//! Records here are what the durable store holds (as JSON under the keys given by
//! [`keys`]); every validation rule of a key store, credential or key lives here so
//! that the config reconciler, the admin API and the data plane share one definition.

use base64::{Engine, engine::general_purpose::STANDARD as B64};
use serde::{Deserialize, Serialize};

/// Everything a domain rule can refuse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ModelError {
    /// A URI path prefix breaks the XKS rules.
    #[error("invalid URI path prefix '{prefix}': {reason}")]
    UriPathPrefix {
        /// The prefix as given.
        prefix: String,
        /// Which rule it breaks.
        reason: &'static str,
    },
    /// An external key id breaks the XKS rules.
    #[error("invalid external key id '{id}': {reason}")]
    ExternalKeyId {
        /// The id as given (truncated).
        id: String,
        /// Which rule it breaks.
        reason: &'static str,
    },
    /// An access key id breaks the XKS rules.
    #[error("invalid access key id: {reason}")]
    AccessKeyId {
        /// Which rule it breaks.
        reason: &'static str,
    },
    /// A secret access key breaks the XKS rules (the secret itself is never shown).
    #[error("invalid secret access key: {reason}")]
    Secret {
        /// Which rule it breaks.
        reason: &'static str,
    },
    /// A key store's mutual TLS CA bundle or CN list breaks a rule.
    #[error("invalid mutual TLS settings: {reason}")]
    Mtls {
        /// Which field and rule.
        reason: String,
    },
    /// An AWS account id is not 12 digits.
    #[error("invalid AWS account id '{id}': must be exactly 12 digits")]
    AccountId {
        /// The id as given (truncated).
        id: String,
    },
    /// A region name is not an AWS region name.
    #[error("invalid AWS region '{region}': {reason}")]
    Region {
        /// The region as given (truncated).
        region: String,
        /// Which rule it breaks.
        reason: &'static str,
    },
    /// Max credentials outside 2..=20.
    #[error("max credentials must be between {MIN_CREDENTIALS} and {MAX_CREDENTIALS}, got {value}")]
    MaxCredentials {
        /// The value given.
        value: u32,
    },
    /// A name (store, source) is empty or too long or has control characters.
    #[error("invalid {what} name '{name}': {reason}")]
    Name {
        /// What is being named.
        what: &'static str,
        /// The name.
        name: String,
        /// Which rule it breaks.
        reason: &'static str,
    },
}

/// The fixed tail of every XKS base path.
pub const XKS_PATH_SUFFIX: &str = "/kms/xks/v1";
/// The longest `XksProxyUriPath` (prefix + suffix) AWS KMS accepts.
pub const MAX_URI_PATH_LEN: usize = 128;
/// Fewest credentials a store may be limited to.
pub const MIN_CREDENTIALS: u32 = 2;
/// Most credentials a store may hold (also the default limit).
pub const MAX_CREDENTIALS: u32 = 20;

/// Normalizes and checks a URI path prefix: surrounding slashes are dropped; the rest
/// must be segments of `[A-Za-z0-9_-]` separated by single slashes, and
/// `/<prefix>/kms/xks/v1` must be at most 128 characters. An empty prefix is allowed.
/// Returns the prefix without surrounding slashes.
pub fn normalize_uri_path_prefix(prefix: &str) -> Result<String, ModelError> {
    let err = |reason| ModelError::UriPathPrefix {
        prefix: truncate(prefix, 200),
        reason,
    };
    let trimmed = prefix.trim_matches('/');
    if trimmed.is_empty() {
        return Ok(String::new());
    }
    if !trimmed
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'/' || b == b'_' || b == b'-')
    {
        return Err(err("only letters, digits, '/', '_' and '-' are allowed"));
    }
    if trimmed.split('/').any(str::is_empty) {
        return Err(err("empty path segment ('//')"));
    }
    if 1 + trimmed.len() + XKS_PATH_SUFFIX.len() > MAX_URI_PATH_LEN {
        return Err(err("with '/kms/xks/v1' it must be at most 128 characters"));
    }
    Ok(trimmed.to_string())
}

/// The XKS base path (`XksProxyUriPath`) of a normalized prefix.
pub fn xks_base_path(prefix: &str) -> String {
    if prefix.is_empty() {
        XKS_PATH_SUFFIX.to_string()
    } else {
        format!("/{prefix}{XKS_PATH_SUFFIX}")
    }
}

/// The plain GET health path for load balancers of a store with this prefix.
pub fn lb_health_path(prefix: &str) -> String {
    if prefix.is_empty() {
        "/keyhold-health".to_string()
    } else {
        format!("/{prefix}/keyhold-health")
    }
}

/// Checks an external key id: 1..=128 characters of `[A-Za-z0-9._-]`.
pub fn validate_external_key_id(id: &str) -> Result<(), ModelError> {
    let err = |reason| ModelError::ExternalKeyId {
        id: truncate(id, 140),
        reason,
    };
    if id.is_empty() {
        return Err(err("must not be empty"));
    }
    if id.len() > 128 {
        return Err(err("must be at most 128 characters"));
    }
    if !id
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-')
    {
        return Err(err("only letters, digits, '.', '_' and '-' are allowed"));
    }
    Ok(())
}

/// Checks an access key id: 20..=30 characters of `A-Z` and `2-7`.
pub fn validate_access_key_id(id: &str) -> Result<(), ModelError> {
    if !(20..=30).contains(&id.len()) {
        return Err(ModelError::AccessKeyId {
            reason: "must be 20 to 30 characters long",
        });
    }
    if !id
        .bytes()
        .all(|b| b.is_ascii_uppercase() || (b'2'..=b'7').contains(&b))
    {
        return Err(ModelError::AccessKeyId {
            reason: "only 'A'-'Z' and '2'-'7' are allowed",
        });
    }
    Ok(())
}

/// Checks a secret access key: 43..=64 characters of `[A-Za-z0-9+/=]`.
pub fn validate_secret(secret: &str) -> Result<(), ModelError> {
    if !(43..=64).contains(&secret.len()) {
        return Err(ModelError::Secret {
            reason: "must be 43 to 64 characters long",
        });
    }
    if !secret
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/' || b == b'=')
    {
        return Err(ModelError::Secret {
            reason: "only letters, digits, '+', '/' and '=' are allowed",
        });
    }
    Ok(())
}

/// Checks a max-credentials setting (2..=20).
pub fn validate_max_credentials(value: u32) -> Result<(), ModelError> {
    if (MIN_CREDENTIALS..=MAX_CREDENTIALS).contains(&value) {
        Ok(())
    } else {
        Err(ModelError::MaxCredentials { value })
    }
}

/// Checks a display name (store or source): 1..=64 printable characters, no slash.
pub fn validate_name(what: &'static str, name: &str) -> Result<(), ModelError> {
    let err = |reason| ModelError::Name {
        what,
        name: truncate(name, 80),
        reason,
    };
    if name.is_empty() || name.chars().count() > 64 {
        return Err(err("must be 1 to 64 characters long"));
    }
    if name.chars().any(|c| c.is_control() || c == '/') {
        return Err(err("must not contain control characters or '/'"));
    }
    Ok(())
}

const BASE32: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

/// Maps random bytes to an access key id (one character per byte; 256 is a multiple of
/// 32, so every character is uniform). Separate from [`generate_access_key_id`] so the
/// mapping is testable.
pub fn access_key_id_from_bytes(random: &[u8]) -> String {
    random
        .iter()
        .map(|b| BASE32[(*b % 32) as usize] as char)
        .collect()
}

/// A fresh random access key id of 26 characters (130 bits), unrelated to the secret.
pub fn generate_access_key_id() -> String {
    let mut bytes = [0u8; 26];
    crate::secrets::fill_random(&mut bytes);
    access_key_id_from_bytes(&bytes)
}

/// A fresh secret access key: base64 of 32 random bytes (44 characters, 256 bits).
pub fn generate_secret() -> zeroize::Zeroizing<String> {
    let mut bytes = zeroize::Zeroizing::new([0u8; 32]);
    crate::secrets::fill_random(bytes.as_mut());
    zeroize::Zeroizing::new(B64.encode(bytes.as_ref()))
}

/// A fresh random object id (16 lowercase hex characters).
pub fn generate_id() -> String {
    let mut bytes = [0u8; 8];
    crate::secrets::fill_random(&mut bytes);
    hex::encode(bytes)
}

fn truncate(s: &str, max: usize) -> String {
    s.chars().take(max).collect()
}

/// Seconds since the Unix epoch, now.
pub fn now_unix() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

/// Defines a collection of records in the durable store: `fn $one(id)` gives the key of
/// one record (`$prefix` followed by the id) and `const $all` the prefix of them all.
#[macro_export]
#[doc(hidden)]
macro_rules! store_collection {
    ($(#[doc = $doc:literal])* fn $one:ident, const $all:ident = $prefix:literal;) => {
        $(#[doc = $doc])*
        pub fn $one(id: &str) -> String {
            format!(concat!($prefix, "{}"), id)
        }
        #[doc = concat!("Prefix of every key made by [`", stringify!($one), "`]: `", $prefix, "`.")]
        pub const $all: &str = $prefix;
    };
}

/// Keys of the durable store, one function per kind of object.
pub mod keys {
    crate::store_collection! {
        /// A key source record.
        fn source, const SOURCES = "sources/";
    }
    crate::store_collection! {
        /// A key store record.
        fn store, const STORES = "stores/";
    }
    crate::store_collection! {
        /// An AWS account.
        fn account, const ACCOUNTS = "accounts/";
    }
    crate::store_collection! {
        /// The AWS account a store belongs to (value: the account id). Kept beside the
        /// store record so that the record's shape stays as it is.
        fn store_account, const STORE_ACCOUNTS = "store-accounts/";
    }
    crate::store_collection! {
        /// An AWS connection.
        fn aws_connection, const AWS_CONNECTIONS = "connections/aws/";
    }
    crate::store_collection! {
        /// An HSM connection.
        fn hsm_connection, const HSM_CONNECTIONS = "connections/hsm/";
    }
    crate::store_collection! {
        /// A credential rotation schedule.
        fn schedule, const SCHEDULES = "schedules/";
    }
    crate::store_collection! {
        /// When a store's scheduled rotation last ran (value: JSON of
        /// `crate::model::RotationState`).
        fn rotation_state, const ROTATION_STATES = "rotation-states/";
    }
    crate::store_collection! {
        /// A long-running job (e.g. a refresh), with its progress.
        fn job, const JOBS = "jobs/";
    }
    /// Prefix of every credential.
    pub const CREDENTIALS: &str = "credentials/";
    /// Prefix of every HYOK key.
    pub const HYOK_KEYS: &str = "keys/";
    /// Prefix of every credential of a store.
    pub fn credentials_of(store_id: &str) -> String {
        format!("credentials/{store_id}/")
    }
    /// Prefix of every HYOK key of a store.
    pub fn hyok_keys_of(store_id: &str) -> String {
        format!("keys/{store_id}/")
    }
    /// Uniqueness index: store name -> id.
    pub fn store_name_index(name: &str) -> String {
        format!("index/store-name/{name}")
    }
    /// Uniqueness index: a source key (key source + key name) -> `<store id>/<external
    /// id>` of the one HYOK key bound to it.
    pub fn source_key_index(source: &str, key: &str) -> String {
        format!("index/source-key/{source}/{key}")
    }
    /// Uniqueness index: URI path prefix -> store id.
    pub fn prefix_index(prefix: &str) -> String {
        format!("index/prefix/{prefix}")
    }
    /// A credential of a store.
    pub fn credential(store_id: &str, access_key_id: &str) -> String {
        format!("credentials/{store_id}/{access_key_id}")
    }
    /// A HYOK key of a store.
    pub fn hyok_key(store_id: &str, external_id: &str) -> String {
        format!("keys/{store_id}/{external_id}")
    }
    /// Namespace of a key source's plugin-private entries.
    pub fn plugin_namespace(source: &str) -> String {
        format!("plugins/{source}/")
    }
}

/// A configured key source: which plugin serves it, bound forever to its stores.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceRecord {
    /// The source's name (unique).
    pub name: String,
    /// The plugin kind, e.g. `ctm` or `luna`.
    pub plugin: String,
    /// The key store container (e.g. a PKCS#11 token label), when the plugin has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container: Option<String>,
    /// Creation time, Unix seconds.
    pub created_at: i64,
    /// The HSM connection a source created through the admin API was made from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hsm_connection: Option<String>,
    /// The plugin configuration of a source created through the admin API (sources
    /// declared in the config file keep theirs there): re-opened from this at start.
    /// Holds references to secrets (a PIN file or variable), never a secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<serde_json::Value>,
    /// Bumped by each reopen: every node reopens its copy of the source when the
    /// generation it opened differs from the record's.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub generation: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// Where AWS KMS reaches the store's XKS endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default, utoipa::ToSchema)]
#[serde(rename_all = "snake_case", tag = "type")]
pub enum XksLocation {
    /// Not set yet (unlinked stores).
    #[default]
    Unset,
    /// A public endpoint.
    Public {
        /// `https://<fqdn>` of the proxy.
        endpoint: String,
    },
    /// A VPC endpoint service.
    Vpc {
        /// The VPC endpoint service name.
        service_name: String,
        /// The private DNS name, used as the endpoint.
        endpoint: String,
    },
}

/// Whether this product serves the store (`local`) or only knows it from AWS (`remote`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum StoreKind {
    /// Served here.
    #[default]
    Local,
    /// Found on AWS, served elsewhere.
    Remote,
}

/// An external custom key store.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct StoreRecord {
    /// Stable id (random), used in store keys.
    pub id: String,
    /// Display name (unique; may be renamed).
    pub name: String,
    /// Name of the key source, fixed at creation.
    pub source: String,
    /// Plugin of that source, fixed at creation.
    pub plugin: String,
    /// Key store container (e.g. partition label) of that source, fixed at creation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container: Option<String>,
    /// Local or remote.
    #[serde(default)]
    pub kind: StoreKind,
    /// URI path prefix, normalized, without surrounding slashes; stable.
    pub uri_path_prefix: String,
    /// Source key name of the health-check key.
    pub health_check_key: String,
    /// Most credentials the store holds (2..=20).
    pub max_credentials: u32,
    /// Whether AWS KMS's access is suspended.
    #[serde(default)]
    pub blocked: bool,
    /// Whether successful crypto operations are audited.
    #[serde(default)]
    pub success_audit: bool,
    /// Whether the store requires mutual TLS.
    #[serde(default)]
    pub mtls: bool,
    /// PEM CA bundle client certificates must chain to (else the listener's
    /// `xks.tls.client_ca_file`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtls_ca_pem: Option<String>,
    /// Accepted client certificate subject CNs (else the listener's `xks.tls.client_cn`,
    /// else `cks.kms.<region>.amazonaws.com`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mtls_cns: Vec<String>,
    /// Where AWS reaches the store.
    #[serde(default)]
    pub location: XksLocation,
    /// The store's own request quota (else the server default applies).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quota: Option<Quota>,
    /// The AWS side, when the store is linked (`None`: unlinked).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aws: Option<AwsLink>,
    /// The AWS region of the store (one of its account's regions); required to link.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// The credential rotation schedule assigned to the store (local, linked stores).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rotation_schedule: Option<String>,
    /// Creation time, Unix seconds.
    pub created_at: i64,
}

impl StoreRecord {
    /// A local ctm store named `store-<id>` on `prefix`, all settings at their defaults:
    /// the starting point of unit tests.
    #[cfg(test)]
    pub(crate) fn sample(id: &str, prefix: &str) -> StoreRecord {
        StoreRecord {
            id: id.into(),
            name: format!("store-{id}"),
            source: "ctm".into(),
            plugin: "ctm".into(),
            container: None,
            kind: StoreKind::Local,
            uri_path_prefix: prefix.into(),
            health_check_key: "hc".into(),
            max_credentials: 20,
            blocked: false,
            success_audit: false,
            mtls: false,
            mtls_ca_pem: None,
            mtls_cns: Vec::new(),
            location: XksLocation::Unset,
            quota: None,
            aws: None,
            region: None,
            rotation_schedule: None,
            created_at: 0,
        }
    }

    /// The store's `XksProxyUriPath`.
    pub fn xks_base_path(&self) -> String {
        xks_base_path(&self.uri_path_prefix)
    }
}

/// A request quota: sustained requests per second and the burst allowed above it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Quota {
    /// Sustained requests per second (> 0).
    pub rate: f64,
    /// Largest burst (>= 1).
    pub burst: f64,
}

impl Quota {
    /// Checks the quota's values.
    pub fn validate(&self) -> Result<(), String> {
        if !(self.rate.is_finite() && self.rate > 0.0) {
            return Err("rate must be a positive number of requests per second".into());
        }
        if !(self.burst.is_finite() && self.burst >= 1.0) {
            return Err("burst must be at least 1".into());
        }
        Ok(())
    }
}

/// A SigV4 credential of a store; the secret is sealed under the master key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CredentialRecord {
    /// Access key id (20..=30 of `A-Z2-7`).
    pub access_key_id: String,
    /// The secret access key, sealed (see [`crate::secrets::MasterKey::seal`]).
    pub sealed_secret: String,
    /// Creation time, Unix nanoseconds (orders credentials for rotation).
    pub created_at_ns: i128,
    /// Where the credential came from (`config`, `generated`, `admin`).
    #[serde(default)]
    pub origin: String,
}

/// A HYOK key: the external key id AWS KMS uses, bound to a key of the store's source.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[schema(as = HyokKey)]
pub struct HyokKeyRecord {
    /// External key id used in XKS paths.
    pub external_id: String,
    /// Name of the key in the store's source.
    pub source_key: String,
    /// Whether AWS KMS's use of the key is suspended.
    #[serde(default)]
    pub blocked: bool,
    /// The AWS KMS key, when linked (`None`: unlinked).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aws: Option<KmsKeyLink>,
    /// Creation time, Unix seconds.
    pub created_at: i64,
    /// Bound to a source key that breaks the HYOK key rules (exportable, not sensitive,
    /// not private, or without encrypt or decrypt), explicitly allowed at creation.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub allow_weak_key: bool,
}

/// The credentials file the AWS KMS console accepts, returned once on creation.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CredentialsFile {
    /// The store's `XksProxyUriPath`.
    #[serde(rename = "XksProxyUriPath")]
    pub uri_path: String,
    /// The credential.
    #[serde(rename = "XksProxyAuthenticationCredential")]
    pub credential: CredentialsFileCredential,
}

/// The credential part of [`CredentialsFile`].
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CredentialsFileCredential {
    /// Access key id.
    #[serde(rename = "AccessKeyId")]
    pub access_key_id: String,
    /// The secret, in clear: shown once.
    #[serde(rename = "RawSecretAccessKey")]
    pub raw_secret_access_key: String,
}

/// An AWS account (a KMS container): its allowed regions and who may act on its key
/// stores.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[schema(as = Account)]
pub struct AccountRecord {
    /// The 12-digit AWS account id.
    pub id: String,
    /// Display name.
    pub name: String,
    /// Regions whose key stores it may hold.
    #[serde(default)]
    pub regions: Vec<String>,
    /// Who may do what with its key stores (admins may always do everything).
    #[serde(default)]
    pub acl: Vec<crate::identity::AclEntry>,
    /// Creation time, Unix seconds.
    pub created_at: i64,
    /// The AWS connection (by name) used to reach the account's AWS KMS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aws_connection: Option<String>,
}

/// An HSM connection: a PKCS#11 module, a token (Luna partition) and a *reference*
/// to its PIN (an environment variable or a file), never the PIN itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[schema(as = HsmConnection)]
pub struct HsmConnectionRecord {
    /// Unique name.
    pub name: String,
    /// Path of the PKCS#11 module.
    pub module: String,
    /// Label of the token (partition).
    pub token_label: String,
    /// Environment variable holding the PIN.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pin_env: Option<String>,
    /// File holding the PIN.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pin_file: Option<String>,
    /// Environment for the module (e.g. SoftHSM2's `SOFTHSM2_CONF`).
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub module_env: std::collections::BTreeMap<String, String>,
    /// Pooled sessions of a key source made from it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pool_size: Option<u32>,
    /// Session wait bound, milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub op_timeout_ms: Option<u64>,
    /// Creation time, Unix seconds.
    pub created_at: i64,
}

impl HsmConnectionRecord {
    /// The luna plugin configuration of this connection.
    pub fn luna_config(&self) -> serde_json::Value {
        let mut c = serde_json::json!({
            "module": self.module,
            "token_label": self.token_label,
        });
        if let Some(v) = &self.pin_env {
            c["pin_env"] = v.clone().into();
        }
        if let Some(v) = &self.pin_file {
            c["pin_file"] = v.clone().into();
        }
        if !self.module_env.is_empty() {
            c["module_env"] = serde_json::json!(self.module_env);
        }
        if let Some(v) = self.pool_size {
            c["pool_size"] = v.into();
        }
        if let Some(v) = self.op_timeout_ms {
            c["op_timeout_ms"] = v.into();
        }
        c
    }
}

/// Checks an AWS account id: exactly 12 ASCII digits.
pub fn validate_account_id(id: &str) -> Result<(), ModelError> {
    if id.len() == 12 && id.bytes().all(|b| b.is_ascii_digit()) {
        Ok(())
    } else {
        Err(ModelError::AccountId {
            id: truncate(id, 20),
        })
    }
}

/// Checks an AWS region name such as `eu-west-1` or `us-gov-west-1`: lowercase
/// segments separated by '-', the last one a number.
pub fn validate_region(region: &str) -> Result<(), ModelError> {
    let err = |reason| ModelError::Region {
        region: truncate(region, 40),
        reason,
    };
    let parts: Vec<&str> = region.split('-').collect();
    if parts.len() < 3 || region.len() > 32 {
        return Err(err("expected a name like 'eu-west-1'"));
    }
    let (last, head) = match parts.split_last() {
        Some(split) => split,
        None => return Err(err("expected a name like 'eu-west-1'")),
    };
    if last.is_empty() || !last.bytes().all(|b| b.is_ascii_digit()) {
        return Err(err("must end in a number, like 'eu-west-1'"));
    }
    if head
        .iter()
        .any(|p| p.is_empty() || !p.bytes().all(|b| b.is_ascii_lowercase()))
    {
        return Err(err(
            "only lowercase letters, '-' and a final number are allowed",
        ));
    }
    if !XKS_REGIONS.contains(&region) {
        return Err(err(
            "not a region where AWS KMS offers external key stores (see model::XKS_REGIONS)",
        ));
    }
    Ok(())
}

/// Regions where AWS KMS offers external key stores: the commercial and GovCloud
/// regions (not the China partition). An account's regions must be among them.
pub const XKS_REGIONS: &[&str] = &[
    "us-east-1",
    "us-east-2",
    "us-west-1",
    "us-west-2",
    "af-south-1",
    "ap-east-1",
    "ap-east-2",
    "ap-south-1",
    "ap-south-2",
    "ap-southeast-1",
    "ap-southeast-2",
    "ap-southeast-3",
    "ap-southeast-4",
    "ap-southeast-5",
    "ap-southeast-7",
    "ap-northeast-1",
    "ap-northeast-2",
    "ap-northeast-3",
    "ca-central-1",
    "ca-west-1",
    "eu-central-1",
    "eu-central-2",
    "eu-west-1",
    "eu-west-2",
    "eu-west-3",
    "eu-south-1",
    "eu-south-2",
    "eu-north-1",
    "il-central-1",
    "me-south-1",
    "me-central-1",
    "mx-central-1",
    "sa-east-1",
    "us-gov-east-1",
    "us-gov-west-1",
];

/// Which credentials to delete so that adding one more keeps at most `max`: the oldest
/// ones first. `existing` is (access key id, created_at_ns).
pub fn credentials_to_evict(existing: &[(String, i128)], max: u32) -> Vec<String> {
    let keep_before_add = (max as usize).saturating_sub(1);
    if existing.len() <= keep_before_add {
        return Vec::new();
    }
    let mut sorted: Vec<_> = existing.to_vec();
    sorted.sort_by(|a, b| a.1.cmp(&b.1).then_with(|| a.0.cmp(&b.0)));
    sorted
        .into_iter()
        .take(existing.len() - keep_before_add)
        .map(|(id, _)| id)
        .collect()
}

pub mod aws;
pub mod jobs;
pub mod mtls;
pub mod refresh;
pub mod rotation;
pub mod rules;

pub use aws::{AwsConnectionRecord, AwsLink, ConnectionState, KmsKeyLink, StsRegionalEndpoints};

pub use rotation::{RotationState, ScheduleRecord};

#[cfg(test)]
mod tests;

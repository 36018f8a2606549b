//! Key sources and their keys: `/api/v1/sources`, `/api/v1/sources/{name}/keys`.

use std::collections::BTreeMap;

use keyhold_sdk::KeyInfo;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// `POST /api/v1/sources` body: a luna key source made from an HSM connection.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewSource {
    /// Unique name.
    pub name: String,
    /// The plugin (`luna`).
    pub plugin: String,
    /// The HSM connection it is made from.
    pub hsm_connection: String,
}

/// Whether a key source opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SourceState {
    /// Opened: serving.
    Opened,
    /// Failed to open: see the reason.
    Failed,
}

/// A configured key source as the management plane shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Source {
    /// The source's name.
    pub name: String,
    /// Its plugin kind (`ctm`, `luna`, ...).
    pub plugin: String,
    /// Its key store container, when the plugin has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container: Option<String>,
    /// The HSM connection it was created from (sources created through the API).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hsm_connection: Option<String>,
    /// `opened` or `failed`.
    pub status: SourceState,
    /// Why it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Vendor the source reports (opened sources).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vendor: Option<String>,
    /// Model the source reports (opened sources).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// The plugin library's own version: the version its model ends with, as the SDK
    /// asks (opened sources whose model ends with one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plugin_version: Option<String>,
    /// The keyhold-sdk version the plugin library was built against, from its header
    /// (opened sources; the server's own is in `keyhold --version`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sdk_version: Option<String>,
    /// The plugin ABI version the library declares (opened sources).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub abi_version: Option<u32>,
}

/// `POST /api/v1/sources/{name}/keys` body.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewSourceKey {
    /// The key's name (for a HYOK key: its XKS key id).
    pub name: String,
    /// `encrypt`, `decrypt`, `wrap`, `unwrap`.
    pub usage: Vec<String>,
    /// Whether the key may leave the source.
    #[serde(default)]
    pub exportable: bool,
    /// Whether the key may be deleted.
    #[serde(default)]
    pub deletable: bool,
}

/// A key of a key source.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct SourceKey {
    /// Name.
    pub name: String,
    /// Size in bits.
    pub bits: u32,
    /// Allowed operations (`encrypt`, `decrypt`, `wrap`, `unwrap`).
    pub usage: Vec<String>,
    /// Whether the key is enabled.
    pub enabled: bool,
    /// Whether the key may leave the source.
    pub exportable: bool,
    /// Whether the key may be deleted.
    pub deletable: bool,
    /// Source-specific attributes, for display.
    pub attributes: BTreeMap<String, String>,
}

impl From<&KeyInfo> for SourceKey {
    fn from(k: &KeyInfo) -> Self {
        SourceKey {
            name: k.name.to_string(),
            bits: k.bits,
            usage: k.usage.names().iter().map(ToString::to_string).collect(),
            enabled: k.enabled,
            exportable: k.exportable,
            deletable: k.deletable,
            attributes: k
                .attributes
                .iter()
                .map(|a| (a.name.to_string(), a.value.to_string()))
                .collect(),
        }
    }
}

/// One source key with whether it qualifies as a store's health-check key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct CheckedSourceKey {
    /// The key.
    #[serde(flatten)]
    pub key: SourceKey,
    /// Whether the key may be a store's health-check key.
    pub valid_health_check_key: bool,
    /// What disqualifies it (empty when valid).
    pub problems: Vec<String>,
}

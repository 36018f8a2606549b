//! The persisted form of a key: a JSON record in the host KV whose key material is
//! wrapped (AES-256-GCM) under the master key.
//!
//! KV key: `keys/<name>`. Value (JSON, format version 1):
//!
//! ```json
//! {"version":1,"name":"k1","usage":["ENCRYPT","DECRYPT"],"exportable":false,
//!  "deletable":true,"enabled":true,"created_at":1732940000,
//!  "wrapped":"<base64 (standard, padded) of nonce(12) || ciphertext(32) || tag(16)>"}
//! ```
//!
//! The wrapping AAD is `keyhold-ctm-key\0v1\0<name>` (see [`wrap_aad`]), so a record
//! copied onto another name, or decoded as another format version, does not unwrap.
//! Attributes (usage, enabled, ...) are not covered by the wrapping: they are policy
//! stored next to the key, like a key manager's attributes, and anyone who can write the
//! host KV can change them anyway.

use base64::{Engine as _, engine::general_purpose::STANDARD as B64};
use keyhold_sdk::{KeySourceError, KeyUsage};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::crypto::{self, IV_LEN, KEY_LEN, KeyMaterial, TAG_LEN};

/// The record format version this plugin writes and reads.
pub const FORMAT_VERSION: u32 = 1;

/// The KV prefix under which every key record lives.
pub const KEY_PREFIX: &str = "keys/";

/// The KV key of the record of key `name`.
pub fn kv_key(name: &str) -> String {
    format!("{KEY_PREFIX}{name}")
}

/// The AAD binding wrapped material to its key name and format version.
pub fn wrap_aad(name: &str, version: u32) -> Vec<u8> {
    format!("keyhold-ctm-key\0v{version}\0{name}").into_bytes()
}

/// A key's attributes, as stored next to its wrapped material.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyAttrs {
    /// What the key may be used for.
    pub usage: KeyUsage,
    /// Whether the key is reported as exportable (the plugin never exports it).
    pub exportable: bool,
    /// Whether the key may be deleted.
    pub deletable: bool,
    /// Whether the key may be used.
    pub enabled: bool,
    /// Creation time, seconds since the Unix epoch.
    pub created_at: u64,
}

/// The JSON record stored at [`kv_key`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyRecord {
    /// [`FORMAT_VERSION`].
    pub version: u32,
    /// The key's name; must match the KV key.
    pub name: String,
    /// Usage names (`ENCRYPT`, `DECRYPT`, `WRAP`, `UNWRAP`).
    pub usage: Vec<String>,
    /// See [`KeyAttrs::exportable`].
    pub exportable: bool,
    /// See [`KeyAttrs::deletable`].
    pub deletable: bool,
    /// See [`KeyAttrs::enabled`].
    pub enabled: bool,
    /// See [`KeyAttrs::created_at`].
    pub created_at: u64,
    /// base64(nonce || ciphertext || tag) of the key material under the master key.
    pub wrapped: String,
}

impl KeyRecord {
    /// The record's attributes; [`KeySourceError::Internal`] when its usage names are
    /// not understood.
    pub fn attrs(&self) -> Result<KeyAttrs, KeySourceError> {
        let usage = KeyUsage::parse_list(&self.usage).map_err(|bad| {
            KeySourceError::internal(format!(
                "key record '{}' has an unknown usage '{bad}'",
                self.name
            ))
        })?;
        Ok(KeyAttrs {
            usage,
            exportable: self.exportable,
            deletable: self.deletable,
            enabled: self.enabled,
            created_at: self.created_at,
        })
    }

    /// Replaces the record's attributes (not its material).
    pub fn set_attrs(&mut self, attrs: KeyAttrs) {
        self.usage = attrs.usage.names().into_iter().map(String::from).collect();
        self.exportable = attrs.exportable;
        self.deletable = attrs.deletable;
        self.enabled = attrs.enabled;
        self.created_at = attrs.created_at;
    }

    /// Serializes the record as stored in the KV.
    pub fn to_bytes(&self) -> Result<Vec<u8>, KeySourceError> {
        serde_json::to_vec(self)
            .map_err(|e| KeySourceError::internal(format!("cannot serialize key record: {e}")))
    }

    /// Parses a stored record (without unwrapping it).
    pub fn from_bytes(bytes: &[u8]) -> Result<KeyRecord, KeySourceError> {
        let record: KeyRecord = serde_json::from_slice(bytes)
            .map_err(|e| KeySourceError::internal(format!("malformed key record: {e}")))?;
        if record.version != FORMAT_VERSION {
            return Err(KeySourceError::internal(format!(
                "key record '{}' has format version {}, this plugin reads version {FORMAT_VERSION}",
                record.name, record.version
            )));
        }
        Ok(record)
    }

    /// Unwraps the key material with `master_key`; [`KeySourceError::InvalidCiphertext`]
    /// when it does not unwrap (wrong master key, or a record moved to another name).
    pub fn unwrap_material(
        &self,
        master_key: &[u8; KEY_LEN],
    ) -> Result<KeyMaterial, KeySourceError> {
        let blob = B64.decode(self.wrapped.as_bytes()).map_err(|_| {
            KeySourceError::internal(format!(
                "key record '{}': wrapped key is not base64",
                self.name
            ))
        })?;
        if blob.len() != IV_LEN + KEY_LEN + TAG_LEN {
            return Err(KeySourceError::internal(format!(
                "key record '{}': wrapped key has {} bytes, expected {}",
                self.name,
                blob.len(),
                IV_LEN + KEY_LEN + TAG_LEN
            )));
        }
        let (iv, rest) = blob.split_at(IV_LEN);
        let (ct, tag) = rest.split_at(KEY_LEN);
        let plain = crypto::open(master_key, iv, ct, tag, &wrap_aad(&self.name, self.version))?;
        let mut material = Zeroizing::new([0u8; KEY_LEN]);
        material.copy_from_slice(&plain);
        Ok(material)
    }
}

/// Wraps `material` under `master_key` for key `name`: base64(nonce || ct || tag).
pub fn wrap_material(
    master_key: &[u8; KEY_LEN],
    name: &str,
    material: &[u8; KEY_LEN],
) -> Result<String, KeySourceError> {
    let iv = crypto::random_iv()?;
    let (ct, tag) = crypto::seal(master_key, &iv, material, &wrap_aad(name, FORMAT_VERSION))?;
    let mut blob = Vec::with_capacity(IV_LEN + KEY_LEN + TAG_LEN);
    blob.extend_from_slice(&iv);
    blob.extend_from_slice(&ct);
    blob.extend_from_slice(&tag);
    Ok(B64.encode(blob))
}

/// Builds the record of key `name` with the given material and attributes, wrapped
/// under `master_key`. Tests use it to plant known keys (e.g. Wycheproof vectors):
/// store the result at [`kv_key`]`(name)` in the host KV before opening the plugin.
pub fn build_record(
    master_key: &[u8; KEY_LEN],
    name: &str,
    material: &[u8; KEY_LEN],
    attrs: KeyAttrs,
) -> Result<KeyRecord, KeySourceError> {
    let mut record = KeyRecord {
        version: FORMAT_VERSION,
        name: name.to_string(),
        usage: Vec::new(),
        exportable: false,
        deletable: false,
        enabled: false,
        created_at: 0,
        wrapped: wrap_material(master_key, name, material)?,
    };
    record.set_attrs(attrs);
    Ok(record)
}

/// [`build_record`] serialized: the bytes to store at [`kv_key`]`(name)`.
pub fn build_record_bytes(
    master_key: &[u8; KEY_LEN],
    name: &str,
    material: &[u8; KEY_LEN],
    attrs: KeyAttrs,
) -> Result<Vec<u8>, KeySourceError> {
    build_record(master_key, name, material, attrs)?.to_bytes()
}

#[cfg(test)]
mod tests;

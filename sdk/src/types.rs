//! Plain data types that cross the plugin boundary.

use std::fmt;

use abi_stable::{
    StableAbi,
    std_types::{RSlice, RString, RVec},
};

/// Who serves a key source.
#[repr(C)]
#[derive(StableAbi, Debug, Clone, PartialEq, Eq)]
pub struct SourceInfo {
    /// Vendor of the external key manager (XKS `ekmVendor`).
    pub vendor: RString,
    /// Model and version of the key manager, as specific as the source can tell.
    pub model: RString,
}

/// Health of one external key manager, as XKS reports it.
#[repr(u8)]
#[derive(StableAbi, Debug, Clone, Copy, PartialEq, Eq)]
pub enum HealthStatus {
    /// Healthy.
    Active,
    /// Unhealthy, but still serving traffic.
    Degraded,
    /// Unable to serve traffic.
    Unavailable,
}

impl HealthStatus {
    /// The XKS wire name: `ACTIVE`, `DEGRADED` or `UNAVAILABLE`.
    pub fn as_str(self) -> &'static str {
        match self {
            HealthStatus::Active => "ACTIVE",
            HealthStatus::Degraded => "DEGRADED",
            HealthStatus::Unavailable => "UNAVAILABLE",
        }
    }
}

/// One external key manager behind a key source (one `ekmFleetDetails` entry).
#[repr(C)]
#[derive(StableAbi, Debug, Clone, PartialEq, Eq)]
pub struct EkmNode {
    /// Unique id of the key manager within the source (e.g. an HSM serial number).
    pub id: RString,
    /// Model, firmware and anything else useful for troubleshooting.
    pub model: RString,
    /// Current health.
    pub status: HealthStatus,
}

/// What a key may be used for: a bit set over [`KeyUsage::ENCRYPT`],
/// [`KeyUsage::DECRYPT`], [`KeyUsage::WRAP`] and [`KeyUsage::UNWRAP`].
#[repr(transparent)]
#[derive(StableAbi, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct KeyUsage(pub u32);

impl KeyUsage {
    /// The key may encrypt.
    pub const ENCRYPT: KeyUsage = KeyUsage(1);
    /// The key may decrypt.
    pub const DECRYPT: KeyUsage = KeyUsage(2);
    /// The key may wrap other keys.
    pub const WRAP: KeyUsage = KeyUsage(4);
    /// The key may unwrap other keys.
    pub const UNWRAP: KeyUsage = KeyUsage(8);
    /// No usage at all.
    pub const NONE: KeyUsage = KeyUsage(0);
    /// Encrypt, decrypt, wrap and unwrap: what a health-check key needs.
    pub const ALL: KeyUsage = KeyUsage(1 | 2 | 4 | 8);

    const NAMES: [(KeyUsage, &'static str); 4] = [
        (KeyUsage::ENCRYPT, "ENCRYPT"),
        (KeyUsage::DECRYPT, "DECRYPT"),
        (KeyUsage::WRAP, "WRAP"),
        (KeyUsage::UNWRAP, "UNWRAP"),
    ];

    /// The names (`ENCRYPT`, `DECRYPT`, `WRAP`, `UNWRAP`) of the usages in `required`
    /// that `self` lacks: what a health-check key's refusal names.
    ///
    /// ```
    /// use keyhold_sdk::KeyUsage;
    /// let missing: Vec<_> = KeyUsage::ENCRYPT.missing(KeyUsage::ALL).collect();
    /// assert_eq!(missing, ["DECRYPT", "WRAP", "UNWRAP"]);
    /// ```
    pub fn missing(self, required: KeyUsage) -> impl Iterator<Item = &'static str> {
        KeyUsage::NAMES
            .into_iter()
            .filter(move |(bit, _)| required.contains(*bit) && !self.contains(*bit))
            .map(|(_, name)| name)
    }

    /// Whether every bit of `other` is set in `self`.
    pub fn contains(self, other: KeyUsage) -> bool {
        self.0 & other.0 == other.0
    }

    /// The union of both sets.
    pub fn union(self, other: KeyUsage) -> KeyUsage {
        KeyUsage(self.0 | other.0)
    }

    /// The XKS `keyUsage` names of the set bits, in a fixed order
    /// (`ENCRYPT`, `DECRYPT`, `WRAP`, `UNWRAP`).
    pub fn names(self) -> Vec<&'static str> {
        Self::NAMES
            .iter()
            .filter(|(bit, _)| self.contains(*bit))
            .map(|(_, name)| *name)
            .collect()
    }

    /// Parses one usage name, case-insensitively (`encrypt`, `DECRYPT`, ...).
    pub fn parse_one(name: &str) -> Option<KeyUsage> {
        Self::NAMES
            .iter()
            .find(|(_, n)| n.eq_ignore_ascii_case(name))
            .map(|(bit, _)| *bit)
    }

    /// Parses a list of usage names; `Err` carries the first unknown name.
    pub fn parse_list<S: AsRef<str>>(names: &[S]) -> Result<KeyUsage, String> {
        names.iter().try_fold(KeyUsage::NONE, |acc, n| {
            KeyUsage::parse_one(n.as_ref())
                .map(|bit| acc.union(bit))
                .ok_or_else(|| n.as_ref().to_string())
        })
    }
}

impl fmt::Debug for KeyUsage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyUsage({})", self.names().join("|"))
    }
}

impl fmt::Display for KeyUsage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.names().join(","))
    }
}

/// A cryptographic operation, as named in [`crate::KeySourceError::KeyUsage`].
#[repr(u8)]
#[derive(StableAbi, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    /// Encryption.
    Encrypt,
    /// Decryption.
    Decrypt,
}

impl Operation {
    /// The usage bit an operation needs.
    pub fn required_usage(self) -> KeyUsage {
        match self {
            Operation::Encrypt => KeyUsage::ENCRYPT,
            Operation::Decrypt => KeyUsage::DECRYPT,
        }
    }
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Operation::Encrypt => "encrypt",
            Operation::Decrypt => "decrypt",
        })
    }
}

/// A free-form attribute of a key, for display (e.g. `CKA_SENSITIVE` = `true`).
#[repr(C)]
#[derive(StableAbi, Debug, Clone, PartialEq, Eq)]
pub struct KeyAttribute {
    /// Attribute name.
    pub name: RString,
    /// Attribute value, rendered as text.
    pub value: RString,
}

/// A key of a key source, without its material.
#[repr(C)]
#[derive(StableAbi, Debug, Clone, PartialEq, Eq)]
pub struct KeyInfo {
    /// The key's name (label) in its source.
    pub name: RString,
    /// Key length in bits (256 for every key keyhold serves).
    pub bits: u32,
    /// What the key may be used for.
    pub usage: KeyUsage,
    /// Whether the key may be used at all.
    pub enabled: bool,
    /// Whether the key material could ever leave the source (ctm: exportable; PKCS#11:
    /// `CKA_EXTRACTABLE`).
    pub exportable: bool,
    /// Whether the key can be deleted.
    pub deletable: bool,
    /// Source-specific attributes, for display.
    pub attributes: RVec<KeyAttribute>,
}

/// What to create with [`crate::KeySource::create_key`].
#[repr(C)]
#[derive(StableAbi, Debug, Clone, PartialEq, Eq)]
pub struct NewKey {
    /// The new key's name; unique within the source.
    pub name: RString,
    /// What the key may be used for.
    pub usage: KeyUsage,
    /// Whether the key material may ever be exported. Sources that cannot honour `true`
    /// refuse with [`crate::KeySourceError::Unsupported`].
    pub exportable: bool,
    /// Whether the key may later be deleted.
    pub deletable: bool,
}

impl NewKey {
    /// A non-exportable, non-deletable key with the given usage: the safe default,
    /// and what a health-check key needs when `usage` is [`KeyUsage::ALL`].
    pub fn new(name: &str, usage: KeyUsage) -> NewKey {
        NewKey {
            name: name.into(),
            usage,
            exportable: false,
            deletable: false,
        }
    }
}

/// The result of an AES-GCM encryption.
#[repr(C)]
#[derive(StableAbi, Debug, Clone, PartialEq, Eq)]
pub struct Encrypted {
    /// The IV the source generated (12 bytes, or 16).
    pub iv: RVec<u8>,
    /// The ciphertext, as long as the plaintext.
    pub ciphertext: RVec<u8>,
    /// The 16-byte authentication tag.
    pub tag: RVec<u8>,
}

/// The inputs of an AES-GCM decryption.
#[repr(C)]
#[derive(StableAbi, Debug, Clone, Copy)]
pub struct DecryptInput<'a> {
    /// The IV used at encryption (12 or 16 bytes).
    pub iv: RSlice<'a, u8>,
    /// The ciphertext.
    pub ciphertext: RSlice<'a, u8>,
    /// The 16-byte authentication tag.
    pub tag: RSlice<'a, u8>,
    /// The additional authenticated data used at encryption (may be empty).
    pub aad: RSlice<'a, u8>,
}

/// One entry of the host's key-value store.
#[repr(C)]
#[derive(StableAbi, Debug, Clone, PartialEq, Eq)]
pub struct KvEntry {
    /// The entry's key, without the host's namespace.
    pub key: RString,
    /// The stored bytes.
    pub value: RVec<u8>,
}

/// Severity of a message logged through [`crate::Host::log`].
#[repr(u8)]
#[derive(StableAbi, Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogLevel {
    /// Something is wrong and needs an operator.
    Error,
    /// Something unexpected that the plugin handled.
    Warn,
    /// Normal operation.
    Info,
    /// Detail for troubleshooting.
    Debug,
}

#[cfg(test)]
mod tests;

//! The one error enum of the plugin interface.

use std::fmt;

use abi_stable::{
    StableAbi,
    std_types::{RString, RVec},
};

use crate::{KeyUsage, Operation};

/// Everything a key source can refuse or fail with. Each variant maps onto exactly one
/// XKS error (the host matches on [`KeySourceError::kind`]); the host adds its own
/// context.
///
/// Messages must never contain key material or plaintext.
#[repr(u8)]
#[derive(StableAbi, Debug, Clone, PartialEq, Eq)]
pub enum KeySourceError {
    /// No key of that name (XKS `KeyNotFoundException`).
    NotFound {
        /// The key name asked for.
        key: RString,
    },
    /// A key of that name exists already (creation refused).
    AlreadyExists {
        /// The key name.
        key: RString,
    },
    /// The key is disabled (XKS `InvalidStateException`).
    Disabled {
        /// The key name.
        key: RString,
    },
    /// The key does not allow the operation (XKS `InvalidKeyUsageException`).
    KeyUsage {
        /// The key name.
        key: RString,
        /// The operation that was refused.
        operation: Operation,
    },
    /// The tag did not verify: wrong key, AAD, IV, ciphertext or tag
    /// (XKS `InvalidCiphertextException`).
    InvalidCiphertext,
    /// The key does not meet a rule (e.g. a health-check key's required attributes);
    /// `problems` names each failing attribute.
    InvalidKey {
        /// The key name.
        key: RString,
        /// One sentence per failing attribute, e.g. `CKA_EXTRACTABLE must be false`.
        problems: RVec<RString>,
    },
    /// The request is malformed: wrong IV or tag length, bad configuration, ...
    /// (XKS `ValidationException`).
    InvalidInput {
        /// What is wrong.
        reason: RString,
    },
    /// The source cannot do this (XKS `UnsupportedOperationException`).
    Unsupported {
        /// What is not supported.
        reason: RString,
    },
    /// The key manager cannot be reached or is not ready (XKS `InternalException`;
    /// health reports `UNAVAILABLE`).
    Unavailable {
        /// Why.
        reason: RString,
    },
    /// The key manager did not answer in time (XKS `DependencyTimeoutException`).
    Timeout {
        /// What timed out.
        reason: RString,
    },
    /// Anything else, including a panic caught at the boundary (XKS `InternalException`).
    Internal {
        /// What failed.
        reason: RString,
    },
}

impl KeySourceError {
    /// Checks `name` as a key name: 1 to `max_bytes` bytes (an HSM's label limit; 128 is
    /// the longest XKS external key id), no control characters. Refuses with
    /// [`KeySourceError::InvalidInput`] saying which rule failed.
    ///
    /// ```
    /// use keyhold_sdk::KeySourceError;
    /// assert!(KeySourceError::check_name("data-key-1", 128).is_ok());
    /// assert!(KeySourceError::check_name("", 128).is_err());
    /// assert!(KeySourceError::check_name("a\nb", 128).is_err());
    /// ```
    pub fn check_name(name: &str, max_bytes: usize) -> Result<(), Self> {
        if name.is_empty() || name.len() > max_bytes {
            return Err(KeySourceError::invalid_input(format!(
                "key names have 1 to {max_bytes} bytes, got {}",
                name.len()
            )));
        }
        if name.chars().any(char::is_control) {
            return Err(KeySourceError::invalid_input(
                "key names must not contain control characters",
            ));
        }
        Ok(())
    }

    /// The checks every operation makes once the key is found, in the order the host and
    /// the conformance kit expect: the key is enabled ([`KeySourceError::Disabled`]), then
    /// its usage allows `op` ([`KeySourceError::KeyUsage`]).
    ///
    /// ```
    /// use keyhold_sdk::{KeySourceError, KeyUsage, Operation};
    /// assert!(KeySourceError::check_use("k", true, KeyUsage::ENCRYPT, Operation::Encrypt).is_ok());
    /// let err = KeySourceError::check_use("k", false, KeyUsage::DECRYPT, Operation::Encrypt);
    /// assert!(matches!(err, Err(KeySourceError::Disabled { .. })));
    /// ```
    pub fn check_use(key: &str, enabled: bool, usage: KeyUsage, op: Operation) -> Result<(), Self> {
        if !enabled {
            return Err(KeySourceError::Disabled { key: key.into() });
        }
        if !usage.contains(op.required_usage()) {
            return Err(KeySourceError::KeyUsage {
                key: key.into(),
                operation: op,
            });
        }
        Ok(())
    }

    /// `Ok(())` when `problems` is empty, otherwise [`KeySourceError::InvalidKey`] naming
    /// `key` and every problem (one sentence per failing attribute): the answer of
    /// `validate_health_check_key`.
    ///
    /// ```
    /// use keyhold_sdk::KeySourceError;
    /// assert!(KeySourceError::check_key("hc", Vec::<String>::new()).is_ok());
    /// let err = KeySourceError::check_key("hc", vec!["exportable must be false"]).unwrap_err();
    /// assert!(err.to_string().contains("exportable must be false"));
    /// ```
    pub fn check_key<P: Into<RString>>(key: &str, problems: Vec<P>) -> Result<(), Self> {
        if problems.is_empty() {
            return Ok(());
        }
        Err(KeySourceError::InvalidKey {
            key: key.into(),
            problems: problems.into_iter().map(Into::into).collect(),
        })
    }

    /// Shorthand for [`KeySourceError::Internal`].
    pub fn internal(reason: impl fmt::Display) -> Self {
        KeySourceError::Internal {
            reason: reason.to_string().into(),
        }
    }

    /// Shorthand for [`KeySourceError::InvalidInput`].
    pub fn invalid_input(reason: impl fmt::Display) -> Self {
        KeySourceError::InvalidInput {
            reason: reason.to_string().into(),
        }
    }

    /// Shorthand for [`KeySourceError::Unavailable`].
    pub fn unavailable(reason: impl fmt::Display) -> Self {
        KeySourceError::Unavailable {
            reason: reason.to_string().into(),
        }
    }

    /// Shorthand for [`KeySourceError::NotFound`].
    pub fn not_found(key: &str) -> Self {
        KeySourceError::NotFound { key: key.into() }
    }

    /// The kind of this error, without its details.
    pub fn kind(&self) -> KeySourceErrorKind {
        match self {
            KeySourceError::NotFound { .. } => KeySourceErrorKind::NotFound,
            KeySourceError::AlreadyExists { .. } => KeySourceErrorKind::AlreadyExists,
            KeySourceError::Disabled { .. } => KeySourceErrorKind::Disabled,
            KeySourceError::KeyUsage { .. } => KeySourceErrorKind::KeyUsage,
            KeySourceError::InvalidCiphertext => KeySourceErrorKind::InvalidCiphertext,
            KeySourceError::InvalidKey { .. } => KeySourceErrorKind::InvalidKey,
            KeySourceError::InvalidInput { .. } => KeySourceErrorKind::InvalidInput,
            KeySourceError::Unsupported { .. } => KeySourceErrorKind::Unsupported,
            KeySourceError::Unavailable { .. } => KeySourceErrorKind::Unavailable,
            KeySourceError::Timeout { .. } => KeySourceErrorKind::Timeout,
            KeySourceError::Internal { .. } => KeySourceErrorKind::Internal,
        }
    }
}

/// The kind of a [`KeySourceError`]: one per variant, without the details. The host
/// maps each kind onto one XKS error with an exhaustive match, so a kind added here
/// cannot go unmapped; the XKS error each kind is answered with is named on it.
///
/// Computed on either side of the plugin boundary from the error itself; it never
/// crosses the boundary, so it is not part of the ABI.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeySourceErrorKind {
    /// [`KeySourceError::NotFound`]: XKS `KeyNotFoundException`.
    NotFound,
    /// [`KeySourceError::AlreadyExists`]: XKS `ValidationException`.
    AlreadyExists,
    /// [`KeySourceError::Disabled`]: XKS `InvalidStateException`.
    Disabled,
    /// [`KeySourceError::KeyUsage`]: XKS `InvalidKeyUsageException`.
    KeyUsage,
    /// [`KeySourceError::InvalidCiphertext`]: XKS `InvalidCiphertextException`.
    InvalidCiphertext,
    /// [`KeySourceError::InvalidKey`]: XKS `ValidationException`.
    InvalidKey,
    /// [`KeySourceError::InvalidInput`]: XKS `ValidationException`.
    InvalidInput,
    /// [`KeySourceError::Unsupported`]: XKS `UnsupportedOperationException`.
    Unsupported,
    /// [`KeySourceError::Unavailable`]: XKS `InternalException` (health reports
    /// `UNAVAILABLE`).
    Unavailable,
    /// [`KeySourceError::Timeout`]: XKS `DependencyTimeoutException`.
    Timeout,
    /// [`KeySourceError::Internal`]: XKS `InternalException`.
    Internal,
}

impl fmt::Display for KeySourceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeySourceError::NotFound { key } => write!(f, "key '{key}' not found"),
            KeySourceError::AlreadyExists { key } => write!(f, "key '{key}' already exists"),
            KeySourceError::Disabled { key } => write!(f, "key '{key}' is disabled"),
            KeySourceError::KeyUsage { key, operation } => {
                write!(f, "key '{key}' does not allow {operation}")
            }
            KeySourceError::InvalidCiphertext => f.write_str(
                "ciphertext, initialization vector, additional authenticated data or \
                 authentication tag did not verify",
            ),
            KeySourceError::InvalidKey { key, problems } => {
                write!(f, "key '{key}' is not acceptable: ")?;
                for (i, p) in problems.iter().enumerate() {
                    if i > 0 {
                        f.write_str("; ")?;
                    }
                    f.write_str(p)?;
                }
                Ok(())
            }
            KeySourceError::InvalidInput { reason } => write!(f, "invalid input: {reason}"),
            KeySourceError::Unsupported { reason } => write!(f, "not supported: {reason}"),
            KeySourceError::Unavailable { reason } => {
                write!(f, "key manager unavailable: {reason}")
            }
            KeySourceError::Timeout { reason } => write!(f, "key manager timed out: {reason}"),
            KeySourceError::Internal { reason } => write!(f, "internal error: {reason}"),
        }
    }
}

impl std::error::Error for KeySourceError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_variant_has_its_kind() {
        use KeySourceErrorKind as K;
        let cases = [
            (KeySourceError::not_found("k"), K::NotFound),
            (
                KeySourceError::AlreadyExists { key: "k".into() },
                K::AlreadyExists,
            ),
            (KeySourceError::Disabled { key: "k".into() }, K::Disabled),
            (
                KeySourceError::KeyUsage {
                    key: "k".into(),
                    operation: Operation::Encrypt,
                },
                K::KeyUsage,
            ),
            (KeySourceError::InvalidCiphertext, K::InvalidCiphertext),
            (
                KeySourceError::InvalidKey {
                    key: "k".into(),
                    problems: RVec::new(),
                },
                K::InvalidKey,
            ),
            (KeySourceError::invalid_input("x"), K::InvalidInput),
            (
                KeySourceError::Unsupported { reason: "x".into() },
                K::Unsupported,
            ),
            (KeySourceError::Timeout { reason: "x".into() }, K::Timeout),
            (KeySourceError::unavailable("x"), K::Unavailable),
            (KeySourceError::internal("x"), K::Internal),
        ];
        for (err, kind) in cases {
            assert_eq!(err.kind(), kind, "{err}");
        }
    }

    #[test]
    fn invalid_key_names_every_problem() {
        let err = KeySourceError::InvalidKey {
            key: "hc".into(),
            problems: vec![
                "CKA_SENSITIVE must be true".into(),
                "CKA_WRAP must be true".into(),
            ]
            .into(),
        };
        assert_eq!(
            err.to_string(),
            "key 'hc' is not acceptable: CKA_SENSITIVE must be true; CKA_WRAP must be true"
        );
    }
}

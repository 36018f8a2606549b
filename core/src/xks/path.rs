//! Parsing XKS request paths: `[/<prefix>]/kms/xks/v1/health` and
//! `[/<prefix>]/kms/xks/v1/keys/<externalKeyId>/{metadata,encrypt,decrypt}`.

/// A key operation (its [`XksOp`](super::XksOp) names it in logs and metrics).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyOp {
    /// GetKeyMetadata.
    Metadata,
    /// Encrypt.
    Encrypt,
    /// Decrypt.
    Decrypt,
}

/// What a path asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum XksPath<'a> {
    /// GetHealthStatus of the store at `base`.
    Health {
        /// The base path (`XksProxyUriPath`).
        base: &'a str,
    },
    /// A key operation.
    Key {
        /// The base path.
        base: &'a str,
        /// The external key id, as in the path (validated later).
        key_id: &'a str,
        /// The operation.
        op: KeyOp,
    },
}

const SUFFIX: &str = "/kms/xks/v1";

/// Splits a request path into base path and operation; `None` when the path is no XKS
/// operation URI. Key ids cannot contain '/', so parsing from the right is unambiguous.
pub fn parse(path: &str) -> Option<XksPath<'_>> {
    if let Some(base) = path.strip_suffix("/health") {
        if base.ends_with(SUFFIX) {
            return Some(XksPath::Health { base });
        }
    }
    let (rest, op) = path.rsplit_once('/')?;
    let op = match op {
        "metadata" => KeyOp::Metadata,
        "encrypt" => KeyOp::Encrypt,
        "decrypt" => KeyOp::Decrypt,
        _ => return None,
    };
    let (rest, key_id) = rest.rsplit_once('/')?;
    let base = rest.strip_suffix("/keys")?;
    if !base.ends_with(SUFFIX) {
        return None;
    }
    Some(XksPath::Key { base, key_id, op })
}

#[cfg(test)]
mod tests;

//! Parsing XKS request paths: `[/<prefix>]/kms/xks/v1/health` and
//! `[/<prefix>]/kms/xks/v1/keys/<externalKeyId>/{metadata,encrypt,decrypt}`.

/// A key operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyOp {
    /// GetKeyMetadata.
    Metadata,
    /// Encrypt.
    Encrypt,
    /// Decrypt.
    Decrypt,
}

impl KeyOp {
    /// The operation's name in logs and metrics.
    pub fn name(self) -> &'static str {
        match self {
            KeyOp::Metadata => "GetKeyMetadata",
            KeyOp::Encrypt => "Encrypt",
            KeyOp::Decrypt => "Decrypt",
        }
    }
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
mod tests {
    use super::*;

    #[test]
    fn parses_every_operation() {
        assert_eq!(
            parse("/tenants/acme/kms/xks/v1/health"),
            Some(XksPath::Health {
                base: "/tenants/acme/kms/xks/v1"
            })
        );
        assert_eq!(
            parse("/kms/xks/v1/health"),
            Some(XksPath::Health {
                base: "/kms/xks/v1"
            })
        );
        assert_eq!(
            parse("/p/kms/xks/v1/keys/k-1/encrypt"),
            Some(XksPath::Key {
                base: "/p/kms/xks/v1",
                key_id: "k-1",
                op: KeyOp::Encrypt
            })
        );
        assert_eq!(
            parse("/kms/xks/v1/keys/k/metadata"),
            Some(XksPath::Key {
                base: "/kms/xks/v1",
                key_id: "k",
                op: KeyOp::Metadata
            })
        );
        assert!(matches!(
            parse("/p/kms/xks/v1/keys/k/decrypt"),
            Some(XksPath::Key {
                op: KeyOp::Decrypt,
                ..
            })
        ));
    }

    #[test]
    fn rejects_everything_else() {
        for p in [
            "/",
            "",
            "/p/kms/xks/v1",
            "/p/kms/xks/v1/",
            "/p/kms/xks/v2/health",
            "/p/kms/xks/v1/keys/k/sign",
            "/p/kms/xks/v1/keys//encrypt/x",
            "/p/kms/xks/v1/key/k/encrypt",
            "/p/kms/xks/v1/keys/a/b/encrypt",
            "/p/health",
        ] {
            assert_eq!(parse(p), None, "{p}");
        }
    }
}

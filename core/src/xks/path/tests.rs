//! Tests of XKS path parsing.

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

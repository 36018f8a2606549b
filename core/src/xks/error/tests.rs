//! Tests of the XKS error table and the mapping of key-source errors onto it.

use keyhold_sdk::Operation;

use super::*;

#[test]
fn statuses_and_names_follow_the_specification() {
    use XksErrorKind::*;
    let table = [
        (Validation, 400, "ValidationException"),
        (InvalidState, 400, "InvalidStateException"),
        (InvalidCiphertext, 400, "InvalidCiphertextException"),
        (InvalidKeyUsage, 400, "InvalidKeyUsageException"),
        (AuthenticationFailed, 401, "AuthenticationFailedException"),
        (AccessDenied, 403, "AccessDeniedException"),
        (KeyNotFound, 404, "KeyNotFoundException"),
        (InvalidUriPath, 404, "InvalidUriPathException"),
        (Throttling, 429, "ThrottlingException"),
        (UnsupportedOperation, 501, "UnsupportedOperationException"),
        (DependencyTimeout, 503, "DependencyTimeoutException"),
        (Internal, 500, "InternalException"),
        (MethodNotAllowed, 405, "ValidationException"),
    ];
    for (kind, status, name) in table {
        assert_eq!(kind.status().as_u16(), status);
        assert_eq!(kind.name(), name);
        assert_eq!(XksErrorKind::NAMED[kind.named_index()].name(), name);
    }
}

#[test]
fn named_kinds_have_distinct_names_in_enum_order() {
    for (i, kind) in XksErrorKind::NAMED.iter().enumerate() {
        assert_eq!(kind.named_index(), i, "{kind:?}");
        assert!(
            XksErrorKind::NAMED[..i]
                .iter()
                .all(|k| k.name() != kind.name())
        );
    }
}

#[test]
fn every_key_source_error_maps_to_an_xks_error() {
    let cases = [
        (KeySourceError::not_found("k"), "KeyNotFoundException"),
        (
            KeySourceError::Disabled { key: "k".into() },
            "InvalidStateException",
        ),
        (
            KeySourceError::KeyUsage {
                key: "k".into(),
                operation: Operation::Encrypt,
            },
            "InvalidKeyUsageException",
        ),
        (
            KeySourceError::InvalidCiphertext,
            "InvalidCiphertextException",
        ),
        (KeySourceError::invalid_input("x"), "ValidationException"),
        (
            KeySourceError::AlreadyExists { key: "k".into() },
            "ValidationException",
        ),
        (
            KeySourceError::InvalidKey {
                key: "k".into(),
                problems: Default::default(),
            },
            "ValidationException",
        ),
        (
            KeySourceError::Unsupported { reason: "x".into() },
            "UnsupportedOperationException",
        ),
        (
            KeySourceError::Timeout { reason: "x".into() },
            "DependencyTimeoutException",
        ),
        (KeySourceError::unavailable("x"), "InternalException"),
        (KeySourceError::internal("x"), "InternalException"),
    ];
    for (err, name) in cases {
        assert_eq!(XksErrorKind::from(&err).name(), name, "{err}");
    }
}

#[test]
fn every_plugin_call_error_maps_to_an_xks_error() {
    let source_name = "s".to_string();
    let cases = [
        (
            PluginCallError::Source(KeySourceError::InvalidCiphertext),
            "InvalidCiphertextException",
        ),
        (
            PluginCallError::Busy {
                source_name: source_name.clone(),
                ms: 1,
            },
            "ThrottlingException",
        ),
        (
            PluginCallError::Timeout {
                source_name: source_name.clone(),
                what: "encrypt",
                ms: 1,
            },
            "DependencyTimeoutException",
        ),
        (
            PluginCallError::Internal {
                source_name,
                what: "encrypt",
                reason: "x".into(),
            },
            "InternalException",
        ),
    ];
    for (err, name) in cases {
        let xks = XksError::from(err);
        assert_eq!(xks.kind.name(), name, "{xks}");
    }
}

#[test]
fn messages_are_printable_ascii_under_512() {
    assert_eq!(sanitize_message("caf\u{e9}\n"), "caf??");
    let long = "x".repeat(2000);
    let s = sanitize_message(&long);
    assert!(s.len() < 512);
    assert!(s.ends_with("..."));
    assert_eq!(sanitize_message(&"y".repeat(511)).len(), 511);
}

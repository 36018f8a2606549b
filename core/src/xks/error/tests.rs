//! Tests of the XKS error table and the mapping of key-source errors onto it.

use keyhold_sdk::Operation;

use super::*;

/// Each kind as `"<kind> <status> <errorName>"`, one a line.
fn table(kinds: &[XksErrorKind]) -> String {
    kinds
        .iter()
        .map(|k| format!("{k:?} {} {}\n", k.status().as_u16(), k.name()))
        .collect()
}

#[test]
fn statuses_and_names_follow_the_specification() {
    let mut kinds = XksErrorKind::NAMED.to_vec();
    kinds.push(XksErrorKind::MethodNotAllowed);
    assert_eq!(
        table(&kinds),
        "\
Validation 400 ValidationException
InvalidState 400 InvalidStateException
InvalidCiphertext 400 InvalidCiphertextException
InvalidKeyUsage 400 InvalidKeyUsageException
AuthenticationFailed 401 AuthenticationFailedException
AccessDenied 403 AccessDeniedException
KeyNotFound 404 KeyNotFoundException
InvalidUriPath 404 InvalidUriPathException
Throttling 429 ThrottlingException
UnsupportedOperation 501 UnsupportedOperationException
DependencyTimeout 503 DependencyTimeoutException
Internal 500 InternalException
MethodNotAllowed 405 ValidationException
"
    );
    for kind in kinds {
        assert_eq!(XksErrorKind::NAMED[kind.named_index()].name(), kind.name());
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
    let errors = [
        KeySourceError::not_found("k"),
        KeySourceError::Disabled { key: "k".into() },
        KeySourceError::KeyUsage {
            key: "k".into(),
            operation: Operation::Encrypt,
        },
        KeySourceError::InvalidCiphertext,
        KeySourceError::invalid_input("x"),
        KeySourceError::AlreadyExists { key: "k".into() },
        KeySourceError::InvalidKey {
            key: "k".into(),
            problems: Default::default(),
        },
        KeySourceError::Unsupported { reason: "x".into() },
        KeySourceError::Timeout { reason: "x".into() },
        KeySourceError::unavailable("x"),
        KeySourceError::internal("x"),
    ];
    let mapped: String = errors
        .iter()
        .map(|e| format!("{:?} {}\n", e.kind(), XksErrorKind::from(e).name()))
        .collect();
    assert_eq!(
        mapped,
        "\
NotFound KeyNotFoundException
Disabled InvalidStateException
KeyUsage InvalidKeyUsageException
InvalidCiphertext InvalidCiphertextException
InvalidInput ValidationException
AlreadyExists ValidationException
InvalidKey ValidationException
Unsupported UnsupportedOperationException
Timeout DependencyTimeoutException
Unavailable InternalException
Internal InternalException
"
    );
}

#[test]
fn every_plugin_call_error_maps_to_an_xks_error() {
    let source_name = || "s".to_string();
    let errors = [
        PluginCallError::Source(KeySourceError::InvalidCiphertext),
        PluginCallError::Busy {
            source_name: source_name(),
            ms: 1,
        },
        PluginCallError::Timeout {
            source_name: source_name(),
            what: "encrypt",
            ms: 1,
        },
        PluginCallError::Internal {
            source_name: source_name(),
            what: "encrypt",
            reason: "x".into(),
        },
    ];
    let names: Vec<&str> = errors
        .into_iter()
        .map(|e| XksError::from(e).kind.name())
        .collect();
    assert_eq!(
        names,
        [
            "InvalidCiphertextException",
            "ThrottlingException",
            "DependencyTimeoutException",
            "InternalException",
        ]
    );
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

#[test]
fn a_405_allows_post_unless_told_otherwise() {
    let allow = |e: XksError| {
        e.into_response()
            .headers()
            .get(header::ALLOW)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let refused = || XksError::new(XksErrorKind::MethodNotAllowed, "no");
    assert_eq!(allow(refused()).as_deref(), Some("POST"));
    assert_eq!(
        allow(refused().allowing("GET, HEAD")).as_deref(),
        Some("GET, HEAD")
    );
    assert_eq!(allow(XksError::validation("other")), None);
}

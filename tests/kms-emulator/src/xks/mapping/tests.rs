//! Unit tests of the proxy-error mapping table.

use super::*;

fn proxy(name: &str) -> XksFailure {
    XksFailure::Proxy {
        status: 400,
        name: name.into(),
    }
}

#[test]
fn store_administration_follows_the_specification() {
    let f = Family::StoreAdmin;
    for (failure, code) in [
        (
            proxy("AuthenticationFailedException"),
            "XksProxyIncorrectAuthenticationCredentialException",
        ),
        (
            proxy("InvalidUriPathException"),
            "XksProxyInvalidConfigurationException",
        ),
        (
            proxy("ValidationException"),
            "XksProxyInvalidResponseException",
        ),
        (
            proxy("InternalException"),
            "XksProxyInvalidResponseException",
        ),
        (
            proxy("DependencyTimeoutException"),
            "XksProxyUriUnreachableException",
        ),
        (
            proxy("ThrottlingException"),
            "XksProxyUriUnreachableException",
        ),
        (
            XksFailure::Unreachable("refused".into()),
            "XksProxyUriUnreachableException",
        ),
        (
            XksFailure::Tls("unknown issuer".into()),
            "XksProxyUriUnreachableException",
        ),
        (XksFailure::Timeout, "XksProxyUriUnreachableException"),
        (
            XksFailure::Malformed("not JSON".into()),
            "XksProxyInvalidResponseException",
        ),
    ] {
        assert_eq!(exception(&failure, f), code, "{failure:?}");
    }
}

#[test]
fn create_key_and_crypto_follow_the_specification() {
    for (name, code) in [
        (
            "InvalidStateException",
            "XksKeyInvalidConfigurationException",
        ),
        (
            "InvalidKeyUsageException",
            "XksKeyInvalidConfigurationException",
        ),
        ("KeyNotFoundException", "XksKeyNotFoundException"),
        ("AccessDeniedException", "KMSInvalidStateException"),
        (
            "AuthenticationFailedException",
            "CustomKeyStoreInvalidStateException",
        ),
        (
            "InvalidUriPathException",
            "CustomKeyStoreInvalidStateException",
        ),
    ] {
        assert_eq!(exception(&proxy(name), Family::CreateKey), code, "{name}");
    }
    assert_eq!(
        exception(&XksFailure::Timeout, Family::CreateKey),
        "CustomKeyStoreInvalidStateException"
    );
    for f in [
        proxy("InvalidCiphertextException"),
        proxy("KeyNotFoundException"),
        XksFailure::Timeout,
        XksFailure::InvalidCiphertext,
    ] {
        assert_eq!(
            exception(&f, Family::Crypto),
            "KMSInvalidStateException",
            "{f:?}"
        );
    }
}

#[test]
fn connection_error_codes_are_the_models() {
    for (failure, code) in [
        (
            proxy("AuthenticationFailedException"),
            "INVALID_CREDENTIALS",
        ),
        (proxy("AccessDeniedException"), "XKS_PROXY_ACCESS_DENIED"),
        (
            proxy("InvalidUriPathException"),
            "XKS_PROXY_INVALID_CONFIGURATION",
        ),
        (proxy("DependencyTimeoutException"), "XKS_PROXY_TIMED_OUT"),
        (proxy("InvalidStateException"), "XKS_PROXY_INVALID_RESPONSE"),
        (
            XksFailure::Unreachable("refused".into()),
            "XKS_PROXY_NOT_REACHABLE",
        ),
        (
            XksFailure::Tls("bad certificate".into()),
            "XKS_PROXY_INVALID_TLS_CONFIGURATION",
        ),
        (XksFailure::Timeout, "XKS_PROXY_TIMED_OUT"),
        (
            XksFailure::Malformed("x".into()),
            "XKS_PROXY_INVALID_RESPONSE",
        ),
    ] {
        assert_eq!(connection_error_code(&failure), code, "{failure:?}");
    }
}

#[test]
fn messages_never_echo_the_proxys_own_text() {
    let m = message(&proxy("KeyNotFoundException"));
    assert!(m.contains("not found"), "{m}");
    assert!(message(&proxy("SomethingNew")).contains("SomethingNew"));
}

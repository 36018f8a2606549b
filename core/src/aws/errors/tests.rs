use super::*;

#[test]
fn codes_are_classified() {
    let cases = [
        ("ThrottlingException", AwsErrorKind::Throttled),
        ("Throttling", AwsErrorKind::Throttled),
        ("UnrecognizedClientException", AwsErrorKind::Credentials),
        ("InvalidSignatureException", AwsErrorKind::Credentials),
        ("AccessDeniedException", AwsErrorKind::Credentials),
        ("AccessDenied", AwsErrorKind::Credentials),
        ("ExpiredTokenException", AwsErrorKind::Credentials),
        ("InvalidClientTokenId", AwsErrorKind::Credentials),
        ("CustomKeyStoreInvalidStateException", AwsErrorKind::Service),
        ("XksProxyUriUnreachableException", AwsErrorKind::Service),
        ("NotFoundException", AwsErrorKind::Service),
        ("SomethingNewException", AwsErrorKind::Service),
    ];
    for (code, kind) in cases {
        assert_eq!(classify_code(code), kind, "{code}");
    }
}

#[test]
fn hints_say_what_to_do() {
    let cases = [
        (
            "ListKeys",
            "UnrecognizedClientException",
            "access key id and secret",
        ),
        ("ListKeys", "InvalidSignatureException", "secret access key"),
        (
            "CreateKey",
            "AccessDeniedException",
            "kms:CreateKey permission",
        ),
        ("AssumeRole", "AccessDenied", "assume the role"),
        (
            "DeleteCustomKeyStore",
            "CustomKeyStoreInvalidStateException",
            "disconnect the key store first",
        ),
        (
            "UpdateCustomKeyStore",
            "CustomKeyStoreInvalidStateException",
            "disconnect the key store first",
        ),
        (
            "ConnectCustomKeyStore",
            "CustomKeyStoreInvalidStateException",
            "must be disconnected",
        ),
        (
            "CreateKey",
            "CustomKeyStoreInvalidStateException",
            "connect the key store first",
        ),
        (
            "DeleteCustomKeyStore",
            "CustomKeyStoreHasCMKsException",
            "schedule the deletion",
        ),
        (
            "CreateCustomKeyStore",
            "XksProxyUriUnreachableException",
            "reachable from AWS KMS",
        ),
        (
            "CreateCustomKeyStore",
            "XksProxyInvalidResponseException",
            "reachable from AWS KMS",
        ),
        (
            "CreateCustomKeyStore",
            "CustomKeyStoreNameInUseException",
            "choose another",
        ),
        (
            "CreateCustomKeyStore",
            "XksProxyUriInUseException",
            "another URI path",
        ),
        (
            "CreateKey",
            "XksKeyNotFoundException",
            "does not know this external key",
        ),
        (
            "CreateKey",
            "XksKeyAlreadyInUseException",
            "use another key",
        ),
        ("ListKeys", "ThrottlingException", "retry later"),
        ("CreateKey", "LimitExceededException", "quota"),
        (
            "DescribeKey",
            "SomethingNewException",
            "documentation of DescribeKey",
        ),
    ];
    for (op, code, want) in cases {
        let h = hint(op, code);
        assert!(h.contains(want), "{op} {code}: '{h}' lacks '{want}'");
    }
}

#[test]
fn answered_errors_name_the_operation_code_message_and_hint() {
    let e = answered(
        Service::Kms,
        "DeleteCustomKeyStore",
        "CustomKeyStoreInvalidStateException",
        Some("the store is CONNECTED"),
    );
    assert_eq!(e.kind, AwsErrorKind::Service);
    assert!(e.is("CustomKeyStoreInvalidStateException"));
    assert_eq!(e.http_status(), 409);
    for part in [
        "AWS KMS DeleteCustomKeyStore",
        "CustomKeyStoreInvalidStateException",
        "the store is CONNECTED",
        "disconnect the key store first",
    ] {
        assert!(e.message.contains(part), "'{}' lacks '{part}'", e.message);
    }
    let e = answered(Service::Sts, "AssumeRole", "AccessDenied", None);
    assert_eq!(e.kind, AwsErrorKind::Credentials);
    assert!(e.message.starts_with("AWS STS AssumeRole"), "{}", e.message);
}

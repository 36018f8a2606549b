//! Unit tests of SigV4 verification against AWS's own signer.

use std::time::{Duration, SystemTime};

use super::*;

const AKID: &str = "AKIAIOSFODNN7EXAMPLE";
const SECRET: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";

/// Signs a KMS request as the SDK would; returns (headers, Authorization).
fn signed(secret: &str, token: Option<&str>, at: SystemTime, body: &[u8]) -> Vec<(String, String)> {
    let identity: Identity =
        Credentials::new(AKID, secret, token.map(str::to_string), None, "test").into();
    let params = SigningParams::builder()
        .identity(&identity)
        .region("eu-west-1")
        .name("kms")
        .time(at)
        .settings(SigningSettings::default())
        .build()
        .expect("params")
        .into();
    let mut headers = vec![
        ("host".to_string(), "127.0.0.1:4599".to_string()),
        (
            "content-type".to_string(),
            "application/x-amz-json-1.1".to_string(),
        ),
        (
            "x-amz-target".to_string(),
            "TrentService.ListKeys".to_string(),
        ),
        ("user-agent".to_string(), "test".to_string()),
    ];
    let signable = SignableRequest::new(
        "POST",
        "http://127.0.0.1:4599/",
        headers.iter().map(|(n, v)| (n.as_str(), v.as_str())),
        SignableBody::Bytes(body),
    )
    .expect("signable");
    let (instructions, _) = sign(signable, &params).expect("sign").into_parts();
    for (n, v) in instructions.headers() {
        headers.push((n.to_string(), v.to_string()));
    }
    headers
}

fn check(
    headers: &[(String, String)],
    body: &[u8],
    secret: &str,
    token: Option<&str>,
    now: SystemTime,
) -> Result<(), AuthFailure> {
    let req = Received {
        method: "POST",
        path_and_query: "/",
        headers,
        body,
    };
    let auth = parse_authorization(req.header("authorization").expect("authorization"))?;
    verify(&req, &auth, secret, token, now)
}

#[test]
fn a_valid_signature_verifies() {
    let now = SystemTime::now();
    let h = signed(SECRET, None, now, b"{}");
    assert_eq!(check(&h, b"{}", SECRET, None, now), Ok(()));
    let auth = parse_authorization(
        &h.iter()
            .find(|(n, _)| n == "authorization")
            .expect("auth")
            .1,
    )
    .expect("parse");
    assert_eq!(
        (
            auth.access_key_id.as_str(),
            auth.region.as_str(),
            auth.service.as_str()
        ),
        (AKID, "eu-west-1", "kms")
    );
    assert!(!auth.signed_headers.contains(&"user-agent".to_string()));
}

#[test]
fn tampering_or_a_wrong_secret_is_a_mismatch() {
    let now = SystemTime::now();
    let h = signed(SECRET, None, now, b"{}");
    assert_eq!(
        check(&h, b"{ }", SECRET, None, now),
        Err(AuthFailure::Mismatch)
    );
    assert_eq!(
        check(&h, b"{}", "another secret", None, now),
        Err(AuthFailure::Mismatch)
    );
    let mut other_target = h.clone();
    for (n, v) in other_target.iter_mut() {
        if n == "x-amz-target" {
            *v = "TrentService.CreateKey".into();
        }
    }
    assert_eq!(
        check(&other_target, b"{}", SECRET, None, now),
        Err(AuthFailure::Mismatch)
    );
}

#[test]
fn old_signatures_expire() {
    let then = SystemTime::now() - Duration::from_secs(6 * 60);
    let h = signed(SECRET, None, then, b"{}");
    assert_eq!(
        check(&h, b"{}", SECRET, None, SystemTime::now()),
        Err(AuthFailure::Expired)
    );
    let ok = SystemTime::now() - Duration::from_secs(4 * 60);
    let h = signed(SECRET, None, ok, b"{}");
    assert_eq!(check(&h, b"{}", SECRET, None, SystemTime::now()), Ok(()));
}

#[test]
fn temporary_credentials_need_their_token() {
    let now = SystemTime::now();
    let h = signed(SECRET, Some("token-1"), now, b"{}");
    assert_eq!(check(&h, b"{}", SECRET, Some("token-1"), now), Ok(()));
    assert_eq!(
        check(&h, b"{}", SECRET, Some("token-2"), now),
        Err(AuthFailure::Mismatch)
    );
    let without = signed(SECRET, None, now, b"{}");
    assert_eq!(
        check(&without, b"{}", SECRET, Some("token-1"), now),
        Err(AuthFailure::Mismatch)
    );
}

#[test]
fn malformed_authorization_headers_are_refused() {
    for bad in [
        "Basic abc",
        "AWS4-HMAC-SHA256 Credential=AKID/20260101/eu-west-1/kms/aws4_request, Signature=00",
        "AWS4-HMAC-SHA256 Credential=AKID/2026/eu-west-1/kms/aws4_request, SignedHeaders=host, Signature=00",
        "AWS4-HMAC-SHA256 Credential=AKID/20260101/eu-west-1/kms, SignedHeaders=host, Signature=00",
        "AWS4-HMAC-SHA256 Credential=AKID/20260101/eu-west-1/kms/aws4_request, SignedHeaders=x-amz-date, Signature=00",
    ] {
        assert!(
            matches!(parse_authorization(bad), Err(AuthFailure::Malformed(_))),
            "{bad}"
        );
    }
    assert!(parse_amz_date("2026-01-01").is_err());
    assert!(parse_amz_date("20260101T000000Z").is_ok());
}

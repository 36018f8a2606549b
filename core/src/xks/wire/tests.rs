//! Tests of the XKS bodies' parsing and validation.

use base64::{Engine, engine::general_purpose::STANDARD as B64};

use super::*;

#[test]
fn cdiv_matches_the_specification_example() {
    let d = |s: &str| B64.decode(s).unwrap();
    let value = cdiv(
        b"project=nile,department=marketing",
        b"key_version=1",
        &d("HMrlRw85cAJUd5Ax"),
        &d("ghxkK1txeDNn3q8Y"),
        &d("vBxN2ncH1oEkR8WVXpmyYQ=="),
    );
    assert_eq!(value, "qHA/ImC9h5HsLRXqCyPmWgYx7tzyoTplzILbP0fPXsc=");
}

#[test]
fn aad_framing() {
    assert_eq!(effective_aad(b"ab", None), b"ab");
    assert_eq!(
        effective_aad(b"ab", Some(b"m")),
        [0, 2, b'a', b'b', 1, b'm']
    );
    assert_eq!(effective_aad(b"", Some(b"")), [0, 0, 0]);
    // Metadata moved into the AAD gives a different AES-GCM AAD.
    assert_ne!(
        effective_aad(b"m", Some(b"")),
        effective_aad(b"", Some(b"m"))
    );
}

#[test]
fn base64_limits() {
    let at = B64.encode(vec![1u8; 4300]);
    assert_eq!(at.len(), 5736);
    assert_eq!(decode_b64(&at, "plaintext", 4300).unwrap().len(), 4300);
    let past = B64.encode(vec![1u8; 4301]);
    let e = decode_b64(&past, "plaintext", 4300).unwrap_err();
    assert_eq!(e.kind, XksErrorKind::UnsupportedOperation);
    let e = decode_b64("!!!!", "plaintext", 4300).unwrap_err();
    assert_eq!(e.kind, XksErrorKind::Validation);
    assert!(e.message.contains("plaintext"));
    assert_eq!(decode_b64("", "plaintext", 4300).unwrap().len(), 0);
}

#[test]
fn algorithm() {
    assert!(check_algorithm(Some(&"AES_GCM".to_string())).is_ok());
    assert_eq!(
        check_algorithm(None).unwrap_err().kind,
        XksErrorKind::Validation
    );
    assert_eq!(
        check_algorithm(Some(&"AES_CBC".to_string()))
            .unwrap_err()
            .kind,
        XksErrorKind::UnsupportedOperation
    );
}

#[test]
fn metadata_requirements() {
    let full: EncryptRequest = parse_body(
        br#"{"requestMetadata":{"awsPrincipalArn":"p","kmsKeyArn":"k","kmsOperation":"Encrypt","kmsRequestId":"r","futureField":1},"plaintext":"","encryptionAlgorithm":"AES_GCM","unknownTopLevel":true}"#,
    )
    .unwrap();
    assert!(require_metadata(&full.request_metadata, true).is_ok());
    let no_arn: EncryptRequest = parse_body(
        br#"{"requestMetadata":{"awsPrincipalArn":"p","kmsOperation":"Encrypt","kmsRequestId":"r"}}"#,
    )
    .unwrap();
    let e = require_metadata(&no_arn.request_metadata, true).unwrap_err();
    assert!(e.message.contains("kmsKeyArn"), "{e}");
    assert!(require_metadata(&no_arn.request_metadata, false).is_ok());
    let e = parse_body::<EncryptRequest>(b"{not json").unwrap_err();
    assert_eq!(e.kind, XksErrorKind::Validation);
    let e = parse_body::<EncryptRequest>(br#"{"plaintext": 5}"#).unwrap_err();
    assert_eq!(e.kind, XksErrorKind::Validation);
}

fn encrypt_body(fields: &str) -> Vec<u8> {
    format!(
        r#"{{"requestMetadata":{{"awsPrincipalArn":"p","kmsKeyArn":"k","kmsOperation":"Encrypt","kmsRequestId":"r"}},"encryptionAlgorithm":"AES_GCM"{fields}}}"#
    )
    .into_bytes()
}

fn validate<R: KeyRequest>(body: &[u8]) -> Result<R::Input, XksError> {
    parse_body::<R>(body)?.validate()
}

#[test]
fn encrypt_input() {
    let input = validate::<EncryptRequest>(&encrypt_body(
        r#","plaintext":"AAEC","additionalAuthenticatedData":"Aw==","ciphertextDataIntegrityValueAlgorithm":"SHA_256""#,
    ))
    .unwrap();
    assert_eq!(input.plaintext.as_slice(), [0, 1, 2]);
    assert_eq!(input.aad.as_slice(), [3]);
    assert!(input.want_cdiv);
    let input = validate::<EncryptRequest>(&encrypt_body(r#","plaintext":"""#)).unwrap();
    assert!(input.aad.is_empty() && !input.want_cdiv);
}

#[test]
fn decrypt_input_frames_the_aad_with_ciphertext_metadata() {
    let iv = B64.encode([1u8; 12]);
    let tag = B64.encode([2u8; 16]);
    let fields = format!(
        r#","ciphertext":"AAEC","initializationVector":"{iv}","authenticationTag":"{tag}","additionalAuthenticatedData":"YWI=","ciphertextMetadata":"bQ==""#
    );
    let input = validate::<DecryptRequest>(&encrypt_body(&fields)).unwrap();
    assert_eq!(input.ciphertext.as_slice(), [0, 1, 2]);
    assert_eq!(input.iv.as_slice(), [1u8; 12]);
    assert_eq!(input.tag.as_slice(), [2u8; 16]);
    assert_eq!(input.aad.as_slice(), [0, 2, b'a', b'b', 1, b'm']);
}

#[test]
fn refusals_name_the_field_and_the_problem_never_the_content() {
    let iv = B64.encode([1u8; 12]);
    let tag = B64.encode([2u8; 16]);
    let decrypt = |extra: &str| {
        format!(
            r#","ciphertext":"AAEC","initializationVector":"{iv}","authenticationTag":"{tag}"{extra}"#
        )
    };
    let long_iv = B64.encode([1u8; 100]);
    let cases: Vec<(Vec<u8>, bool, XksErrorKind, &str)> = vec![
        (
            encrypt_body(""),
            false,
            XksErrorKind::Validation,
            "plaintext",
        ),
        (
            encrypt_body(r#","plaintext":"SECRET!!""#),
            false,
            XksErrorKind::Validation,
            "plaintext",
        ),
        (
            encrypt_body(r#","plaintext":"","ciphertextDataIntegrityValueAlgorithm":"SECRET""#),
            false,
            XksErrorKind::UnsupportedOperation,
            "ciphertextDataIntegrityValueAlgorithm",
        ),
        (
            br#"{"encryptionAlgorithm":"SECRET","plaintext":""}"#.to_vec(),
            false,
            XksErrorKind::UnsupportedOperation,
            "encryptionAlgorithm",
        ),
        (
            br#"{"plaintext": "SECRET", "encryptionAlgorithm": 5}"#.to_vec(),
            false,
            XksErrorKind::Validation,
            "encryptionAlgorithm",
        ),
        (
            br#"{"requestMetadata": {"kmsRequestId": ["SECRET"]}}"#.to_vec(),
            false,
            XksErrorKind::Validation,
            "requestMetadata.kmsRequestId",
        ),
        (
            br#"["SECRET"]"#.to_vec(),
            false,
            XksErrorKind::Validation,
            "JSON object",
        ),
        (
            br#""SECRET""#.to_vec(),
            false,
            XksErrorKind::Validation,
            "JSON object",
        ),
        (
            br#"{"plaintext": "SECRET""#.to_vec(),
            false,
            XksErrorKind::Validation,
            "not valid JSON",
        ),
        (
            encrypt_body(&decrypt(
                r#","ciphertextMetadata":"U0VDUkVUU0VDUkVUU0VDUkVUU0VDUkVU""#,
            )),
            true,
            XksErrorKind::Validation,
            "ciphertextMetadata",
        ),
        (
            encrypt_body(&decrypt("").replace(&iv, &long_iv)),
            true,
            XksErrorKind::Validation,
            "initializationVector",
        ),
        (
            encrypt_body(&decrypt("").replace(&tag, &iv)),
            true,
            XksErrorKind::Validation,
            "authenticationTag",
        ),
    ];
    for (body, is_decrypt, kind, field) in cases {
        let e = if is_decrypt {
            validate::<DecryptRequest>(&body).err()
        } else {
            validate::<EncryptRequest>(&body).err()
        }
        .expect("refused");
        let text = String::from_utf8_lossy(&body);
        assert_eq!(e.kind, kind, "{text}: {e}");
        assert!(e.message.contains(field), "{text}: {e}");
        assert!(!e.message.contains("SECRET"), "{text}: {e}");
    }
}

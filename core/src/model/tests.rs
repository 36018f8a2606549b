use super::*;

#[test]
fn prefix_rules() {
    assert_eq!(
        normalize_uri_path_prefix("tenants/acme").unwrap(),
        "tenants/acme"
    );
    assert_eq!(
        normalize_uri_path_prefix("/tenants/acme/").unwrap(),
        "tenants/acme"
    );
    assert_eq!(normalize_uri_path_prefix("").unwrap(), "");
    assert_eq!(xks_base_path("tenants/acme"), "/tenants/acme/kms/xks/v1");
    assert_eq!(xks_base_path(""), "/kms/xks/v1");
    for bad in ["a//b", "a b", "a.b", "ümlaut", "a?b"] {
        assert!(normalize_uri_path_prefix(bad).is_err(), "{bad}");
    }
    // 1 + len + 11 <= 128  =>  len <= 116
    let at = "a".repeat(116);
    assert!(normalize_uri_path_prefix(&at).is_ok());
    assert_eq!(xks_base_path(&at).len(), 128);
    let past = "a".repeat(117);
    assert!(matches!(
        normalize_uri_path_prefix(&past),
        Err(ModelError::UriPathPrefix { .. })
    ));
}

/// `rule` accepts every `good` value and refuses every `bad` one.
fn accepts_only<T: std::fmt::Debug, E: std::fmt::Debug>(
    rule: impl Fn(&str) -> Result<T, E>,
    good: &[&str],
    bad: &[&str],
) {
    for v in good {
        assert!(rule(v).is_ok(), "{v:?} refused: {:?}", rule(v));
    }
    for v in bad {
        assert!(rule(v).is_err(), "{v:?} accepted");
    }
}

#[test]
fn external_key_id_rules() {
    accepts_only(
        validate_external_key_id,
        &["demo-key_1.v2", &"k".repeat(128)],
        &[&"k".repeat(129), "", "a/b", "a b"],
    );
}

#[test]
fn access_key_id_rules() {
    let a = |n| "A".repeat(n);
    // '1' is not base32, and lower case is not either.
    let bad = [
        &a(19),
        &a(31),
        "AAAAAAAAAAAAAAAAAAA1",
        "aaaaaaaaaaaaaaaaaaaa",
    ];
    let good = [
        &a(20),
        &a(30),
        "7MSKH6YXF3BEX3H3APGWHMI42G",
        "OL4OMBO6E27Z2EWQK6UJYOBY",
    ];
    accepts_only(validate_access_key_id, &good, &bad);
}

#[test]
fn secret_rules() {
    accepts_only(
        validate_secret,
        &[
            "R2waUCZNy/ulj/7eURO1g5oc8XXokuDrR53OzOURNaM=",
            "UGsVhs7lY4k7WboReepYN22iuC4VZMQPO8Laxcey7H/ny27974Yu",
            &"a".repeat(43),
            &"a".repeat(64),
        ],
        &[
            &"a".repeat(42),
            &"a".repeat(65),
            &format!("{}-", "a".repeat(43)),
        ],
    );
    let err = validate_secret("short").unwrap_err().to_string();
    assert!(
        !err.contains("short"),
        "the secret must never be echoed: {err}"
    );
}

#[test]
fn generated_credentials_are_valid() {
    for _ in 0..50 {
        let id = generate_access_key_id();
        validate_access_key_id(&id).unwrap();
        let secret = generate_secret();
        validate_secret(&secret).unwrap();
        assert_eq!(secret.len(), 44);
    }
    assert_ne!(generate_access_key_id(), generate_access_key_id());
    assert_eq!(access_key_id_from_bytes(&[0, 31, 32, 255]), "A7A7");
}

#[test]
fn max_credentials_range() {
    assert!(validate_max_credentials(2).is_ok());
    assert!(validate_max_credentials(20).is_ok());
    assert!(validate_max_credentials(1).is_err());
    assert!(validate_max_credentials(21).is_err());
}

#[test]
fn eviction_removes_the_oldest() {
    let existing = vec![
        ("B".to_string(), 20),
        ("A".to_string(), 10),
        ("C".to_string(), 30),
    ];
    assert!(credentials_to_evict(&existing, 4).is_empty());
    assert_eq!(credentials_to_evict(&existing, 3), vec!["A".to_string()]);
    assert_eq!(
        credentials_to_evict(&existing, 2),
        vec!["A".to_string(), "B".to_string()]
    );
}

#[test]
fn names() {
    assert!(validate_name("store", "acme").is_ok());
    assert!(validate_name("store", "").is_err());
    assert!(validate_name("store", "a/b").is_err());
    assert!(validate_name("store", &"x".repeat(65)).is_err());
}

#[test]
fn credentials_file_has_the_console_shape() {
    let file = CredentialsFile {
        uri_path: "/tenants/acme/kms/xks/v1".into(),
        credential: CredentialsFileCredential {
            access_key_id: "AKID".into(),
            raw_secret_access_key: "SECRET".into(),
        },
    };
    let json: serde_json::Value = serde_json::to_value(&file).unwrap();
    assert_eq!(json["XksProxyUriPath"], "/tenants/acme/kms/xks/v1");
    assert_eq!(
        json["XksProxyAuthenticationCredential"]["AccessKeyId"],
        "AKID"
    );
    assert_eq!(
        json["XksProxyAuthenticationCredential"]["RawSecretAccessKey"],
        "SECRET"
    );
}

#[test]
fn only_xks_capable_regions() {
    for ok in ["us-east-1", "eu-west-1", "us-gov-west-1", "ap-southeast-4"] {
        assert!(validate_region(ok).is_ok(), "{ok}");
    }
    for bad in [
        "cn-north-1",
        "cn-northwest-1",
        "moon-base-1",
        "EU-WEST-1",
        "eu-west",
        "eu",
    ] {
        assert!(validate_region(bad).is_err(), "{bad}");
    }
    let e = validate_region("cn-north-1").unwrap_err().to_string();
    assert!(e.contains("external key stores"), "{e}");
}

#[test]
fn a_key_held_by_other_sources_is_named_with_them() {
    assert_eq!(rules::held_elsewhere(&[]), "");
    let one = rules::held_elsewhere(&["luna".into()]);
    assert!(
        one.contains("key source 'luna' holds a key of that name"),
        "{one}"
    );
    assert!(one.contains("the store's own source"), "{one}");
    let two = rules::held_elsewhere(&["ctm2".into(), "luna".into()]);
    assert!(two.contains("key sources 'ctm2', 'luna' hold"), "{two}");
}

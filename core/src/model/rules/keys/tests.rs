use keyhold_sdk::{KeyAttribute, KeyInfo, KeyUsage};

use super::*;

fn key(usage: KeyUsage, attrs: &[(&str, &str)]) -> KeyInfo {
    KeyInfo {
        name: "k1".into(),
        bits: 256,
        usage,
        enabled: true,
        exportable: attrs.contains(&("CKA_EXTRACTABLE", "true")),
        deletable: attrs.contains(&("CKA_DESTROYABLE", "true")),
        attributes: attrs
            .iter()
            .map(|(n, v)| KeyAttribute {
                name: (*n).into(),
                value: (*v).into(),
            })
            .collect(),
    }
}

const ENC_DEC: KeyUsage = KeyUsage(1 | 2);

fn strong() -> Vec<(&'static str, &'static str)> {
    vec![
        ("CKA_EXTRACTABLE", "false"),
        ("CKA_SENSITIVE", "true"),
        ("CKA_PRIVATE", "true"),
        ("CKA_ENCRYPT", "true"),
        ("CKA_DECRYPT", "true"),
        ("CKA_DESTROYABLE", "false"),
    ]
}

fn with(attr: &'static str, value: &'static str) -> Vec<(&'static str, &'static str)> {
    let mut a = strong();
    for (n, v) in &mut a {
        if *n == attr {
            *v = value;
        }
    }
    a
}

#[test]
fn a_strong_pkcs11_key_backs_a_hyok_key() {
    assert!(hyok_key_problems(&key(ENC_DEC, &strong())).is_empty());
}

#[test]
fn each_failing_pkcs11_attribute_is_named() {
    let cases = [
        ("CKA_EXTRACTABLE", "true", "CKA_EXTRACTABLE must be false"),
        ("CKA_SENSITIVE", "false", "CKA_SENSITIVE must be true"),
        ("CKA_PRIVATE", "false", "CKA_PRIVATE must be true"),
        ("CKA_ENCRYPT", "false", "CKA_ENCRYPT must be true"),
        ("CKA_DECRYPT", "false", "CKA_DECRYPT must be true"),
    ];
    for (attr, value, problem) in cases {
        let p = hyok_key_problems(&key(ENC_DEC, &with(attr, value)));
        assert_eq!(p, vec![problem.to_string()], "{attr}={value}");
    }
}

#[test]
fn all_failures_are_listed_together() {
    let attrs = [
        ("CKA_EXTRACTABLE", "true"),
        ("CKA_SENSITIVE", "false"),
        ("CKA_PRIVATE", "false"),
        ("CKA_ENCRYPT", "true"),
        ("CKA_DECRYPT", "false"),
    ];
    let p = hyok_key_problems(&key(KeyUsage::ENCRYPT, &attrs));
    assert_eq!(
        p,
        vec![
            "CKA_EXTRACTABLE must be false",
            "CKA_SENSITIVE must be true",
            "CKA_PRIVATE must be true",
            "CKA_DECRYPT must be true",
        ]
    );
}

#[test]
fn sources_without_pkcs11_attributes_are_judged_on_the_common_fields() {
    // A ctm-like source: no attributes; exportable and usage tell.
    assert!(hyok_key_problems(&key(ENC_DEC, &[])).is_empty());
    let mut k = key(KeyUsage::ENCRYPT, &[]);
    k.exportable = true;
    assert_eq!(
        hyok_key_problems(&k),
        vec![
            "the key must not be exportable",
            "the key must allow decrypt"
        ]
    );
    // Attributes with values that are not booleans are not judged.
    assert!(hyok_key_problems(&key(ENC_DEC, &[("CKA_PRIVATE", "n/a")])).is_empty());
}

#[test]
fn a_deletable_key_is_no_health_check_key() {
    assert!(health_check_key_problems(&key(ENC_DEC, &strong())).is_empty());
    let p = health_check_key_problems(&key(ENC_DEC, &with("CKA_DESTROYABLE", "true")));
    assert_eq!(p.len(), 1);
    assert!(p[0].starts_with("CKA_DESTROYABLE must be false"), "{p:?}");
    let mut k = key(ENC_DEC, &[]);
    k.deletable = true;
    assert_eq!(
        health_check_key_problems(&k),
        vec!["the key must not be deletable"]
    );
}

#[test]
fn duplicate_names_are_counted() {
    let keys = vec![key(ENC_DEC, &[]), key(ENC_DEC, &[]), {
        let mut k = key(ENC_DEC, &[]);
        k.name = "other".into();
        k
    }];
    assert_eq!(count_named(&keys, "k1"), 2);
    assert_eq!(count_named(&keys, "other"), 1);
    assert_eq!(count_named(&keys, "none"), 0);
}

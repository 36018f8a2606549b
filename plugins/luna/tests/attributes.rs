//! validate_health_check_key refuses keys created directly with cryptoki that miss a
//! required attribute, naming it.

use cryptoki::{
    mechanism::Mechanism,
    object::{Attribute, KeyType, ObjectClass},
};
use keyhold_sdk::{KeySourceError, KeySourceImpl, testing::MemoryHost};
use keyhold_testkit::luna::LunaToken;
use plugin_luna::LunaSource;

fn template(label: &str, len: u64, change: Option<Attribute>) -> Vec<Attribute> {
    let mut t = vec![
        Attribute::Class(ObjectClass::SECRET_KEY),
        Attribute::KeyType(KeyType::AES),
        Attribute::ValueLen(len.into()),
        Attribute::Token(true),
        Attribute::Private(true),
        Attribute::Sensitive(true),
        Attribute::Extractable(false),
        Attribute::Encrypt(true),
        Attribute::Decrypt(true),
        Attribute::Wrap(true),
        Attribute::Unwrap(true),
        Attribute::Label(label.as_bytes().to_vec()),
    ];
    if let Some(change) = change {
        let ty = change.attribute_type();
        t.retain(|a| a.attribute_type() != ty);
        t.push(change);
    }
    t
}

#[test]
fn health_check_key_attributes_are_each_named() {
    let token = LunaToken::labelled("attributes");
    let source = LunaSource::open(
        &token.config(serde_json::json!({})),
        MemoryHost::new().boxed(),
    )
    .unwrap();
    let session = token.user_session();

    // (label, one attribute changed from a good health-check key, the problem named)
    let changed = [
        (
            "extractable",
            Attribute::Extractable(true),
            "CKA_EXTRACTABLE must be false",
        ),
        (
            "not-sensitive",
            Attribute::Sensitive(false),
            "CKA_SENSITIVE must be true",
        ),
        (
            "no-encrypt",
            Attribute::Encrypt(false),
            "CKA_ENCRYPT must be true",
        ),
        (
            "no-decrypt",
            Attribute::Decrypt(false),
            "CKA_DECRYPT must be true",
        ),
        ("no-wrap", Attribute::Wrap(false), "CKA_WRAP must be true"),
        (
            "no-unwrap",
            Attribute::Unwrap(false),
            "CKA_UNWRAP must be true",
        ),
    ];
    let mut cases: Vec<(&str, u64, Option<Attribute>, &str)> = vec![("good", 32, None, "")];
    cases.extend(changed.map(|(label, a, problem)| (label, 32, Some(a), problem)));
    cases.push(("aes-128", 16, None, "CKA_VALUE_LEN must be 32"));
    for (label, len, change, _) in &cases {
        session
            .generate_key(
                &Mechanism::AesKeyGen,
                &template(label, *len, change.clone()),
            )
            .unwrap();
    }
    for (label, _, _, problem) in cases {
        let result = source.validate_health_check_key(label);
        if problem.is_empty() {
            result.unwrap();
            continue;
        }
        match result {
            Err(KeySourceError::InvalidKey { key, problems }) => {
                assert_eq!(key.as_str(), label);
                assert_eq!(problems.len(), 1, "{label}: {problems:?}");
                assert!(problems[0].starts_with(problem), "{label}: {problems:?}");
            }
            other => panic!("{label}: expected InvalidKey, got {other:?}"),
        }
    }
    // Key usage reported from the attributes.
    let info = source.get_key("no-wrap").unwrap();
    assert_eq!(info.usage.names(), ["ENCRYPT", "DECRYPT", "UNWRAP"]);
    assert!(source.get_key("extractable").unwrap().exportable);
    assert!(matches!(
        source.validate_health_check_key("missing"),
        Err(KeySourceError::NotFound { .. })
    ));
}

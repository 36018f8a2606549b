//! validate_health_check_key refuses keys created directly with cryptoki that miss a
//! required attribute, naming it.

use cryptoki::object::Attribute;
use keyhold_sdk::{KeySourceError, KeySourceImpl, testing::MemoryHost};
use keyhold_testkit::luna::LunaToken;
use plugin_luna::LunaSource;

#[test]
fn health_check_key_attributes_are_each_named() {
    let token = LunaToken::labelled("attributes");
    let source = LunaSource::open(
        &token.config(serde_json::json!({})),
        MemoryHost::new().boxed(),
    )
    .unwrap();
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
        let mut changes = vec![Attribute::ValueLen((*len).into())];
        changes.extend(change.clone());
        token.generate_aes_key(label, &changes);
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

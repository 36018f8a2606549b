//! The luna plugin on a PKCS#11 v2.20 module (the test-only shim over SoftHSM2,
//! `tests/pkcs11-shim`: no CKA_DESTROYABLE, an unparsable `utcTime`, and in copies named
//! so, no AES-GCM or no token at all), the PIN checked while the token is already
//! logged in, and labels carried by two objects.

use std::path::PathBuf;

use cryptoki::object::{Attribute, AttributeType, ObjectClass};
use keyhold_sdk::{
    HealthStatus, KeySourceError, KeySourceImpl, KeyUsage, NewKey,
    testing::{MemoryHost, built_cdylib},
};
use keyhold_testkit::luna::{self, LunaToken, USER_PIN, round_trip};
use plugin_luna::LunaSource;
use serde_json::json;

/// The shim library, copied under a name holding `flavour` (`plain`, `nogcm`,
/// `notokens`) and `tag`: each copy is its own module instance with its own behaviour.
fn shim(flavour: &str, tag: &str) -> PathBuf {
    let env = luna::env(); // SoftHSM2 configured and initialised first.
    let built = built_cdylib("libkeyhold_pkcs11_shim.so");
    let copy = env.dir.join(format!("libshim-{flavour}-{tag}.so"));
    std::fs::copy(&built, &copy).expect("copy the shim");
    copy
}

fn open_on(
    module: &PathBuf,
    token: &LunaToken,
    host: &MemoryHost,
) -> Result<LunaSource, KeySourceError> {
    LunaSource::open(&token.config(json!({ "module": module })), host.boxed())
}

/// The `KeyInfo` attribute `name` of `key`, if shown.
fn shown(source: &LunaSource, key: &str, name: &str) -> Option<String> {
    source
        .get_key(key)
        .unwrap()
        .attributes
        .iter()
        .find(|a| a.name.as_str() == name)
        .map(|a| a.value.to_string())
}

/// Boolean attributes of the object labelled `label`, read with cryptoki directly.
fn read_back(token: &LunaToken, label: &str, which: &[AttributeType]) -> Vec<Attribute> {
    let session = token.user_session();
    let handles = session
        .find_objects(&[
            Attribute::Class(ObjectClass::SECRET_KEY),
            Attribute::Label(label.as_bytes().to_vec()),
        ])
        .unwrap();
    assert_eq!(handles.len(), 1, "{label}");
    session.get_attributes(handles[0], which).unwrap()
}

const SECURITY: [AttributeType; 12] = [
    AttributeType::Token,
    AttributeType::Private,
    AttributeType::Sensitive,
    AttributeType::Extractable,
    AttributeType::Modifiable,
    AttributeType::Sign,
    AttributeType::Verify,
    AttributeType::Derive,
    AttributeType::Encrypt,
    AttributeType::Decrypt,
    AttributeType::Wrap,
    AttributeType::Unwrap,
];

fn expected_security(usage: KeyUsage) -> Vec<Attribute> {
    vec![
        Attribute::Token(true),
        Attribute::Private(true),
        Attribute::Sensitive(true),
        Attribute::Extractable(false),
        Attribute::Modifiable(false),
        Attribute::Sign(false),
        Attribute::Verify(false),
        Attribute::Derive(false),
        Attribute::Encrypt(usage.contains(KeyUsage::ENCRYPT)),
        Attribute::Decrypt(usage.contains(KeyUsage::DECRYPT)),
        Attribute::Wrap(usage.contains(KeyUsage::WRAP)),
        Attribute::Unwrap(usage.contains(KeyUsage::UNWRAP)),
    ]
}

#[test]
fn a_v2_20_module_serves_keys_without_cka_destroyable_and_keeps_them_undeletable() {
    let token = LunaToken::new();
    let module = shim("plain", &token.label);
    let host = MemoryHost::new();
    // The shim answers C_GetTokenInfo with a utcTime that is not a date: the token is
    // still found by its label.
    let source = open_on(&module, &token, &host).unwrap();
    let logs = host.logs();
    assert!(
        logs.iter()
            .any(|(_, m)| m.contains("predates PKCS#11 2.40")),
        "{logs:?}"
    );
    assert!(source.info().model.contains(&token.label));
    assert_eq!(source.health()[0].status, HealthStatus::Active);

    // Created without CKA_DESTROYABLE (the shim refuses templates holding it).
    let usage = KeyUsage::ENCRYPT.union(KeyUsage::DECRYPT);
    let info = source.create_key(NewKey::new("k", usage)).unwrap();
    assert!(!info.deletable, "{info:?}");
    assert!(!info.exportable);
    round_trip(&source, "k").unwrap();
    assert_eq!(
        read_back(&token, "k", &SECURITY),
        expected_security(usage),
        "every security attribute is set explicitly"
    );
    for (name, value) in [
        ("CKA_EXTRACTABLE", "false"),
        ("CKA_SENSITIVE", "true"),
        ("CKA_PRIVATE", "true"),
        ("CKA_ENCRYPT", "true"),
        ("CKA_DECRYPT", "true"),
        ("CKA_WRAP", "false"),
        ("CKA_UNWRAP", "false"),
        ("CKA_SIGN", "false"),
        ("CKA_VERIFY", "false"),
        ("CKA_DERIVE", "false"),
        ("CKA_MODIFIABLE", "false"),
    ] {
        assert_eq!(shown(&source, "k", name).as_deref(), Some(value), "{name}");
    }
    assert_eq!(shown(&source, "k", "CKA_DESTROYABLE"), None);

    // The non-deletable promise is kept by the host's flag.
    assert!(host.entries().contains_key("nodelete/k"));
    match source.delete_key("k") {
        Err(KeySourceError::InvalidKey { problems, .. }) => {
            assert!(problems[0].contains("not deletable"), "{problems:?}")
        }
        other => panic!("expected InvalidKey, got {other:?}"),
    }
    round_trip(&source, "k").unwrap();
    // A deletable key is deleted.
    let info = source
        .create_key(NewKey {
            deletable: true,
            ..NewKey::new("d", KeyUsage::ALL)
        })
        .unwrap();
    assert!(info.deletable);
    source.delete_key("d").unwrap();
    assert!(matches!(
        source.get_key("d"),
        Err(KeySourceError::NotFound { .. })
    ));
}

/// The sdk's conformance kit (every rule a key source follows: round trips, IVs,
/// tampering, lengths, usages, enable/disable, health-check keys, deletion,
/// concurrency) on the v2.20 module, as on SoftHSM2 itself (tests/conformance.rs).
#[test]
fn the_conformance_kit_passes_on_a_v2_20_module() {
    let module = shim("plain", "conformance");
    let token = LunaToken::labelled("v220-conformance");
    let source = open_on(&module, &token, &MemoryHost::new()).expect("opens on the shim");
    let result = keyhold_sdk::conformance::run(&keyhold_sdk::guard(source));
    assert!(result.is_ok(), "conformance: {:?}", result.err());
}

#[test]
fn keys_on_a_v2_40_module_carry_cka_destroyable_and_explicit_attributes() {
    let token = LunaToken::new();
    // SoftHSM2 itself (PKCS#11 2.40), also in the matrix run on the 2.20 shim.
    let config = token.config(json!({ "module": luna::MODULE }));
    let source = LunaSource::open(&config, MemoryHost::new().boxed()).unwrap();
    source.create_key(NewKey::new("k", KeyUsage::ALL)).unwrap();
    let mut which = SECURITY.to_vec();
    which.push(AttributeType::Destroyable);
    let mut expected = expected_security(KeyUsage::ALL);
    expected.push(Attribute::Destroyable(false));
    assert_eq!(read_back(&token, "k", &which), expected);
    assert_eq!(
        shown(&source, "k", "CKA_DESTROYABLE").as_deref(),
        Some("false")
    );
    assert_eq!(shown(&source, "k", "CKA_SIGN").as_deref(), Some("false"));
}

#[test]
fn a_token_without_aes_gcm_is_refused_at_open_naming_the_mechanism() {
    let token = LunaToken::new();
    let module = shim("nogcm", &token.label);
    match open_on(&module, &token, &MemoryHost::new()) {
        Err(KeySourceError::Unsupported { reason }) => {
            assert!(reason.contains("CKM_AES_GCM"), "{reason}");
            assert!(reason.contains(&token.label), "{reason}");
            assert!(!reason.contains("CKM_AES_KEY_GEN"), "{reason}");
        }
        other => panic!("expected Unsupported, got {:?}", other.err()),
    }
    // The same token through the plain module opens.
    open_on(&shim("plain", &token.label), &token, &MemoryHost::new()).unwrap();
}

#[test]
fn an_unknown_label_lists_the_slots_whose_token_information_is_unparsable() {
    let token = LunaToken::new();
    let module = shim("plain", &token.label);
    let missing = format!("{}-missing", token.label);
    let err = LunaSource::open(
        &luna::config(&missing, json!({ "module": module })),
        MemoryHost::new().boxed(),
    )
    .err()
    .expect("refused");
    let text = err.to_string();
    assert!(
        text.contains(&format!("no token labelled '{missing}'")),
        "{text}"
    );
    assert!(text.contains("cannot be parsed"), "{text}");
    assert!(
        text.contains(&format!("(label '{}')", token.label)),
        "{text}"
    );
    assert!(
        !text.contains("SOFTHSM2_CONF"),
        "tokens are visible: {text}"
    );
}

#[test]
fn a_module_showing_no_token_at_all_hints_at_its_configuration() {
    let token = LunaToken::new();
    let module = shim("notokens", &token.label);
    let err = open_on(&module, &token, &MemoryHost::new())
        .err()
        .expect("refused");
    assert!(
        matches!(err, KeySourceError::InvalidInput { .. }),
        "{err:?}"
    );
    let text = err.to_string();
    assert!(text.contains("tokens present: []"), "{text}");
    assert!(
        text.contains("module_env") && text.contains("SOFTHSM2_CONF"),
        "{text}"
    );
}

#[test]
fn a_wrong_pin_is_refused_while_another_source_is_logged_in_to_the_token() {
    let token = LunaToken::new();
    let env = luna::env();
    let wrong = env.dir.join(format!("wrong-{}.pin", token.label));
    std::fs::write(&wrong, "wrong-pin-31337\n").unwrap();
    let first = LunaSource::open(&token.config(json!({})), MemoryHost::new().boxed()).unwrap();
    first.create_key(NewKey::new("k", KeyUsage::ALL)).unwrap();

    // Same module: C_Login answers "already logged in"; the PIN differs from the one
    // that logged in.
    let err = LunaSource::open(
        &token.config(json!({ "pin_file": wrong })),
        MemoryHost::new().boxed(),
    )
    .err()
    .expect("a wrong PIN is refused");
    assert!(
        matches!(err, KeySourceError::InvalidInput { .. }),
        "{err:?}"
    );
    let text = err.to_string();
    assert!(
        text.contains("already logged in") && text.contains("another PIN"),
        "{text}"
    );
    assert!(!text.contains("wrong-pin-31337") && !text.contains(USER_PIN));

    // The right PIN opens next to the first source.
    let second = LunaSource::open(&token.config(json!({})), MemoryHost::new().boxed()).unwrap();
    round_trip(&second, "k").unwrap();
    round_trip(&first, "k").unwrap();

    // Through another module path (the shim) nothing of this login is recorded: the
    // token checks the PIN after a logout; the sources logged out recover.
    let module = shim("plain", &token.label);
    let err = LunaSource::open(
        &token.config(json!({ "module": module, "pin_file": wrong })),
        MemoryHost::new().boxed(),
    )
    .err()
    .expect("a wrong PIN is refused");
    assert!(err.to_string().contains("PIN is incorrect"), "{err}");
    let third = open_on(&module, &token, &MemoryHost::new()).unwrap();
    round_trip(&third, "k").unwrap();
    round_trip(&first, "k").unwrap();
    round_trip(&second, "k").unwrap();

    // All closed: the next login is a fresh one, checked by the token.
    drop((first, second, third));
    let err = LunaSource::open(
        &token.config(json!({ "pin_file": wrong })),
        MemoryHost::new().boxed(),
    )
    .err()
    .expect("a wrong PIN is refused");
    assert!(err.to_string().contains("PIN is incorrect"), "{err}");
    // The refusal says what to do when the PIN was changed outside the process.
    assert!(err.to_string().contains("restart keyhold"), "{err}");
}

#[test]
fn a_label_on_two_objects_is_an_internal_error_and_degrades_health() {
    let token = LunaToken::new();
    let source = LunaSource::open(&token.config(json!({})), MemoryHost::new().boxed()).unwrap();
    source
        .create_key(NewKey::new("dup", KeyUsage::ALL))
        .unwrap();
    source.create_key(NewKey::new("ok", KeyUsage::ALL)).unwrap();
    round_trip(&source, "ok").unwrap();
    // A second object with the label, made outside keyhold.
    let extra = token.generate_aes_key("dup", &[]);

    let internal = |r: Result<(), KeySourceError>, what: &str| match r {
        Err(KeySourceError::Internal { reason }) => {
            assert!(
                reason.contains("'dup'") && reason.contains('2'),
                "{what}: {reason}"
            )
        }
        other => panic!("{what}: expected Internal, got {other:?}"),
    };
    internal(round_trip(&source, "dup"), "encrypt");
    internal(source.get_key("dup").map(drop), "get_key");
    internal(source.validate_health_check_key("dup"), "validate");
    internal(source.set_enabled("dup", false).map(drop), "set_enabled");
    internal(source.delete_key("dup"), "delete_key");
    assert!(matches!(
        source.create_key(NewKey::new("dup", KeyUsage::ALL)),
        Err(KeySourceError::AlreadyExists { .. })
    ));
    round_trip(&source, "ok").unwrap();

    let node = &source.health()[0];
    assert_eq!(node.status, HealthStatus::Degraded);
    assert!(node.model.contains("'dup' (2 objects)"), "{}", node.model);
    let names: Vec<String> = source
        .list_keys()
        .unwrap()
        .into_iter()
        .map(|k| k.name.to_string())
        .collect();
    assert_eq!(names, ["dup", "dup", "ok"]);

    // A source opened now finds it by its scan at open.
    let other = LunaSource::open(&token.config(json!({})), MemoryHost::new().boxed()).unwrap();
    assert_eq!(other.health()[0].status, HealthStatus::Degraded);

    // The extra object removed: healthy again, the key works.
    token.user_session().destroy_object(extra).unwrap();
    let node = &source.health()[0];
    assert_eq!(node.status, HealthStatus::Active, "{}", node.model);
    assert!(!node.model.contains("dup"));
    round_trip(&source, "dup").unwrap();
}

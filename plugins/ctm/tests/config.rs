//! Configuration errors and master-key sources, through the loaded cdylib.

mod common;

use std::os::unix::fs::PermissionsExt as _;

use keyhold_sdk::{KeySourceError, KeyUsage, LogLevel, NewKey, testing::MemoryHost};

fn invalid_input(config: &str) -> String {
    match common::open(config, &MemoryHost::new()) {
        Err(KeySourceError::InvalidInput { reason }) => reason.to_string(),
        Err(other) => panic!("{config}: expected InvalidInput, got {other:?}"),
        Ok(_) => panic!("{config}: expected InvalidInput, but it opened"),
    }
}

#[test]
fn unknown_field_is_named() {
    let reason = invalid_input(r#"{"master_key_file": "/x", "master_kee_env": "Y"}"#);
    assert!(reason.contains("master_kee_env"), "{reason}");
}

#[test]
fn malformed_json_is_invalid_input() {
    let reason = invalid_input("{not json");
    assert!(reason.contains("configuration"), "{reason}");
}

#[test]
fn missing_master_key_explains_the_options() {
    for config in ["{}", ""] {
        let reason = invalid_input(config);
        assert!(reason.contains("no master key configured"), "{reason}");
        assert!(reason.contains("master_key_file"), "{reason}");
        assert!(reason.contains("master_key_env"), "{reason}");
        assert!(reason.contains("generate_master_key"), "{reason}");
    }
    let reason = invalid_input(r#"{"generate_master_key": true}"#);
    assert!(reason.contains("needs \"master_key_file\""), "{reason}");
    let reason = invalid_input(r#"{"master_key_file": "/a", "master_key_env": "B"}"#);
    assert!(reason.contains("only one"), "{reason}");
}

#[test]
fn bad_master_key_files_are_refused_without_quoting_them() {
    let dir = tempfile::tempdir().unwrap();
    let cases: [(&str, &[u8], &str); 3] = [
        (
            "bad-b64",
            b"secret-looking but not base64 @@@\n",
            "not valid base64",
        ),
        ("short", b"AAECAwQFBgcICQoLDA0ODw==\n", "holds 16 bytes"),
        ("empty", b"", "holds 0 bytes"),
    ];
    for (file, content, expected) in cases {
        let path = dir.path().join(file);
        std::fs::write(&path, content).unwrap();
        let config = serde_json::json!({ "master_key_file": path }).to_string();
        let reason = invalid_input(&config);
        assert!(reason.contains(expected), "{file}: {reason}");
        assert!(reason.contains(file), "{file}: {reason}");
        assert!(!reason.contains("secret-looking"), "{reason}");
    }
    let missing = dir.path().join("missing.key");
    let config = serde_json::json!({ "master_key_file": missing }).to_string();
    let reason = invalid_input(&config);
    assert!(reason.contains("cannot read master key file"), "{reason}");
}

#[test]
fn master_key_env_must_be_set_and_valid() {
    // Variables unique to this test; never set, so no process-wide mutation is needed.
    let reason = invalid_input(r#"{"master_key_env": "KEYHOLD_CTM_TEST_UNSET_VAR_1"}"#);
    assert!(reason.contains("KEYHOLD_CTM_TEST_UNSET_VAR_1"), "{reason}");
    assert!(reason.contains("not set"), "{reason}");
    // PATH is set in any test environment and is not base64 of 32 bytes.
    let reason = invalid_input(r#"{"master_key_env": "PATH"}"#);
    assert!(reason.contains("environment variable 'PATH'"), "{reason}");
}

#[test]
fn raw_32_byte_key_files_work() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("raw.key");
    std::fs::write(&path, [0x99u8; 32]).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    let host = MemoryHost::new();
    let config = serde_json::json!({ "master_key_file": path }).to_string();
    let source = common::open(&config, &host).unwrap();
    source.create_key(NewKey::new("k", KeyUsage::ALL)).unwrap();
    assert!(
        !host.logs().iter().any(|(l, _)| *l == LogLevel::Warn),
        "{:?}",
        host.logs()
    );
}

#[test]
fn generate_master_key_is_a_loud_development_default() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("dev.key");
    let config =
        serde_json::json!({ "master_key_file": path, "generate_master_key": true }).to_string();
    let host = MemoryHost::new();
    let source = common::open(&config, &host).unwrap();
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let warnings: Vec<String> = host
        .logs()
        .into_iter()
        .filter(|(l, _)| *l == LogLevel::Warn)
        .map(|(_, m)| m)
        .collect();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(
        warnings[0].contains("DEVELOPMENT DEFAULT"),
        "{}",
        warnings[0]
    );
    source.create_key(NewKey::new("k", KeyUsage::ALL)).unwrap();
    let enc = source
        .encrypt("k".into(), b"dev".as_slice().into(), b"".as_slice().into())
        .unwrap();
    drop(source);

    // The second open reuses the generated key (no new warning) and keeps the keys.
    let host2 = host.clone();
    let before = host2.logs().len();
    let source = common::open(&config, &host2).unwrap();
    assert!(
        !host2.logs()[before..]
            .iter()
            .any(|(l, _)| *l == LogLevel::Warn),
        "{:?}",
        host2.logs()
    );
    let input = keyhold_sdk::DecryptInput {
        iv: enc.iv.as_slice().into(),
        ciphertext: enc.ciphertext.as_slice().into(),
        tag: enc.tag.as_slice().into(),
        aad: b"".as_slice().into(),
    };
    assert_eq!(
        source.decrypt("k".into(), input).unwrap().as_slice(),
        b"dev"
    );
    // No log line carries the key file's content.
    let key_text = std::fs::read_to_string(&path).unwrap();
    for (_, m) in host2.logs() {
        assert!(!m.contains(key_text.trim()), "{m}");
    }
}

//! Restart persistence, wrong master keys, record binding, cross-node visibility and
//! "no key material in the KV", through the loaded cdylib.

mod common;

use base64::Engine as _;
use keyhold_sdk::{
    DecryptInput, KeyInfo, KeySourceBox, KeySourceError, KeyUsage, NewKey, testing::MemoryHost,
};
use plugin_ctm::record::{KeyRecord, kv_key};

fn create(
    source: &KeySourceBox,
    name: &str,
    usage: KeyUsage,
    exportable: bool,
    deletable: bool,
) -> KeyInfo {
    source
        .create_key(NewKey {
            name: name.into(),
            usage,
            exportable,
            deletable,
        })
        .unwrap()
}

fn decrypt(
    source: &KeySourceBox,
    name: &str,
    enc: &keyhold_sdk::Encrypted,
    aad: &[u8],
) -> Result<Vec<u8>, KeySourceError> {
    let input = DecryptInput {
        iv: enc.iv.as_slice().into(),
        ciphertext: enc.ciphertext.as_slice().into(),
        tag: enc.tag.as_slice().into(),
        aad: aad.into(),
    };
    source
        .decrypt(name.into(), input)
        .into_result()
        .map(|v| v.into_vec())
}

fn encrypt(
    source: &KeySourceBox,
    name: &str,
    plaintext: &[u8],
    aad: &[u8],
) -> Result<keyhold_sdk::Encrypted, KeySourceError> {
    source
        .encrypt(name.into(), plaintext.into(), aad.into())
        .into_result()
}

/// Sorted by name, without the encryption count (a restart adds the unused rest of
/// a reserved block to it, see keyhold_sdk::invocations).
fn sorted(mut keys: Vec<KeyInfo>) -> Vec<KeyInfo> {
    keys.sort_by(|a, b| a.name.cmp(&b.name));
    for key in &mut keys {
        key.attributes
            .retain(|a| a.name.as_str() != keyhold_sdk::invocations::COUNT_ATTRIBUTE);
    }
    keys
}

#[test]
fn keys_survive_a_restart_and_need_the_right_master_key() {
    let master = [0x71u8; 32];
    let host = MemoryHost::new();
    let kf = common::key_file(&master);

    let source = common::open(&kf.config, &host).unwrap();
    create(&source, "a", KeyUsage::ALL, false, true);
    create(
        &source,
        "b",
        KeyUsage::ENCRYPT.union(KeyUsage::DECRYPT),
        true,
        false,
    );
    create(&source, "c", KeyUsage::ALL, false, false);
    source.set_enabled("c".into(), false).unwrap();
    let enc = encrypt(&source, "a", b"persist me", b"ctx").unwrap();
    let listed = sorted(source.list_keys().unwrap().into_vec());
    assert_eq!(listed.len(), 3);
    assert!(listed[1].exportable && !listed[1].deletable);
    assert!(!listed[2].enabled);
    drop(source);

    // Restart: same host state, same master key.
    let source = common::open(&kf.config, &host.clone()).unwrap();
    assert_eq!(sorted(source.list_keys().unwrap().into_vec()), listed);
    assert_eq!(decrypt(&source, "a", &enc, b"ctx").unwrap(), b"persist me");
    assert!(matches!(
        encrypt(&source, "c", b"x", b""),
        Err(KeySourceError::Disabled { .. })
    ));
    drop(source);

    // Another master key: refused, naming how many records do not unwrap.
    let other = common::key_file(&[0x72u8; 32]);
    let err = common::open(&other.config, &host)
        .err()
        .expect("must refuse");
    match &err {
        KeySourceError::InvalidInput { reason } => {
            assert!(
                reason.contains("3 of 3 key records cannot be unwrapped"),
                "{reason}"
            );
            assert!(reason.contains("master key"), "{reason}");
        }
        other => panic!("expected InvalidInput, got {other:?}"),
    }

    // No stored entry holds any key's material (raw, base64 or hex).
    let entries = host.entries();
    for (k, v) in &entries {
        if k.starts_with(keyhold_sdk::invocations::KV_PREFIX) {
            continue; // encryption counters: a number
        }
        let record: KeyRecord = serde_json::from_slice(v).unwrap_or_else(|e| panic!("{k}: {e}"));
        let material = record.unwrap_material(&master).unwrap();
        let encodings = [
            material.to_vec(),
            base64::engine::general_purpose::STANDARD
                .encode(&material[..])
                .into_bytes(),
            material
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<String>()
                .into_bytes(),
        ];
        for (k2, v2) in &entries {
            for enc in &encodings {
                assert!(
                    !v2.windows(enc.len()).any(|w| w == enc.as_slice()),
                    "{k}'s material found in {k2}"
                );
            }
        }
        assert!(
            !v.windows(32).any(|w| w == master),
            "master key stored in {k}"
        );
    }
}

#[test]
fn a_record_moved_to_another_name_does_not_load() {
    let (host, kf, source) = common::opened(&[0x44; 32]);
    create(&source, "victim", KeyUsage::ALL, false, true);
    create(&source, "attacker", KeyUsage::ALL, false, true);
    drop(source);

    // Copy the victim's wrapped material into the attacker's record.
    let entries = host.entries();
    let victim: KeyRecord = serde_json::from_slice(&entries[&kv_key("victim")]).unwrap();
    let mut attacker: KeyRecord = serde_json::from_slice(&entries[&kv_key("attacker")]).unwrap();
    attacker.wrapped = victim.wrapped.clone();
    host.set_entry(&kv_key("attacker"), serde_json::to_vec(&attacker).unwrap());
    let err = common::open(&kf.config, &host).err().expect("must refuse");
    assert!(err.to_string().contains("1 of 2 key records"), "{err}");

    // The whole record stored under another name is refused too.
    host.set_entry(&kv_key("attacker"), entries[&kv_key("victim")].clone());
    let err = common::open(&kf.config, &host).err().expect("must refuse");
    assert!(err.to_string().contains("1 of 2 key records"), "{err}");
}

#[test]
fn nodes_sharing_a_host_see_each_others_changes() {
    let host = MemoryHost::new();
    let kf = common::key_file(&[0x55; 32]);
    let node_a = common::open(&kf.config, &host).unwrap();
    let node_b = common::open(&kf.config, &host.clone()).unwrap();

    create(&node_a, "shared", KeyUsage::ALL, false, true);
    // B never saw it: a cache miss reads the KV.
    let enc = encrypt(&node_b, "shared", b"hi", b"").unwrap();
    assert_eq!(decrypt(&node_a, "shared", &enc, b"").unwrap(), b"hi");
    assert_eq!(node_b.list_keys().unwrap().len(), 1);
    assert!(matches!(
        node_b
            .create_key(NewKey::new("shared", KeyUsage::ALL))
            .into_result(),
        Err(KeySourceError::AlreadyExists { .. })
    ));

    node_a.set_enabled("shared".into(), false).unwrap();
    assert!(!node_b.get_key("shared".into()).unwrap().enabled);
    assert!(matches!(
        decrypt(&node_b, "shared", &enc, b""),
        Err(KeySourceError::Disabled { .. })
    ));
    node_a.set_enabled("shared".into(), true).unwrap();
    node_a.delete_key("shared".into()).unwrap();
    assert!(node_b.list_keys().unwrap().is_empty());
    assert!(matches!(
        node_b.get_key("shared".into()).into_result(),
        Err(KeySourceError::NotFound { .. })
    ));
    assert!(matches!(
        decrypt(&node_b, "shared", &enc, b""),
        Err(KeySourceError::NotFound { .. })
    ));
}

#[test]
fn health_check_rules_name_every_problem() {
    let (_host, _kf, source) = common::opened(&[0x66; 32]);
    create(&source, "bad", KeyUsage::ENCRYPT, true, true);
    match source.validate_health_check_key("bad".into()).into_result() {
        Err(KeySourceError::InvalidKey { key, problems }) => {
            assert_eq!(key.as_str(), "bad");
            let problems: Vec<String> = problems.iter().map(|p| p.to_string()).collect();
            assert_eq!(
                problems,
                [
                    "exportable must be false",
                    "deletable must be false",
                    "usage must include DECRYPT",
                    "usage must include WRAP",
                    "usage must include UNWRAP",
                ]
            );
        }
        other => panic!("expected InvalidKey, got {other:?}"),
    }
    source
        .create_key(NewKey::new("good", KeyUsage::ALL))
        .unwrap();
    source.validate_health_check_key("good".into()).unwrap();

    let info = source.info();
    assert_eq!(info.vendor.as_str(), "keyhold");
    assert_eq!(
        info.model.as_str(),
        concat!("keyhold ctm software keystore ", env!("CARGO_PKG_VERSION"))
    );
    let nodes = source.health();
    assert_eq!(nodes.len(), 1);
    assert!(
        nodes[0].id.starts_with("ctm-") && nodes[0].id.len() == 12,
        "{}",
        nodes[0].id
    );
    assert_eq!(nodes[0].status, keyhold_sdk::HealthStatus::Active);
}

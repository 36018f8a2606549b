//! Hardening of the luna plugin, through the loaded `libplugin_luna.so` on a fresh
//! SoftHSM2 token: the AES-GCM invocation limit (counter in the host KV, refused at
//! 2^32, kept across a restart), a `module_env` that would need the process environment
//! changed is refused (the environment is never changed), and the PIN is read for each
//! login, never kept.

use keyhold_sdk::{
    KeySourceBox, KeySourceError, KeyUsage, LogLevel, NewKey,
    abi_stable::std_types::{RSlice, RStr},
    invocations::{COUNT_ATTRIBUTE, LIMIT, Reserved, kv_key},
    testing::MemoryHost,
};
use keyhold_testkit::{
    luna::{LunaToken, USER_PIN},
    plugins,
};

fn open(config: &str, host: &MemoryHost) -> Result<KeySourceBox, KeySourceError> {
    plugins::open("luna", config, host)
}

fn encrypt(source: &KeySourceBox, key: &str) -> Result<(), KeySourceError> {
    source
        .encrypt(
            RStr::from_str(key),
            RSlice::from_slice(b"payload"),
            RSlice::from_slice(b"aad"),
        )
        .into_result()
        .map(drop)
}

fn count(source: &KeySourceBox, key: &str) -> u64 {
    let info = source.get_key(RStr::from_str(key)).unwrap();
    info.attributes
        .iter()
        .find(|a| a.name.as_str() == COUNT_ATTRIBUTE)
        .map(|a| a.value.as_str().parse().unwrap())
        .expect("count attribute")
}

#[test]
fn encryption_is_refused_at_the_limit_and_the_count_survives_a_restart() {
    let token = LunaToken::new();
    let host = MemoryHost::new();
    let config = token.config(serde_json::json!({}));
    let source = open(&config, &host).unwrap();
    source
        .create_key(NewKey {
            deletable: true,
            ..NewKey::new("k", KeyUsage::ALL)
        })
        .unwrap();
    encrypt(&source, "k").unwrap();
    assert_eq!(count(&source, "k"), 1);
    drop(source);

    host.set_entry(
        &kv_key("k"),
        Reserved {
            reserved: LIMIT - 2,
        }
        .to_bytes(),
    );
    let source = open(&config, &host).unwrap();
    encrypt(&source, "k").unwrap();
    encrypt(&source, "k").unwrap();
    let err = encrypt(&source, "k").unwrap_err();
    assert!(matches!(err, KeySourceError::Disabled { .. }), "{err:?}");
    assert!(err.to_string().contains("rotate"), "{err}");
    assert!(
        host.logs()
            .iter()
            .any(|(l, m)| *l == LogLevel::Error && m.contains("rotate"))
    );
    drop(source);

    let source = open(&config, &host).unwrap();
    assert_eq!(count(&source, "k"), LIMIT);
    assert!(matches!(
        encrypt(&source, "k"),
        Err(KeySourceError::Disabled { .. })
    ));
    // Deleting the key forgets its count.
    source.delete_key(RStr::from_str("k")).unwrap();
    assert!(!host.entries().contains_key(&kv_key("k")));
}

#[test]
fn a_module_env_that_differs_from_the_process_environment_is_refused() {
    let token = LunaToken::new();
    let var = "KEYHOLD_LUNA_HARDENING_UNSET";
    let config = token.config(serde_json::json!({
        "module_env": { "SOFTHSM2_CONF": keyhold_testkit::luna::env().conf, var: "1" }
    }));
    let err = open(&config, &MemoryHost::new()).err().expect("refused");
    assert!(
        matches!(err, KeySourceError::InvalidInput { .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains(var), "{err}");
    assert!(
        std::env::var_os(var).is_none(),
        "the environment was changed"
    );
    // The same module_env as the process environment: opens and works.
    let source = open(&token.config(serde_json::json!({})), &MemoryHost::new()).unwrap();
    source
        .create_key(NewKey::new("k", KeyUsage::ALL))
        .into_result()
        .unwrap();
    encrypt(&source, "k").unwrap();
}

#[test]
fn the_pin_is_read_for_each_login_not_kept() {
    let token = LunaToken::new();
    let dir = tempfile::tempdir().unwrap();
    let pin_file = dir.path().join("pin");
    std::fs::write(&pin_file, format!("{USER_PIN}\n")).unwrap();
    let config = token.config(serde_json::json!({ "pin_file": pin_file, "pool_size": 1 }));
    let source = open(&config, &MemoryHost::new()).unwrap();
    source
        .create_key(NewKey::new("k", KeyUsage::ALL))
        .into_result()
        .unwrap();
    encrypt(&source, "k").unwrap();

    // Without its file, the PIN is gone: the next login (after a logout underneath)
    // cannot happen, so the plugin did not keep the PIN.
    std::fs::remove_file(&pin_file).unwrap();
    token.logout_underneath();
    let err = encrypt(&source, "k").unwrap_err();
    assert!(err.to_string().contains("cannot read PIN file"), "{err}");

    // The file back: the next login reads it and the source works again.
    std::fs::write(&pin_file, format!("{USER_PIN}\n")).unwrap();
    encrypt(&source, "k").unwrap();
}

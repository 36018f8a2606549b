//! The sdk conformance kit and the plugin's own behaviour checks, against the loaded
//! `libplugin_luna.so` (as the host loads it) on a fresh SoftHSM2 token.

mod common;

use std::path::PathBuf;

use keyhold_sdk::{
    DecryptInput, HealthStatus, KeySourceBox, KeySourceError, KeyUsage, NewKey, PluginModRef,
    abi_stable::std_types::{RSlice, RStr},
    testing::MemoryHost,
};

fn library_path() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target"));
    // `cargo build` puts the library in target/debug; `cargo test` rebuilds it only in
    // target/debug/deps. Load whichever is newer, so a test never runs a stale build.
    let uplifted = target.join("debug").join("libplugin_luna.so");
    let deps = target.join("debug").join("deps").join("libplugin_luna.so");
    let mtime = |p: &PathBuf| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    match (mtime(&uplifted), mtime(&deps)) {
        (Some(a), Some(b)) if b > a => deps,
        (None, Some(_)) => deps,
        _ => uplifted,
    }
}

fn plugin() -> PluginModRef {
    let path = library_path();
    abi_stable::library::lib_header_from_path(&path)
        .unwrap_or_else(|e| panic!("loading {}: {e}", path.display()))
        .init_root_module::<PluginModRef>()
        .unwrap()
}

fn open(config: &str, host: &MemoryHost) -> Result<KeySourceBox, KeySourceError> {
    let m = plugin();
    m.open()(RStr::from_str(config), host.boxed()).into_result()
}

fn nk(name: &str, usage: KeyUsage) -> NewKey {
    NewKey {
        deletable: true,
        ..NewKey::new(name, usage)
    }
}

fn dec<'a>(iv: &'a [u8], ct: &'a [u8], tag: &'a [u8], aad: &'a [u8]) -> DecryptInput<'a> {
    DecryptInput {
        iv: RSlice::from_slice(iv),
        ciphertext: RSlice::from_slice(ct),
        tag: RSlice::from_slice(tag),
        aad: RSlice::from_slice(aad),
    }
}

#[test]
fn conformance_kit_passes_on_the_loaded_library() {
    common::new_token("conformance");
    let m = plugin();
    assert_eq!(m.name()().as_str(), "luna");
    let source = open(
        &common::config("conformance", serde_json::json!({})),
        &MemoryHost::new(),
    )
    .unwrap();
    let result = keyhold_sdk::conformance::run(&source);
    assert!(result.is_ok(), "conformance: {:?}", result.err());
}

#[test]
fn keys_crypto_usage_and_enabled_flag() {
    common::new_token("behaviour");
    let host = MemoryHost::new();
    let config = common::config("behaviour", serde_json::json!({"pool_size": 2}));
    let src = open(&config, &host).unwrap();

    // info and health read the token.
    let info = src.info();
    assert_eq!(info.vendor.as_str(), "SoftHSM project");
    let health = src.health();
    assert_eq!(health.len(), 1);
    assert_eq!(health[0].status, HealthStatus::Active);
    assert!(
        health[0].model.as_str().contains("(token 'behaviour')"),
        "{:?}",
        health[0]
    );
    assert!(!health[0].id.is_empty());

    // create, duplicate, exportable.
    let k = src.create_key(nk("k1", KeyUsage::ALL)).unwrap();
    assert_eq!(
        (k.bits, k.usage, k.enabled, k.exportable, k.deletable),
        (256, KeyUsage::ALL, true, false, true)
    );
    assert!(
        k.attributes
            .iter()
            .any(|a| a.name.as_str() == "CKA_SENSITIVE" && a.value.as_str() == "true")
    );
    assert!(matches!(
        src.create_key(nk("k1", KeyUsage::ALL)).into_result(),
        Err(KeySourceError::AlreadyExists { .. })
    ));
    let mut exportable = nk("k2", KeyUsage::ALL);
    exportable.exportable = true;
    assert!(matches!(
        src.create_key(exportable).into_result(),
        Err(KeySourceError::Unsupported { .. })
    ));
    src.validate_health_check_key(RStr::from_str("k1")).unwrap();

    // round trip, AAD and tag checks.
    let e = src
        .encrypt(
            RStr::from_str("k1"),
            RSlice::from_slice(b"hello"),
            RSlice::from_slice(b"aad"),
        )
        .unwrap();
    assert_eq!((e.iv.len(), e.ciphertext.len(), e.tag.len()), (12, 5, 16));
    let pt = src
        .decrypt(
            RStr::from_str("k1"),
            dec(&e.iv, &e.ciphertext, &e.tag, b"aad"),
        )
        .unwrap();
    assert_eq!(pt.as_slice(), b"hello");
    let wrong_aad = src
        .decrypt(
            RStr::from_str("k1"),
            dec(&e.iv, &e.ciphertext, &e.tag, b"AAD"),
        )
        .into_result();
    assert_eq!(wrong_aad, Err(KeySourceError::InvalidCiphertext));
    let mut tag = e.tag.to_vec();
    tag[0] ^= 1;
    assert_eq!(
        src.decrypt(
            RStr::from_str("k1"),
            dec(&e.iv, &e.ciphertext, &tag, b"aad")
        )
        .into_result(),
        Err(KeySourceError::InvalidCiphertext)
    );
    assert!(matches!(
        src.decrypt(
            RStr::from_str("k1"),
            dec(&e.iv[..8], &e.ciphertext, &e.tag, b"aad")
        )
        .into_result(),
        Err(KeySourceError::InvalidInput { .. })
    ));
    assert!(matches!(
        src.decrypt(
            RStr::from_str("k1"),
            dec(&e.iv, &e.ciphertext, &e.tag[..12], b"aad")
        )
        .into_result(),
        Err(KeySourceError::InvalidInput { .. })
    ));
    // the session is still usable after a failed tag check
    let again = src
        .decrypt(
            RStr::from_str("k1"),
            dec(&e.iv, &e.ciphertext, &e.tag, b"aad"),
        )
        .unwrap();
    assert_eq!(again.as_slice(), b"hello");
    // empty plaintext
    let empty = src
        .encrypt(
            RStr::from_str("k1"),
            RSlice::from_slice(b""),
            RSlice::from_slice(b""),
        )
        .unwrap();
    assert_eq!(
        src.decrypt(
            RStr::from_str("k1"),
            dec(&empty.iv, &empty.ciphertext, &empty.tag, b"")
        )
        .unwrap()
        .len(),
        0
    );

    // usage enforcement
    src.create_key(nk("enc-only", KeyUsage::ENCRYPT)).unwrap();
    src.create_key(nk("wrap-only", KeyUsage::WRAP.union(KeyUsage::UNWRAP)))
        .unwrap();
    let e2 = src
        .encrypt(
            RStr::from_str("enc-only"),
            RSlice::from_slice(b"x"),
            RSlice::from_slice(b""),
        )
        .unwrap();
    assert!(matches!(
        src.decrypt(
            RStr::from_str("enc-only"),
            dec(&e2.iv, &e2.ciphertext, &e2.tag, b"")
        )
        .into_result(),
        Err(KeySourceError::KeyUsage { .. })
    ));
    assert!(matches!(
        src.encrypt(
            RStr::from_str("wrap-only"),
            RSlice::from_slice(b"x"),
            RSlice::from_slice(b"")
        )
        .into_result(),
        Err(KeySourceError::KeyUsage { .. })
    ));
    assert!(matches!(
        src.encrypt(
            RStr::from_str("nope"),
            RSlice::from_slice(b"x"),
            RSlice::from_slice(b"")
        )
        .into_result(),
        Err(KeySourceError::NotFound { .. })
    ));
    let hc = src
        .validate_health_check_key(RStr::from_str("enc-only"))
        .into_result();
    match hc {
        Err(KeySourceError::InvalidKey { problems, .. }) => {
            assert_eq!(problems.len(), 3, "{problems:?}")
        }
        other => panic!("{other:?}"),
    }

    // disable/enable: flag in the host KV, exact, persistent over a restart.
    let before = src.get_key(RStr::from_str("k1")).unwrap();
    let d = src.set_enabled(RStr::from_str("k1"), false).unwrap();
    assert!(!d.enabled);
    assert!(host.entries().contains_key("disabled/k1"));
    assert!(matches!(
        src.encrypt(
            RStr::from_str("k1"),
            RSlice::from_slice(b"x"),
            RSlice::from_slice(b"")
        )
        .into_result(),
        Err(KeySourceError::Disabled { .. })
    ));
    assert!(matches!(
        src.decrypt(
            RStr::from_str("k1"),
            dec(&e.iv, &e.ciphertext, &e.tag, b"aad")
        )
        .into_result(),
        Err(KeySourceError::Disabled { .. })
    ));
    drop(src);
    let src = open(&config, &host.clone()).unwrap();
    assert!(
        !src.get_key(RStr::from_str("k1")).unwrap().enabled,
        "disabled flag survives a restart"
    );
    let en = src.set_enabled(RStr::from_str("k1"), true).unwrap();
    assert_eq!(en, before, "re-enabling restores the key exactly");
    let pt = src
        .decrypt(
            RStr::from_str("k1"),
            dec(&e.iv, &e.ciphertext, &e.tag, b"aad"),
        )
        .unwrap();
    assert_eq!(pt.as_slice(), b"hello");

    // list and delete
    let names: Vec<String> = src
        .list_keys()
        .unwrap()
        .iter()
        .map(|k| k.name.to_string())
        .collect();
    assert_eq!(names, ["enc-only", "k1", "wrap-only"]);
    src.delete_key(RStr::from_str("wrap-only")).unwrap();
    let keep = src.create_key(NewKey::new("keep", KeyUsage::ALL)).unwrap();
    assert!(!keep.deletable);
    eprintln!(
        "CKA_DESTROYABLE as the token reports it for a deletable=false key: {:?}",
        keep.attributes
            .iter()
            .find(|a| a.name.as_str() == "CKA_DESTROYABLE")
    );
    assert!(matches!(
        src.delete_key(RStr::from_str("keep")).into_result(),
        Err(KeySourceError::InvalidKey { .. })
    ));
    assert!(matches!(
        src.get_key(RStr::from_str("wrap-only")).into_result(),
        Err(KeySourceError::NotFound { .. })
    ));
    assert!(matches!(
        src.set_enabled(RStr::from_str("wrap-only"), false)
            .into_result(),
        Err(KeySourceError::NotFound { .. })
    ));
}

#[test]
fn open_errors_are_clear() {
    common::new_token("open-errors");
    let host = MemoryHost::new();
    let err = |c: String| match open(&c, &host) {
        Ok(_) => panic!("opened with {c}"),
        Err(e) => e,
    };
    // unknown field
    let e = err(common::config(
        "open-errors",
        serde_json::json!({"pin": "1234"}),
    ));
    assert!(
        matches!(e, KeySourceError::InvalidInput { .. }) && e.to_string().contains("pin"),
        "{e}"
    );
    // missing module file
    let e = err(common::config(
        "open-errors",
        serde_json::json!({"module": "/nonexistent/libnope.so"}),
    ));
    assert!(
        matches!(e, KeySourceError::InvalidInput { .. })
            && e.to_string().contains("/nonexistent/libnope.so"),
        "{e}"
    );
    // unknown token label
    let e = err(common::config("no-such-token", serde_json::json!({})));
    assert!(e.to_string().contains("no-such-token"), "{e}");
    // wrong PIN, never echoed
    let bad = common::env().dir.join("bad.pin");
    std::fs::write(&bad, "wrong-pin-0000").unwrap();
    let e = err(common::config(
        "open-errors",
        serde_json::json!({"pin_file": bad}),
    ));
    assert!(matches!(e, KeySourceError::InvalidInput { .. }), "{e}");
    assert!(
        e.to_string().contains("PIN is incorrect") && !e.to_string().contains("wrong-pin-0000"),
        "{e}"
    );
    // missing PIN file / variable
    let e = err(common::config(
        "open-errors",
        serde_json::json!({"pin_file": "/nonexistent/pin"}),
    ));
    assert!(e.to_string().contains("/nonexistent/pin"), "{e}");
    let c = serde_json::json!({"module": common::MODULE, "token_label": "open-errors", "pin_env": "KEYHOLD_TEST_NO_SUCH_VAR"});
    let e = err(c.to_string());
    assert!(e.to_string().contains("KEYHOLD_TEST_NO_SUCH_VAR"), "{e}");
    // and the right PIN works
    open(&common::config("open-errors", serde_json::json!({})), &host).unwrap();
}

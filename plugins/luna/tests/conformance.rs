//! The sdk conformance kit and the plugin's own behaviour checks, against the loaded
//! `libplugin_luna.so` (as the host loads it) on a fresh SoftHSM2 token.

use keyhold_sdk::{
    DecryptInput, Encrypted, HealthStatus, KeySourceBox, KeySourceError, KeyUsage, NewKey,
    abi_stable::std_types::{RSlice, RStr},
    testing::MemoryHost,
};
use keyhold_testkit::{
    luna::{self, LunaToken},
    plugins,
};

fn open(config: &str, host: &MemoryHost) -> Result<KeySourceBox, KeySourceError> {
    plugins::open("luna", config, host)
}

fn nk(name: &str, usage: KeyUsage) -> NewKey {
    NewKey {
        deletable: true,
        ..NewKey::new(name, usage)
    }
}

/// Encrypts `pt` under `key`.
fn enc(src: &KeySourceBox, key: &str, pt: &[u8], aad: &[u8]) -> Result<Encrypted, KeySourceError> {
    src.encrypt(
        RStr::from_str(key),
        RSlice::from_slice(pt),
        RSlice::from_slice(aad),
    )
    .into_result()
}

/// Decrypts the parts `(iv, ciphertext, tag)` under `key`.
fn dec(
    src: &KeySourceBox,
    key: &str,
    (iv, ct, tag): (&[u8], &[u8], &[u8]),
    aad: &[u8],
) -> Result<Vec<u8>, KeySourceError> {
    let input = DecryptInput {
        iv: RSlice::from_slice(iv),
        ciphertext: RSlice::from_slice(ct),
        tag: RSlice::from_slice(tag),
        aad: RSlice::from_slice(aad),
    };
    src.decrypt(RStr::from_str(key), input)
        .into_result()
        .map(|v| v.into_vec())
}

/// The parts of `e` to decrypt.
fn parts(e: &Encrypted) -> (&[u8], &[u8], &[u8]) {
    (&e.iv, &e.ciphertext, &e.tag)
}

#[test]
fn conformance_kit_passes_on_the_loaded_library() {
    let token = LunaToken::labelled("conformance");
    assert_eq!(plugins::module("luna").name()().as_str(), "luna");
    let source = open(&token.config(serde_json::json!({})), &MemoryHost::new()).unwrap();
    let result = keyhold_sdk::conformance::run(&source);
    assert!(result.is_ok(), "conformance: {:?}", result.err());
}

#[test]
fn keys_crypto_usage_and_enabled_flag() {
    let token = LunaToken::labelled("behaviour");
    let host = MemoryHost::new();
    let config = token.config(serde_json::json!({"pool_size": 2}));
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
    let e = enc(&src, "k1", b"hello", b"aad").unwrap();
    assert_eq!((e.iv.len(), e.ciphertext.len(), e.tag.len()), (12, 5, 16));
    assert_eq!(dec(&src, "k1", parts(&e), b"aad").unwrap(), b"hello");
    let wrong_aad = dec(&src, "k1", parts(&e), b"AAD");
    assert_eq!(wrong_aad, Err(KeySourceError::InvalidCiphertext));
    let mut tag = e.tag.to_vec();
    tag[0] ^= 1;
    assert_eq!(
        dec(&src, "k1", (&e.iv, &e.ciphertext, &tag), b"aad"),
        Err(KeySourceError::InvalidCiphertext)
    );
    let short_iv = (&e.iv[..8], &e.ciphertext[..], &e.tag[..]);
    let short_tag = (&e.iv[..], &e.ciphertext[..], &e.tag[..12]);
    for short in [short_iv, short_tag] {
        assert!(matches!(
            dec(&src, "k1", short, b"aad"),
            Err(KeySourceError::InvalidInput { .. })
        ));
    }
    // the session is still usable after a failed tag check
    assert_eq!(dec(&src, "k1", parts(&e), b"aad").unwrap(), b"hello");
    // empty plaintext
    let empty = enc(&src, "k1", b"", b"").unwrap();
    assert_eq!(dec(&src, "k1", parts(&empty), b"").unwrap().len(), 0);

    // usage enforcement
    src.create_key(nk("enc-only", KeyUsage::ENCRYPT)).unwrap();
    src.create_key(nk("wrap-only", KeyUsage::WRAP.union(KeyUsage::UNWRAP)))
        .unwrap();
    let e2 = enc(&src, "enc-only", b"x", b"").unwrap();
    assert!(matches!(
        dec(&src, "enc-only", parts(&e2), b""),
        Err(KeySourceError::KeyUsage { .. })
    ));
    assert!(matches!(
        enc(&src, "wrap-only", b"x", b""),
        Err(KeySourceError::KeyUsage { .. })
    ));
    assert!(matches!(
        enc(&src, "nope", b"x", b""),
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
        enc(&src, "k1", b"x", b""),
        Err(KeySourceError::Disabled { .. })
    ));
    assert!(matches!(
        dec(&src, "k1", parts(&e), b"aad"),
        Err(KeySourceError::Disabled { .. })
    ));
    drop(src);
    let src = open(&config, &host.clone()).unwrap();
    assert!(
        !src.get_key(RStr::from_str("k1")).unwrap().enabled,
        "disabled flag survives a restart"
    );
    let en = src.set_enabled(RStr::from_str("k1"), true).unwrap();
    // The encryption count is not an attribute enabling restores: a restart adds the
    // unused rest of the reserved block to it (keyhold_sdk::invocations).
    let uncounted = |mut k: keyhold_sdk::KeyInfo| {
        k.attributes
            .retain(|a| a.name.as_str() != keyhold_sdk::invocations::COUNT_ATTRIBUTE);
        k
    };
    assert_eq!(
        uncounted(en),
        uncounted(before),
        "re-enabling restores the key exactly"
    );
    assert_eq!(dec(&src, "k1", parts(&e), b"aad").unwrap(), b"hello");

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
    let token = LunaToken::labelled("open-errors");
    let host = MemoryHost::new();
    let err = |c: String| match open(&c, &host) {
        Ok(_) => panic!("opened with {c}"),
        Err(e) => e,
    };
    // unknown field
    let e = err(token.config(serde_json::json!({"pin": "1234"})));
    assert!(
        matches!(e, KeySourceError::InvalidInput { .. }) && e.to_string().contains("pin"),
        "{e}"
    );
    // missing module file
    let e = err(token.config(serde_json::json!({"module": "/nonexistent/libnope.so"})));
    assert!(
        matches!(e, KeySourceError::InvalidInput { .. })
            && e.to_string().contains("/nonexistent/libnope.so"),
        "{e}"
    );
    // unknown token label
    let e = err(luna::config("no-such-token", serde_json::json!({})));
    assert!(e.to_string().contains("no-such-token"), "{e}");
    // wrong PIN, never echoed
    let bad = luna::env().dir.join("bad.pin");
    std::fs::write(&bad, "wrong-pin-0000").unwrap();
    let e = err(token.config(serde_json::json!({"pin_file": bad})));
    assert!(matches!(e, KeySourceError::InvalidInput { .. }), "{e}");
    assert!(
        e.to_string().contains("PIN is incorrect") && !e.to_string().contains("wrong-pin-0000"),
        "{e}"
    );
    // missing PIN file / variable
    let e = err(token.config(serde_json::json!({"pin_file": "/nonexistent/pin"})));
    assert!(e.to_string().contains("/nonexistent/pin"), "{e}");
    let c = serde_json::json!({"module": luna::MODULE, "token_label": "open-errors", "pin_env": "KEYHOLD_TEST_NO_SUCH_VAR"});
    let e = err(c.to_string());
    assert!(e.to_string().contains("KEYHOLD_TEST_NO_SUCH_VAR"), "{e}");
    // and the right PIN works
    open(&token.config(serde_json::json!({})), &host).unwrap();
}

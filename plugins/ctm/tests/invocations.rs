//! The AES-GCM invocation limit (2^32 encryptions per key with random IVs), through the
//! loaded cdylib: the counter, persisted in the host KV, is set near the limit; two
//! encryptions still work, the third is refused with InvalidState (`Disabled`) telling
//! the operator to rotate, decryption keeps working, and a restart keeps the count.

mod common;

use keyhold_sdk::{
    DecryptInput, KeySourceBox, KeySourceError, KeyUsage, LogLevel, NewKey,
    invocations::{COUNT_ATTRIBUTE, LIMIT, Reserved, kv_key},
};

fn count(source: &KeySourceBox, name: &str) -> u64 {
    let info = source.get_key(name.into()).unwrap();
    info.attributes
        .iter()
        .find(|a| a.name.as_str() == COUNT_ATTRIBUTE)
        .map(|a| a.value.as_str().parse().unwrap())
        .expect("count attribute")
}

#[test]
fn encryption_is_refused_at_the_limit_and_the_count_survives_a_restart() {
    let (host, kf, source) = common::opened(&[0x44u8; 32]);
    source
        .create_key(NewKey {
            name: "k".into(),
            usage: KeyUsage::ALL,
            exportable: false,
            deletable: true,
        })
        .unwrap();
    let first = source
        .encrypt("k".into(), b"one"[..].into(), b""[..].into())
        .unwrap();
    assert_eq!(count(&source, "k"), 1);
    drop(source);

    // The counter near the limit, written through the host KV as a test or an operator may.
    host.set_entry(
        &kv_key("k"),
        Reserved {
            reserved: LIMIT - 2,
        }
        .to_bytes(),
    );
    let source = common::open(&kf.config, &host).unwrap();
    assert_eq!(count(&source, "k"), LIMIT - 2);
    for _ in 0..2 {
        source
            .encrypt("k".into(), b"ok"[..].into(), b""[..].into())
            .unwrap();
    }
    let err = source
        .encrypt("k".into(), b"no"[..].into(), b""[..].into())
        .into_result()
        .unwrap_err();
    assert!(matches!(err, KeySourceError::Disabled { .. }), "{err:?}");
    let text = err.to_string();
    assert!(text.contains("rotate"), "{text}");
    assert!(text.contains("4294967296"), "{text}");
    assert!(
        host.logs()
            .iter()
            .any(|(l, m)| *l == LogLevel::Warn && m.contains("rotate")),
        "a warning is logged past 2^31"
    );
    // Decryption is not limited.
    let input = DecryptInput {
        iv: first.iv.as_slice().into(),
        ciphertext: first.ciphertext.as_slice().into(),
        tag: first.tag.as_slice().into(),
        aad: b""[..].into(),
    };
    assert_eq!(
        source.decrypt("k".into(), input).unwrap().as_slice(),
        b"one"
    );
    drop(source);

    // A restart keeps the count: still refused.
    let source = common::open(&kf.config, &host).unwrap();
    assert_eq!(count(&source, "k"), LIMIT);
    let err = source
        .encrypt("k".into(), b"no"[..].into(), b""[..].into())
        .into_result()
        .unwrap_err();
    assert!(matches!(err, KeySourceError::Disabled { .. }), "{err:?}");

    // Deleting the key forgets its count: a new key of that name starts from zero.
    source.delete_key("k".into()).unwrap();
    source
        .create_key(NewKey {
            name: "k".into(),
            usage: KeyUsage::ALL,
            exportable: false,
            deletable: true,
        })
        .unwrap();
    source
        .encrypt("k".into(), b"new"[..].into(), b""[..].into())
        .unwrap();
    assert_eq!(count(&source, "k"), 1);
}

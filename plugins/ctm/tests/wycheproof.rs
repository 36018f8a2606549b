//! Project Wycheproof AES-GCM vectors (256-bit keys) through the loaded cdylib and
//! through the pure crypto functions.
//!
//! Each vector's key is planted as a ctm key record (wrapped under a test master key
//! with `plugin_ctm::record::build_record_bytes`) in a `MemoryHost`, which the plugin
//! then opens. The plugin accepts 12- and 16-byte IVs; vectors with other IV lengths
//! must be refused with `InvalidInput` whatever their expected result.

mod common;

use keyhold_sdk::{DecryptInput, KeySourceError, KeyUsage, testing::MemoryHost};
use plugin_ctm::{
    crypto,
    record::{self, KeyAttrs},
};
use wycheproof::{
    TestResult,
    aead::{Test, TestName, TestSet},
};

const MASTER: [u8; 32] = [0x5a; 32];

fn vectors() -> Vec<(usize, Test)> {
    let set = TestSet::load(TestName::AesGcm).expect("wycheproof AES-GCM vectors");
    let mut out = Vec::new();
    for group in set.test_groups {
        if group.key_size != 256 {
            continue;
        }
        for test in group.tests {
            assert_eq!(test.nonce.len() * 8, group.nonce_size);
            out.push((group.tag_size, test));
        }
    }
    assert!(out.len() > 100, "only {} 256-bit vectors", out.len());
    out
}

fn key32(test: &Test) -> [u8; 32] {
    test.key.as_slice().try_into().expect("256-bit key")
}

fn supported(test: &Test, tag_size: usize) -> bool {
    matches!(test.nonce.len(), 12 | 16) && tag_size == 128
}

#[test]
fn wycheproof_decrypt_through_the_loaded_cdylib() {
    let host = MemoryHost::new();
    let vectors = vectors();
    for (_, test) in &vectors {
        let name = format!("wp-{}", test.tc_id);
        let attrs = KeyAttrs {
            usage: KeyUsage::ALL,
            exportable: false,
            deletable: true,
            enabled: true,
            created_at: 0,
        };
        let bytes = record::build_record_bytes(&MASTER, &name, &key32(test), attrs).unwrap();
        host.set_entry(&record::kv_key(&name), bytes);
    }
    let kf = common::key_file(&MASTER);
    let source = common::open(&kf.config, &host).unwrap();
    assert_eq!(source.list_keys().unwrap().len(), vectors.len());

    let (mut valid, mut invalid, mut refused_length) = (0, 0, 0);
    for (tag_size, test) in &vectors {
        let name = format!("wp-{}", test.tc_id);
        let input = DecryptInput {
            iv: test.nonce.as_slice().into(),
            ciphertext: test.ct.as_slice().into(),
            tag: test.tag.as_slice().into(),
            aad: test.aad.as_slice().into(),
        };
        let got = source.decrypt(name.as_str().into(), input).into_result();
        let ctx = format!("tcId {} ({}; {:?})", test.tc_id, test.comment, test.flags);
        if !supported(test, *tag_size) {
            assert!(
                matches!(got, Err(KeySourceError::InvalidInput { .. })),
                "{ctx}: IV of {} bytes must be refused as InvalidInput, got {got:?}",
                test.nonce.len()
            );
            refused_length += 1;
            continue;
        }
        match test.result {
            TestResult::Valid | TestResult::Acceptable => {
                let pt = got.unwrap_or_else(|e| panic!("{ctx}: {e}"));
                assert_eq!(pt.as_slice(), test.pt.as_slice(), "{ctx}");
                valid += 1;
            }
            TestResult::Invalid => {
                assert_eq!(got, Err(KeySourceError::InvalidCiphertext), "{ctx}");
                invalid += 1;
            }
        }
    }
    assert!(
        valid > 50 && invalid > 20,
        "valid {valid}, invalid {invalid}"
    );
    assert!(refused_length > 0);
    eprintln!(
        "wycheproof via cdylib: {valid} valid, {invalid} invalid, {refused_length} \
         unsupported-IV-length vectors checked"
    );
}

#[test]
fn wycheproof_pure_seal_and_open() {
    let mut checked = 0;
    for (tag_size, test) in vectors() {
        let key = key32(&test);
        let ctx = format!("tcId {} ({})", test.tc_id, test.comment);
        let sealed = crypto::seal(&key, &test.nonce, &test.pt, &test.aad);
        let opened = crypto::open(&key, &test.nonce, &test.ct, &test.tag, &test.aad);
        if !supported(&test, tag_size) {
            assert!(
                matches!(sealed, Err(KeySourceError::InvalidInput { .. })),
                "{ctx}"
            );
            assert!(
                matches!(opened, Err(KeySourceError::InvalidInput { .. })),
                "{ctx}"
            );
            continue;
        }
        let (ct, tag) = sealed.unwrap_or_else(|e| panic!("{ctx}: {e}"));
        match test.result {
            TestResult::Valid | TestResult::Acceptable => {
                assert_eq!(ct, test.ct.as_slice(), "{ctx}: ciphertext");
                assert_eq!(tag.as_slice(), test.tag.as_slice(), "{ctx}: tag");
                assert_eq!(opened.unwrap().as_slice(), test.pt.as_slice(), "{ctx}");
            }
            TestResult::Invalid => {
                assert!(
                    ct != test.ct.as_slice() || tag.as_slice() != test.tag.as_slice(),
                    "{ctx}: sealing reproduced an invalid vector"
                );
                assert_eq!(
                    opened.map(|_| ()),
                    Err(KeySourceError::InvalidCiphertext),
                    "{ctx}"
                );
            }
        }
        checked += 1;
    }
    assert!(checked > 80, "{checked}");
}

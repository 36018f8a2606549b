//! Project Wycheproof AES-GCM vectors (256-bit keys, 96-bit IVs, 128-bit tags) through
//! the plugin's PKCS#11 GCM helpers on SoftHSM2, each key imported as a session object.

use cryptoki::object::{Attribute, KeyType, ObjectClass};
use keyhold_testkit::luna::LunaToken;
use plugin_luna::pkcs11::{decrypt_error, gcm_decrypt, gcm_encrypt};
use wycheproof::{TestResult, aead};

#[test]
fn aes_gcm_vectors() {
    let session = LunaToken::labelled("wycheproof").user_session();

    let set = aead::TestSet::load(aead::TestName::AesGcm).unwrap();
    let (mut valid, mut invalid) = (0, 0);
    for group in set.test_groups {
        if group.key_size != 256 || group.nonce_size != 96 || group.tag_size != 128 {
            continue;
        }
        for t in group.tests {
            let key = session
                .create_object(&[
                    Attribute::Class(ObjectClass::SECRET_KEY),
                    Attribute::KeyType(KeyType::AES),
                    Attribute::Token(false),
                    Attribute::Value(t.key.to_vec()),
                    Attribute::Encrypt(true),
                    Attribute::Decrypt(true),
                ])
                .unwrap();
            let what = format!("tcId {} ({})", t.tc_id, t.comment);
            let dec = gcm_decrypt(&session, key, &t.nonce, &t.ct, &t.tag, &t.aad);
            match t.result {
                TestResult::Valid | TestResult::Acceptable => {
                    assert_eq!(
                        dec.unwrap_or_else(|e| panic!("{what}: {e}")),
                        t.pt.to_vec(),
                        "{what}"
                    );
                    let mut iv = t.nonce.to_vec();
                    let (ct, tag) = gcm_encrypt(&session, key, &mut iv, &t.pt, &t.aad)
                        .unwrap_or_else(|e| panic!("{what}: {e}"));
                    assert_eq!(iv, t.nonce.to_vec(), "{what}: the module changed the IV");
                    assert_eq!((ct, tag), (t.ct.to_vec(), t.tag.to_vec()), "{what}");
                    valid += 1;
                }
                TestResult::Invalid => {
                    let e = dec.expect_err(&what);
                    assert!(decrypt_error(&e), "{what}: unexpected error {e}");
                    invalid += 1;
                }
            }
            session.destroy_object(key).unwrap();
        }
    }
    assert!(
        valid >= 30 && invalid >= 20,
        "valid {valid}, invalid {invalid}"
    );
    eprintln!("wycheproof AES-GCM-256/96/128: {valid} valid, {invalid} invalid vectors checked");
}

use super::*;

const GOOD: Caps = Caps {
    generate: true,
    encrypt: true,
    decrypt: true,
    min_key_size: 16,
    max_key_size: 32,
};

#[test]
fn a_token_with_aes_gcm_and_256_bit_keys_passes() {
    assert!(problems(Some(GOOD), Some(GOOD)).is_empty());
    // Key sizes in bits (some modules) are accepted too.
    let bits = Caps {
        min_key_size: 128,
        max_key_size: 256,
        ..GOOD
    };
    assert!(problems(Some(bits), Some(bits)).is_empty());
}

#[test]
fn each_missing_mechanism_flag_and_size_is_named() {
    assert_eq!(
        problems(None, None),
        [
            "CKM_AES_KEY_GEN is not offered (AES key generation)",
            "CKM_AES_GCM is not offered (AES-GCM)"
        ]
    );
    let no_decrypt = Caps {
        decrypt: false,
        ..GOOD
    };
    assert_eq!(
        problems(Some(GOOD), Some(no_decrypt)),
        ["CKM_AES_GCM lacks the CKF_DECRYPT flag"]
    );
    let no_encrypt = Caps {
        encrypt: false,
        ..GOOD
    };
    assert_eq!(
        problems(Some(GOOD), Some(no_encrypt)),
        ["CKM_AES_GCM lacks the CKF_ENCRYPT flag"]
    );
    let aes128 = Caps {
        generate: false,
        max_key_size: 16,
        ..GOOD
    };
    assert_eq!(
        problems(Some(aes128), Some(GOOD)),
        [
            "CKM_AES_KEY_GEN lacks the CKF_GENERATE flag",
            "CKM_AES_KEY_GEN does not generate 256-bit keys (key sizes 16..16)"
        ]
    );
}

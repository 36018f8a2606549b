//! AES-256-GCM with 12- and 16-byte IVs, length checks, key check values.

use super::*;

#[test]
fn round_trip_12_and_16_byte_ivs() {
    let key = generate_key().unwrap();
    for iv_len in [12, 16] {
        let iv = vec![7u8; iv_len];
        let (ct, tag) = seal(&key, &iv, b"hello world", b"aad").unwrap();
        assert_eq!(ct.len(), 11);
        let pt = open(&key, &iv, &ct, &tag, b"aad").unwrap();
        assert_eq!(&pt[..], b"hello world");
        assert_eq!(
            open(&key, &iv, &ct, &tag, b"other"),
            Err(KeySourceError::InvalidCiphertext)
        );
    }
}

#[test]
fn bad_lengths_are_invalid_input() {
    let key = generate_key().unwrap();
    let (ct, tag) = seal(&key, &[0; 12], b"x", b"").unwrap();
    assert!(matches!(
        open(&key, &[0; 8], &ct, &tag, b""),
        Err(KeySourceError::InvalidInput { .. })
    ));
    assert!(matches!(
        open(&key, &[0; 12], &ct, &tag[..15], b""),
        Err(KeySourceError::InvalidInput { .. })
    ));
    assert!(matches!(
        seal(&key, &[0; 13], b"x", b""),
        Err(KeySourceError::InvalidInput { .. })
    ));
}

#[test]
fn key_check_value_matches_fips_197_style_vector() {
    // AES-256(key = 0, block = 0) = dc95c078a2408989ad48a21492842087
    let kcv = key_check_value(&[0u8; 32]);
    assert_eq!(
        kcv,
        [
            0xdc, 0x95, 0xc0, 0x78, 0xa2, 0x40, 0x89, 0x89, 0xad, 0x48, 0xa2, 0x14, 0x92, 0x84,
            0x20, 0x87
        ]
    );
}

#[test]
fn random_ivs_differ() {
    assert_ne!(random_iv().unwrap(), random_iv().unwrap());
}

//! Unit tests of the ciphertext blob format and the KMS layer.

use super::*;

fn sample() -> Blob {
    Blob {
        key_id: "1234abcd-12ab-34cd-56ef-1234567890ab".into(),
        nonce: [7; NONCE_LEN],
        iv: vec![1; 12],
        tag: vec![2; TAG_LEN],
        metadata: b"key_version=1".to_vec(),
        ciphertext: vec![3; 40],
    }
}

#[test]
fn blobs_round_trip() {
    let b = sample();
    assert_eq!(Blob::decode(&b.encode()), Ok(b));
    let mut no_meta = sample();
    no_meta.metadata.clear();
    no_meta.iv = vec![9; 16];
    assert_eq!(Blob::decode(&no_meta.encode()), Ok(no_meta));
}

#[test]
fn malformed_blobs_are_refused() {
    let bytes = sample().encode();
    for cut in [0, 1, 10, bytes.len() - 1] {
        assert!(Blob::decode(&bytes[..cut]).is_err(), "truncated at {cut}");
    }
    let mut longer = bytes.clone();
    longer.push(0);
    assert_eq!(Blob::decode(&longer), Err(Malformed("trailing bytes")));
    let mut version = bytes;
    version[0] = 2;
    assert_eq!(
        Blob::decode(&version),
        Err(Malformed("unknown ciphertext version"))
    );
}

#[test]
fn the_kms_layer_binds_key_and_context() {
    let key = random::<32>();
    let ctx = vec![
        ("a".to_string(), "1".to_string()),
        ("b".to_string(), "2".to_string()),
    ];
    let reordered = vec![ctx[1].clone(), ctx[0].clone()];
    assert_eq!(
        aad("k", &ctx),
        aad("k", &reordered),
        "order does not matter"
    );
    assert_ne!(aad("k", &ctx), aad("other", &ctx));
    assert_ne!(aad("k", &ctx), aad("k", &[]));
    // Length prefixes: ("ab","c") differs from ("a","bc").
    assert_ne!(
        aad("k", &[("ab".into(), "c".into())]),
        aad("k", &[("a".into(), "bc".into())])
    );
    let a = aad("k", &ctx);
    let (nonce, sealed) = seal(&key, b"secret", &a).expect("seal");
    assert_eq!(sealed.len(), 6 + 16);
    assert_eq!(
        open(&key, &nonce, &sealed, &a).as_deref(),
        Some(&b"secret"[..])
    );
    assert_eq!(open(&key, &nonce, &sealed, &aad("k", &[])), None);
    assert_eq!(open(&random::<32>(), &nonce, &sealed, &a), None);
}

//! Configuration parsing and master-key loading.

use super::*;

#[test]
fn parses_and_refuses_unknown_fields() {
    assert_eq!(Config::parse("").unwrap(), Config::default());
    let c = Config::parse(r#"{"master_key_env":"X"}"#).unwrap();
    assert_eq!(c.master_key_env.as_deref(), Some("X"));
    let err = Config::parse(r#"{"master_key_fil":"x"}"#).unwrap_err();
    assert!(err.to_string().contains("master_key_fil"), "{err}");
}

#[test]
fn key_file_formats() {
    let raw = [3u8; 32];
    assert_eq!(*key_from_file_bytes(&raw).unwrap(), raw);
    let b64 = format!("  {}\n", B64.encode(raw));
    assert_eq!(*key_from_file_bytes(b64.as_bytes()).unwrap(), raw);
    let nopad = B64.encode(raw).trim_end_matches('=').to_string();
    assert_eq!(*key_from_file_bytes(nopad.as_bytes()).unwrap(), raw);
    assert!(
        key_from_file_bytes(b"not base64!!")
            .unwrap_err()
            .contains("base64")
    );
    assert!(
        key_from_file_bytes(B64.encode([1u8; 16]).as_bytes())
            .unwrap_err()
            .contains("16 bytes")
    );
}

//! Key usage names.

use super::*;

#[test]
fn usage_names_round_trip() {
    let all = KeyUsage::parse_list(&["encrypt", "DECRYPT", "Wrap", "unwrap"]).unwrap();
    assert_eq!(all, KeyUsage::ALL);
    assert_eq!(all.names(), ["ENCRYPT", "DECRYPT", "WRAP", "UNWRAP"]);
    assert_eq!(
        KeyUsage::parse_list(&["encrypt", "sign"]),
        Err("sign".to_string())
    );
    assert!(!KeyUsage::ENCRYPT.contains(KeyUsage::DECRYPT));
    assert!(KeyUsage::NONE.names().is_empty());
}

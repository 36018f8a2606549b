//! Key records: round trips, name binding, refused versions.

use super::*;

fn attrs() -> KeyAttrs {
    KeyAttrs {
        usage: KeyUsage::ENCRYPT.union(KeyUsage::WRAP),
        exportable: false,
        deletable: true,
        enabled: true,
        created_at: 42,
    }
}

#[test]
fn record_round_trips_and_is_bound_to_its_name() {
    let master = [9u8; 32];
    let material = [0xA5u8; 32];
    let bytes = build_record_bytes(&master, "k1", &material, attrs()).unwrap();
    let text = String::from_utf8(bytes.clone()).unwrap();
    assert!(text.contains("\"usage\":[\"ENCRYPT\",\"WRAP\"]"), "{text}");
    let record = KeyRecord::from_bytes(&bytes).unwrap();
    assert_eq!(record.attrs().unwrap(), attrs());
    assert_eq!(*record.unwrap_material(&master).unwrap(), material);
    assert_eq!(
        record.unwrap_material(&[8u8; 32]).map(|_| ()),
        Err(KeySourceError::InvalidCiphertext)
    );
    let mut moved = record.clone();
    moved.name = "k2".into();
    assert_eq!(
        moved.unwrap_material(&master).map(|_| ()),
        Err(KeySourceError::InvalidCiphertext)
    );
}

#[test]
fn unknown_versions_and_fields_are_refused() {
    let bytes = build_record_bytes(&[1; 32], "k", &[2; 32], attrs()).unwrap();
    let mut v: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    v["version"] = 2.into();
    assert!(KeyRecord::from_bytes(v.to_string().as_bytes()).is_err());
    v["version"] = 1.into();
    v["extra"] = true.into();
    assert!(KeyRecord::from_bytes(v.to_string().as_bytes()).is_err());
}

//! The check value: sealed once, verified by the same key, refused by another, and
//! written exactly once when nodes start together.

use std::sync::Arc;

use super::*;
use crate::store::MemoryStore;

fn key(byte: u8) -> MasterKey {
    MasterKey::from_bytes(&[byte; 32])
}

#[test]
fn the_same_key_verifies_another_is_refused() {
    let value = seal(&key(1));
    assert_eq!(verify(&key(1), &value), Ok(()));
    assert_eq!(verify(&key(2), &value), Err(CheckError::WrongKey));
    // Fresh nonces: two seals differ, both verify.
    let again = seal(&key(1));
    assert_ne!(value, again);
    assert_eq!(verify(&key(1), &again), Ok(()));
}

#[test]
fn damaged_values_are_malformed_not_a_wrong_key() {
    for bad in [
        &b"not json"[..],
        br#"{"version":2,"sealed":"AAAA"}"#,
        br#"{"version":1,"sealed":"not base64!"}"#,
        br#"{"version":1}"#,
        br#"{"version":1,"sealed":"AAAA","extra":1}"#,
    ] {
        assert!(
            matches!(verify(&key(1), bad), Err(CheckError::Malformed(_))),
            "{}",
            String::from_utf8_lossy(bad)
        );
    }
    // Another constant sealed under the same key and context is not the check value.
    let other = serde_json::to_vec(&CheckValue {
        version: VERSION,
        sealed: key(1).seal(b"something else", CHECK_KEY),
    })
    .unwrap();
    assert!(matches!(
        verify(&key(1), &other),
        Err(CheckError::Malformed(_))
    ));
    // The constant sealed for another context (moved from another object) does not open.
    let moved = serde_json::to_vec(&CheckValue {
        version: VERSION,
        sealed: key(1).seal(PLAINTEXT, "credentials/x"),
    })
    .unwrap();
    assert_eq!(verify(&key(1), &moved), Err(CheckError::WrongKey));
}

#[test]
fn ensure_writes_once_then_verifies_and_never_writes_on_refusal() {
    let store = MemoryStore::new();
    assert_eq!(ensure(&store, &key(1)).unwrap(), Ensured::Written);
    let rev = store.revision().unwrap();
    assert_eq!(ensure(&store, &key(1)).unwrap(), Ensured::Verified);
    let err = ensure(&store, &key(2)).unwrap_err();
    assert!(
        matches!(err, EnsureError::Check(CheckError::WrongKey)),
        "{err}"
    );
    assert_eq!(store.revision().unwrap(), rev, "nothing written");
}

#[test]
fn nodes_starting_together_agree_on_one_value() {
    let store = Arc::new(MemoryStore::new());
    let results: Vec<_> = (0..8)
        .map(|_| {
            let store = store.clone();
            std::thread::spawn(move || ensure(store.as_ref(), &key(3)).unwrap())
        })
        .collect::<Vec<_>>()
        .into_iter()
        .map(|t| t.join().unwrap())
        .collect();
    assert_eq!(
        results.iter().filter(|r| **r == Ensured::Written).count(),
        1,
        "{results:?}"
    );
    assert_eq!(store.revision().unwrap(), 1);
    // A node with another key starting at the same time as the rest is refused.
    assert!(ensure(store.as_ref(), &key(4)).is_err());
}

//! A panic inside a key source method becomes `KeySourceError::Internal` at the
//! boundary (`keyhold_sdk::guard`).

use keyhold_sdk::{
    DecryptInput, EkmNode, Encrypted, HealthStatus, KeyInfo, KeySourceError, KeySourceImpl, NewKey,
    SourceInfo, guard,
};

struct Panicky;

impl KeySourceImpl for Panicky {
    fn info(&self) -> SourceInfo {
        panic!("info exploded")
    }
    fn health(&self) -> Vec<EkmNode> {
        panic!("health exploded")
    }
    fn list_keys(&self) -> Result<Vec<KeyInfo>, KeySourceError> {
        panic!("list exploded")
    }
    fn get_key(&self, name: &str) -> Result<KeyInfo, KeySourceError> {
        panic!("{}", format!("get_key({name}) exploded"))
    }
    fn create_key(&self, _: NewKey) -> Result<KeyInfo, KeySourceError> {
        panic!("create exploded")
    }
    fn delete_key(&self, _: &str) -> Result<(), KeySourceError> {
        panic!("delete exploded")
    }
    fn set_enabled(&self, _: &str, _: bool) -> Result<KeyInfo, KeySourceError> {
        panic!("set_enabled exploded")
    }
    fn validate_health_check_key(&self, _: &str) -> Result<(), KeySourceError> {
        panic!("validate exploded")
    }
    fn encrypt(&self, _: &str, _: &[u8], _: &[u8]) -> Result<Encrypted, KeySourceError> {
        panic!("encrypt exploded")
    }
    fn decrypt(&self, _: &str, _: DecryptInput<'_>) -> Result<Vec<u8>, KeySourceError> {
        let v: Vec<u8> = Vec::new();
        #[allow(clippy::unnecessary_operation)]
        let _ = v[3]; // index out of bounds
        Ok(v)
    }
}

fn internal_mentioning(r: Result<impl std::fmt::Debug, KeySourceError>, what: &str) {
    match r {
        Err(KeySourceError::Internal { reason }) => {
            assert!(reason.contains(what), "{reason}");
            assert!(reason.contains("panicked"), "{reason}");
        }
        other => panic!("expected Internal, got {other:?}"),
    }
}

#[test]
fn panics_become_internal_errors() {
    let source = guard(Panicky);
    internal_mentioning(
        source.get_key("k".into()).into_result(),
        "get_key(k) exploded",
    );
    internal_mentioning(source.list_keys().into_result(), "list exploded");
    internal_mentioning(
        source
            .encrypt("k".into(), b"x".as_slice().into(), b"".as_slice().into())
            .into_result(),
        "encrypt exploded",
    );
    let input = DecryptInput {
        iv: [0u8; 12].as_slice().into(),
        ciphertext: b"".as_slice().into(),
        tag: [0u8; 16].as_slice().into(),
        aad: b"".as_slice().into(),
    };
    internal_mentioning(
        source.decrypt("k".into(), input).into_result(),
        "index out of bounds",
    );
    internal_mentioning(
        source
            .create_key(NewKey::new("k", keyhold_sdk::KeyUsage::ALL))
            .into_result(),
        "create exploded",
    );
    // info and health cannot fail: they report the panic instead.
    assert!(source.info().model.contains("info exploded"));
    let nodes = source.health();
    assert_eq!(nodes.len(), 1);
    assert_eq!(nodes[0].status, HealthStatus::Unavailable);
    // The source is still usable after a panic.
    internal_mentioning(
        source.delete_key("k".into()).into_result(),
        "delete exploded",
    );
}

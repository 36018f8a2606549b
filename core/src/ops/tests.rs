use std::{collections::HashMap, sync::Mutex, time::Duration};

use keyhold_sdk::{
    DecryptInput, EkmNode, Encrypted, HealthStatus, KeyInfo, KeySourceImpl, KeyUsage, NewKey,
    SourceInfo,
};

use zeroize::Zeroizing;

use super::*;
use crate::{
    api::{connections::TestStatus, sources::SourceState},
    model::{AwsLink, ConnectionState, CredentialRecord, SourceRecord, XksLocation},
    plugin::{CallLimits, KeySourceHandle},
    store::MemoryStore,
};

/// A key source that only keeps key attributes (enough for management rules).
#[derive(Default)]
struct AttrSource {
    keys: Mutex<HashMap<String, KeyInfo>>,
}

impl KeySourceImpl for AttrSource {
    fn info(&self) -> SourceInfo {
        SourceInfo {
            vendor: "test".into(),
            model: "attributes only".into(),
        }
    }
    fn health(&self) -> Vec<EkmNode> {
        vec![EkmNode {
            id: "t".into(),
            model: "t".into(),
            status: HealthStatus::Active,
        }]
    }
    fn list_keys(&self) -> Result<Vec<KeyInfo>, KeySourceError> {
        Ok(self.keys.lock().unwrap().values().cloned().collect())
    }
    fn get_key(&self, name: &str) -> Result<KeyInfo, KeySourceError> {
        self.keys
            .lock()
            .unwrap()
            .get(name)
            .cloned()
            .ok_or_else(|| KeySourceError::not_found(name))
    }
    fn create_key(&self, spec: NewKey) -> Result<KeyInfo, KeySourceError> {
        let info = KeyInfo {
            name: spec.name.clone(),
            bits: 256,
            usage: spec.usage,
            enabled: true,
            exportable: spec.exportable,
            deletable: spec.deletable,
            attributes: Default::default(),
        };
        self.keys
            .lock()
            .unwrap()
            .insert(spec.name.to_string(), info.clone());
        Ok(info)
    }
    fn delete_key(&self, name: &str) -> Result<(), KeySourceError> {
        self.keys.lock().unwrap().remove(name);
        Ok(())
    }
    fn set_enabled(&self, name: &str, enabled: bool) -> Result<KeyInfo, KeySourceError> {
        let mut keys = self.keys.lock().unwrap();
        let k = keys
            .get_mut(name)
            .ok_or_else(|| KeySourceError::not_found(name))?;
        k.enabled = enabled;
        Ok(k.clone())
    }
    fn validate_health_check_key(&self, name: &str) -> Result<(), KeySourceError> {
        let k = self.get_key(name)?;
        let mut problems = Vec::new();
        if !k.usage.contains(KeyUsage::ALL) {
            problems.push("usage must include ENCRYPT, DECRYPT, WRAP, UNWRAP");
        }
        if k.exportable {
            problems.push("exportable must be false");
        }
        KeySourceError::check_key(name, problems)
    }
    fn encrypt(&self, _: &str, _: &[u8], _: &[u8]) -> Result<Encrypted, KeySourceError> {
        Err(KeySourceError::Unsupported {
            reason: "attributes only".into(),
        })
    }
    fn decrypt(&self, _: &str, _: DecryptInput<'_>) -> Result<Vec<u8>, KeySourceError> {
        Err(KeySourceError::Unsupported {
            reason: "attributes only".into(),
        })
    }
}

pub(super) struct Fixture {
    pub(super) ops: Operations,
    store: Arc<dyn Store>,
    master: Arc<MasterKey>,
}

pub(super) fn fixture() -> Fixture {
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let master = Arc::new(MasterKey::from_bytes(&[3u8; 32]));
    let source = AttrSource::default();
    source.create_key(NewKey::new("hc", KeyUsage::ALL)).unwrap();
    source
        .create_key(NewKey::new(
            "weak",
            KeyUsage::ENCRYPT.union(KeyUsage::DECRYPT),
        ))
        .unwrap();
    source
        .create_key(NewKey::new("data", KeyUsage::ALL))
        .unwrap();
    let mut sources = Sources::default();
    sources.insert(
        "ctm",
        Arc::new(KeySourceHandle::new(
            "ctm",
            None,
            keyhold_sdk::guard(source),
            CallLimits {
                concurrency: 4,
                queue_timeout: Duration::from_millis(50),
                call_timeout: Duration::from_millis(500),
            },
        )),
    );
    let rec = SourceRecord {
        name: "ctm".into(),
        plugin: "ctm".into(),
        container: None,
        created_at: 0,
        hsm_connection: None,
        config: None,
        generation: 0,
    };
    store
        .put(&keys::source("ctm"), serde_json::to_vec(&rec).unwrap())
        .unwrap();
    Fixture {
        ops: Operations::new(store.clone(), master.clone(), Arc::new(sources)),
        store,
        master,
    }
}

/// The code of an operation's refusal.
fn code<T: std::fmt::Debug>(r: Result<T, OpError>) -> &'static str {
    r.unwrap_err().code()
}

pub(super) fn new_store(name: &str) -> NewStore {
    NewStore {
        name: name.into(),
        account: None,
        source: "ctm".into(),
        uri_path_prefix: None,
        health_check_key: "hc".into(),
        max_credentials: None,
        location: XksLocation::Unset,
        success_audit: false,
        mtls: false,
        mtls_ca_pem: None,
        mtls_cns: Vec::new(),
        region: None,
        linked: false,
        rotation_schedule: None,
    }
}

#[test]
fn create_returns_the_credentials_file_once_and_seals_the_secret() {
    let f = fixture();
    let (rec, file) = f.ops.create_store(new_store("acme")).unwrap();
    assert_eq!(file.uri_path, format!("/keystores/{}/kms/xks/v1", rec.id));
    model::validate_access_key_id(&file.credential.access_key_id).unwrap();
    model::validate_secret(&file.credential.raw_secret_access_key).unwrap();
    assert_eq!(rec.max_credentials, 20);
    // The secret is stored sealed, never in clear.
    let key = keys::credential(&rec.id, &file.credential.access_key_id);
    let stored = f.store.get(&key).unwrap().unwrap();
    let text = String::from_utf8_lossy(&stored.value);
    assert!(!text.contains(&file.credential.raw_secret_access_key));
    let cred: CredentialRecord = serde_json::from_slice(&stored.value).unwrap();
    assert_eq!(
        &**f.master.open(&cred.sealed_secret, &key).unwrap(),
        file.credential.raw_secret_access_key.as_bytes()
    );
    // Listing shows ids and dates only.
    let listed = f.ops.list_credentials(&rec.id).unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].0, file.credential.access_key_id);
}

#[test]
fn creation_rules() {
    let f = fixture();
    let mut bad = new_store("weak");
    bad.health_check_key = "weak".into();
    let e = f.ops.create_store(bad).unwrap_err();
    assert_eq!(e.code(), "invalid_key");
    assert_eq!(e.http_status(), 422);
    assert!(e.to_string().contains("WRAP"), "{e}");
    let mut missing = new_store("missing");
    missing.health_check_key = "nope".into();
    assert_eq!(code(f.ops.create_store(missing)), "source_key_not_found");
    let mut other_source = new_store("other");
    other_source.source = "luna".into();
    assert_eq!(code(f.ops.create_store(other_source)), "not_found");
    let mut bad_max = new_store("m");
    bad_max.max_credentials = Some(1);
    assert_eq!(code(f.ops.create_store(bad_max)), "invalid_input");
    f.ops.create_store(new_store("dup")).unwrap();
    let e = f.ops.create_store(new_store("dup")).unwrap_err();
    assert_eq!((e.code(), e.http_status()), ("already_exists", 409));
    let mut p1 = new_store("p1");
    p1.uri_path_prefix = Some("shared".into());
    f.ops.create_store(p1).unwrap();
    let mut p2 = new_store("p2");
    p2.uri_path_prefix = Some("/shared/".into());
    let e = f.ops.create_store(p2).unwrap_err();
    assert!(e.to_string().contains("prefix"), "{e}");
}

#[test]
fn rotation_evicts_the_oldest_at_max_credentials() {
    let f = fixture();
    let mut n = new_store("rot");
    n.max_credentials = Some(2);
    let (rec, first) = f.ops.create_store(n).unwrap();
    let (second, evicted) = f.ops.add_credential(&rec.id).unwrap();
    assert!(evicted.is_empty());
    let (third, evicted) = f.ops.add_credential(&rec.id).unwrap();
    assert_eq!(evicted, vec![first.credential.access_key_id.clone()]);
    let ids: Vec<String> = f
        .ops
        .list_credentials(&rec.id)
        .unwrap()
        .into_iter()
        .map(|c| c.0)
        .collect();
    assert_eq!(
        ids,
        vec![
            second.credential.access_key_id.clone(),
            third.credential.access_key_id.clone()
        ]
    );
    f.ops
        .delete_credential(&rec.id, &second.credential.access_key_id)
        .unwrap();
    assert_eq!(
        code(
            f.ops
                .delete_credential(&rec.id, &second.credential.access_key_id)
        ),
        "not_found"
    );
}

#[test]
fn blocked_or_transient_stores_refuse_credentials_and_updates() {
    let f = fixture();
    let (rec, _) = f.ops.create_store(new_store("b")).unwrap();
    f.ops.set_store_blocked(&rec.id, true).unwrap();
    let e = f.ops.add_credential(&rec.id).unwrap_err();
    assert_eq!((e.code(), e.http_status()), ("store_blocked", 409));
    assert!(e.to_string().contains("unblock it first"));
    let e = f
        .ops
        .update_store(
            &rec.id,
            StoreUpdate {
                mtls: Some(true),
                ..Default::default()
            },
            None,
        )
        .unwrap_err();
    assert_eq!(e.code(), "store_blocked");
    f.ops.set_store_blocked(&rec.id, false).unwrap();
    // A linked store in a transient state.
    let mut linked = f.ops.get_store(&rec.id).unwrap().value;
    linked.aws = Some(AwsLink {
        connection_error_code: None,
        custom_key_store_id: "cks-1".into(),
        connection_state: ConnectionState::Connecting,
    });
    f.store
        .put(&keys::store(&rec.id), serde_json::to_vec(&linked).unwrap())
        .unwrap();
    assert_eq!(code(f.ops.add_credential(&rec.id)), "store_transient_state");
    assert_eq!(
        code(f.ops.update_store(
            &rec.id,
            StoreUpdate {
                name: Some("x".into()),
                ..Default::default()
            },
            None
        )),
        "store_not_disconnected"
    );
}

#[test]
fn updates_keep_the_source_and_check_versions() {
    let f = fixture();
    let (rec, _) = f.ops.create_store(new_store("u")).unwrap();
    let v = f.ops.get_store(&rec.id).unwrap().version;
    let update = |u, version| f.ops.update_store(&rec.id, u, version);
    let e = update(
        StoreUpdate {
            source: Some("luna".into()),
            ..Default::default()
        },
        None,
    )
    .unwrap_err();
    assert_eq!((e.code(), e.http_status()), ("source_immutable", 422));
    let updated = update(
        StoreUpdate {
            name: Some("renamed".into()),
            max_credentials: Some(5),
            health_check_key: Some("data".into()),
            ..Default::default()
        },
        Some(v),
    )
    .unwrap();
    assert_eq!(updated.value.name, "renamed");
    assert_eq!(updated.value.max_credentials, 5);
    assert!(updated.version > v);
    // A stale version is refused: no silent overwrite.
    let e = update(
        StoreUpdate {
            mtls: Some(true),
            ..Default::default()
        },
        Some(v),
    )
    .unwrap_err();
    assert_eq!((e.code(), e.http_status()), ("version_mismatch", 409));
    // An invalid health-check key is refused with the attribute named.
    let e = update(
        StoreUpdate {
            health_check_key: Some("weak".into()),
            ..Default::default()
        },
        None,
    )
    .unwrap_err();
    assert_eq!(e.code(), "invalid_key");
    // The old name is free again, the new one is taken.
    f.ops.create_store(new_store("u")).unwrap();
    assert_eq!(
        code(f.ops.create_store(new_store("renamed"))),
        "already_exists"
    );
}

#[test]
fn remote_stores_refuse_local_only_updates() {
    let f = fixture();
    let (rec, _) = f.ops.create_store(new_store("r")).unwrap();
    let mut remote = f.ops.get_store(&rec.id).unwrap().value;
    remote.kind = StoreKind::Remote;
    f.store
        .put(&keys::store(&rec.id), serde_json::to_vec(&remote).unwrap())
        .unwrap();
    let e = f
        .ops
        .update_store(
            &rec.id,
            StoreUpdate {
                max_credentials: Some(3),
                ..Default::default()
            },
            None,
        )
        .unwrap_err();
    assert_eq!(e.code(), "remote_store");
    // Name and location are allowed on any store.
    f.ops
        .update_store(
            &rec.id,
            StoreUpdate {
                name: Some("r2".into()),
                ..Default::default()
            },
            None,
        )
        .unwrap();
}

#[test]
fn hyok_keys_and_store_deletion() {
    let f = fixture();
    let (rec, _) = f.ops.create_store(new_store("d")).unwrap();
    let e = f.ops.create_hyok_key(&rec.id, "k1", "missing").unwrap_err();
    assert_eq!(e.code(), "source_key_not_found");
    assert_eq!(
        code(f.ops.create_hyok_key(&rec.id, "bad/id", "data")),
        "invalid_input"
    );
    f.ops.create_hyok_key(&rec.id, "k1", "data").unwrap();
    f.ops.create_hyok_key(&rec.id, "k2", "weak").unwrap();
    assert_eq!(
        code(f.ops.create_hyok_key(&rec.id, "k1", "data")),
        "already_exists"
    );
    assert!(
        f.ops
            .set_hyok_key_blocked(&rec.id, "k1", true)
            .unwrap()
            .blocked
    );
    assert_eq!(f.ops.list_hyok_keys(&rec.id).unwrap().len(), 2);
    let e = f.ops.delete_store(&rec.id, true).unwrap_err();
    assert_eq!(e.code(), "store_has_keys");
    assert!(
        e.to_string().contains("delete the 2 HYOK keys first"),
        "{e}"
    );
    f.ops.delete_hyok_key(&rec.id, "k1").unwrap();
    f.ops.delete_hyok_key(&rec.id, "k2").unwrap();
    assert_eq!(code(f.ops.delete_hyok_key(&rec.id, "k2")), "not_found");
    assert_eq!(
        code(f.ops.delete_store(&rec.id, false)),
        "confirmation_required"
    );
    f.ops.delete_store(&rec.id, true).unwrap();
    assert_eq!(code(f.ops.get_store(&rec.id)), "not_found");
    // Credentials and indexes went with it: the name and prefix are free again.
    assert!(
        f.store
            .scan(&keys::credentials_of(&rec.id))
            .unwrap()
            .is_empty()
    );
    f.ops.create_store(new_store("d")).unwrap();
}

#[test]
fn a_source_key_backs_one_hyok_key_of_one_store() {
    let f = fixture();
    let (a, _) = f.ops.create_store(new_store("sa")).unwrap();
    let (b, _) = f.ops.create_store(new_store("sb")).unwrap();
    f.ops.create_hyok_key(&a.id, "k1", "data").unwrap();
    // Another store, then the same store: refused, naming the holder (the layer above
    // drops the name for callers who may not view it).
    for (store, ext) in [(&b.id, "k1"), (&a.id, "k2")] {
        let e = f.ops.create_hyok_key(store, ext, "data").unwrap_err();
        assert_eq!(e.code(), "source_key_in_use");
        assert_eq!(e.http_status(), 409);
        let msg = e.to_string();
        assert!(
            msg.contains("'data'") && msg.contains("key store 'sa'"),
            "{msg}"
        );
        match e {
            OpError::SourceKeyInUse(held) => assert_eq!(held.holder_store_id, a.id),
            other => panic!("{other:?}"),
        }
    }
    assert!(f.ops.list_hyok_keys(&b.id).unwrap().is_empty());
    assert_eq!(f.ops.list_hyok_keys(&a.id).unwrap().len(), 1);
    // Without the holder's name the message is neutral.
    let neutral = OpError::SourceKeyInUse(Box::new(SourceKeyInUse {
        source_name: "ctm".into(),
        source_key: "data".into(),
        holder_store_id: a.id.clone(),
        holder_name: None,
    }));
    let msg = neutral.to_string();
    assert!(
        msg.contains("another key store") && !msg.contains("sa"),
        "{msg}"
    );
    // A health-check key never backs a HYOK key.
    let e = f.ops.create_hyok_key(&b.id, "k1", "hc").unwrap_err();
    assert_eq!(e.code(), "source_key_is_health_check_key");
    // Nor does a source key that backs a HYOK key become a health-check key.
    let mut on_data = new_store("sc");
    on_data.health_check_key = "data".into();
    assert_eq!(
        code(f.ops.create_store(on_data).map(|_| ())),
        "health_check_key_in_use"
    );
    let e = f
        .ops
        .update_store(
            &b.id,
            StoreUpdate {
                health_check_key: Some("data".into()),
                ..Default::default()
            },
            None,
        )
        .unwrap_err();
    assert_eq!(e.code(), "health_check_key_in_use");
    // Deleting the key frees the source key.
    f.ops.delete_hyok_key(&a.id, "k1").unwrap();
    f.ops.create_hyok_key(&b.id, "k1", "data").unwrap();
    assert_eq!(
        code(f.ops.create_hyok_key(&a.id, "k1", "data")),
        "source_key_in_use"
    );
}

#[test]
fn a_blocked_store_refuses_new_keys() {
    let f = fixture();
    let (rec, _) = f.ops.create_store(new_store("bk")).unwrap();
    f.ops.set_store_blocked(&rec.id, true).unwrap();
    assert_eq!(
        code(f.ops.create_hyok_key(&rec.id, "k", "data")),
        "store_blocked"
    );
}

#[test]
fn accounts_bind_stores_and_refuse_deletion_while_used() {
    let f = fixture();
    let e = f
        .ops
        .create_account("123", "x", vec![], vec![])
        .unwrap_err();
    assert_eq!((e.code(), e.http_status()), ("invalid_input", 400));
    let e = f
        .ops
        .create_account("111122223333", "prod", vec!["EU".into()], vec![])
        .unwrap_err();
    assert_eq!(e.code(), "invalid_input");
    let acl = vec![crate::identity::AclEntry {
        principal: "user:bob".into(),
        permissions: [crate::identity::Permission::View].into_iter().collect(),
    }];
    f.ops
        .create_account("111122223333", "prod", vec!["eu-west-1".into()], acl)
        .unwrap();
    let e = f
        .ops
        .create_account("111122223333", "again", vec![], vec![])
        .unwrap_err();
    assert_eq!(e.code(), "already_exists");
    let mut unknown = new_store("orphan");
    unknown.account = Some("999988887777".into());
    assert_eq!(code(f.ops.create_store(unknown)), "not_found");
    let mut s = new_store("bound");
    s.account = Some("111122223333".into());
    let (rec, _) = f.ops.create_store(s).unwrap();
    assert_eq!(
        f.ops.store_account(&rec.id).unwrap().as_deref(),
        Some("111122223333")
    );
    let e = f.ops.delete_account("111122223333").unwrap_err();
    assert_eq!((e.code(), e.http_status()), ("account_in_use", 409));
    f.ops.delete_store(&rec.id, true).unwrap();
    assert!(f.ops.store_account(&rec.id).unwrap().is_none());
    let updated = f
        .ops
        .update_account(
            "111122223333",
            AccountUpdate {
                name: Some("production".into()),
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(updated.name, "production");
    assert_eq!(updated.acl.len(), 1);
    f.ops.delete_account("111122223333").unwrap();
    assert_eq!(code(f.ops.get_account("111122223333")), "not_found");
}

#[test]
fn users_tokens_and_the_root_bootstrap() {
    let f = fixture();
    let boot = f.ops.ensure_root(None).unwrap().expect("first start");
    let pw = boot.generated_password.expect("generated");
    assert!(f.ops.ensure_root(None).unwrap().is_none(), "only once");
    let session = f.ops.login("root", &pw, 60).unwrap();
    let (who, rec) = f.ops.authenticate(&session.bearer).unwrap();
    assert!(who.is_admin());
    assert_eq!(rec.kind, crate::identity::TokenKind::Session);
    assert_eq!(
        f.ops
            .login("root", "wrong password", 60)
            .unwrap_err()
            .http_status(),
        401
    );
    assert_eq!(
        code(f.ops.login("ghost", "wrong password", 60)),
        "unauthenticated"
    );
    let groups = ["users".to_string()].into_iter().collect();
    f.ops.create_user("bob", "correct horse", groups).unwrap();
    let bad: std::collections::BTreeSet<String> = ["wizards".to_string()].into_iter().collect();
    assert_eq!(
        code(f.ops.create_user("eve", "correct horse", bad)),
        "invalid_input"
    );
    let api = f.ops.issue_api_token("bob", None, "ci").unwrap();
    let (bob, _) = f.ops.authenticate(&api.bearer).unwrap();
    assert!(!bob.is_admin());
    assert_eq!(f.ops.list_tokens("bob").unwrap().len(), 1);
    // Bob cannot revoke root's session; root can revoke Bob's token.
    assert_eq!(
        code(f.ops.revoke_token(&session.record.id, &bob)),
        "not_found"
    );
    f.ops.revoke_token(&api.record.id, &who).unwrap();
    assert_eq!(
        f.ops.authenticate(&api.bearer).unwrap_err().http_status(),
        401
    );
    // Deleting a user revokes their tokens; the last admin stays.
    let again = f.ops.issue_api_token("bob", None, "").unwrap();
    f.ops.delete_user("bob").unwrap();
    assert!(f.ops.authenticate(&again.bearer).is_err());
    assert_eq!(code(f.ops.delete_user("root")), "last_admin");
    f.ops.set_password("root", "a new password", None).unwrap();
    assert!(f.ops.check_password("root", "a new password").unwrap());
    assert_eq!(
        code(f.ops.set_password("root", "short", None)),
        "invalid_input"
    );
}

#[test]
fn a_password_change_revokes_other_tokens_and_keeps_the_current_one() {
    let f = fixture();
    let groups: std::collections::BTreeSet<String> = ["users".to_string()].into_iter().collect();
    f.ops
        .create_user("carol", "first password", groups)
        .unwrap();
    let current = f.ops.login("carol", "first password", 600).unwrap();
    let other = f.ops.login("carol", "first password", 600).unwrap();
    let api = f.ops.issue_api_token("carol", None, "ci").unwrap();
    f.ops
        .set_password("carol", "second password", Some(&current.record.id))
        .unwrap();
    f.ops
        .authenticate(&current.bearer)
        .expect("current session kept");
    for revoked in [&other, &api] {
        assert_eq!(code(f.ops.authenticate(&revoked.bearer)), "unauthenticated");
    }
    assert_eq!(f.ops.list_tokens("carol").unwrap().len(), 1);
    // An admin's change keeps none.
    f.ops.set_password("carol", "third password", None).unwrap();
    assert_eq!(code(f.ops.authenticate(&current.bearer)), "unauthenticated");
}

#[test]
fn a_token_written_for_a_deleted_user_is_refused_after_re_creation() {
    let f = fixture();
    let groups: std::collections::BTreeSet<String> = ["users".to_string()].into_iter().collect();
    f.ops
        .create_user("dave", "first password", groups.clone())
        .unwrap();
    let old = f.ops.login("dave", "first password", 600).unwrap();
    f.ops.delete_user("dave").unwrap();
    f.ops.create_user("dave", "first password", groups).unwrap();
    // A token record of the old user that survived (e.g. a login committed while the
    // user was deleted) is refused: it carries the old generation.
    f.store
        .put(
            &crate::identity::keys::token(&old.record.id),
            serde_json::to_vec(&old.record).unwrap(),
        )
        .unwrap();
    let err = f.ops.authenticate(&old.bearer).unwrap_err();
    assert_eq!(err.http_status(), 401, "{err}");
    // Records from before generations existed (no field) read as generation 0.
    let legacy: crate::identity::UserRecord = serde_json::from_value(serde_json::json!({
        "name": "x", "groups": ["users"], "password_hash": "h", "created_at": 1
    }))
    .unwrap();
    assert_eq!(legacy.generation, 0);
}

#[test]
fn source_keys_and_hyok_lookups() {
    let f = fixture();
    let sources = f.ops.list_sources().unwrap();
    assert_eq!(sources.len(), 1);
    assert_eq!(
        (sources[0].plugin.as_str(), sources[0].status),
        ("ctm", SourceState::Opened)
    );
    let k = f
        .ops
        .create_source_key("ctm", NewKey::new("new-hc", KeyUsage::ALL))
        .unwrap();
    assert_eq!(k.usage, KeyUsage::ALL);
    assert!(
        f.ops
            .list_source_keys("ctm")
            .unwrap()
            .iter()
            .any(|k| k.name == "new-hc")
    );
    let (_, check) = f.ops.get_source_key("ctm", "new-hc").unwrap();
    assert!(check.is_ok());
    let (_, check) = f.ops.get_source_key("ctm", "weak").unwrap();
    assert!(check.unwrap_err()[0].contains("usage"));
    assert_eq!(code(f.ops.list_source_keys("nope")), "not_found");
    let e = f
        .ops
        .create_source_key("ctm", NewKey::new("none", KeyUsage::NONE))
        .unwrap_err();
    assert_eq!(e.code(), "invalid_input");
    let (rec, _) = f.ops.create_store(new_store("h")).unwrap();
    f.ops.create_hyok_key(&rec.id, "k1", "data").unwrap();
    assert_eq!(
        f.ops.get_hyok_key(&rec.id, "k1").unwrap().source_key,
        "data"
    );
    assert_eq!(code(f.ops.get_hyok_key(&rec.id, "k2")), "not_found");
}

// ----- connections -----

fn aws(name: &str) -> NewAwsConnection {
    NewAwsConnection {
        name: name.into(),
        access_key_id: "AKIAEXAMPLE000000001".into(),
        secret_access_key: Zeroizing::new("wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY".into()),
        role_arn: None,
        endpoint_url: None,
        sts_regional_endpoints: model::StsRegionalEndpoints::Regional,
        sts_endpoint_url: None,
        ca_file: None,
    }
}

#[test]
fn aws_connection_secret_is_sealed_with_its_key_as_context() {
    let f = fixture();
    let rec = f.ops.create_aws_connection(aws("c1")).unwrap();
    let raw = f.store.get(&keys::aws_connection("c1")).unwrap().unwrap();
    assert!(!String::from_utf8_lossy(&raw.value).contains("wJalrXUtnFEMI"));
    let opened = f
        .master
        .open(&rec.sealed_secret_access_key, &keys::aws_connection("c1"))
        .unwrap();
    assert_eq!(
        opened.as_slice(),
        b"wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
    );
    assert!(
        f.master
            .open(&rec.sealed_secret_access_key, &keys::aws_connection("c2"))
            .is_err()
    );
    assert_eq!(
        code(f.ops.create_aws_connection(aws("c1"))),
        "already_exists"
    );
    let mut bad = aws("c2");
    bad.access_key_id = "short".into();
    assert_eq!(code(f.ops.create_aws_connection(bad)), "invalid_input");
    let mut bad = aws("c2");
    bad.endpoint_url = Some("not a url".into());
    assert_eq!(code(f.ops.create_aws_connection(bad)), "invalid_input");
    let mut bad = aws("c2");
    bad.role_arn = Some("arn:aws:s3:::bucket".into());
    assert_eq!(code(f.ops.create_aws_connection(bad)), "invalid_input");
    assert_eq!(f.ops.list_aws_connections().unwrap().len(), 1);
}

#[test]
fn a_referenced_aws_connection_cannot_be_deleted() {
    let f = fixture();
    f.ops.create_aws_connection(aws("c1")).unwrap();
    let e = f
        .ops
        .create_account_with("111122223333", "prod", vec![], vec![], Some("nope".into()))
        .unwrap_err();
    assert_eq!(e.code(), "not_found");
    f.ops
        .create_account_with("111122223333", "prod", vec![], vec![], Some("c1".into()))
        .unwrap();
    let e = f.ops.delete_aws_connection("c1").unwrap_err();
    assert_eq!((e.code(), e.http_status()), ("connection_in_use", 409));
    assert!(e.to_string().contains("111122223333"), "{e}");
    f.ops
        .update_account(
            "111122223333",
            AccountUpdate {
                aws_connection: Some(String::new()),
                ..Default::default()
            },
        )
        .unwrap();
    f.ops.delete_aws_connection("c1").unwrap();
    assert_eq!(code(f.ops.delete_aws_connection("c1")), "not_found");
}

#[test]
fn aws_connection_test_reports_the_connection_error() {
    let f = fixture();
    let mut c = aws("c1");
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    c.endpoint_url = Some(format!("http://{closed}"));
    f.ops.create_aws_connection(c).unwrap();
    let t = f.ops.test_aws_connection("c1", None).unwrap();
    assert_eq!(t.status, TestStatus::Failed);
    let reason = t.reason.unwrap();
    assert!(reason.contains("cannot reach the endpoint"), "{reason}");
    assert!(reason.contains("ListKeys"), "{reason}");
    assert_eq!(
        code(f.ops.test_aws_connection("c1", Some("Mars"))),
        "invalid_input"
    );
}

#[test]
fn hsm_connections_hold_a_pin_reference_and_sources_need_one() {
    let f = fixture();
    let base = NewHsmConnection {
        name: "h1".into(),
        module: "/usr/lib/softhsm/libsofthsm2.so".into(),
        token_label: "part1".into(),
        pin_file: Some("/etc/keyhold/pin".into()),
        ..Default::default()
    };
    for bad in [
        NewHsmConnection {
            pin_file: None,
            ..base.clone()
        },
        NewHsmConnection {
            pin_env: Some("PIN".into()),
            ..base.clone()
        },
        NewHsmConnection {
            module: "relative.so".into(),
            ..base.clone()
        },
        NewHsmConnection {
            token_label: String::new(),
            ..base.clone()
        },
        NewHsmConnection {
            pool_size: Some(0),
            ..base.clone()
        },
    ] {
        assert_eq!(code(f.ops.create_hsm_connection(bad)), "invalid_input");
    }
    let rec = f.ops.create_hsm_connection(base.clone()).unwrap();
    assert_eq!(
        rec.luna_config(),
        serde_json::json!({"module": "/usr/lib/softhsm/libsofthsm2.so",
                           "token_label": "part1", "pin_file": "/etc/keyhold/pin"})
    );
    assert_eq!(code(f.ops.create_hsm_connection(base)), "already_exists");
    // Source creation refusals, before any plugin is loaded.
    assert_eq!(code(f.ops.create_source("s", "luna", "nope")), "not_found");
    assert_eq!(code(f.ops.create_source("s", "ctm", "h1")), "invalid_input");
    assert_eq!(
        code(f.ops.create_source("ctm", "luna", "h1")),
        "already_exists"
    );
    // This fixture cannot open plugins at run time.
    assert_eq!(
        code(f.ops.create_source("s", "luna", "h1")),
        "invalid_input"
    );
    assert!(!f.ops.sources.contains("s"));
    f.ops.delete_hsm_connection("h1").unwrap();
}

#[test]
fn sources_are_added_at_run_time_once() {
    let sources = Sources::default();
    let handle = Arc::new(KeySourceHandle::new(
        "x",
        None,
        keyhold_sdk::guard(AttrSource::default()),
        CallLimits {
            concurrency: 1,
            queue_timeout: Duration::from_millis(50),
            call_timeout: Duration::from_millis(500),
        },
    ));
    assert!(sources.add("x", handle.clone()));
    assert!(!sources.add("x", handle));
    assert!(sources.get("x").is_ok());
    assert_eq!(sources.all().len(), 1);
    sources.remove("x");
    assert!(!sources.contains("x"));
}

// ----- linked stores: the rules checked before AWS KMS is called -----

const ACCOUNT: &str = "111122223333";

fn linked_store(name: &str) -> NewStore {
    NewStore {
        account: Some(ACCOUNT.into()),
        region: Some("eu-west-1".into()),
        location: XksLocation::Public {
            endpoint: "https://xks.example.com".into(),
        },
        linked: true,
        ..new_store(name)
    }
}

fn with_account(f: &Fixture, connection: Option<&str>) {
    if let Some(c) = connection {
        f.ops
            .create_aws_connection(NewAwsConnection {
                name: c.into(),
                access_key_id: "AKIAEXAMPLEEXAMPLE01".into(),
                secret_access_key: Zeroizing::new("s".repeat(40)),
                role_arn: None,
                endpoint_url: Some("http://127.0.0.1:9".into()),
                sts_endpoint_url: None,
                sts_regional_endpoints: Default::default(),
                ca_file: None,
            })
            .unwrap();
    }
    f.ops
        .create_account_with(
            ACCOUNT,
            "acme",
            vec!["eu-west-1".into()],
            vec![],
            connection.map(str::to_string),
        )
        .unwrap();
}

#[test]
fn a_linked_store_needs_account_region_location_and_connection_and_leaves_nothing_when_refused() {
    let f = fixture();
    with_account(&f, None);
    let cases = [
        (
            NewStore {
                account: None,
                ..linked_store("a")
            },
            "store_without_account",
        ),
        (
            NewStore {
                region: None,
                ..linked_store("b")
            },
            "store_without_region",
        ),
        (
            NewStore {
                location: XksLocation::Unset,
                ..linked_store("c")
            },
            "location_required",
        ),
        (
            NewStore {
                region: Some("us-west-2".into()),
                ..linked_store("d")
            },
            "region_not_allowed",
        ),
        (linked_store("e"), "account_without_connection"),
    ];
    for (new, expected) in cases {
        let name = new.name.clone();
        let e = f.ops.create_store_with_link(new).unwrap_err();
        assert_eq!(e.code(), expected, "{name}: {e}");
    }
    assert!(f.ops.list_stores().unwrap().is_empty());
    // Unlinked stores still take a region, when it is one of the account's.
    let region_refused = f.ops.create_store(NewStore {
        linked: false,
        region: Some("us-west-2".into()),
        ..linked_store("f")
    });
    assert_eq!(code(region_refused), "region_not_allowed");
    let (rec, _) = f
        .ops
        .create_store(NewStore {
            linked: false,
            ..linked_store("g")
        })
        .unwrap();
    assert_eq!(rec.region.as_deref(), Some("eu-west-1"));
    assert!(rec.aws.is_none());
}

#[test]
fn aws_unreachable_during_a_linked_create_leaves_nothing_here() {
    let f = fixture();
    with_account(&f, Some("aws"));
    // The connection's endpoint is a closed port: the AWS call fails, and the store
    // created for AWS KMS's health call is gone again.
    let e = f
        .ops
        .create_store_with_link(linked_store("acme"))
        .unwrap_err();
    assert!(e.code().starts_with("aws_"), "{e}");
    assert!(f.ops.list_stores().unwrap().is_empty());
    assert!(f.store.scan(keys::CREDENTIALS).unwrap().is_empty());
    assert!(
        f.store
            .get(&keys::store_name_index("acme"))
            .unwrap()
            .is_none()
    );
}

#[test]
fn link_review_shows_what_would_be_sent_and_refuses_linked_and_remote_stores() {
    let f = fixture();
    with_account(&f, None);
    let (rec, file) = f
        .ops
        .create_store(NewStore {
            linked: false,
            ..linked_store("acme")
        })
        .unwrap();
    let edits = crate::api::stores::LinkRequest {
        name: Some("acme-aws".into()),
        ..Default::default()
    };
    let plan = f.ops.link_preview(&rec.id, &edits).unwrap();
    assert_eq!(plan.name, "acme-aws");
    assert_eq!(plan.uri_path, rec.xks_base_path());
    assert_eq!(
        plan.uri_endpoint.as_deref(),
        Some("https://xks.example.com")
    );
    assert_eq!(plan.access_key_id, file.credential.access_key_id);
    assert_eq!(plan.account.as_deref(), Some(ACCOUNT));
    // Nothing changed.
    assert_eq!(f.ops.get_store(&rec.id).unwrap().value.name, "acme");

    f.ops
        .set_store_link(
            &rec.id,
            Some(AwsLink::new("cks-1", ConnectionState::Disconnected)),
        )
        .unwrap();
    assert_eq!(
        code(f.ops.link_preview(&rec.id, &Default::default())),
        "store_already_linked"
    );
    f.ops
        .change_store(&rec.id, |s| {
            s.kind = StoreKind::Remote;
            Ok(())
        })
        .unwrap();
    assert_eq!(
        code(f.ops.link_preview(&rec.id, &Default::default())),
        "remote_store"
    );
}

#[test]
fn linked_keys_need_a_linked_connected_store_and_nothing_is_left_when_refused() {
    let f = fixture();
    let (rec, _) = f.ops.create_store(new_store("acme")).unwrap();
    let refused = f
        .ops
        .create_hyok_key_with_link(&rec.id, "k1", "data", Some(true), false);
    assert_eq!(code(refused), "store_not_linked");
    assert_eq!(
        code(f.ops.set_store_connected(&rec.id, true)),
        "store_not_linked"
    );
    for state in [
        ConnectionState::Disconnected,
        ConnectionState::Connecting,
        ConnectionState::Failed,
    ] {
        f.ops
            .set_store_link(&rec.id, Some(AwsLink::new("cks-1", state)))
            .unwrap();
        let refused = f
            .ops
            .create_hyok_key_with_link(&rec.id, "k1", "data", None, false);
        assert_eq!(code(refused), "store_not_connected", "{state:?}");
        assert_eq!(
            code(f.ops.link_hyok_key(&rec.id, "k1")),
            "store_not_connected"
        );
    }
    assert!(f.ops.list_hyok_keys(&rec.id).unwrap().is_empty());
    // An unlinked key may still be made in a linked store, on request.
    let key = f
        .ops
        .create_hyok_key_with_link(&rec.id, "k1", "data", Some(false), false)
        .unwrap();
    assert!(key.aws.is_none());
    // AWS KMS's waiting period is 7 to 30 days.
    for days in [0, 6, 31] {
        let refused = f.ops.delete_hyok_key_with_link(&rec.id, "k1", Some(days));
        assert_eq!(code(refused), "invalid_input", "{days}");
    }
    f.ops
        .delete_hyok_key_with_link(&rec.id, "k1", Some(7))
        .unwrap();
}

#[test]
fn a_linked_store_keeps_its_region() {
    let f = fixture();
    with_account(&f, None);
    let (rec, _) = f
        .ops
        .create_store(NewStore {
            linked: false,
            ..linked_store("acme")
        })
        .unwrap();
    f.ops
        .set_store_link(
            &rec.id,
            Some(AwsLink::new("cks-1", ConnectionState::Disconnected)),
        )
        .unwrap();
    let patch = StoreUpdate {
        region: Some("eu-west-2".into()),
        ..Default::default()
    };
    assert_eq!(
        code(f.ops.update_store(&rec.id, patch, None)),
        "region_immutable"
    );
}

#[test]
fn aws_connection_ca_file_and_sts_endpoint_are_checked_and_reach_the_settings() {
    let f = fixture();
    let dir = tempfile::tempdir().unwrap();
    let not_pem = dir.path().join("not.pem");
    std::fs::write(&not_pem, "hello").unwrap();
    let ca = {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params.self_signed(&key).unwrap().pem()
    };
    let good = dir.path().join("ca.pem");
    std::fs::write(&good, &ca).unwrap();
    let bad_files = [
        ("ca.pem".to_string(), "absolute path"),
        (
            dir.path().join("missing.pem").display().to_string(),
            "cannot be read",
        ),
        (not_pem.display().to_string(), "no PEM certificate"),
    ];
    for (path, why) in bad_files {
        let mut c = aws("c1");
        c.ca_file = Some(path.clone());
        let e = f.ops.create_aws_connection(c).unwrap_err();
        assert_eq!(e.code(), "invalid_input", "{path}");
        assert!(e.to_string().contains(why), "{path}: {e}");
    }
    let mut c = aws("c1");
    c.sts_endpoint_url = Some("sts.example.test".into());
    let e = f.ops.create_aws_connection(c).unwrap_err();
    assert!(e.to_string().contains("sts_endpoint_url"), "{e}");

    let mut c = aws("c1");
    c.ca_file = Some(good.display().to_string());
    c.sts_endpoint_url = Some("https://sts.example.test".into());
    c.role_arn = Some("arn:aws:iam::111122223333:role/keyhold".into());
    let rec = f.ops.create_aws_connection(c).unwrap();
    let shown = crate::api::connections::AwsConnection::from(&rec);
    assert_eq!(shown.ca_file.as_deref(), Some(good.to_str().unwrap()));
    assert_eq!(
        shown.sts_endpoint_url.as_deref(),
        Some("https://sts.example.test")
    );
    let s = f.ops.aws_settings("c1", "eu-west-1").unwrap();
    assert_eq!(s.connection, "c1");
    assert_eq!(s.region, "eu-west-1");
    assert_eq!(
        s.secret_access_key.as_str(),
        "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
    );
    assert_eq!(s.ca_pem.as_deref(), Some(ca.as_bytes()));
    assert_eq!(
        s.sts_endpoint_url.as_deref(),
        Some("https://sts.example.test")
    );
    assert!(!format!("{s:?}").contains("wJalrXUtnFEMI"), "{s:?}");
    assert_eq!(code(f.ops.aws_settings("c1", "Mars")), "invalid_input");
    assert_eq!(code(f.ops.aws_settings("nope", "eu-west-1")), "not_found");
    // A CA file gone since: the settings say so.
    std::fs::remove_file(&good).unwrap();
    let e = f.ops.aws_settings("c1", "eu-west-1").unwrap_err();
    assert!(e.to_string().contains("cannot be read"), "{e}");
}

mod key_rules;

//! The HYOK key rules, source deletion and patches that change nothing, on the
//! attribute-only test source.

use super::*;

fn leaky(name: &str) -> NewKey {
    NewKey {
        exportable: true,
        ..NewKey::new(name, KeyUsage::ENCRYPT.union(KeyUsage::DECRYPT))
    }
}

#[test]
fn weak_source_keys_back_hyok_keys_only_when_allowed_and_linking_checks_again() {
    let f = fixture();
    let (rec, _) = f.ops.create_store(new_store("acme")).unwrap();
    f.ops.create_source_key("ctm", leaky("leaky")).unwrap();
    f.ops
        .create_source_key("ctm", NewKey::new("enc-only", KeyUsage::ENCRYPT))
        .unwrap();
    for (key, problem) in [
        ("leaky", "the key must not be exportable"),
        ("enc-only", "the key must allow decrypt"),
    ] {
        let e = f.ops.create_hyok_key(&rec.id, "k", key).unwrap_err();
        assert_eq!((e.code(), e.http_status()), ("invalid_key", 422), "{key}");
        assert!(e.to_string().contains(problem), "{key}: {e}");
    }
    let weak = f
        .ops
        .create_hyok_key_allowing(&rec.id, "k-weak", "leaky", true)
        .unwrap();
    assert!(weak.allow_weak_key);
    // Allowing changes nothing (and is not recorded) for a key that meets the rules.
    let strong = f
        .ops
        .create_hyok_key_allowing(&rec.id, "k-strong", "data", true)
        .unwrap();
    assert!(!strong.allow_weak_key);

    // A source key that became weak after the binding is refused at link time.
    f.ops
        .create_source_key("ctm", NewKey::new("later", KeyUsage::ALL))
        .unwrap();
    f.ops.create_hyok_key(&rec.id, "k-later", "later").unwrap();
    let handle = f.ops.sources.get("ctm").unwrap();
    handle
        .source()
        .delete_key("later".into())
        .into_result()
        .unwrap();
    f.ops.create_source_key("ctm", leaky("later")).unwrap();
    f.ops
        .set_store_link(
            &rec.id,
            Some(AwsLink::new("cks-1", ConnectionState::Connected)),
        )
        .unwrap();
    assert_eq!(code(f.ops.link_hyok_key(&rec.id, "k-later")), "invalid_key");
}

#[test]
fn patches_that_change_nothing_keep_the_version() {
    let f = fixture();
    let (rec, _) = f.ops.create_store(new_store("acme")).unwrap();
    let before = f.ops.get_store(&rec.id).unwrap();
    let same = StoreUpdate {
        name: Some("acme".into()),
        health_check_key: Some("hc".into()),
        ..Default::default()
    };
    let after = f
        .ops
        .update_store(&rec.id, same, Some(before.version))
        .unwrap();
    assert_eq!(after, before);
    let renamed = StoreUpdate {
        name: Some("acme-2".into()),
        ..Default::default()
    };
    let after = f
        .ops
        .update_store(&rec.id, renamed, Some(before.version))
        .unwrap();
    assert!(after.version > before.version);

    f.ops
        .create_account("111122223333", "prod", vec!["eu-west-1".into()], vec![])
        .unwrap();
    let same = AccountUpdate {
        name: Some("prod".into()),
        ..Default::default()
    };
    let (_, changed) = f
        .ops
        .update_account_if_changed("111122223333", same)
        .unwrap();
    assert!(!changed);
    let other = AccountUpdate {
        name: Some("production".into()),
        ..Default::default()
    };
    let (a, changed) = f
        .ops
        .update_account_if_changed("111122223333", other)
        .unwrap();
    assert!(changed);
    assert_eq!(a.name, "production");
}

#[test]
fn a_source_is_deleted_only_when_created_through_the_api_and_unused() {
    let f = fixture();
    // `ctm` is declared in the configuration file (its record carries no config).
    let e = f.ops.delete_source("ctm").unwrap_err();
    assert_eq!(
        (e.code(), e.http_status()),
        ("source_declared_in_config", 422)
    );
    assert_eq!(code(f.ops.delete_source("nope")), "not_found");
    assert_eq!(code(f.ops.get_source("nope")), "not_found");
    assert_eq!(f.ops.get_source("ctm").unwrap().name, "ctm");
}

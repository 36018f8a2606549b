use std::collections::BTreeMap;

use super::*;

fn conn() -> HsmConnectionRecord {
    HsmConnectionRecord {
        name: "hsm1".into(),
        module: "/usr/lib/softhsm/libsofthsm2.so".into(),
        token_label: "tok".into(),
        pin_env: Some("PIN".into()),
        pin_file: None,
        module_env: BTreeMap::from([("SOFTHSM2_CONF".into(), "/a".into())]),
        pool_size: None,
        op_timeout_ms: None,
        created_at: 1,
    }
}

fn code(e: OpError) -> &'static str {
    e.code()
}

#[test]
fn setting_one_pin_reference_clears_the_other() {
    let next = patched(
        &conn(),
        HsmConnectionPatch {
            pin_file: Some("/run/pin".into()),
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(next.pin_file.as_deref(), Some("/run/pin"));
    assert_eq!(next.pin_env, None);
    let back = patched(
        &next,
        HsmConnectionPatch {
            pin_env: Some("PIN2".into()),
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(
        (back.pin_env.as_deref(), back.pin_file),
        (Some("PIN2"), None)
    );
    let both = HsmConnectionPatch {
        pin_env: Some("A".into()),
        pin_file: Some("/b".into()),
        ..Default::default()
    };
    assert_eq!(code(patched(&conn(), both).unwrap_err()), "invalid_input");
}

#[test]
fn module_env_is_replaced_and_other_fields_kept() {
    let next = patched(
        &conn(),
        HsmConnectionPatch {
            module_env: Some(BTreeMap::from([("X".into(), "1".into())])),
            pool_size: Some(3),
            op_timeout_ms: Some(250),
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(next.module_env, BTreeMap::from([("X".into(), "1".into())]));
    assert_eq!((next.pool_size, next.op_timeout_ms), (Some(3), Some(250)));
    assert_eq!(next.module, conn().module);
    assert_eq!(
        patched(&conn(), HsmConnectionPatch::default()).unwrap(),
        conn()
    );
}

#[test]
fn token_label_and_bad_values_are_refused() {
    let e = patched(
        &conn(),
        HsmConnectionPatch {
            token_label: Some("other".into()),
            ..Default::default()
        },
    )
    .unwrap_err();
    assert_eq!(code(e), "token_label_immutable");
    // The same label is no change.
    let same = HsmConnectionPatch {
        token_label: Some("tok".into()),
        ..Default::default()
    };
    assert_eq!(patched(&conn(), same).unwrap(), conn());
    for bad in [
        HsmConnectionPatch {
            module: Some("relative.so".into()),
            ..Default::default()
        },
        HsmConnectionPatch {
            pin_file: Some("relative".into()),
            ..Default::default()
        },
        HsmConnectionPatch {
            pool_size: Some(0),
            ..Default::default()
        },
        HsmConnectionPatch {
            op_timeout_ms: Some(0),
            ..Default::default()
        },
    ] {
        assert_eq!(code(patched(&conn(), bad).unwrap_err()), "invalid_input");
    }
}

//! Unit tests of admin identities: passwords, tokens, ACL authorization.
use super::*;

fn who(user: &str, groups: &[&str]) -> Principal {
    Principal {
        user: user.into(),
        groups: groups.iter().map(|g| g.to_string()).collect(),
    }
}

fn grant(principal: &str, perms: &[Permission]) -> AclEntry {
    AclEntry {
        principal: principal.into(),
        permissions: perms.iter().copied().collect(),
    }
}

#[test]
fn admins_may_do_everything() {
    for p in Permission::ALL {
        assert!(authorize(&who("root", &[ADMINS]), "111122223333", &[], p).is_ok());
    }
    assert!(require_admin(&who("root", &[ADMINS]), "manage users").is_ok());
    let e = require_admin(&who("bob", &[USERS]), "manage users").unwrap_err();
    assert_eq!((e.code(), e.http_status()), ("admin_only", 403));
}

#[test]
fn users_need_a_grant_naming_the_permission() {
    let bob = who("bob", &[USERS]);
    let e = authorize(&bob, "111122223333", &[], Permission::View).unwrap_err();
    assert_eq!(e.http_status(), 403);
    assert!(e.to_string().contains("'view'"), "{e}");
    let acl = [grant(
        "user:bob",
        &[Permission::View, Permission::ManageCredentials],
    )];
    assert!(authorize(&bob, "a", &acl, Permission::View).is_ok());
    assert!(authorize(&bob, "a", &acl, Permission::ManageCredentials).is_ok());
    let e = authorize(&bob, "a", &acl, Permission::DeleteStore).unwrap_err();
    assert!(e.to_string().contains("delete_store"));
    // Someone else's grant does not apply; a group grant does.
    let acl = [grant("user:alice", &[Permission::View])];
    assert!(authorize(&bob, "a", &acl, Permission::View).is_err());
    let acl = [grant("group:users", &[Permission::Block])];
    assert!(authorize(&bob, "a", &acl, Permission::Block).is_ok());
    assert!(
        authorize(
            &bob,
            "a",
            &[grant("bogus", &[Permission::View])],
            Permission::View
        )
        .is_err()
    );
}

#[test]
fn passwords_hash_and_verify() {
    let h = hash_password("correct horse").unwrap();
    assert!(h.starts_with("$argon2id$"));
    assert!(!h.contains("correct horse"));
    assert!(verify_password("correct horse", &h));
    assert!(!verify_password("wrong", &h));
    assert!(!verify_password("correct horse", "not a hash"));
    assert_ne!(
        hash_password("same").unwrap(),
        hash_password("same").unwrap()
    );
}

#[test]
fn tokens_verify_expire_and_never_store_the_secret() {
    let t = issue_token("bob", 0, TokenKind::Session, Some(1_000), "");
    let (id, secret) = parse_bearer(&t.bearer).unwrap();
    assert_eq!(id, t.record.id);
    assert!(!serde_json::to_string(&t.record).unwrap().contains(secret));
    assert!(check_token(&t.record, secret, 999).is_ok());
    assert_eq!(
        check_token(&t.record, secret, 1_000).unwrap_err(),
        AccessError::Unauthenticated("token expired: log in again")
    );
    assert!(check_token(&t.record, "guess", 0).is_err());
    for bad in ["", "kh_", "kh_abc", "kh_.x", "kh_x.", "Bearer x"] {
        assert!(parse_bearer(bad).is_err(), "{bad}");
    }
    let api = issue_token("ci", 0, TokenKind::Api, None, "pipeline");
    let (_, s) = parse_bearer(&api.bearer).unwrap();
    assert!(check_token(&api.record, s, i64::MAX - 1).is_ok());
}

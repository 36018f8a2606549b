//! Unit tests of the account forms: the ACL written as text and read back.

use super::*;

#[test]
fn an_acl_round_trips_through_its_text() {
    let acl = parse_acl("user:alice = view, create_store\n\n group:ops=view,block \n").unwrap();
    assert_eq!(acl.len(), 2);
    assert_eq!(acl[0].principal, "user:alice");
    assert_eq!(
        acl[0].permissions,
        [Permission::View, Permission::CreateStore]
            .into_iter()
            .collect()
    );
    assert_eq!(
        acl_text(&acl),
        "user:alice = view, create_store\ngroup:ops = view, block"
    );
    assert_eq!(parse_acl(&acl_text(&acl)).unwrap(), acl);
    assert!(parse_acl("").unwrap().is_empty());
}

#[test]
fn a_bad_acl_line_is_named() {
    let e = parse_acl("user:a = view\nuser:b view").unwrap_err();
    assert!(e.starts_with("ACL line 2:"), "{e}");
    let e = parse_acl("user:a = view, fly").unwrap_err();
    assert!(e.contains("unknown permission 'fly'"), "{e}");
    assert!(e.contains("manage_keys"), "{e}");
}

#[test]
fn lists_split_on_commas_and_lines() {
    assert_eq!(
        parse_list(" eu-west-1, us-east-1\nap-south-1,,"),
        ["eu-west-1", "us-east-1", "ap-south-1"]
    );
    assert!(parse_list("").is_empty());
}

use super::auth::{csrf_ok, csrf_token, sanitize_next};

#[test]
fn csrf_token_is_bound_to_the_session() {
    let t = csrf_token("kh_a.b");
    assert!(csrf_ok("kh_a.b", Some(&t)));
    assert!(!csrf_ok("kh_a.c", Some(&t)));
    assert!(!csrf_ok("kh_a.b", None));
    assert_eq!(sanitize_next(Some("//evil")), "/console/");
}

//! Unit tests of the account flags.

use serde_json::json;

use super::*;

#[test]
fn grants_parse() {
    assert_eq!(
        serde_json::to_value(parse_grant("user:bob=view,create_store").unwrap()).unwrap(),
        json!({"principal": "user:bob", "permissions": ["view", "create_store"]})
    );
    assert!(parse_grant("bob=view").is_err());
    assert!(parse_grant("user:bob=").is_err());
}

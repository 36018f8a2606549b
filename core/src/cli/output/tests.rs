//! Unit tests of the output formatting.

use super::*;
use serde_json::json;

#[test]
fn tables_align_columns() {
    let t = list(
        &json!([{"name": "a", "n": 1}, {"name": "long-name", "n": null}]),
        &["name", "n"],
    );
    assert_eq!(t, "NAME       N\na          1\nlong-name  -\n");
    assert_eq!(list(&json!([]), &["x"]), "(none)\n");
    assert_eq!(cell("created_at", &json!(0)), "1970-01-01T00:00:00Z");
    assert_eq!(
        cell("usage", &json!(["encrypt", "decrypt"])),
        "encrypt,decrypt"
    );
}

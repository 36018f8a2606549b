//! Unit tests of [`super::parse_json`]: refusals name the field and the problem, never
//! a value of the body.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::*;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct Login {
    user: String,
    password: String,
    #[serde(default)]
    mode: Option<Mode>,
    #[serde(default)]
    tags: BTreeMap<String, u32>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Mode {
    Fast,
    Slow,
}

fn refusal(body: &str) -> String {
    let e = parse_json::<Login>(body.as_bytes()).expect_err("refused");
    assert_eq!(e.code(), "invalid_json");
    e.message().to_string()
}

const SECRET: &str = "SECRET-VALUE-42";

#[test]
fn values_are_never_quoted() {
    for (body, expected) in [
        (
            format!("\"{SECRET}\""),
            "the body has the wrong type, expected struct Login",
        ),
        (
            format!("{{\"user\": \"u\", \"password\": [\"{SECRET}\"]}}"),
            "field 'password' has the wrong type or value, expected a string",
        ),
        (
            format!("{{\"user\": \"u\", \"password\": \"p\", \"mode\": \"{SECRET}\"}}"),
            "field 'mode' has the wrong type or value, expected `fast` or `slow`",
        ),
        (
            format!("{{\"user\": \"u\", \"password\": \"{SECRET}"),
            "not valid JSON (line 1, column 42)",
        ),
        (
            format!("{{\"user\": \"u\", \"password\": \"p\"}} {SECRET}"),
            "not valid JSON (line 1, column 32)",
        ),
        (
            format!("{{\"user\": \"u\", \"password\": \"p\", \"tags\": {{\"a\": \"{SECRET}\"}}}}"),
            "field 'tags.a' has the wrong type or value, expected u32",
        ),
    ] {
        let msg = refusal(&body);
        assert!(!msg.contains(SECRET), "{msg}");
        assert_eq!(msg, format!("invalid JSON body: {expected}"), "{body}");
    }
}

#[test]
fn missing_and_unknown_fields_are_named() {
    let msg = refusal("{\"user\": \"u\"}");
    assert!(msg.contains("missing field `password`"), "{msg}");
    let msg = refusal("{\"user\": \"u\", \"password\": \"p\", \"colour\": \"blue\"}");
    assert!(msg.contains("unknown field `colour`"), "{msg}");
    assert!(!msg.contains("blue"), "{msg}");
    // An unknown name is the client's own: escaped and capped.
    let long = format!("x\\n{}", "y".repeat(500));
    let msg = refusal(&format!(
        "{{\"user\": \"u\", \"password\": \"p\", \"{long}\": 1}}"
    ));
    assert!(msg.len() < 400 && !msg.contains('\n'), "{msg}");
}

//! Unit tests of `keyhold audit`: the query and the status lines.

use serde_json::json;

use super::*;

#[test]
fn the_query_holds_the_given_parameters_encoded() {
    assert_eq!(query(&[("store", None)]), "");
    assert_eq!(
        query(&[
            ("store", Some("pay roll".into())),
            ("user", None),
            ("outcome", Some("refused: forbidden".into())),
            ("limit", Some("5".into())),
        ]),
        "?store=pay%20roll&outcome=refused%3A%20forbidden&limit=5"
    );
}

#[test]
fn a_broken_status_names_each_problem() {
    let status = json!({"state": "broken", "records": 3,
        "anchor": {"seq": 9, "hash": "h", "matched": false},
        "problems": [{"kind": "damaged_segment", "message": "audit.jsonl: record 2 does not verify: x"}]});
    let text = status_text(&status);
    assert!(text.contains("state"), "{text}");
    assert!(text.contains("record 9, does NOT match"), "{text}");
    assert!(
        text.contains("problem     audit.jsonl: record 2 does not verify: x"),
        "{text}"
    );
}

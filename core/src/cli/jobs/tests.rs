//! Unit tests of how a job is printed.

use serde_json::json;

use super::*;

#[test]
fn a_job_prints_its_progress_summary_changes_and_findings() {
    let job = json!({
        "id": "j1", "kind": "refresh", "account": "111122223333", "state": "failed",
        "done": 5, "total": 7, "cancel_requested": false, "started_by": "root",
        "started_at": 0, "finished_at": 0,
        "summary": {
            "regions": [], "changed": 3, "unchanged": 1, "reported": 1,
            "changes": [
                {"kind": "store_linked", "store": "s", "aws_id": "cks-1"},
                {"kind": "key_linked", "store": "s", "aws_id": "k1", "external_id": "ext1"},
            ],
            "findings": [{"kind": "key_unknown", "aws_id": "k2", "message": "unknown 'x'"}],
        },
        "error": {"code": "aws_error", "message": "AWS KMS answered KMSInternalException"},
    });
    let text = job_text(&job);
    for line in [
        "state ",
        "progress          5/7",
        "error             AWS KMS answered KMSInternalException (aws_error)",
        "summary           3 changed, 1 up to date, 1 reported",
        "  changed  store_linked store s (cks-1)",
        "  changed  key_linked store s key ext1 (k1)",
        "  report   key_unknown: unknown 'x'",
        "  ... and 1 more (see --output json)",
    ] {
        assert!(text.contains(line), "{line:?} in\n{text}");
    }
    assert!(!text.contains("\ndone "), "{text}");
}

#[test]
fn nothing_changed_says_so() {
    let summary = json!({"changed": 0, "unchanged": 4, "reported": 0});
    assert_eq!(
        summary_text(&summary),
        "nothing changed, 4 up to date, 0 reported"
    );
}

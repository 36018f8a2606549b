//! The `keystore metrics` table.

use serde_json::json;

use super::*;

#[test]
fn renders_a_line_per_interval_and_says_when_there_is_none() {
    let v = json!({
        "store": "0123456789abcdef", "name": "acme", "node": "node-1",
        "interval_seconds": 10, "window_seconds": 3600, "sampled_at": 20,
        "points": [
            {"at": 10, "requests": 31, "requests_per_second": 3.1, "p50_us": 780,
             "p99_us": 4750, "errors": {"KeyNotFoundException": 1}},
            {"at": 20, "requests": 1, "requests_per_second": 0.1, "p50_us": null,
             "p99_us": 5000000, "errors": {}},
        ],
    });
    let text = render(&v);
    assert!(
        text.starts_with(
            "Key store acme (0123456789abcdef) on node node-1: one line per 10 s with requests, \
             the last 3600 s (sampled 1970-01-01T00:00:20Z)\n"
        ),
        "{text}"
    );
    assert!(
        text.contains("AT                    REQUESTS  REQ/S  P50    P99     ERRORS\n"),
        "{text}"
    );
    assert!(
        text.contains(
            "1970-01-01T00:00:10Z  31        3.1    780µs  4.75ms  KeyNotFoundException=1\n"
        ),
        "{text}"
    );
    assert!(
        text.contains("1970-01-01T00:00:20Z  1         0.1    -      5.00s   -\n"),
        "{text}"
    );

    let empty = json!({"store": "s", "name": "n", "node": "x", "interval_seconds": 10,
                       "window_seconds": 3600, "sampled_at": null, "points": []});
    let text = render(&empty);
    assert!(text.contains("(sampled not yet)"), "{text}");
    assert!(
        text.ends_with("No XKS requests on this node in that time.\n"),
        "{text}"
    );
}

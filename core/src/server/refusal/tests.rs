//! The rewrite of hyper's automatic refusals.

use super::*;

const DATE: &str = "Wed, 02 Dec 2026 16:28:46 GMT";

fn hyper_answer(line: &str) -> Vec<u8> {
    format!("{line}\r\ncontent-length: 0\r\ndate: {DATE}\r\n\r\n").into_bytes()
}

fn hyper_closing_answer(line: &str) -> Vec<u8> {
    format!("{line}\r\nconnection: close\r\ncontent-length: 0\r\ndate: {DATE}\r\n\r\n").into_bytes()
}

#[test]
fn each_automatic_refusal_becomes_the_listeners_json() {
    for (line, status, xks, admin) in [
        (
            "HTTP/1.1 400 Bad Request",
            400,
            "malformed HTTP request",
            "bad_request",
        ),
        (
            "HTTP/1.1 414 URI Too Long",
            414,
            "request URI too long",
            "uri_too_long",
        ),
        (
            "HTTP/1.1 431 Request Header Fields Too Large",
            431,
            "request headers too large",
            "headers_too_large",
        ),
    ] {
        let (start, _) = Refusals::Xks
            .rewrite_tail(&hyper_closing_answer(line))
            .expect("rewritten");
        assert_eq!(start, 0);
        let (start, answer) = Refusals::Xks
            .rewrite_tail(&hyper_answer(line))
            .expect("rewritten");
        assert_eq!(start, 0);
        let text = String::from_utf8(answer).expect("utf-8");
        let (head, body) = text.split_once("\r\n\r\n").expect("head");
        assert!(head.starts_with(&format!("HTTP/1.1 {status} ")), "{head}");
        assert!(head.contains("content-type: application/json"), "{head}");
        assert!(
            head.contains(&format!("content-length: {}", body.len())),
            "{head}"
        );
        assert!(head.contains(&format!("date: {DATE}")), "{head}");
        let json: serde_json::Value = serde_json::from_str(body).expect("JSON");
        assert_eq!(json["errorName"], "ValidationException");
        assert_eq!(json["errorMessage"], xks);

        let (_, answer) = Refusals::Admin
            .rewrite_tail(&hyper_answer(line))
            .expect("rewritten");
        let text = String::from_utf8(answer).expect("utf-8");
        let json: serde_json::Value =
            serde_json::from_str(text.split_once("\r\n\r\n").expect("head").1).expect("JSON");
        assert_eq!(json["error"]["code"], admin);
    }
}

#[test]
fn answers_written_before_it_stay_and_others_are_left_alone() {
    let earlier = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}".to_vec();
    let mut written = earlier.clone();
    written.extend(hyper_answer("HTTP/1.1 400 Bad Request"));
    let (start, _) = Refusals::Xks.rewrite_tail(&written).expect("rewritten");
    assert_eq!(start, earlier.len());

    // A service's own answers, other statuses, the metrics listener: untouched.
    let own = b"HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\ncontent-length: 0\r\ndate: Wed, 02 Dec 2026 16:28:46 GMT\r\n\r\n";
    assert!(Refusals::Xks.rewrite_tail(own).is_none());
    assert!(
        Refusals::Xks
            .rewrite_tail(&hyper_answer("HTTP/1.1 404 Not Found"))
            .is_none()
    );
    assert!(
        Refusals::Bare
            .rewrite_tail(&hyper_answer("HTTP/1.1 400 Bad Request"))
            .is_none()
    );
    assert!(Refusals::Xks.rewrite_tail(&earlier).is_none());
}

//! [`Refusals`]: how a listener answers requests refused at the HTTP layer (malformed,
//! URI too long, headers too large): an XKS JSON error on the XKS listener, the admin
//! API's JSON error on the admin listener.
//!
//! Two paths lead here. Requests within hyper's own limits but beyond the listener's
//! ([`super::ListenerLimits`]: `max_uri_bytes`, `max_header_bytes`, `max_headers`;
//! hyper's are set higher) are refused before the service sees them, over HTTP/1.1
//! and HTTP/2 alike ([`Refusals::response`]). What hyper refuses itself on HTTP/1.1 (a
//! request it cannot parse: 400; a head past its buffer or header count: 431; a URI
//! past 64 KiB: 414) it answers with an empty body and closes; that answer is the last
//! thing written on the connection and has a fixed shape, so the connection's I/O
//! replaces it with the listener's JSON answer as it is written
//! ([`Refusals::rewrite_tail`]). HTTP/2 framing errors have no HTTP answer.

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};
use http_body_util::Full;

/// The JSON error shape of a listener's HTTP-layer refusals.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusals {
    /// XKS: `{"errorName": "ValidationException", "errorMessage": ...}`.
    Xks,
    /// Admin API: `{"error": {"code": ..., "message": ...}}`.
    Admin,
    /// As HTTP produces them (the metrics endpoint).
    Bare,
}

/// The HTTP-layer refusals: status, reason phrase, admin error code, message.
const KINDS: [(StatusCode, &str, &str, &str); 3] = [
    (
        StatusCode::BAD_REQUEST,
        "Bad Request",
        "bad_request",
        "malformed HTTP request",
    ),
    (
        StatusCode::URI_TOO_LONG,
        "URI Too Long",
        "uri_too_long",
        "request URI too long",
    ),
    (
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
        "Request Header Fields Too Large",
        "headers_too_large",
        "request headers too large",
    ),
];

/// hyper's automatic answer after the status line (with or without `connection:
/// close`): no body, then its date header (`date: ` and 29 bytes of IMF-fixdate) and
/// the end of the head.
const HYPER_TAILS: [&[u8]; 2] = [
    b"\r\nconnection: close\r\ncontent-length: 0\r\ndate: ",
    b"\r\ncontent-length: 0\r\ndate: ",
];
const DATE_LEN: usize = 29;

impl Refusals {
    /// The JSON body refusing with `status`; `None` for [`Refusals::Bare`] or a status
    /// that is not an HTTP-layer refusal (400, 414, 431).
    pub fn body(self, status: StatusCode) -> Option<Bytes> {
        let (_, _, code, message) = KINDS.iter().find(|k| k.0 == status)?;
        let json = match self {
            // The specification's error for a malformed request: the request is
            // refused for what it is, whatever the HTTP status says.
            Refusals::Xks => serde_json::json!({
                "errorName": "ValidationException",
                "errorMessage": message,
            }),
            Refusals::Admin => serde_json::json!({
                "error": { "code": code, "message": message },
            }),
            Refusals::Bare => return None,
        };
        Some(Bytes::from(json.to_string()))
    }

    /// The answer refusing with `status`, before the service sees the request.
    pub fn response(self, status: StatusCode) -> Response<Full<Bytes>> {
        let mut resp = Response::new(Full::new(self.body(status).unwrap_or_default()));
        *resp.status_mut() = status;
        if self != Refusals::Bare {
            resp.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
        }
        resp
    }

    /// When `written` (the rest of what hyper writes on an HTTP/1.1 connection) ends
    /// with one of hyper's automatic refusals: where it starts, and the answer to
    /// write instead of it.
    pub fn rewrite_tail(self, written: &[u8]) -> Option<(usize, Vec<u8>)> {
        if self == Refusals::Bare || !written.ends_with(b"\r\n\r\n") {
            return None;
        }
        let shapes = KINDS
            .iter()
            .flat_map(|kind| HYPER_TAILS.iter().map(move |tail| (kind, *tail)));
        shapes.into_iter().find_map(|((status, reason, _, _), hyper_tail)| {
            let line = format!("HTTP/1.1 {} {reason}", status.as_u16());
            let len = line.len() + hyper_tail.len() + DATE_LEN + 4;
            let start = written.len().checked_sub(len)?;
            let tail = &written[start..];
            let (head, rest) = tail.split_at(line.len());
            let (fixed, date) = rest.split_at(hyper_tail.len());
            if head != line.as_bytes() || fixed != hyper_tail {
                return None;
            }
            let date = &date[..DATE_LEN];
            let body = self.body(*status)?;
            let mut answer = format!(
                "{line}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\ndate: ",
                body.len()
            )
            .into_bytes();
            answer.extend_from_slice(date);
            answer.extend_from_slice(b"\r\n\r\n");
            answer.extend_from_slice(&body);
            Some((start, answer))
        })
    }
}

#[cfg(test)]
mod tests;

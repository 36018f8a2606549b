//! Optimistic concurrency over HTTP: a store's version is its `ETag`, and a change
//! must send it back in `If-Match`.

use axum::{
    Json,
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde::Serialize;

use super::ApiError;

fn etag(version: u64) -> HeaderValue {
    HeaderValue::from_str(&format!("\"{version}\"")).unwrap_or(HeaderValue::from_static("\"0\""))
}

/// `body` as JSON with `status` and `ETag: "<version>"`.
pub(super) fn with_etag(status: StatusCode, version: u64, body: impl Serialize) -> Response {
    let mut resp = (status, Json(body)).into_response();
    resp.headers_mut().insert(header::ETAG, etag(version));
    resp
}

/// The version in `If-Match` (`"42"`, also weak `W/"42"`): 428 when missing, 400 when
/// not a version.
pub(super) fn if_match(headers: &HeaderMap) -> Result<u64, ApiError> {
    let value = headers.get(header::IF_MATCH).ok_or_else(|| {
        ApiError::new(
            428,
            "precondition_required",
            "send If-Match: \"<version>\" with the ETag of the store you read",
        )
    })?;
    value
        .to_str()
        .ok()
        .map(|v| v.trim().trim_start_matches("W/").trim_matches('"'))
        .and_then(|v| v.parse::<u64>().ok())
        .ok_or_else(|| {
            ApiError::new(
                400,
                "invalid_if_match",
                "If-Match must be a store version in quotes, e.g. \"42\"",
            )
        })
}

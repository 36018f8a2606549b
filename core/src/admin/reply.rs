//! What handlers answer: their result type and the `201 Created` reply.

use axum::{Json, http::StatusCode};

use super::ApiError;

/// A handler's result.
pub(super) type Result<T> = std::result::Result<T, ApiError>;

/// `body` as JSON with `201 Created`.
pub(super) fn created<T>(body: T) -> (StatusCode, Json<T>) {
    (StatusCode::CREATED, Json(body))
}

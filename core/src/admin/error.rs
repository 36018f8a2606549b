//! [`ApiError`]: a refusal answered as `{"error": {"code", "message"}}` (and
//! `aws_error_code` for AWS's refusals) with a fitting status (and `WWW-Authenticate`
//! on 401).

use axum::{
    Json,
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};

use crate::{
    api::error::{ErrorBody, ErrorDetail},
    identity::AccessError,
    ops::OpError,
};

/// A refusal: `{"error": {"code": "...", "message": "..."}}` with a fitting status.
#[derive(Debug)]
pub struct ApiError {
    pub(super) status: StatusCode,
    pub(super) code: &'static str,
    pub(super) message: String,
    /// AWS's error code, when AWS refused.
    pub(super) aws_error_code: Option<String>,
}

impl ApiError {
    pub(super) fn new(status: u16, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status: StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            code,
            message: message.into(),
            aws_error_code: None,
        }
    }

    pub(super) fn internal(message: impl Into<String>) -> ApiError {
        ApiError::new(500, "internal", message)
    }

    /// The machine-readable code.
    pub fn code(&self) -> &'static str {
        self.code
    }

    /// The human-readable message.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// AWS's error code, when AWS refused.
    pub fn aws_error_code(&self) -> Option<&str> {
        self.aws_error_code.as_deref()
    }
}

impl From<OpError> for ApiError {
    fn from(e: OpError) -> Self {
        let aws_error_code = match &e {
            OpError::Aws(aws) => aws.code.clone(),
            _ => None,
        };
        ApiError {
            aws_error_code,
            ..ApiError::new(e.http_status(), e.code(), e.to_string())
        }
    }
}

impl From<AccessError> for ApiError {
    fn from(e: AccessError) -> Self {
        ApiError::new(e.http_status(), e.code(), e.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if self.status.is_server_error() {
            tracing::error!(
                code = self.code,
                "admin API error: {}",
                crate::logsafe::clip_to(&self.message, 1024)
            );
        }
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code.to_string(),
                message: self.message,
                aws_error_code: self.aws_error_code,
            },
        };
        let mut resp = (self.status, Json(body)).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            resp.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"keyhold\""),
            );
        }
        resp
    }
}

#[cfg(test)]
mod tests;

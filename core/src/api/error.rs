//! The body of every refusal: `{"error": {"code": "...", "message": "..."}}` (plus
//! `aws_error_code` when AWS refused).

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// A refusal as the API answers it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[schema(as = Error)]
pub struct ErrorBody {
    /// What went wrong.
    pub error: ErrorDetail,
}

/// The code and message of a refusal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable machine-readable code, e.g. `not_found`, `admin_only`, `version_mismatch`.
    pub code: String,
    /// Human-readable explanation (for AWS errors: the operation, AWS's code and
    /// message, and what to do).
    pub message: String,
    /// AWS's error code (e.g. `CustomKeyStoreInvalidStateException`) when the refusal
    /// comes from AWS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aws_error_code: Option<String>,
}

//! Logging in and out: `POST /api/v1/login`, `POST /api/v1/logout`.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// `POST /api/v1/login` body.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Login {
    /// User name.
    pub user: String,
    /// Password.
    pub password: String,
}

/// A session token issued by a login.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Session {
    /// The bearer (`kh_<id>.<secret>`), shown only here.
    pub token: String,
    /// The token's public id.
    pub token_id: String,
    /// Who logged in.
    pub user: String,
    /// Expiry, Unix seconds.
    pub expires_at: Option<i64>,
}

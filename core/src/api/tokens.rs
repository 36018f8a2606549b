//! Bearer tokens: `/api/v1/tokens`.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

pub use crate::identity::TokenKind;
use crate::identity::TokenRecord;

/// `POST /api/v1/tokens` body.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewToken {
    /// Free text.
    #[serde(default)]
    pub description: String,
    /// Expiry, Unix seconds (none: until revoked).
    pub expires_at: Option<i64>,
}

/// A token as listed: never its secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Token {
    /// Public id.
    pub id: String,
    /// Owner.
    pub user: String,
    /// Session or API token.
    pub kind: TokenKind,
    /// Free text.
    pub description: String,
    /// Creation time, Unix seconds.
    pub created_at: i64,
    /// Expiry, Unix seconds.
    pub expires_at: Option<i64>,
}

impl From<&TokenRecord> for Token {
    fn from(t: &TokenRecord) -> Self {
        Token {
            id: t.id.clone(),
            user: t.user.clone(),
            kind: t.kind,
            description: t.description.clone(),
            created_at: t.created_at,
            expires_at: t.expires_at,
        }
    }
}

/// A new API token with its bearer (shown only here).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct IssuedToken {
    /// The token.
    #[serde(flatten)]
    pub info: Token,
    /// The bearer (`kh_<id>.<secret>`).
    pub token: String,
}

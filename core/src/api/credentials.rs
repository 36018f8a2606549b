//! A store's SigV4 credentials: `/api/v1/stores/{id}/credentials`.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

pub use crate::model::{CredentialsFile, CredentialsFileCredential};

/// The response header naming the access key ids a new credential evicted.
pub const EVICTED_HEADER: &str = "x-keyhold-evicted-credentials";

/// A credential as listed: never its secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Credential {
    /// Access key id.
    pub access_key_id: String,
    /// Creation time, Unix seconds.
    pub created_at: i64,
}

impl Credential {
    /// The listing of a credential created at `created_at_ns` (Unix nanoseconds).
    pub fn new(access_key_id: String, created_at_ns: i128) -> Credential {
        Credential {
            access_key_id,
            created_at: i64::try_from(created_at_ns / 1_000_000_000).unwrap_or_default(),
        }
    }
}

//! Admin users: `/api/v1/users`.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::identity::{self, UserRecord};

fn default_groups() -> BTreeSet<String> {
    [identity::USERS.to_string()].into_iter().collect()
}

/// `POST /api/v1/users` body.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewUser {
    /// Unique name.
    pub name: String,
    /// Initial password.
    pub password: String,
    /// Groups (`admins`, `users`); default `["users"]`.
    // An empty set is left out of the body, so that the default applies.
    #[serde(default = "default_groups", skip_serializing_if = "BTreeSet::is_empty")]
    pub groups: BTreeSet<String>,
}

/// A user as the API shows it (never the password hash).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct User {
    /// Name.
    pub name: String,
    /// Groups.
    pub groups: BTreeSet<String>,
    /// Creation time, Unix seconds.
    pub created_at: i64,
}

impl From<&UserRecord> for User {
    fn from(u: &UserRecord) -> Self {
        User {
            name: u.name.clone(),
            groups: u.groups.clone(),
            created_at: u.created_at,
        }
    }
}

/// `PUT /api/v1/users/{name}/password` body.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewPassword {
    /// The new password.
    pub password: String,
    /// The current one (needed by non-admins changing their own).
    pub current_password: Option<String>,
}

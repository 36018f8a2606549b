//! AWS accounts and their ACLs: `/api/v1/accounts`.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

pub use crate::{
    identity::{AclEntry, Permission},
    model::AccountRecord as Account,
};

/// `POST /api/v1/accounts` body.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewAccount {
    /// The 12-digit AWS account id.
    pub id: String,
    /// Display name.
    pub name: String,
    /// Regions whose key stores it may hold.
    #[serde(default)]
    pub regions: Vec<String>,
    /// Who may do what with its key stores.
    #[serde(default)]
    pub acl: Vec<AclEntry>,
    /// The AWS connection (by name) that reaches its AWS KMS.
    #[serde(default)]
    pub aws_connection: Option<String>,
}

/// `PUT /api/v1/accounts/{id}` body: absent fields stay as they are.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AccountPatch {
    /// New display name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// New regions.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub regions: Option<Vec<String>>,
    /// New ACL (replaces the old one).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub acl: Option<Vec<AclEntry>>,
    /// New AWS connection (empty: none).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub aws_connection: Option<String>,
}

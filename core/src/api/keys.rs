//! HYOK keys of a store: `/api/v1/stores/{id}/keys`.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

pub use crate::model::HyokKeyRecord as HyokKey;

/// `POST /api/v1/stores/{id}/keys` body.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewHyokKey {
    /// External key id (the id AWS KMS uses in XKS paths).
    pub external_id: String,
    /// Name of the key in the store's source.
    pub source_key: String,
    /// Also create its AWS KMS key (`CreateKey` with this `XksKeyId`); default: when
    /// the store is linked. Linked keys need a linked, `CONNECTED` store.
    #[serde(default)]
    pub linked: Option<bool>,
}

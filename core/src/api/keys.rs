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
    /// Accept a source key that breaks the HYOK key rules (exportable, not sensitive or
    /// not private, or without encrypt or decrypt): an explicit relaxation, stored on
    /// the key, shown in its GET and named in the audit record. Default false: such a
    /// key is refused with 422 `invalid_key` naming each failing attribute.
    #[serde(default)]
    pub allow_weak_key: bool,
}

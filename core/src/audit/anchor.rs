//! The store anchor of the audit chain: the latest durable record's (sequence, hash),
//! saved in the store after every durable (management) record, so that cutting the
//! log's tail or rewriting it shows against the store (`keyhold audit-verify`).

use std::sync::Arc;

use super::{Anchor, AnchorStore};
use crate::store::Store;

/// The store key of the anchor.
pub const ANCHOR_KEY: &str = "audit/anchor";

/// Saves the anchor in a [`Store`].
pub struct StoreAnchor(pub Arc<dyn Store>);

impl AnchorStore for StoreAnchor {
    fn save(&self, anchor: &Anchor) -> Result<(), String> {
        let value = serde_json::to_vec(anchor).map_err(|e| e.to_string())?;
        self.0
            .put(ANCHOR_KEY, value)
            .map(drop)
            .map_err(|e| e.to_string())
    }

    fn load(&self) -> Result<Option<Anchor>, String> {
        load(self.0.as_ref())
    }
}

/// The anchor saved in `store`, if any.
pub fn load(store: &dyn Store) -> Result<Option<Anchor>, String> {
    match store.get(ANCHOR_KEY).map_err(|e| e.to_string())? {
        None => Ok(None),
        Some(entry) => serde_json::from_slice(&entry.value)
            .map(Some)
            .map_err(|e| format!("the audit anchor in the store is unreadable: {e}")),
    }
}

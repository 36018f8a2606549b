//! The store anchor of the audit chain: the latest durable record's (sequence, hash),
//! saved in the store after every durable (management) record, so that cutting the
//! log's tail or rewriting it shows against the store (`keyhold audit-verify`). Each node
//! of a cluster keeps its own chain, so each has its own anchor (`audit/anchor/<node>`);
//! the single anchor of earlier versions (`audit/anchor`) is read when a node has none.

use std::sync::Arc;

use super::{Anchor, AnchorStore};
use crate::store::Store;

/// The store key of the anchor of earlier versions (one node, one chain).
pub const ANCHOR_KEY: &str = "audit/anchor";

/// The store key of `node`'s anchor.
pub fn anchor_key(node: &str) -> String {
    format!("{ANCHOR_KEY}/{node}")
}

/// Saves a node's anchor in a [`Store`].
pub struct StoreAnchor {
    store: Arc<dyn Store>,
    node: String,
}

impl StoreAnchor {
    /// The anchor of `node`'s chain in `store`.
    pub fn of_node(store: Arc<dyn Store>, node: &str) -> StoreAnchor {
        StoreAnchor {
            store,
            node: node.to_string(),
        }
    }
}

impl AnchorStore for StoreAnchor {
    fn save(&self, anchor: &Anchor) -> Result<(), String> {
        let value = serde_json::to_vec(anchor).map_err(|e| e.to_string())?;
        self.store
            .put(&anchor_key(&self.node), value)
            .map(drop)
            .map_err(|e| e.to_string())
    }

    fn load(&self) -> Result<Option<Anchor>, String> {
        load(self.store.as_ref(), Some(&self.node))
    }
}

/// The anchor of `node`'s chain saved in `store` (or, when that node has none or no
/// node is named, the anchor of earlier versions), if any.
pub fn load(store: &dyn Store, node: Option<&str>) -> Result<Option<Anchor>, String> {
    if let Some(node) = node {
        if let Some(anchor) = load_key(store, &anchor_key(node))? {
            return Ok(Some(anchor));
        }
    }
    load_key(store, ANCHOR_KEY)
}

fn load_key(store: &dyn Store, key: &str) -> Result<Option<Anchor>, String> {
    match store.get(key).map_err(|e| e.to_string())? {
        None => Ok(None),
        Some(entry) => serde_json::from_slice(&entry.value)
            .map(Some)
            .map_err(|e| format!("the audit anchor in the store is unreadable: {e}")),
    }
}

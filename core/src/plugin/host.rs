//! The host services handed to plugins: a namespaced view of the durable store (with
//! create-if-absent and compare-and-swap as conditional store transactions; reads
//! answered from a cache kept current by the store's watch feed, see [`cache`]), and
//! logging into the host's `tracing`.

mod cache;

use std::sync::{Arc, OnceLock};

use abi_stable::{
    sabi_trait::TD_Opaque,
    std_types::{ROption, RResult, RSlice, RStr, RString, RVec},
};
use keyhold_sdk::{Host, Host_TO, HostBox, KeySourceError, KvEntry, LogLevel};

use crate::store::{Condition, Store, StoreError, Write};

/// A plugin's view of the durable store: every key lives under
/// `plugins/<source>/`, so key sources cannot see each other's entries.
#[derive(Clone)]
pub struct StoreHost {
    store: Arc<dyn Store>,
    namespace: String,
    source: String,
    /// The read cache, made (and subscribed to the feed) by the first read.
    cache: Arc<OnceLock<cache::KvCache>>,
}

impl StoreHost {
    /// The host for key source `source`.
    pub fn new(store: Arc<dyn Store>, source: &str) -> StoreHost {
        StoreHost {
            store,
            namespace: crate::model::keys::plugin_namespace(source),
            source: source.to_string(),
            cache: Arc::new(OnceLock::new()),
        }
    }

    fn cache(&self) -> &cache::KvCache {
        self.cache
            .get_or_init(|| cache::KvCache::new(self.store.as_ref(), &self.namespace))
    }

    /// Forgets a key written through this host, once the write returned (whether or not
    /// it was applied: a failed commit may still have committed).
    fn written<T>(&self, full: &str, result: T) -> T {
        if let Some(cache) = self.cache.get() {
            cache.written(full);
        }
        result
    }

    /// As the FFI-safe object a plugin's `open` takes.
    pub fn boxed(self) -> HostBox {
        Host_TO::from_value(self, TD_Opaque)
    }

    fn full(&self, key: &str) -> String {
        format!("{}{}", self.namespace, key)
    }
}

fn store_err(e: StoreError) -> KeySourceError {
    KeySourceError::unavailable(format!("host store: {e}"))
}

/// How often [`compare_and_swap`] retries when the key's revision moved but its value
/// still equals `expected` (a write of the same value, or an A-B-A in between).
const CAS_ATTEMPTS: usize = 16;

/// Compare-and-swap on the value of `key`, as one conditional store transaction on the
/// revision the value was read at: `Ok(false)` when the current value is not `expected`.
fn compare_and_swap(
    store: &dyn Store,
    key: &str,
    expected: Option<&[u8]>,
    new: Option<&[u8]>,
) -> Result<bool, StoreError> {
    for _ in 0..CAS_ATTEMPTS {
        let current = store.get(key)?;
        if current.as_ref().map(|e| e.value.as_slice()) != expected {
            return Ok(false);
        }
        if new == expected {
            // Nothing to write: the read above is the comparison.
            return Ok(true);
        }
        let condition = match &current {
            Some(entry) => Condition::Revision(key.to_string(), entry.revision),
            None => Condition::Absent(key.to_string()),
        };
        let writes = match new {
            Some(value) => vec![Write::Put(key.to_string(), value.to_vec())],
            None => vec![Write::Delete(key.to_string())],
        };
        match store.commit(&[condition], writes) {
            Ok(_) => return Ok(true),
            // Written in between: compare again with the new value.
            Err(StoreError::Conflict { .. }) => continue,
            Err(e) => return Err(e),
        }
    }
    Err(StoreError::Backend {
        backend: "plugin host",
        message: format!(
            "compare-and-swap on {key:?}: the entry kept changing ({CAS_ATTEMPTS} attempts)"
        ),
    })
}

impl Host for StoreHost {
    fn kv_get(&self, key: RStr<'_>) -> RResult<ROption<RVec<u8>>, KeySourceError> {
        self.cache()
            .get(self.store.as_ref(), &self.full(key.as_str()))
            .map(|v| v.map(RVec::from).into())
            .map_err(store_err)
            .into()
    }

    fn kv_put(&self, key: RStr<'_>, value: RSlice<'_, u8>) -> RResult<(), KeySourceError> {
        let full = self.full(key.as_str());
        let result = self.store.put(&full, value.to_vec());
        self.written(&full, result)
            .map(|_| ())
            .map_err(store_err)
            .into()
    }

    fn kv_create(&self, key: RStr<'_>, value: RSlice<'_, u8>) -> RResult<bool, KeySourceError> {
        let full = self.full(key.as_str());
        let result = self.store.commit(
            &[Condition::Absent(full.clone())],
            vec![Write::Put(full.clone(), value.to_vec())],
        );
        match self.written(&full, result) {
            Ok(_) => RResult::ROk(true),
            Err(StoreError::Conflict { .. }) => RResult::ROk(false),
            Err(e) => RResult::RErr(store_err(e)),
        }
    }

    fn kv_compare_and_swap(
        &self,
        key: RStr<'_>,
        expected: ROption<RSlice<'_, u8>>,
        new: ROption<RSlice<'_, u8>>,
    ) -> RResult<bool, KeySourceError> {
        let expected = expected.as_ref().map(RSlice::as_slice).into_option();
        let new = new.as_ref().map(RSlice::as_slice).into_option();
        let full = self.full(key.as_str());
        let result = compare_and_swap(self.store.as_ref(), &full, expected, new);
        self.written(&full, result).map_err(store_err).into()
    }

    fn kv_delete(&self, key: RStr<'_>) -> RResult<bool, KeySourceError> {
        let full = self.full(key.as_str());
        let result = self.store.delete(&full);
        self.written(&full, result).map_err(store_err).into()
    }

    fn kv_list(&self, prefix: RStr<'_>) -> RResult<RVec<KvEntry>, KeySourceError> {
        let ns = self.namespace.len();
        self.store
            .scan(&self.full(prefix.as_str()))
            .map(|entries| {
                entries
                    .into_iter()
                    .map(|e| KvEntry {
                        key: RString::from(&e.key[ns..]),
                        value: RVec::from(e.value),
                    })
                    .collect::<RVec<_>>()
            })
            .map_err(store_err)
            .into()
    }

    fn log(&self, level: LogLevel, message: RStr<'_>) {
        let source = self.source.as_str();
        let message = message.as_str();
        match level {
            LogLevel::Error => tracing::error!(target: "keyhold::plugin", source, "{message}"),
            LogLevel::Warn => tracing::warn!(target: "keyhold::plugin", source, "{message}"),
            LogLevel::Info => tracing::info!(target: "keyhold::plugin", source, "{message}"),
            LogLevel::Debug => tracing::debug!(target: "keyhold::plugin", source, "{message}"),
        }
    }
}

#[cfg(test)]
mod tests;

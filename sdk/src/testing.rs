//! Helpers for testing plugins without a keyhold server.

use std::{
    collections::BTreeMap,
    sync::{Arc, Mutex, MutexGuard},
};

use abi_stable::{
    sabi_trait::TD_Opaque,
    std_types::{ROption, RResult, RSlice, RStr, RString, RVec},
};

use crate::{Host, Host_TO, HostBox, KeySourceError, KvEntry, LogLevel};

/// An in-memory [`Host`]: a key-value map and a log, shared by every clone.
///
/// Open a plugin twice with clones of one `MemoryHost` to simulate a restart: the
/// second instance sees what the first one stored.
#[derive(Clone, Default)]
pub struct MemoryHost {
    kv: Arc<Mutex<BTreeMap<String, Vec<u8>>>>,
    logs: Arc<Mutex<Vec<(LogLevel, String)>>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl MemoryHost {
    /// An empty host.
    pub fn new() -> MemoryHost {
        MemoryHost::default()
    }

    /// A [`HostBox`] sharing this host's state, to hand to a plugin's `open`.
    pub fn boxed(&self) -> HostBox {
        Host_TO::from_value(self.clone(), TD_Opaque)
    }

    /// Every message logged so far.
    pub fn logs(&self) -> Vec<(LogLevel, String)> {
        lock(&self.logs).clone()
    }

    /// A copy of every stored entry (to check, e.g., that no key material is stored in
    /// the clear).
    pub fn entries(&self) -> BTreeMap<String, Vec<u8>> {
        lock(&self.kv).clone()
    }

    /// Replaces one stored entry behind the plugin's back (to test tampering).
    pub fn set_entry(&self, key: &str, value: Vec<u8>) {
        lock(&self.kv).insert(key.to_string(), value);
    }
}

impl Host for MemoryHost {
    fn kv_get(&self, key: RStr<'_>) -> RResult<ROption<RVec<u8>>, KeySourceError> {
        RResult::ROk(
            lock(&self.kv)
                .get(key.as_str())
                .map(|v| RVec::from(v.clone()))
                .into(),
        )
    }

    fn kv_put(&self, key: RStr<'_>, value: RSlice<'_, u8>) -> RResult<(), KeySourceError> {
        lock(&self.kv).insert(key.to_string(), value.to_vec());
        RResult::ROk(())
    }

    fn kv_create(&self, key: RStr<'_>, value: RSlice<'_, u8>) -> RResult<bool, KeySourceError> {
        let mut kv = lock(&self.kv);
        if kv.contains_key(key.as_str()) {
            return RResult::ROk(false);
        }
        kv.insert(key.to_string(), value.to_vec());
        RResult::ROk(true)
    }

    fn kv_delete(&self, key: RStr<'_>) -> RResult<bool, KeySourceError> {
        RResult::ROk(lock(&self.kv).remove(key.as_str()).is_some())
    }

    fn kv_list(&self, prefix: RStr<'_>) -> RResult<RVec<KvEntry>, KeySourceError> {
        let kv = lock(&self.kv);
        let entries = kv
            .range(prefix.to_string()..)
            .take_while(|(k, _)| k.starts_with(prefix.as_str()))
            .map(|(k, v)| KvEntry {
                key: RString::from(k.as_str()),
                value: RVec::from(v.clone()),
            })
            .collect::<Vec<_>>();
        RResult::ROk(entries.into())
    }

    fn log(&self, level: LogLevel, message: RStr<'_>) {
        lock(&self.logs).push((level, message.to_string()));
    }
}

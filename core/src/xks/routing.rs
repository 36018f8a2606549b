//! The data plane's immutable snapshot of everything it needs: base path -> store,
//! with credentials (secrets unsealed), keys and flags. Requests read it without
//! touching the durable store; every committed change rebuilds it.

use std::{collections::HashMap, sync::Arc};

use zeroize::Zeroizing;

use crate::{
    model::{self, CredentialRecord, HyokKeyRecord, StoreRecord},
    plugin::KeySourceHandle,
    secrets::MasterKey,
    store::{Store, StoreError},
};

use super::health::HealthCache;

/// The opened key sources, by name; a source that failed to load keeps its reason.
#[derive(Default)]
pub struct Sources {
    by_name: HashMap<String, Result<Arc<KeySourceHandle>, String>>,
}

impl Sources {
    /// Records an opened source.
    pub fn insert(&mut self, name: &str, source: Arc<KeySourceHandle>) {
        self.by_name.insert(name.to_string(), Ok(source));
    }

    /// Records a source that could not be opened, and why.
    pub fn insert_failed(&mut self, name: &str, reason: String) {
        self.by_name.insert(name.to_string(), Err(reason));
    }

    /// A source by name, or why it is not available.
    pub fn get(&self, name: &str) -> Result<Arc<KeySourceHandle>, String> {
        match self.by_name.get(name) {
            Some(Ok(s)) => Ok(s.clone()),
            Some(Err(reason)) => Err(reason.clone()),
            None => Err(format!("key source '{name}' is not configured")),
        }
    }
}

/// Everything the data plane knows about one key store.
pub struct StoreRoute {
    /// The store's record.
    pub record: StoreRecord,
    /// Its `XksProxyUriPath`.
    pub base_path: String,
    /// Its key source, or why it is unavailable.
    pub source: Result<Arc<KeySourceHandle>, String>,
    /// Access key id -> secret access key bytes.
    pub credentials: HashMap<String, Zeroizing<Vec<u8>>>,
    /// External key id -> HYOK key.
    pub keys: HashMap<String, HyokKeyRecord>,
    /// The store's deep health-check cache (survives rebuilds).
    pub health: Arc<HealthCache>,
}

/// The snapshot.
#[derive(Default)]
pub struct Routing {
    /// Store revision this snapshot reflects.
    pub revision: u64,
    by_base: HashMap<String, Arc<StoreRoute>>,
    by_lb_path: HashMap<String, Arc<StoreRoute>>,
}

impl Routing {
    /// The store served at this base path.
    pub fn by_base(&self, base: &str) -> Option<&Arc<StoreRoute>> {
        self.by_base.get(base)
    }

    /// The store whose load-balancer health path this is.
    pub fn by_lb_path(&self, path: &str) -> Option<&Arc<StoreRoute>> {
        self.by_lb_path.get(path)
    }

    /// Every store.
    pub fn stores(&self) -> impl Iterator<Item = &Arc<StoreRoute>> {
        self.by_base.values()
    }

    /// Builds a snapshot from the durable store. Records that do not parse or secrets
    /// that do not unseal are skipped and logged, never fatal: one bad object must not
    /// take every store down.
    pub fn build(
        store: &dyn Store,
        master: &MasterKey,
        sources: &Sources,
        health: &HealthCaches,
    ) -> Result<Routing, StoreError> {
        let revision = store.revision()?;
        let mut credentials: HashMap<String, HashMap<String, Zeroizing<Vec<u8>>>> = HashMap::new();
        for entry in store.scan(model::keys::CREDENTIALS)? {
            let Some(rec) = parse::<CredentialRecord>(&entry.key, &entry.value) else {
                continue;
            };
            let Some(store_id) = entry.key.split('/').nth(1) else {
                continue;
            };
            match master.open(&rec.sealed_secret, &entry.key) {
                Ok(secret) => {
                    credentials
                        .entry(store_id.to_string())
                        .or_default()
                        .insert(rec.access_key_id, secret);
                }
                Err(e) => tracing::error!(key = %entry.key, "skipping credential: {e}"),
            }
        }
        let mut keys: HashMap<String, HashMap<String, HyokKeyRecord>> = HashMap::new();
        for entry in store.scan(model::keys::HYOK_KEYS)? {
            let Some(rec) = parse::<HyokKeyRecord>(&entry.key, &entry.value) else {
                continue;
            };
            let Some(store_id) = entry.key.split('/').nth(1) else {
                continue;
            };
            keys.entry(store_id.to_string())
                .or_default()
                .insert(rec.external_id.clone(), rec);
        }
        let mut routing = Routing {
            revision,
            ..Routing::default()
        };
        for entry in store.scan(model::keys::STORES)? {
            let Some(record) = parse::<StoreRecord>(&entry.key, &entry.value) else {
                continue;
            };
            if record.kind != model::StoreKind::Local {
                continue;
            }
            let route = Arc::new(StoreRoute {
                base_path: record.xks_base_path(),
                source: sources.get(&record.source),
                credentials: credentials.remove(&record.id).unwrap_or_default(),
                keys: keys.remove(&record.id).unwrap_or_default(),
                health: health.for_store(&record.id),
                record,
            });
            routing
                .by_lb_path
                .insert(model::lb_health_path(&route.record.uri_path_prefix), route.clone());
            routing.by_base.insert(route.base_path.clone(), route);
        }
        Ok(routing)
    }
}

fn parse<T: serde::de::DeserializeOwned>(key: &str, value: &[u8]) -> Option<T> {
    match serde_json::from_slice(value) {
        Ok(v) => Some(v),
        Err(e) => {
            tracing::error!(key, "skipping unreadable record: {e}");
            None
        }
    }
}

/// Health caches by store id, kept across snapshot rebuilds.
#[derive(Default)]
pub struct HealthCaches {
    by_store: std::sync::Mutex<HashMap<String, Arc<HealthCache>>>,
}

impl HealthCaches {
    /// The cache of one store (created on first use).
    pub fn for_store(&self, id: &str) -> Arc<HealthCache> {
        let mut map = self
            .by_store
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        map.entry(id.to_string())
            .or_insert_with(|| Arc::new(HealthCache::default()))
            .clone()
    }
}

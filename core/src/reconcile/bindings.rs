//! Source key bindings: a source key (key source + key name) backs one HYOK key at most,
//! recorded in the uniqueness index `index/source-key/<source>/<key>` ->
//! `<store id>/<external id>` (see `Operations::create_hyok_key`). At start the config's
//! declarations are checked against each other, the index is built for keys that lack
//! it (data from before the index), and each declared key is bound.

use std::collections::HashMap;

use super::{ReconcileError, load};
use crate::{
    config::StoreDecl,
    model::{HyokKeyRecord, StoreRecord, keys},
    store::{Condition, Store, StoreError, Write},
};

/// Refuses declarations that bind one source key twice (in two stores, or twice in one
/// store), or that bind a declared store's health-check key to a HYOK key.
pub fn check_declared(stores: &[StoreDecl]) -> Result<(), ReconcileError> {
    let health: HashMap<(&str, &str), &str> = stores
        .iter()
        .map(|s| {
            (
                (s.source.as_str(), s.health_check_key.as_str()),
                s.name.as_str(),
            )
        })
        .collect();
    let mut seen: HashMap<(&str, &str), (&str, &str)> = HashMap::new();
    for s in stores {
        for k in &s.keys {
            let source_key = k.source_key.as_deref().unwrap_or(&k.id);
            let at = (s.source.as_str(), source_key);
            if let Some(holder) = health.get(&at) {
                return Err(ReconcileError::SourceKeyBinding {
                    source_name: s.source.clone(),
                    source_key: source_key.to_string(),
                    reason: format!(
                        "key '{}' of store '{}' is declared on the health-check key of store '{holder}'",
                        k.id, s.name
                    ),
                });
            }
            if let Some((first_store, first_key)) = seen.insert(at, (&s.name, &k.id)) {
                return Err(ReconcileError::SourceKeyBinding {
                    source_name: s.source.clone(),
                    source_key: source_key.to_string(),
                    reason: format!(
                        "declared for key '{first_key}' of store '{first_store}' and for key '{}' of store '{}'",
                        k.id, s.name
                    ),
                });
            }
        }
    }
    Ok(())
}

/// Writes the index entry of every HYOK key that lacks one (idempotent). When data from
/// before the index binds one source key twice, the first key keeps the binding and the
/// others are named in the log (they keep working; new bindings are refused).
pub fn backfill(store: &dyn Store) -> Result<(), ReconcileError> {
    let mut sources: HashMap<String, Option<String>> = HashMap::new();
    for entry in store.scan(keys::HYOK_KEYS)? {
        let Ok(record) = serde_json::from_slice::<HyokKeyRecord>(&entry.value) else {
            continue;
        };
        if record.source_key.is_empty() {
            continue;
        }
        let Some(rest) = entry.key.strip_prefix(keys::HYOK_KEYS) else {
            continue;
        };
        let Some((store_id, _)) = rest.split_once('/') else {
            continue;
        };
        let source = match sources.get(store_id) {
            Some(s) => s.clone(),
            None => {
                let s = load::<StoreRecord>(store, &keys::store(store_id))?.map(|r| r.source);
                sources.insert(store_id.to_string(), s.clone());
                s
            }
        };
        let Some(source) = source else { continue };
        let index = keys::source_key_index(&source, &record.source_key);
        let value = rest.as_bytes().to_vec();
        match store.commit(
            &[Condition::Absent(index.clone())],
            vec![Write::Put(index.clone(), value)],
        ) {
            Ok(_) => {}
            Err(StoreError::Conflict { .. }) => {
                let holder = store.get(&index)?.map(|e| e.value);
                if holder.as_deref() != Some(rest.as_bytes()) {
                    tracing::warn!(
                        key = %rest,
                        source = %source,
                        source_key = %record.source_key,
                        "HYOK key shares its source key with another HYOK key (made before bindings were unique); delete one of them"
                    );
                }
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// Binds source key `source_key` to the declared HYOK key `external_id` of `rec`;
/// refused when another HYOK key holds it.
pub fn bind(
    store: &dyn Store,
    rec: &StoreRecord,
    external_id: &str,
    source_key: &str,
) -> Result<(), ReconcileError> {
    let index = keys::source_key_index(&rec.source, source_key);
    let value = format!("{}/{external_id}", rec.id);
    match store.commit(
        &[Condition::Absent(index.clone())],
        vec![Write::Put(index.clone(), value.clone().into_bytes())],
    ) {
        Ok(_) => Ok(()),
        Err(StoreError::Conflict { .. }) => {
            let holder = store
                .get(&index)?
                .map(|e| String::from_utf8_lossy(&e.value).into_owned())
                .unwrap_or_default();
            if holder == value {
                return Ok(());
            }
            let (holder_store, holder_key) = holder.split_once('/').unwrap_or((&holder, ""));
            let holder_name = load::<StoreRecord>(store, &keys::store(holder_store))?
                .map_or_else(|| holder_store.to_string(), |r| r.name);
            Err(ReconcileError::SourceKeyBinding {
                source_name: rec.source.clone(),
                source_key: source_key.to_string(),
                reason: format!(
                    "declared for key '{external_id}' of store '{}' but bound to key '{holder_key}' of store '{holder_name}'",
                    rec.name
                ),
            })
        }
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests;

//! HYOK keys of a store: each bound to a key of the store's own source (one binding per
//! source key), listed, blocked and unblocked, deleted.

use keyhold_sdk::KeySourceError;

use super::{OpError, Operations, SourceKeyInUse, decode, to_json};
use crate::{
    model::{self, HyokKeyRecord, keys, rules},
    store::{Condition, StoreError, Write},
};

impl Operations {
    /// Creates a HYOK key bound to `source_key`, a key of the store's own source, that
    /// meets the HYOK key rules ([`rules::hyok_key_problems`]).
    pub fn create_hyok_key(
        &self,
        store_id: &str,
        external_id: &str,
        source_key: &str,
    ) -> Result<HyokKeyRecord, OpError> {
        self.create_hyok_key_allowing(store_id, external_id, source_key, false)
    }

    /// [`Operations::create_hyok_key`]; with `allow_weak_key`, a source key that breaks
    /// the HYOK key rules is accepted (an explicit relaxation, stored on the key).
    pub fn create_hyok_key_allowing(
        &self,
        store_id: &str,
        external_id: &str,
        source_key: &str,
        allow_weak_key: bool,
    ) -> Result<HyokKeyRecord, OpError> {
        model::validate_external_key_id(external_id)?;
        let current = self.get_store(store_id)?;
        let store = &current.value;
        rules::ensure_unblocked(store)?;
        let weak = self.check_hyok_source_key(&store.source, source_key, allow_weak_key)?;
        // A store's health-check key never backs a HYOK key (of any store on the source).
        let stores = self.list_stores()?;
        if stores
            .iter()
            .any(|s| s.value.source == store.source && s.value.health_check_key == source_key)
        {
            return Err(rules::source_key_is_health_check_key(&store.source, source_key).into());
        }
        let record = HyokKeyRecord {
            external_id: external_id.to_string(),
            source_key: source_key.to_string(),
            blocked: false,
            aws: None,
            created_at: model::now_unix(),
            // Recorded only when it mattered: the key breaks a rule.
            allow_weak_key: weak,
        };
        let key = keys::hyok_key(store_id, external_id);
        let index = keys::source_key_index(&store.source, source_key);
        // Rewriting the store record bumps its version (see `delete_store`). The index
        // entry, written in the same transaction, binds the source key to this key only.
        match self.store.commit(
            &[
                Condition::Absent(key.clone()),
                Condition::Absent(index.clone()),
                Condition::Revision(keys::store(store_id), current.version),
            ],
            vec![
                Write::Put(key, to_json(&record)),
                Write::Put(
                    index.clone(),
                    format!("{store_id}/{external_id}").into_bytes(),
                ),
                Write::Put(keys::store(store_id), to_json(store)),
            ],
        ) {
            Ok(_) => Ok(record),
            Err(StoreError::Conflict { key }) if key.starts_with("keys/") => {
                Err(OpError::AlreadyExists {
                    what: "HYOK key",
                    id: external_id.to_string(),
                })
            }
            Err(StoreError::Conflict { key }) if key == index => {
                Err(self.source_key_in_use(&store.source, source_key, &index))
            }
            Err(StoreError::Conflict { .. }) => Err(OpError::VersionMismatch {
                what: "key store",
                id: store_id.to_string(),
                expected: current.version,
                actual: 0,
            }),
            Err(e) => Err(e.into()),
        }
    }

    /// Checks `source_key` of `source` against the HYOK key rules: it must exist in the
    /// store's own source, under a label naming one key, and meet
    /// [`rules::hyok_key_problems`] unless `allow_weak_key`. Returns whether it breaks a
    /// rule (accepted only with `allow_weak_key`).
    pub(super) fn check_hyok_source_key(
        &self,
        source: &str,
        source_key: &str,
        allow_weak_key: bool,
    ) -> Result<bool, OpError> {
        let handle = self.opened_source(source)?;
        // The source key must come from the store's own source: looked up there only.
        let found = handle.source().get_key(source_key.into()).into_result();
        let info = self.key_in_own_source(&handle, found, source, source_key)?;
        let problems = rules::hyok_key_problems(&info);
        if !allow_weak_key && !problems.is_empty() {
            return Err(OpError::Source {
                source_name: source.to_string(),
                reason: KeySourceError::InvalidKey {
                    key: source_key.into(),
                    problems: problems
                        .into_iter()
                        .chain(std::iter::once(
                            "a HYOK key's source key must not leave its source and must allow \
                             encrypt and decrypt (allow_weak_key: true accepts it explicitly)"
                                .to_string(),
                        ))
                        .map(Into::into)
                        .collect(),
                },
            });
        }
        Ok(!problems.is_empty())
    }

    /// The refusal of a second binding of a source key, naming the holding store (the
    /// caller's layer drops the name for users who may not view that store).
    fn source_key_in_use(&self, source: &str, source_key: &str, index: &str) -> OpError {
        let holder_store_id = match self.store.get(index) {
            Ok(Some(e)) => String::from_utf8_lossy(&e.value)
                .split('/')
                .next()
                .unwrap_or_default()
                .to_string(),
            _ => String::new(),
        };
        let holder_name = self.get_store(&holder_store_id).ok().map(|s| s.value.name);
        OpError::SourceKeyInUse(Box::new(SourceKeyInUse {
            source_name: source.to_string(),
            source_key: source_key.to_string(),
            holder_store_id,
            holder_name,
        }))
    }

    /// HYOK keys of a store.
    pub fn list_hyok_keys(&self, store_id: &str) -> Result<Vec<HyokKeyRecord>, OpError> {
        self.get_store(store_id)?;
        self.decode_all(&keys::hyok_keys_of(store_id))
    }

    /// Blocks or unblocks one HYOK key.
    pub fn set_hyok_key_blocked(
        &self,
        store_id: &str,
        external_id: &str,
        blocked: bool,
    ) -> Result<HyokKeyRecord, OpError> {
        let key = keys::hyok_key(store_id, external_id);
        let entry = self.entry(&key, "HYOK key", external_id)?;
        let mut record: HyokKeyRecord = decode(&entry)?;
        record.blocked = blocked;
        self.commit_read(
            &[Condition::Revision(key.clone(), entry.revision)],
            vec![Write::Put(key, to_json(&record))],
            "HYOK key",
            external_id,
            entry.revision,
        )?;
        Ok(record)
    }

    /// Deletes one HYOK key, with its source key's binding (so the source key may back
    /// a new HYOK key).
    pub fn delete_hyok_key(&self, store_id: &str, external_id: &str) -> Result<(), OpError> {
        let key = keys::hyok_key(store_id, external_id);
        let Some(entry) = self.store.get(&key)? else {
            return Err(OpError::NotFound {
                what: "HYOK key",
                id: external_id.to_string(),
            });
        };
        let record: HyokKeyRecord = decode(&entry)?;
        let mut writes = vec![Write::Delete(key.clone())];
        if !record.source_key.is_empty() {
            let source = self.get_store(store_id)?.value.source;
            let index = keys::source_key_index(&source, &record.source_key);
            let bound_here = self
                .store
                .get(&index)?
                .is_some_and(|e| e.value == format!("{store_id}/{external_id}").as_bytes());
            if bound_here {
                writes.push(Write::Delete(index));
            }
        }
        match self
            .store
            .commit(&[Condition::Revision(key, entry.revision)], writes)
        {
            Ok(_) => Ok(()),
            Err(StoreError::Conflict { .. }) => Err(OpError::VersionMismatch {
                what: "HYOK key",
                id: external_id.to_string(),
                expected: entry.revision,
                actual: 0,
            }),
            Err(e) => Err(e.into()),
        }
    }
}

//! Key sources and their keys, HYOK key look-ups, and stores' account bindings.

use std::collections::HashMap;

use keyhold_sdk::{KeyInfo, KeySourceError, NewKey};

use super::{OpError, Operations, decode};
use crate::api::sources::{Source, SourceState};
use crate::{
    model::{HyokKeyRecord, SourceRecord, keys, rules},
    plugin::{KeySourceHandle, LoadedPlugin},
};

impl Operations {
    fn source_handle(&self, source: &str) -> Result<std::sync::Arc<KeySourceHandle>, OpError> {
        if !self.sources.contains(source) {
            return Err(OpError::NotFound {
                what: "key source",
                id: source.to_string(),
            });
        }
        self.opened_source(source)
    }

    /// The opened key source `source`, or [`OpError::SourceUnavailable`] saying why not.
    pub(super) fn opened_source(
        &self,
        source: &str,
    ) -> Result<std::sync::Arc<KeySourceHandle>, OpError> {
        self.sources
            .get(source)
            .map_err(|reason| OpError::SourceUnavailable {
                source_name: source.to_string(),
                reason,
            })
    }

    fn source_err(source: &str) -> impl Fn(KeySourceError) -> OpError + '_ {
        move |reason| OpError::Source {
            source_name: source.to_string(),
            reason,
        }
    }

    /// Checks that `key` qualifies as a health-check key of `source`: the source's own
    /// check (required attributes), a label naming one key only, and not deletable.
    pub(super) fn validate_health_check_key(&self, source: &str, key: &str) -> Result<(), OpError> {
        let handle = self.opened_source(source)?;
        let checked = handle
            .source()
            .validate_health_check_key(key.into())
            .into_result();
        self.key_in_own_source(&handle, checked, source, key)?;
        let info = handle
            .source()
            .get_key(key.into())
            .into_result()
            .map_err(Self::source_err(source))?;
        let problems = rules::health_check_key_problems(&info);
        KeySourceError::check_key(key, problems).map_err(Self::source_err(source))
    }

    /// `outcome` of looking up `key` in `source` as an [`OpError`]: a key that is not
    /// there is [`OpError::SourceKeyNotFound`], naming the other sources that hold one of
    /// that name; a label shared by several keys of the source is
    /// `source_key_duplicate` (409), naming the label and the count.
    pub(super) fn key_in_own_source<T>(
        &self,
        handle: &KeySourceHandle,
        outcome: Result<T, KeySourceError>,
        source: &str,
        key: &str,
    ) -> Result<T, OpError> {
        match outcome {
            Err(KeySourceError::NotFound { .. }) => Err(OpError::SourceKeyNotFound {
                source_name: source.to_string(),
                key: key.to_string(),
                elsewhere: rules::held_elsewhere(&self.sources_holding(key, source)),
            }),
            other => {
                self.ensure_unique_key(handle, source, key)?;
                other.map_err(Self::source_err(source))
            }
        }
    }

    /// Refuses a `key` that names two or more keys of the source (objects made outside
    /// keyhold may share a label): `source_key_duplicate`, naming the label and count.
    fn ensure_unique_key(
        &self,
        handle: &KeySourceHandle,
        source: &str,
        key: &str,
    ) -> Result<(), OpError> {
        let keys = handle
            .source()
            .list_keys()
            .into_result()
            .map_err(Self::source_err(source))?;
        match rules::count_named(&keys, key) {
            n if n > 1 => Err(rules::source_key_duplicate(source, key, n).into()),
            _ => Ok(()),
        }
    }

    /// The opened sources other than `except` that hold a key named `key`.
    fn sources_holding(&self, key: &str, except: &str) -> Vec<String> {
        let mut holders = self
            .sources
            .opened()
            .into_iter()
            .filter(|handle| {
                handle.name != except && handle.source().get_key(key.into()).into_result().is_ok()
            })
            .map(|handle| handle.name.clone())
            .collect::<Vec<_>>();
        holders.sort();
        holders
    }

    /// Every configured key source with its status.
    pub fn list_sources(&self) -> Result<Vec<Source>, OpError> {
        let records: HashMap<String, SourceRecord> = self
            .store
            .scan(keys::SOURCES)?
            .iter()
            .map(|e| decode::<SourceRecord>(e).map(|r| (r.name.clone(), r)))
            .collect::<Result<_, _>>()?;
        Ok(self
            .sources
            .all()
            .into_iter()
            .map(|(name, handle)| {
                let rec = records.get(&name);
                let library = handle.as_ref().ok().and_then(|h| h.plugin.as_ref());
                let plugin = rec.map(|r| r.plugin.clone()).or_else(|| {
                    handle
                        .as_ref()
                        .ok()
                        .and_then(|h| h.plugin.as_ref().map(|p| p.name.clone()))
                });
                Source {
                    plugin: plugin.unwrap_or_default(),
                    container: rec.and_then(|r| r.container.clone()),
                    hsm_connection: rec.and_then(|r| r.hsm_connection.clone()),
                    status: if handle.is_ok() {
                        SourceState::Opened
                    } else {
                        SourceState::Failed
                    },
                    reason: handle.as_ref().err().cloned(),
                    vendor: handle.as_ref().ok().map(|h| h.info.vendor.to_string()),
                    model: handle.as_ref().ok().map(|h| h.info.model.to_string()),
                    plugin_version: library.and_then(LoadedPlugin::version),
                    sdk_version: library.map(|l| l.sdk_version.clone()),
                    abi_version: library.map(|l| l.abi_version),
                    name,
                }
            })
            .collect())
    }

    /// The keys of a key source.
    pub fn list_source_keys(&self, source: &str) -> Result<Vec<KeyInfo>, OpError> {
        let handle = self.source_handle(source)?;
        let mut keys = handle
            .source()
            .list_keys()
            .into_result()
            .map_err(Self::source_err(source))?
            .into_vec();
        keys.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(keys)
    }

    /// Creates a key in a key source.
    pub fn create_source_key(&self, source: &str, spec: NewKey) -> Result<KeyInfo, OpError> {
        if spec.name.is_empty() {
            return Err(OpError::Input("a source key needs a name".into()));
        }
        if spec.usage.0 == 0 {
            return Err(OpError::Input(
                "a source key needs at least one usage (encrypt, decrypt, wrap, unwrap)".into(),
            ));
        }
        let handle = self.source_handle(source)?;
        handle
            .source()
            .create_key(spec)
            .into_result()
            .map_err(Self::source_err(source))
    }

    /// One key of a key source, and whether it qualifies as a health-check key
    /// (`Err` lists what is wrong with it).
    pub fn get_source_key(
        &self,
        source: &str,
        key: &str,
    ) -> Result<(KeyInfo, Result<(), Vec<String>>), OpError> {
        let handle = self.source_handle(source)?;
        let info = handle
            .source()
            .get_key(key.into())
            .into_result()
            .map_err(Self::source_err(source))?;
        let check = match handle
            .source()
            .validate_health_check_key(key.into())
            .into_result()
        {
            Ok(()) => Ok(()),
            Err(KeySourceError::InvalidKey { problems, .. }) => {
                Err(problems.iter().map(|p| p.to_string()).collect())
            }
            Err(other) => Err(vec![other.to_string()]),
        };
        Ok((info, check))
    }

    /// The id of the store named `reference`, when `reference` is no store's id but a
    /// store's name (`None`: use it as it is).
    pub fn store_id_for_name(&self, reference: &str) -> Result<Option<String>, OpError> {
        if self.store.get(&keys::store(reference))?.is_some() {
            return Ok(None);
        }
        match self.store_id_by_name(reference) {
            Ok(id) => Ok(Some(id)),
            Err(OpError::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// One HYOK key of a store.
    pub fn get_hyok_key(
        &self,
        store_id: &str,
        external_id: &str,
    ) -> Result<HyokKeyRecord, OpError> {
        self.get_store(store_id)?;
        let entry = self.entry(
            &keys::hyok_key(store_id, external_id),
            "HYOK key",
            external_id,
        )?;
        decode(&entry)
    }

    /// The AWS account a store belongs to (`None`: none, only admins manage it).
    pub fn store_account(&self, store_id: &str) -> Result<Option<String>, OpError> {
        Ok(self
            .store
            .get(&keys::store_account(store_id))?
            .map(|e| String::from_utf8_lossy(&e.value).into_owned()))
    }

    /// The durable store's current revision.
    pub fn revision(&self) -> Result<u64, OpError> {
        Ok(self.store.revision()?)
    }

    /// Every store's account binding: store id -> account id.
    pub fn store_accounts(&self) -> Result<HashMap<String, String>, OpError> {
        Ok(self
            .store
            .scan(keys::STORE_ACCOUNTS)?
            .into_iter()
            .filter_map(|e| {
                let id = e.key.strip_prefix(keys::STORE_ACCOUNTS)?.to_string();
                Some((id, String::from_utf8_lossy(&e.value).into_owned()))
            })
            .collect())
    }
}

//! A key source's life at run time: read one, reopen it (re-login, re-read the slot
//! list) and delete it, on every node of a cluster. Each source record carries a
//! generation that a reopen bumps: every node follows the records
//! ([`SourceFollower`]) and reopens its own copy when the generation it opened
//! differs, opens a source created elsewhere, and closes a deleted one.

use std::sync::Arc;

use super::{
    OpError, Operations,
    connections::{DeclaredSource, PluginSettings, SOURCE_OPEN_TIMEOUT, open_source_at},
    decode, to_json,
};
use crate::{
    api::sources::Source,
    model::{HsmConnectionRecord, SourceRecord, keys, rules::RuleViolation},
    plugin::{KeySourceHandle, StoreHost},
    store::{Condition, Store, StoreError, Write},
    xks::Sources,
};

/// The key every store creation on `source` rewrites (with the new store's id), so
/// that deleting the source fails when a store was created meanwhile (outside the
/// source records: a store creation does not touch the stores served from it).
pub(super) fn stores_guard(source: &str) -> String {
    format!("index/source-stores/{source}")
}

/// Opens source `name`, created through the admin API, with its recorded (or its HSM
/// connection's current) plugin configuration: a handle, or why it did not open (at
/// start, at creation elsewhere, at a reopen).
pub fn open_stored_source(
    settings: &PluginSettings,
    store: &Arc<dyn Store>,
    name: &str,
    plugin: &str,
    config: &serde_json::Value,
) -> Result<Arc<KeySourceHandle>, String> {
    open_handle(settings, store, name, plugin, config, None)
}

/// Opens source `name` as `rec` (or its declaration in the configuration file,
/// `declared`) describes it: a handle, or why it did not open.
fn open_handle(
    settings: &PluginSettings,
    store: &Arc<dyn Store>,
    name: &str,
    plugin: &str,
    config: &serde_json::Value,
    declared: Option<&DeclaredSource>,
) -> Result<Arc<KeySourceHandle>, String> {
    let path = match declared {
        Some(d) => d.library.clone(),
        None => settings
            .dir
            .join(format!("libplugin_{}.so", plugin.replace('-', "_"))),
    };
    let host = StoreHost::new(store.clone(), name);
    let (lib, source) = open_source_at(path, name, config, host, SOURCE_OPEN_TIMEOUT)
        .map_err(|reason| format!("key source '{name}' did not open: {reason}"))?;
    tracing::info!(source = %name, plugin = %lib.name, model = %lib.model, "key source (re)opened");
    Ok(Arc::new(
        KeySourceHandle::new(name, Some(lib), source, settings.limits)
            .with_inline_calls(declared.map(|d| d.inline_calls).unwrap_or_default())
            .with_host(StoreHost::new(store.clone(), name)),
    ))
}

/// The plugin configuration `rec` is opened with here: its declaration's (sources of
/// the configuration file), else the one its record carries; `None` when this node
/// cannot open it (declared in another node's file only).
fn config_of<'a>(
    settings: &'a PluginSettings,
    rec: &'a SourceRecord,
) -> Option<(&'a serde_json::Value, Option<&'a DeclaredSource>)> {
    match settings.declared.get(&rec.name) {
        Some(d) => Some((&d.config, Some(d))),
        None => rec.config.as_ref().map(|c| (c, None)),
    }
}

impl Operations {
    /// One key source with its status.
    pub fn get_source(&self, name: &str) -> Result<Source, OpError> {
        self.list_sources()?
            .into_iter()
            .find(|s| s.name == name)
            .ok_or_else(|| OpError::NotFound {
                what: "key source",
                id: name.to_string(),
            })
    }

    /// Closes and reopens a key source from its current configuration: for a source
    /// made from an HSM connection, the connection as it is now (a changed PIN
    /// reference, module settings); for one declared in the configuration file, its
    /// declaration. Stores' bindings are untouched. The record's generation is bumped,
    /// so every node of a cluster reopens its copy. A source that does not open is
    /// `failed` with the reason (everywhere, as after a restart).
    pub fn reopen_source(&self, name: &str) -> Result<Source, OpError> {
        let settings = self.plugin_settings()?.clone();
        let mut generations = self.sources.lifecycle();
        let key = keys::source(name);
        let entry = self.entry(&key, "key source", name)?;
        let mut rec: SourceRecord = decode(&entry)?;
        if let Some(conn_name) = rec.hsm_connection.clone() {
            if !settings.declared.contains_key(name) {
                let conn: HsmConnectionRecord = decode(&self.entry(
                    &keys::hsm_connection(&conn_name),
                    "HSM connection",
                    &conn_name,
                )?)?;
                rec.config = Some(conn.luna_config());
            }
        }
        let Some((config, declared)) = config_of(&settings, &rec) else {
            return Err(OpError::Rule(RuleViolation {
                code: "source_not_reopenable",
                message: format!(
                    "key source '{name}' is declared in another node's configuration file, not this one's: reopen it there"
                ),
            }));
        };
        let opened = open_handle(&settings, &self.store, name, &rec.plugin, config, declared);
        rec.generation = rec.generation.wrapping_add(1);
        self.commit_read(
            &[Condition::Revision(key.clone(), entry.revision)],
            vec![Write::Put(key, to_json(&rec))],
            "key source",
            name,
            entry.revision,
        )?;
        if let Err(reason) = &opened {
            tracing::error!(source = %name, "key source unavailable after a reopen: {reason}");
        }
        self.sources.set(name, opened);
        generations.insert(name.to_string(), rec.generation);
        drop(generations);
        self.get_source(name)
    }

    /// Deletes a key source that no key store uses, and closes it on every node. A
    /// source declared in the configuration file is refused (edit the file instead).
    /// Its keys stay in the key manager.
    pub fn delete_source(&self, name: &str) -> Result<(), OpError> {
        let declared = self
            .plugins
            .as_ref()
            .is_some_and(|s| s.declared.contains_key(name));
        let mut generations = self.sources.lifecycle();
        let key = keys::source(name);
        let entry = self.entry(&key, "key source", name)?;
        let rec: SourceRecord = decode(&entry)?;
        if declared || rec.config.is_none() {
            return Err(OpError::Rule(RuleViolation {
                code: "source_declared_in_config",
                message: format!(
                    "key source '{name}' is declared in the configuration file: remove it from the file (and restart) instead; only sources created through the API are deleted here"
                ),
            }));
        }
        // Read before the stores are listed: a store created after this read rewrites
        // the guard, and the delete below fails.
        let guard_key = stores_guard(name);
        let guard = match self.store.get(&guard_key)? {
            Some(e) => Condition::Revision(guard_key.clone(), e.revision),
            None => Condition::Absent(guard_key.clone()),
        };
        let mut users: Vec<String> = self
            .list_stores()?
            .into_iter()
            .filter(|s| s.value.source == name)
            .map(|s| format!("'{}'", s.value.name))
            .collect();
        if !users.is_empty() {
            users.sort();
            return Err(OpError::Rule(RuleViolation {
                code: "source_in_use",
                message: format!(
                    "key source '{name}' is used by key store{} {}: delete {} first (a store's source never changes)",
                    if users.len() == 1 { "" } else { "s" },
                    users.join(", "),
                    if users.len() == 1 { "it" } else { "them" },
                ),
            }));
        }
        match self.store.commit(
            &[Condition::Revision(key.clone(), entry.revision), guard],
            vec![Write::Delete(key), Write::Delete(guard_key)],
        ) {
            Ok(_) => {}
            Err(StoreError::Conflict { .. }) => {
                return Err(OpError::VersionMismatch {
                    what: "key source",
                    id: name.to_string(),
                    expected: entry.revision,
                    actual: 0,
                });
            }
            Err(e) => return Err(e.into()),
        }
        self.sources.remove(name);
        generations.remove(name);
        tracing::info!(source = %name, "key source deleted and closed");
        Ok(())
    }
}

/// Keeps this node's opened key sources in line with the source records: applied to
/// each committed change (before the data plane's routing, which then picks up the
/// new handles) and whole after a lag.
#[derive(Clone)]
pub struct SourceFollower {
    settings: PluginSettings,
    store: Arc<dyn Store>,
    sources: Arc<Sources>,
}

impl SourceFollower {
    /// A follower opening sources with `settings` into `sources`.
    pub fn new(settings: PluginSettings, store: Arc<dyn Store>, sources: Arc<Sources>) -> Self {
        SourceFollower {
            settings,
            store,
            sources,
        }
    }

    /// Records the generation of every source record as the one this node opened (at
    /// start, right after opening them).
    pub fn started(&self) -> Result<(), StoreError> {
        let mut generations = self.sources.lifecycle();
        for entry in self.store.scan(keys::SOURCES)? {
            if let Ok(rec) = serde_json::from_slice::<SourceRecord>(&entry.value) {
                generations.insert(rec.name, rec.generation);
            }
        }
        Ok(())
    }

    /// Applies the source records named by `changed` keys (`None`: all of them, after
    /// missed events).
    pub fn apply(&self, changed: Option<&[String]>) {
        let names: Vec<String> = match changed {
            Some(keys) => keys
                .iter()
                .filter_map(|k| k.strip_prefix(keys::SOURCES))
                .map(str::to_string)
                .collect(),
            None => {
                let mut all: Vec<String> = self
                    .sources
                    .all()
                    .into_iter()
                    .map(|(name, _)| name)
                    .collect();
                match self.store.scan(keys::SOURCES) {
                    Ok(entries) => all.extend(
                        entries
                            .iter()
                            .filter_map(|e| e.key.strip_prefix(keys::SOURCES))
                            .map(str::to_string),
                    ),
                    Err(e) => {
                        tracing::warn!("cannot read the key source records: {e}");
                        return;
                    }
                }
                all.sort();
                all.dedup();
                all
            }
        };
        for name in names {
            if let Err(e) = self.follow(&name) {
                tracing::warn!(source = %name, "cannot follow the key source's record: {e}");
            }
        }
    }

    fn follow(&self, name: &str) -> Result<(), StoreError> {
        if name.starts_with('.') {
            return Ok(());
        }
        let mut generations = self.sources.lifecycle();
        let Some(entry) = self.store.get(&keys::source(name))? else {
            // Deleted: closed here too (declared sources are never deleted).
            if !self.settings.declared.contains_key(name) && self.sources.contains(name) {
                self.sources.remove(name);
                generations.remove(name);
                tracing::info!(source = %name, "key source deleted elsewhere: closed");
            }
            return Ok(());
        };
        let Ok(rec) = serde_json::from_slice::<SourceRecord>(&entry.value) else {
            tracing::error!(source = %name, "skipping an unreadable key source record");
            return Ok(());
        };
        let opened_at = self
            .sources
            .contains(name)
            .then(|| generations.get(name).copied().unwrap_or(0));
        if opened_at == Some(rec.generation) {
            return Ok(());
        }
        let Some((config, declared)) = config_of(&self.settings, &rec) else {
            return Ok(());
        };
        let opened = open_handle(
            &self.settings,
            &self.store,
            name,
            &rec.plugin,
            config,
            declared,
        );
        if let Err(reason) = &opened {
            tracing::error!(source = %name, "key source unavailable: {reason}");
        }
        self.sources.set(name, opened);
        generations.insert(name.to_string(), rec.generation);
        Ok(())
    }
}

//! Opening key sources at start: those the configuration file declares, and those
//! created through the admin API (their records), and the plugin settings that
//! opening sources at run time needs.

use std::{sync::Arc, time::Duration};

use crate::{
    config::Config,
    plugin::{self, CallLimits, KeySourceHandle, StoreHost},
    store::Store,
    xks::Sources,
};

/// Opens every declared key source. A source whose library is missing or
/// incompatible, or whose plugin refuses to open, is logged and recorded as failed;
/// the server still starts and serves the others.
pub fn open_sources(cfg: &Config, store: &Arc<dyn Store>) -> (Sources, Vec<(String, String)>) {
    let mut sources = Sources::default();
    let mut failed = Vec::new();
    let limits = CallLimits {
        concurrency: cfg.xks.plugin_concurrency,
        queue_timeout: Duration::from_millis(cfg.xks.queue_timeout_ms),
        call_timeout: Duration::from_millis(cfg.xks.plugin_timeout_ms),
    };
    for (name, decl) in &cfg.sources {
        let path = cfg.library_path(decl);
        let opened = plugin::load(&path).and_then(|lib| {
            let host = StoreHost::new(store.clone(), name).boxed();
            let source = lib.open(name, &decl.config, host)?;
            tracing::info!(
                source = %name, plugin = %lib.name, model = %lib.model, library = %path.display(),
                "key source opened"
            );
            Ok(KeySourceHandle::new(name, Some(lib), source, limits)
                .with_inline_calls(decl.inline_calls)
                .with_host(StoreHost::new(store.clone(), name)))
        });
        match opened {
            Ok(handle) => sources.insert(name, Arc::new(handle)),
            Err(e) => {
                tracing::error!(source = %name, "key source unavailable: {e}");
                sources.insert_failed(name, e.to_string());
                failed.push((name.clone(), e.to_string()));
            }
        }
    }
    (sources, failed)
}

/// The outcome of opening one declared key source for `keyhold check-config`.
#[derive(Debug, Clone)]
pub struct SourceCheck {
    /// The key source's name.
    pub name: String,
    /// The library it was loaded from.
    pub library: std::path::PathBuf,
    /// `Err` with the reason (the same text `serve` logs) when it did not open.
    pub outcome: Result<(), String>,
}

/// Opens every declared key source as [`start`] does ([`open_sources`]: load the
/// library, check it, call the plugin's `open` with its configuration), but on a
/// throwaway in-memory store, so that nothing is written to the data directory's store
/// (a plugin's own `open` may still create what it needs, e.g. ctm's generated
/// development master key). The opened sources are dropped.
pub fn check_sources(cfg: &Config) -> Vec<SourceCheck> {
    let store: Arc<dyn Store> = Arc::new(crate::store::MemoryStore::new());
    let (_opened, failed) = open_sources(cfg, &store);
    cfg.sources
        .iter()
        .map(|(name, decl)| SourceCheck {
            name: name.clone(),
            library: cfg.library_path(decl),
            outcome: match failed.iter().find(|(n, _)| n == name) {
                Some((_, reason)) => Err(reason.clone()),
                None => Ok(()),
            },
        })
        .collect()
}

/// Re-opens the key sources created through the admin API (from HSM connections): their
/// records carry the plugin configuration. Sources declared in the config file win a
/// name clash. Failures are recorded like those of declared sources.
pub fn open_stored_sources(
    cfg: &Config,
    store: &Arc<dyn Store>,
    sources: &mut Sources,
    failed: &mut Vec<(String, String)>,
) -> Result<(), crate::store::StoreError> {
    let settings = plugin_settings(cfg);
    for entry in store.scan(crate::model::keys::SOURCES)? {
        let Ok(rec) = serde_json::from_slice::<crate::model::SourceRecord>(&entry.value) else {
            tracing::error!(key = %entry.key, "skipping unreadable key source record");
            continue;
        };
        let Some(recorded) = &rec.config else {
            continue;
        };
        if cfg.sources.contains_key(&rec.name) {
            continue;
        }
        // Opened as its HSM connection is now (changed since the source was created or
        // last reopened, e.g. a new PIN reference), else as recorded.
        let current = rec
            .hsm_connection
            .as_deref()
            .and_then(|c| {
                store
                    .get(&crate::model::keys::hsm_connection(c))
                    .ok()
                    .flatten()
            })
            .and_then(|e| {
                serde_json::from_slice::<crate::model::HsmConnectionRecord>(&e.value).ok()
            })
            .map(|c| c.luna_config());
        let config = current.as_ref().unwrap_or(recorded);
        match crate::ops::open_stored_source(&settings, store, &rec.name, &rec.plugin, config) {
            Ok(handle) => sources.insert(&rec.name, handle),
            Err(reason) => {
                tracing::error!(source = %rec.name, "key source unavailable: {reason}");
                sources.insert_failed(&rec.name, reason.clone());
                failed.push((rec.name.clone(), reason));
            }
        }
    }
    Ok(())
}

pub(super) fn plugin_settings(cfg: &Config) -> crate::ops::PluginSettings {
    crate::ops::PluginSettings {
        declared: cfg
            .sources
            .iter()
            .map(|(name, decl)| {
                let declared = crate::ops::DeclaredSource {
                    plugin: decl.plugin.clone(),
                    library: cfg.library_path(decl),
                    config: decl.config.clone(),
                    inline_calls: decl.inline_calls,
                };
                (name.clone(), declared)
            })
            .collect(),
        dir: cfg.plugin_dir(),
        limits: CallLimits {
            concurrency: cfg.xks.plugin_concurrency,
            queue_timeout: Duration::from_millis(cfg.xks.queue_timeout_ms),
            call_timeout: Duration::from_millis(cfg.xks.plugin_timeout_ms),
        },
    }
}

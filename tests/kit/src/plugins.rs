//! A plugin library loaded the way the host loads it ([`keyhold_sdk::library::load`]:
//! abi_stable's library header, the SDK version and ABI checked), and key sources opened
//! from it.

use std::{
    collections::HashMap,
    sync::{Mutex, OnceLock},
};

use keyhold_sdk::{KeySourceBox, KeySourceError, PluginModRef, testing::MemoryHost};

use crate::paths;

/// The root module of plugin `name` (found by [`paths::plugin_library`]), loaded once
/// per process by the host's loader. Panics when it does not load.
pub fn module(name: &str) -> PluginModRef {
    static LOADED: OnceLock<Mutex<HashMap<String, PluginModRef>>> = OnceLock::new();
    let mut loaded = LOADED
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    *loaded.entry(name.to_string()).or_insert_with(|| {
        let path = paths::plugin_library(name).unwrap_or_else(|e| panic!("{e}"));
        keyhold_sdk::library::load(&path)
            .unwrap_or_else(|e| panic!("{e}"))
            .module
    })
}

/// Opens a key source of plugin `name` with `config` (JSON text) on `host`.
pub fn open(name: &str, config: &str, host: &MemoryHost) -> Result<KeySourceBox, KeySourceError> {
    (module(name).open())(config.into(), host.boxed()).into_result()
}

//! A plugin library loaded the way the host loads it (abi_stable's library header, the
//! root module checked), and key sources opened from it.

use std::{
    collections::HashMap,
    sync::{Mutex, OnceLock},
};

use keyhold_sdk::{KeySourceBox, KeySourceError, PluginModRef, testing::MemoryHost};

use crate::paths;

/// The root module of plugin `name` (found by [`paths::plugin_library`]), loaded once
/// per process through the low-level header API (`RootModule::load_from_file` keeps one
/// library per module type, whatever the path). Panics when it does not load.
pub fn module(name: &str) -> PluginModRef {
    static LOADED: OnceLock<Mutex<HashMap<String, PluginModRef>>> = OnceLock::new();
    let mut loaded = LOADED
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    *loaded.entry(name.to_string()).or_insert_with(|| {
        let path = paths::plugin_library(name).unwrap_or_else(|e| panic!("{e}"));
        abi_stable::library::lib_header_from_path(&path)
            .unwrap_or_else(|e| panic!("cannot load {}: {e}", path.display()))
            .init_root_module::<PluginModRef>()
            .unwrap_or_else(|e| panic!("{} is not a keyhold plugin: {e}", path.display()))
    })
}

/// Opens a key source of plugin `name` with `config` (JSON text) on `host`.
pub fn open(name: &str, config: &str, host: &MemoryHost) -> Result<KeySourceBox, KeySourceError> {
    (module(name).open())(config.into(), host.boxed()).into_result()
}

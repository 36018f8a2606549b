//! Key-source plugins: finding and loading their libraries, checking their ABI, and
//! opening one key source per configured source.
//!
//! A library is loaded through `abi_stable`'s header API (never
//! `RootModule::load_from_file`, which caches one library per module type), checked for
//! layout compatibility and for [`keyhold_sdk::ABI_VERSION`], and never unloaded.

mod host;
mod source;

pub use host::StoreHost;
pub use source::{CallLimits, KeySourceHandle, PluginCallError};

use std::path::{Path, PathBuf};

use abi_stable::library::{LibraryError, lib_header_from_path};
use keyhold_sdk::{ABI_VERSION, PluginModRef};

/// Why a plugin library or key source was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PluginError {
    /// The file does not exist.
    #[error("plugin library {path}: no such file")]
    Missing {
        /// The library path.
        path: PathBuf,
    },
    /// The file is not a loadable keyhold plugin, or is incompatible.
    #[error("plugin library {path} refused: {reason}")]
    Refused {
        /// The library path.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The plugin's `open` refused the key source's configuration or could not connect.
    #[error("key source '{source_name}' (plugin library {path}) did not open: {reason}")]
    Open {
        /// The key source name.
        source_name: String,
        /// The library path.
        path: PathBuf,
        /// The plugin's error.
        reason: keyhold_sdk::KeySourceError,
    },
}

/// A loaded, compatible plugin library.
#[derive(Clone)]
pub struct LoadedPlugin {
    /// Where it was loaded from.
    pub path: PathBuf,
    /// The plugin's own name.
    pub name: String,
    /// Vendor.
    pub vendor: String,
    /// Model.
    pub model: String,
    module: PluginModRef,
}

impl std::fmt::Debug for LoadedPlugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadedPlugin")
            .field("path", &self.path)
            .field("name", &self.name)
            .finish()
    }
}

fn describe(err: &LibraryError) -> String {
    match err {
        LibraryError::OpenError { err, .. } => {
            format!("cannot be loaded as a shared library: {err}")
        }
        LibraryError::GetSymbolError { .. } => {
            "not a keyhold plugin: it exports no keyhold root module".to_string()
        }
        LibraryError::InvalidAbiHeader(_) => {
            "built with an incompatible version of abi_stable".to_string()
        }
        LibraryError::IncompatibleVersionNumber {
            expected_version,
            actual_version,
            ..
        } => format!(
            "built against keyhold-sdk {actual_version}, which is incompatible with this host's {expected_version}"
        ),
        LibraryError::AbiInstability(details) => {
            format!(
                "its plugin interface does not match this host's (layout check failed): {details}"
            )
        }
        other => other.to_string(),
    }
}

/// Loads and checks a plugin library.
pub fn load(path: &Path) -> Result<LoadedPlugin, PluginError> {
    if !path.is_file() {
        return Err(PluginError::Missing {
            path: path.to_path_buf(),
        });
    }
    let refused = |reason: String| PluginError::Refused {
        path: path.to_path_buf(),
        reason,
    };
    let header = lib_header_from_path(path).map_err(|e| refused(describe(&e)))?;
    let module = header
        .init_root_module::<PluginModRef>()
        .map_err(|e| refused(describe(&e)))?;
    let version = module.abi_version();
    if version != ABI_VERSION {
        return Err(refused(format!(
            "it declares keyhold plugin ABI version {version}; this keyhold supports version {ABI_VERSION}"
        )));
    }
    Ok(LoadedPlugin {
        path: path.to_path_buf(),
        name: module.name()().into_string(),
        vendor: module.vendor()().into_string(),
        model: module.model()().into_string(),
        module,
    })
}

impl LoadedPlugin {
    /// Opens one key source from this library.
    pub fn open(
        &self,
        source_name: &str,
        config: &serde_json::Value,
        host: keyhold_sdk::HostBox,
    ) -> Result<keyhold_sdk::KeySourceBox, PluginError> {
        let text = config.to_string();
        self.module.open()(text.as_str().into(), host)
            .into_result()
            .map_err(|reason| PluginError::Open {
                source_name: source_name.to_string(),
                path: self.path.clone(),
                reason,
            })
    }
}

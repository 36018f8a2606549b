//! Key-source plugins: finding and loading their libraries, checking their ABI, and
//! opening one key source per configured source.
//!
//! A library is loaded through [`keyhold_sdk::library::load`] (`abi_stable`'s header API,
//! never `RootModule::load_from_file`, which caches one library per module type), the
//! loader the conformance kit and `keyhold plugin-check` use too; it checks the SDK
//! version, the layout of every boundary type and [`keyhold_sdk::ABI_VERSION`], and never
//! unloads a library.

mod host;
mod source;

pub use host::StoreHost;
pub use source::{
    AUTO_FAST_LIMIT, AUTO_WARMUP, CallLimits, InlineCalls, KeySourceHandle, PluginCallError,
};

use std::path::{Path, PathBuf};

use keyhold_sdk::{
    PluginModRef,
    library::{self, LoadError},
};

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
    /// The keyhold-sdk version the plugin was built against (from the library's header).
    pub sdk_version: String,
    /// The plugin ABI version its root module declares ([`keyhold_sdk::ABI_VERSION`] of
    /// the SDK it was built against).
    pub abi_version: u32,
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

/// Loads and checks a plugin library ([`keyhold_sdk::library::load`]: the SDK version,
/// `abi_stable`'s version and layout checks, [`keyhold_sdk::ABI_VERSION`]). A refusal
/// is one line naming its cause; `abi_stable`'s layout report, when there is one, is
/// logged at debug level.
pub fn load(path: &Path) -> Result<LoadedPlugin, PluginError> {
    let loaded = library::load(path).map_err(|e| match e {
        LoadError::Missing { path } => PluginError::Missing { path },
        LoadError::Refused {
            path,
            reason,
            detail,
        } => {
            if let Some(detail) = detail {
                tracing::debug!(library = %path.display(), "abi_stable layout report:\n{detail}");
            }
            PluginError::Refused { path, reason }
        }
        other => PluginError::Refused {
            path: path.to_path_buf(),
            reason: other.to_string(),
        },
    })?;
    let module = loaded.module;
    Ok(LoadedPlugin {
        path: path.to_path_buf(),
        name: module.name()().into_string(),
        vendor: module.vendor()().into_string(),
        model: module.model()().into_string(),
        sdk_version: loaded.sdk_version.to_string(),
        abi_version: module.abi_version(),
        module,
    })
}

/// The plugin's own version: the last word of the model it reports when that word is
/// a version (`keyhold ctm software keystore 0.1.0` -> `0.1.0`), as the SDK asks a
/// plugin's model to end (`Plugin::MODEL`, "model and version"). The plugin interface
/// has no separate version field (adding one would change the 1.x ABI), so `None`
/// when the model ends otherwise.
pub fn version_in_model(model: &str) -> Option<String> {
    let word = model.split_whitespace().last()?;
    let unprefixed = word.strip_prefix(['v', 'V']).unwrap_or(word);
    let core = unprefixed.split(['-', '+']).next()?;
    let parts: Vec<&str> = core.split('.').collect();
    let numeric = (2..=4).contains(&parts.len())
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
    let printable = word.len() <= 64
        && word
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b".-+".contains(&b));
    (numeric && printable).then(|| word.to_string())
}

impl LoadedPlugin {
    /// The plugin's own version, read from its model ([`version_in_model`]).
    pub fn version(&self) -> Option<String> {
        version_in_model(&self.model)
    }

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

#[cfg(test)]
mod tests;

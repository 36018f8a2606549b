//! Loading a plugin library exactly as the keyhold host does, with its checks in order
//! (see the crate documentation, "Versions and compatibility"). The host, the
//! conformance kit ([`crate::conformance::run_library`]) and `keyhold plugin-check` all
//! load through [`load`].
//!
//! It uses `abi_stable`'s header API (`lib_header_from_path`), never
//! `RootModule::load_from_file`, which keeps the first module loaded in the process and
//! silently returns it for every later path. A loaded library is never unloaded.

use std::{
    fmt,
    path::{Path, PathBuf},
};

use abi_stable::{
    library::{LibraryError, lib_header_from_path},
    sabi_types::{VersionNumber, VersionStrings},
};

use crate::{ABI_VERSION, PluginModRef, SDK_VERSION};

/// Why a library was not loaded.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum LoadError {
    /// The file does not exist.
    Missing {
        /// The library path.
        path: PathBuf,
    },
    /// The file is not a loadable keyhold plugin, or is incompatible.
    Refused {
        /// The library path.
        path: PathBuf,
        /// The cause, in one line (e.g. the two SDK versions).
        reason: String,
        /// `abi_stable`'s full report when its layout check failed (many lines): for
        /// debug logs, never in place of `reason`.
        detail: Option<String>,
    },
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LoadError::Missing { path } => {
                write!(f, "plugin library {}: no such file", path.display())
            }
            LoadError::Refused { path, reason, .. } => {
                write!(f, "plugin library {} refused: {reason}", path.display())
            }
        }
    }
}

impl std::error::Error for LoadError {}

/// A loaded, compatible plugin library.
#[derive(Clone, Copy)]
pub struct Loaded {
    /// The root module.
    pub module: PluginModRef,
    /// The keyhold-sdk version the library was built against.
    pub sdk_version: VersionStrings,
}

impl fmt::Debug for Loaded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Loaded")
            .field("sdk_version", &self.sdk_version.to_string())
            .finish_non_exhaustive()
    }
}

/// The SDK versions a host built with SDK `host` loads: `1.x` for a `1.y.z` host,
/// `0.2.x` for a `0.2.z` one.
pub fn compatible_range(host: VersionNumber) -> String {
    if host.major == 0 {
        format!("0.{}.x", host.minor)
    } else {
        format!("{}.x", host.major)
    }
}

/// Whether a host built with SDK `host` loads a library built with SDK `library`, as far
/// as versions go: the same major version, and for `0.y` the same minor version
/// (`abi_stable`'s version and layout checks together).
pub fn versions_compatible(host: VersionNumber, library: VersionNumber) -> bool {
    host.major == library.major && (host.major != 0 || host.minor == library.minor)
}

fn this_sdk() -> VersionNumber {
    VersionNumber::new(VersionStrings::new(SDK_VERSION)).unwrap_or(VersionNumber {
        major: u32::MAX,
        minor: 0,
        patch: 0,
    })
}

/// The one-line reason for an SDK version this host does not load, if any.
fn version_refusal(file: &str, theirs: VersionStrings) -> Option<String> {
    let ours = this_sdk();
    match VersionNumber::new(theirs) {
        Ok(v) if versions_compatible(ours, v) => None,
        Ok(v) => Some(format!(
            "plugin {file} was built against keyhold-sdk {v}; this server provides \
             keyhold-sdk {SDK_VERSION} (compatible: {})",
            compatible_range(ours)
        )),
        Err(e) => Some(format!(
            "plugin {file} declares an unreadable keyhold-sdk version '{theirs}': {e}"
        )),
    }
}

/// The one-line reason for an `abi_stable` error, and its long report if it has one.
fn describe(err: &LibraryError, theirs: Option<VersionStrings>) -> (String, Option<String>) {
    let reason = match err {
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
            "built against keyhold-sdk {actual_version}, which is incompatible with this \
             host's {expected_version} (compatible: {})",
            compatible_range(*expected_version)
        ),
        LibraryError::AbiInstability(details) => {
            let theirs = theirs.map_or_else(|| "an unknown version".into(), |v| v.to_string());
            let reason = format!(
                "its plugin interface does not match this server's keyhold-sdk {SDK_VERSION} \
                 although it was built against keyhold-sdk {theirs}: a type crossing the \
                 boundary differs (abi_stable's layout check failed; its report is logged at \
                 debug level)"
            );
            return (reason, Some(details.to_string()));
        }
        other => other.to_string(),
    };
    (reason, None)
}

/// Loads a plugin library and checks it: the SDK version, then `abi_stable`'s version
/// and layout checks, then [`ABI_VERSION`]. Refusals name their cause in one line.
pub fn load(path: &Path) -> Result<Loaded, LoadError> {
    if !path.is_file() {
        return Err(LoadError::Missing {
            path: path.to_path_buf(),
        });
    }
    let refused = |(reason, detail): (String, Option<String>)| LoadError::Refused {
        path: path.to_path_buf(),
        reason,
        detail,
    };
    let header = lib_header_from_path(path).map_err(|e| refused(describe(&e, None)))?;
    let theirs = header.version_strings();
    let file = path.file_name().map_or_else(
        || path.display().to_string(),
        |f| f.to_string_lossy().into(),
    );
    if let Some(reason) = version_refusal(&file, theirs) {
        return Err(refused((reason, None)));
    }
    let module = header
        .init_root_module::<PluginModRef>()
        .map_err(|e| refused(describe(&e, Some(theirs))))?;
    let version = module.abi_version();
    if version != ABI_VERSION {
        return Err(refused((
            format!(
                "it declares keyhold plugin ABI version {version}; this keyhold supports \
                 version {ABI_VERSION}"
            ),
            None,
        )));
    }
    Ok(Loaded {
        module,
        sdk_version: theirs,
    })
}

#[cfg(test)]
mod tests;

//! Loads the built `libplugin_ctm.so` the way the host does, and opens key sources
//! from it.
#![allow(dead_code)] // each test binary uses a different subset

use std::{
    path::{Path, PathBuf},
    sync::OnceLock,
};

use base64::Engine as _;
use keyhold_sdk::{ABI_VERSION, KeySourceBox, KeySourceError, PluginModRef, testing::MemoryHost};

const LIB: &str = "libplugin_ctm.so";

/// Where the cdylib is: `$CARGO_TARGET_DIR/debug`, the directory above this test
/// binary (`target/<profile>/deps/..`), or `<workspace>/target/debug`.
pub fn plugin_path() -> PathBuf {
    let mut candidates = Vec::new();
    if let Some(dir) = std::env::var_os("CARGO_TARGET_DIR") {
        let dir = PathBuf::from(dir);
        let dir = if dir.is_relative() {
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../..")
                .join(dir)
        } else {
            dir
        };
        candidates.push(dir.join("debug").join(LIB));
    }
    if let Some(profile_dir) = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent()?.parent().map(Path::to_path_buf))
    {
        candidates.push(profile_dir.join(LIB));
    }
    candidates.push(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../target/debug")
            .join(LIB),
    );
    candidates
        .iter()
        .find(|p| p.is_file())
        .cloned()
        .unwrap_or_else(|| {
            panic!(
                "{LIB} not found (looked at {candidates:?}); build it with \
                 `cargo build -p plugin-ctm` (cargo test -p plugin-ctm builds it too)"
            )
        })
}

/// The plugin's root module, loaded once per test binary through the low-level header
/// API (`RootModule::load_from_file` caches one library per module type).
pub fn module() -> PluginModRef {
    static MODULE: OnceLock<PluginModRef> = OnceLock::new();
    *MODULE.get_or_init(|| {
        let path = plugin_path();
        let header = abi_stable::library::lib_header_from_path(&path)
            .unwrap_or_else(|e| panic!("cannot load {}: {e}", path.display()));
        let module = header
            .init_root_module::<PluginModRef>()
            .unwrap_or_else(|e| panic!("{} is not a keyhold plugin: {e}", path.display()));
        assert_eq!(module.abi_version(), ABI_VERSION, "plugin ABI version");
        assert_eq!((module.name())().as_str(), "ctm");
        module
    })
}

/// Opens a key source from the loaded library.
pub fn open(config: &str, host: &MemoryHost) -> Result<KeySourceBox, KeySourceError> {
    (module().open())(config.into(), host.boxed()).into_result()
}

/// A temporary directory holding a master key file (base64 text), and the
/// configuration that points at it.
pub struct KeyFile {
    pub dir: tempfile::TempDir,
    pub path: PathBuf,
    pub config: String,
}

pub fn key_file(key: &[u8; 32]) -> KeyFile {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("master.key");
    std::fs::write(
        &path,
        base64::engine::general_purpose::STANDARD.encode(key) + "\n",
    )
    .unwrap();
    let config = serde_json::json!({ "master_key_file": path }).to_string();
    KeyFile { dir, path, config }
}

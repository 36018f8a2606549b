//! Shared helpers of the ctm tests: key sources opened from the built
//! `libplugin_ctm.so` the way the host loads it (through the test kit), and master key
//! files.
#![allow(dead_code)] // each test binary uses a different subset

use std::path::PathBuf;

use base64::Engine as _;
use keyhold_sdk::{ABI_VERSION, KeySourceBox, KeySourceError, testing::MemoryHost};
use keyhold_testkit::plugins;

/// Opens a key source from the loaded library (checking its ABI version and name).
pub fn open(config: &str, host: &MemoryHost) -> Result<KeySourceBox, KeySourceError> {
    let module = plugins::module("ctm");
    assert_eq!(module.abi_version(), ABI_VERSION, "plugin ABI version");
    assert_eq!((module.name())().as_str(), "ctm");
    plugins::open("ctm", config, host)
}

/// A temporary directory holding a master key file (base64 text), and the
/// configuration that points at it.
pub struct KeyFile {
    /// The directory (removed when dropped).
    pub dir: tempfile::TempDir,
    /// The master key file.
    pub path: PathBuf,
    /// `{"master_key_file": path}`.
    pub config: String,
}

/// Writes `key` as a master key file in a fresh temporary directory.
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

/// A fresh host, a master key file of `key`, and a key source opened from the loaded
/// library with them.
pub fn opened(key: &[u8; 32]) -> (MemoryHost, KeyFile, KeySourceBox) {
    let host = MemoryHost::new();
    let kf = key_file(key);
    let source = open(&kf.config, &host).unwrap();
    (host, kf, source)
}

//! Where the build put the `keyhold` binary and the plugin libraries.

use std::path::{Path, PathBuf};

/// The workspace root (the parent of this crate's directory).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// `$CARGO_TARGET_DIR/debug`, or `<workspace>/target/debug`.
pub fn target_debug_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => {
            let dir = PathBuf::from(dir);
            let dir = if dir.is_relative() {
                workspace_root().join(dir)
            } else {
                dir
            };
            dir.join("debug")
        }
        None => workspace_root().join("target").join("debug"),
    }
}

/// The directory holding `libplugin_ctm.so`; panics with the command to run when the
/// plugin was not built.
pub fn plugin_dir() -> PathBuf {
    let dir = target_debug_dir();
    let ctm = dir.join("libplugin_ctm.so");
    assert!(
        ctm.is_file(),
        "{} is missing: run `cargo build -p plugin-ctm -p plugin-luna -p plugin-slow -p plugin-bad-abi -p not-a-plugin` first",
        ctm.display()
    );
    dir
}

/// A fixture library (`libplugin_bad_abi.so`, `libnot_a_plugin.so`, ...) of the build.
pub fn library(file: &str) -> PathBuf {
    let path = target_debug_dir().join(file);
    assert!(
        path.is_file(),
        "{} is missing: run `cargo build -p plugin-ctm -p plugin-luna -p plugin-slow -p plugin-bad-abi -p not-a-plugin` first",
        path.display()
    );
    path
}

/// The `keyhold` executable of the build (next to the plugins).
pub fn keyhold_bin() -> PathBuf {
    let path = target_debug_dir().join("keyhold");
    assert!(
        path.is_file(),
        "{} is missing: run `cargo build -p keyhold` first",
        path.display()
    );
    path
}

/// A string quoted for TOML (JSON string syntax is a subset of TOML basic strings).
pub fn toml_str(s: impl AsRef<str>) -> String {
    serde_json::to_string(s.as_ref()).expect("string serializes")
}

/// A free local TCP port (bound, then released).
pub fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

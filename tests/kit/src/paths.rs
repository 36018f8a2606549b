//! Where the build put the `keyhold` binary and the plugin libraries, and two small
//! configuration helpers (TOML strings, free ports).
//!
//! A plugin of name `<name>` is the library `libplugin_<name>.so` (dashes become
//! underscores, as cargo names the cdylib of crate `plugin-<name>`).

use std::{
    path::{Path, PathBuf},
    time::SystemTime,
};

/// What to build when a library or the binary is missing.
const BUILD_HINT: &str = "run `cargo build -p plugin-ctm -p plugin-luna -p plugin-template -p plugin-slow -p plugin-bad-abi -p not-a-plugin` first";

/// The workspace root (two levels above this crate's directory, `tests/kit`).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .expect("tests/kit lies two levels below the workspace root")
        .to_path_buf()
}

/// `$CARGO_TARGET_DIR` (relative to the workspace root when relative), or
/// `<workspace>/target`.
pub fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => workspace_root().join(dir),
        None => workspace_root().join("target"),
    }
}

/// `<target>/debug`, where `cargo build` puts the binary and the plugins.
pub fn target_debug_dir() -> PathBuf {
    target_dir().join("debug")
}

/// The directory holding `libplugin_ctm.so` (and the other plugins of the debug
/// build); panics with the command to run when the plugin was not built.
pub fn plugin_dir() -> PathBuf {
    library(&plugin_file("ctm"))
        .parent()
        .expect("a library has a directory")
        .to_path_buf()
}

/// A library file (`libplugin_bad_abi.so`, `libnot_a_plugin.so`, ...) of the debug
/// build; panics with the command to run when it was not built.
pub fn library(file: &str) -> PathBuf {
    let path = target_debug_dir().join(file);
    assert!(
        path.is_file(),
        "{} is missing: {BUILD_HINT}",
        path.display()
    );
    path
}

/// The `keyhold` executable of the debug build (next to the plugins).
pub fn keyhold_bin() -> PathBuf {
    let path = target_debug_dir().join("keyhold");
    assert!(
        path.is_file(),
        "{} is missing: run `cargo build -p keyhold` first",
        path.display()
    );
    path
}

/// The file name of plugin `name`'s library: `libplugin_<name>.so`.
pub fn plugin_file(name: &str) -> String {
    format!("libplugin_{}.so", name.replace('-', "_"))
}

/// Finds plugin `name`'s library for the profile the running executable was built
/// with: in `$BENCH_PLUGIN_DIR` when set; otherwise the newer of the copies next to the
/// executable and in its parent directory (a test or bench binary lives in
/// `target/<profile>/deps/`, where cargo builds the cdylibs of its dependencies, while
/// `cargo build` copies them up to `target/<profile>/`); otherwise the newer of
/// `<target>/debug/` and `<target>/debug/deps/`. The newer copy wins so that a test
/// never loads a stale build.
pub fn plugin_library(name: &str) -> Result<PathBuf, String> {
    let file = plugin_file(name);
    if let Some(dir) = std::env::var_os("BENCH_PLUGIN_DIR") {
        let path = PathBuf::from(dir).join(&file);
        return if path.is_file() {
            Ok(path)
        } else {
            Err(format!("{} not found (BENCH_PLUGIN_DIR)", path.display()))
        };
    }
    let mut groups: Vec<Vec<PathBuf>> = Vec::new();
    if let Some(dir) = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(Path::to_path_buf))
    {
        groups.push(dir.ancestors().take(2).map(|d| d.join(&file)).collect());
    }
    let debug = target_debug_dir();
    groups.push(vec![debug.join(&file), debug.join("deps").join(&file)]);
    groups
        .iter()
        .find_map(|group| newest(group))
        .ok_or_else(|| {
            format!(
                "{file} not found in {groups:?}; build it first: `cargo build [--release] -p plugin-{name}` \
                 (or set BENCH_PLUGIN_DIR)"
            )
        })
}

/// The most recently modified of the existing files among `paths`.
fn newest(paths: &[PathBuf]) -> Option<PathBuf> {
    let modified =
        |p: &PathBuf| -> Option<SystemTime> { std::fs::metadata(p).ok()?.modified().ok() };
    paths
        .iter()
        .filter(|p| p.is_file())
        .max_by_key(|p| modified(p))
        .cloned()
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

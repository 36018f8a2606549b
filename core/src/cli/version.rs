//! `keyhold --version`: the server's version, the git commit it was built from (see
//! `core/build.rs`) and the plugin interface it loads (the keyhold-sdk ABI version and
//! the SDK version the server is built with; `keyhold source list` shows what each
//! loaded plugin was built against).

use std::sync::LazyLock;

/// The git commit of the build: 12 hex digits, `-dirty` when tracked files differed
/// from it, `unknown` outside git, or what `KEYHOLD_GIT_COMMIT` said at build time.
pub const GIT_COMMIT: &str = env!("KEYHOLD_GIT_COMMIT");

/// The version line after the program name.
pub fn line() -> &'static str {
    static LINE: LazyLock<String> = LazyLock::new(|| {
        format_line(
            env!("CARGO_PKG_VERSION"),
            GIT_COMMIT,
            keyhold_sdk::ABI_VERSION,
            keyhold_sdk::SDK_VERSION,
        )
    });
    LINE.as_str()
}

/// `0.1.0 (commit 745daeb1234a, plugin ABI 1, keyhold-sdk 1.1.0)`.
pub fn format_line(version: &str, commit: &str, abi: u32, sdk: &str) -> String {
    format!("{version} (commit {commit}, plugin ABI {abi}, keyhold-sdk {sdk})")
}

#[cfg(test)]
mod tests;

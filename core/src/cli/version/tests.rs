use super::*;

#[test]
fn the_line_names_version_commit_and_plugin_interface() {
    assert_eq!(
        format_line("0.1.0", "745daeb1234a-dirty", 1, "1.1.0"),
        "0.1.0 (commit 745daeb1234a-dirty, plugin ABI 1, keyhold-sdk 1.1.0)"
    );
    let line = line();
    assert!(
        line.starts_with(concat!(env!("CARGO_PKG_VERSION"), " (commit ")),
        "{line}"
    );
    assert!(
        line.contains(&format!("plugin ABI {}", keyhold_sdk::ABI_VERSION)),
        "{line}"
    );
}

#[test]
fn the_commit_is_a_short_hash_or_unknown() {
    let hash = GIT_COMMIT.strip_suffix("-dirty").unwrap_or(GIT_COMMIT);
    let short_hash = hash.len() == 12 && hash.bytes().all(|b| b.is_ascii_hexdigit());
    // KEYHOLD_GIT_COMMIT may say anything printable (a release tag, a full hash).
    let overridden = env!("KEYHOLD_GIT_COMMIT_FROM") == "env";
    assert!(
        short_hash || GIT_COMMIT == "unknown" || overridden,
        "{GIT_COMMIT}"
    );
}

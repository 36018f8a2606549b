//! Plugins as a third party builds them: the template plugin serving a key store, a
//! plugin built against an earlier SDK release (and incompatible builds refused in one
//! line), `keyhold plugin-check` and `keyhold check-config`.

use std::{
    path::{Path, PathBuf},
    process::Command,
    sync::Arc,
};

use keyhold::{
    plugin::{self, PluginError, StoreHost},
    store::{MemoryStore, Store},
};
use keyhold_sdk::{KeySourceError, SDK_VERSION, conformance};
use keyhold_tests::{SourceFixture, TestServer, fixture::KEY_ALL, paths};

/// The fixture workspace holding a plugin built against the frozen keyhold-sdk 1.0.0.
fn sdk_1_0_fixture() -> PathBuf {
    paths::workspace_root().join("tests/fixtures/sdk-1.0")
}

/// Builds the fixture workspace at `dir` (outside the keyhold workspace: it has its own
/// keyhold-sdk package) into this build's target directory; returns `lib<name>.so`.
fn build_fixture(dir: &Path, lib: &str) -> PathBuf {
    let target_dir = paths::target_debug_dir()
        .parent()
        .expect("the debug directory has a parent")
        .to_path_buf();
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let out = Command::new(cargo)
        .args(["build", "--offline", "--quiet", "--manifest-path"])
        .arg(dir.join("Cargo.toml"))
        .env("CARGO_TARGET_DIR", &target_dir)
        .output()
        .expect("run cargo");
    assert!(
        out.status.success(),
        "building {} failed:\n{}",
        dir.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    paths::target_debug_dir().join(lib)
}

/// A copy of the SDK 1.0 fixture whose plugin package is `plugin-<name>`, with
/// `(file, from, to)` replacements applied: a plugin built against another SDK.
fn fixture_variant(name: &str, edits: &[(&str, &str, &str)]) -> (tempfile::TempDir, PathBuf) {
    let copy = tempfile::tempdir().expect("tempdir");
    let from = sdk_1_0_fixture();
    for file in [
        "Cargo.toml",
        "Cargo.lock",
        "vendor/keyhold-sdk/Cargo.toml",
        "vendor/keyhold-sdk/src/lib.rs",
        "plugin/Cargo.toml",
        "plugin/src/lib.rs",
    ] {
        let mut text = std::fs::read_to_string(from.join(file)).expect("read fixture");
        // Another package name for the plugin, another directory for the SDK copy: cargo
        // names a path package's artifacts after its path relative to the workspace
        // root, so builds of the fixture and of its variants must not share one.
        text = text
            .replace("plugin-sdk-1-0", &format!("plugin-{name}"))
            .replace(
                "\"vendor/keyhold-sdk\", \"plugin\"",
                &format!("\"vendor/sdk-{name}\", \"plugin\""),
            )
            .replace("\"../vendor/keyhold-sdk\"", &format!("\"../vendor/sdk-{name}\""));
        for (target, old, new) in edits {
            if *target == file {
                assert!(text.contains(old), "{file} has no {old:?}");
                text = text.replace(old, new);
            }
        }
        let to = copy
            .path()
            .join(file.replace("vendor/keyhold-sdk/", &format!("vendor/sdk-{name}/")));
        std::fs::create_dir_all(to.parent().expect("a parent")).expect("mkdir");
        std::fs::write(to, text).expect("write fixture copy");
    }
    let lib = build_fixture(
        copy.path(),
        &format!("libplugin_{}.so", name.replace('-', "_")),
    );
    (copy, lib)
}

fn refusal(path: &Path) -> String {
    match plugin::load(path) {
        Err(PluginError::Refused { reason, .. }) => reason,
        other => panic!("expected a refusal of {}, got {other:?}", path.display()),
    }
}

#[test]
fn a_plugin_built_against_sdk_1_0_loads_and_uses_the_host() {
    let lib = build_fixture(&sdk_1_0_fixture(), "libplugin_sdk_1_0.so");
    let loaded = plugin::load(&lib).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(loaded.sdk_version, "1.0.0");
    assert_ne!(
        SDK_VERSION, "1.0.0",
        "the fixture must stand for an earlier release"
    );
    assert_eq!(loaded.name, "sdk-1.0");
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let host = StoreHost::new(store.clone(), "old").boxed();
    let source = loaded
        .open("old", &serde_json::json!({}), host)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(source.info().vendor.as_str(), "fixture");
    assert!(matches!(
        source.get_key("k".into()).into_result(),
        Err(KeySourceError::NotFound { .. })
    ));
    // Its open wrote through the host's compare-and-swap, into its own namespace.
    let entries = store.scan("").expect("scan");
    assert!(
        entries
            .iter()
            .any(|e| e.key.ends_with("old/opened") && e.value == b"opened"),
        "{entries:?}"
    );
}

#[test]
fn plugins_built_against_an_incompatible_sdk_are_refused_in_one_line() {
    // Another major version: refused before abi_stable's layout check, naming both.
    let (_keep, v2) = fixture_variant(
        "sdk-v2",
        &[(
            "vendor/keyhold-sdk/Cargo.toml",
            "version = \"1.0.0\"",
            "version = \"2.0.0\"",
        )],
    );
    assert_eq!(
        refusal(&v2),
        format!(
            "plugin libplugin_sdk_v2.so was built against keyhold-sdk 2.0.0; this server \
             provides keyhold-sdk {SDK_VERSION} (compatible: 1.x)"
        )
    );

    // The same version with a changed boundary (a renamed Host method): abi_stable's
    // layout check refuses it; the reason is one line, the report stays out of it.
    let (_keep, changed) = fixture_variant(
        "sdk-changed",
        &[
            ("vendor/keyhold-sdk/src/lib.rs", "fn log(", "fn log_line("),
            ("plugin/src/lib.rs", "host.log(", "host.log_line("),
        ],
    );
    let reason = refusal(&changed);
    assert!(!reason.contains('\n'), "{reason}");
    assert!(
        reason.starts_with("its plugin interface does not match this server's keyhold-sdk")
            && reason.contains("built against keyhold-sdk 1.0.0"),
        "{reason}"
    );
    // The kit's `load` failure starts with the same line, then gives the report.
    let failure = conformance::run_library(&changed, "{}").unwrap_err();
    assert_eq!(failure.check, "load");
    let first = failure.detail.lines().next().unwrap_or_default();
    assert!(first.ends_with(&reason), "{first}");
    assert!(failure.detail.lines().count() > 1, "{}", failure.detail);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_template_plugin_serves_a_key_store() {
    let server = TestServer::builder()
        .source(SourceFixture::new("template", "plugin = \"template\"\n"))
        .start()
        .await;
    assert!(
        server.running.failed_sources.is_empty(),
        "{:?}",
        server.running.failed_sources
    );
    let c = server.client();
    let sealed = c
        .encrypt_ok(KEY_ALL, b"from the template", Some(b"aad"))
        .await;
    assert_eq!(
        c.decrypt_ok(KEY_ALL, &sealed, Some(b"aad")).await,
        b"from the template"
    );
    server.stop().await;
}

fn keyhold(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(paths::keyhold_bin())
        .args(args)
        .output()
        .expect("run keyhold");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn plugin_check_runs_the_conformance_kit_on_a_built_library() {
    let template = paths::library("libplugin_template.so");
    let template = template.to_str().expect("utf-8 path");
    let (code, out, err) = keyhold(&["plugin-check", "--library", template]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains(&format!(
            "all {} conformance checks passed",
            conformance::CHECKS.len()
        )),
        "{out}"
    );

    // The template refuses any configuration: `open` fails, every check is listed.
    let (code, out, _) = keyhold(&[
        "plugin-check",
        "--library",
        template,
        "--config",
        r#"{"x": 1}"#,
    ]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("failed: conformance check 'open' failed"),
        "{out}"
    );
    assert!(out.contains("not run: info, health, create_key"), "{out}");

    let bad = paths::library("libplugin_bad_abi.so");
    let (code, out, _) = keyhold(&["plugin-check", "--library", bad.to_str().expect("utf-8")]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("failed: conformance check 'load' failed") && out.contains("999"),
        "{out}"
    );

    let (code, _, err) = keyhold(&["plugin-check", "--library", template, "--config", "{"]);
    assert_eq!(code, 2, "{err}");
}

#[test]
fn check_config_opens_the_declared_sources() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("keyhold.toml");
    let write = |sources: &str| {
        std::fs::write(
            &file,
            format!(
                "data_dir = {}\n[plugins]\ndir = {}\n[xks]\nlisten = \"127.0.0.1:0\"\nplain_http = true\n{sources}",
                paths::toml_str(dir.path().join("data").to_string_lossy()),
                paths::toml_str(paths::plugin_dir().to_string_lossy()),
            ),
        )
        .expect("write config");
    };
    let file_arg = file.to_str().expect("utf-8 path");
    write("[sources.demo]\nplugin = \"template\"\n");
    let (code, out, err) = keyhold(&["check-config", "--config", file_arg]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("configuration is valid"), "{out}");
    assert!(out.contains("key source 'demo': ok"), "{out}");

    write(concat!(
        "[sources.demo]\nplugin = \"template\"\n",
        "[sources.configured]\nplugin = \"template\"\nconfig = { unexpected = 1 }\n",
        "[sources.absent]\nplugin = \"nowhere\"\n",
    ));
    let (code, out, err) = keyhold(&["check-config", "--config", file_arg]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(out.contains("key source 'demo': ok"), "{out}");
    assert!(
        out.contains("key source 'configured': failed:") && out.contains("takes no configuration"),
        "{out}"
    );
    assert!(
        out.contains("key source 'absent': failed:") && out.contains("no such file"),
        "{out}"
    );
    assert!(err.contains("2 of 3 key sources did not open"), "{err}");
}

//! Versions an operator can read: `keyhold --version` (the server's version, the git
//! commit it was built from, the plugin ABI and SDK it loads) and, per key source,
//! the versions its plugin library reports in `keyhold source list` (its own, the
//! keyhold-sdk it was built against, its plugin ABI).

use std::{path::Path, process::Command};

use keyhold_tests::{
    SourceFixture, TestServer,
    cli::KeyholdCli,
    paths::{keyhold_bin, workspace_root},
};

/// `git rev-parse --short=12 HEAD` of the workspace, when git can tell.
fn git_head() -> Option<String> {
    let out = Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .current_dir(workspace_root())
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

#[test]
fn version_names_the_commit_and_the_plugin_abi() {
    for flag in ["--version", "-V"] {
        let out = Command::new(keyhold_bin())
            .arg(flag)
            .output()
            .expect("run keyhold");
        assert!(out.status.success(), "{out:?}");
        let text = String::from_utf8(out.stdout).expect("UTF-8");
        let line = text.strip_suffix('\n').expect("one line");
        assert!(!line.contains('\n'), "{text}");
        let rest = line
            .strip_prefix(&format!("keyhold {} (commit ", env!("CARGO_PKG_VERSION")))
            .unwrap_or_else(|| panic!("{line}"));
        let (commit, rest) = rest.split_once(", ").unwrap_or_else(|| panic!("{line}"));
        assert_eq!(
            rest,
            format!(
                "plugin ABI {}, keyhold-sdk {})",
                keyhold_sdk::ABI_VERSION,
                keyhold_sdk::SDK_VERSION
            ),
            "{line}"
        );
        // Built in a git checkout: HEAD's short hash, `-dirty` when files differed.
        match git_head() {
            Some(head) => assert_eq!(
                commit.strip_suffix("-dirty").unwrap_or(commit),
                head,
                "{line} (an older build? `cargo build -p keyhold`)"
            ),
            None => assert!(!commit.is_empty(), "{line}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn source_list_shows_each_plugins_versions() {
    // ctm (its model ends with its version), the slow test plugin (a model without
    // one) and a source whose library is missing (failed: no versions).
    let server = TestServer::builder()
        .source(SourceFixture::ctm())
        .extra_source(SourceFixture::built_library("slow", "libplugin_slow.so"))
        .extra_source(SourceFixture::library(
            "gone",
            "ctm",
            Path::new("/nonexistent/libplugin_ctm.so"),
        ))
        .without_store()
        .admin()
        .start()
        .await;
    let cli = KeyholdCli::for_server(&server);
    cli.login("root", &server.root_password()).await;

    let json = cli.json(&["source", "list"]).await;
    let by_name = |name: &str| {
        json.as_array()
            .expect("array")
            .iter()
            .find(|s| s["name"] == name)
            .unwrap_or_else(|| panic!("{name} in {json}"))
            .clone()
    };
    let ctm = by_name("ctm");
    assert_eq!(ctm["plugin_version"], env!("CARGO_PKG_VERSION"), "{ctm}");
    assert_eq!(ctm["sdk_version"], keyhold_sdk::SDK_VERSION, "{ctm}");
    assert_eq!(ctm["abi_version"], keyhold_sdk::ABI_VERSION, "{ctm}");
    let slow = by_name("slow");
    assert_eq!(slow["status"], "opened", "{slow}");
    assert!(slow.get("plugin_version").is_none(), "{slow}");
    assert_eq!(slow["sdk_version"], keyhold_sdk::SDK_VERSION, "{slow}");
    let gone = by_name("gone");
    assert_eq!(gone["status"], "failed", "{gone}");
    for field in ["plugin_version", "sdk_version", "abi_version"] {
        assert!(gone.get(field).is_none(), "{field}: {gone}");
    }

    let table = cli.ok(&["source", "list"]).await;
    let mut lines = table.lines();
    let header: Vec<&str> = lines.next().expect("header").split_whitespace().collect();
    assert_eq!(
        header[..6],
        [
            "NAME",
            "PLUGIN",
            "PLUGIN_VERSION",
            "SDK_VERSION",
            "ABI_VERSION",
            "STATUS"
        ],
        "{table}"
    );
    let row = |name: &str| -> Vec<String> {
        table
            .lines()
            .find(|l| l.split_whitespace().next() == Some(name))
            .unwrap_or_else(|| panic!("{name} in {table}"))
            .split_whitespace()
            .take(6)
            .map(str::to_string)
            .collect()
    };
    let abi = keyhold_sdk::ABI_VERSION.to_string();
    assert_eq!(
        row("ctm"),
        [
            "ctm",
            "ctm",
            env!("CARGO_PKG_VERSION"),
            keyhold_sdk::SDK_VERSION,
            &abi,
            "opened"
        ],
        "{table}"
    );
    assert_eq!(
        row("slow"),
        [
            "slow",
            "slow",
            "-",
            keyhold_sdk::SDK_VERSION,
            &abi,
            "opened"
        ],
        "{table}"
    );
    assert_eq!(
        row("gone"),
        ["gone", "ctm", "-", "-", "-", "failed"],
        "{table}"
    );
    server.stop().await;
}

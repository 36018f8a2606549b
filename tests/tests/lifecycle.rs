//! Restarts, configuration reconciliation, the `keyhold` binary, and the plugin loader.

use std::{
    path::Path,
    process::{Command, Output, Stdio},
    time::Duration,
};

use keyhold::plugin::{self, PluginError};
use keyhold_tests::{
    RawRequest, SourceFixture, TestServer,
    client::Transport,
    fixture::{KEY_ALL, LB_HEALTH},
    paths,
};

#[tokio::test(flavor = "multi_thread")]
async fn ciphertexts_survive_a_restart() {
    let server = TestServer::start_default().await;
    let sealed = server
        .client()
        .encrypt_ok(KEY_ALL, b"durable", Some(b"aad"))
        .await;
    let builder = server.builder.clone();
    let dir = server.stop().await;

    let server = builder.clone().in_dir(dir).start().await;
    assert!(server.running.failed_sources.is_empty());
    let c = server.client();
    assert_eq!(
        c.decrypt_ok(KEY_ALL, &sealed, Some(b"aad")).await,
        b"durable"
    );
    // Credentials are still the declared ones (A and B).
    c.with_cred(keyhold_tests::Credential::b())
        .health()
        .await
        .ok_json();
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_wrong_source_master_key_fails_the_source_not_the_server() {
    let server = TestServer::start_default().await;
    let sealed = server
        .client()
        .encrypt_ok(KEY_ALL, b"only under the right key", None)
        .await;
    let dir = server.stop().await;

    // Same data directory, same source name, a different (freshly generated) master key.
    let server = TestServer::builder()
        .source(SourceFixture::ctm_named("ctm", "other-ctm.key"))
        .in_dir(dir)
        .start()
        .await;
    let failed = &server.running.failed_sources;
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert_eq!(failed[0].0, "ctm");
    println!("failed source: {}", failed[0].1);
    let c = server.client();
    c.assert_key_ops_fail(KEY_ALL, &sealed, 500, "InternalException")
        .await;
    let h = c.health().await.ok_json();
    let fleet = h["ekmFleetDetails"].as_array().expect("fleet");
    assert!(!fleet.is_empty());
    assert!(
        fleet.iter().all(|n| n["healthStatus"] == "UNAVAILABLE"),
        "{h}"
    );
    let lb = c.send(&RawRequest::new("GET", LB_HEALTH, "")).await;
    assert_eq!(lb.status.as_u16(), 503);
    assert_eq!(lb.json()["status"], "UNAVAILABLE");
    let dir = server.stop().await;

    // Back on the right key, everything decrypts again.
    let server = TestServer::builder().in_dir(dir).start().await;
    assert_eq!(
        server.client().decrypt_ok(KEY_ALL, &sealed, None).await,
        b"only under the right key"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_store_cannot_move_to_another_source() {
    let server = TestServer::start_default().await;
    let dir = server.stop().await;
    let refused = TestServer::builder()
        .extra_source(SourceFixture::ctm_named("ctm2", "ctm2.key"))
        .store_source("ctm2")
        .in_dir(dir.clone())
        .try_start()
        .await;
    let err = match refused {
        Ok(_) => panic!("keyhold started with the store moved to another source"),
        Err((e, _)) => e.to_string(),
    };
    assert!(err.contains("immutable"), "{err}");
    assert!(err.contains("acme") && err.contains("ctm2"), "{err}");
    // The original binding still starts.
    let server = TestServer::builder().in_dir(dir).start().await;
    server.client().health().await.ok_json();
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn keyhold_binary_refuses_an_invalid_config_naming_the_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    for sub in ["serve", "check-config"] {
        let out = keyhold_on_config(dir.path(), "listen = \"nope\"", sub);
        assert!(!out.status.success(), "{sub}: {out:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("listen"), "{sub}: {stderr}");
    }
    // A rule violation names its key too.
    let xks = "listen = \"127.0.0.1:0\"\nfleet_size = 0";
    let out = keyhold_on_config(dir.path(), xks, "check-config");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("xks.fleet_size"));
    // A missing file is named.
    let out = keyhold(&["serve", "--config"], &dir.path().join("absent.toml"));
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("absent.toml"));
}

/// Runs `keyhold <args> <file>` (without a listen override from the environment).
fn keyhold(args: &[&str], file: &Path) -> Output {
    Command::new(paths::keyhold_bin())
        .args(args)
        .arg(file)
        .env_remove("KEYHOLD_XKS__LISTEN")
        .output()
        .expect("run keyhold")
}

/// Writes `<dir>/bad.toml` (data under `<dir>/data`, plain HTTP, `[xks]` lines `xks`)
/// and runs `keyhold <sub> --config` on it.
fn keyhold_on_config(dir: &Path, xks: &str, sub: &str) -> Output {
    let file = dir.join("bad.toml");
    let data = paths::toml_str(dir.join("data").to_string_lossy());
    let text = format!("data_dir = {data}\n[xks]\n{xks}\nplain_http = true\n");
    std::fs::write(&file, text).expect("write config");
    keyhold(&[sub, "--config"], &file)
}

struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn keyhold_binary_serves_the_conformance_example_with_env_listen_override() {
    let dir = tempfile::tempdir().expect("tempdir");
    let example = paths::workspace_root().join("config/examples/conformance.toml");
    let config = dir.path().join("conformance.toml");
    std::fs::copy(&example, &config).expect("copy example");
    let port = paths::free_port();
    let child = Command::new(paths::keyhold_bin())
        .args(["serve", "--config"])
        .arg(&config)
        .current_dir(dir.path())
        .env("KEYHOLD_XKS__LISTEN", format!("127.0.0.1:{port}"))
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn keyhold");
    let mut child = Child(child);
    let addr = format!("127.0.0.1:{port}").parse().expect("addr");
    let transport = Transport::plain(addr);
    let client = keyhold_tests::XksClient::new(
        transport,
        keyhold_tests::Credential::a(),
        keyhold_tests::fixture::BASE,
    );
    let mut answered = None;
    for _ in 0..600 {
        if let Some(status) = child.0.try_wait().expect("try_wait") {
            panic!("keyhold exited early: {status}");
        }
        if let Ok(reply) = client
            .try_send(&RawRequest::new("GET", LB_HEALTH, ""))
            .await
        {
            answered = Some(reply);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let reply = answered.expect("keyhold answered on the overridden port");
    assert_eq!(reply.status.as_u16(), 200, "{reply:?}");
    assert_eq!(reply.json()["status"], "ACTIVE");
    // The real thing, SigV4 and all.
    let sealed = client.encrypt_ok(KEY_ALL, b"from the binary", None).await;
    assert_eq!(
        client.decrypt_ok(KEY_ALL, &sealed, None).await,
        b"from the binary"
    );
    // The data directory of the example is relative to the working directory.
    assert!(dir.path().join("data/conformance").is_dir());
    child.0.kill().expect("kill");
    child.0.wait().expect("wait");
}

#[test]
fn loader_refuses_missing_foreign_and_incompatible_libraries() {
    let missing = paths::target_debug_dir().join("libplugin_does_not_exist.so");
    match plugin::load(&missing) {
        Err(e @ PluginError::Missing { .. }) => {
            assert!(e.to_string().contains("libplugin_does_not_exist.so"), "{e}");
        }
        other => panic!("expected Missing, got {other:?}"),
    }
    match plugin::load(&paths::library("libnot_a_plugin.so")) {
        Err(e @ PluginError::Refused { .. }) => {
            assert!(e.to_string().contains("not a keyhold plugin"), "{e}");
        }
        other => panic!("expected Refused, got {other:?}"),
    }
    match plugin::load(&paths::library("libplugin_bad_abi.so")) {
        Err(e @ PluginError::Refused { .. }) => {
            let msg = e.to_string();
            assert!(msg.contains("999") && msg.contains('1'), "{msg}");
            assert!(msg.contains("version 1"), "{msg}");
        }
        other => panic!("expected Refused, got {other:?}"),
    }
    let ctm = plugin::load(&paths::library("libplugin_ctm.so")).expect("ctm loads");
    assert_eq!(ctm.name, "ctm");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_server_with_broken_plugins_still_starts() {
    let server = TestServer::builder()
        .extra_source(SourceFixture::library(
            "missing",
            "missing",
            &paths::target_debug_dir().join("libplugin_nowhere.so"),
        ))
        .extra_source(SourceFixture::built_library(
            "foreign",
            "libnot_a_plugin.so",
        ))
        .extra_source(SourceFixture::built_library(
            "badabi",
            "libplugin_bad_abi.so",
        ))
        .start()
        .await;
    let mut failed: Vec<_> = server.running.failed_sources.clone();
    failed.sort();
    let names: Vec<&str> = failed.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["badabi", "foreign", "missing"], "{failed:?}");
    assert!(failed[0].1.contains("999"), "{failed:?}");
    assert!(failed[1].1.contains("not a keyhold plugin"), "{failed:?}");
    assert!(failed[2].1.contains("no such file"), "{failed:?}");
    // The working source serves its store.
    let c = server.client();
    let s = c.encrypt_ok(KEY_ALL, b"still serving", None).await;
    assert_eq!(c.decrypt_ok(KEY_ALL, &s, None).await, b"still serving");
    server.stop().await;

    // A store whose only source is broken: the server starts, the source is failed.
    let server = TestServer::builder()
        .source(SourceFixture::built_library("ctm", "libplugin_bad_abi.so"))
        .start()
        .await;
    assert_eq!(server.running.failed_sources.len(), 1);
    assert_eq!(server.running.failed_sources[0].0, "ctm");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn shutdown_releases_the_data_directory_with_connections_open() {
    // Idle keep-alive connections (HTTP/1.1 and HTTP/2) are open when the server shuts
    // down; once `shutdown` returns, the same data directory opens again at once.
    let server = TestServer::start_default().await;
    let c = server.client();
    let h1 = c.transport.connect().await.expect("h1");
    let h2 = c
        .transport
        .with_proto(keyhold_tests::Proto::Http2)
        .connect()
        .await
        .expect("h2");
    for conn in [&h1, &h2] {
        let req = c.sign(RawRequest::post_json(
            &c.op_path("/health"),
            &keyhold_tests::bodies::health(),
        ));
        conn.send(&req).await.expect("request").ok_json();
    }
    let builder = server.builder.clone();
    let dir = server.stop().await;
    let restarted = builder.in_dir(dir).try_start().await;
    let server = match restarted {
        Ok(s) => s,
        Err((e, _)) => panic!("restart after shutdown failed: {e}"),
    };
    server.client().health().await.ok_json();
    drop((h1, h2));
    server.stop().await;
}

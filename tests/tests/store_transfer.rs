//! `keyhold store export` / `keyhold store import` (the real binary, real etcd): an
//! embedded-store node with stores, credentials, ctm keys and HYOK keys moves to etcd
//! in place and serves the same objects (a credential made through the API signs, a
//! ciphertext made before the export decrypts), then back to an embedded store; every
//! refusal says why and writes nothing.

use std::path::{Path, PathBuf};

use keyhold_tests::{
    Credential, Sealed, ServerBuilder, TestServer, XksClient,
    admin::{credential_of, data_key, expect_status, health_check_key},
    cli::{CliRun, KeyholdCli},
    etcd::Etcd,
    fixture::KEY_ALL,
    paths::toml_str,
};
use serde_json::json;

/// Runs `keyhold store <args...>`.
async fn store_cmd(args: &[&str]) -> CliRun {
    let mut all = vec!["store"];
    all.extend_from_slice(args);
    KeyholdCli::new("http://127.0.0.1:9").run(&all).await
}

/// `keyhold store export --config <config> --out <out>`.
async fn export(config: &Path, out: &Path) -> CliRun {
    let (config, out) = (config.to_string_lossy(), out.to_string_lossy());
    store_cmd(&["export", "--config", &config, "--out", &out]).await
}

/// `keyhold store import --config <config> --file <file>`.
async fn import(config: &Path, file: &Path) -> CliRun {
    let (config, file) = (config.to_string_lossy(), file.to_string_lossy());
    store_cmd(&["import", "--config", &config, "--file", &file]).await
}

/// Writes `builder`'s configuration for data directory `dir` to `dir/<name>`.
fn config_file(builder: &ServerBuilder, dir: &Path, name: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, builder.toml(dir)).expect("write the configuration");
    path
}

/// `builder` on etcd (prefix `prefix`).
fn on_etcd(builder: &ServerBuilder, etcd: &Etcd, prefix: &str) -> ServerBuilder {
    builder.clone().toml_tail(&format!(
        "[store]\nbackend = \"etcd\"\n[store.etcd]\nendpoints = [{}]\nprefix = {}\n",
        toml_str(&etcd.url),
        toml_str(prefix)
    ))
}

/// What the migrated node must still serve.
struct Objects {
    /// A credential of the fixture store made through the admin API.
    added: Credential,
    /// Sealed under the fixture key with it.
    sealed: Sealed,
    /// The second store's client (its generated credential) and a ciphertext of its
    /// HYOK key.
    second: (String, Credential, Sealed),
}

/// Makes a second store (own health-check key, a HYOK key on a ctm key), 130 more ctm
/// keys (so that an import into etcd takes several transactions) and a credential of
/// the fixture store, all through the admin API; seals something with each store.
async fn populate(server: &TestServer) -> Objects {
    let root = server.root().await;
    for key in [health_check_key("hc-2"), data_key("data-2")] {
        expect_status(&root.create_source_key("ctm", &key).await, 201);
    }
    let body = expect_status(
        &root
            .create_store(&json!({"name": "second", "source": "ctm", "health_check_key": "hc-2"}))
            .await,
        201,
    );
    let second_path = format!(
        "/api/v1/stores/{}",
        body["store"]["id"].as_str().expect("id")
    );
    let base = body["credentials_file"]["XksProxyUriPath"]
        .as_str()
        .expect("XksProxyUriPath")
        .to_string();
    let second_cred = credential_of(&body["credentials_file"]);
    expect_status(
        &root.create_hyok_key(&second_path, "hyok-1", "data-2").await,
        201,
    );
    for i in 0..130 {
        expect_status(
            &root
                .create_source_key("ctm", &data_key(&format!("bulk-{i:03}")))
                .await,
            201,
        );
    }
    let r = root
        .post(
            &format!("/api/v1/stores/{}/credentials", server.store_id()),
            &json!({}),
        )
        .await;
    let added = credential_of(&expect_status(&r, 201));
    let sealed = server
        .client()
        .with_cred(added.clone())
        .encrypt_ok(KEY_ALL, b"sealed on the embedded store", None)
        .await;
    let second = XksClient::new(server.transport(), second_cred.clone(), &base)
        .encrypt_ok("hyok-1", b"second store", Some(b"ctx"))
        .await;
    Objects {
        added,
        sealed,
        second: (base, second_cred, second),
    }
}

/// Asserts that `server` serves `objects`: signed encrypts with the old credentials,
/// decrypts of ciphertexts made before the export, the admin objects listed.
async fn serves(server: &TestServer, objects: &Objects) {
    let fixture = server.client().with_cred(objects.added.clone());
    assert_eq!(
        fixture.decrypt_ok(KEY_ALL, &objects.sealed, None).await,
        b"sealed on the embedded store"
    );
    let again = fixture.encrypt_ok(KEY_ALL, b"after the move", None).await;
    assert_eq!(
        server.client().decrypt_ok(KEY_ALL, &again, None).await,
        b"after the move"
    );
    let (base, cred, sealed) = &objects.second;
    let second = XksClient::new(server.transport(), cred.clone(), base);
    assert_eq!(
        second.decrypt_ok("hyok-1", sealed, Some(b"ctx")).await,
        b"second store"
    );
    second.encrypt_ok("hyok-1", b"x", None).await;
    // The same root password (the user records moved too); both stores, every ctm key.
    let root = server.root().await;
    let stores = expect_status(&root.get("/api/v1/stores").await, 200);
    let mut names: Vec<&str> = stores
        .as_array()
        .expect("stores")
        .iter()
        .map(|s| s["name"].as_str().expect("name"))
        .collect();
    names.sort();
    assert_eq!(names, ["acme", "second"]);
    let keys = expect_status(&root.get("/api/v1/sources/ctm/keys").await, 200);
    let keys = keys.as_array().expect("keys");
    assert!(keys.iter().any(|k| k["name"] == "bulk-129"), "{keys:?}");
    assert!(keys.len() >= 132, "{}", keys.len());
}

/// The `N` of "in N commits" in an import's output.
fn commits(run: &CliRun) -> u64 {
    run.stdout
        .split(" in ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no commit count in {:?}", run.stdout))
}

#[tokio::test(flavor = "multi_thread")]
async fn an_embedded_node_moves_to_etcd_and_back_serving_the_same_objects() {
    let a = TestServer::builder().admin().start().await;
    let objects = populate(&a).await;
    let builder = a.builder.clone();
    let dir = a.stop().await;
    let embedded = config_file(&builder, dir.path(), "embedded.toml");

    // Export: mode 0600, every entry, secrets still sealed.
    let out = dir.path().join("export.json");
    let run = export(&embedded, &out).await.expect_code(0);
    assert!(
        run.stdout.contains("exported") && run.stdout.contains("keyhold.redb"),
        "{}",
        run.stdout
    );
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&out)
            .expect("export")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let text = std::fs::read_to_string(&out).expect("export");
    let file: serde_json::Value = serde_json::from_str(&text).expect("JSON");
    assert_eq!(file["format"], "keyhold-store-export");
    assert_eq!(file["version"], 1);
    assert!(file["source_revision"].as_u64().expect("revision") > 0);
    assert!(file["entries"].as_array().expect("entries").len() > 140);
    for secret in [&objects.added.secret, &objects.second.1.secret] {
        assert!(!text.contains(secret.as_str()), "a secret in the clear");
    }

    // Import into etcd, in place: several transactions (etcd's 128 operations).
    let etcd = Etcd::start();
    let on_etcd = on_etcd(&builder, &etcd, "moved/");
    let cluster = config_file(&on_etcd, dir.path(), "etcd.toml");
    let run = import(&cluster, &out).await.expect_code(0);
    assert!(commits(&run) >= 2, "{}", run.stdout);
    assert!(run.stdout.contains("etcd store at"), "{}", run.stdout);
    // A second import into the now full prefix is refused, naming the count.
    let run = import(&cluster, &out).await.expect_code(1);
    assert!(
        run.stderr.contains("not empty") && run.stderr.contains("entries"),
        "{}",
        run.stderr
    );

    let e = on_etcd.clone().in_dir(dir.clone()).start().await;
    serves(&e, &objects).await;
    let dir = e.stop().await;

    // And back: etcd -> a new embedded store file.
    let back = dir.path().join("back.json");
    export(&cluster, &back).await.expect_code(0);
    let restored = builder.clone().toml_tail(&format!(
        "[store]\npath = {}\n",
        toml_str(dir.path().join("restored.redb").to_string_lossy())
    ));
    let restored_cfg = config_file(&restored, dir.path(), "restored.toml");
    let run = import(&restored_cfg, &back).await.expect_code(0);
    assert_eq!(
        commits(&run),
        1,
        "the embedded store takes it in one: {}",
        run.stdout
    );
    let r = restored.in_dir(dir.clone()).start().await;
    serves(&r, &objects).await;
    r.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn refused_imports_say_why_and_write_nothing() {
    let a = TestServer::builder().start().await;
    let builder = a.builder.clone();
    // The embedded store is one process at a time: exporting it while it runs is refused.
    let dir = a.dir.clone();
    let embedded = config_file(&builder, dir.path(), "embedded.toml");
    let out = dir.path().join("export.json");
    let run = export(&embedded, &out).await.expect_code(2);
    assert!(run.stderr.contains("locked"), "{}", run.stderr);
    let dir = a.stop().await;
    export(&embedded, &out).await.expect_code(0);

    // Into the non-empty source store itself.
    let run = import(&embedded, &out).await.expect_code(1);
    assert!(run.stderr.contains("not empty: it holds"), "{}", run.stderr);

    // Targets: empty store files beside it.
    let target = |name: &str, extra: &str| {
        let b = builder.clone().toml_tail(&format!(
            "[store]\npath = {}\n{extra}",
            toml_str(dir.path().join(name).to_string_lossy())
        ));
        config_file(&b, dir.path(), &format!("{name}.toml"))
    };
    // Another master key: refused before the target is opened.
    let other_key = dir.path().join("other.key");
    keyhold::secrets::generate_key_file(&other_key).expect("another key");
    let wrong = target(
        "wrong.redb",
        &format!(
            "[secrets]\nmaster_key_file = {}\n",
            toml_str(other_key.to_string_lossy())
        ),
    );
    let run = import(&wrong, &out).await.expect_code(1);
    assert!(
        run.stderr
            .contains("cannot unwrap the export's check value")
            && run
                .stderr
                .contains(&other_key.to_string_lossy().to_string())
            && run.stderr.contains("nothing was written"),
        "{}",
        run.stderr
    );
    assert!(
        !dir.path().join("wrong.redb").exists(),
        "the target was not even opened"
    );

    let good = target("good.redb", "");
    let original = std::fs::read(&out).expect("export");
    let refuse = |bytes: Vec<u8>, name: &'static str| {
        let path = dir.path().join(name);
        let good = good.clone();
        async move {
            std::fs::write(&path, bytes).expect("write");
            import(&good, &path).await.expect_code(1).stderr
        }
    };
    // A damaged value (still base64), a cut file, another format version.
    let mut edited: serde_json::Value = serde_json::from_slice(&original).expect("JSON");
    edited["entries"][0]["value"] = json!("ZWRpdGVk");
    let err = refuse(serde_json::to_vec(&edited).expect("JSON"), "edited.json").await;
    assert!(err.contains("damaged") && err.contains("mac"), "{err}");
    let err = refuse(original[..original.len() / 2].to_vec(), "cut.json").await;
    assert!(err.contains("damaged"), "{err}");
    let mut v2: serde_json::Value = serde_json::from_slice(&original).expect("JSON");
    v2["version"] = json!(2);
    let err = refuse(serde_json::to_vec(&v2).expect("JSON"), "v2.json").await;
    assert!(
        err.contains("format version 2") && err.contains("version 1"),
        "{err}"
    );
    let err = refuse(b"{\"hello\": 1}".to_vec(), "other.json").await;
    assert!(err.contains("not a keyhold store export"), "{err}");
    // Nothing was written: the good target is still empty, and takes the real file.
    let run = import(&good, &out).await.expect_code(0);
    assert!(run.stdout.contains("imported"), "{}", run.stdout);
}

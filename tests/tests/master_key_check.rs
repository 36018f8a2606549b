//! The master-key check value: a node whose master key is not the one the store's
//! secrets are sealed under refuses to start, saying so, and changes nothing - two
//! nodes on one etcd, and an embedded store file opened with another key. A store
//! holding a partial `keyhold store import` is refused too.

use std::path::Path;

use keyhold::{
    app::StartError,
    secrets::check::{self, CHECK_KEY},
    store::{EmbeddedStore, Store},
    transfer::IMPORT_MARKER,
};
use keyhold_tests::{
    ServerBuilder, SourceFixture, TestServer, etcd::Etcd, fixture::KEY_ALL, paths::toml_str,
};

/// A node on `etcd`; with `master_key`, that master key file (else a generated one in
/// its data directory), and the ctm key file `ctm_key` when given.
fn on_etcd(etcd: &Etcd, master_key: Option<&Path>, ctm_key: Option<&Path>) -> ServerBuilder {
    let mut tail = format!(
        "\n[store]\nbackend = \"etcd\"\n[store.etcd]\nendpoints = [{}]\nprefix = \"check-test/\"\n",
        toml_str(&etcd.url)
    );
    if let Some(key) = master_key {
        tail += &format!(
            "[secrets]\nmaster_key_file = {}\n",
            toml_str(key.to_string_lossy())
        );
    }
    let mut builder = TestServer::builder();
    if let Some(key) = ctm_key {
        builder = builder.source(SourceFixture::new(
            "ctm",
            &format!(
                "plugin = \"ctm\"\nconfig = {{ master_key_file = {} }}\n",
                toml_str(key.to_string_lossy())
            ),
        ));
    }
    builder.toml_tail(&tail)
}

/// The start error of `builder`, which must not start.
async fn refused(builder: ServerBuilder) -> String {
    match builder.try_start().await {
        Ok(_) => panic!("started with another master key"),
        Err((e, _)) => {
            assert!(matches!(e, StartError::MasterKeyMismatch { .. }), "{e}");
            e.to_string()
        }
    }
}

fn assert_says_why(message: &str, source: &str) {
    for part in [
        "this node's master key",
        source,
        "cannot unwrap the cluster's check value",
        CHECK_KEY,
        "same master key file as the other nodes",
        "nothing was changed",
    ] {
        assert!(message.contains(part), "{part:?} missing from: {message}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_second_node_with_another_master_key_refuses_to_start() {
    let etcd = Etcd::start();
    let a = on_etcd(&etcd, None, None).start().await;
    let check = a.store().get(CHECK_KEY).unwrap().expect("written at start");
    check::verify(&a.master_key(), &check.value).expect("sealed under A's key");
    // A's own first writes are done once its health check has run (it reserves the
    // health-check key's first block of AES-GCM invocations).
    a.client().health().await.assert_status(200, "A's health");
    let revision = a.store().revision().unwrap();

    // A node with its own generated key: refused, naming that key.
    let message = refused(on_etcd(&etcd, None, None)).await;
    assert_says_why(&message, "the generated development key");
    // A node with another configured key file: refused, naming the setting and file.
    let keys = tempfile::tempdir().unwrap();
    let other = keys.path().join("other.key");
    keyhold::secrets::generate_key_file(&other).unwrap();
    let message = refused(on_etcd(&etcd, Some(&other), None)).await;
    assert_says_why(
        &message,
        &format!("secrets.master_key_file = {}", other.display()),
    );
    // Nothing was written by either.
    assert_eq!(a.store().revision().unwrap(), revision);
    assert_eq!(a.store().get(CHECK_KEY).unwrap().unwrap(), check);

    // With A's key files, a node starts and serves what A made.
    let b = on_etcd(
        &etcd,
        Some(&a.path().join("master.key")),
        Some(&a.path().join("ctm.key")),
    )
    .start()
    .await;
    let sealed = a.client().encrypt_ok(KEY_ALL, b"same keys", None).await;
    assert_eq!(
        b.client().decrypt_ok(KEY_ALL, &sealed, None).await,
        b"same keys"
    );
    b.stop().await;
    a.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_embedded_store_opened_with_another_master_key_refuses_to_start() {
    let a = TestServer::builder().start().await;
    let builder = a.builder.clone();
    let dir = a.stop().await;
    let store_file = dir.path().join("keyhold.redb");
    let revision = EmbeddedStore::open(&store_file)
        .unwrap()
        .revision()
        .unwrap();
    // The data directory's master key replaced by another one.
    let key = dir.path().join("master.key");
    let original = std::fs::read(&key).unwrap();
    std::fs::remove_file(&key).unwrap();
    keyhold::secrets::generate_key_file(&key).unwrap();
    let message = refused(builder.clone().in_dir(dir.clone())).await;
    assert_says_why(&message, &key.display().to_string());
    assert_eq!(
        EmbeddedStore::open(&store_file)
            .unwrap()
            .revision()
            .unwrap(),
        revision,
        "nothing written"
    );
    // The right key back: it starts.
    std::fs::write(&key, original).unwrap();
    builder.in_dir(dir).start().await.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_store_holding_an_unfinished_import_is_not_served() {
    let a = TestServer::builder().start().await;
    let builder = a.builder.clone();
    let dir = a.stop().await;
    let store_file = dir.path().join("keyhold.redb");
    {
        let store = EmbeddedStore::open(&store_file).unwrap();
        store
            .put(IMPORT_MARKER, br#"{"entries":300,"commits":3}"#.to_vec())
            .unwrap();
    }
    let err = match builder.in_dir(dir).try_start().await {
        Ok(_) => panic!("started on a partial import"),
        Err((e, _)) => e,
    };
    assert!(matches!(err, StartError::UnfinishedImport(_)), "{err}");
    let message = err.to_string();
    assert!(
        message.contains("did not finish")
            && message.contains("keyhold store import")
            && message.contains("nothing was changed"),
        "{message}"
    );
}

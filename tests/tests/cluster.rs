//! Two keyhold nodes on one etcd (`store.backend = "etcd"`): what is configured on one
//! node is served by the other, crypto works across nodes, and changes made on one node
//! (a credential added or deleted, the store blocked) take effect on the other.

use std::{
    path::Path,
    time::{Duration, Instant},
};

use keyhold_tests::{
    Reply, SourceFixture, TestServer, XksClient,
    admin::{credential_of, expect_status},
    etcd::Etcd,
    fixture::KEY_ALL,
    paths::toml_str,
};
use serde_json::json;

/// A node on `etcd`; with `shared`, it uses that node's master key and ctm key file
/// (cluster nodes share their keys: see the README's cluster section).
async fn node(etcd: &Etcd, shared: Option<&Path>) -> TestServer {
    let mut tail = format!(
        "\n[store]\nbackend = \"etcd\"\n[store.etcd]\nendpoints = [{}]\nprefix = \"cluster-test/\"\n",
        toml_str(&etcd.url)
    );
    let mut builder = TestServer::builder().admin();
    if let Some(dir) = shared {
        tail += &format!(
            "[secrets]\nmaster_key_file = {}\n",
            toml_str(dir.join("master.key").to_string_lossy())
        );
        let ctm_key = toml_str(dir.join("ctm.key").to_string_lossy());
        builder = builder.source(SourceFixture::new(
            "ctm",
            &format!("plugin = \"ctm\"\nconfig = {{ master_key_file = {ctm_key} }}\n"),
        ));
    }
    builder.toml_tail(&tail).start().await
}

/// Polls `f` until `done` holds for its reply (changes reach other nodes through the
/// etcd watch: no fixed delay).
async fn until<F, Fut>(what: &str, mut f: F, done: impl Fn(&Reply) -> bool) -> Reply
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Reply>,
{
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let reply = f().await;
        if done(&reply) {
            return reply;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: still {} {}",
            reply.status,
            String::from_utf8_lossy(&reply.body)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn what_one_node_changes_the_other_serves() {
    let etcd = Etcd::start();
    let a = node(&etcd, None).await;
    let b = node(&etcd, Some(a.path())).await;
    let (xa, xb) = (a.client(), b.client());

    // A key made on node A (reconciled from the config) encrypts on A, decrypts on B.
    let sealed = xa
        .encrypt_ok(KEY_ALL, b"across the cluster", Some(b"aad"))
        .await;
    assert_eq!(
        xb.decrypt_ok(KEY_ALL, &sealed, Some(b"aad")).await,
        b"across the cluster"
    );
    let sealed = xb.encrypt_ok(KEY_ALL, b"and back", None).await;
    assert_eq!(xa.decrypt_ok(KEY_ALL, &sealed, None).await, b"and back");

    // A credential added on A authenticates on B; deleted on A, B refuses it.
    let root = a.root().await;
    let store = format!("/api/v1/stores/{}", a.store_id());
    let r = root.post(&format!("{store}/credentials"), &json!({})).await;
    let cred = credential_of(&expect_status(&r, 201));
    let on_b: XksClient = xb.with_cred(cred.clone());
    until(
        "the new credential on node B",
        || on_b.health(),
        |r| r.status == 200,
    )
    .await;
    let r = root
        .delete(&format!("{store}/credentials/{}", cred.access_key_id))
        .await;
    assert!(r.status.is_success(), "{}", r.status);
    let refused = until(
        "the deleted credential on node B",
        || on_b.health(),
        |r| r.status == 401,
    )
    .await;
    refused.assert_error(401, "AuthenticationFailedException");

    // Blocked on A: B answers InvalidStateException; unblocked: B serves again.
    let r = root.post(&format!("{store}/block"), &json!({})).await;
    assert!(r.status.is_success(), "{}", r.status);
    until("the block on node B", || xb.health(), |r| r.status == 400)
        .await
        .assert_error(400, "InvalidStateException");
    let r = root.post(&format!("{store}/unblock"), &json!({})).await;
    assert!(r.status.is_success(), "{}", r.status);
    until("the unblock on node B", || xb.health(), |r| r.status == 200).await;

    // Node B restarts on its own data directory: the state is in etcd, not on disk.
    let builder = b.builder.clone();
    let dir = b.stop().await;
    let b = builder.in_dir(dir).start().await;
    let sealed = xa.encrypt_ok(KEY_ALL, b"after a restart", None).await;
    assert_eq!(
        b.client().decrypt_ok(KEY_ALL, &sealed, None).await,
        b"after a restart"
    );
    b.stop().await;
    a.stop().await;
}

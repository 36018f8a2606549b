//! Key sources managed at run time on a cluster: a source created on one node is
//! opened on the others, a reopen on one node reopens every node's copy, and a deleted
//! source is closed everywhere (each node follows the source records in etcd).

use keyhold_tests::{
    SourceFixture,
    admin::{expect_error, expect_status},
    cluster::{Cluster, root_on, until},
    luna::{self, LunaToken},
    paths::toml_str,
};
use serde_json::json;

/// `ctm2` on master key file `key`, generating it when `generate`.
fn ctm2(key: &std::path::Path, generate: bool) -> SourceFixture {
    SourceFixture::new(
        "ctm2",
        &format!(
            "plugin = \"ctm\"\nconfig = {{ master_key_file = {}, generate_master_key = {generate} }}\n",
            toml_str(key.to_string_lossy())
        ),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn sources_created_reopened_and_deleted_on_one_node_follow_on_the_others() {
    let cluster = Cluster::start();
    let keys = tempfile::tempdir().expect("tempdir");
    let key = keys.path().join("ctm2.key");
    // Node 0 declares ctm2 on a key file that does not exist yet: failed there.
    // Node 1 generates the file: opened there.
    let first = cluster
        .builder()
        .extra_source(ctm2(&key, false))
        .start()
        .await;
    let second = cluster
        .builder()
        .extra_source(ctm2(&key, true))
        .start()
        .await;
    let nodes = vec![first, second];
    let (a, b) = (root_on(&nodes, 0).await, root_on(&nodes, 1).await);
    let got = expect_status(&a.get("/api/v1/sources/ctm2").await, 200);
    assert_eq!(got["status"], "failed", "{got}");
    assert_eq!(
        expect_status(&b.get("/api/v1/sources/ctm2").await, 200)["status"],
        "opened"
    );

    // A reopen on node 1 reopens node 0's copy too (from node 0's own declaration):
    // the key file exists now.
    let r = b.post("/api/v1/sources/ctm2/reopen", &json!({})).await;
    assert_eq!(expect_status(&r, 200)["status"], "opened");
    until(
        "node 0 reopens ctm2",
        || a.get("/api/v1/sources/ctm2"),
        |r| r.status.as_u16() == 200 && r.json()["status"] == "opened",
    )
    .await;

    if !luna::available() {
        eprintln!("SoftHSM2 is not installed: the luna half is skipped");
        return;
    }
    // A luna source created on node 1 from an HSM connection is opened on node 0.
    let token = LunaToken::new();
    let env = luna::env();
    let conn = json!({
        "name": "hsm1",
        "module": luna::plugin_module(),
        "token_label": token.label,
        "pin_file": env.pin_file.to_string_lossy(),
        "module_env": {"SOFTHSM2_CONF": env.conf.to_string_lossy()},
    });
    expect_status(&b.post("/api/v1/connections/hsm", &conn).await, 201);
    let src = json!({"name": "hsm-src", "plugin": "luna", "hsm_connection": "hsm1"});
    expect_status(&b.post("/api/v1/sources", &src).await, 201);
    until(
        "node 0 opens hsm-src",
        || a.get("/api/v1/sources/hsm-src"),
        |r| r.status.as_u16() == 200 && r.json()["status"] == "opened",
    )
    .await;
    let keys = expect_status(&a.get("/api/v1/sources/hsm-src/keys").await, 200);
    assert!(keys.is_array(), "{keys}");

    // Deleted on node 0: closed on node 1.
    assert_eq!(
        a.delete("/api/v1/sources/hsm-src").await.status.as_u16(),
        204
    );
    until(
        "node 1 closes hsm-src",
        || b.get("/api/v1/sources/hsm-src"),
        |r| r.status.as_u16() == 404,
    )
    .await;
    expect_error(&b.get("/api/v1/sources/hsm-src").await, 404, "not_found");
    for node in nodes {
        node.stop().await;
    }
}

//! keyhold nodes on etcd (`store.backend = "etcd"`): what is configured on one node is
//! served by the others, crypto works across nodes, changes made on one node (a
//! credential added or deleted, the store blocked) take effect on the others, and two
//! nodes racing the same update cannot both win.

use std::path::Path;

use keyhold_tests::{
    Credential, TestServer, XksClient,
    admin::{
        AdminClient, credential_of, data_key, etag, expect_error, expect_status, health_check_key,
    },
    cluster::{Cluster, clients, root_on, until, with_keys_of},
    etcd::Etcd,
    fixture::{self, KEY_ALL},
    paths::toml_str,
};
use serde_json::json;

/// A node on `etcd`; with `shared`, it uses that node's master key and ctm key file
/// (cluster nodes share their keys: see the README's cluster section).
async fn node(etcd: &Etcd, shared: Option<&Path>) -> TestServer {
    let tail = format!(
        "\n[store]\nbackend = \"etcd\"\n[store.etcd]\nendpoints = [{}]\nprefix = \"cluster-test/\"\n",
        toml_str(&etcd.url)
    );
    let mut builder = TestServer::builder().admin().toml_tail(&tail);
    if let Some(dir) = shared {
        builder = with_keys_of(builder, dir);
    }
    builder.start().await
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
    let (refused, _) = until(
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
        .0
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

/// A store made through the admin API of `root`'s node, with its first credential, one
/// HYOK key `k1` (on source key `<name>-data`) and its `XksProxyUriPath`.
async fn create_store(root: &AdminClient, name: &str) -> (String, Credential, String) {
    let hc = format!("{name}-hc");
    let data = format!("{name}-data");
    expect_status(
        &root.create_source_key("ctm", &health_check_key(&hc)).await,
        201,
    );
    expect_status(&root.create_source_key("ctm", &data_key(&data)).await, 201);
    let r = root
        .create_store(&json!({"name": name, "source": "ctm", "health_check_key": hc}))
        .await;
    let created = expect_status(&r, 201);
    let id = created["store"]["id"].as_str().expect("id").to_string();
    let file = &created["credentials_file"];
    let base = file["XksProxyUriPath"]
        .as_str()
        .expect("uri path")
        .to_string();
    let path = format!("/api/v1/stores/{id}");
    expect_status(&root.create_hyok_key(&path, "k1", &data).await, 201);
    (id, credential_of(file), base)
}

#[tokio::test(flavor = "multi_thread")]
async fn three_nodes_serve_what_one_made_and_a_deletion_on_the_third_reaches_the_first() {
    let cluster = Cluster::start();
    let nodes = cluster.start_nodes(3).await;
    let root1 = root_on(&nodes, 0).await;

    // Made on node 1: a source key pair, a store, its credential, a HYOK key.
    let (id, cred, base) = create_store(&root1, "shared").await;
    let on: Vec<XksClient> = nodes
        .iter()
        .map(|n| XksClient::new(n.transport(), cred.clone(), &base))
        .collect();
    for (i, x) in on.iter().enumerate().skip(1) {
        let (_, took) = until(
            &format!("the new store on node {}", i + 1),
            || x.metadata("k1"),
            |r| r.status == 200,
        )
        .await;
        println!(
            "store made on node 1 served by node {} after {took:?}",
            i + 1
        );
    }
    // Signed XKS encrypt on each node, decrypt on each other node.
    for (i, enc) in on.iter().enumerate() {
        let plaintext = format!("sealed on node {}", i + 1);
        let sealed = enc
            .encrypt_ok("k1", plaintext.as_bytes(), Some(b"ctx"))
            .await;
        for dec in &on {
            assert_eq!(
                dec.decrypt_ok("k1", &sealed, Some(b"ctx")).await,
                plaintext.as_bytes()
            );
        }
    }

    // A second credential (made on node 2) keeps the store reachable; the first one is
    // deleted on node 3 and refused on node 1 soon after.
    let root2 = root_on(&nodes, 1).await;
    let r = root2
        .post(&format!("/api/v1/stores/{id}/credentials"), &json!({}))
        .await;
    let second = credential_of(&expect_status(&r, 201));
    for (i, x) in on.iter().enumerate() {
        let with_second = x.with_cred(second.clone());
        until(
            &format!("the second credential on node {}", i + 1),
            || with_second.health(),
            |r| r.status == 200,
        )
        .await;
    }
    let root3 = root_on(&nodes, 2).await;
    let r = root3
        .delete(&format!(
            "/api/v1/stores/{id}/credentials/{}",
            cred.access_key_id
        ))
        .await;
    expect_status(&r, 204);
    let (refused, delay) = until(
        "the credential deleted on node 3, on node 1",
        || on[0].health(),
        |r| r.status == 401,
    )
    .await;
    refused.assert_error(401, "AuthenticationFailedException");
    println!(
        "credential deleted on node 3: refused on node 1 {:.1} ms after the DELETE answered",
        delay.as_secs_f64() * 1000.0
    );
    on[1].assert_unauthenticated().await;
    on[2].assert_unauthenticated().await;
    for x in &on {
        let sealed = x
            .with_cred(second.clone())
            .encrypt_ok("k1", b"still", None)
            .await;
        assert_eq!(sealed.iv.len(), 12);
    }
    // The conformance store every node declared is one store, served by all three.
    let xs = clients(&nodes, &Credential::a());
    let sealed = xs[2]
        .encrypt_ok(KEY_ALL, b"declared thrice, made once", None)
        .await;
    assert_eq!(
        xs[0].decrypt_ok(KEY_ALL, &sealed, None).await,
        b"declared thrice, made once"
    );
    let listed = expect_status(&root3.get("/api/v1/stores").await, 200);
    assert_eq!(listed.as_array().map(Vec::len), Some(2), "{listed}");
    for n in nodes {
        n.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn racing_updates_from_two_nodes_one_wins_the_other_gets_version_mismatch() {
    const ROUNDS: usize = 30;
    let cluster = Cluster::start();
    let nodes = cluster.start_nodes(2).await;
    let (r1, r2) = (root_on(&nodes, 0).await, root_on(&nodes, 1).await);
    let path = format!("/api/v1/stores/{}", nodes[0].store_id());
    let mut wins = [0usize; 2];
    let mut raced_commits = 0;
    for round in 0..ROUNDS {
        let read = r1.get(&path).await;
        let version = etag(&expect_status_reply(read));
        let names = [format!("race-{round}-a"), format!("race-{round}-b")];
        let bodies = [json!({"name": names[0]}), json!({"name": names[1]})];
        let (a, b) = tokio::join!(
            r1.patch(&path, &bodies[0], Some(version.as_str())),
            r2.patch(&path, &bodies[1], Some(version.as_str())),
        );
        let (winner, loser) = match (a.status.as_u16(), b.status.as_u16()) {
            (200, _) => (0, b),
            (_, 200) => (1, a),
            _ => panic!(
                "round {round}: nobody won: {} {} / {} {}",
                a.status,
                String::from_utf8_lossy(&a.body),
                b.status,
                String::from_utf8_lossy(&b.body)
            ),
        };
        let message = expect_error(&loser, 412, "version_mismatch");
        // Lost at the commit (both had passed the version check), or at the check.
        if message.contains("expected version 0") {
            raced_commits += 1;
        }
        wins[winner] += 1;
        // Both nodes read the winner's name (admin reads go to etcd).
        for root in [&r1, &r2] {
            let now = expect_status(&root.get(&path).await, 200);
            assert_eq!(now["name"], names[winner].as_str(), "round {round}");
        }
    }
    println!(
        "{ROUNDS} rounds: node 1 won {}, node 2 won {}; every loser got 412 version_mismatch ({raced_commits} lost at the commit)",
        wins[0], wins[1]
    );
    for n in nodes {
        n.stop().await;
    }
}

/// The reply, asserted 200 (for its ETag).
#[track_caller]
fn expect_status_reply(r: keyhold_tests::Reply) -> keyhold_tests::Reply {
    expect_status(&r, 200);
    r
}

/// `config/examples/cluster-node{1,2,3}.toml`, as `scripts/cluster.sh` runs them (its
/// paths moved under one directory holding the shared keys), on a test etcd and test
/// ports: three nodes serving one store.
#[tokio::test(flavor = "multi_thread")]
async fn the_cluster_examples_serve_as_one_cluster() {
    let cluster = Cluster::start();
    let data = tempfile::tempdir().expect("tempdir");
    let dir = data.path().to_string_lossy().into_owned();
    for file in ["master.key", "ctm.key"] {
        keyhold::secrets::generate_key_file(&data.path().join(file)).expect("key file");
    }
    let endpoints: Vec<String> = cluster.etcd.endpoints().iter().map(toml_str).collect();
    let mut nodes = Vec::new();
    for n in 1..=3 {
        let example = keyhold_tests::paths::workspace_root()
            .join(format!("config/examples/cluster-node{n}.toml"));
        let text = std::fs::read_to_string(&example).expect("example");
        let lines: Vec<String> = text
            .lines()
            .map(|l| match l.split_once(" = ") {
                Some(("endpoints", _)) => format!("endpoints = [{}]", endpoints.join(", ")),
                Some(("listen", _)) => "listen = \"127.0.0.1:0\"".into(),
                _ => l.replace("\"cluster-data/", &format!("\"{dir}/")),
            })
            .collect();
        let text = format!("{}\n[plugins]\ndir = \"{{plugins}}\"\n", lines.join("\n"));
        assert!(
            text.lines()
                .all(|l| l.starts_with('#') || !l.contains("cluster-data/")),
            "every path moved"
        );
        let node = TestServer::start_toml(&text)
            .await
            .unwrap_or_else(|(e, _)| panic!("cluster-node{n}.toml did not start: {e}"));
        nodes.push(node);
    }
    let xs = clients(&nodes, &Credential::a());
    for (i, x) in xs.iter().enumerate() {
        let sealed = x.encrypt_ok(KEY_ALL, b"example cluster", None).await;
        let other = &xs[(i + 1) % xs.len()];
        assert_eq!(
            other.decrypt_ok(KEY_ALL, &sealed, None).await,
            b"example cluster"
        );
    }
    for n in nodes {
        n.stop().await;
    }
}

/// Three nodes with the same declarations start at the same instant on an empty
/// cluster (three rounds, each on a fresh etcd): every node starts (a declaration
/// another node applied first is found, not refused), the declared store exists once,
/// and every node serves it with the declared credential and keys.
#[tokio::test(flavor = "multi_thread")]
async fn nodes_starting_together_on_an_empty_cluster_apply_the_declarations_once() {
    for round in 0..3 {
        let cluster = Cluster::start();
        let (a, b, c) = tokio::join!(
            cluster.builder().try_start(),
            cluster.builder().try_start(),
            cluster.builder().try_start()
        );
        let nodes: Vec<TestServer> = [a, b, c]
            .into_iter()
            .map(|r| r.unwrap_or_else(|(e, _)| panic!("round {round}: a node did not start: {e}")))
            .collect();
        // The one node that created `root` holds its generated password.
        let creators: Vec<&TestServer> = nodes
            .iter()
            .filter(|n| n.path().join("root-password").exists())
            .collect();
        assert_eq!(creators.len(), 1, "round {round}: root created once");
        let root = creators[0].root().await;
        let stores = expect_status(&root.get("/api/v1/stores").await, 200);
        let names: Vec<&str> = stores
            .as_array()
            .expect("stores")
            .iter()
            .filter_map(|s| s["name"].as_str())
            .collect();
        assert_eq!(names, [fixture::STORE], "round {round}: {stores}");
        let ids: std::collections::BTreeSet<String> = nodes.iter().map(|n| n.store_id()).collect();
        assert_eq!(ids.len(), 1, "round {round}: one store id on every node");
        let xks = clients(&nodes, &Credential::a());
        let sealed = xks[0].encrypt_ok(KEY_ALL, b"declared once", None).await;
        for (i, client) in xks.iter().enumerate() {
            assert_eq!(
                client.decrypt_ok(KEY_ALL, &sealed, None).await,
                b"declared once",
                "round {round}: node {i}"
            );
        }
        for n in nodes {
            n.stop().await;
        }
    }
}

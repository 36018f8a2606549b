//! A keyhold cluster on loopback for the cluster tests: a 3-member etcd
//! ([`EtcdCluster`]), the keys every node must share (the master key sealing secrets
//! at rest and the ctm source's master key), and nodes on it, all serving the
//! conformance store: in-process [`TestServer`]s, or `keyhold` binaries
//! ([`BinaryServer`]) where a node must be killed.
//!
//! [`Cluster::start_nodes`] and [`Cluster::start_binaries`] return the nodes, in start
//! order (the first one made the shared state), for tests to act on and to check
//! (fleet size, node lists) one by one.

use std::{
    future::Future,
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use keyhold_testkit::{
    Credential, Reply, SourceFixture, XksClient,
    admin::AdminClient,
    etcd::EtcdCluster,
    fixture::{self, KeyFixture},
    paths::toml_str,
    process::{BinaryConfig, BinaryServer},
};
use tempfile::TempDir;

use crate::server::{ServerBuilder, TestServer};

/// The key prefix every node of a test cluster uses in etcd.
pub const PREFIX: &str = "cluster-test/";

/// How long a change may take to reach another node before a test gives up (the
/// expectation is about a second; the bound is generous for a loaded machine).
pub const PROPAGATION_BOUND: Duration = Duration::from_secs(20);

/// The `ctm` source on the ctm master key in `dir` (`ctm.key`): another node's data
/// directory, or a directory of keys every node shares.
pub fn shared_ctm(dir: &Path) -> SourceFixture {
    let key = toml_str(dir.join("ctm.key").to_string_lossy());
    SourceFixture::new(
        "ctm",
        &format!("plugin = \"ctm\"\nconfig = {{ master_key_file = {key} }}\n"),
    )
}

/// `[secrets]` on the master key in `dir` (`master.key`).
pub fn shared_secrets(dir: &Path) -> String {
    format!(
        "[secrets]\nmaster_key_file = {}\n",
        toml_str(dir.join("master.key").to_string_lossy())
    )
}

/// `builder` on the master key and ctm key of `dir` (see [`shared_ctm`]): the nodes of
/// a cluster share their keys (the README's cluster section).
pub fn with_keys_of(builder: ServerBuilder, dir: &Path) -> ServerBuilder {
    builder
        .source(shared_ctm(dir))
        .toml_tail(&shared_secrets(dir))
}

/// A 3-member etcd and the keys the nodes share.
pub struct Cluster {
    /// The etcd members (kill and restart them through it).
    pub etcd: EtcdCluster,
    keys: TempDir,
}

impl Cluster {
    /// Starts a 3-member etcd and generates the shared keys.
    pub fn start() -> Cluster {
        let etcd = EtcdCluster::start(3);
        let keys = tempfile::tempdir().expect("tempdir");
        for file in ["master.key", "ctm.key"] {
            keyhold::secrets::generate_key_file(&keys.path().join(file)).expect("key file");
        }
        Cluster { etcd, keys }
    }

    /// The master key file every node uses (`secrets.master_key_file`).
    pub fn master_key_file(&self) -> PathBuf {
        self.keys.path().join("master.key")
    }

    /// The `ctm` source on the shared ctm master key, called inline.
    pub fn ctm_source(&self) -> SourceFixture {
        let key = toml_str(self.keys.path().join("ctm.key").to_string_lossy());
        SourceFixture::new(
            "ctm",
            &format!(
                "plugin = \"ctm\"\ninline_calls = true\nconfig = {{ master_key_file = {key} }}\n"
            ),
        )
    }

    /// `[store]` on every etcd member, and `[secrets]` with the shared master key.
    pub fn store_toml(&self) -> String {
        let endpoints: Vec<String> = self.etcd.endpoints().iter().map(toml_str).collect();
        format!(
            "[store]\nbackend = \"etcd\"\n[store.etcd]\nendpoints = [{}]\nprefix = {}\n\n{}",
            endpoints.join(", "),
            toml_str(PREFIX),
            shared_secrets(self.keys.path())
        )
    }

    /// An in-process node: the conformance store on the shared ctm source, the admin
    /// API, the store on this cluster's etcd.
    pub fn builder(&self) -> ServerBuilder {
        TestServer::builder()
            .source(self.ctm_source())
            .admin()
            .toml_tail(&self.store_toml())
    }

    /// Starts `n` in-process nodes one after the other (the first one creates the
    /// declared objects and the `root` user; see [`root_on`]).
    pub async fn start_nodes(&self, n: usize) -> Vec<TestServer> {
        let mut nodes = Vec::with_capacity(n);
        for _ in 0..n {
            nodes.push(self.builder().start().await);
        }
        nodes
    }

    /// A `keyhold` binary's configuration under `root`: the conformance store (the
    /// first credential, every conformance key) on the shared ctm source, the store on
    /// this cluster's etcd.
    pub fn binary_config(&self, root: &Path) -> BinaryConfig {
        let mut cfg = BinaryConfig::new(root);
        cfg.sources = vec![self.ctm_source()];
        cfg.password_env = format!("KH_CLUSTER_ROOT_PW_{}", std::process::id());
        let mut tail = self.store_toml();
        tail += &format!(
            "\n[[stores]]\nname = {}\nsource = \"ctm\"\nuri_path_prefix = {}\nhealth_check_key = {}\n\n",
            toml_str(fixture::STORE),
            toml_str(fixture::PREFIX),
            toml_str(fixture::HEALTH_KEY)
        );
        let cred = Credential::a();
        tail += &format!(
            "[[stores.credentials]]\naccess_key_id = {}\nsecret = {}\n\n",
            toml_str(&cred.access_key_id),
            toml_str(&cred.secret)
        );
        for k in KeyFixture::conformance() {
            tail += &k.toml();
            tail += "\n";
        }
        cfg.toml_tail = tail;
        cfg
    }

    /// Starts `n` `keyhold` binaries one after the other, node `i` under `root/node<i>`.
    pub async fn start_binaries(
        &self,
        root: &Path,
        n: usize,
    ) -> (Vec<BinaryConfig>, Vec<BinaryServer>) {
        let mut configs = Vec::with_capacity(n);
        let mut servers = Vec::with_capacity(n);
        for i in 0..n {
            let cfg = self.binary_config(&root.join(format!("node{i}")));
            servers.push(cfg.start().await);
            configs.push(cfg);
        }
        (configs, servers)
    }
}

/// An admin client of `nodes[i]` logged in as `root`, whose password the first node
/// generated when it created the user.
pub async fn root_on(nodes: &[TestServer], i: usize) -> AdminClient {
    nodes[i]
        .admin()
        .login("root", &nodes[0].root_password())
        .await
}

/// Polls `f` until `done` holds for its reply (changes reach other nodes through the
/// etcd watch: no fixed delay); panics after [`PROPAGATION_BOUND`]. Returns the reply
/// and how long it took.
pub async fn until<F, Fut>(what: &str, mut f: F, done: impl Fn(&Reply) -> bool) -> (Reply, Duration)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Reply>,
{
    let start = Instant::now();
    loop {
        let reply = f().await;
        if done(&reply) {
            return (reply, start.elapsed());
        }
        assert!(
            start.elapsed() < PROPAGATION_BOUND,
            "{what}: still {} {} after {PROPAGATION_BOUND:?}",
            reply.status,
            String::from_utf8_lossy(&reply.body)
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// A client of the conformance store on each node, signing with `cred`.
pub fn clients(nodes: &[TestServer], cred: &Credential) -> Vec<XksClient> {
    nodes
        .iter()
        .map(|n| XksClient::new(n.transport(), cred.clone(), fixture::BASE))
        .collect()
}

//! Membership and once-only jobs on etcd: nodes register under leases (the node list,
//! `xksProxyFleetSize`), one of them leads, and a scheduled credential rotation runs
//! once per tick however many nodes are up - also when the node running it died
//! mid-way (its claimed run is finished by the next leader, with the same credential).

use std::{
    collections::BTreeSet,
    path::Path,
    sync::Arc,
    time::{Duration, Instant},
};

use keyhold::{
    clock::ManualClock,
    model::{CredentialRecord, RotationState, keys},
    secrets::{MasterKey, MasterKeySource},
    store::{Condition, Write},
};
use keyhold_tests::{
    ServerBuilder, TestServer,
    admin::{AdminClient, expect_status},
    aws::{AwsWorld, get_until},
    cluster::{shared_ctm, shared_secrets, with_keys_of},
    etcd::Etcd,
    paths::toml_str,
    process::{BinaryConfig, BinaryServer},
};
use serde_json::{Value, json};
use time::OffsetDateTime;

/// `[store]` on `etcd` with 2-second leases (a stopped node drops out quickly).
fn etcd_tail(etcd: &Etcd, prefix: &str) -> String {
    format!(
        "\n[store]\nbackend = \"etcd\"\n[store.etcd]\nendpoints = [{}]\nprefix = {}\nlease_ttl_seconds = 2\n",
        toml_str(&etcd.url),
        toml_str(prefix)
    )
}

/// `builder` on `etcd`; with `shared`, using that node's master key and ctm key file.
fn on_etcd(
    builder: ServerBuilder,
    etcd: &Etcd,
    prefix: &str,
    shared: Option<&Path>,
) -> ServerBuilder {
    let builder = builder.toml_tail(&etcd_tail(etcd, prefix));
    match shared {
        Some(dir) => with_keys_of(builder, dir),
        None => builder,
    }
}

/// Polls `probe` until it returns `Some` (20 s at most).
async fn until<T, F, Fut>(what: &str, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(v) = probe().await {
            return v;
        }
        assert!(Instant::now() < deadline, "{what}: not within 20 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `GET /api/v1/nodes` on one node.
async fn nodes(admin: &AdminClient) -> Value {
    expect_status(&admin.get("/api/v1/nodes").await, 200)
}

/// The node ids a node list shows.
fn ids(list: &Value) -> BTreeSet<String> {
    list["nodes"]
        .as_array()
        .expect("nodes")
        .iter()
        .map(|n| n["id"].as_str().expect("id").to_string())
        .collect()
}

/// The leaders a node list shows.
fn leaders(list: &Value) -> Vec<String> {
    list["nodes"]
        .as_array()
        .expect("nodes")
        .iter()
        .filter(|n| n["leader"] == true)
        .map(|n| n["id"].as_str().expect("id").to_string())
        .collect()
}

/// The fleet size a node's GetHealthStatus reports.
async fn fleet_size(server: &TestServer) -> u64 {
    let r = server.client().health().await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    r.json()["xksProxyFleetSize"].as_u64().expect("fleet size")
}

/// A node's id (kept in its data directory).
fn node_id(server: &TestServer) -> String {
    std::fs::read_to_string(server.path().join(keyhold::cluster::NODE_ID_FILE))
        .expect("node-id file")
        .trim()
        .to_string()
}

/// The records of a node's audit log (every segment).
fn audit_records(server: &TestServer) -> Vec<Value> {
    server.running.audit.flush().expect("audit flush");
    audit_records_in(server.path())
}

/// The records of the audit log in data directory `dir` (every segment).
fn audit_records_in(dir: &Path) -> Vec<Value> {
    let mut out = Vec::new();
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .expect("data dir")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("audit.jsonl"))
        })
        .collect();
    files.sort();
    for f in files {
        for line in std::fs::read_to_string(&f).expect("audit").lines() {
            out.push(serde_json::from_str::<Value>(line).expect("record"));
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn nodes_register_count_in_health_and_one_of_them_leads() {
    let etcd = Etcd::start();
    let prefix = "members/";
    let a = on_etcd(TestServer::builder().admin(), &etcd, prefix, None)
        .start()
        .await;
    let b = on_etcd(TestServer::builder().admin(), &etcd, prefix, Some(a.path()))
        .start()
        .await;
    let c = on_etcd(TestServer::builder().admin(), &etcd, prefix, Some(a.path()))
        .start()
        .await;
    let root = a.root().await;
    let token = root.token.clone().expect("token");
    let admins: Vec<AdminClient> = [&a, &b, &c]
        .iter()
        .map(|s| s.admin().with_token(&token))
        .collect();
    let all: BTreeSet<String> = [&a, &b, &c].iter().map(|s| node_id(s)).collect();
    assert_eq!(all.len(), 3, "three distinct node ids: {all:?}");

    // Every node sees the three nodes and the same single leader.
    let mut leader = None;
    for admin in &admins {
        let list = until("three nodes and one leader", || async {
            let list = nodes(admin).await;
            (ids(&list) == all && leaders(&list).len() == 1).then_some(list)
        })
        .await;
        assert_eq!(list["backend"], "etcd");
        assert_eq!(list["registry_reachable"], true);
        assert!(all.contains(list["this_node"].as_str().expect("this node")));
        let l = leaders(&list).remove(0);
        assert_eq!(
            leader.get_or_insert(l.clone()),
            &l,
            "nodes agree on the leader"
        );
        for n in list["nodes"].as_array().expect("nodes") {
            assert_eq!(n["version"], env!("CARGO_PKG_VERSION"));
            assert!(
                n["xks_addr"]
                    .as_str()
                    .is_some_and(|s| s.starts_with("127.0.0.1:")),
                "{n}"
            );
            assert!(
                n["admin_addr"].as_str().is_some_and(|s| !s.ends_with(":0")),
                "{n}"
            );
            assert!(
                n["heartbeat_at"].as_i64() >= n["started_at"].as_i64(),
                "{n}"
            );
        }
    }
    for server in [&a, &b, &c] {
        let n = until("fleet size 3", || async {
            let n = fleet_size(server).await;
            (n == 3).then_some(n)
        })
        .await;
        assert_eq!(n, 3);
    }
    // Only admins see the nodes.
    expect_status(
        &root
            .post(
                "/api/v1/users",
                &json!({"name": "viewer", "password": "viewer password 1"}),
            )
            .await,
        201,
    );
    let viewer = a.admin().login("viewer", "viewer password 1").await;
    let r = viewer.get("/api/v1/nodes").await;
    assert_eq!(r.status, 403, "{}", String::from_utf8_lossy(&r.body));
    assert!(a.admin().get("/api/v1/nodes").await.status == 401);

    // Each node names itself in its audit records (the change above was made on A).
    let created = audit_records(&a)
        .into_iter()
        .find(|r| r["event"]["action"] == "create_user")
        .expect("create_user audited on A");
    assert_eq!(created["event"]["node"], node_id(&a).as_str());
    assert!(
        !audit_records(&b)
            .iter()
            .any(|r| r["event"]["action"] == "create_user"),
        "an admin change is audited once, by the node that made it"
    );

    // The leader stops: the others count two nodes and one of them takes the lead.
    let leader = leader.expect("leader");
    let mut up = vec![a, b, c];
    let at = up
        .iter()
        .position(|s| node_id(s) == leader)
        .expect("leader among the nodes");
    let gone = up.remove(at);
    gone.stop().await;
    for server in &up {
        let admin = server.admin().with_token(&token);
        until("two nodes and a new leader", || async {
            let list = nodes(&admin).await;
            let l = leaders(&list);
            (ids(&list).len() == 2 && l.len() == 1 && l[0] != leader).then_some(())
        })
        .await;
        until("fleet size 2", || async {
            (fleet_size(server).await == 2).then_some(())
        })
        .await;
    }
    for server in up {
        server.stop().await;
    }
}

/// Three nodes of one cluster (the first with the KMS emulator), timed by one clock.
struct Cluster {
    world: AwsWorld,
    others: Vec<TestServer>,
    _etcd: Etcd,
}

impl Cluster {
    async fn start(clock: &ManualClock) -> Cluster {
        let etcd = Etcd::start();
        let prefix = "jobs/";
        let first = on_etcd(
            TestServer::admin_only().clock(Arc::new(clock.clone())),
            &etcd,
            prefix,
            None,
        );
        let world = AwsWorld::start_with(first).await;
        let mut others = Vec::new();
        for _ in 0..2 {
            let builder = TestServer::builder()
                .without_store()
                .admin()
                .clock(Arc::new(clock.clone()));
            others.push(
                on_etcd(builder, &etcd, prefix, Some(world.server.path()))
                    .start()
                    .await,
            );
        }
        let cluster = Cluster {
            world,
            others,
            _etcd: etcd,
        };
        let root = &cluster.world.root;
        until("three nodes, one leader", || async {
            let list = nodes(root).await;
            (ids(&list).len() == 3 && leaders(&list).len() == 1).then_some(())
        })
        .await;
        cluster
    }

    fn servers(&self) -> Vec<&TestServer> {
        std::iter::once(&self.world.server)
            .chain(self.others.iter())
            .collect()
    }

    /// `scheduled_rotation` audit records of every node: (node, record).
    fn rotation_records(&self) -> Vec<(String, Value)> {
        self.servers()
            .into_iter()
            .flat_map(|s| {
                let id = node_id(s);
                audit_records(s)
                    .into_iter()
                    .filter(|r| r["event"]["action"] == "scheduled_rotation")
                    .map(move |r| (id.clone(), r))
            })
            .collect()
    }
}

/// The store's access key ids.
async fn local_keys(root: &AdminClient, path: &str) -> BTreeSet<String> {
    let listed = expect_status(&root.get(&format!("{path}/credentials")).await, 200);
    keyhold_tests::admin::access_key_ids(&listed)
        .into_iter()
        .map(str::to_string)
        .collect()
}

/// Moves the clock to `at` and waits until the store's rotation has run there.
async fn tick(clock: &ManualClock, root: &AdminClient, path: &str, at: OffsetDateTime) -> Value {
    clock.set(at);
    get_until(root, &format!("{path}/schedule"), |s| {
        s["last_run_at"] == at.unix_timestamp()
    })
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn a_scheduled_rotation_runs_once_per_tick_across_three_nodes_and_a_claimed_run_is_finished_once()
 {
    let start = time::macros::datetime!(2026-01-05 00:00 UTC);
    let clock = ManualClock::new(start);
    let cluster = Cluster::start(&clock).await;
    let world = &cluster.world;
    let mut body = world
        .linked_store_body("rotating", "ctm", "rot-health")
        .await;
    body["max_credentials"] = json!(3);
    let created = expect_status(&world.root.create_store(&body).await, 201);
    let id = created["store"]["id"].as_str().expect("id").to_string();
    let path = format!("/api/v1/stores/{id}");
    let cks = created["store"]["aws"]["custom_key_store_id"]
        .as_str()
        .expect("cks")
        .to_string();
    world.connect(&path).await;
    world
        .schedule_rotation(
            &path,
            "hourly",
            json!({"type": "cron", "expression": "0 * * * *"}),
        )
        .await;

    // Two ticks with three nodes up: each runs once (one new credential, pushed to AWS
    // KMS, one audit record on one node - the leader).
    for hour in 1..=2 {
        let before = local_keys(&world.root, &path).await;
        let records_before = cluster.rotation_records().len();
        let at = start + time::Duration::hours(hour);
        let state = tick(&clock, &world.root, &path, at).await;
        let result = state["last_result"].as_str().expect("result");
        let akid = result
            .strip_prefix("ok: ")
            .unwrap_or_else(|| panic!("{state}"));
        // Give the other nodes time to (wrongly) run it too before counting.
        tokio::time::sleep(Duration::from_secs(3)).await;
        let after = local_keys(&world.root, &path).await;
        let added: Vec<_> = after.difference(&before).collect();
        assert_eq!(added, [akid], "exactly one new credential at {at}");
        assert_eq!(world.aws_access_key(&cks).await, akid);
        let records = cluster.rotation_records();
        assert_eq!(
            records.len(),
            records_before + 1,
            "one record at {at}: {records:?}"
        );
        let (node, record) = records.last().expect("record");
        assert_eq!(record["event"]["node"], node.as_str());
        assert_eq!(record["event"]["details"]["access_key_id"], akid);
        assert!(state.get("pending").is_none_or(Value::is_null), "{state}");
    }

    // A leader died after claiming the next run: its credential is in the store and
    // the state names it as pending, AWS KMS does not have it yet.
    let master = MasterKey::load(&MasterKeySource::File(
        world.server.path().join("master.key"),
    ))
    .expect("master key");
    let store = world.server.store().clone();
    let akid = keyhold::model::generate_access_key_id();
    let secret = keyhold::model::generate_secret();
    let cred_key = keys::credential(&id, &akid);
    let record = CredentialRecord {
        access_key_id: akid.clone(),
        sealed_secret: master.seal(secret.as_bytes(), &cred_key),
        created_at_ns: OffsetDateTime::now_utc().unix_timestamp_nanos(),
        origin: "admin".into(),
    };
    let state_key = keys::rotation_state(&id);
    let entry = store.get(&state_key).expect("get").expect("rotation state");
    let mut state: RotationState = serde_json::from_slice(&entry.value).expect("state");
    state.pending = Some(akid.clone());
    store
        .commit(
            &[Condition::Revision(state_key.clone(), entry.revision)],
            vec![
                Write::Put(cred_key, serde_json::to_vec(&record).expect("json")),
                Write::Put(state_key.clone(), serde_json::to_vec(&state).expect("json")),
            ],
        )
        .expect("claim");
    let before = local_keys(&world.root, &path).await;
    assert!(before.contains(&akid));
    assert_ne!(world.aws_access_key(&cks).await, akid);
    let records_before = cluster.rotation_records().len();
    let at = start + time::Duration::hours(3);
    let state = tick(&clock, &world.root, &path, at).await;
    assert_eq!(state["last_result"], format!("ok: {akid}"), "{state}");
    tokio::time::sleep(Duration::from_secs(3)).await;
    let after = local_keys(&world.root, &path).await;
    assert!(
        after.is_subset(&before),
        "no credential besides the claimed one: {after:?}"
    );
    assert!(after.contains(&akid));
    assert_eq!(
        world.aws_access_key(&cks).await,
        akid,
        "the claimed credential reached AWS KMS"
    );
    assert_eq!(cluster.rotation_records().len(), records_before + 1);
    let shown = store.get(&state_key).expect("get").expect("state");
    let shown: RotationState = serde_json::from_slice(&shown.value).expect("state");
    assert_eq!(shown.pending, None);

    // A claim whose credential is gone (deleted meanwhile) starts a fresh run.
    let entry = store.get(&state_key).expect("get").expect("rotation state");
    let mut state: RotationState = serde_json::from_slice(&entry.value).expect("state");
    state.pending = Some(keyhold::model::generate_access_key_id());
    store
        .commit(
            &[Condition::Revision(state_key.clone(), entry.revision)],
            vec![Write::Put(
                state_key.clone(),
                serde_json::to_vec(&state).expect("json"),
            )],
        )
        .expect("claim");
    let at = start + time::Duration::hours(4);
    let state = tick(&clock, &world.root, &path, at).await;
    let fresh = state["last_result"]
        .as_str()
        .and_then(|r| r.strip_prefix("ok: "))
        .unwrap_or_else(|| panic!("{state}"))
        .to_string();
    assert!(Some(fresh.as_str()) != shown.pending.as_deref());
    assert_eq!(world.aws_access_key(&cks).await, fresh);

    for s in cluster.others {
        s.stop().await;
    }
}

/// A `keyhold` binary on `etcd` (2-second leases) with the master key and ctm key of
/// `keys`, under `root`.
async fn binary_on_etcd(
    etcd: &Etcd,
    prefix: &str,
    keys: &Path,
    root: &Path,
) -> (BinaryConfig, BinaryServer) {
    let mut cfg = BinaryConfig::new(root);
    cfg.sources = vec![shared_ctm(keys)];
    cfg.password_env = format!("KH_JOBS_ROOT_PW_{}", std::process::id());
    cfg.toml_tail = etcd_tail(etcd, prefix) + &shared_secrets(keys);
    let server = cfg.start().await;
    (cfg, server)
}

/// The node id a binary keeps in its data directory.
fn binary_node_id(cfg: &BinaryConfig) -> String {
    std::fs::read_to_string(cfg.data_dir().join(keyhold::cluster::NODE_ID_FILE))
        .expect("node-id file")
        .trim()
        .to_string()
}

/// The leader (a `keyhold` binary) is killed with SIGKILL in the middle of a scheduled
/// rotation: after it claimed the run (its new credential is in the store, named as
/// pending) and while AWS KMS had not answered it yet. Another node takes the lead when
/// the dead one's lease expires and finishes that run once, with that credential: one
/// new credential, pushed to AWS KMS, one audit record, no second run for the tick.
#[tokio::test(flavor = "multi_thread")]
async fn the_leader_killed_mid_rotation_leaves_the_run_to_another_node_which_finishes_it_once() {
    let etcd = Etcd::start();
    let prefix = "killed/";
    let keys = tempfile::tempdir().expect("tempdir");
    for file in ["master.key", "ctm.key"] {
        keyhold::secrets::generate_key_file(&keys.path().join(file)).expect("key file");
    }
    let bins = tempfile::tempdir().expect("tempdir");
    // The binary starts first: it creates `root` and leads.
    let (b_cfg, mut b) = binary_on_etcd(&etcd, prefix, keys.path(), &bins.path().join("b")).await;
    let b_id = binary_node_id(&b_cfg);
    let b_root = b.admin().login("root", &b_cfg.password).await;
    until("the binary leads", || async {
        (leaders(&nodes(&b_root).await) == [b_id.clone()]).then_some(())
    })
    .await;
    let builder = TestServer::builder().without_store().admin();
    let world = AwsWorld::start_joining(
        on_etcd(builder, &etcd, prefix, Some(keys.path())),
        &b_cfg.password,
    )
    .await;
    let (c_cfg, c) = binary_on_etcd(&etcd, prefix, keys.path(), &bins.path().join("c")).await;
    until("three nodes, the binary leading", || async {
        let list = nodes(&world.root).await;
        (ids(&list).len() == 3 && leaders(&list) == [b_id.clone()]).then_some(())
    })
    .await;

    let (id, cks) = {
        let created = expect_status(
            &world
                .root
                .create_store(&world.linked_store_body("killed", "ctm", "k-health").await)
                .await,
            201,
        );
        let store = &created["store"];
        (
            store["id"].as_str().expect("id").to_string(),
            store["aws"]["custom_key_store_id"]
                .as_str()
                .expect("cks")
                .to_string(),
        )
    };
    let path = format!("/api/v1/stores/{id}");
    world.connect(&path).await;
    let before = local_keys(&world.root, &path).await;
    // AWS KMS answers slowly from now on: the leader's push of its claimed credential
    // is still waiting when it is killed.
    world.emulator.set_latency(Duration::from_secs(6));
    world
        .schedule_rotation(
            &path,
            "minutely",
            json!({"type": "cron", "expression": "* * * * *"}),
        )
        .await;
    let store = world.server.store().clone();
    let state_key = keys::rotation_state(&id);
    let rotation_state = || -> RotationState {
        let entry = store.get(&state_key).expect("get").expect("rotation state");
        serde_json::from_slice(&entry.value).expect("state")
    };
    // The next minute's tick: the leader claims the run.
    let deadline = Instant::now() + Duration::from_secs(90);
    let pending = loop {
        let state = rotation_state();
        if let Some(akid) = state.pending.clone() {
            assert_eq!(state.last_run_at, None, "claimed, not recorded: {state:?}");
            break akid;
        }
        assert!(Instant::now() < deadline, "no run was claimed: {state:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    b.kill();
    world.emulator.set_latency(Duration::ZERO);
    assert_ne!(
        world.aws_access_key(&cks).await,
        pending,
        "the killed leader's push had not reached AWS KMS"
    );
    let state = get_until(&world.root, &format!("{path}/schedule"), |s| {
        s["last_result"] == format!("ok: {pending}")
    })
    .await;
    let tick = state["last_run_at"].as_i64().expect("last_run_at");
    assert_eq!(
        rotation_state().pending,
        None,
        "the run's record cleared the claim"
    );
    // Unassigned, so that the next minute's tick does not run while counting.
    let r = world
        .root
        .request("DELETE", &format!("{path}/schedule"), None, &[])
        .await;
    assert!(r.status == 200 || r.status == 204, "{r:?}");
    // The node list settles on one live leader, without the killed node.
    let leader = until("one live leader, the killed node gone", || async {
        let list = nodes(&world.root).await;
        let leader = leaders(&list);
        (leader.len() == 1 && leader[0] != b_id && !ids(&list).contains(&b_id)).then_some(leader)
    })
    .await;

    let after = local_keys(&world.root, &path).await;
    let added: Vec<_> = after.difference(&before).collect();
    assert_eq!(added, [&pending], "one new credential, the claimed one");
    assert_eq!(world.aws_access_key(&cks).await, pending);
    let records: Vec<(String, Value)> = [
        (node_id(&world.server), audit_records(&world.server)),
        (binary_node_id(&c_cfg), audit_records_in(&c_cfg.data_dir())),
        (b_id.clone(), audit_records_in(&b_cfg.data_dir())),
    ]
    .into_iter()
    .flat_map(|(node, records)| {
        records
            .into_iter()
            .filter(|r| r["event"]["action"] == "scheduled_rotation")
            .map(move |r| (node.clone(), r))
    })
    .collect();
    assert_eq!(records.len(), 1, "one record of the run: {records:?}");
    let (node, record) = &records[0];
    assert_eq!(node, &leader[0], "recorded by the node that finished it");
    assert_eq!(record["event"]["node"], node.as_str());
    assert_eq!(
        record["event"]["details"]["access_key_id"],
        pending.as_str()
    );
    println!("run of tick {tick} claimed by {b_id}, finished by {node}");
    drop(c);
}

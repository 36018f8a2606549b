//! A keyhold cluster losing parts of itself under load: an etcd member killed (SIGKILL)
//! and brought back during a stream of admin writes and XKS traffic on three nodes, and
//! a keyhold node (a `keyhold` process) killed during XKS traffic spread over three.

use std::{
    collections::BTreeMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU64, Ordering::SeqCst},
    },
    time::{Duration, Instant},
};

use keyhold_tests::{
    Credential, RawRequest, Sealed, TestServer, Transport, XksClient,
    admin::{AdminClient, credential_of, expect_status, health_check_key},
    bodies,
    cluster::{Cluster, clients, root_on, until},
    fixture::{self, KEY_ALL},
};
use serde_json::json;

/// Bound on every wait of these tests.
const WAIT: Duration = Duration::from_secs(120);

/// Counts of a stream of requests, and every failure in words.
#[derive(Default)]
struct Tally {
    ok: AtomicU64,
    /// The slowest answer, in microseconds.
    slowest_us: AtomicU64,
    failures: Mutex<Vec<String>>,
}

impl Tally {
    fn took(&self, since: Instant) {
        let us = since.elapsed().as_micros() as u64;
        self.slowest_us.fetch_max(us, SeqCst);
    }

    fn fail(&self, what: String) {
        self.failures.lock().expect("tally").push(what);
    }

    fn failures(&self) -> Vec<String> {
        self.failures.lock().expect("tally").clone()
    }
}

/// Encrypts on one node and decrypts the result on the next, until `stop`.
async fn xks_traffic(enc: XksClient, dec: XksClient, stop: Arc<AtomicBool>, tally: Arc<Tally>) {
    let mut i = 0u64;
    while !stop.load(SeqCst) {
        i += 1;
        let plaintext = format!("during the kill {i}");
        let body = bodies::encrypt(plaintext.as_bytes(), Some(b"aad"), false);
        let path = enc.op_path(&format!("/keys/{KEY_ALL}/encrypt"));
        let sent = Instant::now();
        let reply = enc
            .try_send(&enc.sign(RawRequest::post_json(&path, &body)))
            .await;
        tally.took(sent);
        let sealed = match reply {
            Ok(r) if r.status == 200 => Sealed::from_json(&r.json()),
            Ok(r) => {
                let text = String::from_utf8_lossy(&r.body).into_owned();
                tally.fail(format!("encrypt: {} {text}", r.status));
                continue;
            }
            Err(e) => {
                tally.fail(format!("encrypt: {e}"));
                continue;
            }
        };
        let body = bodies::decrypt(&sealed, Some(b"aad"));
        let path = dec.op_path(&format!("/keys/{KEY_ALL}/decrypt"));
        let sent = Instant::now();
        let reply = dec
            .try_send(&dec.sign(RawRequest::post_json(&path, &body)))
            .await;
        tally.took(sent);
        match reply {
            Ok(r) if r.status == 200 => {
                tally.ok.fetch_add(2, SeqCst);
            }
            Ok(r) => {
                let text = String::from_utf8_lossy(&r.body).into_owned();
                tally.fail(format!("decrypt: {} {text}", r.status));
            }
            Err(e) => tally.fail(format!("decrypt: {e}")),
        }
    }
}

/// A store whose creation was acknowledged, with every acknowledged credential.
#[derive(Debug, Clone)]
struct Made {
    name: String,
    base: String,
    creds: Vec<Credential>,
}

/// One writer: creates a store on one node and adds a credential to it on the next,
/// over and over, until `stop`; records what was acknowledged.
async fn admin_writer(
    roots: Vec<AdminClient>,
    writer: usize,
    stop: Arc<AtomicBool>,
    tally: Arc<Tally>,
    made: Arc<Mutex<BTreeMap<String, Made>>>,
) {
    let n = roots.len();
    let mut i = 0usize;
    while !stop.load(SeqCst) {
        let (on, next) = (&roots[(writer + i) % n], &roots[(writer + i + 1) % n]);
        let name = format!("w{writer}-{i}");
        i += 1;
        let body = json!({"name": name, "source": "ctm", "health_check_key": "failover-hc"});
        let sent = Instant::now();
        let reply = on
            .try_send(&on.raw("POST", "/api/v1/stores", Some(&body)))
            .await;
        tally.took(sent);
        let created = match reply {
            Ok(r) if r.status == 201 => r.json(),
            Ok(r) => {
                let text = String::from_utf8_lossy(&r.body).into_owned();
                tally.fail(format!("create store {name}: {} {text}", r.status));
                continue;
            }
            Err(e) => {
                tally.fail(format!("create store {name}: {e}"));
                continue;
            }
        };
        let id = created["store"]["id"].as_str().expect("id").to_string();
        let file = &created["credentials_file"];
        made.lock().expect("made").insert(
            id.clone(),
            Made {
                name: name.clone(),
                base: file["XksProxyUriPath"].as_str().expect("path").to_string(),
                creds: vec![credential_of(file)],
            },
        );
        tally.ok.fetch_add(1, SeqCst);
        let path = format!("/api/v1/stores/{id}/credentials");
        let sent = Instant::now();
        let reply = next
            .try_send(&next.raw("POST", &path, Some(&json!({}))))
            .await;
        tally.took(sent);
        match reply {
            Ok(r) if r.status == 201 => {
                let cred = credential_of(&r.json());
                if let Some(m) = made.lock().expect("made").get_mut(&id) {
                    m.creds.push(cred);
                }
                tally.ok.fetch_add(1, SeqCst);
            }
            Ok(r) => {
                let text = String::from_utf8_lossy(&r.body).into_owned();
                tally.fail(format!("add credential to {name}: {} {text}", r.status));
            }
            Err(e) => tally.fail(format!("add credential to {name}: {e}")),
        }
    }
}

/// Waits until `tally` has counted `more` successes beyond `from` (the stream goes
/// on), at most [`WAIT`].
async fn progress(tally: &Tally, from: u64, more: u64, what: &str) -> u64 {
    let deadline = Instant::now() + WAIT;
    loop {
        let now = tally.ok.load(SeqCst);
        if now >= from + more {
            return now;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: {} of {more} more acknowledgements within {WAIT:?}; failures: {:#?}",
            now - from,
            tally.failures()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Every acknowledged store is listed on every node, and each of its acknowledged
/// credentials authenticates on every node's XKS endpoint.
async fn check_everywhere(nodes: &[TestServer], made: &BTreeMap<String, Made>) {
    for (n, node) in nodes.iter().enumerate() {
        let root = root_on(nodes, n).await;
        let listed = expect_status(&root.get("/api/v1/stores").await, 200);
        let listed: BTreeMap<&str, &str> = listed
            .as_array()
            .expect("array")
            .iter()
            .map(|s| {
                (
                    s["id"].as_str().expect("id"),
                    s["name"].as_str().expect("name"),
                )
            })
            .collect();
        for (id, m) in made {
            assert_eq!(
                listed.get(id.as_str()),
                Some(&m.name.as_str()),
                "node {}: acknowledged store {} ({id})",
                n + 1,
                m.name
            );
            for cred in &m.creds {
                let x = XksClient::new(node.transport(), cred.clone(), &m.base);
                until(
                    &format!("node {}: credential of {}", n + 1, m.name),
                    || x.health(),
                    |r| r.status == 200,
                )
                .await;
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_etcd_member_killed_during_writes_and_traffic_loses_no_write_and_fails_no_request() {
    let mut cluster = Cluster::start();
    let nodes = cluster.start_nodes(3).await;
    let mut roots = Vec::new();
    for i in 0..nodes.len() {
        roots.push(root_on(&nodes, i).await);
    }
    expect_status(
        &roots[0]
            .create_source_key("ctm", &health_check_key("failover-hc"))
            .await,
        201,
    );
    let stop = Arc::new(AtomicBool::new(false));
    let (xks, admin) = (Arc::new(Tally::default()), Arc::new(Tally::default()));
    let made = Arc::new(Mutex::new(BTreeMap::new()));
    let xs = clients(&nodes, &Credential::a());
    let mut tasks = Vec::new();
    for i in 0..xs.len() {
        let (enc, dec) = (xs[i].clone(), xs[(i + 1) % xs.len()].clone());
        tasks.push(tokio::spawn(xks_traffic(
            enc,
            dec,
            stop.clone(),
            xks.clone(),
        )));
    }
    for w in 0..3 {
        let (roots, stop, admin, made) = (roots.clone(), stop.clone(), admin.clone(), made.clone());
        tasks.push(tokio::spawn(admin_writer(roots, w, stop, admin, made)));
    }

    let mut acks = progress(&admin, 0, 10, "before the kills").await;
    // The leader first (writes wait for an election), then a follower.
    for round in ["leader", "follower"] {
        let leader = cluster.etcd.leader().expect("a leader");
        let member = if round == "leader" {
            leader
        } else {
            (leader + 1) % 3
        };
        let (xks_before, killed_at) = (xks.ok.load(SeqCst), Instant::now());
        cluster.etcd.kill(member);
        acks = progress(&admin, acks, 10, &format!("{round} m{member} killed")).await;
        let down = killed_at.elapsed();
        cluster.etcd.restart(member);
        acks = progress(&admin, acks, 10, &format!("{round} m{member} back")).await;
        println!(
            "{round} (member m{member}) down {:.1} s: {} XKS requests served meanwhile, {acks} admin writes acknowledged so far",
            down.as_secs_f64(),
            xks.ok.load(SeqCst) - xks_before
        );
    }
    stop.store(true, SeqCst);
    for t in tasks {
        tokio::time::timeout(WAIT, t)
            .await
            .expect("a task did not stop")
            .expect("task");
    }

    let made = made.lock().expect("made").clone();
    let (xks_failures, admin_failures) = (xks.failures(), admin.failures());
    println!(
        "XKS: {} requests ok, {} failed, slowest {:.1} ms; admin: {} writes acknowledged, {} failed, slowest {:.1} ms",
        xks.ok.load(SeqCst),
        xks_failures.len(),
        xks.slowest_us.load(SeqCst) as f64 / 1000.0,
        admin.ok.load(SeqCst),
        admin_failures.len(),
        admin.slowest_us.load(SeqCst) as f64 / 1000.0
    );
    assert!(
        xks_failures.is_empty(),
        "XKS requests failed: {xks_failures:#?}"
    );
    assert!(
        admin_failures.is_empty(),
        "admin writes failed (each etcd call is tried on another member): {admin_failures:#?}"
    );
    check_everywhere(&nodes, &made).await;
    println!(
        "{} acknowledged stores ({} credentials) present on all 3 nodes",
        made.len(),
        made.values().map(|m| m.creds.len()).sum::<usize>()
    );
    for n in nodes {
        n.stop().await;
    }
}

/// A client in front of the nodes, as a load balancer: round-robin over the nodes it
/// believes up; a request whose connection fails (refused, reset) is sent again to the
/// next node, and that node is taken out of the rotation.
struct Balancer {
    nodes: Vec<Transport>,
    up: Vec<bool>,
    next: usize,
}

/// What the clients behind balancers saw.
#[derive(Default)]
struct Seen {
    served: AtomicU64,
    /// Transport failures by node.
    died: Mutex<BTreeMap<usize, Vec<String>>>,
    /// Answers that were not 200, and requests no node served.
    failed: Mutex<Vec<String>>,
}

impl Balancer {
    /// Sends Encrypt to the next node up; on a transport failure, to the next one.
    async fn encrypt(&mut self, cred: &Credential, plaintext: &[u8], seen: &Seen) {
        for _ in 0..self.nodes.len() {
            let Some(i) = (0..self.nodes.len())
                .map(|k| (self.next + k) % self.nodes.len())
                .find(|&i| self.up[i])
            else {
                break;
            };
            self.next = i + 1;
            let x = XksClient::new(self.nodes[i].clone(), cred.clone(), fixture::BASE);
            let body = bodies::encrypt(plaintext, None, false);
            let path = x.op_path(&format!("/keys/{KEY_ALL}/encrypt"));
            match x
                .try_send(&x.sign(RawRequest::post_json(&path, &body)))
                .await
            {
                Ok(r) if r.status == 200 => {
                    seen.served.fetch_add(1, SeqCst);
                    return;
                }
                Ok(r) => {
                    let text = String::from_utf8_lossy(&r.body).into_owned();
                    seen.failed
                        .lock()
                        .expect("seen")
                        .push(format!("node {i}: {} {text}", r.status));
                    return;
                }
                Err(e) => {
                    seen.died
                        .lock()
                        .expect("seen")
                        .entry(i)
                        .or_default()
                        .push(e.to_string());
                    self.up[i] = false;
                }
            }
        }
        seen.failed
            .lock()
            .expect("seen")
            .push("no node served the request".into());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_killed_node_costs_a_retrying_client_only_the_connections_that_died() {
    const CLIENTS: usize = 6;
    const KILLED: usize = 1;
    let cluster = Cluster::start();
    let root = tempfile::tempdir().expect("tempdir");
    let (configs, mut servers) = cluster.start_binaries(root.path(), 3).await;
    let transports: Vec<Transport> = servers.iter().map(|s| s.transport()).collect();
    let cred = Credential::a();
    // Sealed on the node about to die, for the others to open afterwards.
    let on_killed = XksClient::new(transports[KILLED].clone(), cred.clone(), fixture::BASE);
    let sealed = on_killed
        .encrypt_ok(KEY_ALL, b"before the kill", None)
        .await;

    let stop = Arc::new(AtomicBool::new(false));
    let seen = Arc::new(Seen::default());
    let tasks: Vec<_> = (0..CLIENTS)
        .map(|c| {
            let mut lb = Balancer {
                nodes: transports.clone(),
                up: vec![true; transports.len()],
                next: c,
            };
            let (stop, seen, cred) = (stop.clone(), seen.clone(), cred.clone());
            tokio::spawn(async move {
                let mut i = 0u64;
                while !stop.load(SeqCst) {
                    i += 1;
                    lb.encrypt(&cred, format!("client {c} request {i}").as_bytes(), &seen)
                        .await;
                }
            })
        })
        .collect();
    let deadline = Instant::now() + WAIT;
    while seen.served.load(SeqCst) < 300 {
        assert!(Instant::now() < deadline, "traffic did not start");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let before = seen.served.load(SeqCst);
    servers[KILLED].kill();
    while seen.served.load(SeqCst) < before + 600 {
        assert!(Instant::now() < deadline, "traffic stalled after the kill");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    stop.store(true, SeqCst);
    for t in tasks {
        tokio::time::timeout(WAIT, t)
            .await
            .expect("a client did not stop")
            .expect("client");
    }

    let died = seen.died.lock().expect("seen").clone();
    let failed = seen.failed.lock().expect("seen").clone();
    let on_killed = died.get(&KILLED).map_or(0, Vec::len);
    println!(
        "{} requests served; node {KILLED} killed after {before}; {on_killed} connections to it failed and were retried on another node; other failures: {failed:?}",
        seen.served.load(SeqCst)
    );
    assert!(failed.is_empty(), "requests failed: {failed:#?}");
    assert_eq!(
        died.keys().copied().collect::<Vec<_>>(),
        [KILLED],
        "only connections to the killed node fail: {died:#?}"
    );
    assert!(
        (1..=CLIENTS).contains(&on_killed),
        "each client loses at most the one request it had on the killed node: {died:#?}"
    );

    // The survivors open what the dead node sealed; the node comes back on its data
    // directory and serves again.
    for i in [0, 2] {
        let x = XksClient::new(transports[i].clone(), cred.clone(), fixture::BASE);
        assert_eq!(
            x.decrypt_ok(KEY_ALL, &sealed, None).await,
            b"before the kill"
        );
    }
    let back = configs[KILLED].start().await;
    let x = XksClient::new(back.transport(), cred.clone(), fixture::BASE);
    assert_eq!(
        x.decrypt_ok(KEY_ALL, &sealed, None).await,
        b"before the kill"
    );
    drop(servers);
}

//! etcd unreachable (real etcd processes): the data plane keeps serving from its last
//! snapshot (ctm keys encrypt and decrypt, the load balancer's health stays ACTIVE,
//! the key source reports DEGRADED), admin requests that need the store are refused
//! with 503 `store_unavailable`, `keyhold_store_reachable` drops to 0 with one warning,
//! and the node reconnects by itself: writes succeed again, and what another node
//! changed while this one was cut off reaches it.

use std::{
    path::Path,
    sync::OnceLock,
    time::{Duration, Instant},
};

use keyhold_tests::{
    Credential, RawRequest, Reply, Sealed, TestServer, Transport, XksClient,
    admin::{credential_of, expect_error, expect_status},
    cluster::with_keys_of,
    etcd::Etcd,
    fixture::{KEY_ALL, LB_HEALTH},
    logs::CapturedLogs,
    paths::toml_str,
    tcp_proxy::TcpProxy,
};
use serde_json::json;

/// The log of every node of this test binary (one subscriber per process).
fn logs() -> &'static CapturedLogs {
    static LOGS: OnceLock<CapturedLogs> = OnceLock::new();
    LOGS.get_or_init(|| CapturedLogs::install("warn,keyhold=info"))
}

/// A node on etcd at `endpoint` with the admin API, metrics and a 1 s health cache;
/// with `shared`, it uses that node's master key and ctm key file.
async fn node(endpoint: &str, shared: Option<&Path>) -> TestServer {
    let tail = format!(
        "\n[store]\nbackend = \"etcd\"\n[store.etcd]\nendpoints = [{}]\nprefix = \"outage-test/\"\ntimeout_ms = 2000\n",
        toml_str(endpoint)
    );
    let mut builder = TestServer::builder()
        .admin()
        .metrics()
        .xks_line("health_cache_seconds = 1")
        .toml_tail(&tail);
    if let Some(dir) = shared {
        builder = with_keys_of(builder, dir);
    }
    builder.start().await
}

/// The value of `keyhold_store_reachable` on `server`'s `/metrics`.
async fn store_reachable(server: &TestServer) -> String {
    let addr = server.running.metrics_addr.expect("metrics listener");
    let conn = Transport::plain(addr).connect().await.expect("connect");
    let reply = tokio::time::timeout(
        Duration::from_secs(20),
        conn.send(&RawRequest::new("GET", "/metrics", "")),
    )
    .await
    .expect("metrics answer in time")
    .expect("metrics transport");
    let text = String::from_utf8(reply.body.to_vec()).expect("UTF-8");
    assert!(
        text.contains("# TYPE keyhold_store_reachable gauge"),
        "{text}"
    );
    text.lines()
        .find_map(|l| l.strip_prefix("keyhold_store_reachable "))
        .expect("keyhold_store_reachable sample")
        .to_string()
}

/// Polls until `store_reachable` is `value` (the follower notices on its own).
async fn until_reachable_is(server: &TestServer, value: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let now = store_reachable(server).await;
        if now == value {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "keyhold_store_reachable stayed {now}, expected {value}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Polls `f` until `done` holds for its reply.
async fn until<F, Fut>(what: &str, mut f: F, done: impl Fn(&Reply) -> bool) -> Reply
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Reply>,
{
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let reply = f().await;
        if done(&reply) {
            return reply;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: still {} {}\n--- log ---\n{}",
            reply.status,
            String::from_utf8_lossy(&reply.body),
            logs().text()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The key's first encryption on a node (it reserves the key's first block of AES-GCM
/// invocations in the store: a commit within the key-source deadline, retried here
/// when a busy test machine misses it).
async fn warm_up(xks: &XksClient, plaintext: &[u8], aad: Option<&[u8]>) -> Sealed {
    let reply = until(
        "the key's first encryption on this node",
        || xks.encrypt(KEY_ALL, plaintext, aad, false),
        |r| r.status == 200,
    )
    .await;
    Sealed::from_json(&reply.ok_json())
}

/// The `ekmFleetDetails` statuses of a GetHealthStatus reply.
fn ekm_statuses(reply: &Reply) -> Vec<String> {
    reply.ok_json()["ekmFleetDetails"]
        .as_array()
        .expect("ekmFleetDetails")
        .iter()
        .map(|n| {
            n["healthStatus"]
                .as_str()
                .expect("healthStatus")
                .to_string()
        })
        .collect()
}

/// Log lines containing every one of `parts`.
fn log_lines(parts: &[&str]) -> usize {
    logs()
        .text()
        .lines()
        .filter(|l| parts.iter().all(|p| l.contains(p)))
        .count()
}

#[tokio::test(flavor = "multi_thread")]
async fn with_etcd_stopped_crypto_goes_on_admin_gets_503_and_the_node_reconnects() {
    logs();
    let mut etcd = Etcd::start();
    let a = node(&etcd.url, None).await;
    let (xks, root) = (a.client(), a.root().await);
    let store = format!("/api/v1/stores/{}", a.store_id());
    // Used before the outage: the key's cached material and encryption block.
    let before = warm_up(&xks, b"sealed before", Some(b"aad")).await;
    assert_eq!(store_reachable(&a).await, "1");

    etcd.stop();

    // Crypto keeps working from the snapshot and the cached keys, past the ctm cache's
    // revalidation age (2 s), with both credentials of the snapshot.
    let other = xks.with_cred(Credential::b());
    let busy_until = Instant::now() + Duration::from_secs(3);
    while Instant::now() < busy_until {
        let sealed = xks.encrypt_ok(KEY_ALL, b"during the outage", None).await;
        assert_eq!(
            other.decrypt_ok(KEY_ALL, &sealed, None).await,
            b"during the outage"
        );
        assert_eq!(
            xks.decrypt_ok(KEY_ALL, &before, Some(b"aad")).await,
            b"sealed before"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    until_reachable_is(&a, "0").await;

    // Admin writes and reads that need the store: 503, naming etcd.
    let r = root.post(&format!("{store}/credentials"), &json!({})).await;
    let msg = expect_error(&r, 503, "store_unavailable");
    assert!(
        msg.contains("etcd") && msg.contains(&etcd.url) && msg.contains("nothing was changed"),
        "{msg}"
    );
    let msg = expect_error(&root.get("/api/v1/stores").await, 503, "store_unavailable");
    assert!(msg.contains("unreachable"), "{msg}");
    expect_error(
        &a.admin().try_login("root", &a.root_password()).await,
        503,
        "store_unavailable",
    );

    // Health: the load balancer's check stays ACTIVE (this node serves crypto), the key
    // source reports DEGRADED (its store is gone).
    until(
        "ctm reports DEGRADED",
        || xks.health(),
        |r| r.status == 200 && ekm_statuses(r) == ["DEGRADED"],
    )
    .await;
    let lb = Transport::plain(a.running.xks_addr)
        .connect()
        .await
        .expect("connect")
        .send(&RawRequest::new("GET", LB_HEALTH, ""))
        .await
        .expect("LB health");
    assert_eq!(
        lb.status.as_u16(),
        200,
        "{}\n{}",
        String::from_utf8_lossy(&lb.body),
        logs().text()
    );
    // One warning for the whole outage, naming this etcd.
    assert_eq!(
        log_lines(&["etcd is unreachable", &etcd.url]),
        1,
        "{}",
        logs().text()
    );

    etcd.restart();
    until_reachable_is(&a, "1").await;
    assert!(log_lines(&["etcd is reachable again", &etcd.url]) >= 1);
    // Writes succeed, and the watch is back: the new credential is served.
    let (path, empty) = (format!("{store}/credentials"), json!({}));
    let r = until(
        "an admin write after the restart",
        || root.post(&path, &empty),
        |r| r.status == 201,
    )
    .await;
    let with_new = xks.with_cred(credential_of(&expect_status(&r, 201)));
    until(
        "the credential made after the restart",
        || with_new.health(),
        |r| r.status == 200,
    )
    .await;
    until(
        "ctm reports ACTIVE",
        || xks.health(),
        |r| r.status == 200 && ekm_statuses(r) == ["ACTIVE"],
    )
    .await;
    a.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_node_cut_off_from_etcd_catches_up_with_what_changed_meanwhile() {
    logs();
    let etcd = Etcd::start();
    let mut link = TcpProxy::start(&etcd.url);
    // Node A reaches etcd through the link; node B directly.
    let a = node(&link.url(), None).await;
    let b = node(&etcd.url, Some(a.path())).await;
    // The root user is the cluster's (A made it; B has no password file of its own).
    let root = b.admin().login("root", &a.root_password()).await;
    let store = format!("/api/v1/stores/{}", b.store_id());
    let r = root.post(&format!("{store}/credentials"), &json!({})).await;
    let doomed = credential_of(&expect_status(&r, 201));
    let on_a: XksClient = a.client();
    let doomed_on_a = on_a.with_cred(doomed.clone());
    until(
        "B's credential on A",
        || doomed_on_a.health(),
        |r| r.status == 200,
    )
    .await;
    let before = warm_up(&on_a, b"before the cut", None).await;

    link.cut();
    until_reachable_is(&a, "0").await;
    assert_eq!(store_reachable(&b).await, "1");
    // B changes the cluster: one credential deleted, another added.
    let r = root
        .delete(&format!("{store}/credentials/{}", doomed.access_key_id))
        .await;
    assert!(r.status.is_success(), "{}", r.status);
    let r = root.post(&format!("{store}/credentials"), &json!({})).await;
    let fresh = credential_of(&expect_status(&r, 201));
    // A goes on serving its last snapshot: crypto works, the deleted credential still
    // authenticates there, the new one not yet.
    assert_eq!(
        on_a.decrypt_ok(KEY_ALL, &before, None).await,
        b"before the cut"
    );
    on_a.encrypt_ok(KEY_ALL, b"cut off", None).await;
    doomed_on_a
        .health()
        .await
        .assert_status(200, "the snapshot's credential");
    let fresh_on_a = on_a.with_cred(fresh);
    fresh_on_a.assert_unauthenticated().await;
    assert_eq!(log_lines(&["etcd is unreachable", &link.url()]), 1);

    link.restore();
    until_reachable_is(&a, "1").await;
    // What B did meanwhile reaches A.
    until(
        "the deletion made during the cut, on A",
        || doomed_on_a.health(),
        |r| r.status == 401,
    )
    .await
    .assert_error(401, "AuthenticationFailedException");
    until(
        "the credential added during the cut, on A",
        || fresh_on_a.health(),
        |r| r.status == 200,
    )
    .await;
    // And A's admin writes succeed again.
    let on_a_root = a.root().await;
    expect_status(
        &on_a_root
            .post(&format!("{store}/credentials"), &json!({}))
            .await,
        201,
    );
    b.stop().await;
    a.stop().await;
}

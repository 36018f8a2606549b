//! Crash safety of the management plane: the real `keyhold` binary is killed with
//! SIGKILL during a burst of concurrent admin writes and restarted on the same data
//! directory, three times. Every acknowledged change must be there, no store may be
//! half made, and the audit chain must verify and hold a record of every acknowledged
//! change.

use std::{
    collections::{BTreeMap, HashMap},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst},
    },
    time::{Duration, Instant},
};

use keyhold::{
    model::keys,
    store::{EmbeddedStore, Store},
};
use keyhold_tests::{
    Credential, XksClient,
    admin::access_key_ids,
    admin::{AdminClient, credential_of, expect_status},
    process::{BinaryConfig, BinaryServer},
};
use serde_json::{Value, json};

/// The health-check source key (ALL usage, neither exportable nor deletable).
const HC: &str = "crash-hc";
/// The source key behind every HYOK key.
const DATA: &str = "crash-data";
const TASKS: usize = 8;
const ROUNDS: usize = 3;
/// Bound on every wait of the test.
const WAIT: Duration = Duration::from_secs(120);

/// What an acknowledged sequence of requests says a HYOK key must be.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Known {
    /// Acknowledged: must be there.
    Present,
    /// Acknowledged deletion: must be gone.
    Deleted,
    /// A request about it was in flight at the kill: either is fine.
    Unknown,
}

/// One store as the acknowledged responses describe it.
#[derive(Debug, Clone)]
struct StoreModel {
    id: String,
    name: String,
    /// `XksProxyUriPath`.
    base: String,
    /// Every acknowledged credential (none is evicted: 2 < max 20).
    creds: Vec<Credential>,
    /// `Some` when the last request about it was acknowledged.
    blocked: Option<bool>,
    keys: BTreeMap<String, Known>,
    /// The store itself: Present, Deleted (acknowledged deletion) or Unknown.
    exists: Known,
}

/// An acknowledged change the audit log must record: (action, object, access key id).
type AuditKey = (String, String, String);

#[derive(Default)]
struct Model {
    stores: BTreeMap<String, StoreModel>,
    audit: Vec<AuditKey>,
    /// Unexpected answers (anything but success before the kill).
    errors: Vec<String>,
}

struct Burst {
    model: Mutex<Model>,
    acks: AtomicUsize,
    killed: AtomicBool,
}

impl Burst {
    fn ack(&self, audit: AuditKey, f: impl FnOnce(&mut Model)) {
        let mut m = self.model.lock().expect("model");
        f(&mut m);
        m.audit.push(audit);
        drop(m);
        self.acks.fetch_add(1, SeqCst);
    }

    /// Records an acknowledged change of store `name`.
    fn ack_store(&self, audit: AuditKey, name: &str, f: impl FnOnce(&mut StoreModel)) {
        self.ack(audit, |m| f(m.stores.get_mut(name).expect("store")));
    }

    fn update(&self, name: &str, f: impl FnOnce(&mut StoreModel)) {
        let mut m = self.model.lock().expect("model");
        f(m.stores.get_mut(name).expect("store in model"));
    }

    /// Sends a request; `None` when the server is gone (after the kill) or answered
    /// something else than `ok` (recorded as an error unless the server was killed).
    async fn send(
        &self,
        admin: &AdminClient,
        method: &str,
        path: &str,
        body: Option<&Value>,
        ok: u16,
    ) -> Option<Value> {
        match admin.try_send(&admin.raw(method, path, body)).await {
            Ok(r) if r.status.as_u16() == ok => Some(if r.body.is_empty() {
                Value::Null
            } else {
                r.json()
            }),
            Ok(r) => {
                // A refusal is never expected: every store belongs to one task.
                self.model.lock().expect("model").errors.push(format!(
                    "{method} {path}: {} {}",
                    r.status,
                    String::from_utf8_lossy(&r.body)
                ));
                None
            }
            Err(e) => {
                if !self.killed.load(SeqCst) {
                    self.model
                        .lock()
                        .expect("model")
                        .errors
                        .push(format!("{method} {path} before the kill: {e}"));
                }
                None
            }
        }
    }
}

/// One writer: create store -> add credential -> create HYOK key -> block -> unblock
/// (mostly) -> delete the key (every other time) -> delete the store (sometimes), until
/// the server is gone.
async fn writer(burst: Arc<Burst>, admin: AdminClient, round: usize, task: usize) {
    for i in 0.. {
        if burst.killed.load(SeqCst) {
            return;
        }
        let name = format!("r{round}-t{task}-{i}");
        let body = json!({"name": name, "source": "ctm", "health_check_key": HC});
        let Some(created) = burst
            .send(&admin, "POST", "/api/v1/stores", Some(&body), 201)
            .await
        else {
            return;
        };
        let id = created["store"]["id"].as_str().expect("id").to_string();
        let file = &created["credentials_file"];
        let first = credential_of(file);
        let base = file["XksProxyUriPath"]
            .as_str()
            .expect("uri path")
            .to_string();
        let audit = audit_key(
            "create_store",
            format!("store/{name}"),
            &first.access_key_id,
        );
        burst.ack(audit, |m| {
            m.stores.insert(
                name.clone(),
                StoreModel {
                    id: id.clone(),
                    name: name.clone(),
                    base,
                    creds: vec![first],
                    blocked: Some(false),
                    keys: BTreeMap::new(),
                    exists: Known::Present,
                },
            );
        });
        let store = format!("/api/v1/stores/{id}");

        let path = format!("{store}/credentials");
        let Some(file) = burst
            .send(&admin, "POST", &path, Some(&json!({})), 201)
            .await
        else {
            return;
        };
        let second = credential_of(&file);
        let audit = audit_key("add_credential", store_object(&id), &second.access_key_id);
        burst.ack_store(audit, &name, |s| s.creds.push(second));

        let ext = format!("k-{i}");
        burst.update(&name, |s| {
            s.keys.insert(ext.clone(), Known::Unknown);
        });
        // A source key backs one HYOK key at most: each store's key gets its own.
        let source_key = format!("{DATA}-{name}");
        let body = json!({"name": source_key, "usage": ["encrypt", "decrypt"],
                          "exportable": false, "deletable": false});
        let Some(_) = burst
            .send(&admin, "POST", "/api/v1/sources/ctm/keys", Some(&body), 201)
            .await
        else {
            return;
        };
        let body = json!({"external_id": ext, "source_key": source_key});
        let path = format!("{store}/keys");
        let Some(_) = burst.send(&admin, "POST", &path, Some(&body), 201).await else {
            return;
        };
        let audit = audit_key("create_hyok_key", format!("store/{id}/key/{ext}"), "");
        burst.ack_store(audit, &name, |s| {
            s.keys.insert(ext.clone(), Known::Present);
        });

        let mut steps = vec![("block", true)];
        if i % 3 != 1 {
            steps.push(("unblock", false));
        }
        for (action, blocked) in steps {
            burst.update(&name, |s| s.blocked = None);
            let path = format!("{store}/{action}");
            let body = json!({});
            let Some(_) = burst.send(&admin, "POST", &path, Some(&body), 200).await else {
                return;
            };
            let audit = audit_key(format!("{action}_store"), store_object(&id), "");
            burst.ack_store(audit, &name, |s| s.blocked = Some(blocked));
        }

        if i % 2 == 0 {
            burst.update(&name, |s| {
                s.keys.insert(ext.clone(), Known::Unknown);
            });
            let path = format!("{store}/keys/{ext}");
            let Some(_) = burst.send(&admin, "DELETE", &path, None, 204).await else {
                return;
            };
            let audit = audit_key("delete_hyok_key", format!("store/{id}/key/{ext}"), "");
            burst.ack_store(audit, &name, |s| {
                s.keys.insert(ext.clone(), Known::Deleted);
            });
            if i % 4 == 2 {
                burst.update(&name, |s| s.exists = Known::Unknown);
                let path = format!("{store}?confirm=true");
                let Some(_) = burst.send(&admin, "DELETE", &path, None, 204).await else {
                    return;
                };
                let audit = audit_key("delete_store", store_object(&id), "");
                burst.ack_store(audit, &name, |s| s.exists = Known::Deleted);
            }
        }
    }
}

/// An audit record to expect: (action, object, access key id).
fn audit_key(action: impl Into<String>, object: String, access_key_id: &str) -> AuditKey {
    (action.into(), object, access_key_id.to_string())
}

fn store_object(id: &str) -> String {
    format!("store/{id}")
}

/// A number in `lo..hi` that differs from run to run (when to kill).
fn jitter(lo: usize, hi: usize) -> usize {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos() as usize)
        .unwrap_or_default();
    lo + (nanos / 1000) % (hi - lo)
}

/// Runs the burst until `kill_after` more acknowledgements, then SIGKILLs the server
/// with requests in flight.
async fn burst_and_kill(
    server: &mut BinaryServer,
    burst: &Arc<Burst>,
    root: &AdminClient,
    round: usize,
) {
    burst.killed.store(false, SeqCst);
    let start = burst.acks.load(SeqCst);
    let kill_after = jitter(100, 300);
    let tasks: Vec<_> = (0..TASKS)
        .map(|t| tokio::spawn(writer(burst.clone(), root.clone(), round, t)))
        .collect();
    let deadline = Instant::now() + WAIT;
    while burst.acks.load(SeqCst) - start < kill_after {
        let errors = burst.model.lock().expect("model").errors.clone();
        assert!(
            errors.is_empty(),
            "round {round}: unexpected answers: {errors:#?}"
        );
        assert!(
            Instant::now() < deadline,
            "round {round}: only {} of {kill_after} acknowledgements within {WAIT:?}\n{}",
            burst.acks.load(SeqCst) - start,
            server.log_text()
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    burst.killed.store(true, SeqCst);
    server.kill();
    for t in tasks {
        tokio::time::timeout(WAIT, t)
            .await
            .unwrap_or_else(|_| panic!("round {round}: a writer did not stop within {WAIT:?}"))
            .expect("writer task");
    }
    println!(
        "round {round}: killed after {} acknowledgements (target {kill_after})",
        burst.acks.load(SeqCst) - start
    );
}

/// Every acknowledged change is served after the restart; no listed store is half made.
async fn check_acknowledged(
    server: &BinaryServer,
    root: &AdminClient,
    burst: &Burst,
    round: usize,
) {
    let model = burst.model.lock().expect("model").stores.clone();
    let listed = expect_status(&root.get("/api/v1/stores").await, 200);
    let listed: HashMap<String, Value> = listed
        .as_array()
        .expect("array")
        .iter()
        .map(|s| (s["id"].as_str().expect("id").to_string(), s.clone()))
        .collect();
    // Source keys created before the first burst.
    for key in [HC, DATA] {
        let r = root.get(&format!("/api/v1/sources/ctm/keys/{key}")).await;
        expect_status(&r, 200);
    }
    // No half-made store: each has at least one credential (the first one is written
    // in the store's own transaction).
    for (id, s) in &listed {
        let creds = expect_status(
            &root.get(&format!("/api/v1/stores/{id}/credentials")).await,
            200,
        );
        assert!(
            !creds.as_array().expect("array").is_empty(),
            "after restart {round}: store {s} has no credential"
        );
    }
    let transport = server.transport();
    let mut checked = (0, 0, 0);
    for m in model.values() {
        let ctx = format!("after restart {round}: store '{}' ({})", m.name, m.id);
        let listed = listed.get(&m.id);
        match m.exists {
            Known::Deleted => {
                assert!(listed.is_none(), "{ctx}: deleted (acknowledged) but listed");
                let r = root.get(&format!("/api/v1/stores/{}", m.id)).await;
                assert_eq!(
                    r.status.as_u16(),
                    404,
                    "{ctx}: deleted but GET answers {r:?}"
                );
                let xks = XksClient::new(transport.clone(), m.creds[0].clone(), &m.base);
                xks.health()
                    .await
                    .assert_error(404, "InvalidUriPathException");
                continue;
            }
            Known::Unknown if listed.is_none() => continue,
            _ => {}
        }
        let s = listed.unwrap_or_else(|| panic!("{ctx}: acknowledged store is not listed"));
        checked.0 += 1;
        assert_eq!(s["name"], m.name.as_str(), "{ctx}");
        assert_eq!(s["xks_uri_path"], m.base.as_str(), "{ctx}");
        if let Some(b) = m.blocked {
            assert_eq!(
                s["blocked"], b,
                "{ctx}: blocked flag of the last acknowledged change"
            );
        }
        let blocked = s["blocked"].as_bool().expect("blocked");
        // Credentials: listed, and they authenticate on the XKS endpoint.
        let creds = expect_status(
            &root
                .get(&format!("/api/v1/stores/{}/credentials", m.id))
                .await,
            200,
        );
        let akids: Vec<&str> = access_key_ids(&creds);
        for c in &m.creds {
            checked.1 += 1;
            assert!(
                akids.contains(&c.access_key_id.as_str()),
                "{ctx}: acknowledged credential {} not listed ({akids:?})",
                c.access_key_id
            );
            let xks = XksClient::new(transport.clone(), c.clone(), &m.base);
            let r = xks.health().await;
            if blocked {
                r.assert_error(400, "InvalidStateException");
            } else {
                r.ok_json();
            }
        }
        // HYOK keys.
        let listed_keys = expect_status(
            &root.get(&format!("/api/v1/stores/{}/keys", m.id)).await,
            200,
        );
        let exts: Vec<&str> = listed_keys
            .as_array()
            .expect("array")
            .iter()
            .map(|k| k["external_id"].as_str().expect("external_id"))
            .collect();
        for (ext, known) in &m.keys {
            match known {
                Known::Present => {
                    checked.2 += 1;
                    assert!(
                        exts.contains(&ext.as_str()),
                        "{ctx}: acknowledged key {ext} missing ({exts:?})"
                    );
                    if !blocked {
                        let xks = XksClient::new(transport.clone(), m.creds[0].clone(), &m.base);
                        let md = xks.metadata(ext).await.ok_json();
                        assert_eq!(md["keyStatus"], "ENABLED", "{ctx}: {ext}: {md}");
                    }
                }
                Known::Deleted => {
                    assert!(
                        !exts.contains(&ext.as_str()),
                        "{ctx}: deleted key {ext} is back"
                    );
                }
                Known::Unknown => {}
            }
        }
    }
    println!(
        "after restart {round}: {} stores listed; checked {} stores, {} credentials, {} HYOK keys",
        listed.len(),
        checked.0,
        checked.1,
        checked.2
    );
}

/// The audit chain verifies (library and `keyhold audit-verify`) and holds an `ok`
/// record of every acknowledged change.
fn check_audit(cfg: &BinaryConfig, burst: &Burst) {
    let path = cfg.audit_path();
    // The chain is keyed under the master key of the configuration.
    let config = keyhold::config::Config::load(Some(&cfg.config_path())).expect("config");
    let master =
        keyhold::secrets::MasterKey::load(&config.master_key_source()).expect("master key");
    let key = keyhold::audit::ChainKey::from_master(&master);
    let report = keyhold::audit::verify_all(&path, Some(&key), None).expect("audit log");
    assert!(
        report.is_intact(),
        "audit chain does not verify: {:?}",
        report.problems()
    );
    let count = report.last_seq;
    let (ok, out) = cfg.audit_verify_cli();
    assert!(ok, "keyhold audit-verify failed: {out}");
    assert!(out.contains(&format!("{count} records")), "{out}");
    let text = std::fs::read_to_string(&path).expect("audit log");
    let mut recorded: HashMap<AuditKey, usize> = HashMap::new();
    for line in text.lines() {
        let rec: keyhold::audit::Record = serde_json::from_str(line).expect("record");
        let e = &rec.event;
        if e["kind"] != "admin" || e["outcome"] != "ok" {
            continue;
        }
        let key = (
            e["action"].as_str().unwrap_or_default().to_string(),
            e["object"].as_str().unwrap_or_default().to_string(),
            e["details"]["access_key_id"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
        );
        *recorded.entry(key).or_default() += 1;
    }
    let model = burst.model.lock().expect("model");
    let mut missing = Vec::new();
    for key in &model.audit {
        match recorded.get_mut(key) {
            Some(n) if *n > 0 => *n -= 1,
            _ => missing.push(key.clone()),
        }
    }
    assert!(
        missing.is_empty(),
        "{} acknowledged changes have no audit record: {missing:#?}",
        missing.len()
    );
    for (n, line) in text.lines().enumerate() {
        for s in model.stores.values() {
            for c in &s.creds {
                assert!(
                    !line.contains(&c.secret),
                    "a secret in audit record {}",
                    n + 1
                );
            }
        }
    }
    println!(
        "audit: {count} records, chain intact; {} acknowledged changes all recorded",
        model.audit.len()
    );
}

/// The store file itself: every store record has its name and prefix index and a
/// credential; every index points at a store; nothing belongs to a missing store.
fn check_store_file(cfg: &BinaryConfig) {
    let store = EmbeddedStore::open(&cfg.data_dir().join("keyhold.redb")).expect("open store");
    let mut ids = Vec::new();
    for e in store.scan(keys::STORES).expect("scan") {
        let rec: Value = serde_json::from_slice(&e.value).expect("store record");
        let id = rec["id"].as_str().expect("id").to_string();
        let name = rec["name"].as_str().expect("name");
        let prefix = rec["uri_path_prefix"].as_str().expect("prefix");
        for index in [keys::store_name_index(name), keys::prefix_index(prefix)] {
            let entry = store
                .get(&index)
                .expect("get")
                .unwrap_or_else(|| panic!("store {id} ('{name}') lacks {index}"));
            assert_eq!(entry.value, id.as_bytes(), "{index} points elsewhere");
        }
        assert!(
            !store
                .scan(&keys::credentials_of(&id))
                .expect("scan")
                .is_empty(),
            "store {id} ('{name}') has no credential"
        );
        ids.push(id);
    }
    for prefix in ["index/store-name/", "index/prefix/"] {
        for e in store.scan(prefix).expect("scan") {
            let id = String::from_utf8(e.value.clone()).expect("utf-8");
            assert!(ids.contains(&id), "{} points at missing store {id}", e.key);
        }
    }
    for prefix in [keys::CREDENTIALS, keys::HYOK_KEYS] {
        for e in store.scan(prefix).expect("scan") {
            let owner = e.key[prefix.len()..].split('/').next().unwrap_or_default();
            assert!(
                ids.iter().any(|i| i == owner),
                "{} belongs to a missing store",
                e.key
            );
        }
    }
    println!(
        "store file: {} stores, indexes and credentials consistent",
        ids.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn acknowledged_admin_changes_survive_sigkill_and_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut cfg = BinaryConfig::new(dir.path());
    cfg.password_env = format!("KH_CRASH_ROOT_PW_{}", std::process::id());
    let burst = Arc::new(Burst {
        model: Mutex::new(Model::default()),
        acks: AtomicUsize::new(0),
        killed: AtomicBool::new(false),
    });

    for round in 0..ROUNDS {
        let mut server = cfg.start().await;
        let root = server.admin().login("root", &cfg.password).await;
        if round == 0 {
            for (name, usage) in [
                (HC, json!(["encrypt", "decrypt", "wrap", "unwrap"])),
                (DATA, json!(["encrypt", "decrypt"])),
            ] {
                let r = root
                    .create_source_key("ctm", &json!({"name": name, "usage": usage, "exportable": false, "deletable": false})).await;
                expect_status(&r, 201);
            }
        } else {
            check_acknowledged(&server, &root, &burst, round).await;
        }
        burst_and_kill(&mut server, &burst, &root, round).await;
    }

    // The last restart: everything of every round is there; then a clean stop, and the
    // files themselves are checked.
    let mut server = cfg.start().await;
    let root = server.admin().login("root", &cfg.password).await;
    check_acknowledged(&server, &root, &burst, ROUNDS).await;
    assert!(
        server.terminate(),
        "clean exit on SIGTERM\n{}",
        server.log_text()
    );
    check_audit(&cfg, &burst);
    check_store_file(&cfg);
}

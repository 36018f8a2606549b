//! keyhold started in-process on a temporary data directory.

use std::{path::Path, sync::Arc};

use keyhold::{
    app::{Running, StartError},
    clock::Clock,
    config::Config,
    model::{CredentialRecord, HyokKeyRecord, StoreRecord, keys},
    secrets::MasterKey,
    store::Store,
};
use tempfile::TempDir;

use crate::{
    client::{Transport, XksClient},
    fixture::{self, Credential, KeyFixture, SourceFixture},
    paths::{plugin_dir, toml_str},
};

/// Builds the configuration of a [`TestServer`]: the conformance store on the suite's
/// key source, plain HTTP on 127.0.0.1:0, unless told otherwise.
#[derive(Clone)]
pub struct ServerBuilder {
    dir: Option<Arc<TempDir>>,
    source: SourceFixture,
    extra_sources: Vec<SourceFixture>,
    store_source: Option<String>,
    tls_lines: Option<Vec<String>>,
    xks_lines: Vec<String>,
    store_lines: Vec<String>,
    extra_toml: String,
    keys: Vec<KeyFixture>,
    credentials: Vec<Credential>,
    with_store: bool,
    admin_lines: Option<Vec<String>>,
    xks_port: u16,
    clock: Option<Arc<dyn Clock>>,
}

impl Default for ServerBuilder {
    fn default() -> Self {
        ServerBuilder {
            dir: None,
            source: SourceFixture::suite_default(),
            extra_sources: Vec::new(),
            store_source: None,
            tls_lines: None,
            xks_lines: Vec::new(),
            store_lines: Vec::new(),
            extra_toml: String::new(),
            keys: KeyFixture::conformance(),
            credentials: vec![Credential::a(), Credential::b()],
            with_store: true,
            admin_lines: None,
            xks_port: 0,
            clock: None,
        }
    }
}

impl ServerBuilder {
    /// Reuses a data directory (restart tests).
    pub fn in_dir(mut self, dir: Arc<TempDir>) -> Self {
        self.dir = Some(dir);
        self
    }

    /// The store's key source.
    pub fn source(mut self, source: SourceFixture) -> Self {
        self.source = source;
        self
    }

    /// Declares another source besides the store's.
    pub fn extra_source(mut self, source: SourceFixture) -> Self {
        self.extra_sources.push(source);
        self
    }

    /// Binds the store to the source of this name (default: the main source).
    pub fn store_source(mut self, name: &str) -> Self {
        self.store_source = Some(name.into());
        self
    }

    /// Serves HTTPS with these `[xks.tls]` lines (empty: the generated dev certificate).
    pub fn tls(mut self, lines: &[String]) -> Self {
        self.tls_lines = Some(lines.to_vec());
        self
    }

    /// Serves XKS on this port of 127.0.0.1 (default: one chosen at start), for
    /// configurations that must name their own endpoint.
    pub fn xks_port(mut self, port: u16) -> Self {
        self.xks_port = port;
        self
    }

    /// Adds a line to `[xks]`, e.g. `max_body_bytes = 40000`.
    pub fn xks_line(mut self, line: &str) -> Self {
        self.xks_lines.push(line.into());
        self
    }

    /// Adds a line to the fixture store's `[[stores]]` table, e.g.
    /// `quota = { rate = 1, burst = 3 }`.
    pub fn store_line(mut self, line: &str) -> Self {
        self.store_lines.push(line.into());
        self
    }

    /// Serves metrics: `[metrics] listen = "127.0.0.1:0"` (see `Running::metrics_addr`).
    pub fn metrics(self) -> Self {
        self.toml_tail("[metrics]\nlisten = \"127.0.0.1:0\"\n")
    }

    /// Appends TOML text after everything else (top-level tables, more stores), where
    /// `{dir}` is the data directory.
    pub fn toml_tail(mut self, text: &str) -> Self {
        self.extra_toml += "\n";
        self.extra_toml += text;
        self
    }

    /// Declares one more key in the store.
    pub fn key(mut self, key: KeyFixture) -> Self {
        self.keys.push(key);
        self
    }

    /// Serves the admin API: `[admin]` on 127.0.0.1:0, plain HTTP.
    pub fn admin(mut self) -> Self {
        self.admin_lines.get_or_insert_with(Vec::new);
        self
    }

    /// Adds a line to `[admin]` (and enables it), e.g. `session_ttl_seconds = 1`.
    pub fn admin_line(mut self, line: &str) -> Self {
        self.admin_lines
            .get_or_insert_with(Vec::new)
            .push(line.into());
        self
    }

    /// Takes the first root password from environment variable `var`.
    pub fn root_password_env(self, var: &str) -> Self {
        self.admin_line(&format!("root_password_env = {}", toml_str(var)))
    }

    /// Times the server's background tasks (scheduled rotations) by `clock` instead of
    /// the system's (e.g. a `ManualClock` the test drives).
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = Some(clock);
        self
    }

    /// Declares no store at all (sources only).
    pub fn without_store(mut self) -> Self {
        self.with_store = false;
        self
    }

    /// The configuration text for data directory `dir`.
    pub fn toml(&self, dir: &Path) -> String {
        let mut t = String::new();
        t += &format!("data_dir = {}\n\n", toml_str(dir.to_string_lossy()));
        t += &format!(
            "[plugins]\ndir = {}\n\n",
            toml_str(plugin_dir().to_string_lossy())
        );
        t += &format!("[xks]\nlisten = \"127.0.0.1:{}\"\n", self.xks_port);
        t += &format!("plain_http = {}\n", self.tls_lines.is_none());
        for l in &self.xks_lines {
            t += l;
            t += "\n";
        }
        t += "\n";
        if let Some(lines) = &self.tls_lines {
            t += "[xks.tls]\n";
            for l in lines {
                t += l;
                t += "\n";
            }
            t += "\n";
        }
        t += &self.source.toml(dir);
        for s in &self.extra_sources {
            t += &s.toml(dir);
        }
        if self.with_store {
            let source = self.store_source.as_deref().unwrap_or(&self.source.name);
            t += &format!(
                "\n[[stores]]\nname = {}\nsource = {}\nuri_path_prefix = {}\nhealth_check_key = {}\n\n",
                toml_str(fixture::STORE),
                toml_str(source),
                toml_str(fixture::PREFIX),
                toml_str(fixture::HEALTH_KEY)
            );
            for l in &self.store_lines {
                t += l;
                t += "\n";
            }
            t += "\n";
            for c in &self.credentials {
                t += &format!(
                    "[[stores.credentials]]\naccess_key_id = {}\nsecret = {}\n\n",
                    toml_str(&c.access_key_id),
                    toml_str(&c.secret)
                );
            }
            for k in &self.keys {
                t += &k.toml();
                t += "\n";
            }
        }
        t += &self.extra_toml.replace("{dir}", &dir.to_string_lossy());
        if let Some(lines) = &self.admin_lines {
            t += "\n[admin]\nlisten = \"127.0.0.1:0\"\n";
            if !lines
                .iter()
                .any(|l| l.trim_start().starts_with("plain_http"))
            {
                t += "plain_http = true\n";
            }
            for l in lines {
                t += l;
                t += "\n";
            }
        }
        t
    }

    /// Starts keyhold, or returns why it did not start.
    pub async fn try_start(self) -> Result<TestServer, (StartError, Arc<TempDir>)> {
        let dir = match &self.dir {
            Some(d) => d.clone(),
            None => Arc::new(tempfile::tempdir().expect("tempdir")),
        };
        let text = self.toml(dir.path());
        launch(&text, dir, self).await
    }

    /// Starts keyhold (panics when it does not start).
    pub async fn start(self) -> TestServer {
        match self.try_start().await {
            Ok(s) => s,
            Err((e, _)) => panic!("keyhold did not start: {e}"),
        }
    }
}

/// Starts keyhold on configuration `text` (which must parse) in `dir`; `builder` is
/// kept for restarts.
async fn launch(
    text: &str,
    dir: Arc<TempDir>,
    builder: ServerBuilder,
) -> Result<TestServer, (StartError, Arc<TempDir>)> {
    let cfg =
        Config::from_toml(text).unwrap_or_else(|e| panic!("test config refused: {e}\n{text}"));
    let clock = builder
        .clock
        .clone()
        .unwrap_or_else(|| Arc::new(keyhold::clock::SystemClock));
    match keyhold::app::start_with_clock(cfg.clone(), clock).await {
        Ok(running) => Ok(TestServer {
            running,
            cfg,
            dir,
            builder,
            ca_pem: None,
        }),
        Err(e) => Err((e, dir)),
    }
}

/// Verifies the audit log keyhold wrote in data directory `dir` (keyed under its
/// generated master key, checked against the anchor in its store, which must be
/// closed: the server stopped); returns the number of records. Panics on any problem.
pub fn verify_audit(dir: &Path) -> u64 {
    let master = MasterKey::load(&keyhold::secrets::MasterKeySource::File(
        dir.join("master.key"),
    ))
    .expect("master key");
    let key = keyhold::audit::ChainKey::from_master(&master);
    let anchor = keyhold::store::EmbeddedStore::open(&dir.join("keyhold.redb"))
        .ok()
        .and_then(|s| {
            let node = std::fs::read_to_string(dir.join(keyhold::cluster::NODE_ID_FILE)).ok();
            keyhold::audit::load_anchor(&s, node.as_deref().map(str::trim))
                .expect("anchor readable")
        });
    let report = keyhold::audit::verify_all(&dir.join("audit.jsonl"), Some(&key), anchor.as_ref())
        .expect("audit log readable");
    assert!(
        report.is_intact(),
        "audit log does not verify: {:?}",
        report.problems()
    );
    report.last_seq
}

/// A running keyhold with its data directory.
pub struct TestServer {
    /// The running server.
    pub running: Running,
    /// Its configuration.
    pub cfg: Config,
    /// Its data directory (kept alive while the server runs).
    pub dir: Arc<TempDir>,
    /// The builder that made it (restart with `builder.clone().in_dir(dir)`).
    pub builder: ServerBuilder,
    /// The CA clients should trust (TLS servers).
    pub ca_pem: Option<String>,
}

impl TestServer {
    /// A builder with the defaults (conformance store, suite source, plain HTTP).
    pub fn builder() -> ServerBuilder {
        ServerBuilder::default()
    }

    /// A builder of an admin-API-only server: the `ctm` source, no store, the admin
    /// API on plain HTTP (add `admin_line`s to change it).
    pub fn admin_only() -> ServerBuilder {
        ServerBuilder::default()
            .source(SourceFixture::ctm())
            .without_store()
            .admin()
    }

    /// Starts an admin-API-only server (see [`Self::admin_only`]) serving the admin API
    /// over HTTPS with the generated development certificate.
    pub async fn start_admin_https() -> TestServer {
        let server = TestServer::admin_only()
            .admin_line("plain_http = false")
            .start()
            .await;
        assert!(server.running.admin_tls);
        server
    }

    /// Starts the default fixture.
    pub async fn start_default() -> TestServer {
        ServerBuilder::default().start().await
    }

    /// Starts keyhold on an explicit TOML text, where `{dir}` is the data directory
    /// and `{plugins}` the plugin directory.
    pub async fn start_toml(text: &str) -> Result<TestServer, (StartError, Arc<TempDir>)> {
        let dir = Arc::new(tempfile::tempdir().expect("tempdir"));
        let text = text
            .replace("{dir}", &dir.path().to_string_lossy())
            .replace("{plugins}", &plugin_dir().to_string_lossy());
        launch(&text, dir, ServerBuilder::default()).await
    }

    /// The data directory.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// The durable store.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.running.store
    }

    /// Plain HTTP/1.1 transport (plain servers), or HTTPS trusting [`Self::ca_pem`].
    pub fn transport(&self) -> Transport {
        let addr = self.running.xks_addr;
        match (&self.ca_pem, self.running.tls) {
            (Some(ca), true) => Transport::https(addr, ca),
            _ => Transport::plain(addr),
        }
    }

    /// An unauthenticated client of the admin API (plain HTTP/1.1).
    pub fn admin(&self) -> crate::admin::AdminClient {
        let addr = self
            .running
            .admin_addr
            .expect("admin API enabled (builder.admin())");
        crate::admin::AdminClient::new(Transport::plain(addr))
    }

    /// The generated root password (`<data_dir>/root-password`).
    pub fn root_password(&self) -> String {
        std::fs::read_to_string(self.path().join("root-password"))
            .expect("root-password file")
            .trim()
            .to_string()
    }

    /// An admin API client logged in as root (generated password).
    pub async fn root(&self) -> crate::admin::AdminClient {
        self.admin().login("root", &self.root_password()).await
    }

    /// A client of the fixture store signing with credential A.
    pub fn client(&self) -> XksClient {
        XksClient::new(self.transport(), Credential::a(), fixture::BASE)
    }

    /// Stops the server; returns its data directory.
    pub async fn stop(self) -> Arc<TempDir> {
        self.running.shutdown().await;
        self.dir
    }

    /// Waits until the data plane reflects revision `rev`.
    pub async fn wait_for_revision(&self, rev: u64) {
        tokio::time::timeout(
            std::time::Duration::from_secs(30),
            self.running.wait_for_revision(rev),
        )
        .await
        .expect("routing snapshot caught up");
    }

    /// The fixture store's id.
    pub fn store_id(&self) -> String {
        let entry = self
            .store()
            .get(&keys::store_name_index(fixture::STORE))
            .expect("store get")
            .expect("store index exists");
        String::from_utf8(entry.value).expect("utf-8 id")
    }

    /// The fixture store's record.
    pub fn store_record(&self) -> StoreRecord {
        self.store_record_of(&self.store_id())
    }

    /// The record of store `id`, as stored.
    pub fn store_record_of(&self, id: &str) -> StoreRecord {
        let entry = self
            .store()
            .get(&keys::store(id))
            .expect("store get")
            .expect("store record exists");
        serde_json::from_slice(&entry.value).expect("store record JSON")
    }

    /// Overwrites a store record behind the admin API's back (crash simulations).
    pub fn put_store_record(&self, record: &StoreRecord) {
        self.store()
            .put(
                &keys::store(&record.id),
                serde_json::to_vec(record).expect("JSON"),
            )
            .expect("store put");
    }

    /// Sets the store's `blocked` flag and waits until it is served.
    pub async fn set_store_blocked(&self, blocked: bool) {
        let mut rec = self.store_record();
        rec.blocked = blocked;
        let rev = self
            .store()
            .put(
                &keys::store(&rec.id),
                serde_json::to_vec(&rec).expect("json"),
            )
            .expect("put store record");
        self.wait_for_revision(rev).await;
    }

    /// Sets a key's `blocked` flag and waits until it is served.
    pub async fn set_key_blocked(&self, external_id: &str, blocked: bool) {
        let key = keys::hyok_key(&self.store_id(), external_id);
        let entry = self
            .store()
            .get(&key)
            .expect("store get")
            .expect("key record exists");
        let mut rec: HyokKeyRecord = serde_json::from_slice(&entry.value).expect("key JSON");
        rec.blocked = blocked;
        let rev = self
            .store()
            .put(&key, serde_json::to_vec(&rec).expect("json"))
            .expect("put key record");
        self.wait_for_revision(rev).await;
    }

    /// The master key sealing secrets at rest.
    pub fn master_key(&self) -> MasterKey {
        MasterKey::load(&self.cfg.master_key_source()).expect("master key")
    }

    /// Installs a credential record (as an admin would) and waits until it is served.
    pub async fn add_credential(&self, cred: &Credential) {
        let key = keys::credential(&self.store_id(), &cred.access_key_id);
        let rec = CredentialRecord {
            access_key_id: cred.access_key_id.clone(),
            sealed_secret: self.master_key().seal(cred.secret.as_bytes(), &key),
            created_at_ns: time::OffsetDateTime::now_utc().unix_timestamp_nanos(),
            origin: "admin".into(),
        };
        let rev = self
            .store()
            .put(&key, serde_json::to_vec(&rec).expect("json"))
            .expect("put credential");
        self.wait_for_revision(rev).await;
    }

    /// Deletes a credential record and waits until the deletion is served.
    pub async fn delete_credential(&self, access_key_id: &str) {
        let key = keys::credential(&self.store_id(), access_key_id);
        assert!(
            self.store().delete(&key).expect("delete"),
            "credential existed"
        );
        let rev = self.store().revision().expect("revision");
        self.wait_for_revision(rev).await;
    }
}

//! Start-up and lifecycle: opens the store and master key, loads plugins and opens key
//! sources, reconciles the config's declarations, builds the routing snapshot, keeps
//! it current from the store's watch feed, and serves the XKS listener.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use arc_swap::ArcSwap;
use tokio::{net::TcpListener, sync::watch, task::JoinHandle};

mod sources;
use sources::plugin_settings;
pub use sources::{SourceCheck, check_sources, open_sources, open_stored_sources};

use crate::{
    config::Config,
    reconcile,
    secrets::MasterKey,
    store::{EmbeddedStore, Store},
    xks::{Routing, RoutingContext, Sources, XksService, XksSettings},
};

/// Why keyhold could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// The durable store could not be opened.
    #[error("durable store: {0}")]
    Store(#[from] crate::store::StoreError),
    /// The master key could not be loaded.
    #[error(transparent)]
    Secrets(#[from] crate::secrets::SecretsError),
    /// The declared configuration contradicts the stored state.
    #[error("configuration refused: {0}")]
    Reconcile(Box<reconcile::ReconcileError>),
    /// TLS could not be set up.
    #[error(transparent)]
    Tls(#[from] crate::tls::TlsError),
    /// The listener could not be bound.
    #[error("cannot listen on {addr}: {reason}")]
    Listen {
        /// The address.
        addr: SocketAddr,
        /// Why.
        reason: String,
    },
    /// A start-up task failed.
    #[error("start-up task failed: {0}")]
    Task(String),
    /// The node's id is invalid or cannot be kept.
    #[error(transparent)]
    NodeId(#[from] crate::cluster::NodeIdError),
    /// This node's master key is not the one the store's secrets are sealed under.
    #[error(
        "this node's master key ({source_desc}) cannot unwrap the cluster's check value (store key '{}'): \
         the node must use the same master key file as the other nodes of the cluster (copy it from a \
         running node; see \"Master keys in a cluster\" in the README); nothing was changed",
        crate::secrets::check::CHECK_KEY
    )]
    MasterKeyMismatch {
        /// The configured master key source ([`crate::secrets::MasterKeySource::describe`]).
        source_desc: String,
    },
    /// The store holds a `keyhold store import` that did not finish.
    #[error("{0}; nothing was changed")]
    UnfinishedImport(String),
}

/// Refuses a store holding a partial import, then writes the master-key check value
/// when the store has none, or verifies it with `master`.
fn check_store_and_master_key(
    store: &dyn Store,
    master: &MasterKey,
    source: &crate::secrets::MasterKeySource,
) -> Result<(), StartError> {
    use crate::secrets::check::{self, CheckError, EnsureError, Ensured};
    if let Some(message) = crate::transfer::unfinished_import(store)? {
        return Err(StartError::UnfinishedImport(message));
    }
    match check::ensure(store, master) {
        Ok(Ensured::Written) => {
            tracing::info!(
                key = check::CHECK_KEY,
                "wrote the master-key check value: every node on this store must use this master key"
            );
            Ok(())
        }
        Ok(Ensured::Verified) => Ok(()),
        Err(EnsureError::Check(CheckError::WrongKey)) => Err(StartError::MasterKeyMismatch {
            source_desc: source.describe(),
        }),
        Err(EnsureError::Check(CheckError::Malformed(why))) => {
            Err(StartError::Store(crate::store::StoreError::Corrupt {
                key: check::CHECK_KEY.to_string(),
                message: format!(
                    "the master-key check value is damaged: {why}; nothing was changed"
                ),
            }))
        }
        Err(EnsureError::Store(e)) => Err(e.into()),
    }
}

/// Applies the configuration's declarations (AWS connections and accounts, sources,
/// stores, keys, credentials); again, after a short pause, when a failure may be
/// another node applying the same ones at the same time.
fn apply_declarations(
    cfg: &Config,
    ops: &crate::ops::Operations,
    store: &dyn Store,
    master: &MasterKey,
    sources: &Sources,
) -> Result<reconcile::Outcome, reconcile::ReconcileError> {
    let mut attempt = 1;
    loop {
        let result = reconcile::aws::declare(cfg, ops)
            .and_then(|()| reconcile::reconcile(cfg, store, master, sources));
        match result {
            Err(e) if e.may_be_a_race() && attempt < reconcile::DECLARE_ATTEMPTS => {
                tracing::info!(
                    attempt,
                    "applying the declarations failed ({e}); another node may be applying them at the same time: again"
                );
                std::thread::sleep(Duration::from_millis(100 * u64::from(attempt)));
                attempt += 1;
            }
            other => return other,
        }
    }
}

/// Opens the configured store backend.
pub fn open_store(cfg: &Config) -> Result<Arc<dyn Store>, StartError> {
    Ok(match (&cfg.store.backend, &cfg.store.etcd) {
        (crate::config::StoreBackend::Etcd, Some(etcd)) => {
            let settings = etcd
                .settings()
                .map_err(|e| StartError::Task(e.to_string()))?;
            Arc::new(crate::store::EtcdStore::open(&settings)?)
        }
        _ => Arc::new(EmbeddedStore::open(&cfg.store_path())?),
    })
}

impl From<reconcile::ReconcileError> for StartError {
    fn from(e: reconcile::ReconcileError) -> Self {
        StartError::Reconcile(Box::new(e))
    }
}

/// A running keyhold: its bound address and the handle to stop it.
pub struct Running {
    /// Where the XKS endpoint listens (with the real port when 0 was configured).
    pub xks_addr: SocketAddr,
    /// Whether the XKS endpoint speaks TLS.
    pub tls: bool,
    /// Where `/metrics` is served, when enabled.
    pub metrics_addr: Option<SocketAddr>,
    /// Where the admin REST API listens, when enabled.
    pub admin_addr: Option<SocketAddr>,
    /// Whether the admin API speaks TLS.
    pub admin_tls: bool,
    /// The file the generated root password was written to (first start only).
    pub root_password_file: Option<std::path::PathBuf>,
    /// The opened key sources.
    pub sources: Arc<Sources>,
    /// Credentials files generated at start: (store name, path).
    pub generated_credentials: Vec<(String, std::path::PathBuf)>,
    /// Key sources that failed to load or open: (source, reason).
    pub failed_sources: Vec<(String, String)>,
    /// The durable store.
    pub store: Arc<dyn Store>,
    /// The data plane.
    pub service: XksService,
    /// The audit log.
    pub audit: crate::audit::AuditLog,
    /// The cluster as this node sees it (a lone node on the embedded store).
    pub membership: Arc<dyn crate::cluster::Membership>,
    shutdown: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl Running {
    /// Stops accepting, lets in-flight requests finish, and waits for the tasks.
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        for t in self.tasks {
            let _ = t.await;
        }
        let audit = self.audit.clone();
        // Flushed, and the store let go of, so that it closes with the server.
        let _ = tokio::task::spawn_blocking(move || audit.release_anchor()).await;
    }

    /// Waits until the routing snapshot reflects store revision `revision`.
    pub async fn wait_for_revision(&self, revision: u64) {
        while self.service.routing().revision < revision {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

/// How soon a failed routing update is retried (as a whole rebuild).
const ROUTING_RETRY: Duration = Duration::from_secs(1);

/// How often linked stores' AWS connection states are read from AWS KMS.
const AWS_STATE_SYNC: Duration = Duration::from_secs(60);

/// Blocks (a blocking-pool thread) until the data plane serves store revision
/// `revision`, at most 5 s.
fn wait_served(service: &XksService, revision: u64) {
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while service.routing().revision < revision {
        if std::time::Instant::now() >= deadline {
            tracing::warn!(revision, "data plane has not applied a change within 5 s");
            return;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// How long declared links wait before another try after a failure.
const LINK_RETRY: Duration = Duration::from_secs(30);

/// Links and connects the stores the config declares `linked` (AWS KMS calls this
/// server back meanwhile, so this runs once it serves), retrying failed ones until each
/// has reached its declared state once.
async fn link_declared_stores(
    cfg: Arc<Config>,
    ops: Arc<crate::ops::Operations>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        let (c, o) = (cfg.clone(), ops.clone());
        let results = tokio::task::spawn_blocking(move || reconcile::aws::link_declared(&c, &o))
            .await
            .unwrap_or_default();
        let mut failed = false;
        for (store, result) in results {
            match result {
                Ok(done) => tracing::info!(%store, ?done, "declared AWS link reconciled"),
                Err(e) => {
                    failed = true;
                    tracing::error!(%store, code = e.code(), "declared AWS link not reconciled (retrying in {} s): {e}", LINK_RETRY.as_secs());
                }
            }
        }
        if !failed {
            return;
        }
        tokio::select! {
            _ = tokio::time::sleep(LINK_RETRY) => {}
            _ = stop.changed() => return,
        }
    }
}

/// Joins the cluster: on etcd, registers this node under a lease and keeps `fleet` equal
/// to the live nodes (a task in `tasks`, stopped by `stop`); on the embedded store, the
/// node is alone.
fn join_cluster(
    cfg: &Config,
    info: crate::cluster::NodeInfo,
    fleet: crate::cluster::FleetSize,
    stop: &watch::Receiver<bool>,
    tasks: &mut Vec<JoinHandle<()>>,
) -> Result<Arc<dyn crate::cluster::Membership>, StartError> {
    match (&cfg.store.backend, &cfg.store.etcd) {
        (crate::config::StoreBackend::Etcd, Some(etcd)) => {
            let settings = etcd
                .settings()
                .map_err(|e| StartError::Task(e.to_string()))?;
            let (membership, task) = crate::cluster::etcd::EtcdMembership::start(
                &settings,
                Duration::from_secs(etcd.lease_ttl_seconds),
                info,
                fleet,
                stop.clone(),
            );
            tasks.push(task);
            Ok(membership)
        }
        _ => Ok(Arc::new(crate::cluster::Solo::new(info))),
    }
}

/// Starts keyhold with `cfg`.
pub async fn start(cfg: Config) -> Result<Running, StartError> {
    start_with_clock(cfg, Arc::new(crate::clock::SystemClock)).await
}

/// Starts keyhold with `cfg`, its background tasks (the credential rotation scheduler)
/// timed by `clock` (tests drive time with a [`crate::clock::ManualClock`]).
pub async fn start_with_clock(
    cfg: Config,
    clock: Arc<dyn crate::clock::Clock>,
) -> Result<Running, StartError> {
    let cfg = Arc::new(cfg);
    std::fs::create_dir_all(&cfg.data_dir).map_err(|e| {
        StartError::Task(format!(
            "cannot create data directory {}: {e}",
            cfg.data_dir.display()
        ))
    })?;
    let node_id = crate::cluster::load_or_create_node_id(cfg.node.id.as_deref(), &cfg.data_dir)?;
    let prepared = {
        let (cfg, clock, node) = (cfg.clone(), clock.clone(), node_id.clone());
        tokio::task::spawn_blocking(move || -> Result<_, StartError> {
            let store = open_store(&cfg)?;
            let master_source = cfg.master_key_source();
            let master = Arc::new(MasterKey::load(&master_source)?);
            check_store_and_master_key(store.as_ref(), &master, &master_source)?;
            let (mut sources, mut failed) = open_sources(&cfg, &store);
            open_stored_sources(&cfg, &store, &mut sources, &mut failed)?;
            let sources = Arc::new(sources);
            let follower = crate::ops::SourceFollower::new(
                plugin_settings(&cfg),
                store.clone(),
                sources.clone(),
            );
            follower.started()?;
            let ops = Arc::new(
                crate::ops::Operations::new(store.clone(), master.clone(), sources.clone())
                    .with_node(&node)
                    .with_plugins(plugin_settings(&cfg))
                    .with_mtls_listener(crate::ops::MtlsListener {
                        https: !cfg.xks.plain_http,
                        default_ca: cfg.xks.tls.client_ca_file.is_some(),
                        default_cns: !cfg.xks.tls.client_cn.is_empty(),
                    })
                    .with_clock(clock),
            );
            let outcome = apply_declarations(&cfg, &ops, store.as_ref(), &master, &sources)?;
            crate::ops::interrupt_jobs_where(store.as_ref(), |job| {
                crate::ops::orphaned_job(job, &node, None)
            })
            .map_err(|e| StartError::Task(e.to_string()))?;
            Ok((store, master, sources, failed, outcome, ops, follower))
        })
        .await
        .map_err(|e| StartError::Task(e.to_string()))??
    };
    let (store, master, sources, failed_sources, outcome, ops, follower) = prepared;
    let metrics_addr = match cfg.metrics.listen {
        None => None,
        Some(addr) => Some(
            crate::server::bind(addr)
                .await
                .map_err(|reason| StartError::Listen { addr, reason })?,
        ),
    };
    let ctx = Arc::new(RoutingContext {
        master,
        sources: sources.clone(),
        default_quota: cfg.xks.quota,
        client_trust: Arc::new(crate::xks::mtls::ClientTrustDefaults::load(&cfg.xks.tls)?),
    });
    let mut events = store.watch();
    let initial = Routing::build(store.as_ref(), &ctx, None)?;
    let routing = Arc::new(ArcSwap::from_pointee(initial));
    // The audit log is opened on the blocking pool: a start verifies its last segment.
    let audit = {
        let settings = crate::audit::AuditSettings {
            segment_max_bytes: cfg.audit.segment_max_bytes,
            refusals: crate::audit::RefusalLimits {
                interval: Duration::from_secs(cfg.audit.refusal_interval_seconds),
                records_per_interval: cfg.audit.refusal_records_per_interval,
            },
            key: Some(crate::audit::ChainKey::from_master(&ctx.master)),
            anchor: Some(Arc::new(crate::audit::StoreAnchor::of_node(
                store.clone(),
                &node_id,
            ))),
            node: Some(node_id.clone()),
        };
        let path = cfg.audit_path();
        tokio::task::spawn_blocking(move || crate::audit::AuditLog::open_with(&path, settings))
            .await
            .map_err(|e| StartError::Task(e.to_string()))?
            .map_err(|e| StartError::Task(e.to_string()))?
    };
    let fleet = crate::cluster::FleetSize::new(1);
    let service = XksService::new(
        routing.clone(),
        XksSettings {
            fleet: fleet.clone(),
            health_max_age: Duration::from_secs(cfg.xks.health_cache_seconds),
            max_body_bytes: cfg.xks.max_body_bytes,
            max_in_flight: cfg.xks.max_in_flight,
        },
    )
    .with_audit(audit.clone())
    .with_store(store.clone());
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let mut tasks = Vec::new();

    // Keep the snapshot current: apply every committed change to it (touching only
    // the stores it names); a receiver that lagged behind rebuilds it whole, and so does
    // a failed update (retried every second until a rebuild succeeds), so that a deleted
    // credential or a block never stays ineffective behind a failure.
    {
        let (store, ctx, routing) = (store.clone(), ctx.clone(), routing.clone());
        let follower = follower.clone();
        let metrics = service.metrics();
        let mut stop = shutdown_rx.clone();
        tasks.push(tokio::spawn(async move {
            let mut stale = false;
            loop {
                let ev = tokio::select! {
                    ev = events.recv() => ev.map(Some),
                    _ = tokio::time::sleep(ROUTING_RETRY), if stale => Ok(None),
                    _ = stop.changed() => break,
                };
                let event = match ev {
                    Ok(Some(event)) => Some(event),
                    Ok(None) => None,
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                        tracing::warn!(missed = n, "routing fell behind the store; rebuilding");
                        None
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
                };
                let (store, ctx, current) = (store.clone(), ctx.clone(), routing.load_full());
                let follower = follower.clone();
                let next = tokio::task::spawn_blocking(move || {
                    // Key sources first (opened, reopened or closed as their records
                    // say), so that the routing picks up the new handles.
                    match event.as_deref() {
                        Some(e) => {
                            let changed: Vec<String> =
                                e.changes.iter().map(|c| c.key.clone()).collect();
                            follower.apply(Some(&changed));
                        }
                        None => follower.apply(None),
                    }
                    current.next(event.as_deref(), stale, store.as_ref(), &ctx)
                })
                .await;
                match next {
                    Ok(Ok(Some(r))) => {
                        routing.store(Arc::new(r));
                        stale = false;
                    }
                    Ok(Ok(None)) => {}
                    Ok(Err(e)) => {
                        stale = true;
                        metrics
                            .routing_update_failures
                            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        tracing::error!(
                            "routing update failed, retrying in {} s: {e}",
                            ROUTING_RETRY.as_secs()
                        );
                    }
                    Err(e) => {
                        stale = true;
                        tracing::error!("routing update task failed: {e}");
                    }
                }
            }
        }));
    }

    // Keep deep health results warm so GetHealthStatus answers from the cache.
    {
        let service = service.clone();
        let max_age = Duration::from_secs(cfg.xks.health_cache_seconds);
        let mut stop = shutdown_rx.clone();
        tasks.push(tokio::spawn(async move {
            let mut tick = tokio::time::interval(max_age / 2);
            loop {
                tokio::select! {
                    _ = tick.tick() => {
                        let routing = service.routing();
                        for route in routing.stores() {
                            route.health.get(route, max_age / 2).await;
                        }
                    }
                    _ = stop.changed() => break,
                }
            }
        }));
    }

    // Each store's recent traffic, sampled from its counters for the charts.
    let history = Arc::new(crate::metrics::history::History::new(
        cfg.metrics.history_interval_seconds,
    ));
    tasks.push(tokio::spawn(crate::metrics::history::run(
        history.clone(),
        Arc::new(service.clone()),
        clock.clone(),
        shutdown_rx.clone(),
    )));

    let tls = if cfg.xks.plain_http {
        tracing::warn!(
            "XKS endpoint serves plain HTTP (xks.plain_http = true): only for tests or behind a TLS proxy"
        );
        None
    } else {
        let per_store = Arc::new(crate::xks::mtls::PerStoreVerifier::new(routing.clone()));
        Some(crate::tls::xks_server_config(
            &cfg.xks.tls,
            &cfg.data_dir,
            per_store,
        )?)
    };
    let listener = TcpListener::bind(cfg.xks.listen)
        .await
        .map_err(|e| StartError::Listen {
            addr: cfg.xks.listen,
            reason: e.to_string(),
        })?;
    let xks_addr = listener.local_addr().map_err(|e| StartError::Listen {
        addr: cfg.xks.listen,
        reason: e.to_string(),
    })?;
    let is_tls = tls.is_some();
    let limits =
        crate::server::Listeners::of_config(&cfg, crate::server::ConnectionBudget::of_process());
    tasks.push(tokio::spawn(crate::server::serve(
        listener,
        tls,
        service.clone(),
        shutdown_rx.clone(),
        limits.xks.clone(),
    )));
    {
        let service = service.clone();
        ops.set_applied_waiter(Arc::new(move |revision| wait_served(&service, revision)));
    }
    // The admin listener is bound now so that the node registers its real address.
    let admin_listener = match cfg.admin.listen {
        None => None,
        Some(listen) => {
            let listener = TcpListener::bind(listen)
                .await
                .map_err(|e| StartError::Listen {
                    addr: listen,
                    reason: e.to_string(),
                })?;
            let addr = listener.local_addr().map_err(|e| StartError::Listen {
                addr: listen,
                reason: e.to_string(),
            })?;
            Some((listener, addr))
        }
    };
    let membership = join_cluster(
        &cfg,
        crate::cluster::NodeInfo {
            id: node_id.clone(),
            version: env!("CARGO_PKG_VERSION").to_string(),
            xks_addr: xks_addr.to_string(),
            admin_addr: admin_listener.as_ref().map(|(_, a)| a.to_string()),
            started_at: crate::cluster::unix_now(),
            heartbeat_at: crate::cluster::unix_now(),
        },
        fleet,
        &shutdown_rx,
        &mut tasks,
    )?;
    if cfg.stores.iter().any(|d| d.linked) {
        tasks.push(tokio::spawn(link_declared_stores(
            cfg.clone(),
            ops.clone(),
            shutdown_rx.clone(),
        )));
    }
    let metrics_addr = match metrics_addr {
        None => None,
        Some(listener) => {
            let addr = listener.local_addr().ok();
            tasks.push(tokio::spawn(crate::server::serve_metrics(
                listener,
                service.clone(),
                sources.clone(),
                shutdown_rx.clone(),
                limits.metrics.clone(),
            )));
            addr
        }
    };
    let (mut admin_addr, mut admin_tls, mut root_password_file) = (None, false, None);
    if let Some((listener, addr)) = admin_listener {
        // Linked stores' AWS connection states change on AWS's side too (a failed
        // connection, a console click): follow them.
        {
            let (ops, store) = (ops.clone(), store.clone());
            let mut stop = shutdown_rx.clone();
            let membership = membership.clone();
            tasks.push(tokio::spawn(async move {
                let mut tick = tokio::time::interval(AWS_STATE_SYNC);
                loop {
                    tokio::select! {
                        // One node (the leader) follows AWS for the whole cluster, and
                        // ends the jobs of nodes that died while running them.
                        _ = tick.tick() => {
                            if membership.is_leader() {
                                let (ops, store, view) = (ops.clone(), store.clone(), membership.view());
                                let me = membership.node_id().to_string();
                                let _ = tokio::task::spawn_blocking(move || {
                                    let _ = ops.sync_linked_stores();
                                    if view.reachable {
                                        let live: Vec<String> = view.nodes.into_iter().map(|n| n.id).collect();
                                        if let Err(e) = crate::ops::interrupt_jobs_where(store.as_ref(), |job| {
                                            crate::ops::orphaned_job(job, &me, Some(&live))
                                        }) {
                                            tracing::warn!("jobs of departed nodes not checked: {e}");
                                        }
                                    }
                                }).await;
                            }
                        }
                        _ = stop.changed() => break,
                    }
                }
            }));
        }
        // Scheduled credential rotations run on the admin API's operations (the
        // schedules are managed there), audited like its changes.
        tasks.push(tokio::spawn(crate::schedule::runner::run_led_scheduler(
            ops.clone(),
            clock.clone(),
            Some(audit.clone()),
            membership.clone(),
            shutdown_rx.clone(),
        )));
        root_password_file = {
            let (cfg, ops, audit) = (cfg.clone(), ops.clone(), audit.clone());
            tokio::task::spawn_blocking(move || crate::admin::bootstrap_root(&cfg, &ops, &audit))
                .await
                .map_err(|e| StartError::Task(e.to_string()))?
                .map_err(StartError::Task)?
        };
        let tls = if cfg.admin.plain_http {
            tracing::warn!("admin API serves plain HTTP (admin.plain_http = true): only for tests");
            None
        } else {
            Some(crate::tls::server_config(&cfg.admin.tls, &cfg.data_dir)?)
        };
        admin_tls = tls.is_some();
        let state =
            crate::admin::AdminState::new(ops, audit.clone(), cfg.admin.session_ttl_seconds)
                .with_shutdown(shutdown_rx.clone())
                .with_history(history)
                .with_membership(
                    membership.clone(),
                    match cfg.store.backend {
                        crate::config::StoreBackend::Embedded => "embedded",
                        crate::config::StoreBackend::Etcd => "etcd",
                    },
                );
        tasks.push(tokio::spawn(crate::admin::serve(
            listener,
            tls,
            // The web console at /console/ in front of the API (same listener).
            crate::console::router(state),
            shutdown_rx.clone(),
            crate::server::ListenerContext {
                limits: limits.admin.clone(),
                stats: service.listener_metrics().admin.clone(),
                refusals: crate::server::Refusals::Admin,
            },
        )));
        tracing::info!(%addr, tls = admin_tls, "keyhold admin API listening");
        admin_addr = Some(addr);
    }
    let scheme = if is_tls { "https" } else { "http" };
    for route in service.routing().stores() {
        tracing::info!(
            store = %route.record.name,
            source = %route.record.source,
            xks_base = %format!("{scheme}://{xks_addr}{}", route.base_path),
            lb_health = %crate::model::lb_health_path(&route.record.uri_path_prefix),
            credentials = route.credentials.len(),
            keys = route.keys.len(),
            "serving key store"
        );
    }
    tracing::info!(%xks_addr, tls = is_tls, "keyhold XKS endpoint listening");
    if let Some(addr) = metrics_addr {
        tracing::info!(%addr, "metrics at http://{addr}/metrics");
    }
    Ok(Running {
        xks_addr,
        metrics_addr,
        admin_addr,
        admin_tls,
        root_password_file,
        sources,
        tls: is_tls,
        generated_credentials: outcome.generated_credentials,
        failed_sources,
        store,
        service,
        audit,
        membership,
        shutdown: shutdown_tx,
        tasks,
    })
}

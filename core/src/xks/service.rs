//! The XKS request pipeline, top-down: route by path, enforce method and body limits,
//! authenticate (SigV4), admit (quota, store not blocked), parse and validate the body,
//! run the operation against the store's key source, answer. Every request ends in one
//! log line with `kmsRequestId`, store, operation, outcome and latency (and an audit
//! record when asked for); plaintext is never logged.

use std::{
    sync::{Arc, atomic::Ordering::Relaxed},
    time::{Duration, Instant},
};

use arc_swap::ArcSwap;
use bytes::Bytes;
use http::{Method, Request, header, request::Parts};
use http_body_util::{BodyExt, Limited};
use hyper::body::Body;
use tokio::sync::Semaphore;

use crate::{
    audit::AuditLog,
    logsafe::{clip, clip_to},
    metrics::{self, GlobalMetrics, Outcome, SourceStats, StoreMetrics},
};

use super::{
    auth,
    error::{XksError, XksErrorKind},
    mtls,
    ops::{self, KeyCall, Resp, XksOp, decrypt, encrypt, health, metadata},
    path::{self, KeyOp, XksPath},
    routing::{Routing, StoreRoute},
    wire::{self, DecryptRequest, EncryptRequest, KeyRequest, MetadataRequest},
};

/// Longest refusal reason written to a log line or audit record.
const MAX_REASON_CHARS: usize = 512;

/// Data-plane settings.
#[derive(Debug, Clone)]
pub struct XksSettings {
    /// `xksProxyFleetSize`: the live nodes, kept current by the cluster membership.
    pub fleet: crate::cluster::FleetSize,
    /// Longest a cached deep health result is reused.
    pub health_max_age: Duration,
    /// Largest request body accepted.
    pub max_body_bytes: usize,
    /// Most requests answered at once.
    pub max_in_flight: usize,
}

/// The XKS endpoint: cheap to clone, shared by every connection.
#[derive(Clone)]
pub struct XksService {
    routing: Arc<ArcSwap<Routing>>,
    settings: Arc<XksSettings>,
    in_flight: Arc<Semaphore>,
    metrics: Arc<GlobalMetrics>,
    listeners: Arc<crate::server::ListenerMetrics>,
    audit: Option<AuditLog>,
    /// The durable store, for `keyhold_store_reachable` (the data plane never reads it).
    store: Option<Arc<dyn crate::store::Store>>,
}

/// What is known about a request, for its log line, audit record and metrics.
#[derive(Default)]
struct Ctx {
    request_id: Option<String>,
    kms_operation: Option<String>,
    store: Option<String>,
    op: Option<XksOp>,
    key_id: Option<String>,
    metrics: Option<Arc<StoreMetrics>>,
    success_audit: bool,
    /// The request's SigV4 signature verified.
    authenticated: bool,
}

impl Ctx {
    /// The request reached `route`'s store.
    fn routed(&mut self, route: &StoreRoute) {
        self.store = Some(route.record.name.clone());
        self.metrics = Some(route.metrics.clone());
    }

    /// Notes KMS's request id and operation from the body.
    fn note(&mut self, md: &Option<wire::RequestMetadata>) {
        if let Some(md) = md {
            self.request_id = md.kms_request_id.clone();
            self.kms_operation = md.kms_operation.clone();
        }
    }

    /// The operation's name ("Unknown" before the path is understood).
    fn op_name(&self) -> &'static str {
        self.op.map_or("Unknown", XksOp::name)
    }
}

impl XksService {
    /// A service reading routes from `routing`.
    pub fn new(routing: Arc<ArcSwap<Routing>>, settings: XksSettings) -> XksService {
        XksService {
            routing,
            in_flight: Arc::new(Semaphore::new(settings.max_in_flight.max(1))),
            settings: Arc::new(settings),
            metrics: Arc::new(GlobalMetrics::default()),
            listeners: Arc::new(crate::server::ListenerMetrics::default()),
            audit: None,
            store: None,
        }
    }

    /// Reports whether `store` answers on `/metrics` (`keyhold_store_reachable`).
    pub fn with_store(mut self, store: Arc<dyn crate::store::Store>) -> XksService {
        self.store = Some(store);
        self
    }

    /// Records every refused request, and the successful ones of stores whose
    /// success-audit toggle is on, in `audit`.
    pub fn with_audit(mut self, audit: AuditLog) -> XksService {
        self.audit = Some(audit);
        self
    }

    /// Process-wide counters.
    pub fn global_metrics(&self) -> &GlobalMetrics {
        &self.metrics
    }

    /// The connection counters of every listener (rendered on `/metrics` too).
    pub fn listener_metrics(&self) -> &crate::server::ListenerMetrics {
        &self.listeners
    }

    /// The Prometheus text exposition of every counter.
    pub fn render_metrics(&self, sources: &super::Sources) -> String {
        let routing = self.routing();
        let mut stores: Vec<(&str, &StoreMetrics)> = routing
            .stores()
            .map(|r| (r.record.name.as_str(), r.metrics.as_ref()))
            .collect();
        stores.sort_by_key(|(name, _)| *name);
        let mut opened: Vec<_> = sources.opened();
        opened.sort_by(|a, b| a.name.cmp(&b.name));
        let shed_pool: u64 = opened.iter().map(|s| s.shed.load(Relaxed)).sum();
        self.metrics.shed_pool.store(shed_pool, Relaxed);
        if let Some(audit) = &self.audit {
            let c = audit.counters();
            let m = &self.metrics;
            m.audit_damaged_segments
                .store(c.damaged_segments.load(Relaxed), Relaxed);
            m.audit_refusals_aggregated
                .store(c.refusals_aggregated.load(Relaxed), Relaxed);
            m.audit_dropped.store(c.dropped.load(Relaxed), Relaxed);
        }
        let sources = opened
            .iter()
            .map(|s| SourceStats {
                name: s.name.as_str(),
                latency: &s.latency,
                errors: s.errors.load(Relaxed),
                in_use: s.in_use(),
                capacity: s.capacity(),
                gcm_encryptions: s.gcm_encryptions(),
            })
            .collect();
        let mut text = metrics::render(&metrics::Snapshot {
            global: &self.metrics,
            stores,
            sources,
            in_flight: self
                .settings
                .max_in_flight
                .saturating_sub(self.in_flight.available_permits()),
        });
        self.listeners.render(&mut text);
        if let Some(store) = &self.store {
            metrics::render_store_reachable(&mut text, store.reachable());
        }
        text
    }

    /// The process-wide counters (shared: what is counted here is rendered on
    /// `/metrics`).
    pub fn metrics(&self) -> Arc<GlobalMetrics> {
        self.metrics.clone()
    }

    /// The current routing snapshot.
    pub fn routing(&self) -> Arc<Routing> {
        self.routing.load_full()
    }

    /// Answers one HTTP request. Never fails: every refusal is an XKS JSON error.
    pub async fn handle<B>(&self, req: Request<B>) -> Resp
    where
        B: Body<Data = Bytes>,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let started = Instant::now();
        let mut ctx = Ctx::default();
        let result = self.process(req, &mut ctx).await;
        let latency_us = started.elapsed().as_micros() as u64;
        let outcome = Outcome::of(&result);
        match (&ctx.metrics, ctx.op) {
            (Some(m), Some(op)) => m.record(op, outcome, latency_us),
            _ => self.metrics.record_unrouted(outcome),
        }
        self.audit(&ctx, &result, outcome, latency_us);
        // Request-derived values are escaped and capped: no value forges or inflates a
        // log line.
        let rid = clip(ctx.request_id.as_deref().unwrap_or("-"));
        let rid = rid.as_ref();
        let store = ctx.store.as_deref().unwrap_or("-");
        let key_id = clip(ctx.key_id.as_deref().unwrap_or("-"));
        let key_id = key_id.as_ref();
        let kms_op = clip(ctx.kms_operation.as_deref().unwrap_or("-"));
        let kms_op = kms_op.as_ref();
        let operation = ctx.op_name();
        match result {
            Ok(resp) => {
                tracing::info!(
                    target: "keyhold::xks",
                    kmsRequestId = rid, store, operation, key_id,
                    kms_operation = kms_op, outcome = outcome.label(),
                    status = resp.status().as_u16(), latency_us, "xks request"
                );
                resp
            }
            Err(err) => {
                tracing::info!(
                    target: "keyhold::xks",
                    kmsRequestId = rid, store, operation, key_id,
                    kms_operation = kms_op, outcome = outcome.label(),
                    status = err.kind.status().as_u16(), latency_us,
                    reason = %clip_to(&err.message, MAX_REASON_CHARS), "xks request refused"
                );
                err.into_response()
            }
        }
    }

    /// Records a refused request, or an answered one of a store that audits successes.
    /// Refusals of requests that did not authenticate are rate-limited by the audit log
    /// (a few records per interval, the rest counted in one aggregate record).
    fn audit(&self, ctx: &Ctx, result: &Result<Resp, XksError>, outcome: Outcome, us: u64) {
        let Some(audit) = &self.audit else { return };
        let failed = result.as_ref().err();
        if failed.is_none() && !ctx.success_audit {
            return;
        }
        let status = failed.map_or(200, |e| e.kind.status().as_u16());
        let clipped = |v: &Option<String>| v.as_deref().map(|v| clip(v).into_owned());
        let event = serde_json::json!({
            "kind": "xks",
            "outcome": outcome.label(),
            "status": status,
            "reason": failed.map(|e| clip_to(&e.message, MAX_REASON_CHARS).into_owned()),
            "kmsRequestId": clipped(&ctx.request_id),
            "kmsOperation": clipped(&ctx.kms_operation),
            "store": ctx.store,
            "operation": ctx.op_name(),
            "keyId": clipped(&ctx.key_id),
            "latencyUs": us,
        });
        match failed {
            Some(e) if !ctx.authenticated => {
                audit.record_refusal(event, &format!("{}/{status}", e.kind.name()));
            }
            _ => audit.record(event),
        }
    }

    async fn process<B>(&self, req: Request<B>, ctx: &mut Ctx) -> Result<Resp, XksError>
    where
        B: Body<Data = Bytes>,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        // Route.
        let routing = self.routing.load_full();
        let (parts, body) = req.into_parts();
        if let Some(route) = routing.by_lb_path(parts.uri.path()) {
            ctx.op = Some(XksOp::LoadBalancerHealth);
            ctx.routed(route);
            let _permit = self.admit_in_flight()?;
            return health::load_balancer_health(&parts.method, route, &self.settings).await;
        }
        let (route, key) = route(&routing, parts.uri.path(), ctx)?;
        if parts.method != Method::POST {
            return Err(XksError::new(
                XksErrorKind::MethodNotAllowed,
                "method not allowed: XKS operations use POST",
            ));
        }
        let body = self.read_body(&parts, body).await?;
        // Only a request whose body arrived takes an in-flight slot: a stalled body
        // cannot hold one.
        let _permit = self.admit_in_flight()?;
        // Authenticate (the client certificate for a store with mutual TLS, then the
        // signature), then admit.
        mtls::check(&route.mtls, parts.extensions.get())?;
        auth::authenticate(&parts, &body, route)?;
        ctx.authenticated = true;
        self.admit(route)?;
        // Parse, run the operation, answer.
        let Some((key_id, op)) = key else {
            // As AWS's sample proxy and conformance tooling: the body must carry
            // requestMetadata with kmsRequestId and kmsOperation (whose value may be any).
            let req: wire::HealthRequest = wire::parse_body(&body)?;
            ctx.note(&req.request_metadata);
            wire::require_health_metadata(&req.request_metadata)?;
            return health::get_health_status(route, &self.settings).await;
        };
        match op {
            KeyOp::Metadata => {
                let call = prepare::<MetadataRequest>(&body, route, key_id, ctx)?;
                metadata::get_key_metadata(call).await
            }
            KeyOp::Encrypt => {
                encrypt::encrypt(prepare::<EncryptRequest>(&body, route, key_id, ctx)?).await
            }
            KeyOp::Decrypt => {
                decrypt::decrypt(prepare::<DecryptRequest>(&body, route, key_id, ctx)?).await
            }
        }
    }

    /// Reads the body, refusing one larger than the configured maximum.
    async fn read_body<B>(&self, parts: &Parts, body: B) -> Result<Bytes, XksError>
    where
        B: Body<Data = Bytes>,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let max = self.settings.max_body_bytes;
        let too_large = || {
            XksError::new(
                XksErrorKind::UnsupportedOperation,
                format!("request body exceeds the supported maximum of {max} bytes"),
            )
        };
        let declared = parts
            .headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|len| len > max as u64) {
            return Err(too_large());
        }
        match Limited::new(body, max).collect().await {
            Ok(collected) => Ok(collected.to_bytes()),
            Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(too_large()),
            // The specification has no timeout error for the client's side: the
            // request is incomplete, so malformed (`ValidationException`, 400).
            Err(e) if e.is::<crate::server::BodyTimeout>() => {
                Err(XksError::validation(format!("request incomplete: {e}")))
            }
            Err(e) => Err(XksError::validation(format!(
                "request body could not be read: {e}"
            ))),
        }
    }

    /// Takes one of the `max_in_flight` slots, or refuses with `ThrottlingException`.
    fn admit_in_flight(&self) -> Result<tokio::sync::OwnedSemaphorePermit, XksError> {
        self.in_flight.clone().try_acquire_owned().map_err(|_| {
            self.metrics.shed_in_flight.fetch_add(1, Relaxed);
            XksError::new(
                XksErrorKind::Throttling,
                "server overloaded: too many requests in flight",
            )
        })
    }

    /// Refuses an authenticated request when its store's quota is spent or the store is
    /// blocked.
    fn admit(&self, route: &StoreRoute) -> Result<(), XksError> {
        if let Some(bucket) = &route.quota {
            if !bucket.try_take() {
                self.metrics.throttled_quota.fetch_add(1, Relaxed);
                return Err(XksError::new(
                    XksErrorKind::Throttling,
                    "request quota of this key store exceeded",
                ));
            }
        }
        if route.record.blocked {
            return Err(XksError::new(
                XksErrorKind::InvalidState,
                "key store is blocked: an administrator suspended AWS KMS's access to it",
            ));
        }
        Ok(())
    }
}

/// A key operation's target: the external key id (as in the path) and the operation.
type KeyTarget<'p> = (&'p str, KeyOp);

/// The store an XKS path names, and the key operation it asks for (`None`:
/// GetHealthStatus). Notes the operation, key and store in `ctx` as they are known.
fn route<'r, 'p>(
    routing: &'r Routing,
    path: &'p str,
    ctx: &mut Ctx,
) -> Result<(&'r StoreRoute, Option<KeyTarget<'p>>), XksError> {
    let parsed = path::parse(path).ok_or_else(|| {
        XksError::new(
            XksErrorKind::InvalidUriPath,
            "no XKS operation at this path (expected [/<prefix>]/kms/xks/v1/health or .../keys/<id>/{metadata,encrypt,decrypt})",
        )
    })?;
    let (base, key) = match parsed {
        XksPath::Health { base } => {
            ctx.op = Some(XksOp::GetHealthStatus);
            (base, None)
        }
        XksPath::Key { base, key_id, op } => {
            ctx.op = Some(op.into());
            ctx.key_id = Some(key_id.chars().take(128).collect());
            (base, Some((key_id, op)))
        }
    };
    let route = routing.by_base(base).ok_or_else(|| {
        XksError::new(
            XksErrorKind::InvalidUriPath,
            "no key store is served at this URI path prefix",
        )
    })?;
    ctx.routed(route);
    ctx.success_audit = route.record.success_audit;
    Ok((route, key))
}

/// Parses a key operation's body, checks its metadata, resolves the key, and validates
/// the fields: each refusal in that order.
fn prepare<'a, R: KeyRequest>(
    body: &[u8],
    route: &'a StoreRoute,
    key_id: &str,
    ctx: &mut Ctx,
) -> Result<KeyCall<'a, R::Input>, XksError> {
    let req: R = wire::parse_body(body)?;
    ctx.note(req.metadata());
    wire::require_metadata(req.metadata(), R::CRYPTO)?;
    let (source, key) = ops::resolve_key(route, key_id, R::CRYPTO)?;
    let input = req.validate()?;
    Ok(KeyCall { source, key, input })
}

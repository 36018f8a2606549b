//! The XKS request pipeline: route by path, enforce method and body limits,
//! authenticate with SigV4, then run the operation against the store's key source.
//! Every request ends in one log line with `kmsRequestId`, store, operation, outcome
//! and latency; plaintext is never logged.

use std::{
    sync::{Arc, atomic::Ordering::Relaxed},
    time::{Duration, Instant},
};

use arc_swap::ArcSwap;
use base64::{Engine, engine::general_purpose::STANDARD as B64};
use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Body;
use keyhold_sdk::DecryptInput;
use tokio::sync::Semaphore;
use zeroize::Zeroizing;

use crate::{
    audit::AuditLog,
    metrics::{self, GlobalMetrics, StoreMetrics},
    model,
};

use super::{
    error::{XksError, XksErrorKind, json_response},
    path::{self, KeyOp, XksPath},
    routing::{Routing, StoreRoute},
    sigv4,
    wire::{self, MAX_AAD_BYTES, MAX_DATA_BYTES, MAX_METADATA_BYTES},
};

/// Data-plane settings.
#[derive(Debug, Clone)]
pub struct XksSettings {
    /// `xksProxyFleetSize`.
    pub fleet_size: u32,
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
    audit: Option<AuditLog>,
}

/// What is known about a request, for its log line.
#[derive(Default)]
struct Ctx {
    request_id: Option<String>,
    kms_operation: Option<String>,
    store: Option<String>,
    operation: &'static str,
    key_id: Option<String>,
    metrics: Option<Arc<StoreMetrics>>,
    success_audit: bool,
}

type Resp = Response<Full<Bytes>>;

impl XksService {
    /// A service reading routes from `routing`.
    pub fn new(routing: Arc<ArcSwap<Routing>>, settings: XksSettings) -> XksService {
        XksService {
            routing,
            in_flight: Arc::new(Semaphore::new(settings.max_in_flight.max(1))),
            settings: Arc::new(settings),
            metrics: Arc::new(GlobalMetrics::default()),
            audit: None,
        }
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
        let sources = opened
            .iter()
            .map(|s| {
                (
                    s.name.as_str(),
                    &s.latency,
                    s.errors.load(Relaxed),
                    s.in_use(),
                    s.capacity(),
                )
            })
            .collect();
        metrics::render(&metrics::Snapshot {
            global: &self.metrics,
            stores,
            sources,
            in_flight: self
                .settings
                .max_in_flight
                .saturating_sub(self.in_flight.available_permits()),
        })
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
        let mut ctx = Ctx {
            operation: "Unknown",
            ..Ctx::default()
        };
        let result = match self.in_flight.clone().try_acquire_owned() {
            Ok(_permit) => self.process(req, &mut ctx).await,
            Err(_) => {
                self.metrics.shed_in_flight.fetch_add(1, Relaxed);
                Err(XksError::new(
                    XksErrorKind::Throttling,
                    "server overloaded: too many requests in flight",
                ))
            }
        };
        let latency_us = started.elapsed().as_micros() as u64;
        let outcome = match &result {
            Ok(_) => 0,
            Err(e) => metrics::outcome_index(e.kind.name()),
        };
        match (&ctx.metrics, metrics::operation_index(ctx.operation)) {
            (Some(m), Some(op)) => m.record(op, outcome, latency_us),
            _ => {
                if let Some(c) = self.metrics.unrouted.get(outcome) {
                    c.fetch_add(1, Relaxed);
                }
            }
        }
        if let Some(audit) = &self.audit {
            let failed = result.as_ref().err();
            if failed.is_some() || ctx.success_audit {
                audit.record(serde_json::json!({
                    "kind": "xks",
                    "outcome": failed.map_or("ok", |e| e.kind.name()),
                    "status": failed.map_or(200, |e| e.kind.status().as_u16()),
                    "reason": failed.map(|e| e.message.as_str()),
                    "kmsRequestId": ctx.request_id,
                    "kmsOperation": ctx.kms_operation,
                    "store": ctx.store,
                    "operation": ctx.operation,
                    "keyId": ctx.key_id,
                    "latencyUs": latency_us,
                }));
            }
        }
        let rid = ctx.request_id.as_deref().unwrap_or("-");
        let store = ctx.store.as_deref().unwrap_or("-");
        let key_id = ctx.key_id.as_deref().unwrap_or("-");
        let kms_op = ctx.kms_operation.as_deref().unwrap_or("-");
        match result {
            Ok(resp) => {
                tracing::info!(
                    target: "keyhold::xks",
                    kmsRequestId = rid, store, operation = ctx.operation, key_id,
                    kms_operation = kms_op, outcome = "ok", status = resp.status().as_u16(),
                    latency_us, "xks request"
                );
                resp
            }
            Err(err) => {
                tracing::info!(
                    target: "keyhold::xks",
                    kmsRequestId = rid, store, operation = ctx.operation, key_id,
                    kms_operation = kms_op, outcome = err.kind.name(),
                    status = err.kind.status().as_u16(), latency_us,
                    reason = %err.message, "xks request refused"
                );
                err.into_response()
            }
        }
    }

    async fn process<B>(&self, req: Request<B>, ctx: &mut Ctx) -> Result<Resp, XksError>
    where
        B: Body<Data = Bytes>,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let routing = self.routing.load_full();
        let (parts, body) = req.into_parts();
        let path = parts.uri.path();
        if let Some(route) = routing.by_lb_path(path) {
            ctx.operation = "LoadBalancerHealth";
            ctx.store = Some(route.record.name.clone());
            ctx.metrics = Some(route.metrics.clone());
            return self.lb_health(&parts.method, route).await;
        }
        let parsed = path::parse(path).ok_or_else(|| {
            XksError::new(
                XksErrorKind::InvalidUriPath,
                "no XKS operation at this path (expected [/<prefix>]/kms/xks/v1/health or .../keys/<id>/{metadata,encrypt,decrypt})",
            )
        })?;
        let (base, key) = match parsed {
            XksPath::Health { base } => {
                ctx.operation = "GetHealthStatus";
                (base, None)
            }
            XksPath::Key { base, key_id, op } => {
                ctx.operation = op.name();
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
        ctx.store = Some(route.record.name.clone());
        ctx.metrics = Some(route.metrics.clone());
        ctx.success_audit = route.record.success_audit;
        if parts.method != Method::POST {
            return Err(XksError::new(
                XksErrorKind::MethodNotAllowed,
                format!("{} is not allowed: XKS operations use POST", parts.method),
            ));
        }
        let body = self.read_body(&parts, body).await?;
        authenticate(&parts, &body, route)?;
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
        match key {
            None => self.health(&body, route, ctx).await,
            Some((key_id, op)) => key_operation(&body, route, key_id, op, ctx).await,
        }
    }

    async fn read_body<B>(&self, parts: &http::request::Parts, body: B) -> Result<Bytes, XksError>
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
            Err(e) => Err(XksError::validation(format!(
                "request body could not be read: {e}"
            ))),
        }
    }

    async fn health(
        &self,
        body: &[u8],
        route: &StoreRoute,
        ctx: &mut Ctx,
    ) -> Result<Resp, XksError> {
        // Lenient: GetHealthStatus never answers ValidationException.
        let req: wire::HealthRequest = serde_json::from_slice(body).unwrap_or_default();
        if let Some(md) = req.request_metadata {
            ctx.request_id = md.kms_request_id;
            ctx.kms_operation = md.kms_operation;
        }
        let result = route.health.get(route, self.settings.health_max_age).await;
        let resp = wire::HealthResponse {
            xks_proxy_fleet_size: self.settings.fleet_size,
            xks_proxy_vendor: "keyhold".into(),
            xks_proxy_model: format!("keyhold {}", env!("CARGO_PKG_VERSION")),
            ekm_vendor: result.vendor.clone(),
            ekm_fleet_details: result
                .nodes
                .iter()
                .map(|n| wire::EkmFleetDetail {
                    id: n.id.to_string(),
                    model: n.model.to_string(),
                    health_status: n.status.as_str(),
                })
                .collect(),
        };
        Ok(ok_json(&resp))
    }

    async fn lb_health(&self, method: &Method, route: &StoreRoute) -> Result<Resp, XksError> {
        if method != Method::GET && method != Method::HEAD {
            return Err(XksError::new(
                XksErrorKind::MethodNotAllowed,
                "the load-balancer health path answers GET",
            ));
        }
        let result = route.health.get(route, self.settings.health_max_age).await;
        let (status, text, reason) = if route.record.blocked {
            (
                StatusCode::SERVICE_UNAVAILABLE,
                "BLOCKED",
                Some("key store is blocked".to_string()),
            )
        } else if result.is_healthy() {
            (StatusCode::OK, "ACTIVE", None)
        } else {
            (
                StatusCode::SERVICE_UNAVAILABLE,
                "UNAVAILABLE",
                result
                    .outcome
                    .clone()
                    .err()
                    .or(Some("no key manager is available".into())),
            )
        };
        let body = serde_json::json!({
            "store": route.record.name,
            "status": text,
            "reason": reason,
        });
        Ok(json_response(status, body.to_string().into_bytes()))
    }
}

fn ok_json<T: serde::Serialize>(value: &T) -> Resp {
    // Serializing our own response types cannot fail.
    json_response(
        StatusCode::OK,
        serde_json::to_vec(value).unwrap_or_default(),
    )
}

fn auth_failed(message: impl Into<String>) -> XksError {
    XksError::new(XksErrorKind::AuthenticationFailed, message)
}

fn authenticate(
    parts: &http::request::Parts,
    body: &[u8],
    route: &StoreRoute,
) -> Result<(), XksError> {
    let header = parts
        .headers
        .get(header::AUTHORIZATION)
        .ok_or_else(|| auth_failed("missing Authorization header (requests must be SigV4-signed)"))?
        .to_str()
        .map_err(|_| auth_failed("Authorization header is not ASCII"))?;
    let auth = sigv4::parse_authorization(header).map_err(|e| auth_failed(e.to_string()))?;
    let secret = route
        .credentials
        .get(auth.access_key_id)
        .ok_or_else(|| auth_failed("unknown access key id for this key store"))?;
    let request = sigv4::RequestParts {
        method: parts.method.as_str(),
        path: parts.uri.path(),
        query: parts.uri.query().unwrap_or(""),
        headers: &parts.headers,
        authority: parts.uri.authority().map(|a| a.as_str()),
        body,
    };
    // The signing key depends only on (secret, date, region): reuse it across requests.
    // Only keys of requests that verified are cached, so unauthenticated callers cannot
    // fill the cache.
    let cache_key = (
        auth.access_key_id.to_string(),
        auth.date.to_string(),
        auth.region.to_string(),
    );
    let cached = route.signing_keys.get(&cache_key);
    let key = cached
        .unwrap_or_else(|| sigv4::signing_key(secret, auth.date, auth.region, sigv4::SERVICE));
    sigv4::verify_with_key(&request, &auth, &key, time::OffsetDateTime::now_utc())
        .map_err(|e| auth_failed(e.to_string()))?;
    if cached.is_none() {
        route.signing_keys.insert(cache_key, key);
    }
    Ok(())
}

fn plugin_error(e: crate::plugin::PluginCallError) -> XksError {
    XksError::new(XksErrorKind::from_name(e.xks_error_name()), e.to_string())
}

async fn key_operation(
    body: &[u8],
    route: &StoreRoute,
    key_id: &str,
    op: KeyOp,
    ctx: &mut Ctx,
) -> Result<Resp, XksError> {
    match op {
        KeyOp::Metadata => {
            let req: wire::MetadataRequest = wire::parse_body(body)?;
            note_metadata(ctx, &req.request_metadata);
            wire::require_metadata(&req.request_metadata, false)?;
            let (source, key) = resolve_key(route, key_id)?;
            let name = key.source_key.clone();
            let info = source
                .call("get_key", move |s| s.get_key((&*name).into()).into_result())
                .await
                .map_err(plugin_error)?;
            let mut usage = info.usage.names();
            usage.truncate(10);
            let enabled = info.enabled && !key.blocked;
            Ok(ok_json(&wire::MetadataResponse {
                key_spec: "AES_256",
                key_usage: usage,
                key_status: if enabled { "ENABLED" } else { "DISABLED" },
            }))
        }
        KeyOp::Encrypt => {
            let req: wire::EncryptRequest = wire::parse_body(body)?;
            note_metadata(ctx, &req.request_metadata);
            wire::require_metadata(&req.request_metadata, true)?;
            let (source, key) = resolve_key(route, key_id)?;
            check_key_usable(key, key_id)?;
            wire::check_algorithm(req.encryption_algorithm.as_ref())?;
            let plaintext = wire::decode_b64(
                wire::required(&req.plaintext, "plaintext")?,
                "plaintext",
                MAX_DATA_BYTES,
            )?;
            let aad = optional_b64(
                &req.additional_authenticated_data,
                "additionalAuthenticatedData",
                MAX_AAD_BYTES,
            )?;
            let want_cdiv = match req.ciphertext_data_integrity_value_algorithm.as_deref() {
                None => false,
                Some("SHA_256") => true,
                Some(other) => {
                    return Err(XksError::new(
                        XksErrorKind::UnsupportedOperation,
                        format!(
                            "ciphertextDataIntegrityValueAlgorithm '{}' is not supported (only SHA_256)",
                            other.chars().take(40).collect::<String>()
                        ),
                    ));
                }
            };
            let name = key.source_key.clone();
            let (sealed, cdiv) = source
                .call("encrypt", move |s| {
                    let name: &str = &name;
                    let sealed = s
                        .encrypt(
                            name.into(),
                            plaintext.as_slice().into(),
                            aad.as_slice().into(),
                        )
                        .into_result()?;
                    if !want_cdiv {
                        return Ok((sealed, None));
                    }
                    // CDIV first, then prove the result decrypts to the input.
                    let cdiv = wire::cdiv(&aad, &[], &sealed.iv, &sealed.ciphertext, &sealed.tag);
                    let back = Zeroizing::new(
                        s.decrypt(
                            name.into(),
                            DecryptInput {
                                iv: sealed.iv.as_slice().into(),
                                ciphertext: sealed.ciphertext.as_slice().into(),
                                tag: sealed.tag.as_slice().into(),
                                aad: aad.as_slice().into(),
                            },
                        )
                        .into_result()?
                        .into_vec(),
                    );
                    if back.as_slice() != plaintext.as_slice() {
                        return Err(keyhold_sdk::KeySourceError::internal(
                            "encrypt result failed its verifying decrypt",
                        ));
                    }
                    Ok((sealed, Some(cdiv)))
                })
                .await
                .map_err(plugin_error)?;
            Ok(ok_json(&wire::EncryptResponse {
                ciphertext: B64.encode(&sealed.ciphertext),
                initialization_vector: B64.encode(&sealed.iv),
                authentication_tag: B64.encode(&sealed.tag),
                ciphertext_data_integrity_value: cdiv,
            }))
        }
        KeyOp::Decrypt => {
            let req: wire::DecryptRequest = wire::parse_body(body)?;
            note_metadata(ctx, &req.request_metadata);
            wire::require_metadata(&req.request_metadata, true)?;
            let (source, key) = resolve_key(route, key_id)?;
            check_key_usable(key, key_id)?;
            wire::check_algorithm(req.encryption_algorithm.as_ref())?;
            let ciphertext = wire::decode_b64(
                wire::required(&req.ciphertext, "ciphertext")?,
                "ciphertext",
                MAX_DATA_BYTES,
            )?;
            let iv = exact_b64(
                wire::required(&req.initialization_vector, "initializationVector")?,
                "initializationVector",
                &[12, 16],
            )?;
            let tag = exact_b64(
                wire::required(&req.authentication_tag, "authenticationTag")?,
                "authenticationTag",
                &[16],
            )?;
            let aad = optional_b64(
                &req.additional_authenticated_data,
                "additionalAuthenticatedData",
                MAX_AAD_BYTES,
            )?;
            let metadata = match &req.ciphertext_metadata {
                None => None,
                Some(m) => Some(wire::decode_b64(m, "ciphertextMetadata", 64).and_then(|m| {
                    if m.len() > MAX_METADATA_BYTES {
                        Err(XksError::validation(format!(
                            "ciphertextMetadata must be at most {MAX_METADATA_BYTES} bytes"
                        )))
                    } else {
                        Ok(m)
                    }
                })?),
            };
            let aad = Zeroizing::new(wire::effective_aad(
                &aad,
                metadata.as_ref().map(|m| m.as_slice()),
            ));
            let name = key.source_key.clone();
            let plaintext = source
                .call("decrypt", move |s| {
                    s.decrypt(
                        (&*name).into(),
                        DecryptInput {
                            iv: iv.as_slice().into(),
                            ciphertext: ciphertext.as_slice().into(),
                            tag: tag.as_slice().into(),
                            aad: aad.as_slice().into(),
                        },
                    )
                    .into_result()
                    .map(|p| Zeroizing::new(p.into_vec()))
                })
                .await
                .map_err(plugin_error)?;
            let encoded = Zeroizing::new(B64.encode(plaintext.as_slice()));
            Ok(ok_json(&wire::DecryptResponse {
                plaintext: encoded.as_str(),
            }))
        }
    }
}

fn note_metadata(ctx: &mut Ctx, md: &Option<wire::RequestMetadata>) {
    if let Some(md) = md {
        ctx.request_id = md.kms_request_id.clone();
        ctx.kms_operation = md.kms_operation.clone();
    }
}

fn optional_b64(
    value: &Option<String>,
    name: &str,
    max: usize,
) -> Result<Zeroizing<Vec<u8>>, XksError> {
    match value {
        Some(v) => wire::decode_b64(v, name, max),
        None => Ok(Zeroizing::new(Vec::new())),
    }
}

fn exact_b64(value: &str, name: &str, lengths: &[usize]) -> Result<Zeroizing<Vec<u8>>, XksError> {
    let bytes = wire::decode_b64(value, name, 64).map_err(|e| {
        if e.kind == XksErrorKind::UnsupportedOperation {
            XksError::validation(format!("field '{name}' has the wrong length"))
        } else {
            e
        }
    })?;
    if !lengths.contains(&bytes.len()) {
        let allowed: Vec<String> = lengths.iter().map(|l| l.to_string()).collect();
        return Err(XksError::validation(format!(
            "field '{name}' must be {} bytes, got {}",
            allowed.join(" or "),
            bytes.len()
        )));
    }
    Ok(bytes)
}

fn resolve_key<'a>(
    route: &'a StoreRoute,
    key_id: &str,
) -> Result<
    (
        Arc<crate::plugin::KeySourceHandle>,
        &'a super::routing::KeyRoute,
    ),
    XksError,
> {
    model::validate_external_key_id(key_id).map_err(|e| XksError::validation(e.to_string()))?;
    let key = route.keys.get(key_id).ok_or_else(|| {
        XksError::new(
            XksErrorKind::KeyNotFound,
            format!("no external key '{key_id}' in this key store"),
        )
    })?;
    let source = route.source.clone().map_err(|reason| {
        XksError::new(
            XksErrorKind::Internal,
            format!(
                "key source '{}' is not available: {reason}",
                route.record.source
            ),
        )
    })?;
    Ok((source, key))
}

fn check_key_usable(key: &super::routing::KeyRoute, key_id: &str) -> Result<(), XksError> {
    if key.blocked {
        return Err(XksError::new(
            XksErrorKind::InvalidState,
            format!("external key '{key_id}' is blocked"),
        ));
    }
    Ok(())
}

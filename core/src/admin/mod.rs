//! The management REST API (`/api/v1/...`): JSON over HTTPS, bearer-token
//! authentication, per-account ACL authorization, every change one store transaction
//! (through [`crate::ops`]) plus a durable audit record.
//!
//! [`ROUTES`] is the single route table: the router is built from it (a route not in
//! it cannot be added) and a test checks it against the OpenAPI document
//! (`core/openapi.json`, served at `/api/v1/openapi.json`).

use std::{path::PathBuf, sync::Arc, time::Duration};

use axum::{
    Router,
    extract::{FromRequest, FromRequestParts, Request},
    handler::Handler,
    http::{HeaderValue, Method, StatusCode, Uri, header, request::Parts},
    response::{IntoResponse, Response},
    routing::{MethodFilter, on},
};
use bytes::Bytes;
use hyper_util::service::TowerToHyperService;
use serde::de::DeserializeOwned;
use serde_json::json;
use tokio::{net::TcpListener, sync::watch};
use zeroize::Zeroizing;

use crate::{
    audit::AuditLog,
    auth::{AuthError, Principal, TokenRecord},
    config::Config,
    ops::{OpError, Operations},
};

mod handlers;

/// The OpenAPI 3 document describing every route.
pub const OPENAPI: &str = include_str!("../../openapi.json");

/// Every route the admin API serves: (method, path). The router is built from this
/// table and the OpenAPI document must list exactly these.
pub const ROUTES: &[(&str, &str)] = &[
    ("GET", "/api/v1/openapi.json"),
    ("POST", "/api/v1/login"),
    ("POST", "/api/v1/logout"),
    ("GET", "/api/v1/tokens"),
    ("POST", "/api/v1/tokens"),
    ("DELETE", "/api/v1/tokens/{id}"),
    ("GET", "/api/v1/users"),
    ("POST", "/api/v1/users"),
    ("GET", "/api/v1/users/{name}"),
    ("DELETE", "/api/v1/users/{name}"),
    ("PUT", "/api/v1/users/{name}/password"),
    ("GET", "/api/v1/accounts"),
    ("POST", "/api/v1/accounts"),
    ("GET", "/api/v1/accounts/{id}"),
    ("PUT", "/api/v1/accounts/{id}"),
    ("DELETE", "/api/v1/accounts/{id}"),
    ("GET", "/api/v1/sources"),
    ("POST", "/api/v1/sources"),
    ("GET", "/api/v1/connections/aws"),
    ("POST", "/api/v1/connections/aws"),
    ("GET", "/api/v1/connections/aws/{name}"),
    ("DELETE", "/api/v1/connections/aws/{name}"),
    ("POST", "/api/v1/connections/aws/{name}/test"),
    ("GET", "/api/v1/connections/hsm"),
    ("POST", "/api/v1/connections/hsm"),
    ("GET", "/api/v1/connections/hsm/{name}"),
    ("DELETE", "/api/v1/connections/hsm/{name}"),
    ("POST", "/api/v1/connections/hsm/{name}/test"),
    ("GET", "/api/v1/sources/{name}/keys"),
    ("POST", "/api/v1/sources/{name}/keys"),
    ("GET", "/api/v1/sources/{name}/keys/{key}"),
    ("GET", "/api/v1/stores"),
    ("POST", "/api/v1/stores"),
    ("GET", "/api/v1/stores/{id}"),
    ("PATCH", "/api/v1/stores/{id}"),
    ("DELETE", "/api/v1/stores/{id}"),
    ("POST", "/api/v1/stores/{id}/block"),
    ("POST", "/api/v1/stores/{id}/unblock"),
    ("GET", "/api/v1/stores/{id}/credentials"),
    ("POST", "/api/v1/stores/{id}/credentials"),
    ("DELETE", "/api/v1/stores/{id}/credentials/{akid}"),
    ("GET", "/api/v1/stores/{id}/keys"),
    ("POST", "/api/v1/stores/{id}/keys"),
    ("GET", "/api/v1/stores/{id}/keys/{ext}"),
    ("DELETE", "/api/v1/stores/{id}/keys/{ext}"),
    ("POST", "/api/v1/stores/{id}/keys/{ext}/block"),
    ("POST", "/api/v1/stores/{id}/keys/{ext}/unblock"),
];

/// What every handler shares.
#[derive(Clone)]
pub struct AdminState {
    ops: Arc<Operations>,
    audit: AuditLog,
    session_ttl_seconds: u64,
    data_plane: Option<crate::xks::XksService>,
}

impl AdminState {
    /// State over `ops`, auditing to `audit`.
    pub fn new(ops: Arc<Operations>, audit: AuditLog, session_ttl_seconds: u64) -> AdminState {
        AdminState {
            ops,
            audit,
            session_ttl_seconds,
            data_plane: None,
        }
    }

    /// Answers a change only once this node's data plane serves it (read-your-writes
    /// for XKS requests right after an admin call).
    pub fn with_data_plane(mut self, service: crate::xks::XksService) -> AdminState {
        self.data_plane = Some(service);
        self
    }

    async fn wait_applied(&self, revision: u64) {
        let Some(service) = &self.data_plane else {
            return;
        };
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while service.routing().revision < revision {
            if tokio::time::Instant::now() >= deadline {
                tracing::warn!(
                    revision,
                    "data plane has not applied an admin change within 5 s"
                );
                return;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    /// Runs a read-only operation on the blocking pool.
    async fn read<T, F>(&self, f: F) -> Result<T, ApiError>
    where
        T: Send + 'static,
        F: FnOnce(&Operations) -> Result<T, OpError> + Send + 'static,
    {
        let ops = self.ops.clone();
        tokio::task::spawn_blocking(move || f(&ops))
            .await
            .map_err(|e| ApiError::internal(format!("task failed: {e}")))?
            .map_err(ApiError::from)
    }

    /// Runs a change on the blocking pool and records it (refused or done) in the
    /// audit log, durably, before answering. `f` returns the result and audit details
    /// (never secrets).
    async fn change<T, F>(
        &self,
        user: &str,
        action: &'static str,
        object: String,
        f: F,
    ) -> Result<T, ApiError>
    where
        T: Send + 'static,
        F: FnOnce(&Operations) -> Result<(T, serde_json::Value), OpError> + Send + 'static,
    {
        let (ops, audit, user) = (self.ops.clone(), self.audit.clone(), user.to_string());
        let done = tokio::task::spawn_blocking(move || {
            let result = f(&ops);
            let (outcome, details) = match &result {
                Ok((_, d)) => ("ok".to_string(), d.clone()),
                Err(e) => (format!("refused: {}", e.code()), json!(e.to_string())),
            };
            let mut event = json!({
                "kind": "admin",
                "user": user,
                "action": action,
                "object": object,
                "outcome": outcome,
            });
            if !details.is_null() {
                event["details"] = details;
            }
            let audited = audit.record_durable(event);
            let revision = ops.revision().unwrap_or(0);
            (result.map(|(t, _)| (t, revision)), audited)
        })
        .await
        .map_err(|e| ApiError::internal(format!("task failed: {e}")))?;
        let (result, audited) = done;
        let (t, revision) = result.map_err(ApiError::from)?;
        // An acknowledged change always has its audit record: if the record could not
        // be written, the caller is told (the change itself is already committed).
        if let Err(e) = audited {
            tracing::error!(action, "admin audit record failed: {e}");
            return Err(ApiError::internal(format!(
                "the change was applied but its audit record could not be written: {e}"
            )));
        }
        self.wait_applied(revision).await;
        Ok(t)
    }
}

/// A refusal: `{"error": {"code": "...", "message": "..."}}` with a fitting status.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl ApiError {
    fn new(status: u16, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status: StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            code,
            message: message.into(),
        }
    }

    fn internal(message: impl Into<String>) -> ApiError {
        ApiError::new(500, "internal", message)
    }
}

impl From<OpError> for ApiError {
    fn from(e: OpError) -> Self {
        ApiError::new(e.http_status(), e.code(), e.to_string())
    }
}

impl From<AuthError> for ApiError {
    fn from(e: AuthError) -> Self {
        ApiError::new(e.http_status(), e.code(), e.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if self.status.is_server_error() {
            tracing::error!(code = self.code, "admin API error: {}", self.message);
        }
        let body = json!({"error": {"code": self.code, "message": self.message}});
        let mut resp = (self.status, axum::Json(body)).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            resp.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"keyhold\""),
            );
        }
        resp
    }
}

/// The authenticated caller of a request (`Authorization: Bearer kh_...`).
pub struct Caller {
    /// Who.
    pub principal: Principal,
    /// The token they presented.
    pub token: TokenRecord,
}

impl FromRequestParts<AdminState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AdminState,
    ) -> Result<Self, Self::Rejection> {
        let missing = || {
            ApiError::from(AuthError::Unauthenticated(
                "send 'Authorization: Bearer kh_...' (POST /api/v1/login issues one)",
            ))
        };
        let value = parts
            .headers
            .get(header::AUTHORIZATION)
            .ok_or_else(missing)?
            .to_str()
            .map_err(|_| missing())?;
        let bearer = value
            .strip_prefix("Bearer ")
            .or_else(|| value.strip_prefix("bearer "))
            .ok_or_else(missing)?;
        let bearer = Zeroizing::new(bearer.trim().to_string());
        let (principal, token) = state.read(move |ops| ops.authenticate(&bearer)).await?;
        Ok(Caller { principal, token })
    }
}

/// A JSON request body; malformed JSON is refused with 400 `invalid_json` and
/// serde's message. An empty body reads as `{}`.
pub struct Body<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for Body<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = Bytes::from_request(req, state)
            .await
            .map_err(|e| ApiError::new(e.status().as_u16(), "invalid_body", e.body_text()))?;
        let text: &[u8] = if bytes.iter().all(u8::is_ascii_whitespace) {
            b"{}"
        } else {
            &bytes
        };
        serde_json::from_slice(text)
            .map(Body)
            .map_err(|e| ApiError::new(400, "invalid_json", format!("invalid JSON body: {e}")))
    }
}

fn method_filter(method: &str) -> MethodFilter {
    match method {
        "GET" => MethodFilter::GET,
        "POST" => MethodFilter::POST,
        "PUT" => MethodFilter::PUT,
        "PATCH" => MethodFilter::PATCH,
        "DELETE" => MethodFilter::DELETE,
        _ => MethodFilter::OPTIONS,
    }
}

/// Builds the router from [`ROUTES`]: each added route must be in the table.
struct Table {
    router: Router<AdminState>,
    added: Vec<(&'static str, &'static str)>,
}

impl Table {
    fn add<H, T>(mut self, method: &'static str, path: &'static str, handler: H) -> Self
    where
        H: Handler<T, AdminState>,
        T: 'static,
    {
        debug_assert!(
            ROUTES.contains(&(method, path)),
            "{method} {path} is not in admin::ROUTES"
        );
        self.router = self.router.route(path, on(method_filter(method), handler));
        self.added.push((method, path));
        self
    }
}

async fn not_found(method: Method, uri: Uri) -> ApiError {
    ApiError::new(
        404,
        "not_found",
        format!("no route for {method} {}", uri.path()),
    )
}

async fn method_not_allowed(method: Method, uri: Uri) -> ApiError {
    ApiError::new(
        405,
        "method_not_allowed",
        format!("{method} is not allowed on {}", uri.path()),
    )
}

/// The admin API's router over `state`.
pub fn router(state: AdminState) -> Router {
    let table = handlers::table(Table {
        router: Router::new(),
        added: Vec::new(),
    });
    debug_assert_eq!(table.added.len(), ROUTES.len(), "every route is served");
    table
        .router
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(state)
}

/// The routes the router serves, as added (for the route-table test).
pub fn served_routes() -> Vec<(&'static str, &'static str)> {
    handlers::table(Table {
        router: Router::new(),
        added: Vec::new(),
    })
    .added
}

/// Serves `router` on `listener` (TLS when configured) until `shutdown` turns true.
pub async fn serve(
    listener: TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
    router: Router,
    shutdown: watch::Receiver<bool>,
) {
    crate::server::serve_http(
        listener,
        tls,
        TowerToHyperService::new(router),
        shutdown,
        "admin",
    )
    .await;
}

/// On a first start (no users), creates `root` in `admins`: with the password from
/// `admin.root_password_env`, or a generated one that is printed once to stdout and
/// written to `<data_dir>/root-password` (mode 0600). Never logged. Returns the file
/// written, if any.
pub fn bootstrap_root(
    cfg: &Config,
    ops: &Operations,
    audit: &AuditLog,
) -> Result<Option<PathBuf>, String> {
    let from_env = match &cfg.admin.root_password_env {
        None => None,
        Some(var) => match std::env::var(var) {
            Ok(v) if !v.is_empty() => Some(Zeroizing::new(v)),
            _ => None,
        },
    };
    let env_named_but_unset = cfg.admin.root_password_env.is_some() && from_env.is_none();
    let Some(boot) = ops.ensure_root(from_env).map_err(|e| e.to_string())? else {
        return Ok(None);
    };
    if env_named_but_unset {
        tracing::warn!(
            "admin.root_password_env names a variable that is not set: generated a root password instead"
        );
    }
    let _ = audit.record_durable(json!({
        "kind": "admin",
        "user": "keyhold",
        "action": "create_root_user",
        "object": "user/root",
        "outcome": "ok",
    }));
    let Some(password) = boot.generated_password else {
        tracing::info!("created admin user 'root' with the password from admin.root_password_env");
        return Ok(None);
    };
    let path = cfg.data_dir.join("root-password");
    let text = Zeroizing::new(format!("{}\n", password.as_str()));
    crate::secrets::write_private_file(&path, text.as_bytes())
        .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    println!(
        "keyhold: created admin user 'root' with password: {}\nkeyhold: (shown only this once; also written to {})",
        password.as_str(),
        path.display()
    );
    tracing::warn!(
        file = %path.display(),
        "created admin user 'root' with a generated password (printed once to stdout, written to the file)"
    );
    Ok(Some(path))
}

#[cfg(test)]
mod tests;

//! The management REST API (`/api/v1/...`): JSON over HTTPS, bearer-token
//! authentication, per-account ACL authorization, every change one store transaction
//! (through [`crate::ops`]) plus a durable audit record.
//!
//! One module per resource holds its handlers, each annotated with its OpenAPI
//! operation; [`api_router`] registers them through `utoipa-axum`, so the router and
//! the OpenAPI document (served at `/api/v1/openapi.json`) come from the same list and
//! a route cannot exist without its documentation. Request and response bodies are the
//! types of [`crate::api`].

use std::sync::Arc;

use axum::{
    Router,
    http::{Method, Uri},
};
use hyper_util::service::TowerToHyperService;
use tokio::{net::TcpListener, sync::watch};
use utoipa_axum::router::OpenApiRouter;

use self::openapi::tagged;

mod accounts;
mod audit;
mod authz;
mod bootstrap;
mod connections;
mod credentials;
mod error;
mod etag;
mod extract;
mod jobs;
mod keys;
mod nodes;
mod openapi;
mod params;
mod prelude;
mod reply;
mod responses;
mod schedules;
mod session;
mod sources;
mod state;
mod store_metrics;
mod store_names;
mod stores;
mod throttle;
mod tokens;
mod users;

pub use bootstrap::bootstrap_root;
pub use error::ApiError;
pub use extract::{Admin, Body, Caller};
pub use openapi::json as openapi_json;
pub use state::{Actor, AdminState};

/// Every route with its OpenAPI operation: the single route list.
fn api_router() -> OpenApiRouter<AdminState> {
    OpenApiRouter::with_openapi(openapi::base())
        .routes(utoipa_axum::routes!(openapi::openapi_json))
        .merge(tagged("session", session::routes()))
        .merge(tagged("tokens", tokens::routes()))
        .merge(tagged("users", users::routes()))
        .merge(tagged("accounts", accounts::routes()))
        .merge(tagged("connections", connections::routes()))
        .merge(tagged("sources", sources::routes()))
        .merge(tagged("stores", stores::routes()))
        .merge(tagged("stores", store_metrics::routes()))
        .merge(tagged("credentials", credentials::routes()))
        .merge(tagged("keys", keys::routes()))
        .merge(tagged("schedules", schedules::routes()))
        .merge(tagged("jobs", jobs::routes()))
        .merge(tagged("nodes", nodes::routes()))
        .merge(tagged("audit", audit::routes()))
}

/// The OpenAPI document of every route (what `GET /api/v1/openapi.json` serves).
pub fn openapi() -> utoipa::openapi::OpenApi {
    openapi::complete(api_router().into_openapi())
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
    let (router, _) = api_router().split_for_parts();
    let routes = router
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(state.clone());
    // Store names are resolved to ids before routing (see `store_names`).
    Router::new()
        .fallback_service(routes)
        .layer(axum::middleware::from_fn_with_state(
            state,
            store_names::resolve,
        ))
}

/// Serves `router` on `listener` (TLS when configured) until `shutdown` turns true.
/// `ctx`: the listener's limits and counters.
pub async fn serve(
    listener: TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
    router: Router,
    shutdown: watch::Receiver<bool>,
    ctx: crate::server::ListenerContext,
) {
    crate::server::serve_http(
        listener,
        tls,
        TowerToHyperService::new(router),
        shutdown,
        "admin",
        ctx,
    )
    .await;
}

#[cfg(test)]
mod tests;

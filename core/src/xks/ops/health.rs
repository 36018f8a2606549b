//! GetHealthStatus and the load-balancer health path, both answered from the store's
//! cached deep health check (`xks::health`).

use http::{Method, StatusCode};

use crate::xks::{
    error::{XksError, XksErrorKind, json_response},
    ops::{Resp, ok_json},
    routing::StoreRoute,
    service::XksSettings,
    wire,
};

/// Answers GetHealthStatus: the proxy fleet, and the key managers with their health.
pub async fn get_health_status(
    route: &StoreRoute,
    settings: &XksSettings,
) -> Result<Resp, XksError> {
    let result = route.health.get(route, settings.health_max_age).await;
    let resp = wire::HealthResponse {
        xks_proxy_fleet_size: settings.fleet.get(),
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

/// Answers the load-balancer health path (`GET`/`HEAD`, unauthenticated): 200 with body
/// `{"status":"ACTIVE"}` when the store can serve crypto, else 503 with
/// `{"status":"BLOCKED"}` or `{"status":"UNAVAILABLE"}`. The path needs no credentials, so
/// the body is fixed per status and never carries the failure reason (key manager, module
/// or HSM details): the reason goes to the log, and authenticated callers see it through
/// GetHealthStatus and the admin API.
pub async fn load_balancer_health(
    method: &Method,
    route: &StoreRoute,
    settings: &XksSettings,
) -> Result<Resp, XksError> {
    if method != Method::GET && method != Method::HEAD {
        return Err(XksError::new(
            XksErrorKind::MethodNotAllowed,
            "the load-balancer health path answers GET",
        )
        .allowing("GET, HEAD"));
    }
    let result = route.health.get(route, settings.health_max_age).await;
    let (status, text) = if route.record.blocked {
        tracing::warn!(
            store = %route.record.name,
            "load-balancer health: UNAVAILABLE (BLOCKED): key store is blocked"
        );
        (StatusCode::SERVICE_UNAVAILABLE, "BLOCKED")
    } else if result.is_healthy() {
        (StatusCode::OK, "ACTIVE")
    } else {
        let reason = result
            .outcome
            .clone()
            .err()
            .unwrap_or_else(|| "no key manager is available".into());
        tracing::warn!(
            store = %route.record.name,
            reason = %reason,
            "load-balancer health: UNAVAILABLE"
        );
        (StatusCode::SERVICE_UNAVAILABLE, "UNAVAILABLE")
    };
    let body = serde_json::json!({ "status": text });
    Ok(json_response(status, body.to_string().into_bytes()))
}

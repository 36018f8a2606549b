//! Logging in (a session token for a user name and password) and out.

use std::net::SocketAddr;

use axum::{
    Extension, Json,
    extract::{ConnectInfo, State},
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde_json::Value;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::{Actor, AdminState, ApiError, Body, Caller, reply::Result, throttle::Refusal};
use crate::{
    api::{
        error::ErrorBody,
        session::{Login, Session},
    },
    identity::Principal,
    ops::validate_user_name,
};

pub(super) fn routes() -> OpenApiRouter<AdminState> {
    OpenApiRouter::new()
        .routes(routes!(login))
        .routes(routes!(logout))
}

/// Log in: returns a session token (TTL admin.session_ttl_seconds).
///
/// After repeated failures for a user name or from a client address, attempts are
/// refused for a while (429 `too_many_attempts` with `Retry-After`) without checking
/// the password or writing an audit record; when too many logins wait for a password
/// check, 503 `busy`. A user name that is not 1 to 64 letters, digits, `.`, `_`, `@`
/// and `-` is refused 400 `invalid_input`, unaudited.
#[utoipa::path(post, path = "/api/v1/login", security(()), request_body = Login, responses(
    (status = 200, description = "Session token.", body = Session),
    (status = 400, description = "Malformed JSON or invalid user name.", body = ErrorBody),
    (status = 401, description = "Wrong user name or password.", body = ErrorBody),
    (status = 429, description = "Too many failed logins for the user or from the address: retry after `Retry-After` seconds.", body = ErrorBody),
    (status = 503, description = "Too many logins waiting: retry after `Retry-After` seconds.", body = ErrorBody),
))]
async fn login(
    State(s): State<AdminState>,
    peer: Option<Extension<ConnectInfo<SocketAddr>>>,
    Body(body): Body<Login>,
) -> Response {
    let address = peer.map(|Extension(ConnectInfo(a))| a.ip());
    if let Err(e) = validate_user_name(&body.user) {
        return ApiError::from(e).into_response();
    }
    let throttle = s.login_throttle.clone();
    if let Err(r) = throttle.check(&body.user, address) {
        return refusal(r);
    }
    // At most a few password checks at once: the slot is held by the blocking task,
    // so it stays taken even when the client goes away meanwhile.
    let slot = match throttle.hashing_slot().await {
        Ok(slot) => slot,
        Err(r) => return refusal(r),
    };
    let user = body.user.clone();
    match login_checked(s, body, slot).await {
        Ok(session) => {
            throttle.succeeded(&user);
            Json(session).into_response()
        }
        Err(e) => {
            if e.code() == "unauthenticated" {
                if let Some(lock) = throttle.failed(&user, address) {
                    tracing::warn!(
                        user,
                        address = ?address,
                        seconds = lock.as_secs(),
                        "failed logins: further attempts refused for a while"
                    );
                }
            }
            e.into_response()
        }
    }
}

/// 429 or 503 with `Retry-After` (whole seconds, at least 1).
fn refusal(r: Refusal) -> Response {
    let (e, after) = match r {
        Refusal::TooManyAttempts(d) => (
            ApiError::new(
                429,
                "too_many_attempts",
                "too many failed logins for this user or from this address: retry later",
            ),
            d.as_secs() + u64::from(d.subsec_nanos() > 0),
        ),
        Refusal::Busy => (
            ApiError::new(503, "busy", "too many logins in progress: retry shortly"),
            1,
        ),
    };
    let mut resp = e.into_response();
    resp.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(after.max(1)));
    resp
}

/// The audited login itself (the password checked on the blocking pool, holding
/// `slot`).
async fn login_checked(
    s: AdminState,
    body: Login,
    slot: tokio::sync::OwnedSemaphorePermit,
) -> Result<Session> {
    let ttl = s.session_ttl_seconds;
    // Audited under the name tried (a valid name): nobody is authenticated yet.
    let who = Principal {
        user: body.user.clone(),
        groups: Default::default(),
    };
    let object = format!("user/{}", body.user);
    let issued = Actor::new(s, who)
        .change("login", object, move |ops, _| {
            let _slot = slot;
            Ok((ops.login(&body.user, &body.password, ttl)?, Value::Null))
        })
        .await?;
    Ok(Session {
        token: issued.bearer.to_string(),
        token_id: issued.record.id,
        user: issued.record.user,
        expires_at: issued.record.expires_at,
    })
}

/// Revoke the current session token.
#[utoipa::path(post, path = "/api/v1/logout", responses(
    (status = 204, description = "Revoked."),
))]
async fn logout(c: Caller) -> Result<StatusCode> {
    let id = c.token.id.clone();
    c.change_no_content("logout", format!("token/{id}"), move |ops, who| {
        ops.revoke_token(&id, who).map(drop)
    })
    .await
}

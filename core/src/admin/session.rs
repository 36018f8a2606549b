//! Logging in (a session token for a user name and password) and out.

use axum::{Json, extract::State, http::StatusCode};
use serde_json::Value;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::{Actor, AdminState, Body, Caller, reply::Result};
use crate::{
    api::{
        error::ErrorBody,
        session::{Login, Session},
    },
    identity::Principal,
};

pub(super) fn routes() -> OpenApiRouter<AdminState> {
    OpenApiRouter::new()
        .routes(routes!(login))
        .routes(routes!(logout))
}

/// Log in: returns a session token (TTL admin.session_ttl_seconds).
#[utoipa::path(post, path = "/api/v1/login", security(()), request_body = Login, responses(
    (status = 200, description = "Session token.", body = Session),
    (status = 400, description = "Malformed JSON.", body = ErrorBody),
    (status = 401, description = "Wrong user name or password.", body = ErrorBody),
))]
async fn login(State(s): State<AdminState>, Body(body): Body<Login>) -> Result<Json<Session>> {
    let ttl = s.session_ttl_seconds;
    // Audited under the name tried: nobody is authenticated yet.
    let who = Principal {
        user: body.user.clone(),
        groups: Default::default(),
    };
    let object = format!("user/{}", body.user);
    let issued = Actor::new(s, who)
        .change("login", object, move |ops, _| {
            Ok((ops.login(&body.user, &body.password, ttl)?, Value::Null))
        })
        .await?;
    Ok(Json(Session {
        token: issued.bearer.to_string(),
        token_id: issued.record.id,
        user: issued.record.user,
        expires_at: issued.record.expires_at,
    }))
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

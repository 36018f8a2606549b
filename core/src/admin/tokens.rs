//! The caller's bearer tokens: list, issue an API token, revoke.

use axum::{
    Json,
    extract::{Path, State},
    http::StatusCode,
};
use serde_json::json;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::{
    AdminState, Body, Caller,
    reply::{Result, created},
};
use crate::api::{
    error::ErrorBody,
    tokens::{IssuedToken, NewToken, Token},
};

pub(super) fn routes() -> OpenApiRouter<AdminState> {
    OpenApiRouter::new()
        .routes(routes!(list_tokens, create_token))
        .routes(routes!(revoke_token))
}

/// The caller's tokens (never their secrets).
#[utoipa::path(
    get,
    path = "/api/v1/tokens",
    tag = "tokens",
    responses((status = 200, description = "Tokens.", body = Vec<Token>))
)]
async fn list_tokens(State(s): State<AdminState>, c: Caller) -> Result<Json<Vec<Token>>> {
    let tokens = s
        .read_as(&c.principal, |ops, who| ops.list_tokens(&who.user))
        .await?;
    Ok(Json(tokens.iter().map(Token::from).collect()))
}

/// Issue an API token for the caller; the bearer is shown once.
#[utoipa::path(
    post,
    path = "/api/v1/tokens",
    tag = "tokens",
    request_body = NewToken,
    responses(
        (status = 201, description = "Token with its bearer.", body = IssuedToken),
        (status = 400, description = "Invalid input.", body = ErrorBody),
    )
)]
async fn create_token(
    State(s): State<AdminState>,
    c: Caller,
    Body(body): Body<NewToken>,
) -> Result<(StatusCode, Json<IssuedToken>)> {
    let object = format!("user/{}", c.principal.user);
    let issued = s
        .change(&c.principal, "create_api_token", object, move |ops, who| {
            let t = ops.issue_api_token(&who.user, body.expires_at, &body.description)?;
            let id = t.record.id.clone();
            Ok((t, json!({"token_id": id})))
        })
        .await?;
    Ok(created(IssuedToken {
        info: Token::from(&issued.record),
        token: issued.bearer.to_string(),
    }))
}

/// Revoke a token: the caller's own, or any for admins.
#[utoipa::path(
    delete,
    path = "/api/v1/tokens/{id}",
    tag = "tokens",
    params(("id" = String, Path, description = "Token id")),
    responses(
        (status = 204, description = "Revoked."),
        (status = 404, description = "No such token.", body = ErrorBody),
    )
)]
async fn revoke_token(
    State(s): State<AdminState>,
    c: Caller,
    Path(id): Path<String>,
) -> Result<StatusCode> {
    let object = format!("token/{id}");
    s.change_no_content(&c.principal, "revoke_token", object, move |ops, who| {
        ops.revoke_token(&id, who).map(drop)
    })
    .await
}

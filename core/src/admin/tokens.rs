//! The caller's bearer tokens: list, issue an API token, revoke.

use super::{params::TokenId, prelude::*, responses::InvalidInput};
use crate::api::tokens::{IssuedToken, NewToken, Token};

pub(super) fn routes() -> OpenApiRouter<AdminState> {
    OpenApiRouter::new()
        .routes(routes!(list_tokens, create_token))
        .routes(routes!(revoke_token))
}

/// The caller's tokens (never their secrets).
#[utoipa::path(get, path = "/api/v1/tokens", responses(
    (status = 200, description = "Tokens.", body = Vec<Token>),
))]
async fn list_tokens(c: Caller) -> Result<Json<Vec<Token>>> {
    let tokens = c.read(|ops, who| ops.list_tokens(&who.user)).await?;
    Ok(Json(tokens.iter().map(Token::from).collect()))
}

/// Issue an API token for the caller; the bearer is shown once.
#[utoipa::path(post, path = "/api/v1/tokens", request_body = NewToken, responses(
    (status = 201, description = "Token with its bearer.", body = IssuedToken),
    InvalidInput,
))]
async fn create_token(
    c: Caller,
    Body(body): Body<NewToken>,
) -> Result<(StatusCode, Json<IssuedToken>)> {
    let object = format!("user/{}", c.principal.user);
    let issued = c
        .change("create_api_token", object, move |ops, who| {
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
#[utoipa::path(delete, path = "/api/v1/tokens/{id}", params(TokenId), responses(
    (status = 204, description = "Revoked."),
    (status = 404, description = "No such token.", body = ErrorBody),
))]
async fn revoke_token(c: Caller, Path(TokenId { id }): Path<TokenId>) -> Result<StatusCode> {
    c.change_no_content("revoke_token", format!("token/{id}"), move |ops, who| {
        ops.revoke_token(&id, who).map(drop)
    })
    .await
}

//! Request extractors: [`Caller`] (the bearer token's user, with what handlers need
//! to act for them), [`Admin`] (the same, refused unless an admin) and [`Body`] (a
//! JSON body refused with the API's error).

use std::ops::Deref;

use axum::{
    extract::{FromRequest, FromRequestParts, MatchedPath, Request},
    http::{Method, header, request::Parts},
};
use bytes::Bytes;
use serde::de::DeserializeOwned;
use zeroize::Zeroizing;

use super::{Actor, AdminState, ApiError, openapi};
use crate::identity::{AccessError, TokenRecord};

/// The authenticated caller of a request (`Authorization: Bearer kh_...`); refused
/// with 401 `unauthenticated`. Handlers act for the caller through [`Actor`]'s
/// methods.
pub struct Caller {
    actor: Actor,
    /// The token they presented.
    pub token: TokenRecord,
}

impl Deref for Caller {
    type Target = Actor;

    fn deref(&self) -> &Actor {
        &self.actor
    }
}

impl FromRequestParts<AdminState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AdminState,
    ) -> Result<Self, Self::Rejection> {
        let missing = || {
            ApiError::from(AccessError::Unauthenticated(
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
        Ok(Caller {
            actor: Actor::new(state.clone(), principal),
            token,
        })
    }
}

/// An authenticated caller in the `admins` group. Others are refused with 403
/// `admin_only`, naming the operation (its OpenAPI `operationId`, e.g. "create user");
/// a refused change (any method but GET) is recorded in the audit log.
pub struct Admin(pub Caller);

impl FromRequestParts<AdminState> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AdminState,
    ) -> Result<Self, Self::Rejection> {
        let caller = Caller::from_request_parts(parts, state).await?;
        if caller.principal.is_admin() {
            return Ok(Admin(caller));
        }
        let route = parts
            .extensions
            .get::<MatchedPath>()
            .map_or(parts.uri.path(), MatchedPath::as_str);
        let action = openapi::operation_id(&parts.method, route).unwrap_or("this");
        let refused = ApiError::from(AccessError::AdminOnly {
            user: caller.principal.user.clone(),
            action: action.replace('_', " "),
        });
        if parts.method != Method::GET {
            state
                .audit_refusal(&caller.principal.user, action, parts.uri.path(), &refused)
                .await;
        }
        Err(refused)
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

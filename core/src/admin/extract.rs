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
use crate::{
    identity::{AccessError, TokenRecord},
    logsafe::clip_to,
};

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

/// A JSON request body; malformed JSON is refused with 400 `invalid_json`, naming the
/// field and the problem but never the value sent (a body may hold passwords and
/// secrets). An empty body reads as `{}`.
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
        parse_json(text).map(Body)
    }
}

/// Parses a JSON body, refusing it with a message that names where it is wrong.
pub(super) fn parse_json<T: DeserializeOwned>(text: &[u8]) -> Result<T, ApiError> {
    let mut de = serde_json::Deserializer::from_slice(text);
    let refusal = |field: &str, e: &serde_json::Error| {
        ApiError::new(
            400,
            "invalid_json",
            format!("invalid JSON body: {}", describe(field, e)),
        )
    };
    match serde_path_to_error::deserialize::<_, T>(&mut de) {
        Ok(t) => de.end().map(|()| t).map_err(|e| refusal(".", &e)),
        Err(e) => Err(refusal(&e.path().to_string(), e.inner())),
    }
}

/// What is wrong at `field` (a path of field names, `.` for the root), in words that
/// never quote a value of the body: serde's messages quote the offending value
/// (`invalid type: string "...", expected ...`), so only their fixed parts are kept.
fn describe(field: &str, e: &serde_json::Error) -> String {
    use serde_json::error::Category;
    if !matches!(e.classify(), Category::Data) {
        return format!("not valid JSON (line {}, column {})", e.line(), e.column());
    }
    let full = e.to_string();
    // serde_json appends " at line L column C".
    let msg = full
        .rfind(" at line ")
        .map_or(full.as_str(), |i| &full[..i]);
    // The expectation comes last and is the deserializer's own (a type or the list of
    // allowed names), never the input.
    let expected = msg.rfind(", expected ").map(|i| &msg[i + 2..]);
    let field = clip_to(field, 64);
    if msg.starts_with("missing field `") {
        // The name is the type's own.
        return msg.to_string();
    }
    if let Some(rest) = msg.strip_prefix("unknown field `") {
        // The name is the client's: shown escaped and capped, so the caller sees which.
        let name = rest.rfind("`, expected").map_or(rest, |i| &rest[..i]);
        return format!(
            "unknown field `{}`{}",
            clip_to(name, 64),
            expected.map_or(String::new(), |x| format!(", {x}"))
        );
    }
    match expected {
        Some(x) if field != "." => format!("field '{field}' has the wrong type or value, {x}"),
        Some(x) => format!("the body has the wrong type, {x}"),
        None if field != "." => format!("field '{field}' has the wrong type or value"),
        None => "the body has the wrong type or value".to_string(),
    }
}

#[cfg(test)]
mod tests;

//! The console's in-process client of the admin API: requests go through the API
//! router itself (`tower::ServiceExt::oneshot`), with the session's bearer token and
//! the client's address, so the API decides, validates, audits and answers exactly as
//! for any other client.

use std::net::SocketAddr;

use axum::{
    Router,
    body::Body,
    extract::ConnectInfo,
    http::{HeaderMap, Method, Request, StatusCode, header},
    response::{IntoResponse, Response},
};
use bytes::Bytes;
use serde::{Serialize, de::DeserializeOwned};
use tower::ServiceExt;
use zeroize::Zeroizing;

use crate::api::error::ErrorBody;

/// Largest API answer the console reads.
const MAX_ANSWER: usize = 16 * 1024 * 1024;

/// Percent-encodes one path segment (an id or a name) of an API or console path.
pub use crate::api::seg;

/// A refusal of the API (or a failure to reach it): its status, code and message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiFailure {
    /// The HTTP status the API answered.
    pub status: StatusCode,
    /// The API's stable error code (`not_found`, `version_mismatch`, ...).
    pub code: String,
    /// The API's message.
    pub message: String,
    /// AWS's error code, when AWS refused.
    pub aws_error_code: Option<String>,
}

impl ApiFailure {
    /// A failure of the console itself (not an API refusal).
    pub fn internal(message: impl Into<String>) -> ApiFailure {
        ApiFailure {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            code: "internal".into(),
            message: message.into(),
            aws_error_code: None,
        }
    }

    /// A refusal by the console itself, with a status and code of its own.
    pub fn new(status: StatusCode, code: &str, message: impl Into<String>) -> ApiFailure {
        ApiFailure {
            status,
            code: code.into(),
            message: message.into(),
            aws_error_code: None,
        }
    }

    fn from_answer(status: StatusCode, body: &[u8]) -> ApiFailure {
        match serde_json::from_slice::<ErrorBody>(body) {
            Ok(b) => ApiFailure {
                status,
                code: b.error.code,
                message: b.error.message,
                aws_error_code: b.error.aws_error_code,
            },
            Err(_) => ApiFailure::new(
                status,
                "unexpected_answer",
                format!("the admin API answered {status} without an error body"),
            ),
        }
    }
}

impl IntoResponse for ApiFailure {
    /// An error page with the API's status; an expired or revoked session (401) goes
    /// back to the sign-in page.
    fn into_response(self) -> Response {
        super::html::failure_page(&self)
    }
}

/// One answer of the API.
#[derive(Debug)]
pub struct Reply {
    /// Its status (2xx).
    pub status: StatusCode,
    /// Its headers.
    pub headers: HeaderMap,
    /// Its body.
    pub body: Bytes,
}

impl Reply {
    /// The `ETag` header, as sent (`"42"`).
    pub fn etag(&self) -> Option<String> {
        self.headers
            .get(header::ETAG)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    }

    /// The body as JSON of type `T` (an empty body reads as `null`).
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, ApiFailure> {
        let text: &[u8] = if self.body.is_empty() {
            b"null"
        } else {
            &self.body
        };
        serde_json::from_slice(text)
            .map_err(|e| ApiFailure::internal(format!("the admin API's answer did not parse: {e}")))
    }
}

/// The admin API, called in-process for one signed-in user (or anonymously, to log
/// in).
#[derive(Clone)]
pub struct Api {
    router: Router,
    bearer: Option<Zeroizing<String>>,
    peer: Option<ConnectInfo<SocketAddr>>,
}

impl Api {
    pub(super) fn new(
        router: Router,
        bearer: Option<Zeroizing<String>>,
        peer: Option<ConnectInfo<SocketAddr>>,
    ) -> Api {
        Api {
            router,
            bearer,
            peer,
        }
    }

    /// Sends one request; a non-2xx answer is the API's [`ApiFailure`].
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
        if_match: Option<&str>,
    ) -> Result<Reply, ApiFailure> {
        let mut req = Request::builder().method(method).uri(path);
        if let Some(bearer) = &self.bearer {
            req = req.header(header::AUTHORIZATION, format!("Bearer {}", bearer.as_str()));
        }
        if let Some(tag) = if_match {
            req = req.header(header::IF_MATCH, tag);
        }
        if body.is_some() {
            req = req.header(header::CONTENT_TYPE, "application/json");
        }
        let mut req = req
            .body(body.map_or_else(Body::empty, Body::from))
            .map_err(|e| ApiFailure::internal(format!("bad API request {path}: {e}")))?;
        if let Some(peer) = self.peer {
            req.extensions_mut().insert(peer);
        }
        let resp = match self.router.clone().oneshot(req).await {
            Ok(resp) => resp,
            Err(never) => match never {},
        };
        let (parts, body) = resp.into_parts();
        let body = axum::body::to_bytes(body, MAX_ANSWER)
            .await
            .map_err(|e| ApiFailure::internal(format!("reading the API's answer: {e}")))?;
        if parts.status.is_success() {
            Ok(Reply {
                status: parts.status,
                headers: parts.headers,
                body,
            })
        } else {
            Err(ApiFailure::from_answer(parts.status, &body))
        }
    }

    async fn send<B: Serialize>(
        &self,
        method: Method,
        path: &str,
        body: Option<&B>,
        if_match: Option<&str>,
    ) -> Result<Reply, ApiFailure> {
        let body = match body {
            Some(b) => Some(
                serde_json::to_vec(b)
                    .map_err(|e| ApiFailure::internal(format!("encoding a request: {e}")))?,
            ),
            None => None,
        };
        self.call(method, path, body, if_match).await
    }

    /// `GET path` as `T`.
    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, ApiFailure> {
        self.send::<()>(Method::GET, path, None, None).await?.json()
    }

    /// `GET path` as `T`, with its `ETag` (`""` when none).
    pub async fn get_etag<T: DeserializeOwned>(
        &self,
        path: &str,
    ) -> Result<(T, String), ApiFailure> {
        let reply = self.send::<()>(Method::GET, path, None, None).await?;
        Ok((reply.json()?, reply.etag().unwrap_or_default()))
    }

    /// `POST path` with a JSON body, answered as `T`.
    pub async fn post<B: Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<T, ApiFailure> {
        self.post_reply(path, body).await?.json()
    }

    /// `POST path` with a JSON body: the whole answer (status, headers).
    pub async fn post_reply<B: Serialize>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<Reply, ApiFailure> {
        self.send(Method::POST, path, Some(body), None).await
    }

    /// `POST path` without a body, answered as `T` (`()` for none).
    pub async fn post_empty<T: DeserializeOwned>(&self, path: &str) -> Result<T, ApiFailure> {
        self.send::<()>(Method::POST, path, None, None)
            .await?
            .json()
    }

    /// `PATCH path` with `If-Match: etag`, answered as `T`.
    pub async fn patch<B: Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
        etag: &str,
    ) -> Result<T, ApiFailure> {
        self.send(Method::PATCH, path, Some(body), Some(etag))
            .await?
            .json()
    }

    /// `PUT path` with a JSON body, answered as `T` (`()` for none).
    pub async fn put<B: Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<T, ApiFailure> {
        self.send(Method::PUT, path, Some(body), None).await?.json()
    }

    /// `DELETE path` (with its query, e.g. `?confirm=true`).
    pub async fn delete(&self, path: &str) -> Result<(), ApiFailure> {
        self.send::<()>(Method::DELETE, path, None, None)
            .await
            .map(drop)
    }
}

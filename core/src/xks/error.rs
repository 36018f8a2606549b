//! XKS errors: every refusal of the data plane, with its exact HTTP status and
//! `errorName`, answered as the specification's JSON body.

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};
use http_body_util::Full;
use keyhold_sdk::{KeySourceError, KeySourceErrorKind};

use crate::plugin::PluginCallError;

/// The XKS error names (specification, "Error codes"), plus `405` for `GET`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum XksErrorKind {
    /// 400: malformed or missing input.
    Validation,
    /// 400: key or key store disabled or blocked.
    InvalidState,
    /// 400: tag/IV/AAD/ciphertext do not verify.
    InvalidCiphertext,
    /// 400: the key does not allow the operation.
    InvalidKeyUsage,
    /// 401: SigV4 missing or wrong.
    AuthenticationFailed,
    /// 403: secondary authorization refused.
    AccessDenied,
    /// 404: no such external key.
    KeyNotFound,
    /// 404: unknown path.
    InvalidUriPath,
    /// 429: too many requests.
    Throttling,
    /// 501: unsupported algorithm, or a size beyond what keyhold supports.
    UnsupportedOperation,
    /// 503: the key manager did not answer in time.
    DependencyTimeout,
    /// 500: key manager failure.
    Internal,
    /// 405: a method other than POST on an operation URI (body `ValidationException`).
    /// Last: it shares its name, and so its metrics slot, with [`XksErrorKind::Validation`].
    MethodNotAllowed,
}

impl XksErrorKind {
    /// The `errorName` of the body.
    pub fn name(self) -> &'static str {
        match self {
            XksErrorKind::Validation | XksErrorKind::MethodNotAllowed => "ValidationException",
            XksErrorKind::InvalidState => "InvalidStateException",
            XksErrorKind::InvalidCiphertext => "InvalidCiphertextException",
            XksErrorKind::InvalidKeyUsage => "InvalidKeyUsageException",
            XksErrorKind::AuthenticationFailed => "AuthenticationFailedException",
            XksErrorKind::AccessDenied => "AccessDeniedException",
            XksErrorKind::KeyNotFound => "KeyNotFoundException",
            XksErrorKind::InvalidUriPath => "InvalidUriPathException",
            XksErrorKind::Throttling => "ThrottlingException",
            XksErrorKind::UnsupportedOperation => "UnsupportedOperationException",
            XksErrorKind::DependencyTimeout => "DependencyTimeoutException",
            XksErrorKind::Internal => "InternalException",
        }
    }

    /// The HTTP status.
    pub fn status(self) -> StatusCode {
        match self {
            XksErrorKind::Validation
            | XksErrorKind::InvalidState
            | XksErrorKind::InvalidCiphertext
            | XksErrorKind::InvalidKeyUsage => StatusCode::BAD_REQUEST,
            XksErrorKind::AuthenticationFailed => StatusCode::UNAUTHORIZED,
            XksErrorKind::AccessDenied => StatusCode::FORBIDDEN,
            XksErrorKind::KeyNotFound | XksErrorKind::InvalidUriPath => StatusCode::NOT_FOUND,
            XksErrorKind::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            XksErrorKind::Throttling => StatusCode::TOO_MANY_REQUESTS,
            XksErrorKind::UnsupportedOperation => StatusCode::NOT_IMPLEMENTED,
            XksErrorKind::DependencyTimeout => StatusCode::SERVICE_UNAVAILABLE,
            XksErrorKind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl XksErrorKind {
    /// Every kind with a name of its own, in the order of [`XksErrorKind`] (so
    /// `kind as usize` indexes it for each of them): the outcomes metrics count.
    pub const NAMED: [XksErrorKind; 12] = [
        XksErrorKind::Validation,
        XksErrorKind::InvalidState,
        XksErrorKind::InvalidCiphertext,
        XksErrorKind::InvalidKeyUsage,
        XksErrorKind::AuthenticationFailed,
        XksErrorKind::AccessDenied,
        XksErrorKind::KeyNotFound,
        XksErrorKind::InvalidUriPath,
        XksErrorKind::Throttling,
        XksErrorKind::UnsupportedOperation,
        XksErrorKind::DependencyTimeout,
        XksErrorKind::Internal,
    ];

    /// This kind's index in [`XksErrorKind::NAMED`]: kinds that share a name share it.
    pub fn named_index(self) -> usize {
        match self {
            XksErrorKind::MethodNotAllowed => XksErrorKind::Validation as usize,
            kind => kind as usize,
        }
    }
}

impl From<KeySourceErrorKind> for XksErrorKind {
    fn from(kind: KeySourceErrorKind) -> XksErrorKind {
        match kind {
            KeySourceErrorKind::NotFound => XksErrorKind::KeyNotFound,
            KeySourceErrorKind::Disabled => XksErrorKind::InvalidState,
            KeySourceErrorKind::KeyUsage => XksErrorKind::InvalidKeyUsage,
            KeySourceErrorKind::InvalidCiphertext => XksErrorKind::InvalidCiphertext,
            KeySourceErrorKind::AlreadyExists
            | KeySourceErrorKind::InvalidKey
            | KeySourceErrorKind::InvalidInput => XksErrorKind::Validation,
            KeySourceErrorKind::Unsupported => XksErrorKind::UnsupportedOperation,
            KeySourceErrorKind::Timeout => XksErrorKind::DependencyTimeout,
            KeySourceErrorKind::Unavailable | KeySourceErrorKind::Internal => {
                XksErrorKind::Internal
            }
        }
    }
}

impl From<&KeySourceError> for XksErrorKind {
    fn from(e: &KeySourceError) -> XksErrorKind {
        e.kind().into()
    }
}

impl From<&PluginCallError> for XksErrorKind {
    fn from(e: &PluginCallError) -> XksErrorKind {
        match e {
            PluginCallError::Source(e) => e.into(),
            PluginCallError::Busy { .. } => XksErrorKind::Throttling,
            PluginCallError::Timeout { .. } => XksErrorKind::DependencyTimeout,
            PluginCallError::Internal { .. } => XksErrorKind::Internal,
        }
    }
}

/// A refused XKS request: kind plus a message for the operator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct XksError {
    /// What kind of refusal.
    pub kind: XksErrorKind,
    /// Why, in printable ASCII; never plaintext, keys or secrets.
    pub message: String,
    /// The `Allow` header of a 405 (`POST` unless set by [`XksError::allowing`]).
    allow: Option<&'static str>,
}

impl XksError {
    /// A refusal of `kind` because of `message`.
    pub fn new(kind: XksErrorKind, message: impl Into<String>) -> XksError {
        XksError {
            kind,
            message: message.into(),
            allow: None,
        }
    }

    /// The same refusal answering `Allow: <methods>` (for a 405 of a path that is not
    /// an XKS operation, e.g. the load-balancer health path's `GET, HEAD`).
    pub fn allowing(mut self, methods: &'static str) -> XksError {
        self.allow = Some(methods);
        self
    }

    /// 400 ValidationException.
    pub fn validation(message: impl Into<String>) -> XksError {
        Self::new(XksErrorKind::Validation, message)
    }

    /// The JSON response for this error.
    pub fn into_response(self) -> Response<Full<Bytes>> {
        let body = serde_json::json!({
            "errorName": self.kind.name(),
            "errorMessage": sanitize_message(&self.message),
        });
        let mut resp = json_response(self.kind.status(), body.to_string().into_bytes());
        if self.kind == XksErrorKind::MethodNotAllowed {
            resp.headers_mut().insert(
                header::ALLOW,
                HeaderValue::from_static(self.allow.unwrap_or("POST")),
            );
        }
        resp
    }
}

impl From<PluginCallError> for XksError {
    fn from(e: PluginCallError) -> XksError {
        XksError::new((&e).into(), e.to_string())
    }
}

impl std::fmt::Display for XksError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.kind.name(), self.message)
    }
}

/// Makes a message acceptable as `errorMessage`: printable ASCII only (others become
/// '?'), shorter than 512 characters.
pub fn sanitize_message(message: &str) -> String {
    let mut out: String = message
        .chars()
        .map(|c| if (' '..='~').contains(&c) { c } else { '?' })
        .take(511)
        .collect();
    if message.chars().count() > 511 {
        out.truncate(508);
        out.push_str("...");
    }
    out
}

/// A JSON response with the given status and body.
pub fn json_response(status: StatusCode, body: Vec<u8>) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

#[cfg(test)]
mod tests;

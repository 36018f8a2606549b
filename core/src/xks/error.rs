//! XKS errors: every refusal of the data plane, with its exact HTTP status and
//! `errorName`, answered as the specification's JSON body.

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};
use http_body_util::Full;

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
    /// 405: a method other than POST on an operation URI (body `ValidationException`).
    MethodNotAllowed,
    /// 429: too many requests.
    Throttling,
    /// 501: unsupported algorithm, or a size beyond what keyhold supports.
    UnsupportedOperation,
    /// 503: the key manager did not answer in time.
    DependencyTimeout,
    /// 500: key manager failure.
    Internal,
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

    /// Maps an XKS error name (as the SDK's error enum reports it) back to a kind.
    pub fn from_name(name: &str) -> XksErrorKind {
        match name {
            "ValidationException" => XksErrorKind::Validation,
            "InvalidStateException" => XksErrorKind::InvalidState,
            "InvalidCiphertextException" => XksErrorKind::InvalidCiphertext,
            "InvalidKeyUsageException" => XksErrorKind::InvalidKeyUsage,
            "AuthenticationFailedException" => XksErrorKind::AuthenticationFailed,
            "AccessDeniedException" => XksErrorKind::AccessDenied,
            "KeyNotFoundException" => XksErrorKind::KeyNotFound,
            "InvalidUriPathException" => XksErrorKind::InvalidUriPath,
            "ThrottlingException" => XksErrorKind::Throttling,
            "UnsupportedOperationException" => XksErrorKind::UnsupportedOperation,
            "DependencyTimeoutException" => XksErrorKind::DependencyTimeout,
            _ => XksErrorKind::Internal,
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
}

impl XksError {
    /// A refusal of `kind` because of `message`.
    pub fn new(kind: XksErrorKind, message: impl Into<String>) -> XksError {
        XksError {
            kind,
            message: message.into(),
        }
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
            resp.headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static("POST"));
        }
        resp
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
mod tests {
    use super::*;

    #[test]
    fn statuses_and_names_follow_the_specification() {
        use XksErrorKind::*;
        let table = [
            (Validation, 400, "ValidationException"),
            (InvalidState, 400, "InvalidStateException"),
            (InvalidCiphertext, 400, "InvalidCiphertextException"),
            (InvalidKeyUsage, 400, "InvalidKeyUsageException"),
            (AuthenticationFailed, 401, "AuthenticationFailedException"),
            (AccessDenied, 403, "AccessDeniedException"),
            (KeyNotFound, 404, "KeyNotFoundException"),
            (InvalidUriPath, 404, "InvalidUriPathException"),
            (Throttling, 429, "ThrottlingException"),
            (UnsupportedOperation, 501, "UnsupportedOperationException"),
            (DependencyTimeout, 503, "DependencyTimeoutException"),
            (Internal, 500, "InternalException"),
        ];
        for (kind, status, name) in table {
            assert_eq!(kind.status().as_u16(), status);
            assert_eq!(kind.name(), name);
            assert_eq!(XksErrorKind::from_name(name), kind);
        }
    }

    #[test]
    fn messages_are_printable_ascii_under_512() {
        assert_eq!(sanitize_message("caf\u{e9}\n"), "caf??");
        let long = "x".repeat(2000);
        let s = sanitize_message(&long);
        assert!(s.len() < 512);
        assert!(s.ends_with("..."));
        assert_eq!(sanitize_message(&"y".repeat(511)).len(), 511);
    }
}

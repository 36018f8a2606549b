//! The crate's error enum (start-up failures) and the AWS-shaped API error every
//! operation answers with.

/// Why the emulator could not start.
#[derive(Debug, thiserror::Error)]
pub enum EmulatorError {
    /// The listener could not be handed to tokio.
    #[error("listener: {0}")]
    Listener(#[source] std::io::Error),
    /// The TLS identity of the listener is unusable.
    #[error("TLS identity: {0}")]
    Tls(String),
    /// The CA trusted for the XKS proxies is unusable.
    #[error("XKS CA: {0}")]
    XksCa(String),
    /// A principal of the configuration is malformed.
    #[error("configuration: {0}")]
    Config(String),
}

/// An AWS error answer: its code (`__type`), message and HTTP status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// AWS's error code, e.g. `CustomKeyStoreInvalidStateException`.
    pub code: &'static str,
    /// The human message.
    pub message: String,
    /// The HTTP status (400 for client errors, 500 for internal ones).
    pub status: u16,
}

impl ApiError {
    /// A client error (HTTP 400).
    pub fn new(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            code,
            message: message.into(),
            status: 400,
        }
    }

    /// `ValidationException` naming the field.
    pub fn validation(field: &str, what: impl std::fmt::Display) -> ApiError {
        ApiError::new(
            "ValidationException",
            format!(
                "1 validation error detected: Value at '{field}' failed to satisfy constraint: {what}"
            ),
        )
    }

    /// `KMSInternalException` (HTTP 500).
    pub fn internal(message: impl Into<String>) -> ApiError {
        ApiError {
            code: "KMSInternalException",
            message: message.into(),
            status: 500,
        }
    }

    /// `NotFoundException` for a key.
    pub fn key_not_found(key: &str) -> ApiError {
        ApiError::new("NotFoundException", format!("Key '{key}' does not exist"))
    }

    /// `CustomKeyStoreNotFoundException`.
    pub fn store_not_found(what: &str) -> ApiError {
        ApiError::new(
            "CustomKeyStoreNotFoundException",
            format!("Custom key store '{what}' does not exist in this account and region"),
        )
    }
}

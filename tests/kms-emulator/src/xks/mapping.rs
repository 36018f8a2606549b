//! How a failed XKS proxy call becomes a KMS answer: the exception of the XKS
//! specification's table for each KMS operation family, and the `ConnectionErrorCode`
//! a failed connection attempt reports.

use crate::error::ApiError;

/// How an XKS call failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum XksFailure {
    /// No TCP connection (refused, unresolvable host).
    Unreachable(String),
    /// The TLS handshake failed (untrusted certificate, wrong name...).
    Tls(String),
    /// No complete answer within the deadline.
    Timeout,
    /// The proxy answered an error with a JSON `errorName`.
    Proxy {
        /// The HTTP status.
        status: u16,
        /// The `errorName`.
        name: String,
    },
    /// The answer could not be interpreted (not JSON, missing fields, bad CDIV...).
    Malformed(String),
    /// The proxy's ciphertext did not pass the integrity check (CDIV) or did not decrypt
    /// into the KMS layer.
    InvalidCiphertext,
}

/// The KMS operation family an XKS call is made for (the spec's table columns).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    /// `CreateCustomKeyStore` / `UpdateCustomKeyStore`.
    StoreAdmin,
    /// `CreateKey`.
    CreateKey,
    /// `Encrypt`, `Decrypt`, `GenerateDataKey`, `ReEncrypt`.
    Crypto,
}

/// The message of each failure, in the spirit of the specification's messages.
pub fn message(f: &XksFailure) -> String {
    match f {
        XksFailure::Unreachable(d) => format!(
            "AWS KMS cannot communicate with the external key store proxy ({d}). Verify that the proxy is running and that the key store's endpoint URI is correct."
        ),
        XksFailure::Tls(d) => format!(
            "AWS KMS cannot establish a TLS connection to the external key store proxy ({d}). Verify its TLS configuration and certificate."
        ),
        XksFailure::Timeout => "The external key store proxy did not respond in the time allotted. Retry the request; if this repeats, report it to the proxy's administrator.".into(),
        XksFailure::Proxy { name, .. } => match name.as_str() {
            "ValidationException" => "AWS KMS cannot interpret the response from the external key store proxy.".into(),
            "InvalidStateException" => "The external key (or its key store) is not enabled in the external key manager. Enable it and retry.".into(),
            "InvalidCiphertextException" => "The external key store proxy rejected the request because the ciphertext or encryption context is corrupted, missing, or otherwise invalid.".into(),
            "InvalidKeyUsageException" => "The external key does not support the requested operation. Enable the operation on the key in the external key manager.".into(),
            "AuthenticationFailedException" => "The external key store proxy could not authenticate AWS KMS. Verify the proxy authentication credential of the key store.".into(),
            "AccessDeniedException" => "The external key store proxy denied access to the operation.".into(),
            "KeyNotFoundException" => "The external key associated with this KMS key was not found in the external key manager.".into(),
            "InvalidUriPathException" => "The external key store proxy rejected the request because of an invalid URI path. Verify the key store's URI path.".into(),
            "UnsupportedOperationException" => "The external key store proxy does not support the requested operation.".into(),
            "DependencyTimeoutException" => "The external key store proxy timed out reaching its key manager. Retry the request.".into(),
            "ThrottlingException" => "The external key store proxy rejected the request due to a very high request rate.".into(),
            "InternalException" => "The external key store proxy cannot communicate with the external key manager. Verify its configuration and the key manager's availability.".into(),
            other => format!("AWS KMS cannot interpret the response from the external key store proxy (errorName {other})."),
        },
        XksFailure::Malformed(d) => format!(
            "AWS KMS cannot interpret the response from the external key store proxy ({d})."
        ),
        XksFailure::InvalidCiphertext => "The ciphertext that the external key store proxy returned, or the encryption context, is corrupted, missing, or otherwise invalid.".into(),
    }
}

/// The KMS exception code for `f` during an operation of `family`.
pub fn exception(f: &XksFailure, family: Family) -> &'static str {
    let name = match f {
        XksFailure::Proxy { name, .. } => name.as_str(),
        _ => "",
    };
    match family {
        Family::Crypto => "KMSInvalidStateException",
        Family::StoreAdmin => match (f, name) {
            (XksFailure::Unreachable(_) | XksFailure::Tls(_) | XksFailure::Timeout, _) => {
                "XksProxyUriUnreachableException"
            }
            (_, "AuthenticationFailedException") => {
                "XksProxyIncorrectAuthenticationCredentialException"
            }
            (_, "InvalidUriPathException") => "XksProxyInvalidConfigurationException",
            (_, "DependencyTimeoutException" | "ThrottlingException") => {
                "XksProxyUriUnreachableException"
            }
            _ => "XksProxyInvalidResponseException",
        },
        Family::CreateKey => match name {
            "InvalidStateException" | "InvalidKeyUsageException" => {
                "XksKeyInvalidConfigurationException"
            }
            "KeyNotFoundException" => "XksKeyNotFoundException",
            "AccessDeniedException" => "KMSInvalidStateException",
            _ => "CustomKeyStoreInvalidStateException",
        },
    }
}

/// The KMS error for `f` during an operation of `family`.
pub fn to_api_error(f: &XksFailure, family: Family) -> ApiError {
    ApiError::new(exception(f, family), message(f))
}

/// The `ConnectionErrorCode` of a connection attempt whose health check failed with `f`.
pub fn connection_error_code(f: &XksFailure) -> &'static str {
    match f {
        XksFailure::Unreachable(_) => "XKS_PROXY_NOT_REACHABLE",
        XksFailure::Tls(_) => "XKS_PROXY_INVALID_TLS_CONFIGURATION",
        XksFailure::Timeout => "XKS_PROXY_TIMED_OUT",
        XksFailure::Proxy { name, .. } => match name.as_str() {
            "AuthenticationFailedException" => "INVALID_CREDENTIALS",
            "AccessDeniedException" => "XKS_PROXY_ACCESS_DENIED",
            "InvalidUriPathException" => "XKS_PROXY_INVALID_CONFIGURATION",
            "DependencyTimeoutException" => "XKS_PROXY_TIMED_OUT",
            "ThrottlingException" => "XKS_PROXY_NOT_REACHABLE",
            _ => "XKS_PROXY_INVALID_RESPONSE",
        },
        XksFailure::Malformed(_) | XksFailure::InvalidCiphertext => "XKS_PROXY_INVALID_RESPONSE",
    }
}

#[cfg(test)]
mod tests;

//! AWS SDK errors as [`AwsError`]s: the kind from AWS's error code (or the transport
//! failure), and a message naming the operation, AWS's code and message, and what to
//! do ([`hint`]).

use aws_sdk_kms::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};

use super::{AwsError, AwsErrorKind};

/// The AWS service an operation belongs to (names it in messages).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Service {
    /// AWS KMS.
    Kms,
    /// AWS STS (assumed roles).
    Sts,
}

impl Service {
    fn name(self) -> &'static str {
        match self {
            Service::Kms => "AWS KMS",
            Service::Sts => "AWS STS",
        }
    }
}

/// AWS error codes of throttling (retried with backoff before they are reported).
const THROTTLING: &[&str] = &[
    "ThrottlingException",
    "Throttling",
    "ThrottledException",
    "TooManyRequestsException",
    "RequestLimitExceeded",
    "RequestThrottled",
    "RequestThrottledException",
    "SlowDown",
];

/// AWS error codes meaning the credentials were refused.
const CREDENTIALS: &[&str] = &[
    "UnrecognizedClientException",
    "InvalidClientTokenId",
    "InvalidSignatureException",
    "SignatureDoesNotMatch",
    "IncompleteSignature",
    "MissingAuthenticationToken",
    "ExpiredToken",
    "ExpiredTokenException",
    "RequestExpired",
];

/// The kind of an error AWS answered with `code`.
pub fn classify_code(code: &str) -> AwsErrorKind {
    if THROTTLING.contains(&code) {
        AwsErrorKind::Throttled
    } else if CREDENTIALS.contains(&code) || code.starts_with("AccessDenied") {
        AwsErrorKind::Credentials
    } else {
        AwsErrorKind::Service
    }
}

/// What to do about AWS error `code` answered to `operation` (a KMS or STS API
/// operation name, e.g. `DeleteCustomKeyStore`).
pub fn hint(operation: &str, code: &str) -> String {
    let h = match (operation, code) {
        (_, "UnrecognizedClientException" | "InvalidClientTokenId") => {
            "AWS does not know the access key: check the AWS connection's access key id and secret"
        }
        (_, "InvalidSignatureException" | "SignatureDoesNotMatch" | "IncompleteSignature") => {
            "check the AWS connection's secret access key (and the server's clock)"
        }
        (_, "ExpiredToken" | "ExpiredTokenException" | "RequestExpired") => {
            "the credentials expired: check the AWS connection's keys and the server's clock"
        }
        ("AssumeRole", c) if c.starts_with("AccessDenied") => {
            "allow the connection's IAM user to assume the role (sts:AssumeRole in its policy and \
             the role's trust policy)"
        }
        (_, c) if c.starts_with("AccessDenied") => {
            return format!(
                "grant the AWS connection's IAM identity (or role) the kms:{operation} permission"
            );
        }
        ("AssumeRole", "MalformedPolicyDocument" | "PackedPolicyTooLarge") => {
            "check the role's policies"
        }
        ("AssumeRole", "RegionDisabledException") => {
            "activate STS in this region (IAM account settings) or use the legacy global STS endpoint"
        }
        (_, c) if THROTTLING.contains(&c) => {
            "AWS KMS is throttling this account and region: retry later, or make fewer calls"
        }
        (
            "DeleteCustomKeyStore" | "UpdateCustomKeyStore",
            "CustomKeyStoreInvalidStateException",
        ) => "disconnect the key store first",
        ("ConnectCustomKeyStore", "CustomKeyStoreInvalidStateException") => {
            "the key store must be disconnected to connect it: wait until it is, or disconnect it"
        }
        ("CreateKey", "CustomKeyStoreInvalidStateException") => {
            "connect the key store first, and wait until it is CONNECTED"
        }
        (_, "CustomKeyStoreInvalidStateException") => {
            "check the key store's connection state and retry when it allows the call"
        }
        (_, "CustomKeyStoreHasCMKsException") => {
            "schedule the deletion of the key store's KMS keys and wait until they are deleted"
        }
        (_, "CustomKeyStoreNameInUseException") => {
            "another key store of the account and region has this name: choose another"
        }
        (_, "CustomKeyStoreNotFoundException") => {
            "no such key store in this account and region: check the store id and region"
        }
        (_, "NotFoundException") => "check the key id, the account and the region",
        (_, "XksProxyUriEndpointInUseException" | "XksProxyUriInUseException") => {
            "another key store uses this proxy endpoint and path: give the store another URI path"
        }
        (
            _,
            "XksProxyUriUnreachableException"
            | "XksProxyInvalidResponseException"
            | "XksProxyInvalidConfigurationException",
        ) => {
            "check that the XKS proxy endpoint is reachable from AWS KMS (public DNS name, \
             publicly trusted TLS certificate, HTTPS port) and answers its health check"
        }
        (_, "XksProxyIncorrectAuthenticationCredentialException") => {
            "the proxy refused the credential AWS KMS signs with: rotate the store's XKS \
             credential so both sides agree"
        }
        (
            _,
            "XksProxyVpcEndpointServiceNotFoundException"
            | "XksProxyVpcEndpointServiceInvalidConfigurationException"
            | "XksProxyVpcEndpointServiceInUseException",
        ) => {
            "check the VPC endpoint service: its name, that it allows the AWS KMS principal, \
             its private DNS name, and that no other key store uses it"
        }
        (_, "XksKeyNotFoundException") => {
            "the proxy does not know this external key: check the key id and its key source"
        }
        (_, "XksKeyInvalidConfigurationException") => {
            "the external key must be an enabled 256-bit AES key allowed to encrypt and decrypt"
        }
        (_, "XksKeyAlreadyInUseException") => {
            "the external key already backs another KMS key of the store: use another key"
        }
        (_, "LimitExceededException") => {
            "an AWS KMS quota (keys or key stores) is reached: delete unused ones or ask AWS \
             for more"
        }
        (_, "KMSInvalidStateException") => {
            "the KMS key's state does not allow this (e.g. pending deletion): check its state"
        }
        (_, "DisabledException") => "enable the KMS key first",
        (_, "InvalidArnException" | "ValidationException" | "InvalidMarkerException") => {
            "the request was refused as invalid: check the values given"
        }
        (_, "KMSInternalException" | "DependencyTimeoutException" | "InternalFailure") => {
            "a transient AWS failure: retry"
        }
        (_, "UnsupportedOperationException") => {
            "this region or account does not support the operation"
        }
        _ => return format!("see AWS KMS's documentation of {operation} for this error"),
    };
    h.to_string()
}

/// What to do when the endpoint could not be reached.
const UNREACHABLE_HINT: &str = "check the AWS connection's endpoint URL, DNS and the network \
    path to it, and (with a CA file) that the endpoint's certificate chains to that CA";

/// What to do when AWS did not answer in time.
const TIMEOUT_HINT: &str =
    "check the network path to the endpoint and retry (the limits are per call and attempt)";

/// The error AWS answered with `code` and `aws_message` to `operation`.
pub(crate) fn answered(
    service: Service,
    operation: &str,
    code: &str,
    aws_message: Option<&str>,
) -> AwsError {
    let aws_message = aws_message.unwrap_or("no message");
    AwsError {
        kind: classify_code(code),
        code: Some(code.to_string()),
        message: format!(
            "{} {operation} failed: {code}: {aws_message}; {}",
            service.name(),
            hint(operation, code)
        ),
    }
}

/// `err` of `operation` as an [`AwsError`].
pub(crate) fn from_sdk<E, R>(service: Service, operation: &str, err: SdkError<E, R>) -> AwsError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug,
{
    let name = service.name();
    match &err {
        SdkError::ServiceError(ctx) => {
            let e = ctx.err();
            match e.code() {
                Some(code) => answered(service, operation, code, e.message()),
                None => AwsError::new(
                    AwsErrorKind::Service,
                    format!(
                        "{name} {operation} failed with an error without a code: {}; check \
                         that the endpoint is {name}",
                        DisplayErrorContext(&err)
                    ),
                ),
            }
        }
        SdkError::TimeoutError(_) => AwsError::new(
            AwsErrorKind::Timeout,
            format!("{name} {operation}: no answer in time; {TIMEOUT_HINT}"),
        ),
        SdkError::DispatchFailure(d) if d.is_timeout() => AwsError::new(
            AwsErrorKind::Timeout,
            format!(
                "{name} {operation}: no answer in time ({}); {TIMEOUT_HINT}",
                DisplayErrorContext(&err)
            ),
        ),
        SdkError::DispatchFailure(_) => AwsError::new(
            AwsErrorKind::Unreachable,
            format!(
                "{name} {operation}: cannot reach the endpoint ({}); {UNREACHABLE_HINT}",
                DisplayErrorContext(&err)
            ),
        ),
        SdkError::ResponseError(_) => AwsError::new(
            AwsErrorKind::Service,
            format!(
                "{name} {operation}: unreadable answer ({}); check that the endpoint is {name}",
                DisplayErrorContext(&err)
            ),
        ),
        _ => AwsError::new(
            AwsErrorKind::Config,
            format!(
                "{name} {operation}: the request could not be made ({}); check the AWS \
                 connection's settings",
                DisplayErrorContext(&err)
            ),
        ),
    }
}

#[cfg(test)]
mod tests;

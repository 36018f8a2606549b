//! SigV4 signing with AWS's own `aws-sigv4` crate.

use std::time::SystemTime;

use aws_credential_types::Credentials;
use aws_sigv4::{
    http_request::{SignableBody, SignableRequest, SigningSettings, sign},
    sign::v4::SigningParams,
};
use aws_smithy_runtime_api::client::identity::Identity;

use crate::fixture::Credential;

/// The XKS SigV4 service name.
pub const SERVICE: &str = "kms-xks-proxy";
/// The region the tests sign for.
pub const REGION: &str = "us-east-1";

/// Signs a request and returns the headers to add (`x-amz-date`, `authorization`).
/// `headers` are the request's other headers (all of them are signed); the host is
/// `authority`, signed as a `host` header.
pub fn sigv4_headers(
    cred: &Credential,
    method: &str,
    authority: &str,
    path: &str,
    headers: &[(String, String)],
    body: &[u8],
    at: SystemTime,
) -> Vec<(String, String)> {
    let identity: Identity = Credentials::new(
        cred.access_key_id.clone(),
        cred.secret.clone(),
        None,
        None,
        "test",
    )
    .into();
    let params = SigningParams::builder()
        .identity(&identity)
        .region(REGION)
        .name(SERVICE)
        .time(at)
        .settings(SigningSettings::default())
        .build()
        .expect("signing params")
        .into();
    let mut all: Vec<(&str, &str)> = headers
        .iter()
        .filter(|(n, _)| !n.eq_ignore_ascii_case("host"))
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect();
    all.push(("host", authority));
    let uri = format!("http://{authority}{path}");
    let signable = SignableRequest::new(method, uri, all.into_iter(), SignableBody::Bytes(body))
        .expect("signable request");
    let (instructions, _signature) = sign(signable, &params).expect("sign").into_parts();
    instructions
        .headers()
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect()
}

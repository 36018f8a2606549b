//! SigV4 signing with AWS's own `aws-sigv4` crate: XKS requests as KMS signs them, and
//! any other service (an AWS API stub checking what keyhold signed).

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

/// A SigV4 signer: a credential, for a service in a region.
#[derive(Debug, Clone, Copy)]
pub struct Signer<'a> {
    /// The credential.
    pub cred: &'a Credential,
    /// The service name (`kms-xks-proxy` for XKS).
    pub service: &'a str,
    /// The region.
    pub region: &'a str,
}

impl<'a> Signer<'a> {
    /// A signer of XKS requests ([`SERVICE`] in [`REGION`]).
    pub fn xks(cred: &'a Credential) -> Signer<'a> {
        Signer {
            cred,
            service: SERVICE,
            region: REGION,
        }
    }

    /// Signs a request and returns the headers to add (`x-amz-date`, `authorization`).
    /// `headers` are the request's other headers (all of them are signed, a `host` among
    /// them excepted); the host is `authority`, signed as a `host` header.
    pub fn headers<'h>(
        &self,
        method: &str,
        authority: &str,
        path: &str,
        headers: impl IntoIterator<Item = (&'h str, &'h str)>,
        body: &[u8],
        at: SystemTime,
    ) -> Result<Vec<(String, String)>, String> {
        let identity: Identity = Credentials::new(
            self.cred.access_key_id.clone(),
            self.cred.secret.clone(),
            None,
            None,
            "keyhold-testkit",
        )
        .into();
        let params = SigningParams::builder()
            .identity(&identity)
            .region(self.region)
            .name(self.service)
            .time(at)
            .settings(SigningSettings::default())
            .build()
            .map_err(|e| format!("signing params: {e}"))?
            .into();
        let mut all: Vec<(&str, &str)> = headers
            .into_iter()
            .filter(|(n, _)| !n.eq_ignore_ascii_case("host"))
            .collect();
        all.push(("host", authority));
        let uri = format!("http://{authority}{path}");
        let signable =
            SignableRequest::new(method, uri, all.into_iter(), SignableBody::Bytes(body))
                .map_err(|e| format!("signable request: {e}"))?;
        let (instructions, _signature) = sign(signable, &params)
            .map_err(|e| format!("sign: {e}"))?
            .into_parts();
        Ok(instructions
            .headers()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect())
    }
}

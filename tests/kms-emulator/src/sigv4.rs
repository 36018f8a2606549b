//! SigV4 verification of incoming KMS and STS requests: the `Authorization` header is
//! parsed, the signature recomputed with AWS's own `aws-sigv4` signer over exactly the
//! headers listed in `SignedHeaders`, and compared in constant time.

use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials;
use aws_sigv4::{
    http_request::{SessionTokenMode, SignableBody, SignableRequest, SigningSettings, sign},
    sign::v4::SigningParams,
};
use aws_smithy_runtime_api::client::identity::Identity;
use subtle::ConstantTimeEq;
use time::{PrimitiveDateTime, macros::format_description};

/// The largest clock difference AWS accepts between the signature time and its clock.
pub const MAX_SKEW: Duration = Duration::from_secs(5 * 60);

/// The parts of an `Authorization: AWS4-HMAC-SHA256 ...` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authorization {
    /// The access key id of the credential scope.
    pub access_key_id: String,
    /// The scope's date, `yyyymmdd`.
    pub date: String,
    /// The scope's region.
    pub region: String,
    /// The scope's service.
    pub service: String,
    /// The signed header names, lower case, in order.
    pub signed_headers: Vec<String>,
    /// The hex signature.
    pub signature: String,
}

/// Why a request's signature was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthFailure {
    /// No `Authorization` header.
    Missing,
    /// The header (or `x-amz-date`) is malformed.
    Malformed(String),
    /// The signature time is more than [`MAX_SKEW`] away from now.
    Expired,
    /// The recomputed signature differs.
    Mismatch,
}

/// Parses an `Authorization` header value.
pub fn parse_authorization(value: &str) -> Result<Authorization, AuthFailure> {
    let rest = value
        .strip_prefix("AWS4-HMAC-SHA256")
        .ok_or_else(|| AuthFailure::Malformed("only AWS4-HMAC-SHA256 is supported".into()))?;
    let (mut credential, mut signed, mut signature) = (None, None, None);
    for part in rest.split(',') {
        let part = part.trim();
        if let Some(v) = part.strip_prefix("Credential=") {
            credential = Some(v);
        } else if let Some(v) = part.strip_prefix("SignedHeaders=") {
            signed = Some(v);
        } else if let Some(v) = part.strip_prefix("Signature=") {
            signature = Some(v);
        }
    }
    let missing = |what: &str| AuthFailure::Malformed(format!("Authorization header lacks {what}"));
    let credential = credential.ok_or_else(|| missing("Credential"))?;
    let signed = signed.ok_or_else(|| missing("SignedHeaders"))?;
    let signature = signature.ok_or_else(|| missing("Signature"))?;
    let scope: Vec<&str> = credential.split('/').collect();
    let [akid, date, region, service, "aws4_request"] = scope[..] else {
        return Err(AuthFailure::Malformed(
            "Credential must be <key>/<date>/<region>/<service>/aws4_request".into(),
        ));
    };
    if akid.is_empty() || date.len() != 8 {
        return Err(AuthFailure::Malformed("malformed credential scope".into()));
    }
    let signed_headers: Vec<String> = signed.split(';').map(|h| h.to_ascii_lowercase()).collect();
    if !signed_headers.iter().any(|h| h == "host") {
        return Err(AuthFailure::Malformed(
            "SignedHeaders must include host".into(),
        ));
    }
    Ok(Authorization {
        access_key_id: akid.into(),
        date: date.into(),
        region: region.into(),
        service: service.into(),
        signed_headers,
        signature: signature.to_ascii_lowercase(),
    })
}

/// Parses an `x-amz-date` value (`yyyymmddThhmmssZ`).
pub fn parse_amz_date(value: &str) -> Result<SystemTime, AuthFailure> {
    let fmt = format_description!("[year][month][day]T[hour][minute][second]Z");
    let t = PrimitiveDateTime::parse(value, fmt)
        .map_err(|_| AuthFailure::Malformed(format!("invalid X-Amz-Date '{value}'")))?;
    Ok(t.assume_utc().into())
}

/// A request as received: method, path and query, headers, body.
#[derive(Debug, Clone, Copy)]
pub struct Received<'a> {
    /// The HTTP method.
    pub method: &'a str,
    /// Path and query as sent (`/`).
    pub path_and_query: &'a str,
    /// Every header (name, value).
    pub headers: &'a [(String, String)],
    /// The body.
    pub body: &'a [u8],
}

impl Received<'_> {
    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Verifies `req`'s signature (parsed as `auth`) with `secret` and, for temporary
/// credentials, `session_token`, at time `now`.
pub fn verify(
    req: &Received<'_>,
    auth: &Authorization,
    secret: &str,
    session_token: Option<&str>,
    now: SystemTime,
) -> Result<(), AuthFailure> {
    let date = req
        .header("x-amz-date")
        .ok_or_else(|| AuthFailure::Malformed("missing X-Amz-Date".into()))?;
    let at = parse_amz_date(date)?;
    let skew = match now.duration_since(at) {
        Ok(d) => d,
        Err(e) => e.duration(),
    };
    if skew > MAX_SKEW {
        return Err(AuthFailure::Expired);
    }
    if !date.starts_with(&auth.date) {
        return Err(AuthFailure::Mismatch);
    }
    let token_signed = auth
        .signed_headers
        .iter()
        .any(|h| h == "x-amz-security-token");
    let presented_token = req.header("x-amz-security-token");
    if let Some(expected) = session_token {
        match presented_token {
            Some(t) if bool::from(t.as_bytes().ct_eq(expected.as_bytes())) => {}
            _ => return Err(AuthFailure::Mismatch),
        }
    }
    let mut headers: Vec<(&str, &str)> = Vec::new();
    for name in &auth.signed_headers {
        if name == "x-amz-date" || name == "x-amz-security-token" {
            continue;
        }
        let mut found = false;
        for (n, v) in req.headers {
            if n.eq_ignore_ascii_case(name) {
                headers.push((name.as_str(), v.as_str()));
                found = true;
            }
        }
        if !found {
            return Err(AuthFailure::Malformed(format!(
                "signed header '{name}' is missing"
            )));
        }
    }
    let host = req.header("host").unwrap_or("localhost");
    let identity: Identity = Credentials::new(
        auth.access_key_id.clone(),
        secret.to_string(),
        presented_token.filter(|_| token_signed).map(str::to_string),
        None,
        "kms-emulator",
    )
    .into();
    let mut settings = SigningSettings::default();
    // Whatever the client listed is verified, nothing else (user-agent included).
    settings.excluded_headers = None;
    settings.session_token_mode = if token_signed {
        SessionTokenMode::Include
    } else {
        SessionTokenMode::Exclude
    };
    let params = SigningParams::builder()
        .identity(&identity)
        .region(&auth.region)
        .name(&auth.service)
        .time(at)
        .settings(settings)
        .build()
        .map_err(|e| AuthFailure::Malformed(format!("signing parameters: {e}")))?
        .into();
    let uri = format!("http://{host}{}", req.path_and_query);
    let signable = SignableRequest::new(
        req.method,
        uri,
        headers.into_iter(),
        SignableBody::Bytes(req.body),
    )
    .map_err(|e| AuthFailure::Malformed(format!("request: {e}")))?;
    let output = sign(signable, &params).map_err(|e| AuthFailure::Malformed(format!("{e}")))?;
    let expected = output.signature().to_ascii_lowercase();
    if bool::from(expected.as_bytes().ct_eq(auth.signature.as_bytes())) {
        Ok(())
    } else {
        Err(AuthFailure::Mismatch)
    }
}

#[cfg(test)]
mod tests;

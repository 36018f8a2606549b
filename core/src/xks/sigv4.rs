//! Server-side verification of AWS Signature Version 4 (`AWS4-HMAC-SHA256`, signature in the
//! `Authorization` header) as used by AWS KMS towards an external key store proxy.
//!
//! The canonical request is never materialised: it is streamed straight into SHA-256, so the
//! memory used does not depend on the size of the path, the headers or the body. Only the
//! query string (empty for XKS) needs a bounded buffer, because its parameters are sorted.
//!
//! Canonicalisation follows AWS's rules for every service but S3:
//! - the URI path is taken as received on the wire and percent-encoded once more (every byte
//!   but `A-Z a-z 0-9 - . _ ~ /` becomes `%XX`), i.e. "double encoding"; an empty path is `/`;
//!   dot segments are NOT removed;
//! - query parameters are form-decoded (`%XX`, `+` as space) and re-encoded with the same
//!   unreserved set (`/` included in the escaped set), then sorted by encoded name and value;
//! - header values: all occurrences, each with leading/trailing spaces trimmed and inner runs
//!   of spaces collapsed, joined with `,`;
//! - the payload hash is always computed from the body; an `x-amz-content-sha256` header, if
//!   present, must agree with it.
//!
//! Error messages ([`AuthError`]'s `Display`) are short printable ASCII, never contain the
//! secret nor the expected signature, and may be returned to clients.

use hmac::digest::KeyInit;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// The SigV4 service name AWS KMS signs XKS requests with.
pub const SERVICE: &str = "kms-xks-proxy";
/// Largest accepted difference between `x-amz-date` and the proxy's clock (inclusive).
pub const MAX_CLOCK_SKEW: time::Duration = time::Duration::minutes(5);

const ALGORITHM: &str = "AWS4-HMAC-SHA256";
const TERMINATOR: &str = "aws4_request";
const X_AMZ_DATE: &str = "x-amz-date";
const X_AMZ_CONTENT_SHA256: &str = "x-amz-content-sha256";
const HOST: &str = "host";

/// Longest accepted `Authorization` header value, in bytes.
const MAX_AUTHORIZATION_LEN: usize = 4096;
/// Most header names accepted in `SignedHeaders`.
const MAX_SIGNED_HEADERS: usize = 32;
/// Longest accepted signed header name.
const MAX_HEADER_NAME_LEN: usize = 128;
/// Longest accepted raw query string (it is the only input buffered while verifying).
const MAX_QUERY_LEN: usize = 4096;
/// Most query parameters accepted.
const MAX_QUERY_PARAMS: usize = 64;
/// Longest service name echoed back in [`AuthError::WrongService`].
const MAX_ECHOED_LEN: usize = 40;

type HmacSha256 = Hmac<Sha256>;

mod canonical;

#[cfg(test)]
use canonical::write_trimmed;
use canonical::{canonical_query, hex_lower, trim_spaces, write_canonical_request};

/// Why a request failed SigV4 authentication.
#[derive(Debug, thiserror::Error, PartialEq, Eq, Clone)]
pub enum AuthError {
    /// The request has no `Authorization` header (for use by the caller).
    #[error("missing Authorization header")]
    MissingHeader,
    /// The request carries more than one `Authorization` header (which one would be
    /// checked is ambiguous, so none is).
    #[error("more than one Authorization header: a request carries exactly one")]
    RepeatedHeader,
    /// The `Authorization` header does not have the SigV4 shape.
    #[error("malformed Authorization header: {reason}")]
    Malformed { reason: &'static str },
    /// The algorithm is not `AWS4-HMAC-SHA256`.
    #[error("unsupported signing algorithm, expected AWS4-HMAC-SHA256")]
    UnsupportedAlgorithm,
    /// The credential scope names another service. `service` is sanitised (printable ASCII,
    /// truncated) for the caller; the message does not echo it.
    #[error("credential scope service is not kms-xks-proxy")]
    WrongService { service: String },
    /// The credential scope does not end with `aws4_request`.
    #[error("credential scope must end with aws4_request")]
    WrongTerminator,
    /// No `x-amz-date` header.
    #[error("missing x-amz-date header")]
    MissingDate,
    /// `x-amz-date` is not a single `yyyymmddThhmmssZ` value.
    #[error("malformed x-amz-date header, expected yyyymmddThhmmssZ")]
    MalformedDate,
    /// The credential scope date is not the date of `x-amz-date`.
    #[error("credential scope date does not match x-amz-date")]
    ScopeDateMismatch,
    /// `x-amz-date` is too far from the proxy's clock; positive when the request is in the past.
    #[error("x-amz-date is {skew_seconds} s off the server clock, more than the 300 s allowed")]
    DateOutOfWindow { skew_seconds: i64 },
    /// A header listed in `SignedHeaders` is not in the request.
    #[error("signed header '{name}' is missing from the request")]
    MissingSignedHeader { name: String },
    /// `SignedHeaders` does not include `host`.
    #[error("SignedHeaders must include host")]
    HostNotSigned,
    /// `SignedHeaders` does not include `x-amz-date`.
    #[error("SignedHeaders must include x-amz-date")]
    DateNotSigned,
    /// `x-amz-content-sha256` is not the SHA-256 of the body.
    #[error("x-amz-content-sha256 does not match the request body")]
    ContentHashMismatch,
    /// A part of the request is too large to be verified.
    #[error("request {what} too large to verify")]
    TooLarge { what: &'static str },
    /// The signature is not the one computed from the request and the secret.
    #[error("signature does not match")]
    SignatureMismatch,
}

/// Parsed `Authorization` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authorization<'a> {
    pub access_key_id: &'a str,
    /// yyyymmdd from the credential scope
    pub date: &'a str,
    pub region: &'a str,
    pub service: &'a str,
    /// as listed, lowercase, in order
    pub signed_headers: Vec<&'a str>,
    pub signature: [u8; 32],
}

/// The parts of an HTTP request that SigV4 covers.
#[derive(Debug, Clone, Copy)]
pub struct RequestParts<'a> {
    pub method: &'a str,
    /// raw path as received on the wire, e.g. "/tenants/acme/kms/xks/v1/health"
    pub path: &'a str,
    /// raw query without '?', usually ""
    pub query: &'a str,
    pub headers: &'a http::HeaderMap,
    /// URI authority, used as `host` when there is no Host header (HTTP/2 :authority)
    pub authority: Option<&'a str>,
    pub body: &'a [u8],
}

/// Refuses a request carrying several `Authorization` headers (proxies and servers
/// disagree on which one counts, so a signed one could smuggle another).
pub fn refuse_repeated_authorization(headers: &http::HeaderMap) -> Result<(), AuthError> {
    if headers
        .get_all(http::header::AUTHORIZATION)
        .iter()
        .nth(1)
        .is_some()
    {
        return Err(AuthError::RepeatedHeader);
    }
    Ok(())
}

/// Parses an `Authorization` header value:
/// `AWS4-HMAC-SHA256 Credential=<AKID>/<yyyymmdd>/<region>/kms-xks-proxy/aws4_request,
/// SignedHeaders=a;b;c, Signature=<64 hex>` (components in any order, each exactly once).
pub fn parse_authorization(value: &str) -> Result<Authorization<'_>, AuthError> {
    if value.len() > MAX_AUTHORIZATION_LEN {
        return Err(malformed("header too long"));
    }
    let value = value.trim_matches(is_space);
    let (algorithm, rest) = match value.find(is_space) {
        Some(i) => (&value[..i], &value[i..]),
        None => (value, ""),
    };
    if algorithm != ALGORITHM {
        return Err(if algorithm.is_empty() {
            malformed("empty header")
        } else {
            AuthError::UnsupportedAlgorithm
        });
    }

    let mut credential = None;
    let mut signed_headers = None;
    let mut signature = None;
    for component in rest.split(',') {
        let component = component.trim_matches(is_space);
        if component.is_empty() {
            return Err(malformed("empty component"));
        }
        let Some((key, val)) = component.split_once('=') else {
            return Err(malformed("component without '='"));
        };
        let slot = match key {
            "Credential" => &mut credential,
            "SignedHeaders" => &mut signed_headers,
            "Signature" => &mut signature,
            _ => return Err(malformed("unknown component")),
        };
        if slot.replace(val).is_some() {
            return Err(malformed("duplicate component"));
        }
    }
    let credential = credential.ok_or(malformed("missing Credential"))?;
    let signed_headers = signed_headers.ok_or(malformed("missing SignedHeaders"))?;
    let signature = signature.ok_or(malformed("missing Signature"))?;

    // Credential=<AKID>/<date>/<region>/<service>/aws4_request
    let mut parts = credential.split('/');
    let (Some(access_key_id), Some(date), Some(region), Some(service), Some(terminator), None) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return Err(malformed(
            "Credential must be <key id>/<yyyymmdd>/<region>/<service>/aws4_request",
        ));
    };
    if terminator != TERMINATOR {
        return Err(AuthError::WrongTerminator);
    }
    if service != SERVICE {
        return Err(wrong_service(service));
    }
    if access_key_id.is_empty() {
        return Err(malformed("empty access key id"));
    }
    if date.len() != 8 || !date.bytes().all(|b| b.is_ascii_digit()) {
        return Err(malformed("credential scope date must be yyyymmdd"));
    }
    if region.is_empty() {
        return Err(malformed("empty region"));
    }

    let signed_headers = parse_signed_headers(signed_headers)?;

    if signature.len() != 64 {
        return Err(malformed("Signature must be 64 hex digits"));
    }
    let mut sig = [0u8; 32];
    hex::decode_to_slice(signature, &mut sig)
        .map_err(|_| malformed("Signature must be 64 hex digits"))?;

    Ok(Authorization {
        access_key_id,
        date,
        region,
        service,
        signed_headers,
        signature: sig,
    })
}

/// Verifies the request's signature with `secret` (the raw secret access key bytes) at time `now`.
pub fn verify(
    req: &RequestParts<'_>,
    auth: &Authorization<'_>,
    secret: &[u8],
    now: time::OffsetDateTime,
) -> Result<(), AuthError> {
    let key = signing_key(secret, auth.date, auth.region, auth.service);
    verify_with_key(req, auth, &key, now)
}

/// The SigV4 signing key (HMAC chain over date, region, service, "aws4_request"); exposed so the
/// caller can cache it per (access key, date, region).
pub fn signing_key(secret: &[u8], date: &str, region: &str, service: &str) -> [u8; 32] {
    let k_date = hmac(&[b"AWS4", secret], &[date.as_bytes()]);
    let k_region = hmac(&[&k_date], &[region.as_bytes()]);
    let k_service = hmac(&[&k_region], &[service.as_bytes()]);
    hmac(&[&k_service], &[TERMINATOR.as_bytes()])
}

/// Same as [`verify`] but with a precomputed signing key.
pub fn verify_with_key(
    req: &RequestParts<'_>,
    auth: &Authorization<'_>,
    signing_key: &[u8; 32],
    now: time::OffsetDateTime,
) -> Result<(), AuthError> {
    if auth.service != SERVICE {
        return Err(wrong_service(auth.service));
    }
    let expected = compute_signature(req, auth, signing_key, now)?;
    if bool::from(expected.ct_eq(&auth.signature)) {
        Ok(())
    } else {
        Err(AuthError::SignatureMismatch)
    }
}

/// Everything of [`verify_with_key`] but the service check and the final comparison: checks
/// the scope, the signed header list, the date and the content hash, then returns the
/// signature the request should carry.
fn compute_signature(
    req: &RequestParts<'_>,
    auth: &Authorization<'_>,
    signing_key: &[u8; 32],
    now: time::OffsetDateTime,
) -> Result<[u8; 32], AuthError> {
    if auth.access_key_id.is_empty() || auth.region.is_empty() {
        return Err(malformed("empty credential scope component"));
    }
    check_signed_headers(&auth.signed_headers)?;

    let amz_date = x_amz_date(req.headers)?;
    let signed_at = parse_amz_date(amz_date)?;
    if amz_date.as_bytes().get(..8) != Some(auth.date.as_bytes()) {
        return Err(AuthError::ScopeDateMismatch);
    }
    let skew = now - signed_at;
    if skew.abs() > MAX_CLOCK_SKEW {
        return Err(AuthError::DateOutOfWindow {
            skew_seconds: skew.whole_seconds(),
        });
    }

    for name in &auth.signed_headers {
        let present = req.headers.contains_key(*name) || (*name == HOST && req.authority.is_some());
        if !present {
            return Err(AuthError::MissingSignedHeader {
                name: (*name).to_owned(),
            });
        }
    }

    let body_hash: [u8; 32] = Sha256::digest(req.body).into();
    let mut body_hash_hex = [0u8; 64];
    hex_lower(&body_hash, &mut body_hash_hex);
    for value in req.headers.get_all(X_AMZ_CONTENT_SHA256) {
        if !trim_spaces(value.as_bytes()).eq_ignore_ascii_case(&body_hash_hex) {
            return Err(AuthError::ContentHashMismatch);
        }
    }

    let query = canonical_query(req.query)?;
    let mut hasher = Sha256::new();
    write_canonical_request(req, auth, &query, &body_hash_hex, &mut hasher);
    let creq_hash: [u8; 32] = hasher.finalize().into();
    let mut creq_hash_hex = [0u8; 64];
    hex_lower(&creq_hash, &mut creq_hash_hex);

    // String to sign, streamed into the MAC.
    let mut mac = mac_with_key(&[signing_key]);
    for part in [
        ALGORITHM.as_bytes(),
        b"\n",
        amz_date.as_bytes(),
        b"\n",
        auth.date.as_bytes(),
        b"/",
        auth.region.as_bytes(),
        b"/",
        auth.service.as_bytes(),
        b"/",
        TERMINATOR.as_bytes(),
        b"\n",
        &creq_hash_hex,
    ] {
        mac.update(part);
    }
    Ok(mac.finalize().into_bytes().into())
}

fn parse_signed_headers(list: &str) -> Result<Vec<&str>, AuthError> {
    let mut names = Vec::new();
    for name in list.split(';') {
        if names.len() == MAX_SIGNED_HEADERS {
            return Err(malformed("too many SignedHeaders"));
        }
        names.push(name);
    }
    check_signed_headers(&names)?;
    Ok(names)
}

/// SignedHeaders: lowercase header names, strictly ascending, with `host` and `x-amz-date`.
fn check_signed_headers(names: &[&str]) -> Result<(), AuthError> {
    if names.len() > MAX_SIGNED_HEADERS {
        return Err(malformed("too many SignedHeaders"));
    }
    for name in names {
        if name.is_empty() {
            return Err(malformed("empty name in SignedHeaders"));
        }
        if name.len() > MAX_HEADER_NAME_LEN {
            return Err(malformed("name in SignedHeaders too long"));
        }
        if !name.bytes().all(is_lowercase_token_byte) {
            return Err(malformed(
                "SignedHeaders must be lowercase header names separated by ';'",
            ));
        }
    }
    for pair in names.windows(2) {
        if pair[0] == pair[1] {
            return Err(malformed("duplicate name in SignedHeaders"));
        }
        if pair[0] > pair[1] {
            return Err(malformed("SignedHeaders must be sorted"));
        }
    }
    if !names.contains(&HOST) {
        return Err(AuthError::HostNotSigned);
    }
    if !names.contains(&X_AMZ_DATE) {
        return Err(AuthError::DateNotSigned);
    }
    Ok(())
}

/// RFC 9110 token characters, without upper case letters.
fn is_lowercase_token_byte(b: u8) -> bool {
    b.is_ascii_lowercase()
        || b.is_ascii_digit()
        || matches!(
            b,
            b'!' | b'#'
                | b'$'
                | b'%'
                | b'&'
                | b'\''
                | b'*'
                | b'+'
                | b'-'
                | b'.'
                | b'^'
                | b'_'
                | b'`'
                | b'|'
                | b'~'
        )
}

/// The single `x-amz-date` value, spaces trimmed.
fn x_amz_date(headers: &http::HeaderMap) -> Result<&str, AuthError> {
    let mut values = headers.get_all(X_AMZ_DATE).iter();
    let value = values.next().ok_or(AuthError::MissingDate)?;
    if values.next().is_some() {
        return Err(AuthError::MalformedDate);
    }
    std::str::from_utf8(trim_spaces(value.as_bytes())).map_err(|_| AuthError::MalformedDate)
}

/// Parses `yyyymmddThhmmssZ` (UTC).
fn parse_amz_date(value: &str) -> Result<time::OffsetDateTime, AuthError> {
    let b = value.as_bytes();
    if b.len() != 16 || b[8] != b'T' || b[15] != b'Z' {
        return Err(AuthError::MalformedDate);
    }
    let num = |range: std::ops::Range<usize>| -> Result<u16, AuthError> {
        let digits = b.get(range).ok_or(AuthError::MalformedDate)?;
        digits.iter().try_fold(0u16, |acc, &d| {
            if d.is_ascii_digit() {
                Ok(acc * 10 + u16::from(d - b'0'))
            } else {
                Err(AuthError::MalformedDate)
            }
        })
    };
    let small = |range| -> Result<u8, AuthError> {
        u8::try_from(num(range)?).map_err(|_| AuthError::MalformedDate)
    };
    let year = i32::from(num(0..4)?);
    let month = time::Month::try_from(small(4..6)?).map_err(|_| AuthError::MalformedDate)?;
    let date = time::Date::from_calendar_date(year, month, small(6..8)?)
        .map_err(|_| AuthError::MalformedDate)?;
    let time = time::Time::from_hms(small(9..11)?, small(11..13)?, small(13..15)?)
        .map_err(|_| AuthError::MalformedDate)?;
    Ok(time::PrimitiveDateTime::new(date, time).assume_utc())
}

/// HMAC-SHA256 keyed with the concatenation of `key_parts`, over the concatenation of `data`.
fn hmac(key_parts: &[&[u8]], data: &[&[u8]]) -> [u8; 32] {
    let mut mac = mac_with_key(key_parts);
    for part in data {
        mac.update(part);
    }
    mac.finalize().into_bytes().into()
}

/// An HMAC-SHA256 instance keyed with the concatenation of `key_parts`, built without copying
/// the key to the heap: a key up to the 64-byte block size is zero-padded to it, a longer key
/// is replaced by its SHA-256 (RFC 2104), so the result is the same as HMAC with the key.
fn mac_with_key(key_parts: &[&[u8]]) -> HmacSha256 {
    let mut block = [0u8; 64];
    let total: usize = key_parts.iter().map(|p| p.len()).sum();
    if total <= block.len() {
        let mut at = 0;
        for part in key_parts {
            block[at..at + part.len()].copy_from_slice(part);
            at += part.len();
        }
    } else {
        let mut hasher = Sha256::new();
        for part in key_parts {
            hasher.update(part);
        }
        block[..32].copy_from_slice(&hasher.finalize());
    }
    let mac = <HmacSha256 as KeyInit>::new(&block.into());
    block.fill(0);
    std::hint::black_box(&block);
    mac
}

fn malformed(reason: &'static str) -> AuthError {
    AuthError::Malformed { reason }
}

fn wrong_service(service: &str) -> AuthError {
    AuthError::WrongService {
        service: service
            .chars()
            .take(MAX_ECHOED_LEN)
            .map(|c| if c.is_ascii_graphic() { c } else { '?' })
            .collect(),
    }
}

fn is_space(c: char) -> bool {
    c.is_ascii_whitespace()
}

#[cfg(test)]
mod tests;

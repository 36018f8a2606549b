//! Entry points for the fuzz targets in `fuzz/` and for the stable test that replays
//! their checked-in corpora (`fuzzing/tests.rs`): each takes raw bytes, runs them
//! through the same parsers and validations the servers run on untrusted input, and
//! must never panic whatever the bytes are. Not part of the library's interface.
//!
//! - [`sigv4`]: the SigV4 `Authorization` parser and verifier ([`crate::xks::sigv4`]);
//! - [`xks_path`]: the XKS path parser ([`crate::xks::path`]);
//! - [`xks_body`]: the XKS request body parsers and validation ([`crate::xks::wire`]);
//! - [`admin_json`]: the admin API's request bodies ([`crate::api`]) and the model's
//!   validation of their fields.

use serde::de::DeserializeOwned;

use crate::api;
use crate::model;
use crate::schedule::Recurrence;
use crate::xks::{path, sigv4, wire};

/// The secret the [`sigv4`] target verifies with (AWS's documentation example).
pub const SIGV4_SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
/// The clock the [`sigv4`] target verifies at: 2024-01-01T00:00:00Z (Unix seconds).
pub const SIGV4_NOW: i64 = 1_704_067_200;

/// The names of the fuzz targets, which are also the corpus directories under `fuzz/corpus`.
pub const TARGETS: [&str; 4] = ["sigv4", "xks_path", "xks_body", "admin_json"];

/// Runs the entry function of the target named `name` (one of [`TARGETS`]).
pub fn run(name: &str, input: &[u8]) {
    match name {
        "sigv4" => sigv4(input),
        "xks_path" => xks_path(input),
        "xks_body" => xks_body(input),
        "admin_json" => admin_json(input),
        _ => {}
    }
}

/// A request as text, one part per line: the `Authorization` value, the method, the
/// path, the query, then `name: value` header lines up to an empty line; the rest is the
/// body. Parsed, then verified with [`SIGV4_SECRET`] at [`SIGV4_NOW`]; when it verifies,
/// the same request with one byte of the body changed must not.
pub fn sigv4(input: &[u8]) {
    let _ = sigv4_outcome(input);
}

/// What [`sigv4`] concluded: `None` when the input is not in the target's format,
/// else the outcome of parsing and verifying the request.
pub fn sigv4_outcome(input: &[u8]) -> Option<Result<(), sigv4::AuthError>> {
    let mut lines = input.splitn(5, |b| *b == b'\n');
    let (Some(auth), Some(method), Some(raw_path), Some(query)) =
        (lines.next(), lines.next(), lines.next(), lines.next())
    else {
        return None;
    };
    let rest = lines.next().unwrap_or_default();
    let (Ok(auth), Ok(method), Ok(raw_path), Ok(query)) = (
        std::str::from_utf8(auth),
        std::str::from_utf8(method),
        std::str::from_utf8(raw_path),
        std::str::from_utf8(query),
    ) else {
        return None;
    };
    let mut headers = http::HeaderMap::new();
    let mut body: &[u8] = &[];
    let mut remaining = rest;
    loop {
        let (line, after) = match remaining.iter().position(|b| *b == b'\n') {
            Some(i) => (&remaining[..i], &remaining[i + 1..]),
            None => (remaining, &[][..]),
        };
        if line.is_empty() {
            body = after;
            break;
        }
        if let Some(colon) = line.iter().position(|b| *b == b':') {
            if let (Ok(name), Ok(value)) = (
                http::HeaderName::from_bytes(&line[..colon]),
                http::HeaderValue::from_bytes(line[colon + 1..].trim_ascii()),
            ) {
                headers.append(name, value);
            }
        }
        if after.is_empty() {
            break;
        }
        remaining = after;
    }
    let parsed = match sigv4::parse_authorization(auth) {
        Ok(parsed) => parsed,
        Err(e) => return Some(Err(e)),
    };
    let now = time::OffsetDateTime::from_unix_timestamp(SIGV4_NOW).ok()?;
    let mut req = sigv4::RequestParts {
        method,
        path: raw_path,
        query,
        headers: &headers,
        authority: Some("xks.example.com"),
        body,
    };
    let verified = sigv4::verify(&req, &parsed, SIGV4_SECRET.as_bytes(), now);
    let key = sigv4::signing_key(
        SIGV4_SECRET.as_bytes(),
        parsed.date,
        parsed.region,
        parsed.service,
    );
    assert_eq!(
        verified,
        sigv4::verify_with_key(&req, &parsed, &key, now),
        "verify and verify_with_key disagree"
    );
    if verified.is_ok() {
        let mut changed = body.to_vec();
        match changed.first_mut() {
            Some(b) => *b ^= 1,
            None => changed.push(b'x'),
        }
        req.body = &changed;
        assert!(
            sigv4::verify(&req, &parsed, SIGV4_SECRET.as_bytes(), now).is_err(),
            "a changed body still verifies"
        );
    }
    Some(verified)
}

/// An XKS request path; a parsed one must be consistent with the input.
pub fn xks_path(input: &[u8]) {
    let Ok(text) = std::str::from_utf8(input) else {
        return;
    };
    match path::parse(text) {
        None => {}
        Some(path::XksPath::Health { base }) => {
            assert!(base.ends_with("/kms/xks/v1"));
            assert_eq!(format!("{base}/health"), text);
        }
        Some(path::XksPath::Key { base, key_id, op }) => {
            assert!(base.ends_with("/kms/xks/v1"));
            assert!(!key_id.contains('/'));
            let op = match op {
                path::KeyOp::Metadata => "metadata",
                path::KeyOp::Encrypt => "encrypt",
                path::KeyOp::Decrypt => "decrypt",
            };
            assert_eq!(format!("{base}/keys/{key_id}/{op}"), text);
        }
    }
}

/// An XKS request body: the first byte picks the operation (health, metadata, encrypt,
/// decrypt), the rest is the body, parsed and validated as the service does.
pub fn xks_body(input: &[u8]) {
    let Some((&selector, body)) = input.split_first() else {
        return;
    };
    match selector % 4 {
        0 => {
            if let Ok(req) = wire::parse_body::<wire::HealthRequest>(body) {
                let _ = wire::require_metadata(&req.request_metadata, false);
            }
        }
        1 => {
            let _ = key_request::<wire::MetadataRequest>(body);
        }
        2 => {
            if let Some(input) = key_request::<wire::EncryptRequest>(body) {
                assert!(input.plaintext.len() <= wire::MAX_DATA_BYTES);
                assert!(input.aad.len() <= wire::MAX_AAD_BYTES);
            }
        }
        _ => {
            if let Some(input) = key_request::<wire::DecryptRequest>(body) {
                assert!(input.ciphertext.len() <= wire::MAX_DATA_BYTES);
                assert!(matches!(input.iv.len(), 12 | 16));
                assert_eq!(input.tag.len(), 16);
                let cdiv = wire::cdiv(&input.aad, &[], &input.iv, &input.ciphertext, &input.tag);
                assert!(!cdiv.is_empty());
            }
        }
    }
}

/// Parses, checks the metadata of, and validates one key operation's body.
fn key_request<T: wire::KeyRequest>(body: &[u8]) -> Option<T::Input> {
    let req = wire::parse_body::<T>(body).ok()?;
    wire::require_metadata(req.metadata(), T::CRYPTO).ok()?;
    req.validate().ok()
}

/// An admin API request body: the first byte picks the type, the rest is the body, read
/// as the API's `Body` extractor reads it (blank is `{}`) and its fields then checked
/// with the model's validation functions.
pub fn admin_json(input: &[u8]) {
    let Some((&selector, body)) = input.split_first() else {
        return;
    };
    let body: &[u8] = if body.iter().all(u8::is_ascii_whitespace) {
        b"{}"
    } else {
        body
    };
    match selector % 16 {
        0 => {
            if let Some(v) = json::<api::accounts::NewAccount>(body) {
                let _ = model::validate_account_id(&v.id);
                let _ = model::validate_name("account", &v.name);
                v.regions
                    .iter()
                    .for_each(|r| drop(model::validate_region(r)));
            }
        }
        1 => {
            if let Some(v) = json::<api::accounts::AccountPatch>(body) {
                v.name.map(|n| model::validate_name("account", &n));
                v.regions
                    .iter()
                    .flatten()
                    .for_each(|r| drop(model::validate_region(r)));
            }
        }
        2 => {
            if let Some(v) = json::<api::connections::NewAwsConnection>(body) {
                let _ = model::validate_name("AWS connection", &v.name);
            }
        }
        3 => {
            if let Some(v) = json::<api::connections::NewHsmConnection>(body) {
                let _ = model::validate_name("HSM connection", &v.name);
            }
        }
        4 => {
            if let Some(v) = json::<api::keys::NewHyokKey>(body) {
                let _ = serde_json::to_vec(&v);
            }
        }
        5 => {
            if let Some(v) = json::<api::schedules::NewSchedule>(body) {
                let _ = model::validate_name("schedule", &v.name);
                if let Ok(rule) = Recurrence::try_from(v.recurrence) {
                    let Ok(now) = time::OffsetDateTime::from_unix_timestamp(SIGV4_NOW) else {
                        return;
                    };
                    assert!(rule.next_after(now) > now, "next run not after now");
                }
            }
        }
        6 => drop(json::<api::schedules::ScheduleAssignment>(body)),
        7 => {
            if let Some(v) = json::<api::session::Login>(body) {
                let _ = crate::identity::valid_user_name(&v.user);
            }
        }
        8 => {
            if let Some(v) = json::<api::sources::NewSource>(body) {
                let _ = model::validate_name("source", &v.name);
            }
        }
        9 => drop(json::<api::sources::NewSourceKey>(body)),
        10 => {
            if let Some(v) = json::<api::stores::NewStore>(body) {
                let _ = model::validate_name("store", &v.name);
                v.max_credentials.map(model::validate_max_credentials);
                v.region.map(|r| model::validate_region(&r));
                v.uri_path_prefix
                    .map(|p| model::normalize_uri_path_prefix(&p));
                let _ = model::validate_external_key_id(&v.health_check_key);
            }
        }
        11 => {
            if let Some(v) = json::<api::stores::StorePatch>(body) {
                let _ = v.fields();
                v.name.map(|n| model::validate_name("store", &n));
                v.region.map(|r| model::validate_region(&r));
            }
        }
        12 => drop(json::<api::stores::LinkRequest>(body)),
        13 => drop(json::<api::tokens::NewToken>(body)),
        14 => {
            if let Some(v) = json::<api::users::NewUser>(body) {
                let _ = crate::identity::valid_user_name(&v.name);
            }
        }
        _ => drop(json::<api::users::NewPassword>(body)),
    }
}

/// Deserializes as the admin API does; a refusal is `None`.
fn json<T: DeserializeOwned>(body: &[u8]) -> Option<T> {
    serde_json::from_slice(body).ok()
}

#[cfg(test)]
mod tests;

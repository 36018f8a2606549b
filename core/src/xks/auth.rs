//! Request authentication: every XKS request's SigV4 signature, checked against the
//! credentials of the key store it names, and the per-store cache of SigV4 signing keys
//! that spares the key derivation on repeated requests. (Client certificates, when a
//! listener requires them, are checked in the TLS handshake: see `tls`.)

use std::{collections::HashMap, sync::Mutex};

use http::{header, request::Parts};
use zeroize::Zeroizing;

use super::{
    error::{XksError, XksErrorKind},
    routing::StoreRoute,
    sigv4,
};

/// Checks that the request is signed with a credential of `route`'s key store, for a
/// region its account allows.
pub fn authenticate(parts: &Parts, body: &[u8], route: &StoreRoute) -> Result<(), XksError> {
    sigv4::refuse_repeated_authorization(&parts.headers).map_err(|e| failed(e.to_string()))?;
    let header = parts
        .headers
        .get(header::AUTHORIZATION)
        .ok_or_else(|| failed("missing Authorization header (requests must be SigV4-signed)"))?
        .to_str()
        .map_err(|_| failed("Authorization header is not ASCII"))?;
    let auth = sigv4::parse_authorization(header).map_err(|e| failed(e.to_string()))?;
    check_region(route, auth.region)?;
    let secret = route
        .credentials
        .get(auth.access_key_id)
        .ok_or_else(|| failed("unknown access key id for this key store"))?;
    let request = sigv4::RequestParts {
        method: parts.method.as_str(),
        path: parts.uri.path(),
        query: parts.uri.query().unwrap_or(""),
        headers: &parts.headers,
        authority: parts.uri.authority().map(|a| a.as_str()),
        body,
    };
    // The signing key depends only on (secret, date, region): reuse it across requests.
    // Only keys of requests that verified are cached, so unauthenticated callers cannot
    // fill the cache.
    let scope = (
        auth.access_key_id.to_string(),
        auth.date.to_string(),
        auth.region.to_string(),
    );
    let cached = route.signing_keys.get(&scope);
    let key = cached
        .unwrap_or_else(|| sigv4::signing_key(secret, auth.date, auth.region, sigv4::SERVICE));
    sigv4::verify_with_key(&request, &auth, &key, time::OffsetDateTime::now_utc())
        .map_err(|e| failed(e.to_string()))?;
    if cached.is_none() {
        route.signing_keys.insert(scope, key);
    }
    Ok(())
}

/// Refuses a request signed for a region its store's account does not allow (stores
/// without an account, or whose account lists no region, accept any region).
pub fn check_region(route: &StoreRoute, region: &str) -> Result<(), XksError> {
    let Some(allowed) = &route.allowed_regions else {
        return Ok(());
    };
    if allowed.iter().any(|r| r == region) {
        return Ok(());
    }
    tracing::warn!(
        store = %route.record.name,
        account = route.account.as_deref().unwrap_or(""),
        region = %crate::logsafe::Clipped(region),
        "XKS request signed for a region the store's account does not allow"
    );
    Err(failed(format!(
        "the request is signed for region '{}', which this key store's account does not allow",
        shown_region(region)
    )))
}

/// A region as shown in a refusal: its name when it looks like one (lowercase letters,
/// digits and '-', at most 32), else a placeholder, so the message carries no other
/// request content.
fn shown_region(region: &str) -> &str {
    let plausible = !region.is_empty()
        && region.len() <= 32
        && region
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if plausible {
        region
    } else {
        "(not a region name)"
    }
}

fn failed(message: impl Into<String>) -> XksError {
    XksError::new(XksErrorKind::AuthenticationFailed, message)
}

/// (access key id, yyyymmdd, region): what a SigV4 signing key depends on besides the
/// secret.
pub type SigningScope = (String, String, String);

/// A small cache of SigV4 signing keys per [`SigningScope`], one per key store (dropped
/// with the store's route, i.e. whenever its credentials change).
#[derive(Default)]
pub struct SigningKeyCache {
    keys: Mutex<HashMap<SigningScope, Zeroizing<[u8; 32]>>>,
}

impl SigningKeyCache {
    /// Most entries kept (a few credentials x a few regions x today and yesterday).
    pub const CAPACITY: usize = 64;

    /// The cached signing key, if any.
    pub fn get(&self, key: &SigningScope) -> Option<[u8; 32]> {
        let keys = self.keys.lock().unwrap_or_else(|p| p.into_inner());
        keys.get(key).map(|k| **k)
    }

    /// Caches a signing key (the cache is emptied when full: dates move on).
    pub fn insert(&self, key: SigningScope, value: [u8; 32]) {
        let mut keys = self.keys.lock().unwrap_or_else(|p| p.into_inner());
        if keys.len() >= Self::CAPACITY {
            keys.clear();
        }
        keys.insert(key, Zeroizing::new(value));
    }
}

#[cfg(test)]
mod tests;

//! The XKS operations ([`XksOp`]) and what they share: one file per operation below,
//! each taking its validated input (see `wire`) and answering it.

use std::sync::Arc;

use bytes::Bytes;
use http::{Response, StatusCode};
use http_body_util::Full;
use keyhold_sdk::Encrypted;

use crate::{model, plugin::KeySourceHandle};

use super::{
    error::{XksError, XksErrorKind, json_response},
    path::KeyOp,
    routing::{KeyRoute, StoreRoute},
};

pub mod decrypt;
pub mod encrypt;
pub mod health;
pub mod metadata;

/// An answered request (every refusal is an [`XksError`]).
pub type Resp = Response<Full<Bytes>>;

/// What a request asks for: the four XKS operations and the load-balancer health path.
/// Indexes the per-store metrics (`op as usize`) and names the operation in logs and
/// audit records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum XksOp {
    /// GetHealthStatus.
    GetHealthStatus,
    /// GetKeyMetadata.
    GetKeyMetadata,
    /// Encrypt.
    Encrypt,
    /// Decrypt.
    Decrypt,
    /// keyhold's own `GET <prefix>/keyhold-health` for load balancers.
    LoadBalancerHealth,
}

impl XksOp {
    /// Every operation, in the order of [`XksOp`] (so `op as usize` indexes it).
    pub const ALL: [XksOp; 5] = [
        XksOp::GetHealthStatus,
        XksOp::GetKeyMetadata,
        XksOp::Encrypt,
        XksOp::Decrypt,
        XksOp::LoadBalancerHealth,
    ];

    /// The operation's name in logs, audit records and metrics.
    pub fn name(self) -> &'static str {
        match self {
            XksOp::GetHealthStatus => "GetHealthStatus",
            XksOp::GetKeyMetadata => "GetKeyMetadata",
            XksOp::Encrypt => "Encrypt",
            XksOp::Decrypt => "Decrypt",
            XksOp::LoadBalancerHealth => "LoadBalancerHealth",
        }
    }
}

impl From<KeyOp> for XksOp {
    fn from(op: KeyOp) -> XksOp {
        match op {
            KeyOp::Metadata => XksOp::GetKeyMetadata,
            KeyOp::Encrypt => XksOp::Encrypt,
            KeyOp::Decrypt => XksOp::Decrypt,
        }
    }
}

/// A key operation ready to run: the key it names, that key's source, and the
/// operation's validated input.
pub struct KeyCall<'a, I> {
    /// The key store's key source.
    pub source: Arc<KeySourceHandle>,
    /// The key.
    pub key: &'a KeyRoute,
    /// The validated input.
    pub input: I,
}

/// The key `key_id` of `route`'s store and the store's key source. Refuses an invalid
/// id (ValidationException), an unknown key (KeyNotFoundException), an unavailable
/// source (InternalException) and, when `crypto`, a blocked key (InvalidStateException).
pub fn resolve_key<'a>(
    route: &'a StoreRoute,
    key_id: &str,
    crypto: bool,
) -> Result<(Arc<KeySourceHandle>, &'a KeyRoute), XksError> {
    model::validate_external_key_id(key_id).map_err(|e| match e {
        model::ModelError::ExternalKeyId { reason, .. } => {
            XksError::validation(format!("invalid external key id in the path: {reason}"))
        }
        other => XksError::validation(other.to_string()),
    })?;
    let key = route.keys.get(key_id).ok_or_else(|| {
        XksError::new(
            XksErrorKind::KeyNotFound,
            "no such external key in this key store",
        )
    })?;
    let source = route.source.clone().map_err(|reason| {
        XksError::new(
            XksErrorKind::Internal,
            format!(
                "key source '{}' is not available: {reason}",
                route.record.source
            ),
        )
    })?;
    if crypto && key.blocked {
        return Err(XksError::new(
            XksErrorKind::InvalidState,
            "the external key is blocked",
        ));
    }
    Ok((source, key))
}

/// The key source's decrypt input for what it just sealed with `aad`.
pub fn reopen<'a>(sealed: &'a Encrypted, aad: &'a [u8]) -> keyhold_sdk::DecryptInput<'a> {
    keyhold_sdk::DecryptInput {
        iv: sealed.iv.as_slice().into(),
        ciphertext: sealed.ciphertext.as_slice().into(),
        tag: sealed.tag.as_slice().into(),
        aad: aad.into(),
    }
}

/// A 200 answer with `value` as its JSON body.
pub fn ok_json<T: serde::Serialize>(value: &T) -> Resp {
    // Serializing our own response types cannot fail.
    json_response(
        StatusCode::OK,
        serde_json::to_vec(value).unwrap_or_default(),
    )
}

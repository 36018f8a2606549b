//! The cluster's master-key check value: a known constant sealed under the master key
//! and kept in the store at [`CHECK_KEY`], so that a node whose master key differs from
//! the one the store's secrets are sealed under refuses to start instead of serving
//! credentials it cannot open (or sealing new ones no other node can).
//!
//! The first node to start on a store writes the value (a create-if-absent commit, so
//! nodes starting together agree on one); every later start verifies it. The logic is
//! pure ([`seal`], [`verify`]) but for [`ensure`], which reads and writes the store.

use base64::{Engine, engine::general_purpose::STANDARD as B64};
use serde::{Deserialize, Serialize};

use super::MasterKey;
use crate::store::{Condition, Store, StoreError, Write};

/// The store key of the check value.
pub const CHECK_KEY: &str = "cluster/master-check";

/// What is sealed (the context, as for every sealed value, is [`CHECK_KEY`]).
const PLAINTEXT: &[u8] = b"keyhold master key check value v1";

/// The version of the stored value's layout.
const VERSION: u32 = 1;

/// How often [`ensure`] reads again after losing the create race to another node.
const ATTEMPTS: usize = 3;

/// The stored value: `{"version":1,"sealed":"<base64 of nonce, ciphertext and tag>"}`.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct CheckValue {
    version: u32,
    sealed: String,
}

/// Why a check value does not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CheckError {
    /// The value is well formed but this master key does not open it.
    #[error("this master key cannot unwrap the check value")]
    WrongKey,
    /// The value is not a check value (damaged, or written by something else).
    #[error("the check value is malformed: {0}")]
    Malformed(String),
}

/// A fresh check value sealed under `master` (the bytes stored at [`CHECK_KEY`]).
pub fn seal(master: &MasterKey) -> Vec<u8> {
    let value = CheckValue {
        version: VERSION,
        sealed: master.seal(PLAINTEXT, CHECK_KEY),
    };
    // A struct of a number and a string always serializes.
    serde_json::to_vec(&value).unwrap_or_default()
}

/// Whether `master` opens the check value `value`.
pub fn verify(master: &MasterKey, value: &[u8]) -> Result<(), CheckError> {
    let parsed: CheckValue =
        serde_json::from_slice(value).map_err(|e| CheckError::Malformed(e.to_string()))?;
    if parsed.version != VERSION {
        return Err(CheckError::Malformed(format!(
            "version {} (this build reads version {VERSION})",
            parsed.version
        )));
    }
    if B64.decode(&parsed.sealed).is_err() {
        return Err(CheckError::Malformed(
            "the sealed value is not base64".into(),
        ));
    }
    match master.open(&parsed.sealed, CHECK_KEY) {
        Ok(plain) if plain.as_slice() == PLAINTEXT => Ok(()),
        Ok(_) => Err(CheckError::Malformed(
            "the sealed value opens to something else than the check constant".into(),
        )),
        Err(_) => Err(CheckError::WrongKey),
    }
}

/// What [`ensure`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ensured {
    /// The store had no check value: this node wrote one.
    Written,
    /// The store's check value opens with this node's master key.
    Verified,
}

/// Why [`ensure`] refused.
#[derive(Debug, thiserror::Error)]
pub enum EnsureError {
    /// The check value does not open with this master key, or is damaged.
    #[error(transparent)]
    Check(#[from] CheckError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Writes the check value when the store has none, else verifies it with `master`.
/// Nothing is written when the value exists (whatever the outcome).
pub fn ensure(store: &dyn Store, master: &MasterKey) -> Result<Ensured, EnsureError> {
    for _ in 0..ATTEMPTS {
        if let Some(entry) = store.get(CHECK_KEY)? {
            verify(master, &entry.value)?;
            return Ok(Ensured::Verified);
        }
        match store.commit(
            &[Condition::Absent(CHECK_KEY.to_string())],
            vec![Write::Put(CHECK_KEY.to_string(), seal(master))],
        ) {
            Ok(_) => return Ok(Ensured::Written),
            // Another node wrote it first: verify theirs.
            Err(StoreError::Conflict { .. }) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(StoreError::Backend {
        backend: "store",
        message: format!("the check value at {CHECK_KEY:?} kept appearing and disappearing"),
    }
    .into())
}

#[cfg(test)]
mod tests;

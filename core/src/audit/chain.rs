//! The chain of records: each record's `hash` covers the previous record's hash, its
//! sequence number, time and event. Keyed records (`"mac": "hmac-sha256"`) use
//! HMAC-SHA256 under a key derived from the master key, so nobody without that key can
//! recompute the chain after an edit; records written before keying use plain SHA-256
//! and are accepted only before the first keyed record.

use hmac::{Hmac, Mac, digest::KeyInit};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use super::Record;
use crate::secrets::MasterKey;

/// Hash of the record before the first one.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// The `mac` of a keyed record.
pub const KEYED_MAC: &str = "hmac-sha256";

/// The label the chain key is derived under ([`MasterKey::derive`]).
const KEY_LABEL: &str = "keyhold audit chain v1";

/// The HMAC key of the audit chain.
#[derive(Clone)]
pub struct ChainKey(Zeroizing<[u8; 32]>);

impl std::fmt::Debug for ChainKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ChainKey(..)")
    }
}

impl ChainKey {
    /// The chain key derived from the master key.
    pub fn from_master(master: &MasterKey) -> ChainKey {
        ChainKey(master.derive(KEY_LABEL))
    }

    /// A chain key from raw bytes (tests).
    pub fn from_bytes(key: [u8; 32]) -> ChainKey {
        ChainKey(Zeroizing::new(key))
    }
}

/// Where a chain stands after a record: what the next one must link to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct ChainState {
    /// The last record's sequence number (0: none yet).
    pub seq: u64,
    /// The last record's hash ([`GENESIS`]: none yet).
    pub prev: String,
    /// Whether the chain is keyed from here on.
    pub keyed: bool,
}

impl ChainState {
    /// The state before the first record.
    pub fn genesis(keyed: bool) -> ChainState {
        ChainState {
            seq: 0,
            prev: GENESIS.to_string(),
            keyed,
        }
    }

    /// The state after `rec`.
    pub fn after(rec: &Record) -> ChainState {
        ChainState {
            seq: rec.seq,
            prev: rec.hash.clone(),
            keyed: rec.mac.is_some(),
        }
    }
}

/// The hash of a record: HMAC-SHA256 under `key`, or SHA-256 when `None`.
pub(super) fn link(
    key: Option<&ChainKey>,
    prev: &str,
    seq: u64,
    time: &str,
    event: &serde_json::Value,
) -> String {
    let seq = seq.to_string();
    let event = event.to_string();
    let parts: [&[u8]; 7] = [
        prev.as_bytes(),
        b"\n",
        seq.as_bytes(),
        b"\n",
        time.as_bytes(),
        b"\n",
        event.as_bytes(),
    ];
    match key {
        Some(key) => {
            let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&key.0[..])
                .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
            for p in parts {
                mac.update(p);
            }
            hex::encode(mac.finalize().into_bytes())
        }
        None => {
            let mut h = Sha256::new();
            for p in parts {
                h.update(p);
            }
            hex::encode(h.finalize())
        }
    }
}

/// Checks that `rec` follows `state` (with the chain key, if known).
pub(super) fn check(
    rec: &Record,
    state: &ChainState,
    key: Option<&ChainKey>,
) -> Result<(), String> {
    if rec.seq != state.seq + 1 {
        return Err(format!(
            "sequence {} where {} was expected",
            rec.seq,
            state.seq + 1
        ));
    }
    if rec.prev != state.prev {
        return Err("its previous-hash does not match the record before".into());
    }
    let key = match rec.mac.as_deref() {
        None if state.keyed => {
            return Err("an unkeyed record after the chain became keyed".into());
        }
        None => None,
        Some(KEYED_MAC) => {
            Some(key.ok_or("a keyed record: verifying it needs the master key (pass --config)")?)
        }
        Some(_) => return Err("unknown chain MAC".into()),
    };
    if link(key, &rec.prev, rec.seq, &rec.time, &rec.event) != rec.hash {
        return Err("its content does not match its hash".into());
    }
    Ok(())
}

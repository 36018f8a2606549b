//! AES-GCM invocation limits: per-key counting of encryptions, persisted in the host KV.
//!
//! NIST SP 800-38D (section 8.3) allows at most 2^32 invocations of the authenticated
//! encryption function per key when IVs are random 96-bit values: beyond that, the
//! chance of two encryptions sharing an IV (which breaks GCM's confidentiality and
//! integrity) exceeds 2^-32. A source that encrypts with random IVs counts encryptions per
//! key with an [`InvocationCounter`]: it warns (logs) once a key passes
//! [`WARN_AT`] (2^31) and refuses encryption at [`LIMIT`] (2^32) with
//! [`KeySourceError::Disabled`] (XKS `InvalidStateException`: the key is in a state that
//! does not permit encryption; AWS KMS answers its caller `KMSInvalidStateException`),
//! whose text tells the operator to rotate. Decryption is never limited.
//!
//! # Persistence: reserved blocks
//! Writing the count on every encryption would put a KV transaction on the hot path, so
//! numbers are reserved in blocks of [`BLOCK`]: before a node uses numbers `n..n+BLOCK` it
//! persists "reserved up to `n+BLOCK`" at [`kv_key`] (compare-and-swap, so nodes sharing the
//! KV reserve disjoint blocks). A crash or restart therefore never under-counts; it may
//! over-count by the unused rest of reserved blocks (two at most per key, node and
//! restart, see below), which is harmless.
//!
//! KV entry `gcm-invocations/<key name>`: the reserved count in decimal ASCII digits. Writing it (e.g.
//! a test setting it near the limit, or an operator restoring it) takes effect for a node
//! when that node next reserves a block.
//!
//! # Without the store: reserved ahead
//! Once half of a key's block is used, the next block is reserved ahead (outside the
//! lock, at most once per [`AHEAD_RETRY`] while it fails), and taken when the current
//! one runs out. So when the host store cannot be reached (etcd down), a key that
//! encrypted on this node since it started keeps encrypting for at least half a
//! [`BLOCK`] more (32 768 encryptions; up to one and a half blocks, 98 304, once the
//! spare is reserved), after which encryption under it is refused with
//! [`KeySourceError::Unavailable`] until the store is back. A key that has not
//! encrypted on this node since it started needs the store for its first encryption.
//! Decryption never needs the counter. The price: a crash or restart may over-count by
//! the unused rest of two blocks per key and node (at most 2^17 of the 2^32).
//!
//! The count reported for a key ([`InvocationCounter::count`], shown by the plugins as
//! the key attribute [`COUNT_ATTRIBUTE`]) is the next invocation number this node
//! would use: exact on a single node while it runs; after a restart or on other nodes
//! it includes the unused rest of reserved blocks.

use std::{
    collections::HashMap,
    sync::{Mutex, PoisonError},
    time::{Duration, Instant},
};

use crate::{HostBox, KeySourceError, LogLevel};
use abi_stable::std_types::{ROption, RSlice};

/// Encryptions allowed per key with random 96-bit IVs (NIST SP 800-38D 8.3): 2^32.
pub const LIMIT: u64 = 1 << 32;
/// The count from which every reserved block logs a warning: 2^31.
pub const WARN_AT: u64 = 1 << 31;
/// Invocation numbers reserved (persisted) at a time.
pub const BLOCK: u64 = 65_536;
/// The KV prefix of the counters.
pub const KV_PREFIX: &str = "gcm-invocations/";
/// The key attribute under which sources report [`InvocationCounter::count`].
pub const COUNT_ATTRIBUTE: &str = "gcm_encryptions";
/// How often a reservation is retried when another node reserved at the same time.
const RESERVE_ATTEMPTS: usize = 16;
/// How long after a failed reservation ahead the next one is tried (encryption goes on
/// from the current block meanwhile).
pub const AHEAD_RETRY: Duration = Duration::from_secs(1);

/// The KV key of the counter of key `name`.
pub fn kv_key(name: &str) -> String {
    format!("{KV_PREFIX}{name}")
}

/// The persisted counter (the value at [`kv_key`]): how many invocation numbers have
/// been reserved, as decimal ASCII digits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reserved {
    /// Invocation numbers below this one may have been used.
    pub reserved: u64,
}

impl Reserved {
    /// The bytes stored in the KV.
    pub fn to_bytes(self) -> Vec<u8> {
        self.reserved.to_string().into_bytes()
    }

    /// Parses a stored counter.
    pub fn from_bytes(bytes: &[u8]) -> Result<Reserved, KeySourceError> {
        std::str::from_utf8(bytes)
            .ok()
            .and_then(|text| text.trim().parse().ok())
            .map(|reserved| Reserved { reserved })
            .ok_or_else(|| KeySourceError::internal("malformed AES-GCM invocation counter"))
    }
}

/// One key's block on this node: numbers `next..end` may be used.
#[derive(Debug, Clone, Copy, Default)]
struct Block {
    next: u64,
    end: u64,
    /// Whether the refusal at [`LIMIT`] was logged already (once per key and process).
    refused: bool,
    /// The next block, reserved ahead: `start..end`.
    spare: Option<(u64, u64)>,
    /// A reservation ahead is under way (by the thread that set this).
    reserving: bool,
    /// No reservation ahead before this (the last one failed).
    ahead_after: Option<Instant>,
}

impl Block {
    /// Whether to reserve the next block ahead now.
    fn wants_spare(&self) -> bool {
        self.spare.is_none()
            && !self.reserving
            && self.end < LIMIT
            && self.end.saturating_sub(self.next) <= BLOCK / 2
            && self.ahead_after.is_none_or(|t| Instant::now() >= t)
    }
}

/// Counts AES-GCM encryptions per key (see the module documentation).
#[derive(Debug, Default)]
pub struct InvocationCounter {
    blocks: Mutex<HashMap<String, Block>>,
}

impl InvocationCounter {
    /// A counter with no block reserved yet.
    pub fn new() -> InvocationCounter {
        InvocationCounter::default()
    }

    /// Takes the next invocation number of key `name`, reserving a block in the host KV
    /// when this node has none left. Refuses at [`LIMIT`] with
    /// [`KeySourceError::Disabled`] (and logs an error); logs a warning with each block
    /// reserved at or past [`WARN_AT`].
    pub fn take(&self, host: &HostBox, name: &str) -> Result<u64, KeySourceError> {
        let n = self.take_now(host, name)?;
        self.reserve_ahead(host, name);
        Ok(n)
    }

    /// Takes the next number, from the current block, the spare, or a block reserved now.
    fn take_now(&self, host: &HostBox, name: &str) -> Result<u64, KeySourceError> {
        let mut blocks = self.blocks.lock().unwrap_or_else(PoisonError::into_inner);
        let block = blocks.entry(name.to_string()).or_default();
        if block.next >= block.end {
            let fresh = match block.spare.take() {
                Some((next, end)) => Ok(Block {
                    next,
                    end,
                    ..Block::default()
                }),
                None => reserve(host, name),
            };
            *block = match fresh {
                Ok(fresh) => Block {
                    reserving: block.reserving,
                    ..fresh
                },
                Err(e) => {
                    if matches!(e, KeySourceError::Disabled { .. }) && !block.refused {
                        host.log(LogLevel::Error, e.to_string().as_str().into());
                        block.refused = true;
                    }
                    return Err(e);
                }
            };
            if block.end > WARN_AT {
                host.log(
                    LogLevel::Warn,
                    format!(
                        "key '{name}' has made {} of its {LIMIT} AES-GCM encryptions with \
                         random IVs (NIST SP 800-38D); rotate it to a new key before \
                         encryption is refused",
                        block.next
                    )
                    .as_str()
                    .into(),
                );
            }
        }
        let n = block.next;
        block.next += 1;
        Ok(n)
    }

    /// Reserves key `name`'s next block ahead when half of its block is used (see the
    /// module docs), without holding the lock during the store call.
    fn reserve_ahead(&self, host: &HostBox, name: &str) {
        {
            let mut blocks = self.blocks.lock().unwrap_or_else(PoisonError::into_inner);
            match blocks.get_mut(name) {
                Some(block) if block.wants_spare() => block.reserving = true,
                _ => return,
            }
        }
        let reserved = reserve(host, name);
        let mut blocks = self.blocks.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(block) = blocks.get_mut(name) else {
            return; // forgotten meanwhile
        };
        block.reserving = false;
        match reserved {
            Ok(spare) => block.spare = Some((spare.next, spare.end)),
            Err(_) => block.ahead_after = Some(Instant::now() + AHEAD_RETRY),
        }
    }

    /// Key `name`'s count: the next number this node would use, or the persisted
    /// reservation when it holds no block (0 when there is none).
    pub fn count(&self, host: &HostBox, name: &str) -> u64 {
        let blocks = self.blocks.lock().unwrap_or_else(PoisonError::into_inner);
        match blocks.get(name) {
            Some(block) if block.next < block.end => block.next,
            _ => read(host, name).map(|r| r.reserved).unwrap_or(0),
        }
    }

    /// Forgets key `name` (deleted, or about to be created anew): drops this node's
    /// block and deletes the persisted counter, so a new key of that name (new
    /// material) starts from zero.
    pub fn forget(&self, host: &HostBox, name: &str) -> Result<(), KeySourceError> {
        self.blocks
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(name);
        host.kv_delete(kv_key(name).as_str().into()).into_result()?;
        Ok(())
    }
}

/// The persisted counter of `name` (zero when absent).
fn read(host: &HostBox, name: &str) -> Result<Reserved, KeySourceError> {
    match host.kv_get(kv_key(name).as_str().into()).into_result()? {
        ROption::RSome(bytes) => Reserved::from_bytes(&bytes),
        ROption::RNone => Ok(Reserved { reserved: 0 }),
    }
}

/// Reserves the next block of `name` in the KV (compare-and-swap, retried).
fn reserve(host: &HostBox, name: &str) -> Result<Block, KeySourceError> {
    let key = kv_key(name);
    for _ in 0..RESERVE_ATTEMPTS {
        let old = host.kv_get(key.as_str().into()).into_result()?;
        let start = match &old {
            ROption::RSome(bytes) => Reserved::from_bytes(bytes)?.reserved,
            ROption::RNone => 0,
        };
        if start >= LIMIT {
            return Err(limit_reached(name));
        }
        let end = start.saturating_add(BLOCK).min(LIMIT);
        let new = Reserved { reserved: end }.to_bytes();
        let expected = match &old {
            ROption::RSome(bytes) => ROption::RSome(RSlice::from(bytes.as_slice())),
            ROption::RNone => ROption::RNone,
        };
        let swapped = host
            .kv_compare_and_swap(
                key.as_str().into(),
                expected,
                ROption::RSome(RSlice::from(new.as_slice())),
            )
            .into_result()?;
        if swapped {
            return Ok(Block {
                next: start,
                end,
                ..Block::default()
            });
        }
    }
    Err(KeySourceError::unavailable(format!(
        "cannot reserve AES-GCM invocations of key '{name}': the counter kept changing"
    )))
}

/// The refusal at [`LIMIT`]: XKS `InvalidStateException`, naming the key and what to do.
pub fn limit_reached(name: &str) -> KeySourceError {
    KeySourceError::Disabled {
        key: format!(
            "{name}' reached the AES-GCM limit of {LIMIT} encryptions with random IVs (NIST \
             SP 800-38D): rotate to a new key (decryption still works); encryption under '{name}"
        )
        .into(),
    }
}

#[cfg(test)]
mod tests;

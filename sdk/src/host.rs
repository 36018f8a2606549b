//! What the host offers a plugin: a durable key-value store and logging.

use abi_stable::{
    sabi_trait,
    std_types::{RBox, ROption, RResult, RSlice, RStr, RVec},
};

use crate::{KeySourceError, KvEntry, LogLevel};

/// Services the host offers a plugin: durable key-value storage and logging.
///
/// # What the key-value store guarantees
/// - **Namespaced**: every entry belongs to one key source (a plugin cannot see another
///   key source's entries, nor keyhold's own state).
/// - **Durable and atomic**: each call is one transaction of keyhold's store; a write
///   that returned `ROk` survives a crash, a failed call wrote nothing.
/// - **Shared and ordered**: every keyhold node serving the same store sees the same
///   entries; writes to one key are applied in one order everywhere, and a read returns
///   the latest committed value. [`Host::kv_create`] and [`Host::kv_compare_and_swap`]
///   succeed for exactly one of several writers racing on the same key, whichever node
///   they run on; [`Host::kv_put`] and [`Host::kv_delete`] are last-writer-wins. So a
///   read-modify-write (enable a key, mark it non-deletable, ...) reads the entry, then
///   writes with [`Host::kv_compare_and_swap`] against what it read, and re-reads and
///   retries (or reports a conflict) when that returns `false`.
/// - **Not secret**: entries are stored as given (encrypted at rest by keyhold, but
///   readable by its operators and backups): never put key material there in the clear.
/// - **Small**: meant for records of a few kilobytes (key attributes, wrapped keys,
///   flags), not bulk data.
///
/// Methods block; call them from the thread the host called you on (or any thread of
/// your own): never from the host's async runtime.
#[sabi_trait]
pub trait Host: Send + Sync {
    /// Reads one entry.
    fn kv_get(&self, key: RStr<'_>) -> RResult<ROption<RVec<u8>>, KeySourceError>;

    /// Writes (creates or replaces) one entry, whatever it held: last writer wins.
    fn kv_put(&self, key: RStr<'_>, value: RSlice<'_, u8>) -> RResult<(), KeySourceError>;

    /// Writes one entry only when the key is absent; returns whether it was written.
    /// Use it to create objects without racing another node.
    fn kv_create(&self, key: RStr<'_>, value: RSlice<'_, u8>) -> RResult<bool, KeySourceError>;

    /// Compare-and-swap: when the entry currently holds exactly `expected` (`RNone`:
    /// the key is absent), sets it to `new` (`RNone`: deletes it) and returns `true`;
    /// otherwise writes nothing and returns `false`. Atomic across every node.
    ///
    /// `expected == new` writes nothing and returns whether the entry holds `expected`.
    fn kv_compare_and_swap(
        &self,
        key: RStr<'_>,
        expected: ROption<RSlice<'_, u8>>,
        new: ROption<RSlice<'_, u8>>,
    ) -> RResult<bool, KeySourceError>;

    /// Deletes one entry, whatever it held; returns whether it existed.
    fn kv_delete(&self, key: RStr<'_>) -> RResult<bool, KeySourceError>;

    /// Every entry whose key starts with `prefix`, in key order, from one consistent
    /// snapshot.
    fn kv_list(&self, prefix: RStr<'_>) -> RResult<RVec<KvEntry>, KeySourceError>;

    /// Logs a message through the host's logger (a plugin's own `tracing` or `log`
    /// events would otherwise be lost: a cdylib has its own copy of their globals).
    /// Never pass key material or plaintext.
    #[sabi(last_prefix_field)]
    fn log(&self, level: LogLevel, message: RStr<'_>);
}

/// An owned, FFI-safe [`Host`] object, handed to a plugin's `open`.
pub type HostBox = Host_TO<'static, RBox<()>>;

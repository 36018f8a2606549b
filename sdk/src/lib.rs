//! # keyhold-sdk: the stable key-source plugin interface
//!
//! keyhold serves AWS KMS external key stores. The keys themselves live in a *key
//! source*: a shared library (a "plugin") that keyhold loads at run time, one loaded
//! instance per configured key source. This crate is the whole contract between the
//! keyhold server (the *host*) and such a plugin. It is built on
//! [`abi_stable`](https://docs.rs/abi_stable), so a plugin compiled by a third party,
//! with another Rust compiler, still loads; an incompatible one is refused at load time
//! with a message that says why.
//!
//! ## The pieces
//! - [`PluginMod`] / [`PluginModRef`]: the root module every plugin library exports:
//!   the [`ABI_VERSION`] it was built for, its name, vendor and model, and `open`.
//! - [`KeySource`] (as the FFI-safe object [`KeySourceBox`]): what an opened key source
//!   can do: describe itself, report health, list/get/create/delete keys, enable and
//!   disable them, validate a health-check key, encrypt and decrypt with AES-256-GCM.
//! - [`Host`] (as [`HostBox`]): what the host offers a plugin: a namespaced, durable,
//!   cluster-wide key-value store for the plugin's own state, and logging.
//! - [`KeySourceError`]: the one error enum; every variant maps onto one XKS error
//!   ([`KeySourceError::kind`]).
//! - [`export_plugin!`]: the export helper. Plugin authors implement the plain Rust
//!   trait [`Plugin`] (and [`KeySourceImpl`] for their key source); the macro exports the
//!   root module and wraps every entry point in [`std::panic::catch_unwind`], so a panic
//!   inside a plugin becomes [`KeySourceError::Internal`] and never crosses the boundary.
//! - [`conformance`]: a test kit any plugin author runs against their loaded key source.
//! - [`testing::MemoryHost`]: an in-memory [`Host`] for plugin unit tests.
//!
//! ## Write your own plugin
//! 1. Create a library crate with `crate-type = ["cdylib"]` that depends on
//!    `keyhold-sdk` and `abi_stable` (the export macro expands to `abi_stable` paths).
//! 2. Implement [`KeySourceImpl`] for your key source type. Methods are synchronous; the
//!    host calls them from a bounded pool of blocking threads with a deadline, so they
//!    may block on I/O (an HSM, a network KMS) but should honour their own timeouts.
//!    Generate IVs inside the source (12 bytes, from a CSPRNG) and never log key
//!    material or plaintext.
//! 3. Implement [`Plugin`]: a name (the host finds `lib<name>.so`... by configuration),
//!    vendor and model strings, and `open(config, host)`, which parses the key source's
//!    own configuration (JSON text) and returns your key source.
//! 4. Invoke `keyhold_sdk::export_plugin!(MyPlugin);` once at the crate root.
//! 5. Run [`conformance::run`] against your key source (directly, and loaded through
//!    [`PluginModRef`] as the host would) in your tests.
//!
//! ```ignore
//! use keyhold_sdk::*;
//!
//! struct MyPlugin;
//! impl Plugin for MyPlugin {
//!     const NAME: &'static str = "my-hsm";
//!     const VENDOR: &'static str = "Example Corp";
//!     const MODEL: &'static str = "Example HSM plugin 1.0";
//!     type Source = MySource;
//!     fn open(config: &str, host: HostBox) -> Result<MySource, KeySourceError> {
//!         MySource::connect(config, host)
//!     }
//! }
//! keyhold_sdk::export_plugin!(MyPlugin);
//! ```
//!
//! ## How the ABI evolves
//! Two checks guard every load. `abi_stable` compares the layout of every type that
//! crosses the boundary (and refuses a library whose types differ), and the host compares
//! [`ABI_VERSION`] (and refuses a library built for another major version of this
//! interface). Additions that keep old plugins loadable are made as *prefix-type*
//! extensions: new root-module fields after `#[sabi(last_prefix_field)]` and new trait
//! methods after the last prefix method, which the host checks for before calling.
//! Anything else bumps [`ABI_VERSION`].
#![allow(non_local_definitions)] // emitted by #[sabi_trait]'s expansion
#![warn(missing_docs)]

pub mod conformance;
mod error;
mod export;
pub mod testing;
mod types;

pub use abi_stable;
pub use error::{KeySourceError, KeySourceErrorKind};
pub use export::{__open, GuardedSource, Plugin, guard};
pub use types::*;

use abi_stable::{
    StableAbi, declare_root_module_statics,
    library::RootModule,
    package_version_strings, sabi_trait,
    sabi_types::VersionStrings,
    std_types::{RBox, ROption, RResult, RSlice, RStr, RString, RVec},
};

/// The version of this plugin interface. A host refuses a plugin built for another
/// version, naming both. It changes only when the interface changes incompatibly.
pub const ABI_VERSION: u32 = 1;

/// The root module a plugin library exports (through [`export_plugin!`]).
///
/// It is a prefix type: later interface versions may add fields after `open`, and a
/// host reads those only when the library has them.
#[repr(C)]
#[derive(StableAbi)]
#[sabi(kind(Prefix(prefix_ref = PluginModRef)))]
#[sabi(missing_field(panic))]
pub struct PluginMod {
    /// The [`ABI_VERSION`] the plugin was built against.
    pub abi_version: u32,
    /// The plugin's name, e.g. `ctm`. Shown in logs and health details.
    pub name: extern "C" fn() -> RString,
    /// The plugin's vendor, reported as `ekmVendor` in XKS health responses.
    pub vendor: extern "C" fn() -> RString,
    /// The plugin's model and version, e.g. `keyhold ctm software keystore 0.1.0`.
    pub model: extern "C" fn() -> RString,
    /// Opens one key source from its configuration (the key source's own section,
    /// serialized as JSON text) and the host's services. Called once per configured key
    /// source; several key sources may be opened from one library.
    #[sabi(last_prefix_field)]
    pub open:
        extern "C" fn(config: RStr<'_>, host: HostBox) -> RResult<KeySourceBox, KeySourceError>,
}

impl RootModule for PluginModRef {
    declare_root_module_statics! {PluginModRef}
    const BASE_NAME: &'static str = "keyhold_plugin";
    const NAME: &'static str = "keyhold_plugin";
    const VERSION_STRINGS: VersionStrings = package_version_strings!();
}

/// An opened key source, as seen across the plugin boundary.
///
/// Plugin authors do not implement this trait directly: implement [`KeySourceImpl`] and
/// let [`export_plugin!`] (through [`guard`]) wrap it, which keeps panics inside the
/// plugin. Hosts hold it as [`KeySourceBox`].
///
/// Keys are named by their *source key name* (a label): never by a handle that could
/// change between processes.
#[sabi_trait]
pub trait KeySource: Send + Sync {
    /// Who serves this key source (vendor and model), for XKS health responses.
    fn info(&self) -> SourceInfo;

    /// The external key managers behind this source (1..=10 entries) and their health,
    /// reported as `ekmFleetDetails`. A source that cannot reach its key manager reports
    /// [`HealthStatus::Unavailable`] rather than failing.
    fn health(&self) -> RVec<EkmNode>;

    /// Every key of this source.
    fn list_keys(&self) -> RResult<RVec<KeyInfo>, KeySourceError>;

    /// One key by name; [`KeySourceError::NotFound`] when there is none.
    fn get_key(&self, name: RStr<'_>) -> RResult<KeyInfo, KeySourceError>;

    /// Generates a new AES-256 key inside the source. The key material never leaves it.
    /// [`KeySourceError::AlreadyExists`] when the name is taken.
    fn create_key(&self, spec: NewKey) -> RResult<KeyInfo, KeySourceError>;

    /// Deletes a key; [`KeySourceError::InvalidKey`] when the key is not deletable.
    fn delete_key(&self, name: RStr<'_>) -> RResult<(), KeySourceError>;

    /// Enables or disables a key for cryptographic use, leaving every other attribute
    /// as it is, so that re-enabling restores exactly the previous behaviour.
    fn set_enabled(&self, name: RStr<'_>, enabled: bool) -> RResult<KeyInfo, KeySourceError>;

    /// Checks that a key may serve as a key store's health-check key under this
    /// source's rules. Refuses with [`KeySourceError::InvalidKey`], whose `problems`
    /// name every attribute that is wrong.
    fn validate_health_check_key(&self, name: RStr<'_>) -> RResult<(), KeySourceError>;

    /// AES-256-GCM encryption with a fresh IV generated inside the source. The
    /// ciphertext has the plaintext's length; the tag is 16 bytes.
    fn encrypt(
        &self,
        name: RStr<'_>,
        plaintext: RSlice<'_, u8>,
        aad: RSlice<'_, u8>,
    ) -> RResult<Encrypted, KeySourceError>;

    /// AES-256-GCM decryption. A tag that does not verify (wrong key, AAD, IV,
    /// ciphertext or tag) is [`KeySourceError::InvalidCiphertext`], whatever the key
    /// manager calls it. The host zeroizes the returned plaintext after use.
    #[sabi(last_prefix_field)]
    fn decrypt(&self, name: RStr<'_>, input: DecryptInput<'_>)
    -> RResult<RVec<u8>, KeySourceError>;
}

/// An owned, FFI-safe [`KeySource`] object: what `open` returns and the host keeps.
pub type KeySourceBox = KeySource_TO<'static, RBox<()>>;

/// Services the host offers a plugin: durable key-value storage and logging.
///
/// The key-value store is namespaced to the key source (a plugin cannot see another key
/// source's entries), durable (a write that returned `ROk` survives a crash) and shared
/// by every node of a keyhold cluster. Methods block; call them from the thread the host
/// called you on.
#[sabi_trait]
pub trait Host: Send + Sync {
    /// Reads one entry.
    fn kv_get(&self, key: RStr<'_>) -> RResult<ROption<RVec<u8>>, KeySourceError>;

    /// Writes (creates or replaces) one entry.
    fn kv_put(&self, key: RStr<'_>, value: RSlice<'_, u8>) -> RResult<(), KeySourceError>;

    /// Writes one entry only when the key is absent; returns whether it was written.
    /// Use it to create objects without racing another node.
    fn kv_create(&self, key: RStr<'_>, value: RSlice<'_, u8>) -> RResult<bool, KeySourceError>;

    /// Deletes one entry; returns whether it existed.
    fn kv_delete(&self, key: RStr<'_>) -> RResult<bool, KeySourceError>;

    /// Every entry whose key starts with `prefix`, in key order.
    fn kv_list(&self, prefix: RStr<'_>) -> RResult<RVec<KvEntry>, KeySourceError>;

    /// Logs a message through the host's logger (a plugin's own `tracing` or `log`
    /// events would otherwise be lost: a cdylib has its own copy of their globals).
    /// Never pass key material or plaintext.
    #[sabi(last_prefix_field)]
    fn log(&self, level: LogLevel, message: RStr<'_>);
}

/// An owned, FFI-safe [`Host`] object, handed to a plugin's `open`.
pub type HostBox = Host_TO<'static, RBox<()>>;

/// The plain Rust trait a plugin author implements for a key source.
///
/// Same operations as [`KeySource`], with ordinary Rust types. [`guard`] turns it
/// into a [`KeySourceBox`] whose every call is protected by `catch_unwind`.
pub trait KeySourceImpl: Send + Sync + 'static {
    /// See [`KeySource::info`].
    fn info(&self) -> SourceInfo;
    /// See [`KeySource::health`].
    fn health(&self) -> Vec<EkmNode>;
    /// See [`KeySource::list_keys`].
    fn list_keys(&self) -> Result<Vec<KeyInfo>, KeySourceError>;
    /// See [`KeySource::get_key`].
    fn get_key(&self, name: &str) -> Result<KeyInfo, KeySourceError>;
    /// See [`KeySource::create_key`].
    fn create_key(&self, spec: NewKey) -> Result<KeyInfo, KeySourceError>;
    /// See [`KeySource::delete_key`].
    fn delete_key(&self, name: &str) -> Result<(), KeySourceError>;
    /// See [`KeySource::set_enabled`].
    fn set_enabled(&self, name: &str, enabled: bool) -> Result<KeyInfo, KeySourceError>;
    /// See [`KeySource::validate_health_check_key`].
    fn validate_health_check_key(&self, name: &str) -> Result<(), KeySourceError>;
    /// See [`KeySource::encrypt`].
    fn encrypt(
        &self,
        name: &str,
        plaintext: &[u8],
        aad: &[u8],
    ) -> Result<Encrypted, KeySourceError>;
    /// See [`KeySource::decrypt`]. Return the plaintext in a buffer the caller zeroizes.
    fn decrypt(&self, name: &str, input: DecryptInput<'_>) -> Result<Vec<u8>, KeySourceError>;
}

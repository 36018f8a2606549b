//! # keyhold-sdk: the stable key-source plugin interface
//!
//! keyhold serves AWS KMS external key stores. The keys themselves live in a *key
//! source*: a shared library (a "plugin") that keyhold loads at run time, one loaded
//! instance per configured key source. This crate is the whole contract between the
//! keyhold server (the *host*) and such a plugin. It is built on
//! [`abi_stable`](https://docs.rs/abi_stable), so a plugin compiled by a third party,
//! with another Rust compiler, still loads; an incompatible one is refused at load time
//! with one line that says why.
//!
//! `sdk/README.md` walks from `cargo new` to a loaded, conformance-passing plugin;
//! `plugins/template` in the keyhold repository is a complete plugin to copy.
//!
//! ## The pieces
//! - [`Plugin`] and [`export_plugin!`]: what a plugin author writes. The macro exports
//!   the root module [`PluginMod`] and wraps every entry point in
//!   [`std::panic::catch_unwind`], so a panic inside a plugin becomes
//!   [`KeySourceError::Internal`] and never crosses the boundary.
//! - [`KeySourceImpl`]: the plain Rust trait a key source implements. Its FFI-safe twin
//!   [`KeySource`] (held as [`KeySourceBox`]) documents **the rules the host and the
//!   conformance kit expect**: key names, the order of checks, IV lengths, inputs a
//!   source refuses itself, where key material may live, caching.
//! - [`Host`] (as [`HostBox`]): what the host offers a plugin: a namespaced, durable
//!   key-value store with create-if-absent and compare-and-swap, and logging.
//! - [`KeySourceError`]: the one error enum; every variant maps onto one XKS error
//!   ([`KeySourceError::kind`]).
//! - [`conformance`]: the test kit, run on an opened key source ([`conformance::run`]) or
//!   on a built library loaded exactly as the host loads it
//!   ([`conformance::run_library`]; `keyhold plugin-check` runs the same).
//! - [`library`]: how the host loads a plugin library and checks its versions.
//! - [`testing::MemoryHost`]: an in-memory [`Host`] for plugin unit tests.
//! - [`invocations::InvocationCounter`]: per-key AES-GCM encryption counting against
//!   the 2^32 limit for random IVs, persisted in the host KV in reserved blocks (a
//!   helper on the plugin's side of the boundary; no ABI change).
//!
//! ## A plugin in one page
//! A cdylib crate depending on `keyhold-sdk` only (the macro reaches `abi_stable`
//! through this crate's re-export):
//!
//! ```
//! use keyhold_sdk::{
//!     DecryptInput, EkmNode, Encrypted, HealthStatus, HostBox, KeyInfo, KeySourceError,
//!     KeySourceImpl, NewKey, Plugin, SourceInfo,
//! };
//!
//! /// A key source that has no keys and cannot create any.
//! struct EmptySource;
//!
//! impl KeySourceImpl for EmptySource {
//!     fn info(&self) -> SourceInfo {
//!         SourceInfo { vendor: "Example Corp".into(), model: "empty 1.0".into() }
//!     }
//!     fn health(&self) -> Vec<EkmNode> {
//!         vec![EkmNode { id: "empty-0".into(), model: "empty".into(), status: HealthStatus::Active }]
//!     }
//!     fn list_keys(&self) -> Result<Vec<KeyInfo>, KeySourceError> {
//!         Ok(Vec::new())
//!     }
//!     fn get_key(&self, name: &str) -> Result<KeyInfo, KeySourceError> {
//!         Err(KeySourceError::not_found(name))
//!     }
//!     fn create_key(&self, _spec: NewKey) -> Result<KeyInfo, KeySourceError> {
//!         Err(KeySourceError::Unsupported { reason: "this source is read-only".into() })
//!     }
//!     fn delete_key(&self, name: &str) -> Result<(), KeySourceError> {
//!         Err(KeySourceError::not_found(name))
//!     }
//!     fn set_enabled(&self, name: &str, _enabled: bool) -> Result<KeyInfo, KeySourceError> {
//!         Err(KeySourceError::not_found(name))
//!     }
//!     fn validate_health_check_key(&self, name: &str) -> Result<(), KeySourceError> {
//!         Err(KeySourceError::not_found(name))
//!     }
//!     fn encrypt(&self, name: &str, _pt: &[u8], _aad: &[u8]) -> Result<Encrypted, KeySourceError> {
//!         Err(KeySourceError::not_found(name))
//!     }
//!     fn decrypt(&self, name: &str, _input: DecryptInput<'_>) -> Result<Vec<u8>, KeySourceError> {
//!         Err(KeySourceError::not_found(name))
//!     }
//! }
//!
//! struct EmptyPlugin;
//!
//! impl Plugin for EmptyPlugin {
//!     const NAME: &'static str = "empty";
//!     const VENDOR: &'static str = "Example Corp";
//!     const MODEL: &'static str = "Example empty key source 1.0";
//!     type Source = EmptySource;
//!     fn open(_config: &str, _host: HostBox) -> Result<EmptySource, KeySourceError> {
//!         Ok(EmptySource)
//!     }
//! }
//!
//! keyhold_sdk::export_plugin!(EmptyPlugin);
//!
//! // What the host sees, without building the library: the same guarded source.
//! let source = keyhold_sdk::guard(EmptySource);
//! assert_eq!(source.info().vendor.as_str(), "Example Corp");
//! ```
//!
//! ## Library file name, `plugin =` and [`Plugin::NAME`]
//! A key source is declared in keyhold's configuration as
//! `[sources.<source name>]` with `plugin = "<plugin>"`. The host loads
//! **`libplugin_<plugin>.so`** from the plugin directory (`[plugins] dir`, default: the
//! directory of the `keyhold` executable), with every `-` of `<plugin>` written `_`:
//! `plugin = "acme-hsm"` loads `libplugin_acme_hsm.so`. A `library = "/path/to/file.so"`
//! line overrides the lookup. Cargo names the cdylib of a package called
//! `plugin-acme-hsm` exactly `libplugin_acme_hsm.so`, so name your package
//! `plugin-<plugin>`. [`Plugin::NAME`] is the plugin's own name, shown in logs and the
//! admin API; it plays no part in finding the file, but should equal `<plugin>`.
//!
//! ## Versions and compatibility
//! This crate's version is the version of the plugin interface, independent of the
//! keyhold server's version. What is checked when the host loads a library, in order:
//!
//! 1. **The SDK version** the library was built against (the `keyhold-sdk` package
//!    version, recorded in the library's root module header) against the host's
//!    ([`SDK_VERSION`]). keyhold refuses another major version (for `0.y` another
//!    minor) before anything else, in one line: *plugin libplugin_foo.so was built
//!    against keyhold-sdk 0.2.0; this server provides keyhold-sdk 1.1.0 (compatible:
//!    1.x)*. This is `abi_stable`'s own rule too
//!    (`abi_stable::library::LibHeader::init_root_module`: same major; for `0.y`, the
//!    library's minor no lower than the host's; and, in the layout check, every type's
//!    package version "loosely compatible" — same major, or same minor for `0.y`).
//! 2. **The layout** of every type that crosses the boundary, compared by `abi_stable`
//!    field by field. Prefix types (the root module [`PluginMod`], the [`KeySource`] and
//!    [`Host`] vtables) may have *more* fields in the library than in the host, never
//!    fewer (`abi_stable` reports `FieldCountMismatch`).
//! 3. **[`ABI_VERSION`]** (the SDK's major version), declared by the root module.
//!
//! So, for keyhold-sdk `1.y.z`:
//! - a plugin built against any `1.x` SDK loads into a host built with any `1.y` SDK,
//!   older or newer, as long as the boundary types are unchanged — which is therefore
//!   the rule for every `1.y` release: **no field, variant or method is added to,
//!   removed from or changed in a type that crosses the boundary**. Minor releases add
//!   what stays on one side (helpers, conformance checks, documentation, test tools).
//!   A test (`tests/tests/plugins.rs`) loads a plugin built against a frozen copy of
//!   the 1.0.0 boundary (`tests/fixtures/sdk-1.0`) into the current host.
//! - a new [`KeySource`] or [`Host`] method is a new major version (2.0.0,
//!   [`ABI_VERSION`] 2): added after the `#[sabi(last_prefix_field)]` method with a
//!   default body, it would let a 2.0 plugin run on a 1.x host (the missing method
//!   falls back to its default), but `abi_stable` refuses a plugin whose vtable has
//!   fewer methods than the host's, so 1.x plugins would no longer load.
// No hand-written unsafe code. `#[sabi_trait]` expands into unsafe blocks and impls
// spanned on the trait's own tokens, so the two modules holding such traits allow it.
#![deny(unsafe_code)]
#![allow(non_local_definitions)] // emitted by #[sabi_trait]'s expansion
#![warn(missing_docs)]

mod abi;
pub mod conformance;
mod error;
mod export;
#[allow(unsafe_code)] // #[sabi_trait] expansion only
mod host;
pub mod invocations;
pub mod library;
#[allow(unsafe_code)] // #[sabi_trait] expansion only
mod source;
pub mod testing;
mod types;

pub use abi::{ABI_VERSION, PluginMod, PluginModRef, SDK_VERSION};
pub use abi_stable;
pub use error::{KeySourceError, KeySourceErrorKind};
pub use export::{__open, __root_module, GuardedSource, Plugin, guard};
pub use host::*;
pub use source::*;
pub use types::*;

//! The root module every plugin library exports, and the versions the host checks.

use abi_stable::{
    StableAbi, declare_root_module_statics,
    library::RootModule,
    package_version_strings,
    sabi_types::VersionStrings,
    std_types::{RResult, RStr, RString},
};

use crate::{HostBox, KeySourceBox, KeySourceError};

/// The version of this SDK (the `keyhold-sdk` package version): the version of the plugin
/// interface, independent of the keyhold server's version. See the crate documentation,
/// "Versions and compatibility".
pub const SDK_VERSION: &str = env!("CARGO_PKG_VERSION");

/// The major version of the plugin interface: the SDK's major version. A host refuses a
/// plugin whose root module declares another one, naming both.
pub const ABI_VERSION: u32 = 1;

/// The root module a plugin library exports (through [`crate::export_plugin!`]).
///
/// A prefix type, like the two vtables: fields after `open` would be a new major
/// version (see the crate documentation, "Versions and compatibility").
#[repr(C)]
#[derive(StableAbi)]
#[sabi(kind(Prefix(prefix_ref = PluginModRef)))]
#[sabi(missing_field(panic))]
pub struct PluginMod {
    /// The [`ABI_VERSION`] the plugin was built against.
    pub abi_version: u32,
    /// The plugin's own name ([`crate::Plugin::NAME`]), e.g. `ctm`. Shown in logs and the
    /// admin API; the host finds the library by the configured `plugin =` instead.
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
    // The keyhold-sdk package version: what abi_stable compares at load.
    const VERSION_STRINGS: VersionStrings = package_version_strings!();
}

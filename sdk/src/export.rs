//! The export helper: turns a plain Rust [`Plugin`] into a root module whose every
//! entry point catches panics.

use std::panic::{AssertUnwindSafe, catch_unwind};

use abi_stable::{
    prefix_type::PrefixTypeTrait,
    sabi_trait::TD_Opaque,
    std_types::{RResult, RSlice, RStr, RString, RVec},
};

use crate::{
    ABI_VERSION, DecryptInput, EkmNode, Encrypted, HealthStatus, HostBox, KeyInfo, KeySource,
    KeySource_TO, KeySourceBox, KeySourceError, KeySourceImpl, NewKey, PluginMod, PluginModRef,
    SourceInfo,
};

/// A key-source plugin, as its author writes it. [`crate::export_plugin!`] exports it.
pub trait Plugin: 'static {
    /// The plugin's own name, e.g. `ctm`: shown in logs and the admin API. Use the
    /// `<plugin>` of the library's file name `libplugin_<plugin>.so` (see the crate
    /// documentation: the host finds the library by the configured `plugin =`, not by
    /// this name).
    const NAME: &'static str;
    /// Vendor of the key manager (XKS `ekmVendor`).
    const VENDOR: &'static str;
    /// Model and version of the plugin, the version last
    /// (`concat!("Acme HSM connector ", env!("CARGO_PKG_VERSION"))`): the host shows
    /// that last word as the plugin's version (`keyhold source list`, the admin API's
    /// `plugin_version`), next to the SDK version the library was built against.
    const MODEL: &'static str;
    /// The key source type `open` returns.
    type Source: KeySourceImpl;
    /// Opens one key source. `config` is the key source's own configuration section as
    /// JSON text (`{}` when it has none); `host` gives durable storage and logging.
    fn open(config: &str, host: HostBox) -> Result<Self::Source, KeySourceError>;
}

/// Runs `f`, turning a panic into [`KeySourceError::Internal`] naming `what`.
fn catch<T>(
    what: &str,
    f: impl FnOnce() -> Result<T, KeySourceError>,
) -> Result<T, KeySourceError> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(result) => result,
        Err(payload) => {
            let detail = payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "non-string panic payload".to_string());
            Err(KeySourceError::internal(format!(
                "plugin panicked in {what}: {detail}"
            )))
        }
    }
}

/// A [`KeySourceImpl`] whose every method runs inside `catch_unwind`; the
/// implementation of the FFI-facing [`KeySource`] trait. Build it with [`guard`].
pub struct GuardedSource<S>(pub S);

impl<S: KeySourceImpl> KeySource for GuardedSource<S> {
    fn info(&self) -> SourceInfo {
        catch("info", || Ok(self.0.info())).unwrap_or_else(|e| SourceInfo {
            vendor: "unknown".into(),
            model: e.to_string().into(),
        })
    }

    fn health(&self) -> RVec<EkmNode> {
        match catch("health", || Ok(self.0.health())) {
            Ok(nodes) => nodes.into(),
            Err(e) => vec![EkmNode {
                id: "plugin".into(),
                model: e.to_string().into(),
                status: HealthStatus::Unavailable,
            }]
            .into(),
        }
    }

    fn list_keys(&self) -> RResult<RVec<KeyInfo>, KeySourceError> {
        catch("list_keys", || self.0.list_keys().map(RVec::from)).into()
    }

    fn get_key(&self, name: RStr<'_>) -> RResult<KeyInfo, KeySourceError> {
        catch("get_key", || self.0.get_key(name.as_str())).into()
    }

    fn create_key(&self, spec: NewKey) -> RResult<KeyInfo, KeySourceError> {
        catch("create_key", || self.0.create_key(spec)).into()
    }

    fn delete_key(&self, name: RStr<'_>) -> RResult<(), KeySourceError> {
        catch("delete_key", || self.0.delete_key(name.as_str())).into()
    }

    fn set_enabled(&self, name: RStr<'_>, enabled: bool) -> RResult<KeyInfo, KeySourceError> {
        catch("set_enabled", || self.0.set_enabled(name.as_str(), enabled)).into()
    }

    fn validate_health_check_key(&self, name: RStr<'_>) -> RResult<(), KeySourceError> {
        catch("validate_health_check_key", || {
            self.0.validate_health_check_key(name.as_str())
        })
        .into()
    }

    fn encrypt(
        &self,
        name: RStr<'_>,
        plaintext: RSlice<'_, u8>,
        aad: RSlice<'_, u8>,
    ) -> RResult<Encrypted, KeySourceError> {
        catch("encrypt", || {
            self.0
                .encrypt(name.as_str(), plaintext.as_slice(), aad.as_slice())
        })
        .into()
    }

    fn decrypt(
        &self,
        name: RStr<'_>,
        input: DecryptInput<'_>,
    ) -> RResult<RVec<u8>, KeySourceError> {
        catch("decrypt", || {
            self.0.decrypt(name.as_str(), input).map(RVec::from)
        })
        .into()
    }
}

/// Wraps a key source so that no panic can cross the plugin boundary, and boxes it as
/// the FFI-safe [`KeySourceBox`].
pub fn guard<S: KeySourceImpl>(source: S) -> KeySourceBox {
    KeySource_TO::from_value(GuardedSource(source), TD_Opaque)
}

/// Implementation detail of [`crate::export_plugin!`]: opens a key source with panics
/// caught.
#[doc(hidden)]
pub fn __open<P: Plugin>(config: RStr<'_>, host: HostBox) -> RResult<KeySourceBox, KeySourceError> {
    catch("open", || P::open(config.as_str(), host).map(guard)).into()
}

extern "C" fn plugin_name<P: Plugin>() -> RString {
    P::NAME.into()
}

extern "C" fn plugin_vendor<P: Plugin>() -> RString {
    P::VENDOR.into()
}

extern "C" fn plugin_model<P: Plugin>() -> RString {
    P::MODEL.into()
}

extern "C" fn plugin_open<P: Plugin>(
    config: RStr<'_>,
    host: HostBox,
) -> RResult<KeySourceBox, KeySourceError> {
    __open::<P>(config, host)
}

/// Implementation detail of [`crate::export_plugin!`]: the root module of plugin `P`.
#[doc(hidden)]
pub fn __root_module<P: Plugin>() -> PluginModRef {
    PluginMod {
        abi_version: ABI_VERSION,
        name: plugin_name::<P>,
        vendor: plugin_vendor::<P>,
        model: plugin_model::<P>,
        open: plugin_open::<P>,
    }
    .leak_into_prefix()
}

/// Exports a [`Plugin`] as this library's keyhold root module.
///
/// Invoke once, at the crate root of a `cdylib`:
/// `keyhold_sdk::export_plugin!(MyPlugin);` (a complete example is in the crate
/// documentation). The plugin crate needs no dependency but `keyhold-sdk`: the expansion
/// reaches `abi_stable` through [`crate::abi_stable`].
///
/// It defines the one exported symbol `abi_stable` looks for (its `LibHeader` static,
/// what `#[abi_stable::export_root_module]` would emit), whose constructor builds the
/// root module from [`Plugin`] and catches panics.
#[macro_export]
macro_rules! export_plugin {
    ($plugin:ty) => {
        /// The `abi_stable` library header of this keyhold plugin: the one symbol the
        /// host looks up (named as `abi_stable::library::ROOT_MODULE_LOADER_NAME`).
        #[doc(hidden)]
        #[unsafe(export_name = "_1as_0lib_1header_0root_bmodule_bloader")]
        pub static KEYHOLD_PLUGIN_LIB_HEADER: $crate::abi_stable::library::LibHeader = {
            extern "C" fn erased_root_module() -> $crate::abi_stable::library::RootModuleResult {
                $crate::abi_stable::library::__call_root_module_loader(
                    $crate::__root_module::<$plugin>,
                )
            }
            // SAFETY: `erased_root_module` returns the `PrefixRef<ErasedPrefix>` that
            // `__call_root_module_loader` erased from a `PluginModRef`, as
            // `from_constructor::<PluginModRef>` requires (the same code
            // `#[export_root_module]` generates).
            unsafe {
                $crate::abi_stable::library::LibHeader::from_constructor::<$crate::PluginModRef>(
                    erased_root_module,
                    $crate::abi_stable::library::CheckTypeLayout::Yes,
                )
            }
        };
    };
}

#[cfg(test)]
mod tests;

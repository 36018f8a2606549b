//! # plugin-template: a minimal keyhold key source to start from
//!
//! A complete plugin in two files: this one declares the [`Plugin`] (its name, vendor,
//! model and `open`) and exports it; [`source`] is the key source itself. Its AES-256
//! keys live in this process's memory only, so they are gone when keyhold restarts:
//! a real plugin keeps them in its key manager (an HSM) and calls it from each method.
//!
//! Configuration: none (`{}`); anything else is refused.
//!
//! Loaded by keyhold with
//! ```toml
//! [sources.demo]
//! plugin = "template"   # loads libplugin_template.so from the plugin directory
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod source;

use keyhold_sdk::{HostBox, KeySourceError, Plugin};

pub use source::TemplateSource;

/// The model reported in XKS health responses.
pub const MODEL: &str = concat!("keyhold template key source ", env!("CARGO_PKG_VERSION"));

/// The template plugin.
pub struct TemplatePlugin;

impl Plugin for TemplatePlugin {
    const NAME: &'static str = "template";
    const VENDOR: &'static str = "keyhold";
    const MODEL: &'static str = MODEL;
    type Source = TemplateSource;

    fn open(config: &str, host: HostBox) -> Result<TemplateSource, KeySourceError> {
        TemplateSource::open(config, host)
    }
}

keyhold_sdk::export_plugin!(TemplatePlugin);

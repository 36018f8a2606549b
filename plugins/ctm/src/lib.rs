//! # plugin-ctm: keyhold's software AES-256 keystore
//!
//! A key source whose AES-256 keys are generated in this plugin (OS CSPRNG) and stored
//! only wrapped (AES-256-GCM) under a master key, in the host's durable, cluster-wide
//! key-value store (one JSON record per key at `keys/<name>`, see [`record`]). Loaded
//! keys are cached unwrapped, in memory that is wiped on drop.
//!
//! Configuration (JSON, unknown fields refused):
//! - `{"master_key_file": "/path"}`: 32 raw bytes, or base64 text of 32 bytes;
//! - `{"master_key_env": "VAR"}`: base64 of 32 bytes in an environment variable;
//! - development only: `{"master_key_file": "/path", "generate_master_key": true}`
//!   creates the file (mode 0600) with a random key when it is missing, and logs a
//!   warning.
//!
//! Health-check keys must be non-exportable, non-deletable and allow encrypt, decrypt,
//! wrap and unwrap.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod config;
pub mod crypto;
pub mod record;
pub mod source;

use keyhold_sdk::{HostBox, KeySourceError, Plugin};

pub use source::CtmSource;

/// The vendor reported in XKS health responses.
pub const VENDOR: &str = "keyhold";
/// The model reported in XKS health responses.
pub const MODEL: &str = concat!("keyhold ctm software keystore ", env!("CARGO_PKG_VERSION"));

/// The ctm plugin.
pub struct CtmPlugin;

impl Plugin for CtmPlugin {
    const NAME: &'static str = "ctm";
    const VENDOR: &'static str = VENDOR;
    const MODEL: &'static str = MODEL;
    type Source = CtmSource;

    fn open(config: &str, host: HostBox) -> Result<CtmSource, KeySourceError> {
        CtmSource::open(config, host)
    }
}

/// The exported root module (`abi_stable` adds an undocumented static).
#[allow(missing_docs)]
pub mod export {
    keyhold_sdk::export_plugin!(super::CtmPlugin);
}

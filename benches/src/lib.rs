//! Helpers of keyhold's criterion benchmarks and of the `xks-load` load tool that only
//! they need: the operations by name, a deterministic plaintext, request bodies as
//! bytes, and the conformance configuration moved to a temporary directory. Bodies,
//! SigV4 signing, the conformance credentials and the plugin-library lookup come from
//! the shared test kit (`keyhold-testkit`).

use std::{path::Path, time::SystemTime};

pub use keyhold_testkit::{
    Credential,
    fixture::{KEY_ALL as KEY_ID, PREFIX},
    paths::{plugin_library, toml_str},
    sign::REGION,
};
use keyhold_testkit::{Sealed, bodies, sign::Signer};
use serde_json::Value;

/// The conformance configuration, as checked in.
pub const CONFORMANCE_TOML: &str = include_str!("../../config/examples/conformance.toml");

/// One XKS operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, clap::ValueEnum)]
pub enum Op {
    /// GetHealthStatus.
    Health,
    /// GetKeyMetadata.
    Metadata,
    /// Encrypt.
    Encrypt,
    /// Decrypt.
    Decrypt,
}

impl Op {
    /// Lower-case name.
    pub fn name(self) -> &'static str {
        match self {
            Op::Health => "health",
            Op::Metadata => "metadata",
            Op::Encrypt => "encrypt",
            Op::Decrypt => "decrypt",
        }
    }

    /// The request path under `prefix` for key `key`.
    pub fn path(self, prefix: &str, key: &str) -> String {
        let base = base_path(prefix);
        match self {
            Op::Health => format!("{base}/health"),
            Op::Metadata => format!("{base}/keys/{key}/metadata"),
            Op::Encrypt => format!("{base}/keys/{key}/encrypt"),
            Op::Decrypt => format!("{base}/keys/{key}/decrypt"),
        }
    }
}

/// `[/<prefix>]/kms/xks/v1`.
pub fn base_path(prefix: &str) -> String {
    let prefix = prefix.trim_matches('/');
    if prefix.is_empty() {
        "/kms/xks/v1".into()
    } else {
        format!("/{prefix}/kms/xks/v1")
    }
}

/// GetHealthStatus body.
pub fn health_body() -> Vec<u8> {
    bodies::health().to_string().into_bytes()
}

/// GetKeyMetadata body.
pub fn metadata_body() -> Vec<u8> {
    bodies::metadata().to_string().into_bytes()
}

/// A deterministic plaintext of `len` bytes.
pub fn plaintext(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 31 + 7) as u8).collect()
}

/// The AAD every benchmark request carries (KMS always sends some).
pub const AAD: &[u8] = b"kms-encryption-context=bench";

/// Encrypt body for `plaintext` (with [`AAD`]).
pub fn encrypt_body(plaintext: &[u8]) -> Vec<u8> {
    bodies::encrypt(plaintext, Some(AAD), false)
        .to_string()
        .into_bytes()
}

/// Encrypt body for `plaintext` (with [`AAD`]) asking for a ciphertext data integrity
/// value (keyhold then proves the result decrypts back before answering).
pub fn encrypt_body_cdiv(plaintext: &[u8]) -> Vec<u8> {
    bodies::encrypt(plaintext, Some(AAD), true)
        .to_string()
        .into_bytes()
}

/// Turns an Encrypt response body into the matching Decrypt request body (with [`AAD`]).
pub fn decrypt_body_from_encrypt_response(resp: &[u8]) -> Result<Vec<u8>, String> {
    let v: Value = serde_json::from_slice(resp).map_err(|e| format!("encrypt response: {e}"))?;
    let sealed = Sealed::parse(&v)?;
    Ok(bodies::decrypt(&sealed, Some(AAD)).to_string().into_bytes())
}

/// Signs a JSON POST (`content-type: application/json`) of `body` to `path` at
/// `authority`, now; returns the headers to add (`x-amz-date`, `authorization`).
pub fn sign_post(
    cred: &Credential,
    authority: &str,
    path: &str,
    body: &[u8],
) -> Vec<(String, String)> {
    let content_type = [("content-type", "application/json")];
    Signer::xks(cred)
        .headers(
            "POST",
            authority,
            path,
            content_type,
            body,
            SystemTime::now(),
        )
        .unwrap_or_else(|e| panic!("POST {path}: {e}"))
}

/// The conformance configuration with its data directory (and ctm master key) moved to
/// `data_dir`, listening on `listen`, and plugins loaded from `plugin_dir`.
pub fn conformance_config(data_dir: &Path, plugin_dir: &Path, listen: &str) -> String {
    let data = data_dir.display().to_string();
    let text = CONFORMANCE_TOML
        .replace(
            "data_dir = \"data/conformance\"",
            &format!("data_dir = {}", toml_str(&data)),
        )
        .replace(
            "\"data/conformance/ctm-master.key\"",
            &toml_str(format!("{data}/ctm-master.key")),
        )
        .replace(
            "listen = \"127.0.0.1:8080\"",
            &format!("listen = {}", toml_str(listen)),
        );
    assert!(
        text.contains(&data),
        "config/examples/conformance.toml changed shape"
    );
    format!(
        "{text}\n[plugins]\ndir = {}\n",
        toml_str(plugin_dir.display().to_string())
    )
}

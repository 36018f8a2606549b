//! The ctm key source's configuration and master-key loading.

use std::{
    fs,
    io::{ErrorKind, Write as _},
    os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _},
    path::{Path, PathBuf},
};

use base64::{Engine as _, engine::general_purpose::STANDARD as B64};
use keyhold_sdk::{HostBox, KeySourceError, LogLevel};
use serde::Deserialize;
use zeroize::Zeroizing;

use crate::crypto::{self, KEY_LEN, KeyMaterial};

/// The key source configuration (JSON text handed to `open`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// File holding the master key: 32 raw bytes, or base64 text of 32 bytes.
    pub master_key_file: Option<PathBuf>,
    /// Environment variable holding the master key as base64 of 32 bytes.
    pub master_key_env: Option<String>,
    /// Development only: create `master_key_file` (mode 0600) with a random key when it
    /// does not exist.
    #[serde(default)]
    pub generate_master_key: bool,
}

const HOW_TO: &str = "configure the master key with \"master_key_file\" (a file holding 32 raw \
    bytes or base64 of 32 bytes) or \"master_key_env\" (an environment variable holding base64 \
    of 32 bytes); for development only, \"generate_master_key\": true together with \
    \"master_key_file\" creates the file with a random key";

impl Config {
    /// Parses the configuration text; empty text means `{}`.
    pub fn parse(text: &str) -> Result<Config, KeySourceError> {
        let text = if text.trim().is_empty() { "{}" } else { text };
        serde_json::from_str(text).map_err(|e| {
            KeySourceError::invalid_input(format!("ctm key source configuration: {e}"))
        })
    }

    /// Loads (or, in development mode, generates) the master key.
    pub fn load_master_key(&self, host: &HostBox) -> Result<KeyMaterial, KeySourceError> {
        match (&self.master_key_file, &self.master_key_env) {
            (Some(_), Some(_)) => Err(KeySourceError::invalid_input(
                "ctm: give only one of \"master_key_file\" and \"master_key_env\"",
            )),
            (None, None) if self.generate_master_key => Err(KeySourceError::invalid_input(
                format!("ctm: \"generate_master_key\" needs \"master_key_file\"; {HOW_TO}"),
            )),
            (None, None) => Err(KeySourceError::invalid_input(format!(
                "ctm: no master key configured; {HOW_TO}"
            ))),
            (None, Some(_)) if self.generate_master_key => Err(KeySourceError::invalid_input(
                "ctm: \"generate_master_key\" works only with \"master_key_file\", not with \
                 \"master_key_env\"",
            )),
            (None, Some(var)) => {
                let value = Zeroizing::new(std::env::var(var).map_err(|_| {
                    KeySourceError::invalid_input(format!(
                        "ctm: master key environment variable '{var}' is not set (or not UTF-8)"
                    ))
                })?);
                decode_base64_key(value.as_bytes())
                    .map_err(|why| invalid(format!("environment variable '{var}' {why}")))
            }
            (Some(path), None) => self.load_file(path, host),
        }
    }

    fn load_file(&self, path: &Path, host: &HostBox) -> Result<KeyMaterial, KeySourceError> {
        match fs::read(path) {
            Ok(bytes) => {
                let bytes = Zeroizing::new(bytes);
                warn_if_readable_by_others(path, host);
                key_from_file_bytes(&bytes)
                    .map_err(|why| invalid(format!("master key file '{}' {why}", path.display())))
            }
            Err(e) if e.kind() == ErrorKind::NotFound && self.generate_master_key => {
                generate_file(path, host)
            }
            Err(e) => Err(KeySourceError::invalid_input(format!(
                "ctm: cannot read master key file '{}': {e}",
                path.display()
            ))),
        }
    }
}

fn invalid(what: String) -> KeySourceError {
    KeySourceError::invalid_input(format!("ctm: {what}"))
}

/// A master key file holds 32 raw bytes, or base64 text (surrounding whitespace
/// allowed) of 32 bytes. The error never quotes the file's content.
pub fn key_from_file_bytes(bytes: &[u8]) -> Result<KeyMaterial, String> {
    if bytes.len() == KEY_LEN {
        let mut key = Zeroizing::new([0u8; KEY_LEN]);
        key.copy_from_slice(bytes);
        return Ok(key);
    }
    decode_base64_key(bytes)
}

/// Decodes base64 (standard alphabet, padding optional, surrounding whitespace
/// allowed) of exactly 32 bytes. The error never quotes the input.
pub fn decode_base64_key(text: &[u8]) -> Result<KeyMaterial, String> {
    let trimmed = text.trim_ascii();
    let unpadded = trimmed
        .strip_suffix(b"==")
        .or_else(|| trimmed.strip_suffix(b"="))
        .unwrap_or(trimmed);
    let decoded = Zeroizing::new(
        base64::engine::general_purpose::STANDARD_NO_PAD
            .decode(unpadded)
            .map_err(|_| "is not valid base64 (expected base64 of 32 bytes)".to_string())?,
    );
    if decoded.len() != KEY_LEN {
        return Err(format!(
            "holds {} bytes after base64 decoding, expected 32",
            decoded.len()
        ));
    }
    let mut key = Zeroizing::new([0u8; KEY_LEN]);
    key.copy_from_slice(&decoded);
    Ok(key)
}

fn warn_if_readable_by_others(path: &Path, host: &HostBox) {
    if let Ok(meta) = fs::metadata(path) {
        let mode = meta.permissions().mode();
        if mode & 0o077 != 0 {
            host.log(
                LogLevel::Warn,
                format!(
                    "ctm: master key file '{}' has mode {:o}; it should be readable by the \
                     keyhold user only (0600)",
                    path.display(),
                    mode & 0o777
                )
                .as_str()
                .into(),
            );
        }
    }
}

fn generate_file(path: &Path, host: &HostBox) -> Result<KeyMaterial, KeySourceError> {
    let key = crypto::generate_key()?;
    let text = Zeroizing::new(format!("{}\n", B64.encode(&key[..])));
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| {
            KeySourceError::invalid_input(format!(
                "ctm: cannot create master key file '{}': {e}",
                path.display()
            ))
        })?;
    file.write_all(text.as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(|e| {
            KeySourceError::internal(format!(
                "ctm: cannot write master key file '{}': {e}",
                path.display()
            ))
        })?;
    host.log(
        LogLevel::Warn,
        format!(
            "ctm: DEVELOPMENT DEFAULT: generated a new random master key in '{}' because \
             \"generate_master_key\" is set. Do not use this in production: keep the master \
             key in a managed secret, back it up (every key of this source is lost without \
             it) and remove \"generate_master_key\"",
            path.display()
        )
        .as_str()
        .into(),
    );
    Ok(key)
}

#[cfg(test)]
mod tests;

//! The session saved by `login`: the server, its CA and the bearer token, kept in
//! `$KEYHOLD_CLI_CONFIG` or `~/.config/keyhold/cli.json` (owner-only, mode 0600).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{CONFIG_ENV, CliError, Result};

/// What `login` saves (the file's JSON fields, in the file's alphabetical order).
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Session {
    /// The CA trusted for the server (absolute path; HTTPS only).
    pub cacert: Option<PathBuf>,
    /// When the token expires (Unix seconds, as the server said).
    pub expires_at: Value,
    /// The admin API URL logged in to.
    pub server: Option<String>,
    /// The bearer token.
    pub token: Option<String>,
    /// The user logged in (as the server said).
    pub user: Value,
}

impl Session {
    /// The saved session, if there is a readable one.
    pub fn load() -> Option<Session> {
        let text = std::fs::read_to_string(path().ok()?).ok()?;
        serde_json::from_str(&text).ok()
    }

    /// Whether this session was saved for `server`.
    pub fn is_for(&self, server: &str) -> bool {
        self.server.as_deref() == Some(server)
    }

    /// Saves the session (owner-only); returns where.
    pub fn save(&self) -> Result<PathBuf> {
        let path = path()?;
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)
                .map_err(|e| CliError::Usage(format!("cannot create {}: {e}", dir.display())))?;
        }
        let text = serde_json::to_string_pretty(self).unwrap_or_default();
        write_private(&path, text.as_bytes())?;
        Ok(path)
    }

    /// Forgets the saved session (a missing file is fine).
    pub fn remove() {
        if let Ok(p) = path() {
            let _ = std::fs::remove_file(p);
        }
    }
}

/// Where the session is kept.
pub fn path() -> Result<PathBuf> {
    if let Some(p) = std::env::var_os(CONFIG_ENV) {
        return Ok(PathBuf::from(p));
    }
    let home = std::env::var_os("HOME")
        .ok_or_else(|| CliError::Usage(format!("HOME is not set: set {CONFIG_ENV}")))?;
    Ok(PathBuf::from(home).join(".config/keyhold/cli.json"))
}

/// Writes a file only its owner may read (a token or a secret), with a final newline.
pub fn write_private(path: &Path, data: &[u8]) -> Result<()> {
    // Holds a token or a secret: wiped when dropped.
    let mut text = zeroize::Zeroizing::new(data.to_vec());
    text.push(b'\n');
    keyhold::secrets::write_private_file(path, &text)
        .map_err(|e| CliError::Usage(format!("cannot write {}: {e}", path.display())))
}

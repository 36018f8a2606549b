//! Secrets at rest: the master key that seals credential secrets (and other secrets)
//! before they reach the durable store, and the OS random source.

use std::{
    fs,
    io::Write as _,
    path::{Path, PathBuf},
};

use aes_gcm::{
    Aes256Gcm, KeyInit, Nonce,
    aead::{Aead, OsRng, Payload, rand_core::RngCore},
};
use base64::{Engine, engine::general_purpose::STANDARD as B64};
use zeroize::Zeroizing;

pub mod check;

/// Errors of the secrets module.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SecretsError {
    /// The master key could not be read or created.
    #[error("master key {source_desc}: {reason}")]
    MasterKey {
        /// Where the key was looked for (file path or environment variable).
        source_desc: String,
        /// What went wrong.
        reason: String,
    },
    /// A sealed value does not open: wrong master key, or tampered data.
    #[error("sealed secret for '{context}' cannot be opened (wrong master key or tampered data)")]
    Unseal {
        /// The store key the secret belongs to.
        context: String,
    },
}

/// Fills `buf` from the operating system's CSPRNG.
pub fn fill_random(buf: &mut [u8]) {
    OsRng.fill_bytes(buf);
}

/// An AES-256 key that seals secrets at rest (AES-256-GCM, random 96-bit nonce, the
/// object's store key as AAD so that a sealed value cannot be moved to another object).
pub struct MasterKey {
    cipher: Aes256Gcm,
    /// HMAC-SHA256(master key, "keyhold key derivation v1"): the key of [`MasterKey::derive`]
    /// (the master key itself is kept only inside the cipher).
    kdf: Zeroizing<[u8; 32]>,
}

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey(..)")
    }
}

/// Where the master key comes from.
#[derive(Debug, Clone)]
pub enum MasterKeySource {
    /// Base64 of 32 bytes in this environment variable.
    Env(String),
    /// A file holding 32 raw bytes or base64 of 32 bytes.
    File(PathBuf),
    /// A file that is generated (mode 0600) when missing: a development default.
    GeneratedFile(PathBuf),
}

impl MasterKeySource {
    /// The configuration setting this source comes from, for messages (never the key).
    pub fn describe(&self) -> String {
        match self {
            MasterKeySource::Env(var) => format!("secrets.master_key_env = {var}"),
            MasterKeySource::File(path) => {
                format!("secrets.master_key_file = {}", path.display())
            }
            MasterKeySource::GeneratedFile(path) => format!(
                "the generated development key {} (no secrets.master_key_file is set)",
                path.display()
            ),
        }
    }
}

fn hmac_sha256(key: &[u8], data: &[u8]) -> [u8; 32] {
    use hmac::{Mac, digest::KeyInit};
    let mut mac = <hmac::Hmac<sha2::Sha256> as KeyInit>::new_from_slice(key)
        .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
    mac.update(data);
    mac.finalize().into_bytes().into()
}

fn decode_key(bytes: &[u8]) -> Option<Zeroizing<[u8; 32]>> {
    let mut key = Zeroizing::new([0u8; 32]);
    if bytes.len() == 32 {
        key.copy_from_slice(bytes);
        return Some(key);
    }
    let text = std::str::from_utf8(bytes).ok()?.trim();
    let decoded = Zeroizing::new(B64.decode(text).ok()?);
    if decoded.len() != 32 {
        return None;
    }
    key.copy_from_slice(&decoded);
    Some(key)
}

impl MasterKey {
    /// A master key from 32 raw bytes.
    pub fn from_bytes(key: &[u8; 32]) -> MasterKey {
        MasterKey {
            cipher: Aes256Gcm::new(key.into()),
            kdf: Zeroizing::new(hmac_sha256(key, b"keyhold key derivation v1")),
        }
    }

    /// A 32-byte key for one purpose, derived from the master key (HMAC-SHA256 under a
    /// key derived once from it, over `label`): e.g. the audit chain's HMAC key.
    pub fn derive(&self, label: &str) -> Zeroizing<[u8; 32]> {
        Zeroizing::new(hmac_sha256(&self.kdf[..], label.as_bytes()))
    }

    /// Loads (or, for [`MasterKeySource::GeneratedFile`], creates) the master key.
    pub fn load(source: &MasterKeySource) -> Result<MasterKey, SecretsError> {
        match source {
            MasterKeySource::Env(var) => {
                let err = |reason: &str| SecretsError::MasterKey {
                    source_desc: format!("from environment variable {var}"),
                    reason: reason.to_string(),
                };
                let value = Zeroizing::new(
                    std::env::var(var).map_err(|_| err("is not set (or not UTF-8)"))?,
                );
                let key = decode_key(value.as_bytes())
                    .ok_or_else(|| err("must be base64 of exactly 32 bytes"))?;
                Ok(MasterKey::from_bytes(&key))
            }
            MasterKeySource::File(path) => Self::load_file(path),
            MasterKeySource::GeneratedFile(path) => {
                if !path.exists() {
                    generate_key_file(path)?;
                    tracing::warn!(
                        path = %path.display(),
                        "GENERATED A NEW MASTER KEY: development default. Secrets at rest are only as safe as this file; \
                         for production set secrets.master_key_file or secrets.master_key_env and back the key up"
                    );
                }
                Self::load_file(path)
            }
        }
    }

    fn load_file(path: &Path) -> Result<MasterKey, SecretsError> {
        let err = |reason: String| SecretsError::MasterKey {
            source_desc: format!("file {}", path.display()),
            reason,
        };
        let bytes = Zeroizing::new(fs::read(path).map_err(|e| err(e.to_string()))?);
        let key = decode_key(&bytes)
            .ok_or_else(|| err("must hold 32 raw bytes or base64 of 32 bytes".into()))?;
        Ok(MasterKey::from_bytes(&key))
    }

    /// Seals `plaintext`, bound to `context` (the owning object's store key).
    /// Returns base64(nonce || ciphertext || tag).
    pub fn seal(&self, plaintext: &[u8], context: &str) -> String {
        let mut nonce = [0u8; 12];
        fill_random(&mut nonce);
        // Encryption with a valid key and in-memory buffers cannot fail.
        let ct = self
            .cipher
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: plaintext,
                    aad: context.as_bytes(),
                },
            )
            .unwrap_or_default();
        let mut out = Vec::with_capacity(12 + ct.len());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&ct);
        B64.encode(out)
    }

    /// Opens a value sealed by [`MasterKey::seal`] with the same `context`.
    pub fn open(&self, sealed: &str, context: &str) -> Result<Zeroizing<Vec<u8>>, SecretsError> {
        let err = || SecretsError::Unseal {
            context: context.to_string(),
        };
        let raw = B64.decode(sealed).map_err(|_| err())?;
        if raw.len() < 12 + 16 {
            return Err(err());
        }
        let (nonce, ct) = raw.split_at(12);
        self.cipher
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: ct,
                    aad: context.as_bytes(),
                },
            )
            .map(Zeroizing::new)
            .map_err(|_| err())
    }
}

/// Writes `bytes` to `path` readable by its owner only (mode 0600), replacing what was
/// there, crash-safely: the bytes go to a new temporary file beside it (created
/// exclusively, so a planted file or symlink is never opened), are synced, and the file
/// is renamed over `path` (a symlink at `path` is replaced, never followed); then the
/// directory is synced. A crash leaves the old file or the new one, never an empty or
/// partial one.
pub fn write_private_file(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    // tempfile creates with O_CREAT|O_EXCL and mode 0600 on Unix.
    let mut tmp = tempfile::Builder::new()
        .prefix(".keyhold-")
        .suffix(".tmp")
        .tempfile_in(dir)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        tmp.as_file()
            .set_permissions(fs::Permissions::from_mode(0o600))?;
    }
    tmp.write_all(bytes)?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    #[cfg(unix)]
    fs::File::open(dir)?.sync_all()?;
    Ok(())
}

/// Writes a new random 32-byte key, base64-encoded, to `path` with mode 0600,
/// creating parent directories; refuses to overwrite.
pub fn generate_key_file(path: &Path) -> Result<(), SecretsError> {
    let err = |reason: String| SecretsError::MasterKey {
        source_desc: format!("file {}", path.display()),
        reason,
    };
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir).map_err(|e| err(format!("cannot create directory: {e}")))?;
    }
    let mut key = Zeroizing::new([0u8; 32]);
    fill_random(key.as_mut());
    let text = Zeroizing::new(B64.encode(key.as_ref()));
    let mut opts = fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut file = opts.open(path).map_err(|e| err(e.to_string()))?;
    file.write_all(text.as_bytes())
        .and_then(|_| file.sync_all())
        .map_err(|e| err(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_open_round_trip_and_binding() {
        let key = MasterKey::from_bytes(&[7u8; 32]);
        let sealed = key.seal(b"top secret", "credentials/s1/AKID");
        assert!(!sealed.contains("top secret"));
        assert_eq!(
            &**key.open(&sealed, "credentials/s1/AKID").unwrap(),
            b"top secret"
        );
        // Bound to its context: cannot be moved to another object.
        assert!(key.open(&sealed, "credentials/s2/AKID").is_err());
        // Wrong master key.
        let other = MasterKey::from_bytes(&[8u8; 32]);
        assert!(other.open(&sealed, "credentials/s1/AKID").is_err());
        // Tampering and garbage.
        let mut raw = B64.decode(&sealed).unwrap();
        raw[14] ^= 1;
        assert!(key.open(&B64.encode(raw), "credentials/s1/AKID").is_err());
        assert!(key.open("not base64!", "x").is_err());
        assert!(key.open("AAAA", "x").is_err());
    }

    #[test]
    fn generated_file_is_private_and_stable() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/master.key");
        let k1 = MasterKey::load(&MasterKeySource::GeneratedFile(path.clone())).unwrap();
        let sealed = k1.seal(b"x", "c");
        let k2 = MasterKey::load(&MasterKeySource::GeneratedFile(path.clone())).unwrap();
        assert_eq!(&**k2.open(&sealed, "c").unwrap(), b"x");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        assert!(generate_key_file(&path).is_err(), "never overwrites a key");
    }

    #[test]
    fn private_files_are_owner_only_even_when_they_existed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secret.txt");
        fs::write(&path, "old content that is longer").unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        }
        write_private_file(&path, b"new").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"new");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(
                fs::metadata(&path).unwrap().permissions().mode() & 0o777,
                0o600
            );
        }
    }

    #[cfg(unix)]
    #[test]
    fn private_files_replace_a_planted_symlink_instead_of_following_it() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim.txt");
        fs::write(&victim, "must stay").unwrap();
        let path = dir.path().join("credentials.json");
        std::os::unix::fs::symlink(&victim, &path).unwrap();
        write_private_file(&path, b"secret").unwrap();
        assert_eq!(fs::read(&victim).unwrap(), b"must stay");
        let meta = fs::symlink_metadata(&path).unwrap();
        assert!(
            meta.file_type().is_file(),
            "a regular file replaced the link"
        );
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        assert_eq!(fs::read(&path).unwrap(), b"secret");
        // Nothing is left behind: only the two files.
        let mut names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(names, ["credentials.json", "victim.txt"]);
    }

    #[test]
    fn a_failed_write_leaves_the_old_file_whole() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secret.txt");
        write_private_file(&path, b"old").unwrap();
        // The target is a directory now: the rename fails, the temporary file goes.
        let blocked = dir.path().join("blocked");
        fs::create_dir(&blocked).unwrap();
        fs::write(blocked.join("inside"), "x").unwrap();
        assert!(write_private_file(&blocked, b"new").is_err());
        assert_eq!(fs::read(&path).unwrap(), b"old");
        let leftovers = fs::read_dir(dir.path())
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .map(|e| e.file_name().to_string_lossy().starts_with(".keyhold-"))
                    .unwrap_or(false)
            })
            .count();
        assert_eq!(leftovers, 0);
    }

    #[test]
    fn bad_key_files_are_refused_with_the_reason() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("short.key");
        fs::write(&path, "c2hvcnQ=").unwrap();
        let err = MasterKey::load(&MasterKeySource::File(path))
            .unwrap_err()
            .to_string();
        assert!(err.contains("32 bytes"), "{err}");
        let missing = MasterKey::load(&MasterKeySource::File(dir.path().join("nope")))
            .unwrap_err()
            .to_string();
        assert!(missing.contains("nope"), "{missing}");
        let env = MasterKey::load(&MasterKeySource::Env("KEYHOLD_TEST_UNSET_VAR_XYZ".into()))
            .unwrap_err()
            .to_string();
        assert!(env.contains("KEYHOLD_TEST_UNSET_VAR_XYZ"), "{env}");
    }
}

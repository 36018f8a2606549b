//! The key source's connection configuration (the JSON text handed to `open`).

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
};

use cryptoki::types::AuthPin;
use keyhold_sdk::KeySourceError;
use serde::Deserialize;
use zeroize::Zeroizing;

/// Default number of pooled, logged-in sessions per key source.
pub const DEFAULT_POOL_SIZE: usize = 8;
/// Default bound, in milliseconds, on waiting for a free session.
pub const DEFAULT_OP_TIMEOUT_MS: u64 = 200;

/// Connection configuration of one PKCS#11 key source.
///
/// Unknown fields are refused. The PIN never appears here: it is read from the
/// environment variable named by `pin_env` or from the file named by `pin_file`
/// (exactly one of them).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Path of the PKCS#11 module (`.so`), e.g. `/usr/lib/libCryptoki2_64.so` for Luna
    /// or `/usr/lib/softhsm/libsofthsm2.so`.
    pub module: PathBuf,
    /// Label of the token (Luna partition). The slot is looked up by this label every
    /// time it is needed, since slot ids change between processes.
    pub token_label: String,
    /// Name of the environment variable holding the user (crypto officer) PIN.
    #[serde(default)]
    pub pin_env: Option<String>,
    /// Path of a file holding the user PIN (trailing whitespace is ignored).
    #[serde(default)]
    pub pin_file: Option<PathBuf>,
    /// Number of logged-in sessions kept in the pool (default 8).
    #[serde(default = "default_pool_size")]
    pub pool_size: usize,
    /// How long an operation may wait for a free session before failing with
    /// `Timeout`, in milliseconds (default 200).
    #[serde(default = "default_op_timeout_ms")]
    pub op_timeout_ms: u64,
    /// Environment variables the module reads in `C_Initialize` (once per module per
    /// process). SoftHSM2 needs `SOFTHSM2_CONF`; Luna needs nothing. A relative value
    /// that names an existing file or directory is made absolute against the current
    /// directory. They must already be in keyhold's process environment, with these
    /// values, when it starts: the environment cannot be changed safely once threads
    /// run (`setenv` races with every `getenv`), so opening the source refuses a
    /// `module_env` that differs from the process environment, naming the variable.
    #[serde(default)]
    pub module_env: BTreeMap<String, String>,
}

fn default_pool_size() -> usize {
    DEFAULT_POOL_SIZE
}

fn default_op_timeout_ms() -> u64 {
    DEFAULT_OP_TIMEOUT_MS
}

impl Config {
    /// Parses and checks the configuration text.
    pub fn parse(text: &str) -> Result<Config, KeySourceError> {
        let text = if text.trim().is_empty() { "{}" } else { text };
        let config: Config = serde_json::from_str(text).map_err(|e| {
            KeySourceError::invalid_input(format!("luna key source configuration: {e}"))
        })?;
        if config.token_label.is_empty() {
            return Err(KeySourceError::invalid_input(
                "luna key source configuration: token_label must not be empty",
            ));
        }
        if config.pool_size == 0 {
            return Err(KeySourceError::invalid_input(
                "luna key source configuration: pool_size must be at least 1",
            ));
        }
        match (&config.pin_env, &config.pin_file) {
            (Some(_), Some(_)) => Err(KeySourceError::invalid_input(
                "luna key source configuration: set only one of pin_env and pin_file",
            )),
            (None, None) => Err(KeySourceError::invalid_input(
                "luna key source configuration: set pin_env or pin_file (the PIN itself is \
                 never part of the configuration)",
            )),
            _ => Ok(config),
        }
    }

    /// Where the user PIN is read from.
    pub fn pin_source(&self) -> Result<PinSource, KeySourceError> {
        match (&self.pin_env, &self.pin_file) {
            (Some(var), _) => Ok(PinSource::Env(var.clone())),
            (None, Some(file)) => Ok(PinSource::File(file.clone())),
            (None, None) => Err(KeySourceError::invalid_input("no PIN source configured")),
        }
    }

    /// Reads the user PIN from `pin_env` or `pin_file` (see [`PinSource::read`]).
    pub fn read_pin(&self) -> Result<AuthPin, KeySourceError> {
        self.pin_source()?.read()
    }

    /// `module_env` with relative values that name existing paths made absolute.
    pub fn resolved_module_env(&self) -> Vec<(String, String)> {
        self.module_env
            .iter()
            .map(|(k, v)| (k.clone(), absolutize(v)))
            .collect()
    }
}

/// Where the user PIN comes from: the plugin keeps this reference, never the PIN. The
/// PIN is read for each login ([`PinSource::read`]) and wiped as soon as the login is
/// done (so a PIN changed in its file is picked up by the next login, e.g. after the
/// token was lost and found again).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PinSource {
    /// An environment variable of keyhold's process.
    Env(String),
    /// A file (trailing whitespace ignored).
    File(PathBuf),
}

impl PinSource {
    /// Reads the PIN. Every copy is wiped on drop: the text read is held in a
    /// [`Zeroizing`] buffer, and the PIN returned is cryptoki's [`AuthPin`] (a
    /// `secrecy` string, zeroized on drop), built from an exact-size copy so that no
    /// reallocation leaves a stray copy behind. Error messages name the variable or
    /// file, never the PIN.
    pub fn read(&self) -> Result<AuthPin, KeySourceError> {
        let text: Zeroizing<String> = match self {
            PinSource::Env(var) => Zeroizing::new(std::env::var(var).map_err(|_| {
                KeySourceError::invalid_input(format!(
                    "PIN environment variable '{var}' is not set (or not valid UTF-8)"
                ))
            })?),
            PinSource::File(file) => {
                Zeroizing::new(std::fs::read_to_string(file).map_err(|e| {
                    KeySourceError::invalid_input(format!(
                        "cannot read PIN file '{}': {e}",
                        file.display()
                    ))
                })?)
            }
        };
        let trimmed = text.trim_end_matches(['\r', '\n', ' ', '\t']);
        if trimmed.is_empty() {
            return Err(KeySourceError::invalid_input("the configured PIN is empty"));
        }
        // `to_string` allocates exactly `trimmed.len()` bytes, so turning it into the
        // secret's boxed `str` does not reallocate.
        Ok(AuthPin::from(trimmed.to_string()))
    }
}

/// Refuses a `module_env` entry whose value is not already the process environment's
/// (see [`Config::module_env`]): the environment is never changed at run time.
pub fn check_module_env(env: &[(String, String)]) -> Result<(), KeySourceError> {
    for (name, value) in env {
        let current = std::env::var_os(name);
        if current.as_deref() != Some(std::ffi::OsStr::new(value)) {
            return Err(KeySourceError::invalid_input(format!(
                "module_env sets {name}={value}, but keyhold's process environment has {}: \
                 the environment cannot be changed safely while keyhold runs, and a \
                 PKCS#11 module reads it once, in C_Initialize, and cannot be \
                 re-initialised in-process (SoftHSM2 reads its configuration once per \
                 process), so start keyhold with {name}={value} in its environment (e.g. \
                 systemd Environment=, docker -e; a restart applies it) and keep \
                 module_env equal to it, or remove it from module_env",
                match &current {
                    Some(v) => format!("{name}={}", v.to_string_lossy()),
                    None => format!("no {name}"),
                }
            )));
        }
    }
    Ok(())
}

fn absolutize(value: &str) -> String {
    let path = Path::new(value);
    if path.is_relative() && !value.is_empty() && path.exists() {
        if let Ok(cwd) = std::env::current_dir() {
            return cwd.join(path).to_string_lossy().into_owned();
        }
    }
    value.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_field_is_named() {
        let err = Config::parse(r#"{"module":"/x.so","token_label":"t","pin_env":"P","pin":"1"}"#)
            .unwrap_err();
        assert!(matches!(err, KeySourceError::InvalidInput { .. }));
        assert!(err.to_string().contains("unknown field `pin`"), "{err}");
    }

    #[test]
    fn defaults_and_pin_sources() {
        let c = Config::parse(r#"{"module":"/x.so","token_label":"t","pin_env":"P"}"#).unwrap();
        assert_eq!(c.pool_size, 8);
        assert_eq!(c.op_timeout_ms, 200);
        assert!(Config::parse(r#"{"module":"/x.so","token_label":"t"}"#).is_err());
        assert!(
            Config::parse(r#"{"module":"/x.so","token_label":"t","pin_env":"P","pin_file":"f"}"#)
                .is_err()
        );
        assert!(
            Config::parse(r#"{"module":"/x.so","token_label":"t","pin_env":"P","pool_size":0}"#)
                .is_err()
        );
    }

    #[test]
    fn relative_module_env_paths_become_absolute() {
        // Unit tests run in the crate directory, where Cargo.toml exists.
        let c = Config::parse(
            r#"{"module":"/x.so","token_label":"t","pin_env":"P",
                "module_env":{"A":"Cargo.toml","B":"not/a/path","C":"/abs"}}"#,
        )
        .unwrap();
        let env = c.resolved_module_env();
        assert!(
            env[0].1.starts_with('/') && env[0].1.ends_with("/Cargo.toml"),
            "{env:?}"
        );
        assert_eq!(env[1].1, "not/a/path");
        assert_eq!(env[2].1, "/abs");
    }

    /// Every holder of the PIN wipes it on drop: the PIN handed to `C_Login` is
    /// cryptoki's `AuthPin` (a `secrecy` string), checked here at compile time.
    #[test]
    fn the_pin_is_held_only_in_types_that_wipe_it() {
        fn wiped_on_drop<T: zeroize::ZeroizeOnDrop + ?Sized>() {}
        wiped_on_drop::<AuthPin>();
        wiped_on_drop::<Zeroizing<String>>();

        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("pin");
        std::fs::write(&file, "1234\n").unwrap();
        let source = PinSource::File(file.clone());
        use secrecy::ExposeSecret as _;
        assert_eq!(source.read().unwrap().expose_secret(), "1234");
        // Read again for each login: a changed file is seen, a missing one refused.
        std::fs::write(&file, "5678").unwrap();
        assert_eq!(source.read().unwrap().expose_secret(), "5678");
        std::fs::remove_file(&file).unwrap();
        let err = source.read().unwrap_err();
        assert!(err.to_string().contains("cannot read PIN file"), "{err}");
        assert!(!err.to_string().contains("5678"));
    }

    #[test]
    fn module_env_is_checked_never_set() {
        let unset = "KEYHOLD_LUNA_TEST_NEVER_SET";
        let err = check_module_env(&[(unset.into(), "x".into())]).unwrap_err();
        assert!(matches!(err, KeySourceError::InvalidInput { .. }));
        let text = err.to_string();
        assert!(
            text.contains(unset) && text.contains("start keyhold with"),
            "{text}"
        );
        assert!(
            std::env::var_os(unset).is_none(),
            "the environment was changed"
        );

        let path = std::env::var("PATH").unwrap();
        assert!(check_module_env(&[("PATH".into(), path.clone())]).is_ok());
        let err = check_module_env(&[("PATH".into(), format!("{path}:/other"))]).unwrap_err();
        assert!(
            err.to_string()
                .contains("keyhold's process environment has PATH=")
        );
    }
}

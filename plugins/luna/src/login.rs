//! PIN checks when the token is already logged in.
//!
//! PKCS#11 keeps one login per token and process: once a key source is logged in,
//! `C_Login` of any other session of the process answers `CKR_USER_ALREADY_LOGGED_IN`
//! whatever PIN it is given. So this process-wide registry (the plugin library is
//! loaded once per process) remembers, per module and token label, a salted SHA-256
//! of the PIN that logged in and which key sources (pools) rely on that login:
//! - `C_Login` succeeds: the PIN is verified by the token; it is recorded.
//! - "already logged in" and the recorded PIN is the same: accepted.
//! - "already logged in" with another PIN while another key source holds the login:
//!   refused, saying why (checking it would log that source out).
//! - "already logged in" with nothing recorded (logged in outside this registry), or
//!   only by this same source: `C_Logout` and `C_Login` again, so the token checks it.
//!
//! A source releases its hold when its pool is dropped (a reopened source is dropped
//! before it opens again); the record goes with the last holder.

use std::{
    collections::{BTreeSet, HashMap},
    path::PathBuf,
    sync::{Mutex, OnceLock},
};

use cryptoki::{
    error::{Error, RvError},
    session::{Session, UserType},
    types::AuthPin,
};
use keyhold_sdk::KeySourceError;
use secrecy::ExposeSecret as _;
use sha2::{Digest, Sha256};

use crate::pkcs11::{Fail, lock, os_random, rv};

/// A token of a module.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct LoginKey {
    /// The module path.
    pub module: PathBuf,
    /// The token label.
    pub label: String,
}

struct Entry {
    hash: [u8; 32],
    holders: BTreeSet<u64>,
}

fn registry() -> &'static Mutex<HashMap<LoginKey, Entry>> {
    static REGISTRY: OnceLock<Mutex<HashMap<LoginKey, Entry>>> = OnceLock::new();
    REGISTRY.get_or_init(|| Mutex::new(HashMap::new()))
}

/// A salted hash of the PIN (the salt is random per process; the PIN is never kept).
fn digest(pin: &AuthPin) -> Result<[u8; 32], KeySourceError> {
    static SALT: OnceLock<[u8; 32]> = OnceLock::new();
    let salt = match SALT.get() {
        Some(salt) => salt,
        None => {
            let mut salt = [0u8; 32];
            os_random(&mut salt)?;
            SALT.get_or_init(|| salt)
        }
    };
    let mut h = Sha256::new();
    h.update(salt);
    h.update(pin.expose_secret().as_bytes());
    Ok(h.finalize().into())
}

fn record(key: &LoginKey, hash: [u8; 32], holder: u64) {
    let mut reg = lock(registry());
    let entry = reg.entry(key.clone()).or_insert_with(|| Entry {
        hash,
        holders: BTreeSet::new(),
    });
    entry.hash = hash;
    entry.holders.insert(holder);
}

/// Forgets `holder` (a pool being dropped); a record without holders goes.
pub fn release(holder: u64) {
    let mut reg = lock(registry());
    reg.retain(|_, entry| {
        entry.holders.remove(&holder);
        !entry.holders.is_empty()
    });
}

/// A number for a new holder.
pub fn new_holder() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

fn already_logged_in(e: &Error) -> bool {
    rv(e) == Some(RvError::UserAlreadyLoggedIn)
}

/// Logs `session` in as the user with `pin`, checking the PIN even when the token is
/// already logged in (see the module documentation). `holder` is the calling pool.
pub fn login(session: &Session, pin: &AuthPin, key: &LoginKey, holder: u64) -> Result<(), Fail> {
    let hash = digest(pin)?;
    match session.login(UserType::User, Some(pin)) {
        Ok(()) => {
            record(key, hash, holder);
            return Ok(());
        }
        Err(e) if already_logged_in(&e) => {}
        Err(e) => return Err(Fail::Ck(e)),
    }
    {
        let mut reg = lock(registry());
        if let Some(entry) = reg.get_mut(key) {
            if entry.hash == hash {
                entry.holders.insert(holder);
                return Ok(());
            }
            let others = entry.holders.iter().filter(|h| **h != holder).count();
            if others > 0 {
                return Err(Fail::Ks(KeySourceError::invalid_input(format!(
                    "login to token '{}' refused: the token is already logged in in this \
                     process by {others} other key source(s) of module '{}' with another \
                     PIN, and PKCS#11 keeps one login per token and process, so the PIN \
                     configured here (pin_env/pin_file) does not match the one in use; \
                     correct it, or, if the token's PIN was changed, reopen the other key \
                     sources on this token first",
                    key.label,
                    key.module.display()
                ))));
            }
        }
    }
    // Logged in outside this registry, or only by this source with another PIN: the
    // token checks the PIN after a logout.
    match session.logout() {
        Ok(()) => {}
        Err(e) if rv(&e) == Some(RvError::UserNotLoggedIn) => {}
        Err(e) => return Err(Fail::Ck(e)),
    }
    match session.login(UserType::User, Some(pin)) {
        Ok(()) => {
            record(key, hash, holder);
            Ok(())
        }
        Err(e) => Err(Fail::Ck(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pin_hash_is_salted_and_stable_in_the_process() {
        let a = digest(&AuthPin::from("1234".to_string())).unwrap();
        let b = digest(&AuthPin::from("1234".to_string())).unwrap();
        let c = digest(&AuthPin::from("1235".to_string())).unwrap();
        assert_eq!(a, b);
        assert_ne!(a, c);
        let unsalted: [u8; 32] = Sha256::digest(b"1234").into();
        assert_ne!(a, unsalted);
    }

    #[test]
    fn a_record_goes_with_its_last_holder() {
        let key = LoginKey {
            module: "/m.so".into(),
            label: "t".into(),
        };
        let (h1, h2) = (new_holder(), new_holder());
        record(&key, [1; 32], h1);
        record(&key, [1; 32], h2);
        release(h1);
        assert!(lock(registry()).contains_key(&key));
        release(h2);
        assert!(!lock(registry()).contains_key(&key));
    }
}

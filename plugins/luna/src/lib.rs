//! # plugin-luna: keyhold key source on a PKCS#11 partition
//!
//! Serves AES-256 keys that live in a PKCS#11 token (a Thales Luna partition in
//! production; SoftHSM2 in every test) through the [`cryptoki`] crate. Built as a
//! `cdylib` (`libplugin_luna.so`, loaded by keyhold) and an `rlib` (its PKCS#11 helpers
//! are used by the tests and by the `keyhold-pkcs11` binary, `src/bin/keyhold-pkcs11.rs`).
//!
//! ## Configuration (the key source's JSON section; unknown fields are refused)
//! - `module`: path of the PKCS#11 module (`.so`).
//! - `token_label`: label of the token (partition). The slot is found by label each
//!   time it is needed: slot ids change between processes and re-initialisations.
//! - `pin_env` or `pin_file`: where the user PIN is read from (never the config text;
//!   never logged).
//! - `pool_size` (default 8): logged-in sessions kept open.
//! - `op_timeout_ms` (default 200): bound on waiting for a free session; an exhausted
//!   pool answers [`KeySourceError::Timeout`].
//! - `module_env`: environment variables the module reads in `C_Initialize` (once per
//!   module per process). SoftHSM2 needs `SOFTHSM2_CONF`; Luna needs nothing. They
//!   must be in keyhold's environment from its start: the plugin never changes the
//!   process environment (`setenv` is not thread-safe and keyhold's threads are
//!   running), and refuses a `module_env` that differs from it.
//! - The PIN is never kept: it is read from `pin_env`/`pin_file` for each login
//!   ([`config::PinSource`]) and wiped (zeroized) right after. Only a salted SHA-256 of
//!   the PIN that logged a token in stays in memory, to check a later login (below).
//!
//! ## Opening a source
//! - The token is found by label among the slots with a token. A token whose
//!   `C_GetTokenInfo` answer cryptoki cannot parse (openCryptoki fills `utcTime` with a
//!   non-date) is read raw ([`token`]; the one `unsafe` module, `raw`) and still found by
//!   label. "No token labelled ..." lists the labels present and the slots that could
//!   not be read, with the reason; when the module shows no token at all it hints that
//!   the module's configuration may be missing from its environment (`module_env`,
//!   e.g. `SOFTHSM2_CONF`), and, when the module was initialised in this process with
//!   another `module_env`, that it cannot be re-initialised in-process (a restart
//!   applies it).
//! - The token must offer `CKM_AES_KEY_GEN` (with `CKF_GENERATE`) and `CKM_AES_GCM`
//!   (with `CKF_ENCRYPT` and `CKF_DECRYPT`), both for 256-bit keys
//!   ([`mechanisms`]); otherwise the open is refused ([`KeySourceError::Unsupported`])
//!   naming what is missing.
//! - One session is logged in at open, so a wrong PIN fails there, also when another
//!   source of the process is already logged in to the token (`C_Login` then answers
//!   `CKR_USER_ALREADY_LOGGED_IN` whatever the PIN): a process-wide registry keeps a
//!   salted hash of the PIN that logged each token in, and a different PIN is refused
//!   while another source holds that login; a login made outside the registry is
//!   checked by the token after a `C_Logout` (module `login`).
//! - `CKA_DESTROYABLE` is used only when `C_GetInfo` reports PKCS#11 2.40 or later
//!   (or until a key template holding it is refused as `CKR_ATTRIBUTE_TYPE_INVALID`).
//!
//! ## Behaviour
//! - Keys are token objects of class `CKO_SECRET_KEY` found by `CKA_LABEL`. Handles are
//!   cached per label and forgotten on `CKR_OBJECT_HANDLE_INVALID`/`CKR_KEY_HANDLE_INVALID`
//!   and whenever the sessions are invalidated.
//! - A label carried by two or more secret key objects (made outside keyhold) cannot be
//!   used: every lookup of it answers [`KeySourceError::Internal`] naming the label and
//!   the count, `health()` is [`HealthStatus::Degraded`] with the labels named in the
//!   node's model, and `list_keys` lists every object. Found by a scan at open, by
//!   `health()` and `list_keys()` (which also drop a cached handle of such a label),
//!   and by every lookup that is not cached.
//! - Created keys: AES-256 with every security-relevant attribute set, none left to the
//!   module's defaults: `CKA_TOKEN`, `CKA_PRIVATE`, `CKA_SENSITIVE` true;
//!   `CKA_EXTRACTABLE`, `CKA_MODIFIABLE`, `CKA_SIGN`, `CKA_VERIFY`, `CKA_DERIVE` false;
//!   `CKA_ENCRYPT/DECRYPT/WRAP/UNWRAP` from the usage; `CKA_DESTROYABLE` from
//!   `NewKey::deletable` where the module knows it; `CKA_ID` = the label.
//!   `exportable=true` is refused as unsupported. A non-deletable key is also recorded
//!   in the host's key-value store (`nodelete/<label>`): the promise where the module
//!   lacks `CKA_DESTROYABLE` or ignores it; `delete_key` refuses a key that either
//!   marks non-deletable.
//! - `KeyInfo.attributes` show `CKA_LABEL`, `CKA_ID`, `CKA_KEY_TYPE`, `CKA_VALUE_LEN`,
//!   `CKA_TOKEN`, `CKA_PRIVATE`, `CKA_SENSITIVE`, `CKA_EXTRACTABLE`,
//!   `CKA_ALWAYS_SENSITIVE`, `CKA_NEVER_EXTRACTABLE`, `CKA_MODIFIABLE`, the usage
//!   attributes, `CKA_SIGN`, `CKA_VERIFY`, `CKA_DERIVE` (booleans as "true"/"false"),
//!   `CKA_DESTROYABLE` where the module knows it, and the AES-GCM invocation count.
//!   `KeyInfo.exportable` is `CKA_EXTRACTABLE`.
//! - Enable/disable is a flag in the host's key-value store (`disabled/<label>`); the
//!   HSM object is never modified, so re-enabling is exact.
//! - AES-GCM is `CKM_AES_GCM` with a 128-bit tag and a 12-byte IV from the OS CSPRNG
//!   (what the module writes back into the IV buffer is what is returned).
//! - Sessions invalidated underneath (`CKR_SESSION_HANDLE_INVALID`, `CKR_SESSION_CLOSED`,
//!   `CKR_USER_NOT_LOGGED_IN`, `CKR_DEVICE_ERROR`, `CKR_TOKEN_NOT_PRESENT`, ...) are
//!   dropped, the token re-found by label, a session reopened and logged in, and the
//!   operation retried once; a missing token is [`KeySourceError::Unavailable`] until it
//!   is back.
// Unsafe code only in `raw` (reading a token's raw CK_TOKEN_INFO), which allows it.
#![deny(unsafe_code)]
#![warn(missing_docs)]

mod attrs;
pub mod config;
mod duplicates;
mod login;
pub mod mechanisms;
pub mod pkcs11;
mod raw;
pub mod token;

use std::{
    collections::HashMap,
    path::PathBuf,
    sync::{
        Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use cryptoki::{
    context::Function,
    error::{Error, RvError},
    mechanism::Mechanism,
    object::{Attribute, AttributeType, ObjectClass, ObjectHandle},
    session::Session,
};
use keyhold_sdk::{
    DecryptInput, EkmNode, Encrypted, HealthStatus, HostBox, KeyAttribute, KeyInfo, KeySourceError,
    KeySourceImpl, KeyUsage, LogLevel, NewKey, Operation, Plugin, SourceInfo,
    abi_stable::std_types::{RSlice, RStr},
    invocations::{self, InvocationCounter},
};

use attrs::{KeyAttrs, USAGE_ATTRS, new_key_template, secret_key_template};
pub use config::Config;
use duplicates::Duplicates;
use pkcs11::{Fail, SessionPool, lock};
use token::TokenFacts;

/// The plugin: `libplugin_luna.so`.
pub struct LunaPlugin;

impl Plugin for LunaPlugin {
    const NAME: &'static str = "luna";
    const VENDOR: &'static str = "Thales";
    const MODEL: &'static str =
        concat!("keyhold PKCS#11 (Luna) plugin ", env!("CARGO_PKG_VERSION"));
    type Source = LunaSource;

    fn open(config: &str, host: HostBox) -> Result<LunaSource, KeySourceError> {
        LunaSource::open(config, host)
    }
}

/// The exported root module (kept in a private module: the macro's static is not API).
mod root {
    use super::LunaPlugin;
    keyhold_sdk::export_plugin!(LunaPlugin);
}

/// Key size of every key this source creates and accepts as a health-check key.
const KEY_BYTES: u64 = 32;

/// A key found on the token: its handle (valid in this process until the object or
/// the token goes away) and usage attributes.
#[derive(Debug, Clone, Copy)]
struct KeyRef {
    handle: ObjectHandle,
    usage: KeyUsage,
}

fn host_result<T>(
    r: keyhold_sdk::abi_stable::std_types::RResult<T, KeySourceError>,
) -> Result<T, KeySourceError> {
    r.into_result()
}

/// One opened key source: a token of a PKCS#11 module, its session pool and the
/// host's storage for enabled flags.
pub struct LunaSource {
    pool: SessionPool,
    host: HostBox,
    module_path: PathBuf,
    snapshot: Mutex<TokenFacts>,
    keys: Mutex<HashMap<String, KeyRef>>,
    /// Whether the module implements `CKA_DESTROYABLE` (PKCS#11 2.40 by `C_GetInfo`;
    /// cleared when a key template with it is refused as `CKR_ATTRIBUTE_TYPE_INVALID`).
    destroyable_known: AtomicBool,
    /// Labels carried by more than one secret key object.
    duplicates: Mutex<Duplicates>,
    /// Encryptions per key (label), against the AES-GCM limit for random IVs; persisted
    /// in the host KV at `gcm-invocations/<label>` (see [`keyhold_sdk::invocations`]).
    invocations: InvocationCounter,
}

fn disabled_key(name: &str) -> String {
    format!("disabled/{name}")
}

fn nodelete_key(name: &str) -> String {
    format!("nodelete/{name}")
}

fn check_name(name: &str) -> Result<(), KeySourceError> {
    if name.is_empty() {
        return Err(KeySourceError::invalid_input("key name must not be empty"));
    }
    Ok(())
}

impl LunaSource {
    /// Opens a key source from its JSON configuration: loads (once per process) and
    /// initializes the module, finds the token by label, logs in.
    pub fn open(config: &str, host: HostBox) -> Result<LunaSource, KeySourceError> {
        let config = Config::parse(config)?;
        let pin = config.pin_source()?;
        // Read once now so that a missing or empty PIN is refused before the module loads.
        drop(pin.read()?);
        let env = config.resolved_module_env();
        let ctx = pkcs11::module(&config.module, &env)?;
        let scan = token::scan(&ctx, &config.module, &config.token_label).map_err(|e| {
            KeySourceError::unavailable(format!(
                "cannot list the tokens of PKCS#11 module '{}': {e}",
                config.module.display()
            ))
        })?;
        let Some((slot, facts)) = scan.found.clone() else {
            let other_env = pkcs11::initialised_with_other_env(&config.module, &env);
            return Err(KeySourceError::invalid_input(token::not_found_message(
                &config.token_label,
                &config.module,
                &scan,
                other_env.as_deref(),
            )));
        };
        let missing = mechanisms::check(&ctx, slot).map_err(|e| {
            KeySourceError::unavailable(format!(
                "cannot read the mechanisms of token '{}': {e}",
                config.token_label
            ))
        })?;
        if !missing.is_empty() {
            return Err(KeySourceError::Unsupported {
                reason: format!(
                    "token '{}' of PKCS#11 module '{}' lacks what keyhold needs: {}",
                    config.token_label,
                    config.module.display(),
                    missing.join("; ")
                )
                .into(),
            });
        }
        let destroyable_known = mechanisms::knows_destroyable(&ctx);
        let pool = SessionPool::new(
            ctx,
            &config.module,
            &config.token_label,
            pin,
            config.pool_size,
            Duration::from_millis(config.op_timeout_ms),
        );
        // Open and log in one session now, so that a wrong PIN fails here (even when
        // the token is already logged in by another source: see `login`).
        match pool.acquire() {
            Ok(lease) => drop(lease),
            Err(Fail::Ks(e)) => return Err(e),
            Err(Fail::Ck(e)) => return Err(pkcs11::open_error(&config.token_label, &e)),
        }
        let source = LunaSource {
            pool,
            host,
            module_path: config.module,
            snapshot: Mutex::new(facts),
            keys: Mutex::new(HashMap::new()),
            destroyable_known: AtomicBool::new(destroyable_known),
            duplicates: Mutex::new(Duplicates::default()),
            invocations: InvocationCounter::new(),
        };
        source.scan_duplicates()?;
        let snapshot = lock(&source.snapshot).clone();
        let mut notes = Vec::new();
        if !destroyable_known {
            notes.push(
                "; the module predates PKCS#11 2.40: CKA_DESTROYABLE is not used, \
                 non-deletable keys are kept by the host's nodelete flag"
                    .to_string(),
            );
        }
        if let Some(d) = lock(&source.duplicates).describe() {
            notes.push(format!("; duplicated key labels: {d}"));
        }
        source.host.log(
            if lock(&source.duplicates).describe().is_some() {
                LogLevel::Warn
            } else {
                LogLevel::Info
            },
            RStr::from_str(&format!(
                "luna: opened token '{}' (serial {}, {}) through '{}', pool of {}{}",
                config.token_label,
                snapshot.serial,
                snapshot.describe(),
                source.module_path.display(),
                config.pool_size,
                notes.concat()
            )),
        );
        Ok(source)
    }

    /// The session pool (tests use it to hold sessions and to reach the token).
    pub fn pool(&self) -> &SessionPool {
        &self.pool
    }

    fn is_disabled(&self, name: &str) -> Result<bool, KeySourceError> {
        Ok(host_result(self.host.kv_get(RStr::from_str(&disabled_key(name))))?.is_some())
    }

    fn is_protected(&self, name: &str) -> Result<bool, KeySourceError> {
        Ok(host_result(self.host.kv_get(RStr::from_str(&nodelete_key(name))))?.is_some())
    }

    fn forget_keys(&self) {
        lock(&self.keys).clear();
    }

    fn find_key(&self, session: &Session, name: &str) -> Result<KeyRef, Fail> {
        if let Some(k) = lock(&self.keys).get(name) {
            return Ok(*k);
        }
        let handles = session.find_objects(&secret_key_template(name))?;
        lock(&self.duplicates).saw(name, handles.len());
        let handle = match handles.as_slice() {
            [] => {
                pkcs11::ensure_logged_in(session)?;
                return Err(Fail::Ks(KeySourceError::not_found(name)));
            }
            [h] => *h,
            _ => return Err(Fail::Ks(duplicates::error(name, handles.len()))),
        };
        let a = KeyAttrs::read_some(session, handle, &USAGE_ATTRS)?;
        let k = KeyRef {
            handle,
            usage: a.usage(),
        };
        lock(&self.keys).insert(name.to_string(), k);
        Ok(k)
    }

    /// Runs `op` with the key named `name` on a pooled session; a stale cached handle
    /// is looked up again once.
    fn with_key<T>(
        &self,
        what: &str,
        name: &str,
        mut op: impl FnMut(&Session, KeyRef) -> Result<T, Fail>,
    ) -> Result<T, KeySourceError> {
        check_name(name)?;
        let result = self.pool.run(what, |session| {
            let key = self.find_key(session, name)?;
            match op(session, key) {
                Err(Fail::Ck(e)) if pkcs11::is_handle_error(&e) => {
                    lock(&self.keys).remove(name);
                    let key = self.find_key(session, name)?;
                    op(session, key)
                }
                other => other,
            }
        });
        if matches!(result, Err(KeySourceError::Unavailable { .. })) {
            self.forget_keys();
        }
        result
    }

    /// The labels of every secret key object (one per object).
    fn all_labels(&self) -> Result<Vec<String>, KeySourceError> {
        self.pool.run("list key labels", |session| {
            pkcs11::ensure_logged_in(session)?;
            let handles = session.find_objects(&[Attribute::Class(ObjectClass::SECRET_KEY)])?;
            let mut labels = Vec::with_capacity(handles.len());
            for handle in handles {
                match KeyAttrs::read_some(session, handle, &[AttributeType::Label]) {
                    Ok(a) => labels.extend(a.label),
                    Err(e) if pkcs11::is_handle_error(&e) => {}
                    Err(e) => return Err(Fail::Ck(e)),
                }
            }
            Ok(labels)
        })
    }

    /// Records the duplicated labels of `labels` (a full scan); a cached handle of a
    /// duplicated label is forgotten, so that its next lookup fails.
    fn note_labels<'a>(&self, labels: impl IntoIterator<Item = &'a str>) {
        let mut d = lock(&self.duplicates);
        d.replace_from_scan(labels.into_iter().filter(|l| !l.is_empty()));
        let mut keys = lock(&self.keys);
        for l in d.labels() {
            keys.remove(l);
        }
    }

    fn scan_duplicates(&self) -> Result<(), KeySourceError> {
        let labels = self.all_labels()?;
        self.note_labels(labels.iter().map(String::as_str));
        Ok(())
    }

    fn destroyable_known(&self) -> bool {
        self.destroyable_known.load(Ordering::Relaxed)
    }

    fn key_info(&self, name: &str, attrs: &KeyAttrs) -> Result<KeyInfo, KeySourceError> {
        let destroyable_known = self.destroyable_known();
        let mut attributes = attrs.display(destroyable_known);
        attributes.push(KeyAttribute {
            name: invocations::COUNT_ATTRIBUTE.into(),
            value: self.invocations.count(&self.host, name).to_string().into(),
        });
        Ok(KeyInfo {
            name: name.into(),
            bits: attrs
                .value_len
                .map(|v| u32::try_from(v.saturating_mul(8)).unwrap_or(u32::MAX))
                .unwrap_or(0),
            usage: attrs.usage(),
            enabled: !self.is_disabled(name)?,
            exportable: attrs.extractable.unwrap_or(true),
            // CKA_DESTROYABLE defaults to true; modules before PKCS#11 2.40 lack it (and
            // the host's nodelete flag alone decides).
            deletable: (!destroyable_known || attrs.destroyable.unwrap_or(true))
                && !self.is_protected(name)?,
            attributes: attributes.into(),
        })
    }

    /// Refuses `key` (found by [`LunaSource::with_key`]) when it is disabled or lacks
    /// the usage `op` needs.
    fn check_usable(&self, name: &str, key: KeyRef, op: Operation) -> Result<(), Fail> {
        KeySourceError::check_use(name, !self.is_disabled(name)?, key.usage, op).map_err(Fail::Ks)
    }

    fn token_state(&self) -> Option<TokenFacts> {
        let ctx = self.pool.context();
        match token::find(ctx, &self.module_path, self.pool.token_label()) {
            Ok(Some((_, facts))) => {
                *lock(&self.snapshot) = facts.clone();
                Some(facts)
            }
            _ => None,
        }
    }
}

fn not_permitted(e: &Error) -> bool {
    pkcs11::rv(e) == Some(RvError::KeyFunctionNotPermitted)
}

fn is_decrypt_call(e: &Error) -> bool {
    matches!(
        e,
        Error::Pkcs11(
            _,
            Function::Decrypt | Function::DecryptUpdate | Function::DecryptFinal
        )
    )
}

impl KeySourceImpl for LunaSource {
    fn info(&self) -> SourceInfo {
        let snap = self
            .token_state()
            .unwrap_or_else(|| lock(&self.snapshot).clone());
        SourceInfo {
            vendor: snap.manufacturer.as_str().into(),
            model: format!("{} via {}", snap.describe(), self.module_path.display()).into(),
        }
    }

    fn health(&self) -> Vec<EkmNode> {
        let present = self.token_state();
        let snap = present
            .clone()
            .unwrap_or_else(|| lock(&self.snapshot).clone());
        let status = if present.is_none() {
            self.pool.invalidate();
            self.forget_keys();
            HealthStatus::Unavailable
        } else {
            // A scan of the labels: the session check and the duplicates in one go.
            match self.scan_duplicates() {
                Ok(()) if lock(&self.duplicates).describe().is_some() => HealthStatus::Degraded,
                Ok(()) => HealthStatus::Active,
                Err(KeySourceError::Timeout { .. }) => HealthStatus::Degraded,
                Err(_) => HealthStatus::Unavailable,
            }
        };
        let mut model = snap.describe();
        if let Some(d) = lock(&self.duplicates).describe() {
            model.push_str(&format!(
                "; DEGRADED: key labels carried by more than one object: {d} (remove or \
                 relabel the extra objects)"
            ));
        }
        vec![EkmNode {
            id: snap.serial.into(),
            model: model.into(),
            status,
        }]
    }

    fn list_keys(&self) -> Result<Vec<KeyInfo>, KeySourceError> {
        let found = self.pool.run("list keys", |session| {
            pkcs11::ensure_logged_in(session)?;
            let handles = session.find_objects(&[Attribute::Class(ObjectClass::SECRET_KEY)])?;
            let mut found = Vec::with_capacity(handles.len());
            for handle in handles {
                match KeyAttrs::read(session, handle) {
                    Ok(attrs) => found.push(attrs),
                    // Destroyed between the search and the read.
                    Err(e) if pkcs11::is_handle_error(&e) => {}
                    Err(e) => return Err(Fail::Ck(e)),
                }
            }
            Ok(found)
        })?;
        self.note_labels(found.iter().filter_map(|a| a.label.as_deref()));
        let mut keys = Vec::with_capacity(found.len());
        for attrs in found {
            if let Some(label) = attrs.label.clone().filter(|l| !l.is_empty()) {
                keys.push(self.key_info(&label, &attrs)?);
            }
        }
        keys.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(keys)
    }

    fn get_key(&self, name: &str) -> Result<KeyInfo, KeySourceError> {
        let attrs = self.with_key("read key attributes", name, |s, k| {
            Ok(KeyAttrs::read(s, k.handle)?)
        })?;
        self.key_info(name, &attrs)
    }

    fn create_key(&self, spec: NewKey) -> Result<KeyInfo, KeySourceError> {
        let name = spec.name.as_str();
        check_name(name)?;
        if spec.exportable {
            return Err(KeySourceError::Unsupported {
                reason: "PKCS#11 keys are created non-extractable (CKA_EXTRACTABLE=false); \
                         exportable keys are not supported"
                    .into(),
            });
        }
        let usage = spec.usage;
        let deletable = spec.deletable;
        let handle = self.pool.run("C_GenerateKey", |session| {
            pkcs11::ensure_logged_in(session)?;
            if !session.find_objects(&secret_key_template(name))?.is_empty() {
                return Err(Fail::Ks(KeySourceError::AlreadyExists { key: name.into() }));
            }
            let known = self.destroyable_known();
            let template = new_key_template(name, usage, deletable, known);
            match session.generate_key(&Mechanism::AesKeyGen, &template) {
                // A module that claims 2.40 but does not know CKA_DESTROYABLE: without it
                // (the host's nodelete flag keeps the promise).
                Err(e) if known && pkcs11::rv(&e) == Some(RvError::AttributeTypeInvalid) => {
                    self.destroyable_known.store(false, Ordering::Relaxed);
                    let template = new_key_template(name, usage, deletable, false);
                    Ok(session.generate_key(&Mechanism::AesKeyGen, &template)?)
                }
                other => Ok(other?),
            }
        })?;
        lock(&self.keys).remove(name);
        // A stale flag of an earlier key of that name must not disable the new one.
        host_result(self.host.kv_delete(RStr::from_str(&disabled_key(name))))?;
        let protect_key = nodelete_key(name);
        let protect = RStr::from_str(&protect_key);
        if deletable {
            host_result(self.host.kv_delete(protect))?;
        } else {
            host_result(self.host.kv_put(protect, RSlice::from_slice(b"1")))?;
        }
        let attrs = self
            .pool
            .run("read key attributes", |s| Ok(KeyAttrs::read(s, handle)?))?;
        self.host.log(
            LogLevel::Info,
            RStr::from_str(&format!("luna: created key '{name}' ({usage})")),
        );
        self.key_info(name, &attrs)
    }

    fn delete_key(&self, name: &str) -> Result<(), KeySourceError> {
        let refused = || KeySourceError::InvalidKey {
            key: name.into(),
            problems: vec!["the key is not deletable (CKA_DESTROYABLE is false)".into()].into(),
        };
        if self.is_protected(name)? {
            // Checked after the key is found, so that an unknown key stays NotFound.
            self.with_key("find key", name, |_, _| Ok(()))?;
            return Err(refused());
        }
        self.with_key("C_DestroyObject", name, |s, k| {
            let destroyable = s
                .get_attributes(k.handle, &[AttributeType::Destroyable])?
                .into_iter()
                .all(|a| !matches!(a, Attribute::Destroyable(false)));
            if !destroyable {
                return Err(Fail::Ks(refused()));
            }
            match s.destroy_object(k.handle) {
                Ok(()) => Ok(()),
                Err(e) if pkcs11::rv(&e) == Some(RvError::ActionProhibited) => {
                    Err(Fail::Ks(refused()))
                }
                Err(e) => Err(Fail::Ck(e)),
            }
        })?;
        lock(&self.keys).remove(name);
        host_result(self.host.kv_delete(RStr::from_str(&disabled_key(name))))?;
        host_result(self.host.kv_delete(RStr::from_str(&nodelete_key(name))))?;
        // A key created later under this label is another key: its count starts anew.
        self.invocations.forget(&self.host, name)?;
        Ok(())
    }

    fn set_enabled(&self, name: &str, enabled: bool) -> Result<KeyInfo, KeySourceError> {
        // The key must exist; its HSM attributes are left untouched.
        self.with_key("find key", name, |_, _| Ok(()))?;
        let flag = disabled_key(name);
        if enabled {
            host_result(self.host.kv_delete(RStr::from_str(&flag)))?;
        } else {
            host_result(
                self.host
                    .kv_put(RStr::from_str(&flag), RSlice::from_slice(b"1")),
            )?;
        }
        self.get_key(name)
    }

    fn validate_health_check_key(&self, name: &str) -> Result<(), KeySourceError> {
        let attrs = self.with_key("read key attributes", name, |s, k| {
            Ok(KeyAttrs::read(s, k.handle)?)
        })?;
        let problems = attrs.health_check_problems();
        KeySourceError::check_key(name, problems)
    }

    fn encrypt(
        &self,
        name: &str,
        plaintext: &[u8],
        aad: &[u8],
    ) -> Result<Encrypted, KeySourceError> {
        check_name(name)?;
        let (iv, ciphertext, tag) = self.with_key("AES-GCM encrypt", name, |s, key| {
            self.check_usable(name, key, Operation::Encrypt)?;
            // Counted before the IV is drawn: refused at the limit for random IVs.
            self.invocations.take(&self.host, name)?;
            let mut iv = [0u8; pkcs11::IV_LEN];
            pkcs11::random_iv(&mut iv)?;
            match pkcs11::gcm_encrypt(s, key.handle, &mut iv, plaintext, aad) {
                Ok((ct, tag)) => Ok((iv, ct, tag)),
                Err(e) if not_permitted(&e) => {
                    lock(&self.keys).remove(name);
                    Err(Fail::Ks(KeySourceError::KeyUsage {
                        key: name.into(),
                        operation: Operation::Encrypt,
                    }))
                }
                Err(e) => Err(Fail::Ck(e)),
            }
        })?;
        Ok(Encrypted {
            iv: iv.to_vec().into(),
            ciphertext: ciphertext.into(),
            tag: tag.into(),
        })
    }

    fn decrypt(&self, name: &str, input: DecryptInput<'_>) -> Result<Vec<u8>, KeySourceError> {
        check_name(name)?;
        let iv = input.iv.as_slice();
        let tag = input.tag.as_slice();
        if iv.len() != 12 && iv.len() != 16 {
            return Err(KeySourceError::invalid_input(format!(
                "the IV must be 12 or 16 bytes, not {}",
                iv.len()
            )));
        }
        if tag.len() != pkcs11::TAG_LEN {
            return Err(KeySourceError::invalid_input(format!(
                "the authentication tag must be {} bytes, not {}",
                pkcs11::TAG_LEN,
                tag.len()
            )));
        }
        self.with_key("AES-GCM decrypt", name, |s, key| {
            self.check_usable(name, key, Operation::Decrypt)?;
            match pkcs11::gcm_decrypt(
                s,
                key.handle,
                iv,
                input.ciphertext.as_slice(),
                tag,
                input.aad.as_slice(),
            ) {
                Ok(pt) => Ok(pt),
                Err(e) if not_permitted(&e) => {
                    lock(&self.keys).remove(name);
                    Err(Fail::Ks(KeySourceError::KeyUsage {
                        key: name.into(),
                        operation: Operation::Decrypt,
                    }))
                }
                Err(e) if is_decrypt_call(&e) && pkcs11::decrypt_error(&e) => {
                    Err(Fail::Ks(KeySourceError::InvalidCiphertext))
                }
                Err(e) => Err(Fail::Ck(e)),
            }
        })
    }
}

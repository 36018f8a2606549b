//! # plugin-luna: keyhold key source on a PKCS#11 partition
//!
//! Serves AES-256 keys that live in a PKCS#11 token (a Thales Luna partition in
//! production; SoftHSM2 in every test) through the [`cryptoki`] crate. Built as a
//! `cdylib` (`libplugin_luna.so`, loaded by keyhold) and an `rlib` (its PKCS#11 helpers
//! are used by the tests and by the `luna-keys` example).
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
//!   ([`config::PinSource`]) and wiped (zeroized) right after.
//!
//! ## Behaviour
//! - Keys are token objects of class `CKO_SECRET_KEY` found by `CKA_LABEL`. Handles are
//!   cached per label and forgotten on `CKR_OBJECT_HANDLE_INVALID`/`CKR_KEY_HANDLE_INVALID`
//!   and whenever the sessions are invalidated.
//! - Created keys: AES-256, `CKA_TOKEN`, `CKA_PRIVATE`, `CKA_SENSITIVE` true,
//!   `CKA_EXTRACTABLE` false, `CKA_ENCRYPT/DECRYPT/WRAP/UNWRAP` from the usage,
//!   `CKA_DESTROYABLE` from `NewKey::deletable`, `CKA_ID` = the label. `exportable=true` is
//!   refused as unsupported. A non-deletable key is also recorded in the host's
//!   key-value store (`nodelete/<label>`), in case a token ignores `CKA_DESTROYABLE`;
//!   `delete_key` refuses a key that either marks non-deletable.
//! - Enable/disable is a flag in the host's key-value store (`disabled/<label>`); the
//!   HSM object is never modified, so re-enabling is exact.
//! - AES-GCM is `CKM_AES_GCM` with a 128-bit tag and a 12-byte IV from the OS CSPRNG
//!   (what the module writes back into the IV buffer is what is returned).
//! - Sessions invalidated underneath (`CKR_SESSION_HANDLE_INVALID`, `CKR_SESSION_CLOSED`,
//!   `CKR_USER_NOT_LOGGED_IN`, `CKR_DEVICE_ERROR`, `CKR_TOKEN_NOT_PRESENT`, ...) are
//!   dropped, the token re-found by label, a session reopened and logged in, and the
//!   operation retried once; a missing token is [`KeySourceError::Unavailable`] until it
//!   is back.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod config;
pub mod pkcs11;

use std::{collections::HashMap, path::PathBuf, sync::Mutex, time::Duration};

use cryptoki::{
    context::Function,
    error::{Error, RvError},
    mechanism::Mechanism,
    object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle},
    session::Session,
    slot::TokenInfo,
};
use keyhold_sdk::{
    DecryptInput, EkmNode, Encrypted, HealthStatus, HostBox, KeyAttribute, KeyInfo, KeySourceError,
    KeySourceImpl, KeyUsage, LogLevel, NewKey, Operation, Plugin, SourceInfo,
    abi_stable::std_types::{RSlice, RStr},
    invocations::{self, InvocationCounter},
};

pub use config::Config;
use pkcs11::{Fail, SessionPool, lock};

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

/// What the token reported about itself, last time it was asked.
#[derive(Debug, Clone)]
struct TokenSnapshot {
    serial: String,
    manufacturer: String,
    model: String,
}

impl TokenSnapshot {
    fn from_info(info: &TokenInfo) -> TokenSnapshot {
        let manufacturer = info.manufacturer_id().trim_end().to_string();
        TokenSnapshot {
            serial: info.serial_number().trim_end().to_string(),
            model: format!(
                "{} {} fw {} (token '{}')",
                manufacturer,
                info.model().trim_end(),
                info.firmware_version(),
                info.label().trim_end()
            ),
            manufacturer,
        }
    }
}

/// A key found on the token: its handle (valid in this process until the object or
/// the token goes away) and usage attributes.
#[derive(Debug, Clone, Copy)]
struct KeyRef {
    handle: ObjectHandle,
    usage: KeyUsage,
}

/// The attributes this source reads from a key object.
#[derive(Debug, Default)]
struct KeyAttrs {
    label: Option<String>,
    id: Option<Vec<u8>>,
    key_type: Option<KeyType>,
    value_len: Option<u64>,
    token: Option<bool>,
    private: Option<bool>,
    sensitive: Option<bool>,
    extractable: Option<bool>,
    always_sensitive: Option<bool>,
    never_extractable: Option<bool>,
    modifiable: Option<bool>,
    destroyable: Option<bool>,
    encrypt: Option<bool>,
    decrypt: Option<bool>,
    wrap: Option<bool>,
    unwrap: Option<bool>,
}

const ATTRS: [AttributeType; 16] = [
    AttributeType::Label,
    AttributeType::Id,
    AttributeType::KeyType,
    AttributeType::ValueLen,
    AttributeType::Token,
    AttributeType::Private,
    AttributeType::Sensitive,
    AttributeType::Extractable,
    AttributeType::AlwaysSensitive,
    AttributeType::NeverExtractable,
    AttributeType::Modifiable,
    AttributeType::Destroyable,
    AttributeType::Encrypt,
    AttributeType::Decrypt,
    AttributeType::Wrap,
    AttributeType::Unwrap,
];

impl KeyAttrs {
    fn read(session: &Session, handle: ObjectHandle) -> Result<KeyAttrs, Error> {
        let mut a = KeyAttrs::default();
        for attr in session.get_attributes(handle, &ATTRS)? {
            match attr {
                Attribute::Label(v) => a.label = Some(String::from_utf8_lossy(&v).into_owned()),
                Attribute::Id(v) => a.id = Some(v),
                Attribute::KeyType(v) => a.key_type = Some(v),
                Attribute::ValueLen(v) => a.value_len = Some(u64::from(v)),
                Attribute::Token(v) => a.token = Some(v),
                Attribute::Private(v) => a.private = Some(v),
                Attribute::Sensitive(v) => a.sensitive = Some(v),
                Attribute::Extractable(v) => a.extractable = Some(v),
                Attribute::AlwaysSensitive(v) => a.always_sensitive = Some(v),
                Attribute::NeverExtractable(v) => a.never_extractable = Some(v),
                Attribute::Modifiable(v) => a.modifiable = Some(v),
                Attribute::Destroyable(v) => a.destroyable = Some(v),
                Attribute::Encrypt(v) => a.encrypt = Some(v),
                Attribute::Decrypt(v) => a.decrypt = Some(v),
                Attribute::Wrap(v) => a.wrap = Some(v),
                Attribute::Unwrap(v) => a.unwrap = Some(v),
                _ => {}
            }
        }
        Ok(a)
    }

    fn usage(&self) -> KeyUsage {
        let mut usage = KeyUsage::NONE;
        for (flag, bit) in [
            (self.encrypt, KeyUsage::ENCRYPT),
            (self.decrypt, KeyUsage::DECRYPT),
            (self.wrap, KeyUsage::WRAP),
            (self.unwrap, KeyUsage::UNWRAP),
        ] {
            if flag == Some(true) {
                usage = usage.union(bit);
            }
        }
        usage
    }

    fn display(&self) -> Vec<KeyAttribute> {
        fn b(v: Option<bool>) -> Option<String> {
            v.map(|v| v.to_string())
        }
        let rows: [(&str, Option<String>); 16] = [
            ("CKA_LABEL", self.label.clone()),
            ("CKA_ID", self.id.as_ref().map(|id| hex(id))),
            ("CKA_KEY_TYPE", self.key_type.map(|t| t.to_string())),
            ("CKA_VALUE_LEN", self.value_len.map(|v| v.to_string())),
            ("CKA_TOKEN", b(self.token)),
            ("CKA_PRIVATE", b(self.private)),
            ("CKA_SENSITIVE", b(self.sensitive)),
            ("CKA_EXTRACTABLE", b(self.extractable)),
            ("CKA_ALWAYS_SENSITIVE", b(self.always_sensitive)),
            ("CKA_NEVER_EXTRACTABLE", b(self.never_extractable)),
            ("CKA_MODIFIABLE", b(self.modifiable)),
            ("CKA_DESTROYABLE", b(self.destroyable)),
            ("CKA_ENCRYPT", b(self.encrypt)),
            ("CKA_DECRYPT", b(self.decrypt)),
            ("CKA_WRAP", b(self.wrap)),
            ("CKA_UNWRAP", b(self.unwrap)),
        ];
        rows.into_iter()
            .filter_map(|(name, value)| {
                value.map(|value| KeyAttribute {
                    name: name.into(),
                    value: value.into(),
                })
            })
            .collect()
    }

    /// One problem per attribute that keeps the key from being a health-check key.
    fn health_check_problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if self.key_type != Some(KeyType::AES) {
            problems.push("CKA_KEY_TYPE must be CKK_AES".to_string());
        }
        if self.value_len != Some(KEY_BYTES) {
            problems.push(format!("CKA_VALUE_LEN must be {KEY_BYTES} (AES-256)"));
        }
        if self.extractable != Some(false) {
            problems.push("CKA_EXTRACTABLE must be false".to_string());
        }
        if self.sensitive != Some(true) {
            problems.push("CKA_SENSITIVE must be true".to_string());
        }
        for (name, v) in [
            ("CKA_ENCRYPT", self.encrypt),
            ("CKA_DECRYPT", self.decrypt),
            ("CKA_WRAP", self.wrap),
            ("CKA_UNWRAP", self.unwrap),
        ] {
            if v != Some(true) {
                problems.push(format!("{name} must be true"));
            }
        }
        problems
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
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
    snapshot: Mutex<TokenSnapshot>,
    keys: Mutex<HashMap<String, KeyRef>>,
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

fn secret_key_template(label: &str) -> Vec<Attribute> {
    vec![
        Attribute::Class(ObjectClass::SECRET_KEY),
        Attribute::Label(label.as_bytes().to_vec()),
    ]
}

impl LunaSource {
    /// Opens a key source from its JSON configuration: loads (once per process) and
    /// initializes the module, finds the token by label, logs in.
    pub fn open(config: &str, host: HostBox) -> Result<LunaSource, KeySourceError> {
        let config = Config::parse(config)?;
        let pin = config.pin_source()?;
        // Read once now so that a missing or empty PIN is refused before the module loads.
        drop(pin.read()?);
        let ctx = pkcs11::module(&config.module, &config.resolved_module_env())?;
        let found = pkcs11::find_slot(&ctx, &config.token_label).map_err(|e| {
            KeySourceError::unavailable(format!(
                "cannot list the tokens of PKCS#11 module '{}': {e}",
                config.module.display()
            ))
        })?;
        let Some((_, info)) = found else {
            return Err(KeySourceError::invalid_input(format!(
                "no token labelled '{}' in PKCS#11 module '{}' (tokens present: {:?})",
                config.token_label,
                config.module.display(),
                pkcs11::token_labels(&ctx)
            )));
        };
        let pool = SessionPool::new(
            ctx,
            &config.token_label,
            pin,
            config.pool_size,
            Duration::from_millis(config.op_timeout_ms),
        );
        // Open and log in one session now, so that a wrong PIN fails here.
        match pool.acquire() {
            Ok(lease) => drop(lease),
            Err(Fail::Ks(e)) => return Err(e),
            Err(Fail::Ck(e)) => return Err(pkcs11::open_error(&config.token_label, &e)),
        }
        let snapshot = TokenSnapshot::from_info(&info);
        host.log(
            LogLevel::Info,
            RStr::from_str(&format!(
                "luna: opened token '{}' (serial {}, {}) through '{}', pool of {}",
                config.token_label,
                snapshot.serial,
                snapshot.model,
                config.module.display(),
                config.pool_size
            )),
        );
        Ok(LunaSource {
            pool,
            host,
            module_path: config.module,
            snapshot: Mutex::new(snapshot),
            keys: Mutex::new(HashMap::new()),
            invocations: InvocationCounter::new(),
        })
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
        let handle = match handles.as_slice() {
            [] => {
                pkcs11::ensure_logged_in(session)?;
                return Err(Fail::Ks(KeySourceError::not_found(name)));
            }
            [h] => *h,
            _ => {
                return Err(Fail::Ks(KeySourceError::InvalidKey {
                    key: name.into(),
                    problems: vec![
                        format!(
                            "{} secret key objects carry this CKA_LABEL; labels must be unique",
                            handles.len()
                        )
                        .into(),
                    ]
                    .into(),
                }));
            }
        };
        let attrs = session.get_attributes(
            handle,
            &[
                AttributeType::Encrypt,
                AttributeType::Decrypt,
                AttributeType::Wrap,
                AttributeType::Unwrap,
            ],
        )?;
        let mut a = KeyAttrs::default();
        for attr in attrs {
            match attr {
                Attribute::Encrypt(v) => a.encrypt = Some(v),
                Attribute::Decrypt(v) => a.decrypt = Some(v),
                Attribute::Wrap(v) => a.wrap = Some(v),
                Attribute::Unwrap(v) => a.unwrap = Some(v),
                _ => {}
            }
        }
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

    fn key_info(&self, name: &str, attrs: &KeyAttrs) -> Result<KeyInfo, KeySourceError> {
        let mut attributes = attrs.display();
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
            // CKA_DESTROYABLE defaults to true (and tokens before PKCS#11 2.40 lack it).
            deletable: attrs.destroyable.unwrap_or(true) && !self.is_protected(name)?,
            attributes: attributes.into(),
        })
    }

    fn usable_key(&self, session: &Session, name: &str, op: Operation) -> Result<KeyRef, Fail> {
        let key = self.find_key(session, name)?;
        KeySourceError::check_use(name, !self.is_disabled(name)?, key.usage, op)
            .map_err(Fail::Ks)?;
        Ok(key)
    }

    fn token_state(&self) -> Option<TokenSnapshot> {
        let ctx = self.pool.context();
        match pkcs11::find_slot(ctx, self.pool.token_label()) {
            Ok(Some((_, info))) => {
                let snap = TokenSnapshot::from_info(&info);
                *lock(&self.snapshot) = snap.clone();
                Some(snap)
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
            vendor: snap.manufacturer.into(),
            model: format!("{} via {}", snap.model, self.module_path.display()).into(),
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
            match self
                .pool
                .run("C_GetSessionInfo", |s| Ok(pkcs11::ensure_logged_in(s)?))
            {
                Ok(()) => HealthStatus::Active,
                Err(KeySourceError::Timeout { .. }) => HealthStatus::Degraded,
                Err(_) => HealthStatus::Unavailable,
            }
        };
        vec![EkmNode {
            id: snap.serial.into(),
            model: snap.model.into(),
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
            let template = [
                Attribute::Class(ObjectClass::SECRET_KEY),
                Attribute::KeyType(KeyType::AES),
                Attribute::ValueLen(KEY_BYTES.into()),
                Attribute::Token(true),
                Attribute::Private(true),
                Attribute::Sensitive(true),
                Attribute::Extractable(false),
                Attribute::Label(name.as_bytes().to_vec()),
                Attribute::Id(name.as_bytes().to_vec()),
                Attribute::Encrypt(usage.contains(KeyUsage::ENCRYPT)),
                Attribute::Decrypt(usage.contains(KeyUsage::DECRYPT)),
                Attribute::Wrap(usage.contains(KeyUsage::WRAP)),
                Attribute::Unwrap(usage.contains(KeyUsage::UNWRAP)),
                Attribute::Destroyable(deletable),
            ];
            Ok(session.generate_key(&Mechanism::AesKeyGen, &template)?)
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
        let (iv, ciphertext, tag) = self.with_key("AES-GCM encrypt", name, |s, _| {
            let key = self.usable_key(s, name, Operation::Encrypt)?;
            // Counted before the IV is drawn: refused at the limit for random IVs.
            self.invocations.take(&self.host, name)?;
            let mut iv = [0u8; pkcs11::IV_LEN];
            pkcs11::os_random(&mut iv)?;
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
        self.with_key("AES-GCM decrypt", name, |s, _| {
            let key = self.usable_key(s, name, Operation::Decrypt)?;
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

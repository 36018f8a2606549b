//! SoftHSM2 tokens for the `luna` (PKCS#11) key source, prepared with cryptoki.
//!
//! `C_Initialize` reads `SOFTHSM2_CONF` once per process, and SoftHSM2 builds its slot
//! list then: a token initialised by *another* process later is invisible to this one.
//! So the SoftHSM2 configuration (token directory, PIN file) is made once per test
//! process ([`env`]), the module is initialised here, in the test process, before any
//! key source opens, and every test gets a fresh token of its own, initialised
//! in-process ([`LunaToken::new`], [`LunaToken::labelled`]). The luna plugin (linked in,
//! or loaded as a cdylib by a server in this process) loads the same module instance
//! (its `C_Initialize` answers "already initialised", which it accepts) and finds the
//! token by label. This works the same under nextest (one process per test) and
//! `cargo test` (one process per binary, tests in threads).

use std::{
    path::{Path, PathBuf},
    sync::{
        Mutex, OnceLock,
        atomic::{AtomicUsize, Ordering},
    },
};

use cryptoki::{
    context::{CInitializeArgs, CInitializeFlags, Pkcs11},
    error::{Error, RvError},
    mechanism::Mechanism,
    object::{Attribute, KeyType, ObjectClass, ObjectHandle},
    session::{Session, UserType},
    slot::{Slot, TokenInfo},
    types::AuthPin,
};
use serde_json::{Value, json};

use crate::{fixture::SourceFixture, paths::toml_str};

/// Debian's SoftHSM2 module.
pub const MODULE: &str = "/usr/lib/softhsm/libsofthsm2.so";
/// SO PIN of every test token.
pub const SO_PIN: &str = "test-so-pin-1234";
/// User PIN of every test token (in [`Env::pin_file`]).
pub const USER_PIN: &str = "test-user-pin-5678";

/// The per-process SoftHSM2 environment.
#[derive(Debug)]
pub struct Env {
    /// The directory holding everything (kept for the life of the process).
    pub dir: PathBuf,
    /// The softhsm2.conf path.
    pub conf: PathBuf,
    /// The file holding [`USER_PIN`].
    pub pin_file: PathBuf,
    /// The module context of this process.
    ctx: Pkcs11,
}

static ENV: OnceLock<Env> = OnceLock::new();
static TOKEN_INIT: Mutex<()> = Mutex::new(());
static NEXT_TOKEN: AtomicUsize = AtomicUsize::new(0);

/// The variable naming another PKCS#11 module for the luna plugin to use in the tests
/// (the test matrix of `scripts/test.sh` runs the luna suites again on
/// `tests/pkcs11-shim`, a PKCS#11 2.20 module over SoftHSM2). The tests still prepare
/// tokens through SoftHSM2 itself ([`MODULE`]), which that module must serve.
pub const MODULE_ENV: &str = "KEYHOLD_TEST_PKCS11_MODULE";

/// The PKCS#11 module [`config`] gives the luna plugin: `$KEYHOLD_TEST_PKCS11_MODULE`,
/// else SoftHSM2 ([`MODULE`]).
pub fn plugin_module() -> String {
    std::env::var(MODULE_ENV)
        .ok()
        .filter(|m| !m.is_empty())
        .unwrap_or_else(|| MODULE.to_string())
}

/// Whether this machine can run the luna tests (the SoftHSM2 module is installed).
pub fn available() -> bool {
    Path::new(MODULE).is_file()
}

/// Creates the SoftHSM2 configuration and initialises the module (once per process).
pub fn env() -> &'static Env {
    ENV.get_or_init(|| {
        assert!(
            available(),
            "{MODULE} is missing: install softhsm2 (apt-get install softhsm2)"
        );
        let dir = tempfile::Builder::new()
            .prefix("keyhold-softhsm-")
            .tempdir()
            .expect("tempdir")
            .keep();
        let tokens = dir.join("tokens");
        std::fs::create_dir_all(&tokens).expect("token directory");
        let conf = dir.join("softhsm2.conf");
        std::fs::write(
            &conf,
            format!(
                "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n",
                tokens.display()
            ),
        )
        .expect("softhsm2.conf");
        let pin_file = dir.join("user.pin");
        std::fs::write(&pin_file, format!("{USER_PIN}\n")).expect("PIN file");
        // SAFETY: set once, inside this process-wide initialisation, before the module
        // reads it in C_Initialize; the luna plugin's `module_env` sets the same value.
        unsafe { std::env::set_var("SOFTHSM2_CONF", &conf) };
        let ctx = Pkcs11::new(MODULE).expect("SoftHSM2 loads");
        match ctx.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)) {
            Ok(()) | Err(Error::Pkcs11(RvError::CryptokiAlreadyInitialized, _)) => {}
            Err(e) => panic!("SoftHSM2 C_Initialize: {e}"),
        }
        Env {
            dir,
            conf,
            pin_file,
            ctx,
        }
    })
}

/// The module context of this process (the same module instance the plugin uses).
pub fn ctx() -> Pkcs11 {
    env().ctx.clone()
}

/// The slot and token of the token labelled `label`, if the module shows it.
pub fn find_slot(label: &str) -> Option<(Slot, TokenInfo)> {
    let ctx = ctx();
    ctx.get_slots_with_token()
        .expect("slot list")
        .into_iter()
        .filter_map(|slot| Some((slot, ctx.get_token_info(slot).ok()?)))
        .find(|(_, info)| info.label().trim_end() == label)
}

/// The luna plugin's JSON configuration for the token labelled `label` (which need not
/// exist), with the fields of `extra` (a JSON object) added or replaced.
pub fn config(label: &str, extra: Value) -> String {
    let env = env();
    let mut c = json!({
        "module": plugin_module(),
        "token_label": label,
        "pin_file": env.pin_file,
        "module_env": { "SOFTHSM2_CONF": env.conf },
    });
    if let Value::Object(extra) = extra {
        for (k, v) in extra {
            c[k] = v;
        }
    }
    c.to_string()
}

/// A fresh SoftHSM2 token of this test.
#[derive(Debug, Clone)]
pub struct LunaToken {
    /// Its label (distinct per test within the process).
    pub label: String,
}

impl LunaToken {
    /// Initialises a fresh token `keyhold-test-<n>` with [`SO_PIN`] and [`USER_PIN`].
    pub fn new() -> LunaToken {
        LunaToken::labelled(&format!(
            "keyhold-test-{}",
            NEXT_TOKEN.fetch_add(1, Ordering::Relaxed)
        ))
    }

    /// Initialises a fresh token labelled `label` with [`SO_PIN`] and [`USER_PIN`].
    pub fn labelled(label: &str) -> LunaToken {
        let ctx = ctx();
        let _guard = TOKEN_INIT.lock().unwrap_or_else(|p| p.into_inner());
        let slot = ctx
            .get_all_slots()
            .expect("slots")
            .into_iter()
            .find(|s| {
                ctx.get_token_info(*s)
                    .map(|i| !i.token_initialized())
                    .unwrap_or(false)
            })
            .expect("SoftHSM2 offers a free slot");
        ctx.init_token(slot, &AuthPin::from(SO_PIN.to_string()), label)
            .expect("C_InitToken");
        let token = LunaToken {
            label: label.into(),
        };
        let session = ctx.open_rw_session(token.slot()).expect("session");
        session
            .login(UserType::So, Some(&AuthPin::from(SO_PIN.to_string())))
            .expect("SO login");
        session
            .init_pin(&AuthPin::from(USER_PIN.to_string()))
            .expect("C_InitPIN");
        session.logout().expect("SO logout");
        token
    }

    /// The luna plugin's JSON configuration for this token, plus `extra` (see [`config`]).
    pub fn config(&self, extra: Value) -> String {
        config(&self.label, extra)
    }

    /// The luna source on this token, named `luna`.
    pub fn source(&self) -> SourceFixture {
        self.source_named("luna")
    }

    /// The luna source on this token, called `name`.
    pub fn source_named(&self, name: &str) -> SourceFixture {
        luna_source(name, &plugin_module(), &self.label, &env().pin_file, "")
    }

    /// The token's slot.
    pub fn slot(&self) -> Slot {
        self.find().0
    }

    fn find(&self) -> (Slot, TokenInfo) {
        find_slot(&self.label).expect("the token exists")
    }

    /// The token's serial number, as the token reports it.
    pub fn serial(&self) -> String {
        self.find().1.serial_number().trim_end().to_string()
    }

    /// The token's model, as the token reports it.
    pub fn model(&self) -> String {
        self.find().1.model().trim_end().to_string()
    }

    /// A read-write session of this process on the token, logged in as the user.
    /// Generates, with cryptoki (outside keyhold), an AES-256 token key labelled `label`:
    /// private, sensitive, not extractable, all four usages, unless `changes` says
    /// otherwise (each attribute there replaces the one of its type).
    pub fn generate_aes_key(&self, label: &str, changes: &[Attribute]) -> ObjectHandle {
        let mut template = vec![
            Attribute::Class(ObjectClass::SECRET_KEY),
            Attribute::KeyType(KeyType::AES),
            Attribute::ValueLen(32.into()),
            Attribute::Token(true),
            Attribute::Private(true),
            Attribute::Sensitive(true),
            Attribute::Extractable(false),
            Attribute::Encrypt(true),
            Attribute::Decrypt(true),
            Attribute::Wrap(true),
            Attribute::Unwrap(true),
            Attribute::Label(label.as_bytes().to_vec()),
        ];
        for change in changes {
            template.retain(|a| a.attribute_type() != change.attribute_type());
            template.push(change.clone());
        }
        self.user_session()
            .generate_key(&Mechanism::AesKeyGen, &template)
            .unwrap_or_else(|e| panic!("C_GenerateKey '{label}' on '{}': {e}", self.label))
    }

    pub fn user_session(&self) -> Session {
        let session = ctx().open_rw_session(self.slot()).expect("session");
        match session.login(UserType::User, Some(&AuthPin::from(USER_PIN.to_string()))) {
            Ok(()) | Err(Error::Pkcs11(RvError::UserAlreadyLoggedIn, _)) => session,
            Err(e) => panic!("user login on '{}': {e}", self.label),
        }
    }

    /// `C_Logout` from a fresh session of this process: SoftHSM2 logs every session of
    /// the process on this token out (a key source's pooled sessions included).
    pub fn logout_underneath(&self) {
        let session = ctx().open_rw_session(self.slot()).expect("session");
        session.logout().expect("C_Logout");
    }

    /// Re-initialises the token from another process (`softhsm2-util --init-token`): every
    /// object (key) on it is destroyed; label, PINs and serial stay.
    pub fn reinit_from_another_process(&self) {
        let out = std::process::Command::new("softhsm2-util")
            .env("SOFTHSM2_CONF", &env().conf)
            .args([
                "--init-token",
                "--token",
                &self.label,
                "--label",
                &self.label,
                "--so-pin",
                SO_PIN,
                "--pin",
                USER_PIN,
            ])
            .output()
            .expect("softhsm2-util runs");
        assert!(
            out.status.success(),
            "softhsm2-util --init-token: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// The token's directory in the SoftHSM2 file store (moving it away makes the
    /// token vanish, like an unplugged partition).
    pub fn store_dir(&self) -> PathBuf {
        let tokens = env().dir.join("tokens");
        let padded = format!("{:<32}", self.label);
        std::fs::read_dir(&tokens)
            .expect("token directory")
            .map(|e| e.expect("directory entry").path())
            .find(|dir| {
                std::fs::read(dir.join("token.object"))
                    .map(|b| b.windows(32).any(|w| w == padded.as_bytes()))
                    .unwrap_or(false)
            })
            .expect("the token's directory")
    }
}

impl Default for LunaToken {
    fn default() -> Self {
        LunaToken::new()
    }
}

/// A `[sources.<name>]` body for the luna plugin; `extra` are more inline-table fields
/// of `config` (e.g. `pool_size = 2`), or empty.
pub fn luna_source(
    name: &str,
    module: &str,
    label: &str,
    pin_file: &Path,
    extra: &str,
) -> SourceFixture {
    let env = env();
    let extra = if extra.is_empty() {
        String::new()
    } else {
        format!(", {extra}")
    };
    SourceFixture::new(
        name,
        &format!(
            "plugin = \"luna\"\nconfig = {{ module = {}, token_label = {}, pin_file = {}, module_env = {{ SOFTHSM2_CONF = {} }}{extra} }}\n",
            toml_str(module),
            toml_str(label),
            toml_str(pin_file.to_string_lossy()),
            toml_str(env.conf.to_string_lossy()),
        ),
    )
}

impl SourceFixture {
    /// The `luna` source on a fresh SoftHSM2 token of its own (see [`LunaToken`]).
    pub fn luna() -> SourceFixture {
        LunaToken::new().source()
    }
}

/// Encrypts `payload` under `key` of `source` and decrypts it again (with AAD), asserting
/// the plaintext comes back: the smallest proof that a source serves a key.
pub fn round_trip<S: keyhold_sdk::KeySourceImpl>(
    source: &S,
    key: &str,
) -> Result<(), keyhold_sdk::KeySourceError> {
    use keyhold_sdk::{DecryptInput, abi_stable::std_types::RSlice};
    let e = source.encrypt(key, b"payload", b"aad")?;
    let pt = source.decrypt(
        key,
        DecryptInput {
            iv: RSlice::from_slice(&e.iv),
            ciphertext: RSlice::from_slice(&e.ciphertext),
            tag: RSlice::from_slice(&e.tag),
            aad: RSlice::from_slice(b"aad"),
        },
    )?;
    assert_eq!(pt, b"payload");
    Ok(())
}

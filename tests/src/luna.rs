//! The `luna` (PKCS#11) key source on SoftHSM2, prepared for end-to-end tests.
//!
//! `C_Initialize` reads `SOFTHSM2_CONF` once per process, and SoftHSM2 builds its slot
//! list then: a token initialised by *another* process later is invisible to this one.
//! So the SoftHSM2 configuration (token directory, PIN file) is made once per test
//! process ([`env`]), the module is initialised here, in the test process, before any
//! server starts, and every test gets a fresh token of its own, initialised in-process
//! with a distinct label ([`LunaToken::new`]). The server's luna plugin (the cdylib)
//! loads the same module instance (its `C_Initialize` answers "already initialised",
//! which it accepts) and finds the token by label. This works the same under nextest
//! (one process per test) and `cargo test` (one process per binary, tests in threads).

use std::{
    path::{Path, PathBuf},
    sync::{
        Mutex, OnceLock,
        atomic::{AtomicUsize, Ordering},
    },
};

use cryptoki::{context::Pkcs11, session::UserType, types::AuthPin};

use crate::{fixture::SourceFixture, paths::toml_str};

/// Debian's SoftHSM2 module.
pub const MODULE: &str = "/usr/lib/softhsm/libsofthsm2.so";
/// SO PIN of every test token.
pub const SO_PIN: &str = "e2e-so-pin-1234";
/// User PIN of every test token (in [`Env::pin_file`]).
pub const USER_PIN: &str = "e2e-user-pin-5678";

/// The per-process SoftHSM2 environment.
#[derive(Debug)]
pub struct Env {
    /// The directory holding everything (kept for the life of the process).
    pub dir: PathBuf,
    /// The softhsm2.conf path.
    pub conf: PathBuf,
    /// The file holding [`USER_PIN`].
    pub pin_file: PathBuf,
}

static ENV: OnceLock<Env> = OnceLock::new();
static TOKEN_INIT: Mutex<()> = Mutex::new(());
static NEXT_TOKEN: AtomicUsize = AtomicUsize::new(0);

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
            .prefix("keyhold-e2e-softhsm-")
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
        plugin_luna::pkcs11::module(Path::new(MODULE), &module_env(&conf))
            .expect("SoftHSM2 initialises");
        Env {
            dir,
            conf,
            pin_file,
        }
    })
}

fn module_env(conf: &Path) -> Vec<(String, String)> {
    vec![("SOFTHSM2_CONF".to_string(), conf.display().to_string())]
}

/// The module context (the test process's own, same module instance as the server's).
pub fn ctx() -> Pkcs11 {
    let env = env();
    plugin_luna::pkcs11::module(Path::new(MODULE), &module_env(&env.conf)).expect("module")
}

/// A fresh SoftHSM2 token of this test.
#[derive(Debug, Clone)]
pub struct LunaToken {
    /// Its label (distinct per test within the process).
    pub label: String,
}

impl LunaToken {
    /// Initialises a fresh token `keyhold-e2e-<n>` with [`SO_PIN`] and [`USER_PIN`].
    pub fn new() -> LunaToken {
        let label = format!("keyhold-e2e-{}", NEXT_TOKEN.fetch_add(1, Ordering::Relaxed));
        init_token(&label);
        LunaToken { label }
    }

    /// The luna source on this token, named `luna`.
    pub fn source(&self) -> SourceFixture {
        self.source_named("luna")
    }

    /// The luna source on this token, called `name`.
    pub fn source_named(&self, name: &str) -> SourceFixture {
        let env = env();
        luna_source(name, MODULE, &self.label, &env.pin_file, "")
    }

    /// The token's serial number, as the token reports it.
    pub fn serial(&self) -> String {
        self.info().serial_number().trim_end().to_string()
    }

    /// The token's model, as the token reports it.
    pub fn model(&self) -> String {
        self.info().model().trim_end().to_string()
    }

    fn info(&self) -> cryptoki::slot::TokenInfo {
        let ctx = ctx();
        let (_, info) = plugin_luna::pkcs11::find_slot(&ctx, &self.label)
            .expect("slot list")
            .expect("the token exists");
        info
    }

    /// `C_Logout` from a fresh session of this process: SoftHSM2 logs every session of
    /// the process on this token out (the server's pooled sessions included).
    pub fn logout_underneath(&self) {
        let ctx = ctx();
        let (slot, _) = plugin_luna::pkcs11::find_slot(&ctx, &self.label)
            .expect("slot list")
            .expect("the token exists");
        let session = ctx.open_ro_session(slot).expect("session");
        session.logout().expect("C_Logout");
    }

    /// Re-initialises the token from another process (`softhsm2-util --init-token`): every
    /// object (key) on it is destroyed; label, PINs and serial stay.
    pub fn reinit_from_another_process(&self) {
        let env = env();
        let out = std::process::Command::new("softhsm2-util")
            .env("SOFTHSM2_CONF", &env.conf)
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
}

impl Default for LunaToken {
    fn default() -> Self {
        LunaToken::new()
    }
}

/// Initialises a free slot's token as `label`, then sets the user PIN.
fn init_token(label: &str) {
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
    let (slot, _) = plugin_luna::pkcs11::find_slot(&ctx, label)
        .expect("slot list")
        .expect("the new token");
    let session = ctx.open_rw_session(slot).expect("session");
    session
        .login(UserType::So, Some(&AuthPin::from(SO_PIN.to_string())))
        .expect("SO login");
    session
        .init_pin(&AuthPin::from(USER_PIN.to_string()))
        .expect("C_InitPIN");
    session.logout().expect("SO logout");
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

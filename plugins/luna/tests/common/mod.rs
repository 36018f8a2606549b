//! Shared helpers of the plugin-luna tests: one SoftHSM2 configuration (token
//! directory in a temporary directory) per test binary, one fresh token per test.
#![allow(dead_code)]

use std::{
    path::PathBuf,
    sync::{Mutex, OnceLock},
};

use cryptoki::{context::Pkcs11, session::UserType, types::AuthPin};

/// Debian's SoftHSM2 module.
pub const MODULE: &str = "/usr/lib/softhsm/libsofthsm2.so";
/// SO PIN of every test token.
pub const SO_PIN: &str = "so-pin-1234";
/// User PIN of every test token.
pub const USER_PIN: &str = "user-pin-5678";

/// The per-binary SoftHSM2 environment.
pub struct Env {
    /// The temporary directory (kept for the life of the process).
    pub dir: PathBuf,
    /// The softhsm2.conf path.
    pub conf: PathBuf,
    /// The user PIN file.
    pub pin_file: PathBuf,
}

static ENV: OnceLock<Env> = OnceLock::new();
static TOKEN_INIT: Mutex<()> = Mutex::new(());

/// Creates the SoftHSM2 configuration and initializes the module (once per binary).
pub fn env() -> &'static Env {
    ENV.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap().keep();
        let tokens = dir.join("tokens");
        std::fs::create_dir_all(&tokens).unwrap();
        let conf = dir.join("softhsm2.conf");
        std::fs::write(
            &conf,
            format!(
                "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n",
                tokens.display()
            ),
        )
        .unwrap();
        let pin_file = dir.join("user.pin");
        std::fs::write(&pin_file, format!("{USER_PIN}\n")).unwrap();
        // The module (through the rlib's registry) sets SOFTHSM2_CONF before C_Initialize.
        plugin_luna::pkcs11::module(
            std::path::Path::new(MODULE),
            &[("SOFTHSM2_CONF".to_string(), conf.display().to_string())],
        )
        .unwrap();
        Env { dir, conf, pin_file }
    })
}

/// The module context, shared with the rlib's registry.
pub fn ctx() -> Pkcs11 {
    let env = env();
    plugin_luna::pkcs11::module(
        std::path::Path::new(MODULE),
        &[("SOFTHSM2_CONF".to_string(), env.conf.display().to_string())],
    )
    .unwrap()
}

/// Initializes a fresh token labelled `label` with [`SO_PIN`] and [`USER_PIN`].
pub fn new_token(label: &str) {
    let ctx = ctx();
    let _guard = TOKEN_INIT.lock().unwrap_or_else(|p| p.into_inner());
    let slot = ctx
        .get_all_slots()
        .unwrap()
        .into_iter()
        .find(|s| {
            ctx.get_token_info(*s)
                .map(|i| !i.token_initialized())
                .unwrap_or(false)
        })
        .expect("SoftHSM2 offers a free slot");
    ctx.init_token(slot, &AuthPin::from(SO_PIN.to_string()), label)
        .unwrap();
    set_user_pin(&ctx, label);
}

/// Re-initialises the existing token `label` (every object is destroyed) and sets the
/// user PIN again. Needs every session of this process on the token to be closed.
pub fn set_user_pin(ctx: &Pkcs11, label: &str) {
    let (slot, _) = plugin_luna::pkcs11::find_slot(ctx, label).unwrap().unwrap();
    let session = ctx.open_rw_session(slot).unwrap();
    session
        .login(UserType::So, Some(&AuthPin::from(SO_PIN.to_string())))
        .unwrap();
    session
        .init_pin(&AuthPin::from(USER_PIN.to_string()))
        .unwrap();
    session.logout().unwrap();
}

/// The JSON configuration of a key source on token `label`, with extra fields.
pub fn config(label: &str, extra: serde_json::Value) -> String {
    let env = env();
    let mut c = serde_json::json!({
        "module": MODULE,
        "token_label": label,
        "pin_file": env.pin_file,
        "module_env": { "SOFTHSM2_CONF": env.conf },
    });
    if let serde_json::Value::Object(extra) = extra {
        for (k, v) in extra {
            c[k] = v;
        }
    }
    c.to_string()
}

//! The first start: creating the `root` admin, with a password from the environment or
//! a generated one shown once.

use std::path::PathBuf;

use serde_json::json;
use zeroize::Zeroizing;

use crate::{audit::AuditLog, config::Config, ops::Operations};

/// On a first start (no users), creates `root` in `admins`: with the password from
/// `admin.root_password_env`, or a generated one that is printed once to stdout and
/// written to `<data_dir>/root-password` (mode 0600). Never logged. Returns the file
/// written, if any.
pub fn bootstrap_root(
    cfg: &Config,
    ops: &Operations,
    audit: &AuditLog,
) -> Result<Option<PathBuf>, String> {
    let from_env = match &cfg.admin.root_password_env {
        None => None,
        Some(var) => match std::env::var(var) {
            Ok(v) if !v.is_empty() => Some(Zeroizing::new(v)),
            _ => None,
        },
    };
    let env_named_but_unset = cfg.admin.root_password_env.is_some() && from_env.is_none();
    if !ops.needs_root().map_err(|e| e.to_string())? {
        return Ok(None);
    }
    // A generated password is written to its file before root is committed: a crash in
    // between leaves a file and no root, and the next start writes a new one. (In the
    // other order a crash would leave a root whose password nobody has.)
    let path = cfg.data_dir.join("root-password");
    let generated = match from_env {
        Some(_) => None,
        None => {
            let password = crate::ops::generate_root_password();
            let text = Zeroizing::new(format!("{}\n", password.as_str()));
            crate::secrets::write_private_file(&path, text.as_bytes())
                .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
            Some(password)
        }
    };
    let wanted = generated.clone().or(from_env);
    let Some(_) = ops.ensure_root(wanted).map_err(|e| e.to_string())? else {
        // Another node created root first: the file would name a password nobody has.
        if generated.is_some() {
            let _ = std::fs::remove_file(&path);
        }
        return Ok(None);
    };
    if env_named_but_unset {
        tracing::warn!(
            "admin.root_password_env names a variable that is not set: generated a root password instead"
        );
    }
    let _ = audit.record_durable(json!({
        "kind": "admin",
        "user": "keyhold",
        "action": "create_root_user",
        "object": "user/root",
        "outcome": "ok",
    }));
    let Some(password) = generated else {
        tracing::info!("created admin user 'root' with the password from admin.root_password_env");
        return Ok(None);
    };
    println!(
        "keyhold: created admin user 'root' with password: {}\nkeyhold: (shown only this once; also written to {})",
        password.as_str(),
        path.display()
    );
    tracing::warn!(
        file = %path.display(),
        "created admin user 'root' with a generated password (printed once to stdout, written to the file)"
    );
    Ok(Some(path))
}

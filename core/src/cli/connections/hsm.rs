//! `keyhold connection hsm ...`: the PKCS#11 modules and tokens (HSM partitions) luna key
//! sources are made from. The PIN is referenced (a variable or a file of the server's
//! process), never sent.

use std::collections::BTreeMap;

use clap::{Args, Subcommand};
use http::Method;
use keyhold::api::connections::NewHsmConnection;
use serde::Serialize;

use super::super::{CliError, Result, client::seg, context::Ctx};

/// What every server-side path and variable means, shown under each command's help.
const SERVER_SIDE: &str = "\
Paths and variables are the server's: --module and --pin-file are absolute paths on the
host keyhold runs on (relative paths are refused; nothing is read on this machine),
and --pin-env names a variable of the keyhold process. The PIN is read at each login
and never stored by keyhold.";

/// `keyhold connection hsm ...`
#[derive(Subcommand, Debug)]
#[command(after_long_help = SERVER_SIDE)]
pub enum HsmConnectionCmd {
    /// Creates an HSM connection (admins): a PKCS#11 module, a token and where its PIN is
    #[command(after_long_help = SERVER_SIDE)]
    Create {
        /// Unique name of the connection
        name: String,
        /// Absolute path of the PKCS#11 library on the server's host, e.g.
        /// /usr/lib/libCryptoki2_64.so (Luna) or /usr/lib/softhsm/libsofthsm2.so
        #[arg(long, value_name = "PATH")]
        module: String,
        /// Label of the token (Luna partition), 1 to 32 characters; fixed once a key
        /// source is made from the connection
        #[arg(long, value_name = "LABEL")]
        token_label: String,
        #[command(flatten)]
        settings: HsmSettings,
    },
    /// Lists HSM connections
    List,
    /// Shows an HSM connection
    Get {
        /// The connection's name
        name: String,
    },
    /// Changes an HSM connection (given fields only): the server tests it (opens a key
    /// source on it) before saving and refuses with the reason when that fails
    #[command(
        long_about = "Changes an HSM connection: only the fields given are sent. The server \
tests the changed connection (opens a key source on it, as `connection hsm test` does) \
before it saves anything, and refuses with `connection_test_failed` and the reason when \
that fails. Key sources made from the connection keep their running sessions until \
`keyhold source reopen SOURCE`. The token label cannot be changed: make a new connection \
and source for another token.\n\n\
PIN rotation: change the PIN on the token (keyhold-pkcs11 set-pin), then point the \
connection at the new PIN (--pin-file NEW or --pin-env VAR), then reopen its sources.",
        after_long_help = SERVER_SIDE
    )]
    Update {
        /// The connection's name
        name: String,
        /// New absolute path of the PKCS#11 library on the server's host
        #[arg(long, value_name = "PATH")]
        module: Option<String>,
        #[command(flatten)]
        settings: HsmSettings,
        /// Empties the module environment (the opposite of --module-env)
        #[arg(long, conflicts_with = "module_env")]
        clear_module_env: bool,
    },
    /// Deletes an HSM connection (refused while a key source is made from it)
    Delete {
        /// The connection's name
        name: String,
    },
    /// Tests an HSM connection: opens a key source on it (module, token, PIN login,
    /// mechanisms) and reads the token's model; exits 3 when it is not usable
    Test {
        /// The connection's name
        name: String,
    },
}

/// The settings `create` and `update` share.
#[derive(Args, Debug)]
pub struct HsmSettings {
    /// Name of an environment variable of the keyhold server process holding the user
    /// (crypto officer) PIN [one of --pin-env and --pin-file is required on create;
    /// on update, setting one clears the other]
    #[arg(long, value_name = "VAR", conflicts_with = "pin_file")]
    pin_env: Option<String>,
    /// Absolute path, on the server's host, of a file holding the user PIN (trailing
    /// whitespace ignored; read at each login, so a changed file is used by the next
    /// login)
    #[arg(long, value_name = "PATH")]
    pin_file: Option<String>,
    /// An environment variable for the module, KEY=VALUE (repeatable; SoftHSM2 needs
    /// SOFTHSM2_CONF=/path/softhsm2.conf). Each must equal the keyhold process's own
    /// environment (the module reads it once per process, at its first use; start
    /// keyhold with it set): a different value is refused when a source opens, naming
    /// the variable. A relative value naming an existing path is made absolute against
    /// the server's working directory. On update, the list replaces the old one
    #[arg(long, value_name = "KEY=VALUE", value_parser = parse_env)]
    module_env: Vec<(String, String)>,
    /// Logged-in PKCS#11 sessions a key source keeps open, at least 1 [default: 8]
    #[arg(long, value_name = "N")]
    pool_size: Option<u32>,
    /// How long an operation waits for a free session before it fails with a timeout,
    /// in milliseconds [default: 200]
    #[arg(long, value_name = "MS")]
    op_timeout_ms: Option<u64>,
}

/// `KEY=VALUE` of `--module-env`.
fn parse_env(s: &str) -> std::result::Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => Err(format!("expected KEY=VALUE, got '{s}'")),
    }
}

/// `PATCH /api/v1/connections/hsm/{name}` body: the fields given.
#[derive(Debug, Default, Serialize)]
struct HsmConnectionPatch {
    #[serde(skip_serializing_if = "Option::is_none")]
    module: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pin_env: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pin_file: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    module_env: Option<BTreeMap<String, String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pool_size: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    op_timeout_ms: Option<u64>,
}

impl HsmConnectionPatch {
    fn is_empty(&self) -> bool {
        self.module.is_none()
            && self.pin_env.is_none()
            && self.pin_file.is_none()
            && self.module_env.is_none()
            && self.pool_size.is_none()
            && self.op_timeout_ms.is_none()
    }
}

const COLUMNS: &[&str] = &[
    "name",
    "module",
    "token_label",
    "pin_env",
    "pin_file",
    "pool_size",
    "op_timeout_ms",
    "created_at",
];

/// The `--module-env` pairs as a map; a key given twice is a usage error.
fn env_map(pairs: Vec<(String, String)>) -> Result<BTreeMap<String, String>> {
    let mut map = BTreeMap::new();
    for (k, v) in pairs {
        if map.insert(k.clone(), v).is_some() {
            return Err(CliError::Usage(format!("--module-env {k} is given twice")));
        }
    }
    Ok(map)
}

/// Runs a `connection hsm` command.
pub async fn run(ctx: Ctx, c: HsmConnectionCmd) -> Result<()> {
    match c {
        HsmConnectionCmd::Create {
            name,
            module,
            token_label,
            settings,
        } => {
            if settings.pin_env.is_none() && settings.pin_file.is_none() {
                return Err(CliError::Usage(
                    "give the PIN's place with --pin-env VAR or --pin-file PATH (the PIN \
                     itself is never sent)"
                        .into(),
                ));
            }
            let body = NewHsmConnection {
                name,
                module,
                token_label,
                pin_env: settings.pin_env,
                pin_file: settings.pin_file,
                module_env: env_map(settings.module_env)?,
                pool_size: settings.pool_size,
                op_timeout_ms: settings.op_timeout_ms,
            };
            let r = ctx
                .call_with(Method::POST, "/connections/hsm", &body)
                .await?;
            ctx.object(&r.json);
            Ok(())
        }
        HsmConnectionCmd::List => ctx.show_list("/connections/hsm", COLUMNS).await,
        HsmConnectionCmd::Get { name } => {
            ctx.show(&format!("/connections/hsm/{}", seg(&name))).await
        }
        HsmConnectionCmd::Update {
            name,
            module,
            settings,
            clear_module_env,
        } => {
            let module_env = if clear_module_env {
                Some(BTreeMap::new())
            } else if settings.module_env.is_empty() {
                None
            } else {
                Some(env_map(settings.module_env)?)
            };
            let body = HsmConnectionPatch {
                module,
                pin_env: settings.pin_env,
                pin_file: settings.pin_file,
                module_env,
                pool_size: settings.pool_size,
                op_timeout_ms: settings.op_timeout_ms,
            };
            if body.is_empty() {
                return Err(CliError::Usage(
                    "nothing to change: give --module, --pin-env, --pin-file, --module-env, \
                     --clear-module-env, --pool-size or --op-timeout-ms"
                        .into(),
                ));
            }
            let path = format!("/connections/hsm/{}", seg(&name));
            let r = ctx.call_with(Method::PATCH, &path, &body).await?;
            ctx.object(&r.json);
            Ok(())
        }
        HsmConnectionCmd::Delete { name } => {
            let path = format!("/connections/hsm/{}", seg(&name));
            ctx.act(
                Method::DELETE,
                &path,
                &format!("Deleted HSM connection {name}."),
            )
            .await
        }
        HsmConnectionCmd::Test { name } => {
            let path = format!("/connections/hsm/{}/test", seg(&name));
            let r = ctx.call(Method::POST, &path).await?;
            super::report_test(&ctx, "HSM", &name, &r.json)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn module_env_pairs() {
        assert_eq!(
            parse_env("SOFTHSM2_CONF=/a=b").unwrap(),
            ("SOFTHSM2_CONF".into(), "/a=b".into())
        );
        assert!(parse_env("=x").is_err());
        assert!(parse_env("novalue").is_err());
        let twice = env_map(vec![("A".into(), "1".into()), ("A".into(), "2".into())]);
        assert!(matches!(twice, Err(CliError::Usage(m)) if m.contains("A is given twice")));
    }

    #[test]
    fn patch_sends_only_given_fields() {
        let body = HsmConnectionPatch {
            pin_file: Some("/etc/keyhold/new.pin".into()),
            ..Default::default()
        };
        assert_eq!(
            serde_json::to_value(&body).unwrap(),
            serde_json::json!({"pin_file": "/etc/keyhold/new.pin"})
        );
        assert!(HsmConnectionPatch::default().is_empty());
    }
}

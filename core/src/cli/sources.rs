//! `keyhold source ...` and `keyhold source-key ...`: the key sources (HSMs,
//! CipherTrust, ...) and the keys inside them.

use clap::Subcommand;
use http::Method;
use keyhold::api::sources::{NewSource, NewSourceKey};
use serde_json::Value;

use super::{CliError, Result, client::seg, context::Ctx};

/// `keyhold source ...`
#[derive(Subcommand, Debug)]
pub enum SourceCmd {
    /// Lists key sources, their status and their plugins' versions (the plugin's own,
    /// the keyhold-sdk it was built against, its plugin ABI)
    List,
    /// Creates a key source from an HSM connection and opens it in the running server
    /// (admins); refused with the reason when it does not open
    #[command(
        long_about = "Creates a key source from an HSM connection (keyhold connection hsm \
create) and opens it in the running server (admins); every node of a cluster opens it, \
and it is opened again at each start. When it does not open, nothing is created and the \
reason is printed (test the connection first with `keyhold connection hsm test`)."
    )]
    Create {
        /// Unique name of the source (what stores and source keys name)
        name: String,
        /// The HSM connection it is made from (module, token, PIN)
        #[arg(long, value_name = "CONNECTION")]
        hsm_connection: String,
        /// The plugin that opens it (only `luna`, the PKCS#11 plugin, is made from HSM
        /// connections)
        #[arg(long, default_value = "luna")]
        plugin: String,
    },
    /// Shows a key source and its status (opened, or failed and why)
    Get {
        /// The source's name
        name: String,
    },
    /// Closes and reopens a key source from its current connection: logs in again
    /// (e.g. with a new PIN) and reads the slot list again; its stores stay bound.
    /// Exits 3 when it does not open, with the reason
    #[command(
        long_about = "Closes and reopens a key source from its current HSM connection or configuration: logs in again (e.g. after `keyhold connection hsm update` with a new PIN) and reads the slot list again. Stores keep their binding to it. In a cluster every node reopens it. Exits 3 when it does not open, with the reason.

A PKCS#11 module reads its own configuration once per process (e.g. SoftHSM2's SOFTHSM2_CONF file and its token list): a token created after keyhold started, or a changed module configuration file, needs a restart of keyhold."
    )]
    Reopen {
        /// The source's name
        name: String,
    },
    /// Deletes a key source (admins; refused while a store uses it, or when it is
    /// declared in the configuration file)
    Delete {
        /// The source's name
        name: String,
    },
}

/// `keyhold source-key ...`
#[derive(Subcommand, Debug)]
pub enum SourceKeyCmd {
    /// Creates an AES-256 key in a source (admins; a health-check key needs all four
    /// usages, a HYOK key's source key encrypt and decrypt)
    Create {
        /// The key source
        source: String,
        /// The key's name (its label on a PKCS#11 token)
        name: String,
        /// What the key may do, comma-separated: encrypt, decrypt, wrap, unwrap
        #[arg(long, value_delimiter = ',', required = true)]
        usage: Vec<String>,
        /// The key may leave the source. Off by default; an exportable key cannot be a
        /// health-check key, nor back a HYOK key unless that key is created with
        /// --allow-weak-key. A PKCS#11 (luna) source refuses it: its keys are always
        /// made with CKA_EXTRACTABLE=false
        #[arg(long)]
        exportable: bool,
        /// The key may be deleted later. Off by default; a health-check key must not
        /// be deletable
        #[arg(long)]
        deletable: bool,
    },
    /// Lists the keys of a source
    List {
        /// The key source
        source: String,
    },
    /// Shows a key (and whether it may serve as a health-check key)
    Get {
        /// The key source
        source: String,
        /// The key's name in the source
        name: String,
    },
}

/// A source's plugin with the versions its library reports: its own (from its model),
/// the keyhold-sdk it was built against and the plugin ABI it declares.
const SOURCE_COLUMNS: &[&str] = &[
    "name",
    "plugin",
    "plugin_version",
    "sdk_version",
    "abi_version",
    "status",
    "vendor",
    "model",
    "reason",
];
const KEY_COLUMNS: &[&str] = &[
    "name",
    "bits",
    "usage",
    "enabled",
    "exportable",
    "deletable",
];

/// Runs a `source` command.
pub async fn run(ctx: Ctx, c: SourceCmd) -> Result<()> {
    match c {
        SourceCmd::List => ctx.show_list("/sources", SOURCE_COLUMNS).await,
        SourceCmd::Create {
            name,
            hsm_connection,
            plugin,
        } => {
            let body = NewSource {
                name,
                plugin,
                hsm_connection,
            };
            let r = ctx.call_with(Method::POST, "/sources", &body).await?;
            opened(&ctx, &body.name, &r.json)
        }
        SourceCmd::Get { name } => ctx.show(&format!("/sources/{}", seg(&name))).await,
        SourceCmd::Reopen { name } => {
            let path = format!("/sources/{}/reopen", seg(&name));
            let r = ctx.call(Method::POST, &path).await?;
            opened(&ctx, &name, &r.json)
        }
        SourceCmd::Delete { name } => {
            let path = format!("/sources/{}", seg(&name));
            ctx.act(
                Method::DELETE,
                &path,
                &format!("Deleted key source {name}."),
            )
            .await
        }
    }
}

/// Prints a source's status; a source that did not open exits 3 with the reason.
fn opened(ctx: &Ctx, name: &str, source: &Value) -> Result<()> {
    ctx.object(source);
    if source["status"] != "opened" {
        return Err(CliError::Refused {
            status: 200,
            code: "source_failed".into(),
            message: format!(
                "key source {name} did not open: {}",
                source["reason"].as_str().unwrap_or("no reason given")
            ),
        });
    }
    Ok(())
}

/// Runs a `source-key` command.
pub async fn run_keys(ctx: Ctx, c: SourceKeyCmd) -> Result<()> {
    match c {
        SourceKeyCmd::Create {
            source,
            name,
            usage,
            exportable,
            deletable,
        } => {
            let body = NewSourceKey {
                name,
                usage,
                exportable,
                deletable,
            };
            let path = format!("/sources/{}/keys", seg(&source));
            let r = ctx.call_with(Method::POST, &path, &body).await?;
            ctx.object(&r.json);
            Ok(())
        }
        SourceKeyCmd::List { source } => {
            let path = format!("/sources/{}/keys", seg(&source));
            ctx.show_list(&path, KEY_COLUMNS).await
        }
        SourceKeyCmd::Get { source, name } => {
            ctx.show(&format!("/sources/{}/keys/{}", seg(&source), seg(&name)))
                .await
        }
    }
}

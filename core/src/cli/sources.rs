//! `keyhold source ...` and `keyhold source-key ...`: the key sources (HSMs,
//! CipherTrust, ...) and the keys inside them.

use clap::Subcommand;
use http::Method;
use keyhold::api::sources::NewSourceKey;

use super::{Result, client::seg, context::Ctx};

/// `keyhold source ...`
#[derive(Subcommand, Debug)]
pub enum SourceCmd {
    /// Lists key sources and their status
    List,
}

/// `keyhold source-key ...`
#[derive(Subcommand, Debug)]
pub enum SourceKeyCmd {
    /// Creates a key in a source (a health-check key needs all four usages)
    Create {
        source: String,
        name: String,
        /// Usages: encrypt,decrypt,wrap,unwrap
        #[arg(long, value_delimiter = ',', required = true)]
        usage: Vec<String>,
        /// The key may leave the source
        #[arg(long)]
        exportable: bool,
        /// The key may be deleted
        #[arg(long)]
        deletable: bool,
    },
    /// Lists the keys of a source
    List { source: String },
    /// Shows a key (and whether it may serve as a health-check key)
    Get { source: String, name: String },
}

const SOURCE_COLUMNS: &[&str] = &["name", "plugin", "status", "vendor", "model", "reason"];
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
    }
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

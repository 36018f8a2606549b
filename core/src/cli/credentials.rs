//! `keyhold credential ...`: the XKS proxy authentication credentials of a key store,
//! and where a new credential's secret goes (a private file, the terminal, or both).

use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};
use http::Method;
use keyhold::api::credentials::{CredentialsFile, EVICTED_HEADER};
use serde_json::json;

use super::{
    CliError, Result,
    client::seg,
    context::Ctx,
    output::{outln, print_json},
    session::write_private,
    stores,
};

/// `keyhold credential ...`
#[derive(Subcommand, Debug)]
pub enum CredentialCmd {
    /// Adds a credential (rotation): writes the credentials file to --out
    Add {
        /// The key store (id or name)
        store: String,
        #[command(flatten)]
        secret: SecretOut,
    },
    /// Lists a store's credentials (access key ids only)
    List {
        /// The key store (id or name)
        store: String,
    },
    /// Deletes a credential
    Delete {
        /// The key store (id or name)
        store: String,
        /// The credential's access key id
        access_key_id: String,
    },
}

/// Where a new credential's secret goes.
#[derive(Args, Debug)]
pub struct SecretOut {
    /// Write the AWS KMS console credentials file here (mode 0600)
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Also print the secret access key
    #[arg(long)]
    pub show_secret: bool,
}

impl SecretOut {
    /// Without --out and --show-secret a new secret would be lost: refused before
    /// calling the server.
    pub fn check(&self) -> Result<()> {
        if self.out.is_none() && !self.show_secret {
            return Err(CliError::Usage(
                "the secret access key is shown only once: pass --out FILE (and/or --show-secret)"
                    .into(),
            ));
        }
        if let Some(out) = &self.out {
            let parent = out
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
                .unwrap_or(Path::new("."));
            if !parent.is_dir() {
                return Err(CliError::Usage(format!(
                    "--out {}: directory {} does not exist",
                    out.display(),
                    parent.display()
                )));
            }
        }
        Ok(())
    }
}

/// Saves the credentials file (with --out); returns a copy for display, the secret
/// hidden unless --show-secret.
pub fn save(file: &CredentialsFile, secret: &SecretOut) -> Result<CredentialsFile> {
    if let Some(out) = &secret.out {
        let text = serde_json::to_string_pretty(file)
            .map_err(|e| CliError::Server(format!("cannot encode the credentials file: {e}")))?;
        write_private(out, text.as_bytes())?;
    }
    let mut shown = file.clone();
    if !secret.show_secret {
        shown.credential.raw_secret_access_key = match &secret.out {
            Some(p) => format!("(hidden: written to {})", p.display()),
            None => "(hidden)".to_string(),
        };
    }
    Ok(shown)
}

/// Prints a new credential (as [`save`] returned it) and where its file went.
pub fn print(shown: &CredentialsFile, secret: &SecretOut) {
    outln!("XKS proxy URI path:  {}", shown.uri_path);
    outln!("Access key id:       {}", shown.credential.access_key_id);
    if secret.show_secret {
        outln!(
            "Secret access key:   {}",
            shown.credential.raw_secret_access_key
        );
    }
    if let Some(out) = &secret.out {
        outln!(
            "Credentials file:    {} (mode 0600; upload it in the AWS KMS console)",
            out.display()
        );
    }
}

/// Runs a `credential` command.
pub async fn run(ctx: Ctx, c: CredentialCmd) -> Result<()> {
    match c {
        CredentialCmd::Add { store, secret } => {
            secret.check()?;
            let path = format!("{}/credentials", stores::path(&ctx, &store).await?);
            let r = ctx.call(Method::POST, &path).await?;
            let shown = save(&r.parse()?, &secret)?;
            let evicted: Vec<String> = r
                .header(EVICTED_HEADER)
                .map(|v| {
                    v.split(',')
                        .filter(|s| !s.is_empty())
                        .map(str::to_string)
                        .collect()
                })
                .unwrap_or_default();
            if ctx.json() {
                let mut view = json!(shown);
                view["evicted"] = json!(evicted);
                print_json(&view);
            } else {
                print(&shown, &secret);
                for e in &evicted {
                    outln!("Evicted (oldest, over max_credentials): {e}");
                }
            }
            Ok(())
        }
        CredentialCmd::List { store } => {
            let path = format!("{}/credentials", stores::path(&ctx, &store).await?);
            ctx.show_list(&path, &["access_key_id", "created_at"]).await
        }
        CredentialCmd::Delete {
            store,
            access_key_id,
        } => {
            let path = format!(
                "{}/credentials/{}",
                stores::path(&ctx, &store).await?,
                seg(&access_key_id)
            );
            let message = format!("Deleted credential {access_key_id}.");
            ctx.act(Method::DELETE, &path, &message).await
        }
    }
}

//! `keyhold key ...`: the HYOK keys of a key store (the keys AWS KMS sees), each
//! backed by a key in the store's source.

use clap::Subcommand;
use http::Method;
use keyhold::api::keys::NewHyokKey;

use super::{Result, client::seg, context::Ctx, stores};

/// `keyhold key ...`
#[derive(Subcommand, Debug)]
pub enum KeyCmd {
    /// Creates a HYOK key backed by a source key
    Create {
        store: String,
        external_id: String,
        /// The key in the store's source
        #[arg(long)]
        source_key: String,
    },
    /// Lists a store's HYOK keys
    List { store: String },
    /// Shows a HYOK key
    Get { store: String, external_id: String },
    /// Blocks a HYOK key
    Block { store: String, external_id: String },
    /// Unblocks a HYOK key
    Unblock { store: String, external_id: String },
    /// Deletes a HYOK key
    Delete { store: String, external_id: String },
}

const COLUMNS: &[&str] = &["external_id", "source_key", "blocked", "created_at"];

/// The API path of a store's HYOK key (`/stores/{id}/keys/{external_id}`).
async fn key_path(ctx: &Ctx, store: &str, external_id: &str) -> Result<String> {
    Ok(format!(
        "{}/keys/{}",
        stores::path(ctx, store).await?,
        seg(external_id)
    ))
}

/// Runs a `key` command.
pub async fn run(ctx: Ctx, c: KeyCmd) -> Result<()> {
    match c {
        KeyCmd::Create {
            store,
            external_id,
            source_key,
        } => {
            let path = format!("{}/keys", stores::path(&ctx, &store).await?);
            let body = NewHyokKey {
                external_id,
                source_key,
            };
            let r = ctx.call_with(Method::POST, &path, &body).await?;
            ctx.object(&r.json);
            Ok(())
        }
        KeyCmd::List { store } => {
            let path = format!("{}/keys", stores::path(&ctx, &store).await?);
            ctx.show_list(&path, COLUMNS).await
        }
        KeyCmd::Get { store, external_id } => {
            ctx.show(&key_path(&ctx, &store, &external_id).await?).await
        }
        KeyCmd::Block { store, external_id } => {
            let path = format!("{}/block", key_path(&ctx, &store, &external_id).await?);
            let message = format!("Blocked key {external_id}.");
            ctx.act(Method::POST, &path, &message).await
        }
        KeyCmd::Unblock { store, external_id } => {
            let path = format!("{}/unblock", key_path(&ctx, &store, &external_id).await?);
            let message = format!("Unblocked key {external_id}.");
            ctx.act(Method::POST, &path, &message).await
        }
        KeyCmd::Delete { store, external_id } => {
            let path = key_path(&ctx, &store, &external_id).await?;
            let message = format!("Deleted key {external_id}.");
            ctx.act(Method::DELETE, &path, &message).await
        }
    }
}

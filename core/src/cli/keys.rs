//! `keyhold key ...`: the HYOK keys of a key store (the keys AWS KMS sees), each
//! backed by a key in the store's source.

use clap::Subcommand;
use http::Method;
use serde::Serialize;

use super::{Result, client::seg, context::Ctx, stores};

/// `keyhold key ...`
#[derive(Subcommand, Debug)]
pub enum KeyCmd {
    /// Creates a HYOK key backed by a source key
    Create {
        /// The key store (id or name)
        store: String,
        /// The HYOK key's external id (the key id AWS KMS uses in XKS requests)
        external_id: String,
        /// The key in the store's source
        #[arg(long)]
        source_key: String,
        /// Create its AWS KMS key too (default: when the store is linked)
        #[arg(long, conflicts_with = "unlinked")]
        linked: bool,
        /// Do not create an AWS KMS key, even in a linked store
        #[arg(long)]
        unlinked: bool,
        /// Accept a source key that breaks the key rules (exportable, not sensitive,
        /// not private, or without encrypt or decrypt). Off by default: such a key is
        /// refused with each failing attribute named. The relaxation is stored on the
        /// HYOK key, shown by `key get` and named in the audit record
        #[arg(long)]
        allow_weak_key: bool,
    },
    /// Links a HYOK key of a linked, connected store: creates its AWS KMS key
    Link {
        /// The key store (id or name)
        store: String,
        /// The HYOK key's external id (the key id AWS KMS uses in XKS requests)
        external_id: String,
    },
    /// Lists a store's HYOK keys
    List {
        /// The key store (id or name)
        store: String,
    },
    /// Shows a HYOK key
    Get {
        /// The key store (id or name)
        store: String,
        /// The HYOK key's external id (the key id AWS KMS uses in XKS requests)
        external_id: String,
    },
    /// Blocks a HYOK key
    Block {
        /// The key store (id or name)
        store: String,
        /// The HYOK key's external id (the key id AWS KMS uses in XKS requests)
        external_id: String,
    },
    /// Unblocks a HYOK key
    Unblock {
        /// The key store (id or name)
        store: String,
        /// The HYOK key's external id (the key id AWS KMS uses in XKS requests)
        external_id: String,
    },
    /// Deletes a HYOK key (a linked key's AWS KMS key is scheduled for deletion)
    Delete {
        /// The key store (id or name)
        store: String,
        /// The HYOK key's external id (the key id AWS KMS uses in XKS requests)
        external_id: String,
        /// AWS KMS waiting period in days (7..=30, default 30), for linked keys
        #[arg(long, value_name = "DAYS")]
        pending_window_days: Option<i32>,
    },
}

/// `POST /api/v1/stores/{id}/keys` body (`allow_weak_key` only when set).
#[derive(Debug, Serialize)]
struct NewHyokKey {
    external_id: String,
    source_key: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    linked: Option<bool>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    allow_weak_key: bool,
}

const COLUMNS: &[&str] = &["external_id", "source_key", "blocked", "aws", "created_at"];

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
            linked,
            unlinked,
            allow_weak_key,
        } => {
            let path = format!("{}/keys", stores::path(&ctx, &store).await?);
            let body = NewHyokKey {
                external_id,
                source_key,
                linked: match (linked, unlinked) {
                    (true, _) => Some(true),
                    (_, true) => Some(false),
                    _ => None,
                },
                allow_weak_key,
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
        KeyCmd::Link { store, external_id } => {
            let path = format!("{}/link", key_path(&ctx, &store, &external_id).await?);
            let r = ctx.call(Method::POST, &path).await?;
            ctx.object(&r.json);
            Ok(())
        }
        KeyCmd::Delete {
            store,
            external_id,
            pending_window_days,
        } => {
            let mut path = key_path(&ctx, &store, &external_id).await?;
            if let Some(days) = pending_window_days {
                path = format!("{path}?pending_window_days={days}");
            }
            let message = format!("Deleted key {external_id}.");
            ctx.act(Method::DELETE, &path, &message).await
        }
    }
}

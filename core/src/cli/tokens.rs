//! `keyhold token ...`: long-lived API tokens for scripts.

use clap::Subcommand;
use http::Method;
use keyhold::api::tokens::NewToken;

use super::{Result, client::seg, context::Ctx, output::outln};

/// `keyhold token ...`
#[derive(Subcommand, Debug)]
pub enum TokenCmd {
    /// Issues an API token (shown once)
    Create {
        /// What the token is for
        #[arg(long, default_value = "")]
        description: String,
        /// Expiry as a Unix time (default: no expiry)
        #[arg(long, value_name = "UNIX_SECONDS")]
        expires_at: Option<i64>,
    },
    /// Lists your tokens
    List,
    /// Revokes a token by id
    Revoke {
        /// The token's id (see `token list`; ids may start with `-`)
        #[arg(allow_hyphen_values = true)]
        id: String,
    },
}

const COLUMNS: &[&str] = &[
    "id",
    "user",
    "kind",
    "description",
    "created_at",
    "expires_at",
];

/// Runs a `token` command.
pub async fn run(ctx: Ctx, c: TokenCmd) -> Result<()> {
    match c {
        TokenCmd::Create {
            description,
            expires_at,
        } => {
            let body = NewToken {
                description,
                expires_at,
            };
            let r = ctx.call_with(Method::POST, "/tokens", &body).await?;
            ctx.object(&r.json);
            if !ctx.json() {
                outln!("(the token is shown only this once; use it with --token or KEYHOLD_TOKEN)");
            }
            Ok(())
        }
        TokenCmd::List => ctx.show_list("/tokens", COLUMNS).await,
        TokenCmd::Revoke { id } => {
            let path = format!("/tokens/{}", seg(&id));
            ctx.act(Method::DELETE, &path, &format!("Revoked token {id}."))
                .await
        }
    }
}

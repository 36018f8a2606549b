//! `keyhold user ...`: admin API users (admins only, but everyone may change their own
//! password).

use clap::Subcommand;
use http::Method;
use keyhold::api::users::{NewPassword, NewUser};
use serde_json::Value;

use super::{CliError, Result, client::seg, context::Ctx, password::PasswordSource};

/// `keyhold user ...`
#[derive(Subcommand, Debug)]
pub enum UserCmd {
    /// Creates a user (password from stdin or an environment variable)
    Create {
        /// The user's name
        name: String,
        /// Groups (repeatable; default: users). `admins` may do everything.
        #[arg(long = "group", value_name = "GROUP")]
        groups: Vec<String>,
        #[command(flatten)]
        password: PasswordSource,
    },
    /// Lists users
    List,
    /// Shows a user
    Get {
        /// The user's name
        name: String,
    },
    /// Deletes a user
    Delete {
        /// The user's name
        name: String,
    },
    /// Sets a user's password (non-admins: also --current-password-env)
    Passwd {
        /// The user's name
        name: String,
        #[command(flatten)]
        password: PasswordSource,
        /// Environment variable holding the current password (needed by non-admins)
        #[arg(long, value_name = "VAR")]
        current_password_env: Option<String>,
    },
}

/// Runs a `user` command.
pub async fn run(ctx: Ctx, c: UserCmd) -> Result<()> {
    match c {
        UserCmd::Create {
            name,
            groups,
            password,
        } => {
            let body = NewUser {
                name,
                password: password.read()?,
                groups: groups.into_iter().collect(),
            };
            let r = ctx.call_with(Method::POST, "/users", &body).await?;
            ctx.object(&r.json);
            Ok(())
        }
        UserCmd::List => {
            ctx.show_list("/users", &["name", "groups", "created_at"])
                .await
        }
        UserCmd::Get { name } => ctx.show(&format!("/users/{}", seg(&name))).await,
        UserCmd::Delete { name } => {
            let path = format!("/users/{}", seg(&name));
            ctx.act(Method::DELETE, &path, &format!("Deleted user {name}."))
                .await
        }
        UserCmd::Passwd {
            name,
            password,
            current_password_env,
        } => {
            let password = password.read()?;
            let current_password = match current_password_env {
                Some(var) => Some(std::env::var(&var).map_err(|_| {
                    CliError::Usage(format!("environment variable {var} is not set"))
                })?),
                None => None,
            };
            let body = NewPassword {
                password,
                current_password,
            };
            let path = format!("/users/{}/password", seg(&name));
            ctx.call_with(Method::PUT, &path, &body).await?;
            ctx.done(&format!("Changed the password of {name}."), &Value::Null);
            Ok(())
        }
    }
}

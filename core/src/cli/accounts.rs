//! `keyhold account ...`: AWS accounts and their ACLs.

use clap::Subcommand;
use http::Method;
use keyhold::api::accounts::{AccountPatch, AclEntry, NewAccount, Permission};
use serde_json::Value;

use super::{
    CliError, Result,
    client::seg,
    context::Ctx,
    jobs,
    output::{self, out, outln, print_json},
};

/// `keyhold account ...`
#[derive(Subcommand, Debug)]
pub enum AccountCmd {
    /// Registers an AWS account (12-digit id)
    Create {
        /// The AWS account's 12-digit id
        id: String,
        /// A display name
        #[arg(long)]
        name: String,
        /// AWS regions (repeatable)
        #[arg(long = "region", value_name = "REGION")]
        regions: Vec<String>,
        /// ACL entry, e.g. user:bob=view,create_store (repeatable). Permissions: view,
        /// create_store, update_store, delete_store, manage_credentials, block, manage_keys
        #[arg(long = "grant", value_name = "PRINCIPAL=PERMS", value_parser = parse_grant)]
        grants: Vec<AclEntry>,
        /// The AWS connection used to reach the account's AWS KMS
        #[arg(long, value_name = "NAME")]
        aws_connection: Option<String>,
    },
    /// Lists accounts you may see
    List,
    /// Shows an account
    Get {
        /// The AWS account's 12-digit id
        id: String,
    },
    /// Changes an account (given fields only; --grant replaces the whole ACL)
    Update {
        /// The AWS account's 12-digit id
        id: String,
        #[arg(long)]
        name: Option<String>,
        /// AWS regions (repeatable; replaces the list)
        #[arg(long = "region", value_name = "REGION")]
        regions: Vec<String>,
        /// ACL entry (repeatable; replaces the ACL)
        #[arg(long = "grant", value_name = "PRINCIPAL=PERMS", value_parser = parse_grant)]
        grants: Vec<AclEntry>,
        /// Removes every ACL entry
        #[arg(long, conflicts_with = "grants")]
        clear_grants: bool,
        /// The AWS connection used to reach the account's AWS KMS ("" for none)
        #[arg(long, value_name = "NAME")]
        aws_connection: Option<String>,
    },
    /// Deletes an account
    Delete {
        /// The AWS account's 12-digit id
        id: String,
    },
    /// Refresh all: imports the account's external key stores and keys from AWS KMS
    /// (a job; needs create_store, update_store and manage_keys). Exits 4 with --wait
    /// when the job does not succeed
    Refresh {
        /// The AWS account's 12-digit id
        id: String,
        /// Waits for the job's end, printing its progress
        #[arg(long)]
        wait: bool,
    },
}

/// An ACL grant `user:bob=view,create_store` or `group:ops=block`.
fn parse_grant(s: &str) -> std::result::Result<AclEntry, String> {
    let (principal, perms) = s
        .split_once('=')
        .ok_or_else(|| format!("'{s}': use user:NAME=perm,perm or group:NAME=perm"))?;
    if !(principal.starts_with("user:") || principal.starts_with("group:")) {
        return Err(format!("'{principal}': use user:NAME or group:NAME"));
    }
    let permissions = perms
        .split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(parse_permission)
        .collect::<std::result::Result<std::collections::BTreeSet<_>, _>>()?;
    if permissions.is_empty() {
        return Err(format!("'{s}' grants no permission"));
    }
    Ok(AclEntry {
        principal: principal.to_string(),
        permissions,
    })
}

/// A permission by its ACL name (`view`, `create_store`, ...).
fn parse_permission(p: &str) -> std::result::Result<Permission, String> {
    Permission::ALL
        .into_iter()
        .find(|k| k.as_str() == p)
        .ok_or_else(|| {
            let names: Vec<&str> = Permission::ALL.iter().map(|k| k.as_str()).collect();
            format!("'{p}': unknown permission (one of {})", names.join(", "))
        })
}

/// The changes the flags ask for (empty lists mean "unchanged", except the ACL with
/// `--clear-grants`); a usage error when there is none.
fn patch(
    name: Option<String>,
    regions: Vec<String>,
    grants: Vec<AclEntry>,
    clear_grants: bool,
    aws_connection: Option<String>,
) -> Result<AccountPatch> {
    let body = AccountPatch {
        name,
        regions: (!regions.is_empty()).then_some(regions),
        acl: (!grants.is_empty() || clear_grants).then_some(grants),
        aws_connection,
    };
    if body.name.is_none()
        && body.regions.is_none()
        && body.acl.is_none()
        && body.aws_connection.is_none()
    {
        return Err(CliError::Usage(
            "nothing to change: pass --name, --region, --grant, --clear-grants or --aws-connection"
                .into(),
        ));
    }
    Ok(body)
}

/// Runs an `account` command.
pub async fn run(ctx: Ctx, c: AccountCmd) -> Result<()> {
    match c {
        AccountCmd::Create {
            id,
            name,
            regions,
            grants,
            aws_connection,
        } => {
            let body = NewAccount {
                id,
                name,
                regions,
                acl: grants,
                aws_connection,
            };
            let r = ctx.call_with(Method::POST, "/accounts", &body).await?;
            view(&ctx, &r.json);
        }
        AccountCmd::List => {
            let v = ctx.get("/accounts").await?;
            list(&ctx, &v);
        }
        AccountCmd::Get { id } => {
            let v = ctx.get(&format!("/accounts/{}", seg(&id))).await?;
            view(&ctx, &v);
        }
        AccountCmd::Update {
            id,
            name,
            regions,
            grants,
            clear_grants,
            aws_connection,
        } => {
            let body = patch(name, regions, grants, clear_grants, aws_connection)?;
            let path = format!("/accounts/{}", seg(&id));
            let r = ctx.call_with(Method::PUT, &path, &body).await?;
            view(&ctx, &r.json);
        }
        AccountCmd::Refresh { id, wait } => {
            let path = format!("/accounts/{}/refresh", seg(&id));
            let job = ctx.call(Method::POST, &path).await?.json;
            if !wait {
                jobs::view(&ctx, &job);
                return Ok(());
            }
            let job_id = job["id"].as_str().unwrap_or_default().to_string();
            if !ctx.json() {
                eprintln!("Started job {job_id} (refresh of account {id}).");
            }
            jobs::wait(&ctx, &job_id).await?;
        }
        AccountCmd::Delete { id } => {
            let path = format!("/accounts/{}", seg(&id));
            ctx.act(Method::DELETE, &path, &format!("Deleted account {id}."))
                .await?;
        }
    }
    Ok(())
}

/// One ACL entry as `principal=perm,perm`.
fn grant_text(e: &Value) -> String {
    format!(
        "{}={}",
        output::cell("", &e["principal"]),
        output::cell("", &e["permissions"])
    )
}

/// An account's ACL entries.
fn acl(account: &Value) -> &[Value] {
    account["acl"].as_array().map_or(&[], Vec::as_slice)
}

/// Prints accounts: a table whose ACL column holds the entries, space-separated.
fn list(ctx: &Ctx, accounts: &Value) {
    if ctx.json() {
        print_json(accounts);
        return;
    }
    let rows: Vec<Vec<String>> = accounts
        .as_array()
        .map_or(&[][..], Vec::as_slice)
        .iter()
        .map(|a| {
            let acl = acl(a).iter().map(grant_text).collect::<Vec<_>>().join(" ");
            vec![
                output::cell("id", &a["id"]),
                output::cell("name", &a["name"]),
                output::cell("regions", &a["regions"]),
                if acl.is_empty() { "-".into() } else { acl },
            ]
        })
        .collect();
    if rows.is_empty() {
        outln!("(none)");
    } else {
        out!(
            "{}",
            output::table(&["id", "name", "regions", "acl"], &rows)
        );
    }
}

/// Prints one account: its fields, then one ACL entry a line.
fn view(ctx: &Ctx, account: &Value) {
    if ctx.json() {
        print_json(account);
        return;
    }
    out!("{}", output::object(account, &["acl"]));
    let acl = acl(account);
    if acl.is_empty() {
        outln!("acl         -");
    }
    for (i, e) in acl.iter().enumerate() {
        let label = if i == 0 { "acl       " } else { "          " };
        outln!("{label}  {}", grant_text(e));
    }
}

#[cfg(test)]
mod tests;

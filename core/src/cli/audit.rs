//! `keyhold audit ...`: the server's audit log over the admin API (admins only): its
//! records newest first, filtered, a page at a time; whether its hash chain verifies.
//! (`keyhold audit-verify` checks the files themselves, offline.)

use clap::Subcommand;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde_json::Value;

use super::{
    CliError, Result,
    context::Ctx,
    output::{self, out, outln, print_json},
};

/// What a query value keeps as it is (RFC 3986 unreserved characters).
const QUERY_VALUE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// `keyhold audit ...`
#[derive(Subcommand, Debug)]
pub enum AuditCmd {
    /// Lists audit records, newest first (the answering node's log)
    List {
        /// Only records about this store (id or name)
        #[arg(long)]
        store: Option<String>,
        /// Only records by this admin API user
        #[arg(long)]
        user: Option<String>,
        /// `success`, `failure`, or an outcome exactly as recorded (e.g. "refused: forbidden")
        #[arg(long)]
        outcome: Option<String>,
        /// Only this admin operation (e.g. create_store) or XKS operation (e.g. Encrypt)
        #[arg(long)]
        action: Option<String>,
        /// Records per page, 1 to 1000 [server default: 100]
        #[arg(long)]
        limit: Option<u64>,
        /// Only records older than this sequence number (the "next page" hint)
        #[arg(long, value_name = "SEQ")]
        before: Option<u64>,
    },
    /// Verifies the answering node's audit log now: verified, or broken and where
    /// (exit 1 when broken)
    Status,
}

const COLUMNS: &[&str] = &["seq", "time", "kind", "user", "action", "object", "outcome"];

/// `?name=value&...` of the parameters given (empty when none).
fn query(params: &[(&str, Option<String>)]) -> String {
    let pairs: Vec<String> = params
        .iter()
        .filter_map(|(name, value)| {
            let v = value.as_ref()?;
            Some(format!("{name}={}", utf8_percent_encode(v, QUERY_VALUE)))
        })
        .collect();
    if pairs.is_empty() {
        String::new()
    } else {
        format!("?{}", pairs.join("&"))
    }
}

/// Runs an `audit` command.
pub async fn run(ctx: Ctx, c: AuditCmd) -> Result<()> {
    match c {
        AuditCmd::List {
            store,
            user,
            outcome,
            action,
            limit,
            before,
        } => {
            let q = query(&[
                ("store", store),
                ("user", user),
                ("outcome", outcome),
                ("action", action),
                ("limit", limit.map(|n| n.to_string())),
                ("before", before.map(|n| n.to_string())),
            ]);
            let page = ctx.get(&format!("/audit{q}")).await?;
            if ctx.json() {
                print_json(&page);
                return Ok(());
            }
            out!("{}", output::list(&page["records"], COLUMNS));
            if let Some(next) = page["next_before"].as_u64() {
                outln!("(older records: add --before {next})");
            }
            Ok(())
        }
        AuditCmd::Status => {
            let status = ctx.get("/audit/status").await?;
            if ctx.json() {
                print_json(&status);
            } else {
                out!("{}", status_text(&status));
            }
            if status["state"] == "verified" {
                Ok(())
            } else {
                Err(CliError::Broken(
                    "the audit log's chain does NOT verify".into(),
                ))
            }
        }
    }
}

/// The lines of a chain status: its fields, then one line per problem.
fn status_text(status: &Value) -> String {
    let mut text = output::object(status, &["anchor", "problems"]);
    let anchor = &status["anchor"];
    text += &match anchor["seq"].as_u64() {
        None => "anchor      none saved\n".to_string(),
        Some(seq) if anchor["matched"] == true => format!("anchor      record {seq}, matches\n"),
        Some(seq) => format!("anchor      record {seq}, does NOT match\n"),
    };
    for p in status["problems"].as_array().into_iter().flatten() {
        text += &format!("problem     {}\n", output::cell("", &p["message"]));
    }
    text
}

#[cfg(test)]
mod tests;

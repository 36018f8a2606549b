//! `keyhold job ...`: long-running jobs (a refresh of an AWS account), their progress
//! and summary; `keyhold account refresh --wait` follows one to its end here.

use std::time::Duration;

use clap::Subcommand;
use http::Method;
use serde_json::Value;

use super::{
    CliError, Result,
    client::seg,
    context::Ctx,
    output::{self, out, print_json},
};

/// How often `--wait` asks for the job's progress.
const POLL: Duration = Duration::from_millis(500);

/// `keyhold job ...`
#[derive(Subcommand, Debug)]
pub enum JobCmd {
    /// Lists the jobs you may see, newest first
    List,
    /// Shows a job: state, progress, summary, changes and findings
    Show {
        /// The job's id
        id: String,
    },
    /// Asks a running job to stop (it keeps what it did)
    Cancel {
        /// The job's id
        id: String,
    },
}

const COLUMNS: &[&str] = &[
    "id",
    "kind",
    "account",
    "state",
    "done",
    "total",
    "started_by",
    "started_at",
];

/// Runs a `job` command.
pub async fn run(ctx: Ctx, c: JobCmd) -> Result<()> {
    match c {
        JobCmd::List => ctx.show_list("/jobs", COLUMNS).await,
        JobCmd::Show { id } => {
            let job = ctx.get(&format!("/jobs/{}", seg(&id))).await?;
            view(&ctx, &job);
            Ok(())
        }
        JobCmd::Cancel { id } => {
            let path = format!("/jobs/{}/cancel", seg(&id));
            let r = ctx.call(Method::POST, &path).await?;
            ctx.done(
                &format!("Cancel requested: job {id} stops before its next step."),
                &r.json,
            );
            Ok(())
        }
    }
}

/// `done/total` of a job.
fn progress(job: &Value) -> String {
    format!(
        "{}/{}",
        output::cell("done", &job["done"]),
        output::cell("total", &job["total"])
    )
}

/// One summary line: what changed, or that nothing did.
pub fn summary_text(summary: &Value) -> String {
    let n = |f: &str| summary[f].as_u64().unwrap_or(0);
    let changed = match n("changed") {
        0 => "nothing changed".to_string(),
        c => format!("{c} changed"),
    };
    format!(
        "{changed}, {} up to date, {} reported",
        n("unchanged"),
        n("reported")
    )
}

/// The lines of a job: its fields, its summary, then one line per change and finding.
pub fn job_text(job: &Value) -> String {
    let mut text = output::object(job, &["summary", "error", "done", "total"]);
    text += &format!("progress          {}\n", progress(job));
    if let Some(e) = job.get("error").filter(|e| !e.is_null()) {
        text += &format!(
            "error             {} ({})\n",
            output::cell("", &e["message"]),
            output::cell("", &e["code"])
        );
    }
    let summary = &job["summary"];
    text += &format!("summary           {}\n", summary_text(summary));
    let items = |field: &str| summary[field].as_array().cloned().unwrap_or_default();
    for c in items("changes") {
        let key = c["external_id"]
            .as_str()
            .map(|k| format!(" key {k}"))
            .unwrap_or_default();
        text += &format!(
            "  changed  {} store {}{key} ({})\n",
            output::cell("", &c["kind"]),
            output::cell("", &c["store"]),
            output::cell("", &c["aws_id"])
        );
    }
    for f in items("findings") {
        text += &format!(
            "  report   {}: {}\n",
            output::cell("", &f["kind"]),
            output::cell("", &f["message"])
        );
    }
    let listed = |field: &str, count: &str| {
        summary[count]
            .as_u64()
            .unwrap_or(0)
            .saturating_sub(items(field).len() as u64)
    };
    let more = listed("changes", "changed") + listed("findings", "reported");
    if more > 0 {
        text += &format!("  ... and {more} more (see --output json)\n");
    }
    text
}

/// Prints a job: JSON, or its lines.
pub fn view(ctx: &Ctx, job: &Value) {
    if ctx.json() {
        print_json(job);
    } else {
        out!("{}", job_text(job));
    }
}

/// Follows job `id` until it ends, printing its progress (to stderr, as it moves) and
/// then the job; an error (exit 4) unless it succeeded.
pub async fn wait(ctx: &Ctx, id: &str) -> Result<()> {
    let path = format!("/jobs/{}", seg(id));
    let mut shown = String::new();
    let job = loop {
        let job = ctx.get(&path).await?;
        if job["state"] != "running" {
            break job;
        }
        let now = progress(&job);
        if !ctx.json() && now != shown {
            eprintln!("job {id}: {now} done");
            shown = now;
        }
        tokio::time::sleep(POLL).await;
    };
    view(ctx, &job);
    match job["state"].as_str().unwrap_or("") {
        "succeeded" => Ok(()),
        state => {
            let why = job["error"]["message"]
                .as_str()
                .map(|m| format!(": {m}"))
                .unwrap_or_default();
            Err(CliError::Server(format!("job {id} {state}{why}")))
        }
    }
}

#[cfg(test)]
mod tests;

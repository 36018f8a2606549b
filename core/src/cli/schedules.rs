//! `keyhold schedule ...`: credential rotation schedules (times in UTC), and
//! `keyhold keystore schedule ...`: a key store's schedule (assign, unassign, show).

use clap::{Args, Subcommand};
use http::Method;
use keyhold::{
    api::schedules::{NewSchedule, RecurrenceSpec, ScheduleAssignment},
    schedule::Recurrence,
};

use super::{CliError, Result, client::seg, context::Ctx, stores};

/// `keyhold schedule ...`
#[derive(Subcommand, Debug)]
pub enum ScheduleCmd {
    /// Creates a rotation schedule (admins; times in UTC)
    Create {
        /// The schedule's name
        name: String,
        #[command(flatten)]
        when: When,
    },
    /// Lists rotation schedules with their next tick
    List,
    /// Shows a rotation schedule
    Show {
        /// The schedule's name
        name: String,
    },
    /// Deletes a rotation schedule (refused while assigned to a key store)
    Delete {
        /// The schedule's name
        name: String,
    },
}

/// When a new schedule runs: exactly one of the four forms.
#[derive(Args, Debug)]
#[group(required = true, multiple = false)]
pub struct When {
    /// Every day at HH:MM (UTC)
    #[arg(long, value_name = "HH:MM")]
    daily: Option<String>,
    /// Every week on a day at a time, e.g. mon@03:00 (UTC)
    #[arg(long, value_name = "DAY@HH:MM")]
    weekly: Option<String>,
    /// Every month on day N (1 to 28) at a time, e.g. 1@03:00 (UTC)
    #[arg(long, value_name = "N@HH:MM")]
    monthly: Option<String>,
    /// A 5-field cron expression, e.g. "0 3 * * mon-fri" (UTC)
    #[arg(long, value_name = "\"m h dom mon dow\"")]
    cron: Option<String>,
}

/// `DAY@HH:MM` or `N@HH:MM` split at the `@`.
fn split_at<'a>(flag: &str, v: &'a str) -> Result<(&'a str, &'a str)> {
    v.split_once('@').ok_or_else(|| {
        CliError::Usage(format!(
            "--{flag} {v}: expected {}@HH:MM",
            if flag == "weekly" { "DAY" } else { "N" }
        ))
    })
}

impl When {
    /// The recurrence, checked locally (bad input exits 2 before calling the server).
    fn spec(&self) -> Result<RecurrenceSpec> {
        let usage = |e: keyhold::schedule::ScheduleError| CliError::Usage(e.to_string());
        let recurrence = match (&self.daily, &self.weekly, &self.monthly, &self.cron) {
            (Some(at), ..) => Recurrence::daily(at).map_err(usage)?,
            (_, Some(v), ..) => {
                let (day, at) = split_at("weekly", v)?;
                Recurrence::weekly(day, at).map_err(usage)?
            }
            (_, _, Some(v), _) => {
                let (day, at) = split_at("monthly", v)?;
                let day: u32 = day.trim().parse().map_err(|_| {
                    CliError::Usage(format!("--monthly {v}: the day must be a number, 1 to 28"))
                })?;
                Recurrence::monthly(day, at).map_err(usage)?
            }
            (_, _, _, Some(expr)) => Recurrence::cron(expr).map_err(usage)?,
            _ => {
                return Err(CliError::Usage(
                    "pass one of --daily, --weekly, --monthly or --cron".into(),
                ));
            }
        };
        Ok(recurrence.spec())
    }
}

/// `keyhold keystore schedule ...`
#[derive(Subcommand, Debug)]
pub enum StoreScheduleCmd {
    /// Assigns a rotation schedule to a local key store linked to AWS KMS
    Assign {
        /// The key store (id or name)
        store: String,
        /// The rotation schedule's name
        schedule: String,
    },
    /// Unassigns a key store's rotation schedule
    Unassign {
        /// The key store (id or name)
        store: String,
    },
    /// Shows a key store's rotation schedule: last run, its result, next run
    Show {
        /// The key store (id or name)
        store: String,
    },
}

const COLUMNS: &[&str] = &["name", "description", "next_run_at", "created_at"];

/// Runs a `schedule` command.
pub async fn run(ctx: Ctx, c: ScheduleCmd) -> Result<()> {
    match c {
        ScheduleCmd::Create { name, when } => {
            let body = NewSchedule {
                name,
                recurrence: when.spec()?,
            };
            let r = ctx.call_with(Method::POST, "/schedules", &body).await?;
            ctx.object(&r.json);
            Ok(())
        }
        ScheduleCmd::List => ctx.show_list("/schedules", COLUMNS).await,
        ScheduleCmd::Show { name } => ctx.show(&format!("/schedules/{}", seg(&name))).await,
        ScheduleCmd::Delete { name } => {
            let path = format!("/schedules/{}", seg(&name));
            ctx.act(Method::DELETE, &path, &format!("Deleted schedule {name}."))
                .await
        }
    }
}

/// Runs a `keystore schedule` command.
pub async fn run_store(ctx: &Ctx, c: StoreScheduleCmd) -> Result<()> {
    match c {
        StoreScheduleCmd::Assign { store, schedule } => {
            let path = format!("{}/schedule", stores::path(ctx, &store).await?);
            let r = ctx
                .call_with(Method::PUT, &path, &ScheduleAssignment { schedule })
                .await?;
            ctx.object(&r.json);
            Ok(())
        }
        StoreScheduleCmd::Unassign { store } => {
            let path = format!("{}/schedule", stores::path(ctx, &store).await?);
            let message = format!("Unassigned the rotation schedule of key store {store}.");
            ctx.act(Method::DELETE, &path, &message).await
        }
        StoreScheduleCmd::Show { store } => {
            let path = format!("{}/schedule", stores::path(ctx, &store).await?);
            ctx.show(&path).await
        }
    }
}

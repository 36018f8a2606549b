//! Long-running jobs (today: "refresh all" of an AWS account) as the durable store
//! holds them under [`super::keys::job`]: state, progress and result summary, so that
//! every node and every restart sees the same job.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::refresh::RefreshSummary;

/// What a job does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum JobKind {
    /// Refresh all: import the AWS account's external key stores and keys.
    Refresh,
}

/// Where a job is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    /// Running (or about to).
    Running,
    /// Finished without error.
    Succeeded,
    /// Stopped by an error (see the job's `error`); what it did before stays.
    Failed,
    /// Stopped on request; what it did before stays.
    Cancelled,
    /// The server stopped while it ran (found `running` at the next start).
    Interrupted,
}

impl JobState {
    /// Whether the job has ended.
    pub fn is_finished(self) -> bool {
        self != JobState::Running
    }

    /// The state's name, e.g. `running`.
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Running => "running",
            JobState::Succeeded => "succeeded",
            JobState::Failed => "failed",
            JobState::Cancelled => "cancelled",
            JobState::Interrupted => "interrupted",
        }
    }
}

/// Why a job failed: the admin API's error code and a message that names AWS's error
/// code when AWS answered with one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct JobError {
    /// Stable error code (as the admin API's errors), e.g. `aws_error`.
    pub code: String,
    /// What happened and what to do.
    pub message: String,
}

/// A long-running job with its progress.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[schema(as = Job)]
pub struct JobRecord {
    /// Job id (random).
    pub id: String,
    /// What the job does.
    pub kind: JobKind,
    /// The AWS account it works on.
    pub account: String,
    /// Where it is.
    pub state: JobState,
    /// Units of work done (a region's listing, a store, a key described).
    pub done: u64,
    /// Units of work known so far (grows as AWS's listings arrive).
    pub total: u64,
    /// Whether someone asked it to stop (it stops before its next unit).
    #[serde(default)]
    pub cancel_requested: bool,
    /// Who started it.
    pub started_by: String,
    /// Start time, Unix seconds.
    pub started_at: i64,
    /// End time, Unix seconds (`None` while running).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<i64>,
    /// What it did so far (final once finished).
    pub summary: RefreshSummary,
    /// Why it failed (state `failed`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<JobError>,
    /// The node running it (a job runs where it was started); absent in jobs of
    /// earlier versions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
}

impl JobRecord {
    /// A new running refresh job of `account` started by `user` at `now`.
    pub fn refresh(id: String, account: &str, user: &str, now: i64) -> JobRecord {
        JobRecord {
            id,
            kind: JobKind::Refresh,
            account: account.to_string(),
            state: JobState::Running,
            done: 0,
            total: 0,
            cancel_requested: false,
            started_by: user.to_string(),
            started_at: now,
            finished_at: None,
            summary: RefreshSummary::default(),
            error: None,
            node: None,
        }
    }
}

/// Key of the marker of the refresh running for `account` (value: the job id): at most
/// one refresh per account runs at a time, created and removed with the job's state.
pub fn running_refresh_key(account: &str) -> String {
    format!("index/running-refresh/{account}")
}

/// Prefix of every running-refresh marker.
pub const RUNNING_REFRESHES: &str = "index/running-refresh/";

/// Most finished jobs kept: older ones are removed when a new job starts.
pub const MAX_FINISHED_JOBS: usize = 100;

/// Which finished jobs to remove so that at most `keep` remain: the oldest first.
/// `jobs` is (id, state, started_at).
pub fn jobs_to_prune(jobs: &[(String, JobState, i64)], keep: usize) -> Vec<String> {
    let mut finished: Vec<&(String, JobState, i64)> =
        jobs.iter().filter(|j| j.1.is_finished()).collect();
    if finished.len() <= keep {
        return Vec::new();
    }
    finished.sort_by(|a, b| a.2.cmp(&b.2).then_with(|| a.0.cmp(&b.0)));
    let excess = finished.len() - keep;
    finished
        .into_iter()
        .take(excess)
        .map(|j| j.0.clone())
        .collect()
}

#[cfg(test)]
mod tests;

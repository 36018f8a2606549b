//! Credential rotation records: a named schedule, and the rotation state of a store
//! that has one assigned (when it was assigned, last ran, with what result, and when it
//! runs next).

use serde::{Deserialize, Serialize};

use crate::schedule::Recurrence;

/// A named credential rotation schedule (stored under [`super::keys::schedule`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScheduleRecord {
    /// Unique name.
    pub name: String,
    /// When it runs (UTC).
    pub recurrence: Recurrence,
    /// Creation time, Unix seconds.
    pub created_at: i64,
}

/// The scheduled rotation of one store (stored under [`super::keys::rotation_state`]
/// while the store has a schedule). Times are Unix seconds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RotationState {
    /// The schedule's name.
    pub schedule: String,
    /// When it was assigned to the store.
    pub assigned_at: i64,
    /// When the last scheduled rotation ran (`None`: not yet).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_run_at: Option<i64>,
    /// Its result: `ok: <new access key id>`, or the error's code and message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_result: Option<String>,
    /// When the next one is due.
    pub next_run_at: i64,
    /// The access key id of a run in progress: the run's credential was added (and
    /// the run claimed) but not yet pushed to AWS KMS and recorded. A leader finishes
    /// such a run instead of starting another.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending: Option<String>,
}

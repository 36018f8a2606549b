//! Credential rotation schedules: `/api/v1/schedules` and a store's assignment,
//! `/api/v1/stores/{id}/schedule`. Times are UTC; `*_at` fields are Unix seconds.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;

use crate::model::{RotationState, ScheduleRecord};
pub use crate::schedule::{RecurrenceSpec, Weekday};

/// `POST /api/v1/schedules` body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewSchedule {
    /// Unique name.
    pub name: String,
    /// When it runs.
    pub recurrence: RecurrenceSpec,
}

/// A schedule as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Schedule {
    /// Unique name.
    pub name: String,
    /// When it runs.
    pub recurrence: RecurrenceSpec,
    /// The same in words, e.g. `every day at 03:00 UTC`.
    pub description: String,
    /// Its next tick from now, Unix seconds.
    pub next_run_at: i64,
    /// Creation time, Unix seconds.
    pub created_at: i64,
}

impl Schedule {
    /// The view of `rec`, its next tick counted from `now`.
    pub fn new(rec: &ScheduleRecord, now: OffsetDateTime) -> Schedule {
        Schedule {
            name: rec.name.clone(),
            recurrence: rec.recurrence.spec(),
            description: rec.recurrence.to_string(),
            next_run_at: rec.recurrence.next_after(now).unix_timestamp(),
            created_at: rec.created_at,
        }
    }
}

/// `PUT /api/v1/stores/{id}/schedule` body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ScheduleAssignment {
    /// The schedule's name.
    pub schedule: String,
}

/// A store's scheduled rotation: its schedule, the last run and the next.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct StoreSchedule {
    /// The store's id.
    pub store_id: String,
    /// The schedule's name.
    pub schedule: String,
    /// When it runs.
    pub recurrence: RecurrenceSpec,
    /// The same in words.
    pub description: String,
    /// When the schedule was assigned, Unix seconds.
    pub assigned_at: i64,
    /// When the last scheduled rotation ran, Unix seconds (absent: not yet).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_run_at: Option<i64>,
    /// Its result: `ok: <new access key id>`, or the error's code and message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_result: Option<String>,
    /// When the next scheduled rotation is due, Unix seconds.
    pub next_run_at: i64,
}

impl StoreSchedule {
    /// The view of store `store_id`'s rotation on `schedule` in `state`.
    pub fn new(store_id: &str, schedule: &ScheduleRecord, state: RotationState) -> StoreSchedule {
        StoreSchedule {
            store_id: store_id.to_string(),
            schedule: schedule.name.clone(),
            recurrence: schedule.recurrence.spec(),
            description: schedule.recurrence.to_string(),
            assigned_at: state.assigned_at,
            last_run_at: state.last_run_at,
            last_result: state.last_result,
            next_run_at: state.next_run_at,
        }
    }
}

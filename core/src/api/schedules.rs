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
    /// When it runs.
    pub recurrence: RecurrenceSpec,
    /// The same in words.
    pub description: String,
    /// The schedule's name, when it was assigned, the last run and its result, the
    /// next run.
    #[serde(flatten)]
    pub state: RotationState,
}

impl StoreSchedule {
    /// The view of store `store_id`'s rotation on `schedule` in `state`.
    pub fn new(store_id: &str, schedule: &ScheduleRecord, state: RotationState) -> StoreSchedule {
        StoreSchedule {
            store_id: store_id.to_string(),
            recurrence: schedule.recurrence.spec(),
            description: schedule.recurrence.to_string(),
            state,
        }
    }
}

//! Credential rotation schedules: create, list, get and delete named schedules; assign
//! one to a local, linked store (or unassign it); and [`Operations::run_due_rotations`],
//! which the scheduler task ([`crate::schedule::runner`]) calls to rotate the
//! credentials whose time has come.
//!
//! A store's rotation state ([`RotationState`]) lives beside its record while a schedule
//! is assigned. A rotation that fails is recorded (with the error's code and message)
//! and tried again at the schedule's next tick, never in a tight loop; after downtime a
//! schedule runs once, not once per missed tick (see [`Recurrence::due`]).

use std::sync::Arc;

use time::OffsetDateTime;

use super::{OpError, Operations, decode, to_json};
use crate::{
    clock::Clock,
    model::{
        self, RotationState, ScheduleRecord, StoreKind, StoreRecord, keys, rules::RuleViolation,
    },
    schedule::Recurrence,
    store::{Condition, StoreError, Write},
};

/// Why a scheduled rotation failed: the operation's error code and message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RotationFailure {
    /// The error's stable code (e.g. `store_blocked`, or AWS's error as an API code).
    pub code: &'static str,
    /// The error's message.
    pub message: String,
}

/// One scheduled rotation that ran.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RotationOutcome {
    /// The store rotated.
    pub store_id: String,
    /// The schedule that made it due.
    pub schedule: String,
    /// When it ran (the `now` it was run at).
    pub ran_at: OffsetDateTime,
    /// The new access key id, or why it failed.
    pub result: Result<String, RotationFailure>,
    /// Access key ids evicted by the rotation (oldest first, over max credentials).
    pub evicted: Vec<String>,
    /// When the store's next scheduled rotation is due.
    pub next_run_at: OffsetDateTime,
}

fn rule(code: &'static str, message: String) -> OpError {
    OpError::Rule(RuleViolation { code, message })
}

/// Scheduled rotation needs a local store (`remote_store`) linked to AWS KMS
/// (`schedule_needs_linked_store`): each run pushes the new credential to AWS.
fn ensure_schedulable(record: &StoreRecord) -> Result<(), OpError> {
    if record.kind == StoreKind::Remote {
        return Err(rule(
            "remote_store",
            format!(
                "key store '{}' is a remote store (served elsewhere): its credentials are not rotated here",
                record.name
            ),
        ));
    }
    if record.aws.is_none() {
        return Err(rule(
            "schedule_needs_linked_store",
            format!(
                "key store '{}' is not linked to AWS KMS: a scheduled rotation pushes each new credential to AWS, \
                 so link the store first (rotate an unlinked store's credential by hand and upload it in the AWS console)",
                record.name
            ),
        ));
    }
    Ok(())
}

/// `t` as Unix seconds.
fn unix(t: OffsetDateTime) -> i64 {
    t.unix_timestamp()
}

/// Unix seconds as a time (out-of-range values read as the epoch).
pub(crate) fn from_unix(secs: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(secs).unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

impl Operations {
    /// Uses `clock` for the times of schedule assignments (the scheduler task's clock,
    /// so that tests driving time see consistent assignments).
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Now, by the operations' clock.
    pub fn now(&self) -> OffsetDateTime {
        self.clock.now()
    }

    /// Creates a schedule; its name must be unique.
    pub fn create_schedule(
        &self,
        name: &str,
        recurrence: Recurrence,
    ) -> Result<ScheduleRecord, OpError> {
        model::validate_name("schedule", name)?;
        let record = ScheduleRecord {
            name: name.to_string(),
            recurrence,
            created_at: model::now_unix(),
        };
        self.create_entry(keys::schedule(name), to_json(&record), "schedule", name)?;
        Ok(record)
    }

    /// Every schedule, by name.
    pub fn list_schedules(&self) -> Result<Vec<ScheduleRecord>, OpError> {
        let mut all: Vec<ScheduleRecord> = self.decode_all(keys::SCHEDULES)?;
        all.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(all)
    }

    /// One schedule.
    pub fn get_schedule(&self, name: &str) -> Result<ScheduleRecord, OpError> {
        decode(&self.entry(&keys::schedule(name), "schedule", name)?)
    }

    /// Names of the stores a schedule is assigned to.
    fn stores_on_schedule(&self, name: &str) -> Result<Vec<String>, OpError> {
        Ok(self
            .list_stores()?
            .into_iter()
            .filter(|s| s.value.rotation_schedule.as_deref() == Some(name))
            .map(|s| s.value.name)
            .collect())
    }

    fn in_use(name: &str, stores: &[String]) -> OpError {
        let names: Vec<String> = stores.iter().map(|s| format!("'{s}'")).collect();
        rule(
            "schedule_in_use",
            format!(
                "schedule '{name}' is assigned to key store{} {}: unassign it first",
                if stores.len() == 1 { "" } else { "s" },
                names.join(", ")
            ),
        )
    }

    /// Deletes a schedule; refused (`schedule_in_use`, naming the stores) while it is
    /// assigned to a store.
    pub fn delete_schedule(&self, name: &str) -> Result<(), OpError> {
        let key = keys::schedule(name);
        let entry = self.entry(&key, "schedule", name)?;
        let users = self.stores_on_schedule(name)?;
        if !users.is_empty() {
            return Err(Self::in_use(name, &users));
        }
        // Assigning rewrites the schedule record: one assigned meanwhile fails this.
        match self.store.commit(
            &[Condition::Revision(key.clone(), entry.revision)],
            vec![Write::Delete(key)],
        ) {
            Ok(_) => Ok(()),
            Err(StoreError::Conflict { .. }) => {
                let users = self.stores_on_schedule(name)?;
                if users.is_empty() {
                    Err(OpError::NotFound {
                        what: "schedule",
                        id: name.to_string(),
                    })
                } else {
                    Err(Self::in_use(name, &users))
                }
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Assigns schedule `name` to store `store_id`: only local, linked stores (codes
    /// `remote_store`, `schedule_needs_linked_store`). Its first rotation is the
    /// schedule's first tick after now. Assigning the schedule a store already has
    /// keeps its state.
    pub fn assign_schedule(&self, store_id: &str, name: &str) -> Result<RotationState, OpError> {
        let store = self.get_store(store_id)?;
        let record = &store.value;
        ensure_schedulable(record)?;
        let schedule_key = keys::schedule(name);
        let schedule_entry = self.entry(&schedule_key, "schedule", name)?;
        let schedule: ScheduleRecord = decode(&schedule_entry)?;
        if record.rotation_schedule.as_deref() == Some(name) {
            if let Some(state) = self.rotation_state(store_id)? {
                return Ok(state);
            }
        }
        let now = self.clock.now();
        let state = RotationState {
            schedule: name.to_string(),
            assigned_at: unix(now),
            last_run_at: None,
            last_result: None,
            next_run_at: unix(schedule.recurrence.next_after(now)),
            pending: None,
        };
        let mut next = record.clone();
        next.rotation_schedule = Some(name.to_string());
        let conditions = [
            Condition::Revision(keys::store(store_id), store.version),
            Condition::Revision(schedule_key.clone(), schedule_entry.revision),
        ];
        let writes = vec![
            Write::Put(keys::store(store_id), to_json(&next)),
            Write::Put(keys::rotation_state(store_id), to_json(&state)),
            // Rewritten (unchanged) so that a delete of the schedule racing this fails.
            Write::Put(schedule_key, schedule_entry.value.clone()),
        ];
        self.commit_store_change(store_id, &conditions, writes)?;
        Ok(state)
    }

    /// Removes a store's schedule and its rotation state; `not_found` when it has none.
    pub fn unassign_schedule(&self, store_id: &str) -> Result<(), OpError> {
        let store = self.get_store(store_id)?;
        if store.value.rotation_schedule.is_none() {
            return Err(OpError::NotFound {
                what: "rotation schedule of key store",
                id: store.value.name,
            });
        }
        let mut next = store.value.clone();
        next.rotation_schedule = None;
        self.commit_store_change(
            store_id,
            &[Condition::Revision(keys::store(store_id), store.version)],
            vec![
                Write::Put(keys::store(store_id), to_json(&next)),
                Write::Delete(keys::rotation_state(store_id)),
            ],
        )?;
        Ok(())
    }

    fn rotation_state(&self, store_id: &str) -> Result<Option<RotationState>, OpError> {
        self.store
            .get(&keys::rotation_state(store_id))?
            .map(|e| decode(&e))
            .transpose()
    }

    /// A store's schedule and rotation state; `not_found` when it has none.
    pub fn store_schedule(
        &self,
        store_id: &str,
    ) -> Result<(ScheduleRecord, RotationState), OpError> {
        let store = self.get_store(store_id)?;
        let none = || OpError::NotFound {
            what: "rotation schedule of key store",
            id: store.value.name.clone(),
        };
        let name = store.value.rotation_schedule.as_deref().ok_or_else(none)?;
        let state = self.rotation_state(store_id)?.ok_or_else(none)?;
        Ok((self.get_schedule(name)?, state))
    }

    /// When the earliest scheduled rotation is due (`None`: no store has a schedule).
    pub fn next_rotation_at(&self) -> Result<Option<OffsetDateTime>, OpError> {
        let states: Vec<RotationState> = self.decode_all(keys::ROTATION_STATES)?;
        Ok(states.iter().map(|s| s.next_run_at).min().map(from_unix))
    }

    /// Rotates the credential of every store whose scheduled rotation is due at `now`
    /// (through [`Operations::add_credential`], which pushes it to AWS KMS), recording each run's time and result
    /// and the next run (the schedule's first tick after `now`, also after a failure).
    /// Problems reading a store's state are logged and that store skipped.
    pub fn run_due_rotations(&self, now: OffsetDateTime) -> Vec<RotationOutcome> {
        let entries = match self.store.scan(keys::ROTATION_STATES) {
            Ok(entries) => entries,
            Err(e) => {
                tracing::error!("scheduled rotations: cannot read rotation states: {e}");
                return Vec::new();
            }
        };
        let mut outcomes = Vec::new();
        for entry in entries {
            let store_id = entry
                .key
                .trim_start_matches(keys::ROTATION_STATES)
                .to_string();
            let state: RotationState = match decode(&entry) {
                Ok(s) => s,
                Err(e) => {
                    tracing::error!(store = %store_id, "scheduled rotation skipped: {e}");
                    continue;
                }
            };
            let schedule = match self.get_schedule(&state.schedule) {
                Ok(s) => s,
                Err(e) => {
                    tracing::error!(store = %store_id, schedule = %state.schedule, "scheduled rotation skipped: {e}");
                    continue;
                }
            };
            let last = from_unix(state.last_run_at.unwrap_or(state.assigned_at));
            if !schedule.recurrence.due(last, now) {
                continue;
            }
            let next_run_at = schedule.recurrence.next_after(now);
            let recorded = |result: &Result<String, RotationFailure>| RotationState {
                last_run_at: Some(unix(now)),
                last_result: Some(match result {
                    Ok(akid) => format!("ok: {akid}"),
                    Err(f) => format!("{}: {}", f.code, f.message),
                }),
                next_run_at: unix(next_run_at),
                pending: None,
                ..state.clone()
            };
            // A store unlinked since it was assigned is not rotated (the run records why).
            let claimed = match self
                .get_store(&store_id)
                .and_then(|st| ensure_schedulable(&st.value))
            {
                Err(e) => Some((Err(e), entry.revision)),
                Ok(()) => self.run_claimed_rotation(&store_id, &entry, &state),
            };
            let Some((rotated, revision)) = claimed else {
                tracing::info!(store = %store_id, "scheduled rotation left to the node that claimed it meanwhile");
                continue;
            };
            let (result, evicted) = match rotated {
                Ok((akid, evicted)) => (Ok(akid), evicted),
                Err(e) => (
                    Err(RotationFailure {
                        code: e.code(),
                        message: e.to_string(),
                    }),
                    Vec::new(),
                ),
            };
            // Unassigned or reassigned meanwhile: that change wins.
            if let Err(e) = self.store.commit(
                &[Condition::Revision(entry.key.clone(), revision)],
                vec![Write::Put(entry.key.clone(), to_json(&recorded(&result)))],
            ) {
                tracing::warn!(store = %store_id, "scheduled rotation ran but its state was not recorded: {e}");
            }
            outcomes.push(RotationOutcome {
                store_id,
                schedule: schedule.name,
                ran_at: now,
                result,
                evicted,
                next_run_at,
            });
        }
        outcomes
    }
}

mod claimed;

#[cfg(test)]
mod tests;

//! The scheduler task: runs the due credential rotations
//! ([`Operations::run_due_rotations`]) on the blocking pool, then waits on the clock
//! until the earliest next run, looking again at least every [`MAX_WAIT`] of clock time
//! (a schedule assigned meanwhile is picked up then). Each run is logged and, with an
//! audit log, recorded there durably like an admin change (user `(scheduler)`, action
//! `scheduled_rotation`).

use std::{sync::Arc, time::Duration};

use serde_json::{Value, json};
use tokio::sync::watch;

use crate::{
    audit::AuditLog,
    clock::Clock,
    cluster::Membership,
    ops::{Operations, RotationOutcome},
};

/// The longest wait between two looks at the schedules.
pub const MAX_WAIT: Duration = Duration::from_secs(30);

/// The shortest wait: a run whose state could not be recorded is not retried in a
/// tight loop.
pub const MIN_WAIT: Duration = Duration::from_secs(1);

/// The audit record of a scheduled rotation (never a secret).
pub fn audit_event(o: &RotationOutcome) -> Value {
    let (outcome, mut details) = match &o.result {
        Ok(akid) => (
            "ok".to_string(),
            json!({"access_key_id": akid, "evicted": o.evicted}),
        ),
        Err(f) => (format!("failed: {}", f.code), json!({"error": f.message})),
    };
    details["schedule"] = json!(o.schedule);
    details["next_run_at"] = json!(o.next_run_at.unix_timestamp());
    json!({
        "kind": "admin",
        "user": "(scheduler)",
        "action": "scheduled_rotation",
        "object": format!("store/{}", o.store_id),
        "outcome": outcome,
        "details": details,
    })
}

fn log_outcome(o: &RotationOutcome) {
    match &o.result {
        Ok(akid) => tracing::info!(
            store = %o.store_id, schedule = %o.schedule, access_key_id = %akid,
            evicted = ?o.evicted, next_run_at = %o.next_run_at,
            "scheduled credential rotation done"
        ),
        Err(f) => tracing::warn!(
            store = %o.store_id, schedule = %o.schedule, code = f.code,
            next_run_at = %o.next_run_at,
            "scheduled credential rotation failed: {}", f.message
        ),
    }
}

/// Runs due rotations until `shutdown` turns true (or its sender is dropped), logging
/// each run.
pub async fn run_scheduler(
    ops: Arc<Operations>,
    clock: Arc<dyn Clock>,
    shutdown: watch::Receiver<bool>,
) {
    run_audited_scheduler(ops, clock, None, shutdown).await;
}

/// [`run_scheduler`] that also records each run in `audit` (durably, before the next
/// look).
pub async fn run_audited_scheduler(
    ops: Arc<Operations>,
    clock: Arc<dyn Clock>,
    audit: Option<AuditLog>,
    shutdown: watch::Receiver<bool>,
) {
    run_scheduler_when(ops, clock, audit, None, shutdown).await;
}

/// [`run_audited_scheduler`] on a node of a cluster: rotations run only while
/// `membership` says this node leads, so that each runs once in the cluster. A node
/// that does not lead looks again every [`MIN_WAIT`] (of real time: leadership is
/// real time), so a new leader takes over within about a second of its election.
pub async fn run_led_scheduler(
    ops: Arc<Operations>,
    clock: Arc<dyn Clock>,
    audit: Option<AuditLog>,
    membership: Arc<dyn Membership>,
    shutdown: watch::Receiver<bool>,
) {
    run_scheduler_when(ops, clock, audit, Some(membership), shutdown).await;
}

async fn run_scheduler_when(
    ops: Arc<Operations>,
    clock: Arc<dyn Clock>,
    audit: Option<AuditLog>,
    membership: Option<Arc<dyn Membership>>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        if *shutdown.borrow() {
            break;
        }
        if membership.as_ref().is_some_and(|m| !m.is_leader()) {
            tokio::select! {
                _ = tokio::time::sleep(MIN_WAIT) => continue,
                changed = shutdown.changed() => {
                    if changed.is_err() {
                        break;
                    }
                    continue;
                }
            }
        }
        let now = clock.now();
        let (task_ops, task_audit) = (ops.clone(), audit.clone());
        let looked = tokio::task::spawn_blocking(move || {
            for o in task_ops.run_due_rotations(now) {
                log_outcome(&o);
                if let Some(audit) = &task_audit {
                    if let Err(e) = audit.record_durable(audit_event(&o)) {
                        tracing::error!(store = %o.store_id, "audit record of a scheduled rotation failed: {e}");
                    }
                }
            }
            task_ops.next_rotation_at()
        })
        .await;
        let next = match looked {
            Ok(next) => next.unwrap_or_else(|e| {
                tracing::error!("scheduled rotations: cannot read the next run: {e}");
                None
            }),
            Err(e) => {
                tracing::error!("scheduled rotations task failed: {e}");
                None
            }
        };
        let wait = next.map_or(MAX_WAIT, |at| {
            let ahead = at - clock.now();
            Duration::try_from(ahead).unwrap_or(Duration::ZERO)
        });
        let wait = wait.clamp(MIN_WAIT, MAX_WAIT);
        tokio::select! {
            _ = clock.sleep(wait) => {}
            changed = shutdown.changed() => {
                if changed.is_err() {
                    break;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;

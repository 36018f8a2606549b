//! The scheduler task: runs the due credential rotations
//! ([`Operations::run_due_rotations`]) on the blocking pool, then waits on the clock
//! until the earliest next run, looking again at least every [`MAX_WAIT`] of clock time
//! (a schedule assigned meanwhile is picked up then).

use std::{sync::Arc, time::Duration};

use tokio::sync::watch;

use crate::{clock::Clock, ops::Operations};

/// The longest wait between two looks at the schedules.
pub const MAX_WAIT: Duration = Duration::from_secs(30);

/// The shortest wait: a run whose state could not be recorded is not retried in a
/// tight loop.
pub const MIN_WAIT: Duration = Duration::from_secs(1);

/// Runs due rotations until `shutdown` turns true (or its sender is dropped).
pub async fn run_scheduler(
    ops: Arc<Operations>,
    clock: Arc<dyn Clock>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        if *shutdown.borrow() {
            break;
        }
        let now = clock.now();
        let task_ops = ops.clone();
        let looked = tokio::task::spawn_blocking(move || {
            let outcomes = task_ops.run_due_rotations(now);
            (outcomes, task_ops.next_rotation_at())
        })
        .await;
        let next = match looked {
            Ok((outcomes, next)) => {
                for o in &outcomes {
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
                next.unwrap_or_else(|e| {
                    tracing::error!("scheduled rotations: cannot read the next run: {e}");
                    None
                })
            }
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

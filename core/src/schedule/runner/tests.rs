use time::macros::datetime;

use super::*;
use crate::{
    clock::ManualClock, ops::RotationFailure, secrets::MasterKey, store::MemoryStore, xks::Sources,
};

fn outcome(result: Result<String, RotationFailure>) -> RotationOutcome {
    RotationOutcome {
        store_id: "s1".into(),
        schedule: "nightly".into(),
        ran_at: datetime!(2026-12-03 03:00 UTC),
        result,
        evicted: vec!["OLD".into()],
        next_run_at: datetime!(2026-12-04 03:00 UTC),
    }
}

#[test]
fn runs_are_audited_with_their_result_and_next_run() {
    let ok = audit_event(&outcome(Ok("NEWKEY".into())));
    assert_eq!(
        ok,
        json!({"kind": "admin", "user": "(scheduler)", "action": "scheduled_rotation",
               "object": "store/s1", "outcome": "ok",
               "details": {"access_key_id": "NEWKEY", "evicted": ["OLD"], "schedule": "nightly",
                           "next_run_at": datetime!(2026-12-04 03:00 UTC).unix_timestamp()}})
    );
    let failed = audit_event(&outcome(Err(RotationFailure {
        code: "store_blocked",
        message: "key store 'x' is blocked: unblock it first".into(),
    })));
    assert_eq!(failed["outcome"], "failed: store_blocked");
    assert_eq!(
        failed["details"]["error"],
        "key store 'x' is blocked: unblock it first"
    );
}

#[tokio::test]
async fn the_scheduler_stops_on_shutdown_and_when_its_sender_is_gone() {
    let ops = Arc::new(Operations::new(
        Arc::new(MemoryStore::new()),
        Arc::new(MasterKey::from_bytes(&[1u8; 32])),
        Arc::new(Sources::default()),
    ));
    let clock: Arc<dyn Clock> = Arc::new(ManualClock::new(datetime!(2026-12-02 12:00 UTC)));
    let (tx, rx) = watch::channel(false);
    let task = tokio::spawn(run_scheduler(ops.clone(), clock.clone(), rx));
    tx.send(true).expect("receiver alive");
    task.await.expect("scheduler ended");
    let (tx, rx) = watch::channel(false);
    let task = tokio::spawn(run_scheduler(ops, clock, rx));
    drop(tx);
    task.await.expect("scheduler ended");
}

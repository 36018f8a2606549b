use std::sync::Arc;

use time::{OffsetDateTime, macros::datetime};

use super::super::tests::{fixture, new_store};
use super::*;
use crate::{
    clock::ManualClock,
    model::{AwsLink, ConnectionState},
};

/// Operations whose assignments are timed by a manual clock at `start`, and a store
/// named `name` (linked to AWS when `linked`).
fn ops_with_store(start: OffsetDateTime, linked: bool) -> (Operations, ManualClock, String) {
    let clock = ManualClock::new(start);
    let ops = fixture().ops.with_clock(Arc::new(clock.clone()));
    let (store, _) = ops.create_store(new_store("acme")).unwrap();
    if linked {
        let link = AwsLink::new("cks-1234567890abcdef0", ConnectionState::Connected);
        ops.set_store_link(&store.id, Some(link)).unwrap();
    }
    (ops, clock, store.id)
}

fn state(ops: &Operations, store_id: &str) -> RotationState {
    ops.store_schedule(store_id).unwrap().1
}

#[test]
fn schedules_are_validated_unique_listed_and_deleted() {
    let ops = fixture().ops;
    let nightly = Recurrence::daily("03:00").unwrap();
    let rec = ops.create_schedule("nightly", nightly.clone()).unwrap();
    assert_eq!((rec.name.as_str(), &rec.recurrence), ("nightly", &nightly));
    let e = ops.create_schedule("nightly", nightly.clone()).unwrap_err();
    assert_eq!((e.code(), e.http_status()), ("already_exists", 409));
    let e = ops.create_schedule("a/b", nightly.clone()).unwrap_err();
    assert_eq!((e.code(), e.http_status()), ("invalid_input", 400));
    ops.create_schedule("hourly", Recurrence::cron("0 * * * *").unwrap())
        .unwrap();
    let names: Vec<String> = ops
        .list_schedules()
        .unwrap()
        .into_iter()
        .map(|s| s.name)
        .collect();
    assert_eq!(names, ["hourly", "nightly"]);
    assert_eq!(
        ops.get_schedule("hourly").unwrap().recurrence.to_string(),
        "cron '0 * * * *' (UTC)"
    );
    ops.delete_schedule("hourly").unwrap();
    assert_eq!(ops.get_schedule("hourly").unwrap_err().code(), "not_found");
    assert_eq!(
        ops.delete_schedule("hourly").unwrap_err().code(),
        "not_found"
    );
}

#[test]
fn only_local_linked_stores_take_a_schedule() {
    let start = datetime!(2026-12-02 12:00 UTC);
    let (ops, _clock, id) = ops_with_store(start, false);
    ops.create_schedule("nightly", Recurrence::daily("03:00").unwrap())
        .unwrap();
    // Unlinked: refused with the reason.
    let e = ops.assign_schedule(&id, "nightly").unwrap_err();
    assert_eq!(
        (e.code(), e.http_status()),
        ("schedule_needs_linked_store", 409)
    );
    assert!(e.to_string().contains("not linked to AWS KMS"), "{e}");
    // Remote (found on AWS, served elsewhere): refused.
    ops.set_store_link(&id, Some(AwsLink::new("cks-1", ConnectionState::Connected)))
        .unwrap();
    ops.change_store(&id, |s| {
        s.kind = StoreKind::Remote;
        Ok(())
    })
    .unwrap();
    let e = ops.assign_schedule(&id, "nightly").unwrap_err();
    assert_eq!(e.code(), "remote_store");
    assert!(e.to_string().contains("remote store"), "{e}");
    ops.change_store(&id, |s| {
        s.kind = StoreKind::Local;
        Ok(())
    })
    .unwrap();
    // Unknown schedule or store.
    assert_eq!(
        ops.assign_schedule(&id, "nope").unwrap_err().code(),
        "not_found"
    );
    assert_eq!(
        ops.assign_schedule("nope", "nightly").unwrap_err().code(),
        "not_found"
    );
    assert_eq!(ops.store_schedule(&id).unwrap_err().code(), "not_found");
    // Local and linked: assigned, first run at the next tick.
    let st = ops.assign_schedule(&id, "nightly").unwrap();
    assert_eq!(
        st,
        RotationState {
            schedule: "nightly".into(),
            assigned_at: start.unix_timestamp(),
            last_run_at: None,
            last_result: None,
            next_run_at: datetime!(2026-12-03 03:00 UTC).unix_timestamp(),
            pending: None,
        }
    );
    assert_eq!(
        ops.get_store(&id)
            .unwrap()
            .value
            .rotation_schedule
            .as_deref(),
        Some("nightly")
    );
    let (sched, shown) = ops.store_schedule(&id).unwrap();
    assert_eq!((sched.name.as_str(), &shown), ("nightly", &st));
    assert_eq!(
        ops.next_rotation_at().unwrap(),
        Some(datetime!(2026-12-03 03:00 UTC))
    );
    // Assigning the same schedule again keeps the state.
    assert_eq!(ops.assign_schedule(&id, "nightly").unwrap(), st);
    // No deletion while assigned: the stores are named.
    let e = ops.delete_schedule("nightly").unwrap_err();
    assert_eq!((e.code(), e.http_status()), ("schedule_in_use", 409));
    assert!(e.to_string().contains("key store 'acme'"), "{e}");
    // Unassign: state gone; a second unassign is not_found; now deletable.
    ops.unassign_schedule(&id).unwrap();
    assert!(
        ops.get_store(&id)
            .unwrap()
            .value
            .rotation_schedule
            .is_none()
    );
    assert_eq!(ops.store_schedule(&id).unwrap_err().code(), "not_found");
    assert_eq!(ops.next_rotation_at().unwrap(), None);
    assert_eq!(ops.unassign_schedule(&id).unwrap_err().code(), "not_found");
    ops.delete_schedule("nightly").unwrap();
}

#[test]
fn deleting_a_store_clears_its_rotation_state() {
    let (ops, _clock, id) = ops_with_store(datetime!(2026-12-02 12:00 UTC), true);
    ops.create_schedule("nightly", Recurrence::daily("03:00").unwrap())
        .unwrap();
    ops.assign_schedule(&id, "nightly").unwrap();
    // Deleting a linked store deletes it on AWS KMS too (not reachable here): the link
    // is dropped first, as if the AWS side were gone.
    ops.set_store_link(&id, None).unwrap();
    ops.delete_store(&id, true).unwrap();
    assert_eq!(ops.next_rotation_at().unwrap(), None);
    assert!(
        ops.run_due_rotations(datetime!(2027-01-01 00:00 UTC))
            .is_empty()
    );
    ops.delete_schedule("nightly").unwrap();
}

/// The state recorded for an outcome: its time, its result as text, its next run.
fn assert_recorded(ops: &Operations, o: &RotationOutcome) {
    let st = state(ops, &o.store_id);
    assert_eq!(st.last_run_at, Some(o.ran_at.unix_timestamp()));
    assert_eq!(st.next_run_at, o.next_run_at.unix_timestamp());
    let expected = match &o.result {
        Ok(akid) => format!("ok: {akid}"),
        Err(f) => format!("{}: {}", f.code, f.message),
    };
    assert_eq!(st.last_result.as_deref(), Some(expected.as_str()));
}

#[test]
fn due_rotations_run_once_per_tick_and_catch_up_once() {
    let (ops, _clock, id) = ops_with_store(datetime!(2026-12-02 12:00 UTC), true);
    ops.create_schedule("nightly", Recurrence::daily("03:00").unwrap())
        .unwrap();
    ops.assign_schedule(&id, "nightly").unwrap();
    let creds = |ops: &Operations| ops.list_credentials(&id).unwrap().len();
    let before = creds(&ops);
    // Not yet due.
    assert!(
        ops.run_due_rotations(datetime!(2026-12-03 02:59 UTC))
            .is_empty()
    );
    // Due: one run, recorded with what add_credential answered.
    let tick = datetime!(2026-12-03 03:00 UTC);
    let outcomes = ops.run_due_rotations(tick);
    assert_eq!(outcomes.len(), 1);
    let o = &outcomes[0];
    assert_eq!(
        (o.store_id.as_str(), o.schedule.as_str(), o.ran_at),
        (id.as_str(), "nightly", tick)
    );
    assert_eq!(o.next_run_at, datetime!(2026-12-04 03:00 UTC));
    assert_recorded(&ops, o);
    let after_first = creds(&ops);
    match &o.result {
        Ok(akid) => {
            assert_eq!(after_first, before + 1);
            assert!(
                ops.list_credentials(&id)
                    .unwrap()
                    .iter()
                    .any(|(a, _)| a == akid)
            );
        }
        Err(_) => assert_eq!(after_first, before),
    }
    // Not again before the next tick, however often it is asked.
    for t in [
        tick,
        datetime!(2026-12-03 12:00 UTC),
        datetime!(2026-12-04 02:59 UTC),
    ] {
        assert!(ops.run_due_rotations(t).is_empty(), "{t}");
    }
    // Ten days down: one run, the next one counted from when it ran.
    let back = datetime!(2026-12-14 17:30 UTC);
    let outcomes = ops.run_due_rotations(back);
    assert_eq!(outcomes.len(), 1);
    assert_eq!(outcomes[0].next_run_at, datetime!(2026-12-15 03:00 UTC));
    assert_recorded(&ops, &outcomes[0]);
    assert!(ops.run_due_rotations(back).is_empty());
    assert!(
        ops.run_due_rotations(datetime!(2026-12-15 02:59 UTC))
            .is_empty()
    );
}

#[test]
fn a_failed_rotation_is_recorded_and_retried_at_the_next_tick_only() {
    let (ops, _clock, id) = ops_with_store(datetime!(2026-12-02 12:00 UTC), true);
    ops.create_schedule("hourly", Recurrence::cron("0 * * * *").unwrap())
        .unwrap();
    ops.assign_schedule(&id, "hourly").unwrap();
    // A blocked store refuses new credentials: the rotation fails.
    ops.set_store_blocked(&id, true).unwrap();
    let before = ops.list_credentials(&id).unwrap();
    let tick = datetime!(2026-12-02 13:00 UTC);
    let outcomes = ops.run_due_rotations(tick);
    assert_eq!(outcomes.len(), 1);
    let failure = outcomes[0].result.clone().unwrap_err();
    assert_eq!(failure.code, "store_blocked");
    assert_recorded(&ops, &outcomes[0]);
    assert!(
        state(&ops, &id)
            .last_result
            .unwrap()
            .starts_with("store_blocked: key store 'acme' is blocked"),
    );
    assert_eq!(ops.list_credentials(&id).unwrap(), before);
    // No tight retry loop: nothing until the next tick.
    for t in [
        tick,
        datetime!(2026-12-02 13:00:30 UTC),
        datetime!(2026-12-02 13:59 UTC),
    ] {
        assert!(ops.run_due_rotations(t).is_empty(), "{t}");
    }
    // The next tick tries again (and succeeds or fails as add_credential says).
    ops.set_store_blocked(&id, false).unwrap();
    let outcomes = ops.run_due_rotations(datetime!(2026-12-02 14:00 UTC));
    assert_eq!(outcomes.len(), 1);
    assert_recorded(&ops, &outcomes[0]);
    assert_ne!(outcomes[0].result, Err(failure));
}

#[test]
fn an_unassigned_store_is_not_rotated() {
    let (ops, _clock, id) = ops_with_store(datetime!(2026-12-02 12:00 UTC), true);
    ops.create_schedule("hourly", Recurrence::cron("0 * * * *").unwrap())
        .unwrap();
    ops.assign_schedule(&id, "hourly").unwrap();
    ops.unassign_schedule(&id).unwrap();
    assert!(
        ops.run_due_rotations(datetime!(2026-12-03 00:00 UTC))
            .is_empty()
    );
}

#[test]
fn a_store_unlinked_after_assignment_is_not_rotated_and_says_why() {
    let (ops, _clock, id) = ops_with_store(datetime!(2026-12-02 12:00 UTC), true);
    ops.create_schedule("hourly", Recurrence::cron("0 * * * *").unwrap())
        .unwrap();
    ops.assign_schedule(&id, "hourly").unwrap();
    ops.set_store_link(&id, None).unwrap();
    let before = ops.list_credentials(&id).unwrap();
    let outcomes = ops.run_due_rotations(datetime!(2026-12-02 13:00 UTC));
    assert_eq!(outcomes.len(), 1);
    let failure = outcomes[0].result.clone().unwrap_err();
    assert_eq!(failure.code, "schedule_needs_linked_store");
    assert_recorded(&ops, &outcomes[0]);
    assert_eq!(ops.list_credentials(&id).unwrap(), before);
}

//! The traffic history's pure parts (deltas, quantiles, the ring) and its sampling
//! step, with injected times and no I/O; its memory bound at 10,000 stores.

use std::sync::Arc;

use super::*;
use crate::xks::XksErrorKind;

const T0: i64 = 1_796_000_000;

fn slots(pairs: &[(usize, u64)]) -> [u64; SLOTS] {
    let mut s = [0; SLOTS];
    for &(i, n) in pairs {
        s[i] = n;
    }
    s
}

fn refused(kind: XksErrorKind) -> Outcome {
    Outcome::Refused(kind)
}

#[test]
fn delta_counts_what_grew_and_never_counts_twice() {
    let mut last = Totals::default();
    last.outcomes[0] = 10;
    last.slots[3] = 7;
    let mut now = last;
    now.outcomes[0] = 15;
    now.outcomes[2] = 1;
    now.slots[3] = 9;
    let (d, next) = delta(&last, &now);
    assert_eq!((d.outcomes[0], d.outcomes[2], d.slots[3]), (5, 1, 2));
    assert_eq!(d.requests(), 6);
    assert_eq!(next, now);
    // A value read lower (the open slot, derived from two counters read apart) counts
    // nothing and keeps the higher one: its recovery is not counted again.
    let mut lower = now;
    lower.slots[SLOTS - 1] = 0;
    let mut high = now;
    high.slots[SLOTS - 1] = 1;
    let (_, kept) = delta(&now, &high);
    let (d, kept) = delta(&kept, &lower);
    assert!(d.is_zero());
    assert_eq!(kept.slots[SLOTS - 1], 1);
    let (d, _) = delta(&kept, &high);
    assert!(d.is_zero());
}

#[test]
fn quantiles_interpolate_within_the_bucket() {
    assert_eq!(quantile(&[0; SLOTS], 0.5), None);
    // One observation in the first bucket (0..50 µs): its middle and near its top.
    assert_eq!(quantile(&slots(&[(0, 1)]), 0.5), Some(25));
    assert_eq!(quantile(&slots(&[(0, 1)]), 0.99), Some(50));
    // 100 in 1..2.5 ms: the median halfway through.
    assert_eq!(quantile(&slots(&[(5, 100)]), 0.5), Some(1_750));
    // 90 fast (50..100 µs), 10 slow (2.5..5 ms).
    let mixed = slots(&[(1, 90), (6, 10)]);
    assert_eq!(quantile(&mixed, 0.5), Some(78)); // 50 + 50 × 50/90
    assert_eq!(quantile(&mixed, 0.99), Some(4_750)); // 2500 + 2500 × 9/10
    assert_eq!(quantile(&mixed, 0.9), Some(100)); // the rank ends the fast bucket
    // Above the last bound: that bound (5 s).
    assert_eq!(quantile(&slots(&[(SLOTS - 1, 3)]), 0.5), Some(5_000_000));
    assert_eq!(
        quantile(&slots(&[(0, 99), (SLOTS - 1, 1)]), 0.999),
        Some(5_000_000)
    );
    // q out of range is clamped.
    assert_eq!(quantile(&slots(&[(5, 100)]), 2.0), Some(2_500));
}

#[test]
fn totals_sum_the_xks_operations_by_outcome_and_slot() {
    let m = StoreMetrics::default();
    m.record(XksOp::Encrypt, Outcome::Ok, 120);
    m.record(XksOp::Decrypt, Outcome::Ok, 6_000_000);
    m.record(
        XksOp::GetKeyMetadata,
        refused(XksErrorKind::KeyNotFound),
        40,
    );
    m.record(XksOp::Decrypt, refused(XksErrorKind::MethodNotAllowed), 40);
    // The load balancer's probes are not XKS traffic.
    m.record(XksOp::LoadBalancerHealth, Outcome::Ok, 10);
    let t = Totals::read(&m);
    assert_eq!(t.requests(), 4);
    assert_eq!(t.outcomes[Outcome::Ok.index()], 2);
    assert_eq!(t.outcomes[refused(XksErrorKind::KeyNotFound).index()], 1);
    // MethodNotAllowed answers ValidationException: counted under that name.
    let validation = refused(XksErrorKind::Validation).index();
    assert_eq!(t.outcomes[validation], 1);
    assert_eq!(error_name(validation - 1), "ValidationException");
    assert_eq!(t.slots, slots(&[(0, 2), (2, 1), (SLOTS - 1, 1)]));
    for o in Outcome::all().skip(1) {
        assert_eq!(error_name(o.index() - 1), o.label());
    }
}

fn traffic(ok: u64, errors: &[(Outcome, u64)], slot: usize) -> Totals {
    let mut t = Totals::default();
    t.outcomes[0] = ok;
    for &(o, n) in errors {
        t.outcomes[o.index()] = n;
    }
    t.slots[slot] = t.requests();
    t
}

#[test]
fn the_ring_keeps_points_with_their_error_counts_and_expires_them() {
    let mut ring = Ring::default();
    let not_found = refused(XksErrorKind::KeyNotFound);
    let throttled = refused(XksErrorKind::Throttling);
    ring.push(100, &traffic(5, &[(not_found, 2)], 5));
    ring.push(110, &Totals::default()); // no request: no point
    ring.push(120, &traffic(1, &[(throttled, 3), (not_found, 4)], 0));
    ring.push(130, &traffic(7, &[], 1));
    let got: Vec<_> = ring.points().collect();
    assert_eq!(got.len(), 3);
    assert_eq!(
        (got[0].0.at, got[0].0.requests, got[0].0.p50_us),
        (100, 7, 1_750)
    );
    assert_eq!(got[0].1, vec![(not_found.index() - 1, 2)]);
    let mut second = got[1].1.clone();
    second.sort();
    let mut want = vec![(not_found.index() - 1, 4), (throttled.index() - 1, 3)];
    want.sort();
    assert_eq!(second, want);
    assert!(got[2].1.is_empty());
    // Expiry drops points at or before the cutoff with their counts.
    assert!(!ring.expire(100));
    let got: Vec<_> = ring.points().collect();
    assert_eq!(got[0].0.at, 120);
    assert_eq!(got[0].1.len(), 2);
    assert!(ring.expire(130));
    assert_eq!(ring.points().count(), 0);
}

#[test]
fn a_full_ring_drops_its_oldest_point_and_stays_aligned() {
    let mut ring = Ring::default();
    let not_found = refused(XksErrorKind::KeyNotFound);
    for i in 0..(MAX_POINTS as u32 + 5) {
        ring.push(i, &traffic(1, &[(not_found, u64::from(i))], 0));
    }
    let got: Vec<_> = ring.points().collect();
    assert_eq!(got.len(), MAX_POINTS);
    assert_eq!(got[0].0.at, 5);
    for (p, errors) in got {
        // Point `i` had `i` refusals (none at 0, so no entry for it).
        assert_eq!(errors, vec![(not_found.index() - 1, p.at)]);
    }
}

#[test]
fn a_latency_missing_from_an_interval_is_null_not_zero() {
    let mut ring = Ring::default();
    let mut t = Totals::default();
    t.outcomes[0] = 1; // counted; its latency lands in the next interval
    ring.push(10, &t);
    let p = ring.points().next().expect("point").0;
    assert_eq!((p.p50_us, p.p99_us), (NO_LATENCY, NO_LATENCY));
    let h = History::new(10);
    let m = Arc::new(StoreMetrics::default());
    m.requests[XksOp::Encrypt as usize][0].fetch_add(1, Relaxed);
    h.sample(T0, &vec![("s1".to_string(), m)]);
    let view = h.store("s1", "one", "n1");
    assert_eq!(view.points[0].p50_us, None);
    assert_eq!(view.points[0].requests, 1);
}

#[test]
fn sampling_records_each_interval_and_forgets_what_is_gone() {
    let h = History::new(10);
    assert_eq!((h.interval_seconds(), h.window_seconds()), (10, 3600));
    let (a, b) = (
        Arc::new(StoreMetrics::default()),
        Arc::new(StoreMetrics::default()),
    );
    let stores = vec![("a".to_string(), a.clone()), ("b".to_string(), b.clone())];
    let empty = h.store("a", "alpha", "node-1");
    assert_eq!((empty.sampled_at, empty.points.len()), (None, 0));
    // Traffic before the first sample counts in the first interval.
    for _ in 0..30 {
        a.record(XksOp::Encrypt, Outcome::Ok, 300);
    }
    a.record(XksOp::Encrypt, refused(XksErrorKind::KeyNotFound), 60);
    h.sample(T0, &stores);
    assert_eq!(h.active_stores(), 1, "b had no traffic: nothing for it");
    h.sample(T0 + 10, &stores); // no traffic: no point
    a.record(XksOp::Decrypt, Outcome::Ok, 2_000);
    h.sample(T0 + 20, &stores);
    let view = h.store("a", "alpha", "node-1");
    assert_eq!(
        (view.store.as_str(), view.name.as_str(), view.node.as_str()),
        ("a", "alpha", "node-1")
    );
    assert_eq!(view.sampled_at, Some(T0 + 20));
    assert_eq!((view.interval_seconds, view.window_seconds), (10, 3600));
    let got: Vec<_> = view
        .points
        .iter()
        .map(|p| (p.at, p.requests, p.requests_per_second))
        .collect();
    assert_eq!(got, vec![(T0, 31, 3.1), (T0 + 20, 1, 0.1)]);
    let first = &view.points[0];
    assert_eq!(
        first.errors,
        [("KeyNotFoundException".to_string(), 1)].into()
    );
    // 30 in 250..500 µs, 1 in 50..100: both quantiles in the 250..500 bucket.
    assert!(first.p50_us.is_some_and(|us| (250..=500).contains(&us)));
    assert!(first.p99_us.is_some_and(|us| (250..=500).contains(&us)));
    assert_eq!(view.points[1].p50_us, Some(1_750));
    assert!(view.points[1].errors.is_empty());
    // An hour on, the points have expired and the ring is freed.
    h.sample(T0 + 20 + 3600, &stores);
    assert!(h.store("a", "alpha", "n").points.is_empty());
    assert_eq!(h.active_stores(), 0);
    // Counters replaced under the same id (a new route) count from zero.
    let a2 = Arc::new(StoreMetrics::default());
    a2.record(XksOp::Encrypt, Outcome::Ok, 10);
    h.sample(T0 + 3700, &vec![("a".to_string(), a2)]);
    assert_eq!(h.store("a", "alpha", "n").points[0].requests, 1);
    // A store no longer listed is forgotten.
    h.sample(T0 + 3710, &Vec::new());
    assert!(h.lock().stores.is_empty());
}

#[test]
fn a_short_interval_keeps_max_points_intervals() {
    let h = History::new(1);
    assert_eq!(h.window_seconds(), MAX_POINTS as u64);
    let m = Arc::new(StoreMetrics::default());
    let stores = vec![("s".to_string(), m.clone())];
    for i in 0..(MAX_POINTS as i64 + 10) {
        m.record(XksOp::Encrypt, Outcome::Ok, 100);
        h.sample(T0 + i, &stores);
    }
    let view = h.store("s", "s", "n");
    assert_eq!(view.points.len(), MAX_POINTS);
    assert_eq!(view.points[0].at, T0 + 10);
    assert_eq!(view.points[0].requests_per_second, 1.0);
    assert_eq!(History::new(60).window_seconds(), WINDOW_SECONDS);
    assert_eq!(History::new(0).interval_seconds(), 1);
}

#[test]
fn the_next_sample_is_one_interval_on_unless_far_behind() {
    assert_eq!(next_due(100, 100, 10), 110);
    assert_eq!(next_due(100, 105, 10), 110);
    assert_eq!(next_due(100, 130, 10), 140);
}

#[tokio::test]
async fn the_sampler_follows_its_clock_and_stops_on_shutdown() {
    let start = time::macros::datetime!(2026-12-03 08:00 UTC);
    let clock = crate::clock::ManualClock::new(start);
    let h = Arc::new(History::new(10));
    let m = Arc::new(StoreMetrics::default());
    let stores: Arc<dyn StoreCounters> = Arc::new(vec![("s".to_string(), m.clone())]);
    let (tx, rx) = watch::channel(false);
    let task = tokio::spawn(run(h.clone(), stores, Arc::new(clock.clone()), rx));
    m.record(XksOp::Encrypt, Outcome::Ok, 100);
    // The sampler takes a sample once the clock has moved an interval past its start
    // (the clock is moved until it has: the task may start after a first move).
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while h.store("s", "s", "n").points.is_empty() {
        assert!(std::time::Instant::now() < deadline, "no sample taken");
        clock.advance(Duration::from_secs(10));
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let view = h.store("s", "s", "n");
    let after = view.points[0].at - start.unix_timestamp();
    assert!(
        after >= 10 && after % 10 == 0,
        "sampled on the clock's time: {after}"
    );
    assert_eq!(view.points[0].requests, 1);
    tx.send(true).expect("send");
    tokio::time::timeout(Duration::from_secs(30), task)
        .await
        .expect("the sampler stops")
        .expect("joined");
}

#[test]
fn memory_stays_within_the_documented_bound() {
    assert_eq!(std::mem::size_of::<Point>(), 20);
    assert!(std::mem::size_of::<Tracked>() <= 248);
    let every_error: Vec<(Outcome, u64)> = Outcome::all().skip(1).map(|o| (o, 70_000)).collect();
    // One store with requests in every interval, for two windows.
    for (errors, bound) in [
        (&[][..], STORE_BYTES),
        (&every_error[..], STORE_BYTES + MAX_POINTS * ERROR_NAMES * 4),
    ] {
        let mut ring = Ring::default();
        for i in 0..(2 * MAX_POINTS as u32) {
            ring.push(i * 10, &traffic(100, errors, 4));
            ring.expire((i * 10).saturating_sub(3600));
            assert!(
                ring.heap_bytes() <= bound,
                "{} > {bound}",
                ring.heap_bytes()
            );
        }
        assert_eq!(ring.points().count(), MAX_POINTS);
    }
    assert_eq!(STORE_BYTES + MAX_POINTS * ERROR_NAMES * 4, 25_472);

    // 10,000 stores: nothing held while idle.
    let h = History::new(10);
    let stores: Vec<(String, Arc<StoreMetrics>)> = (0..10_000)
        .map(|i| (format!("{i:016x}"), Arc::new(StoreMetrics::default())))
        .collect();
    h.sample(T0, &stores);
    assert_eq!(h.heap_bytes(), 0);
    // Each with a request: a point each, through the sampler.
    for (_, m) in &stores {
        m.record(XksOp::Encrypt, Outcome::Ok, 300);
    }
    h.sample(T0 + 10, &stores);
    assert_eq!(h.active_stores(), 10_000);
    let per_store_slot = 420;
    let one_point = h.heap_bytes();
    assert!(one_point <= 10_000 * (per_store_slot + 200), "{one_point}");
    // All of them busy in every interval of the hour: each ring as full as the one
    // filled above through `push` (copied: 3.6 million samples take minutes unoptimised).
    let mut full = Ring::default();
    for i in 0..(2 * MAX_POINTS as u32) {
        full.push(i * 10, &traffic(100, &[], 4));
        full.expire((i * 10).saturating_sub(3600));
    }
    assert!(full.heap_bytes() <= STORE_BYTES);
    for t in h.lock().stores.values_mut() {
        t.ring = Some(Box::new(full.clone()));
    }
    let busy = h.heap_bytes();
    assert!(
        busy <= 10_000 * (STORE_BYTES + per_store_slot),
        "{busy} bytes for 10,000 busy stores"
    );
    assert!(busy <= 86_000_000, "{busy}");
    // An hour without traffic: the rings are gone, the last counter values stay.
    h.sample(T0 + 20 + 3600, &stores);
    assert_eq!(h.active_stores(), 0);
    let idle = h.heap_bytes();
    assert!(
        idle <= 10_000 * per_store_slot,
        "{idle} bytes for 10,000 idle stores"
    );
}

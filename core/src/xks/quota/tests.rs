//! Tests of the token bucket.

use super::*;
use std::time::Duration;

#[test]
fn burst_then_rate() {
    let b = TokenBucket::new(Quota {
        rate: 10.0,
        burst: 3.0,
    });
    let t0 = Instant::now();
    assert!(b.try_take_at(t0));
    assert!(b.try_take_at(t0));
    assert!(b.try_take_at(t0));
    assert!(!b.try_take_at(t0), "burst exhausted");
    // 10/s: one token per 100 ms.
    assert!(!b.try_take_at(t0 + Duration::from_millis(50)));
    assert!(b.try_take_at(t0 + Duration::from_millis(110)));
    assert!(!b.try_take_at(t0 + Duration::from_millis(120)));
    // Never more than the burst, however long idle.
    let later = t0 + Duration::from_secs(100);
    assert!(b.try_take_at(later));
    assert!(b.try_take_at(later));
    assert!(b.try_take_at(later));
    assert!(!b.try_take_at(later));
}

#[test]
fn time_going_backwards_is_harmless() {
    let b = TokenBucket::new(Quota {
        rate: 1.0,
        burst: 1.0,
    });
    let t0 = Instant::now() + Duration::from_secs(5);
    assert!(b.try_take_at(t0));
    assert!(!b.try_take_at(t0 - Duration::from_secs(1)));
}

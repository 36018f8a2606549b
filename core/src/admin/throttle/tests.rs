//! The login throttle: when a lock starts, how it grows, that success resets it, that
//! its tables stay bounded, and that waiting for a password check is bounded.

use std::net::{IpAddr, Ipv4Addr};

use super::*;

const ADDR: Option<IpAddr> = Some(IpAddr::V4(Ipv4Addr::LOCALHOST));

#[test]
fn a_user_is_refused_after_the_threshold_with_doubling_periods() {
    let t = LoginThrottle::default();
    for _ in 1..USER_FAILURES {
        assert_eq!(t.failed("alice", ADDR), None);
        assert_eq!(t.check("alice", ADDR), Ok(()));
    }
    assert_eq!(t.failed("alice", ADDR), Some(FIRST_LOCK));
    assert!(matches!(
        t.check("alice", ADDR),
        Err(Refusal::TooManyAttempts(d)) if d <= FIRST_LOCK && d > Duration::ZERO
    ));
    // Another user from the same address is not refused.
    assert_eq!(t.check("bob", ADDR), Ok(()));
    assert_eq!(t.failed("alice", ADDR), Some(FIRST_LOCK * 2));
    for _ in 0..20 {
        t.failed("alice", None);
    }
    assert_eq!(t.failed("alice", None), Some(MAX_LOCK));
    t.succeeded("alice");
    assert_eq!(t.check("alice", None), Ok(()));
}

#[test]
fn an_address_is_refused_after_its_threshold_whatever_the_names() {
    let t = LoginThrottle::default();
    for i in 1..ADDRESS_FAILURES {
        assert_eq!(t.failed(&format!("user{i}"), ADDR), None);
    }
    assert_eq!(t.failed("another", ADDR), Some(FIRST_LOCK));
    assert!(matches!(
        t.check("fresh", ADDR),
        Err(Refusal::TooManyAttempts(_))
    ));
    assert_eq!(t.check("fresh", None), Ok(()));
}

#[test]
fn the_tables_stay_bounded() {
    let t = LoginThrottle::default();
    for i in 0..MAX_KEYS + 500 {
        t.failed(&format!("u{i}"), None);
    }
    assert!(lock(&t.users).entries.len() <= MAX_KEYS);
    // The newest is remembered.
    let last = format!("u{}", MAX_KEYS + 499);
    for _ in 1..USER_FAILURES {
        t.failed(&last, None);
    }
    assert!(t.check(&last, None).is_err());
}

#[tokio::test]
async fn waiting_for_a_password_check_is_bounded() {
    let t = Arc::new(LoginThrottle::default());
    let mut held = Vec::new();
    for _ in 0..HASH_PERMITS {
        held.push(t.hashing_slot().await.expect("slot"));
    }
    let mut waiters = Vec::new();
    for _ in 0..MAX_WAITING {
        let t = t.clone();
        waiters.push(tokio::spawn(
            async move { t.hashing_slot().await.map(drop) },
        ));
    }
    // Poll until every waiter is queued.
    while t.waiting.load(Ordering::SeqCst) < MAX_WAITING {
        tokio::task::yield_now().await;
    }
    assert_eq!(t.hashing_slot().await.map(drop), Err(Refusal::Busy));
    drop(held);
    for w in waiters {
        assert_eq!(w.await.expect("join"), Ok(()));
    }
}

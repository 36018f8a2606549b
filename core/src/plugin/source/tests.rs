//! Where calls run: the blocking pool, inline, or inline while the source proves fast.

use std::{
    thread::{self, ThreadId},
    time::Duration,
};

use keyhold_sdk::{
    DecryptInput, EkmNode, Encrypted, KeyInfo, KeySourceError, KeySourceImpl, NewKey, SourceInfo,
};

use super::*;

/// A key source that answers nothing: the calls under test are closures.
struct Idle;

fn nothing<T>() -> Result<T, KeySourceError> {
    Err(KeySourceError::internal("not used by this test"))
}

impl KeySourceImpl for Idle {
    fn info(&self) -> SourceInfo {
        SourceInfo {
            vendor: "test".into(),
            model: "idle".into(),
        }
    }
    fn health(&self) -> Vec<EkmNode> {
        Vec::new()
    }
    fn list_keys(&self) -> Result<Vec<KeyInfo>, KeySourceError> {
        nothing()
    }
    fn get_key(&self, _: &str) -> Result<KeyInfo, KeySourceError> {
        nothing()
    }
    fn create_key(&self, _: NewKey) -> Result<KeyInfo, KeySourceError> {
        nothing()
    }
    fn delete_key(&self, _: &str) -> Result<(), KeySourceError> {
        nothing()
    }
    fn set_enabled(&self, _: &str, _: bool) -> Result<KeyInfo, KeySourceError> {
        nothing()
    }
    fn validate_health_check_key(&self, _: &str) -> Result<(), KeySourceError> {
        nothing()
    }
    fn encrypt(&self, _: &str, _: &[u8], _: &[u8]) -> Result<Encrypted, KeySourceError> {
        nothing()
    }
    fn decrypt(&self, _: &str, _: DecryptInput<'_>) -> Result<Vec<u8>, KeySourceError> {
        nothing()
    }
}

fn handle(inline: InlineCalls) -> KeySourceHandle {
    KeySourceHandle::new(
        "t",
        None,
        keyhold_sdk::guard(Idle),
        CallLimits {
            concurrency: 4,
            queue_timeout: Duration::from_secs(10),
            call_timeout: Duration::from_secs(30),
        },
    )
    .with_inline_calls(inline)
}

/// Runs one call that takes at least `takes`; whether it ran on the caller's thread.
async fn ran_inline(h: &KeySourceHandle, takes: Duration) -> bool {
    let caller = thread::current().id();
    let ran_on: ThreadId = h
        .call("test", move |_| {
            thread::sleep(takes);
            Ok(thread::current().id())
        })
        .await
        .unwrap();
    ran_on == caller
}

#[tokio::test(flavor = "current_thread")]
async fn calls_run_on_the_blocking_pool_by_default_and_inline_when_asked() {
    let pool = handle(InlineCalls::Never);
    let inline = handle(InlineCalls::Always);
    for _ in 0..AUTO_WARMUP + 5 {
        assert!(!ran_inline(&pool, Duration::ZERO).await);
        assert!(ran_inline(&inline, Duration::ZERO).await);
    }
}

#[tokio::test(flavor = "current_thread")]
async fn auto_runs_inline_once_the_source_proved_fast_and_stops_at_a_slow_call() {
    // The rule, on explicit durations (no clock: a zero-work call can still be
    // preempted for longer than the limit on a loaded machine).
    let auto = AutoInline::new();
    for _ in 0..AUTO_WARMUP {
        // Not before the source proved fast: the blocking pool.
        assert!(auto.try_inline().is_none());
        auto.observe(Duration::ZERO);
    }
    // Then inline.
    for _ in 0..10 {
        assert!(auto.try_inline().is_some());
        auto.observe(Duration::ZERO);
    }
    // A slow call sends the next calls back to the pool, until the source proves fast
    // again.
    auto.observe(AUTO_FAST_LIMIT * 2);
    for _ in 0..AUTO_WARMUP {
        assert!(auto.try_inline().is_none());
        auto.observe(Duration::ZERO);
    }
    assert!(auto.try_inline().is_some());

    // The handle follows it: inline once proved fast; a slow call, inline or on the
    // pool, is observed and sends the next call to the pool.
    let h = handle(InlineCalls::Auto);
    assert!(!ran_inline(&h, Duration::ZERO).await);
    h.auto.fast_streak.store(AUTO_WARMUP, Relaxed);
    assert!(ran_inline(&h, AUTO_FAST_LIMIT * 2).await);
    assert!(!ran_inline(&h, Duration::ZERO).await);
    h.auto.fast_streak.store(AUTO_WARMUP - 1, Relaxed);
    assert!(!ran_inline(&h, AUTO_FAST_LIMIT * 2).await);
    assert!(!ran_inline(&h, Duration::ZERO).await);
}

#[test]
fn auto_never_holds_more_inline_slots_than_it_has() {
    let auto = AutoInline::new();
    auto.fast_streak.store(AUTO_WARMUP, Relaxed);
    let slots: Vec<_> = std::iter::from_fn(|| auto.try_inline())
        .take(auto.max_inline + 5)
        .collect();
    assert_eq!(slots.len(), auto.max_inline);
    assert!(auto.max_inline >= 1);
    drop(slots);
    assert_eq!(auto.inline_now.load(Relaxed), 0);
    assert!(auto.try_inline().is_some());
}

#[test]
fn inline_calls_reads_true_false_and_auto() {
    let read = |s: &str| serde_json::from_str::<InlineCalls>(s);
    assert_eq!(read("false").unwrap(), InlineCalls::Never);
    assert_eq!(read("true").unwrap(), InlineCalls::Always);
    assert_eq!(read("\"auto\"").unwrap(), InlineCalls::Auto);
    let e = read("\"sometimes\"").unwrap_err().to_string();
    assert!(e.contains("true, false or \"auto\""), "{e}");
    assert!(read("1").is_err());
}

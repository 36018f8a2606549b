//! Time as the server's background tasks see it: [`SystemClock`] in production,
//! [`ManualClock`] in tests that drive time (e.g. scheduled credential rotations).

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use time::OffsetDateTime;
use tokio::sync::Notify;

/// A source of the current time that background tasks can also wait on.
#[async_trait::async_trait]
pub trait Clock: Send + Sync {
    /// Now, in UTC.
    fn now(&self) -> OffsetDateTime;
    /// Waits for `max` of this clock's time, or less (a manual clock wakes its
    /// waiters whenever it is moved).
    async fn sleep(&self, max: Duration);
}

/// The system's clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

#[async_trait::async_trait]
impl Clock for SystemClock {
    fn now(&self) -> OffsetDateTime {
        OffsetDateTime::now_utc()
    }

    async fn sleep(&self, max: Duration) {
        tokio::time::sleep(max).await;
    }
}

/// A clock that only moves when told to (tests).
#[derive(Debug, Clone)]
pub struct ManualClock {
    now: Arc<Mutex<OffsetDateTime>>,
    moved: Arc<Notify>,
}

impl ManualClock {
    /// A clock standing at `start`.
    pub fn new(start: OffsetDateTime) -> ManualClock {
        ManualClock {
            now: Arc::new(Mutex::new(start)),
            moved: Arc::new(Notify::new()),
        }
    }

    /// Moves the clock to `to` and wakes every waiter.
    pub fn set(&self, to: OffsetDateTime) {
        *self.now.lock().unwrap_or_else(|p| p.into_inner()) = to;
        self.moved.notify_waiters();
    }

    /// Moves the clock forward by `by`.
    pub fn advance(&self, by: Duration) {
        let next = self.now() + by;
        self.set(next);
    }
}

#[async_trait::async_trait]
impl Clock for ManualClock {
    fn now(&self) -> OffsetDateTime {
        *self.now.lock().unwrap_or_else(|p| p.into_inner())
    }

    async fn sleep(&self, max: Duration) {
        // Waits for a move of the clock; `max` of real time bounds the wait so that a
        // waiter registered just after a move still looks again soon.
        let _ =
            tokio::time::timeout(max.min(Duration::from_millis(200)), self.moved.notified()).await;
    }
}

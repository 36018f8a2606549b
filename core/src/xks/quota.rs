//! Per-store request quotas: a token bucket per key store (per URI path prefix), as the
//! XKS specification allows ("an XKS proxy MAY implement independent request quotas on
//! each path prefix"); an empty bucket answers `ThrottlingException`.

use std::{sync::Mutex, time::Instant};

pub use crate::model::Quota;

/// A token bucket. Lock held only for a few arithmetic operations.
#[derive(Debug)]
pub struct TokenBucket {
    quota: Quota,
    state: Mutex<(f64, Instant)>,
}

impl TokenBucket {
    /// A full bucket.
    pub fn new(quota: Quota) -> TokenBucket {
        TokenBucket {
            quota,
            state: Mutex::new((quota.burst, Instant::now())),
        }
    }

    /// The quota this bucket enforces.
    pub fn quota(&self) -> Quota {
        self.quota
    }

    /// Takes one token at `now`; false when the bucket is empty.
    pub fn try_take_at(&self, now: Instant) -> bool {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let (tokens, last) = &mut *state;
        let elapsed = now.saturating_duration_since(*last).as_secs_f64();
        *tokens = (*tokens + elapsed * self.quota.rate).min(self.quota.burst);
        *last = now.max(*last);
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// Takes one token now.
    pub fn try_take(&self) -> bool {
        self.try_take_at(Instant::now())
    }
}

#[cfg(test)]
mod tests;

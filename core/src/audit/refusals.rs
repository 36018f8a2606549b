//! Rate limit of the audit records of unauthenticated refusals: per interval at most a
//! few records are written one by one; the others are counted by reason and written as
//! one `xks_refusals_aggregated` record when the interval ends (or the log is flushed),
//! so a flood of garbage requests cannot fill the disk.

use std::{
    collections::BTreeMap,
    time::{Duration, Instant},
};

use serde_json::{Value, json};

/// How many unauthenticated refusals are recorded one by one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RefusalLimits {
    /// Length of one interval.
    pub interval: Duration,
    /// Records written one by one per interval; the rest are only counted.
    pub records_per_interval: u32,
}

impl Default for RefusalLimits {
    fn default() -> Self {
        RefusalLimits {
            interval: Duration::from_secs(10),
            records_per_interval: 20,
        }
    }
}

/// The current interval.
pub(super) struct RefusalWindow {
    limits: RefusalLimits,
    started: Instant,
    started_at: String,
    written: u32,
    suppressed: BTreeMap<String, u64>,
}

impl RefusalWindow {
    /// A window starting now.
    pub fn new(limits: RefusalLimits) -> RefusalWindow {
        RefusalWindow {
            limits,
            started: Instant::now(),
            started_at: super::now_rfc3339(),
            written: 0,
            suppressed: BTreeMap::new(),
        }
    }

    /// Admits one refusal with `reason`: whether to record it individually, and the
    /// aggregate record of the interval that just ended, if any.
    pub fn admit(&mut self, reason: &str, now: Instant) -> (bool, Option<Value>) {
        let ended = self.roll(now, false);
        if self.written < self.limits.records_per_interval {
            self.written += 1;
            return (true, ended);
        }
        *self
            .suppressed
            .entry(crate::logsafe::clip_to(reason, 64).into_owned())
            .or_insert(0) += 1;
        (false, ended)
    }

    /// The aggregate record of the counted refusals when the interval has ended (or
    /// `force`), starting the next interval when it has ended.
    pub fn roll(&mut self, now: Instant, force: bool) -> Option<Value> {
        let ended = now.duration_since(self.started) >= self.limits.interval;
        let record = (ended || force) && !self.suppressed.is_empty();
        let out = record.then(|| {
            let counts = std::mem::take(&mut self.suppressed);
            json!({
                "kind": "xks_refusals_aggregated",
                "since": self.started_at,
                "intervalSeconds": self.limits.interval.as_secs_f64(),
                "recordedIndividually": self.written,
                "suppressed": counts.values().sum::<u64>(),
                "counts": counts,
            })
        });
        if ended {
            *self = RefusalWindow::new(self.limits);
        }
        out
    }

    /// Until when the writer may wait before the interval ends.
    pub fn remaining(&self, now: Instant) -> Duration {
        self.limits
            .interval
            .saturating_sub(now.duration_since(self.started))
            .max(Duration::from_millis(10))
    }
}

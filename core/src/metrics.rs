//! Metrics in the Prometheus text format: request counts by store, operation and
//! outcome (`errorName`), latency histograms per store and operation, key-source call
//! latency, call-pool saturation, throttled and shed counts.
//!
//! The hot path only increments atomics held by the routing snapshot's per-store
//! entries (created once per store, kept across snapshot rebuilds); `/metrics` renders
//! them on demand.

use std::{
    fmt::Write as _,
    sync::atomic::{AtomicU64, Ordering::Relaxed},
};

/// Operations counted, in label order.
pub const OPERATIONS: [&str; 5] = [
    "GetHealthStatus",
    "GetKeyMetadata",
    "Encrypt",
    "Decrypt",
    "LoadBalancerHealth",
];

/// Outcomes counted: `ok` or an XKS `errorName`.
pub const OUTCOMES: [&str; 13] = [
    "ok",
    "ValidationException",
    "InvalidStateException",
    "InvalidCiphertextException",
    "InvalidKeyUsageException",
    "AuthenticationFailedException",
    "AccessDeniedException",
    "KeyNotFoundException",
    "InvalidUriPathException",
    "ThrottlingException",
    "UnsupportedOperationException",
    "DependencyTimeoutException",
    "InternalException",
];

/// Histogram bucket upper bounds, in microseconds.
pub const BUCKETS_US: [u64; 14] = [
    50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 1_000_000,
    5_000_000,
];

/// Index of an operation name in [`OPERATIONS`].
pub fn operation_index(name: &str) -> Option<usize> {
    OPERATIONS.iter().position(|o| *o == name)
}

/// Index of an outcome in [`OUTCOMES`] (unknown names count as `InternalException`).
pub fn outcome_index(name: &str) -> usize {
    OUTCOMES
        .iter()
        .position(|o| *o == name)
        .unwrap_or(OUTCOMES.len() - 1)
}

/// A fixed-bucket latency histogram of atomics.
#[derive(Default)]
pub struct Histogram {
    buckets: [AtomicU64; BUCKETS_US.len()],
    count: AtomicU64,
    sum_us: AtomicU64,
}

impl Histogram {
    /// Records one observation.
    pub fn observe_us(&self, us: u64) {
        if let Some(i) = BUCKETS_US.iter().position(|b| us <= *b) {
            self.buckets[i].fetch_add(1, Relaxed);
        }
        self.count.fetch_add(1, Relaxed);
        self.sum_us.fetch_add(us, Relaxed);
    }

    /// Number of observations.
    pub fn count(&self) -> u64 {
        self.count.load(Relaxed)
    }

    fn render(&self, out: &mut String, name: &str, labels: &str) {
        let mut cumulative = 0;
        for (i, bound) in BUCKETS_US.iter().enumerate() {
            cumulative += self.buckets[i].load(Relaxed);
            let _ = writeln!(
                out,
                "{name}_bucket{{{labels},le=\"{}\"}} {cumulative}",
                *bound as f64 / 1e6
            );
        }
        let count = self.count.load(Relaxed);
        let _ = writeln!(out, "{name}_bucket{{{labels},le=\"+Inf\"}} {count}");
        let _ = writeln!(
            out,
            "{name}_sum{{{labels}}} {}",
            self.sum_us.load(Relaxed) as f64 / 1e6
        );
        let _ = writeln!(out, "{name}_count{{{labels}}} {count}");
    }
}

/// One key store's counters.
#[derive(Default)]
pub struct StoreMetrics {
    requests: [[AtomicU64; OUTCOMES.len()]; OPERATIONS.len()],
    latency: [Histogram; OPERATIONS.len()],
}

impl StoreMetrics {
    /// Records one answered request.
    pub fn record(&self, operation: usize, outcome: usize, latency_us: u64) {
        if let (Some(row), Some(h)) = (self.requests.get(operation), self.latency.get(operation)) {
            if let Some(c) = row.get(outcome) {
                c.fetch_add(1, Relaxed);
            }
            h.observe_us(latency_us);
        }
    }

    /// Requests of `operation` that ended in `outcome`.
    pub fn count(&self, operation: usize, outcome: usize) -> u64 {
        self.requests
            .get(operation)
            .and_then(|r| r.get(outcome))
            .map(|c| c.load(Relaxed))
            .unwrap_or(0)
    }
}

/// Process-wide counters.
#[derive(Default)]
pub struct GlobalMetrics {
    /// Requests that matched no key store, by outcome.
    pub unrouted: [AtomicU64; OUTCOMES.len()],
    /// Requests refused because a store's quota was exhausted.
    pub throttled_quota: AtomicU64,
    /// Requests shed because the server was at its in-flight limit.
    pub shed_in_flight: AtomicU64,
    /// Requests shed because no key-source call slot freed up in time.
    pub shed_pool: AtomicU64,
}

/// Escapes a label value.
pub fn label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// What `/metrics` needs to render.
pub struct Snapshot<'a> {
    /// Global counters.
    pub global: &'a GlobalMetrics,
    /// (store name, its counters).
    pub stores: Vec<(&'a str, &'a StoreMetrics)>,
    /// (source name, call histogram, errors, in-use slots, slot capacity).
    pub sources: Vec<(&'a str, &'a Histogram, u64, usize, usize)>,
    /// Requests being answered now.
    pub in_flight: usize,
}

/// Renders the Prometheus text exposition format.
pub fn render(s: &Snapshot<'_>) -> String {
    let mut out = String::with_capacity(4096);
    out.push_str("# HELP keyhold_xks_requests_total XKS requests answered, by store, operation and outcome.\n");
    out.push_str("# TYPE keyhold_xks_requests_total counter\n");
    for (store, m) in &s.stores {
        for (oi, op) in OPERATIONS.iter().enumerate() {
            for (ki, outcome) in OUTCOMES.iter().enumerate() {
                let n = m.count(oi, ki);
                if n > 0 {
                    let _ = writeln!(
                        out,
                        "keyhold_xks_requests_total{{store=\"{}\",operation=\"{op}\",outcome=\"{outcome}\"}} {n}",
                        label(store)
                    );
                }
            }
        }
    }
    for (ki, outcome) in OUTCOMES.iter().enumerate() {
        let n = s.global.unrouted[ki].load(Relaxed);
        if n > 0 {
            let _ = writeln!(
                out,
                "keyhold_xks_requests_total{{store=\"\",operation=\"\",outcome=\"{outcome}\"}} {n}"
            );
        }
    }
    out.push_str("# HELP keyhold_xks_request_duration_seconds XKS request latency, by store and operation.\n");
    out.push_str("# TYPE keyhold_xks_request_duration_seconds histogram\n");
    for (store, m) in &s.stores {
        for (oi, op) in OPERATIONS.iter().enumerate() {
            if m.latency[oi].count() > 0 {
                let labels = format!("store=\"{}\",operation=\"{op}\"", label(store));
                m.latency[oi].render(&mut out, "keyhold_xks_request_duration_seconds", &labels);
            }
        }
    }
    out.push_str(
        "# HELP keyhold_plugin_call_duration_seconds Key-source call latency, by source.\n",
    );
    out.push_str("# TYPE keyhold_plugin_call_duration_seconds histogram\n");
    for (source, h, _, _, _) in &s.sources {
        let labels = format!("source=\"{}\"", label(source));
        h.render(&mut out, "keyhold_plugin_call_duration_seconds", &labels);
    }
    out.push_str(
        "# HELP keyhold_plugin_call_errors_total Key-source calls that failed or timed out.\n",
    );
    out.push_str("# TYPE keyhold_plugin_call_errors_total counter\n");
    for (source, _, errors, _, _) in &s.sources {
        let _ = writeln!(
            out,
            "keyhold_plugin_call_errors_total{{source=\"{}\"}} {errors}",
            label(source)
        );
    }
    out.push_str("# HELP keyhold_plugin_pool_in_use Key-source call slots in use.\n");
    out.push_str("# TYPE keyhold_plugin_pool_in_use gauge\n");
    for (source, _, _, in_use, _) in &s.sources {
        let _ = writeln!(
            out,
            "keyhold_plugin_pool_in_use{{source=\"{}\"}} {in_use}",
            label(source)
        );
    }
    out.push_str("# HELP keyhold_plugin_pool_size Key-source call slots.\n");
    out.push_str("# TYPE keyhold_plugin_pool_size gauge\n");
    for (source, _, _, _, size) in &s.sources {
        let _ = writeln!(
            out,
            "keyhold_plugin_pool_size{{source=\"{}\"}} {size}",
            label(source)
        );
    }
    out.push_str("# HELP keyhold_xks_throttled_total Requests refused with ThrottlingException, by reason.\n");
    out.push_str("# TYPE keyhold_xks_throttled_total counter\n");
    for (reason, value) in [
        ("quota", &s.global.throttled_quota),
        ("in_flight", &s.global.shed_in_flight),
        ("plugin_pool", &s.global.shed_pool),
    ] {
        let _ = writeln!(
            out,
            "keyhold_xks_throttled_total{{reason=\"{reason}\"}} {}",
            value.load(Relaxed)
        );
    }
    out.push_str("# HELP keyhold_xks_in_flight Requests being answered.\n");
    out.push_str("# TYPE keyhold_xks_in_flight gauge\n");
    let _ = writeln!(out, "keyhold_xks_in_flight {}", s.in_flight);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_and_histograms() {
        let store = StoreMetrics::default();
        let enc = operation_index("Encrypt").unwrap();
        store.record(enc, outcome_index("ok"), 120);
        store.record(enc, outcome_index("ok"), 3_000);
        store.record(enc, outcome_index("InvalidKeyUsageException"), 80);
        let global = GlobalMetrics::default();
        global.throttled_quota.fetch_add(2, Relaxed);
        let h = Histogram::default();
        h.observe_us(40);
        let text = render(&Snapshot {
            global: &global,
            stores: vec![("acme", &store)],
            sources: vec![("ctm", &h, 1, 3, 64)],
            in_flight: 5,
        });
        assert!(text.contains(
            "keyhold_xks_requests_total{store=\"acme\",operation=\"Encrypt\",outcome=\"ok\"} 2"
        ));
        assert!(text.contains("outcome=\"InvalidKeyUsageException\"} 1"));
        assert!(text.contains(
            "keyhold_xks_request_duration_seconds_bucket{store=\"acme\",operation=\"Encrypt\",le=\"0.00025\"} 2"
        ));
        assert!(text.contains(
            "keyhold_xks_request_duration_seconds_count{store=\"acme\",operation=\"Encrypt\"} 3"
        ));
        assert!(text.contains("keyhold_xks_throttled_total{reason=\"quota\"} 2"));
        assert!(text.contains("keyhold_plugin_pool_in_use{source=\"ctm\"} 3"));
        assert!(text.contains("keyhold_xks_in_flight 5"));
        assert_eq!(outcome_index("NoSuchName"), OUTCOMES.len() - 1);
        assert_eq!(label("a\"b"), "a\\\"b");
    }
}

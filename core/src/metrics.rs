//! Metrics in the Prometheus text format: request counts by store, operation and
//! outcome (`errorName`), latency histograms per store and operation, key-source call
//! latency, call-pool saturation, throttled and shed counts.
//!
//! The hot path only increments atomics held by the routing snapshot's per-store
//! entries (created once per store, kept across snapshot rebuilds), indexed by the
//! typed operation ([`XksOp`]) and [`Outcome`]; `/metrics` renders them on demand.

use std::{
    fmt::Write as _,
    sync::atomic::{AtomicU64, Ordering::Relaxed},
};

use crate::xks::{XksErrorKind, XksOp};

pub mod charts;
pub mod history;

/// Histogram bucket upper bounds, in microseconds.
pub const BUCKETS_US: [u64; 14] = [
    50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 1_000_000,
    5_000_000,
];

/// How a request ended: answered, or refused with an XKS error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Answered.
    Ok,
    /// Refused with this error.
    Refused(XksErrorKind),
}

impl Outcome {
    /// Outcomes counted: `ok` and each XKS `errorName`.
    pub const COUNT: usize = 1 + XksErrorKind::NAMED.len();

    /// The outcome of a request's result.
    pub fn of<T>(result: &Result<T, crate::xks::XksError>) -> Outcome {
        match result {
            Ok(_) => Outcome::Ok,
            Err(e) => Outcome::Refused(e.kind),
        }
    }

    /// Every counted outcome, in label order.
    pub fn all() -> impl Iterator<Item = Outcome> {
        std::iter::once(Outcome::Ok).chain(XksErrorKind::NAMED.into_iter().map(Outcome::Refused))
    }

    /// This outcome's counter slot (outcomes of the same name share one).
    pub fn index(self) -> usize {
        match self {
            Outcome::Ok => 0,
            Outcome::Refused(kind) => 1 + kind.named_index(),
        }
    }

    /// The `outcome` label, in logs and audit records too: `ok` or the `errorName`.
    pub fn label(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Refused(kind) => kind.name(),
        }
    }
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
    requests: [[AtomicU64; Outcome::COUNT]; XksOp::ALL.len()],
    latency: [Histogram; XksOp::ALL.len()],
}

impl StoreMetrics {
    /// Records one answered request.
    pub fn record(&self, op: XksOp, outcome: Outcome, latency_us: u64) {
        self.requests[op as usize][outcome.index()].fetch_add(1, Relaxed);
        self.latency[op as usize].observe_us(latency_us);
    }

    /// Requests of `op` that ended in `outcome`.
    pub fn count(&self, op: XksOp, outcome: Outcome) -> u64 {
        self.requests[op as usize][outcome.index()].load(Relaxed)
    }
}

/// Process-wide counters.
#[derive(Default)]
pub struct GlobalMetrics {
    /// Requests that matched no key store, by outcome.
    unrouted: [AtomicU64; Outcome::COUNT],
    /// Requests refused because a store's quota was exhausted.
    pub throttled_quota: AtomicU64,
    /// Requests shed because the server was at its in-flight limit.
    pub shed_in_flight: AtomicU64,
    /// Requests shed because no key-source call slot freed up in time.
    pub shed_pool: AtomicU64,
    /// Routing snapshot updates that failed (the snapshot is then rebuilt whole).
    pub routing_update_failures: AtomicU64,
    /// Damaged audit segments (and cut audit tails) found on start (copied from the
    /// audit log when rendering).
    pub audit_damaged_segments: AtomicU64,
    /// Unauthenticated refusals counted in aggregate audit records instead of recorded
    /// one by one (copied from the audit log when rendering).
    pub audit_refusals_aggregated: AtomicU64,
    /// Audit events dropped because the writer's queue was full (copied likewise).
    pub audit_dropped: AtomicU64,
}

impl GlobalMetrics {
    /// Records a request that matched no key store.
    pub fn record_unrouted(&self, outcome: Outcome) {
        self.unrouted[outcome.index()].fetch_add(1, Relaxed);
    }

    /// Requests that matched no key store and ended in `outcome`.
    pub fn unrouted(&self, outcome: Outcome) -> u64 {
        self.unrouted[outcome.index()].load(Relaxed)
    }
}

/// Escapes a label value.
pub fn label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// One key source's call statistics.
pub struct SourceStats<'a> {
    /// The source's name.
    pub name: &'a str,
    /// Its call latency.
    pub latency: &'a Histogram,
    /// Calls that failed, timed out or were shed.
    pub errors: u64,
    /// Call slots in use.
    pub in_use: usize,
    /// Call slots in all.
    pub capacity: usize,
    /// AES-GCM encryptions reserved per key: (key name, count).
    pub gcm_encryptions: Vec<(String, u64)>,
}

/// What `/metrics` needs to render.
pub struct Snapshot<'a> {
    /// Global counters.
    pub global: &'a GlobalMetrics,
    /// (store name, its counters).
    pub stores: Vec<(&'a str, &'a StoreMetrics)>,
    /// The key sources.
    pub sources: Vec<SourceStats<'a>>,
    /// Requests being answered now.
    pub in_flight: usize,
}

/// Writes a metric family's `# HELP` and `# TYPE` lines; `family` is
/// `"<name> <type> <help>"`.
fn family(out: &mut String, family: &str) {
    let mut parts = family.splitn(3, ' ');
    let (name, kind, help) = (
        parts.next().unwrap_or_default(),
        parts.next().unwrap_or_default(),
        parts.next().unwrap_or_default(),
    );
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// Writes one `keyhold_xks_requests_total` sample unless it is zero (`store` already a
/// label value).
fn requests(out: &mut String, store: &str, op: &str, outcome: Outcome, n: u64) {
    if n > 0 {
        let _ = writeln!(
            out,
            "keyhold_xks_requests_total{{store=\"{store}\",operation=\"{op}\",outcome=\"{}\"}} {n}",
            outcome.label()
        );
    }
}

/// Every (store label, its counters, operation), stores in snapshot order.
fn by_store_and_op<'a>(
    s: &'a Snapshot<'_>,
) -> impl Iterator<Item = (String, &'a StoreMetrics, XksOp)> + 'a {
    s.stores
        .iter()
        .flat_map(|(store, m)| XksOp::ALL.map(|op| (label(store), *m, op)))
}

/// The per-source counters and gauges: (`"<name> <type> <help>"`, value).
type SourceFamily = (&'static str, fn(&SourceStats<'_>) -> u64);

const SOURCE_FAMILIES: [SourceFamily; 3] = [
    (
        "keyhold_plugin_call_errors_total counter Key-source calls that failed or timed out.",
        |s| s.errors,
    ),
    (
        "keyhold_plugin_pool_in_use gauge Key-source call slots in use.",
        |s| s.in_use as u64,
    ),
    (
        "keyhold_plugin_pool_size gauge Key-source call slots.",
        |s| s.capacity as u64,
    ),
];

/// Appends `keyhold_store_reachable` (1 while the durable store answers, 0 while a
/// networked store, etcd, cannot be reached).
pub fn render_store_reachable(out: &mut String, reachable: bool) {
    family(
        out,
        "keyhold_store_reachable gauge Whether the durable store answers (etcd: 0 while it cannot be reached; the data plane then serves from its last snapshot and admin changes are refused with 503 store_unavailable).",
    );
    let _ = writeln!(out, "keyhold_store_reachable {}", u8::from(reachable));
}

/// Renders the Prometheus text exposition format.
pub fn render(s: &Snapshot<'_>) -> String {
    let mut out = String::with_capacity(4096);
    family(
        &mut out,
        "keyhold_xks_requests_total counter XKS requests answered, by store, operation and outcome.",
    );
    for (store, m, op) in by_store_and_op(s) {
        for outcome in Outcome::all() {
            requests(&mut out, &store, op.name(), outcome, m.count(op, outcome));
        }
    }
    for outcome in Outcome::all() {
        requests(&mut out, "", "", outcome, s.global.unrouted(outcome));
    }
    family(
        &mut out,
        "keyhold_xks_request_duration_seconds histogram XKS request latency, by store and operation.",
    );
    for (store, m, op) in by_store_and_op(s) {
        let h = &m.latency[op as usize];
        if h.count() > 0 {
            let labels = format!("store=\"{store}\",operation=\"{}\"", op.name());
            h.render(&mut out, "keyhold_xks_request_duration_seconds", &labels);
        }
    }
    family(
        &mut out,
        "keyhold_plugin_call_duration_seconds histogram Key-source call latency, by source.",
    );
    for source in &s.sources {
        let labels = format!("source=\"{}\"", label(source.name));
        source
            .latency
            .render(&mut out, "keyhold_plugin_call_duration_seconds", &labels);
    }
    for (header, value) in SOURCE_FAMILIES {
        family(&mut out, header);
        let name = header.split(' ').next().unwrap_or_default();
        for source in &s.sources {
            let _ = writeln!(
                out,
                "{name}{{source=\"{}\"}} {}",
                label(source.name),
                value(source)
            );
        }
    }
    family(
        &mut out,
        &format!(
            "keyhold_source_key_gcm_encryptions gauge AES-GCM encryptions reserved per key \
             (an upper bound, by at most two blocks of {} per node and restart); encryption \
             is refused at {} (random IVs): rotate the key before.",
            keyhold_sdk::invocations::BLOCK,
            keyhold_sdk::invocations::LIMIT
        ),
    );
    for source in &s.sources {
        for (key, count) in &source.gcm_encryptions {
            let _ = writeln!(
                out,
                "keyhold_source_key_gcm_encryptions{{source=\"{}\",key=\"{}\"}} {count}",
                label(source.name),
                label(key)
            );
        }
    }
    family(
        &mut out,
        &format!(
            "keyhold_xks_throttled_total counter Requests refused with {}, by reason.",
            XksErrorKind::Throttling.name()
        ),
    );
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
    family(
        &mut out,
        "keyhold_xks_in_flight gauge Requests being answered.",
    );
    let _ = writeln!(out, "keyhold_xks_in_flight {}", s.in_flight);
    family(
        &mut out,
        "keyhold_routing_update_failures_total counter Routing snapshot updates that failed (each followed by a whole rebuild until one succeeds).",
    );
    let _ = writeln!(
        out,
        "keyhold_routing_update_failures_total {}",
        s.global.routing_update_failures.load(Relaxed)
    );
    for (name, help, value) in [
        (
            "keyhold_audit_damaged_segments_total",
            "Damaged audit log segments and cut audit tails found at start (the server went on in a new segment).",
            &s.global.audit_damaged_segments,
        ),
        (
            "keyhold_audit_refusals_aggregated_total",
            "Refusals of unauthenticated XKS requests counted in aggregate audit records instead of recorded one by one.",
            &s.global.audit_refusals_aggregated,
        ),
        (
            "keyhold_audit_dropped_total",
            "Audit events dropped because the audit writer's queue was full.",
            &s.global.audit_dropped,
        ),
    ] {
        family(&mut out, &format!("{name} counter {help}"));
        let _ = writeln!(out, "{name} {}", value.load(Relaxed));
    }
    out
}

#[cfg(test)]
mod tests;

//! The recent XKS traffic of every key store, kept in memory for the console's charts
//! and `GET /api/v1/stores/{id}/metrics`.
//!
//! A sampler task ([`run`], started with the server, stopped by its shutdown) reads
//! every store's cumulative counters ([`StoreMetrics`]: the atomics `/metrics`
//! renders; nothing is added to the request path) every
//! `metrics.history_interval_seconds` (10 s by default) and appends what changed to the
//! store's ring: requests by outcome (`ok` or the XKS `errorName`) and the latency
//! quantiles p50 and p99 of the interval.
//!
//! # What is counted
//! Requests of the four XKS operations (GetHealthStatus, GetKeyMetadata, Encrypt,
//! Decrypt) routed to the store, answered or refused; not keyhold's own
//! load-balancer probes (`keyhold-health`) nor requests that matched no store. Each
//! node samples its own counters: the history is the answering node's share of the
//! store's traffic only. It starts empty at every start.
//!
//! # Resolution
//! - Time: one point per interval with requests (intervals without any keep no
//!   point); a point covers the interval ending at its `at`, in whole seconds.
//! - Latency: p50/p99 come from the interval's share of the latency histogram (buckets
//!   50 µs, 100 µs, 250 µs ... 1 s, 5 s: [`BUCKETS_US`]), linearly interpolated within
//!   the bucket holding the rank (as Prometheus's `histogram_quantile`). The true value
//!   lies in that bucket, so the error is up to the bucket's width (e.g. 2.5..5 ms
//!   above 2.5 ms); a quantile above 5 s shows as 5 s; with fewer than 100 requests
//!   in an interval p99 lies in the slowest request's bucket.
//! - The counters and the histogram are read a few instructions apart: a request
//!   answered in between counts in one interval and adds its latency to the next.
//!
//! # Memory (bounded at 10,000 stores)
//! Nothing is allocated for a store until it has traffic. A store that has had
//! traffic since the start keeps its counters' last values ([`Tracked`]: 248 bytes,
//! ~400 with its id and its share of the map's slots). A store with traffic within the
//! window also has a ring ([`Ring`], allocated on its first point, freed when its last
//! point expires) of at most [`MAX_POINTS`] points of 20 bytes (`at`, requests, p50,
//! p99 as `u32` and a 16-bit mask of the error names present), plus 4 bytes per
//! (interval, error name) with refusals. So a store with requests in every interval of
//! the hour holds at most [`STORE_BYTES`] (8 KiB) without refusals, and at most
//! [`STORE_BYTES`] + [`MAX_POINTS`] × 12 × 4 = 25,472 bytes with every error name in
//! every interval. At 10,000 stores: ~4 MB for stores with traffic since the start but
//! none in the last hour, ~77 MB if all 10,000 had requests in every interval of the
//! hour (~250 MB in the unlikely worst case of all twelve error names in every
//! interval of every store). The unit test `memory_stays_within_the_documented_bound`
//! checks these figures. Sampling reads 112 atomics per store (about a million per
//! interval at 10,000 stores), off the request path.

use std::{
    collections::{BTreeMap, HashMap, VecDeque},
    sync::{Arc, Mutex, Weak, atomic::Ordering::Relaxed},
    time::Duration,
};

use tokio::sync::watch;

use super::{BUCKETS_US, Histogram, Outcome, StoreMetrics};
use crate::{
    api::metrics::{HistoryPoint, StoreHistory},
    clock::Clock,
    xks::XksOp,
};

/// The default sampling interval, in seconds.
pub const DEFAULT_INTERVAL_SECONDS: u64 = 10;
/// How far back points are kept, in seconds (at intervals of 10 s or more).
pub const WINDOW_SECONDS: u64 = 3600;
/// Most points a store keeps (the window at the default interval).
pub const MAX_POINTS: usize = 360;
/// Most bytes a store with requests in every interval holds, refusal counts aside.
pub const STORE_BYTES: usize = 8 * 1024;

/// The operations counted (the load balancer's `keyhold-health` probes are not).
const COUNTED: [XksOp; 4] = [
    XksOp::GetHealthStatus,
    XksOp::GetKeyMetadata,
    XksOp::Encrypt,
    XksOp::Decrypt,
];
/// XKS error names counted apart (`ok` aside).
pub const ERROR_NAMES: usize = Outcome::COUNT - 1;
/// Histogram slots: the bounded buckets, then everything above the last bound.
pub const SLOTS: usize = BUCKETS_US.len() + 1;
const _: () = assert!(ERROR_NAMES <= 16, "a point's error mask has 16 bits");

impl Histogram {
    /// Observations per bucket (not cumulative), then those above the last bound.
    fn slots(&self) -> [u64; SLOTS] {
        let mut out = [0; SLOTS];
        let mut bounded = 0u64;
        for (slot, bucket) in out.iter_mut().zip(&self.buckets) {
            *slot = bucket.load(Relaxed);
            bounded = bounded.saturating_add(*slot);
        }
        // Counted after its bucket: an observation in flight may be in the buckets
        // and not yet in the count (never the other way round).
        out[SLOTS - 1] = self.count.load(Relaxed).saturating_sub(bounded);
        out
    }
}

/// A store's cumulative counters, summed over the counted operations.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Totals {
    /// Requests by outcome ([`Outcome::index`]).
    pub outcomes: [u64; Outcome::COUNT],
    /// Latency observations per histogram slot.
    pub slots: [u64; SLOTS],
}

impl Totals {
    /// Reads `m`'s counters.
    pub fn read(m: &StoreMetrics) -> Totals {
        let mut t = Totals::default();
        for op in COUNTED {
            for outcome in Outcome::all() {
                let n = &mut t.outcomes[outcome.index()];
                *n = n.saturating_add(m.count(op, outcome));
            }
            for (sum, n) in t.slots.iter_mut().zip(m.latency[op as usize].slots()) {
                *sum = sum.saturating_add(n);
            }
        }
        t
    }

    /// Requests, whatever their outcome.
    pub fn requests(&self) -> u64 {
        self.outcomes.iter().fold(0, |a, n| a.saturating_add(*n))
    }

    /// Whether nothing was counted.
    pub fn is_zero(&self) -> bool {
        *self == Totals::default()
    }
}

/// What changed from `last` (the values last read, of the same counters) to `now`:
/// `(delta, the values to compare the next reading with)`. Counters only grow; a value
/// read lower than before (the open histogram slot, derived from two counters read
/// apart) counts nothing and keeps the higher value, so nothing is counted twice.
pub fn delta(last: &Totals, now: &Totals) -> (Totals, Totals) {
    let mut d = Totals::default();
    let mut next = *last;
    let pairs = (d
        .outcomes
        .iter_mut()
        .zip(&mut next.outcomes)
        .zip(&now.outcomes))
    .chain(d.slots.iter_mut().zip(&mut next.slots).zip(&now.slots));
    for ((d, last), now) in pairs {
        *d = now.saturating_sub(*last);
        *last = (*last).max(*now);
    }
    (d, next)
}

/// The `q` quantile (0..=1) of the latency observations in `slots`, in microseconds:
/// linearly interpolated within the bucket holding rank `q × total` (the first bucket
/// from 0; the open slot above the last bound answers that bound). `None`: no
/// observation.
pub fn quantile(slots: &[u64; SLOTS], q: f64) -> Option<u32> {
    let total = slots.iter().fold(0u64, |a, n| a.saturating_add(*n));
    if total == 0 {
        return None;
    }
    let top = BUCKETS_US[BUCKETS_US.len() - 1];
    let rank = q.clamp(0.0, 1.0) * total as f64;
    let mut below = 0u64;
    for (i, &n) in slots.iter().enumerate() {
        if n == 0 {
            continue;
        }
        if (below + n) as f64 >= rank {
            let Some(&upper) = BUCKETS_US.get(i) else {
                return Some(to_u32(top));
            };
            let lower = if i == 0 { 0 } else { BUCKETS_US[i - 1] };
            let within = ((rank - below as f64) / n as f64).clamp(0.0, 1.0);
            let us = lower as f64 + (upper - lower) as f64 * within;
            return Some(to_u32(us.round() as u64));
        }
        below += n;
    }
    Some(to_u32(top))
}

fn to_u32(n: u64) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// No latency recorded (in [`Point::p50_us`], [`Point::p99_us`]).
const NO_LATENCY: u32 = u32::MAX;

/// One interval of a store, compactly (20 bytes; counts saturate at `u32::MAX`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Point {
    /// The interval's end, Unix seconds.
    pub at: u32,
    /// Requests answered or refused.
    pub requests: u32,
    /// p50 latency, µs ([`NO_LATENCY`]: none).
    pub p50_us: u32,
    /// p99 latency, µs ([`NO_LATENCY`]: none).
    pub p99_us: u32,
    /// Bit `i`: the interval had refusals named [`error_name`]`(i)`; their counts are
    /// in the ring's `errors`, in bit order.
    pub errors: u16,
}

/// The XKS `errorName` of error slot `i` (outcome index `i + 1`).
pub fn error_name(i: usize) -> &'static str {
    Outcome::all()
        .find(|o| o.index() == i + 1)
        .map_or("", Outcome::label)
}

/// A store's points within the window, oldest first, and their refusal counts.
#[derive(Debug, Default, Clone)]
pub struct Ring {
    points: VecDeque<Point>,
    /// One count per bit set in each point's `errors` mask, in point order.
    errors: VecDeque<u32>,
}

/// Grows `q` for one more element: exactly (doubling up to `max`), never past `max`.
fn reserve_one<T>(q: &mut VecDeque<T>, max: usize) {
    if q.len() == q.capacity() {
        let cap = q.capacity();
        q.reserve_exact(cap.max(4).min(max.saturating_sub(cap)).max(1));
    }
}

/// Gives back most of `q`'s buffer once it is used to less than a quarter.
fn shrink<T>(q: &mut VecDeque<T>) {
    if q.capacity() > 4 && q.len() * 4 < q.capacity() {
        q.shrink_to(q.len() * 2);
    }
}

impl Ring {
    /// Appends the interval ending at `at` with `d`'s counts (nothing when it had no
    /// request). The oldest point goes when the ring holds [`MAX_POINTS`].
    pub fn push(&mut self, at: u32, d: &Totals) {
        let requests = d.requests();
        if requests == 0 {
            return;
        }
        if self.points.len() >= MAX_POINTS {
            self.pop();
        }
        let mut mask = 0u16;
        for (i, &n) in d.outcomes[1..].iter().enumerate() {
            if n > 0 {
                mask |= 1 << i;
                reserve_one(&mut self.errors, MAX_POINTS * ERROR_NAMES);
                self.errors.push_back(to_u32(n));
            }
        }
        let latency = |q| quantile(&d.slots, q).unwrap_or(NO_LATENCY);
        reserve_one(&mut self.points, MAX_POINTS);
        self.points.push_back(Point {
            at,
            requests: to_u32(requests),
            p50_us: latency(0.5),
            p99_us: latency(0.99),
            errors: mask,
        });
    }

    fn pop(&mut self) {
        if let Some(p) = self.points.pop_front() {
            for _ in 0..p.errors.count_ones() {
                self.errors.pop_front();
            }
        }
    }

    /// Drops the points at or before `cutoff` (Unix seconds) and gives memory back
    /// when the ring has shrunk to a quarter. Returns whether it is empty.
    pub fn expire(&mut self, cutoff: u32) -> bool {
        while self.points.front().is_some_and(|p| p.at <= cutoff) {
            self.pop();
        }
        shrink(&mut self.points);
        shrink(&mut self.errors);
        self.points.is_empty()
    }

    /// The points, oldest first, with their refusal counts by error slot.
    pub fn points(&self) -> impl Iterator<Item = (Point, Vec<(usize, u32)>)> + '_ {
        let mut counts = self.errors.iter();
        self.points.iter().map(move |p| {
            let errors = (0..ERROR_NAMES)
                .filter(|i| p.errors & (1 << i) != 0)
                .map(|i| (i, counts.next().copied().unwrap_or(0)))
                .collect();
            (*p, errors)
        })
    }

    /// Heap bytes held (the ring itself and its two queues' buffers).
    pub fn heap_bytes(&self) -> usize {
        std::mem::size_of::<Ring>()
            + self.points.capacity() * std::mem::size_of::<Point>()
            + self.errors.capacity() * std::mem::size_of::<u32>()
    }
}

/// A store that has had traffic since the start.
pub struct Tracked {
    /// The counters read (a store's counters live as long as its route; new counters
    /// under the same id start from zero).
    counters: Weak<StoreMetrics>,
    /// Their values at the last sample.
    last: Totals,
    /// Its points, while any is within the window.
    ring: Option<Box<Ring>>,
    /// The sample that last saw it in the routing.
    seen: u32,
}

/// What the sampler visits: every store's id and counters.
pub trait StoreCounters: Send + Sync {
    /// Calls `f` with each store's id and counters.
    fn each(&self, f: &mut dyn FnMut(&str, &Arc<StoreMetrics>));
}

impl StoreCounters for crate::xks::XksService {
    fn each(&self, f: &mut dyn FnMut(&str, &Arc<StoreMetrics>)) {
        for route in self.routing().stores() {
            f(&route.record.id, &route.metrics);
        }
    }
}

impl StoreCounters for Vec<(String, Arc<StoreMetrics>)> {
    fn each(&self, f: &mut dyn FnMut(&str, &Arc<StoreMetrics>)) {
        for (id, m) in self {
            f(id, m);
        }
    }
}

#[derive(Default)]
struct Inner {
    stores: HashMap<Box<str>, Tracked>,
    /// Samples taken.
    samples: u32,
    /// When the last was taken (Unix seconds).
    sampled_at: Option<i64>,
}

/// Every store's recent traffic on this node.
pub struct History {
    interval_seconds: u64,
    inner: Mutex<Inner>,
}

impl History {
    /// An empty history sampled every `interval_seconds` (at least 1).
    pub fn new(interval_seconds: u64) -> History {
        History {
            interval_seconds: interval_seconds.max(1),
            inner: Mutex::default(),
        }
    }

    /// Seconds between samples.
    pub fn interval_seconds(&self) -> u64 {
        self.interval_seconds
    }

    /// How far back points are kept: an hour, or [`MAX_POINTS`] intervals if shorter.
    pub fn window_seconds(&self) -> u64 {
        WINDOW_SECONDS.min(MAX_POINTS as u64 * self.interval_seconds)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Takes a sample at `now` (Unix seconds) of every store `stores` lists: appends
    /// each store's traffic since the last sample, drops points older than the window,
    /// and forgets stores no longer listed.
    pub fn sample(&self, now: i64, stores: &dyn StoreCounters) {
        let at = to_u32(u64::try_from(now).unwrap_or(0));
        let cutoff = at.saturating_sub(to_u32(self.window_seconds()));
        let mut guard = self.lock();
        let inner = &mut *guard;
        inner.samples = inner.samples.wrapping_add(1);
        let seen = inner.samples;
        stores.each(&mut |id, counters| {
            let now_totals = Totals::read(counters);
            if !inner.stores.contains_key(id) {
                if now_totals.is_zero() {
                    return;
                }
                let tracked = Tracked {
                    counters: Arc::downgrade(counters),
                    last: Totals::default(),
                    ring: None,
                    seen,
                };
                inner.stores.insert(id.into(), tracked);
            }
            let Some(tracked) = inner.stores.get_mut(id) else {
                return;
            };
            if !std::ptr::eq(tracked.counters.as_ptr(), Arc::as_ptr(counters)) {
                tracked.counters = Arc::downgrade(counters);
                tracked.last = Totals::default();
            }
            tracked.seen = seen;
            let (d, next) = delta(&tracked.last, &now_totals);
            tracked.last = next;
            if d.requests() > 0 {
                tracked.ring.get_or_insert_with(Box::default).push(at, &d);
            }
            if tracked.ring.as_mut().is_some_and(|r| r.expire(cutoff)) {
                tracked.ring = None;
            }
        });
        inner.stores.retain(|_, t| t.seen == seen);
        if inner.stores.capacity() > 4 * inner.stores.len().max(4) {
            inner.stores.shrink_to_fit();
        }
        inner.sampled_at = Some(now);
    }

    /// Store `id`'s history (named `name`), as node `node` answers it.
    pub fn store(&self, id: &str, name: &str, node: &str) -> StoreHistory {
        let inner = self.lock();
        let per_second = self.interval_seconds as f64;
        let points = inner
            .stores
            .get(id)
            .and_then(|t| t.ring.as_deref())
            .map(|ring| {
                ring.points()
                    .map(|(p, errors)| HistoryPoint {
                        at: i64::from(p.at),
                        requests: u64::from(p.requests),
                        requests_per_second: (f64::from(p.requests) / per_second * 1000.0).round()
                            / 1000.0,
                        p50_us: (p.p50_us != NO_LATENCY).then_some(u64::from(p.p50_us)),
                        p99_us: (p.p99_us != NO_LATENCY).then_some(u64::from(p.p99_us)),
                        errors: errors
                            .into_iter()
                            .map(|(i, n)| (error_name(i).to_string(), u64::from(n)))
                            .collect::<BTreeMap<_, _>>(),
                    })
                    .collect()
            })
            .unwrap_or_default();
        StoreHistory {
            store: id.to_string(),
            name: name.to_string(),
            node: node.to_string(),
            interval_seconds: self.interval_seconds,
            window_seconds: self.window_seconds(),
            sampled_at: inner.sampled_at,
            points,
        }
    }

    /// Heap bytes held: the store map's slots, the ids and the rings.
    pub fn heap_bytes(&self) -> usize {
        let inner = self.lock();
        let slot = std::mem::size_of::<(Box<str>, Tracked)>() + 1;
        inner.stores.capacity() * slot
            + inner
                .stores
                .iter()
                .map(|(id, t)| id.len() + t.ring.as_ref().map_or(0, |r| r.heap_bytes()))
                .sum::<usize>()
    }

    /// Stores with points within the window.
    pub fn active_stores(&self) -> usize {
        self.lock()
            .stores
            .values()
            .filter(|t| t.ring.is_some())
            .count()
    }
}

/// When the sample after the one due at `due` (taken at `now`) is due: one interval
/// later, or one interval from `now` if the sampler fell more than an interval behind.
pub fn next_due(due: i128, now: i128, interval_ns: i128) -> i128 {
    let next = due + interval_ns;
    if next <= now { now + interval_ns } else { next }
}

/// The sampler: samples `stores` into `history` every interval of `clock`'s time until
/// `stop` turns true (or its sender goes).
pub async fn run(
    history: Arc<History>,
    stores: Arc<dyn StoreCounters>,
    clock: Arc<dyn Clock>,
    mut stop: watch::Receiver<bool>,
) {
    let interval_ns = i128::from(history.interval_seconds()) * 1_000_000_000;
    let mut due = clock.now().unix_timestamp_nanos() + interval_ns;
    loop {
        if *stop.borrow() {
            return;
        }
        let now = clock.now();
        let now_ns = now.unix_timestamp_nanos();
        if now_ns >= due {
            history.sample(now.unix_timestamp(), stores.as_ref());
            due = next_due(due, now_ns, interval_ns);
            continue;
        }
        let wait = Duration::from_nanos(u64::try_from(due - now_ns).unwrap_or(u64::MAX));
        tokio::select! {
            _ = clock.sleep(wait) => {}
            r = stop.changed() => {
                if r.is_err() {
                    return;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;

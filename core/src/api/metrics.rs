//! A key store's recent XKS traffic: `GET /api/v1/stores/{id}/metrics`. Times are Unix
//! seconds.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// The answering node's traffic history of one key store: one point per sampling
/// interval that had requests, oldest first (newest last). Every node keeps its own;
/// this is only the answering node's share of the store's traffic.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct StoreHistory {
    /// The store's id.
    pub store: String,
    /// The store's name.
    pub name: String,
    /// The answering node's id (whose requests these are).
    pub node: String,
    /// Seconds between samples (`metrics.history_interval_seconds`); each point covers
    /// the interval ending at its `at`.
    pub interval_seconds: u64,
    /// How far back points are kept, in seconds (an hour; 360 intervals when the
    /// interval is under 10 s).
    pub window_seconds: u64,
    /// When the counters were last sampled (null before the first sample, one interval
    /// after the start).
    pub sampled_at: Option<i64>,
    /// The intervals with requests, oldest first; intervals without requests are left
    /// out (an empty list: no traffic within the window).
    pub points: Vec<HistoryPoint>,
}

/// The requests of one sampling interval.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct HistoryPoint {
    /// The end of the interval (when it was sampled).
    pub at: i64,
    /// XKS requests answered in the interval (GetHealthStatus, GetKeyMetadata,
    /// Encrypt, Decrypt; answered or refused).
    pub requests: u64,
    /// `requests` per second of the interval.
    pub requests_per_second: f64,
    /// Median latency in microseconds, interpolated within the histogram bucket that
    /// holds it (buckets 50 µs .. 5 s: accurate to the bucket's width; 5000000 means
    /// 5 s or more). Null if no latency was recorded in the interval.
    pub p50_us: Option<u64>,
    /// 99th percentile latency in microseconds (as `p50_us`).
    pub p99_us: Option<u64>,
    /// Refused requests by XKS `errorName` (names with none left out).
    pub errors: BTreeMap<String, u64>,
}

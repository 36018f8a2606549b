//! The result lines every mode prints: a human-readable summary and, with `--json`, one
//! JSON line (read by `benches/load.sh`).

use hdrhistogram::Histogram;
use serde_json::{Value, json};

use crate::Stats;

/// How a measurement is labelled in the output.
pub(crate) struct Report {
    pub target: String,
    pub op: &'static str,
    pub size: Option<usize>,
    /// `closed` or `open@R/s` (or another mode's name).
    pub mode: String,
    pub connections: usize,
    pub sign: String,
    /// Latency counted from the intended send time (open loop).
    pub open_loop: bool,
    pub json: bool,
    /// More fields for the JSON line.
    pub extra: Option<Value>,
}

impl Report {
    pub(crate) fn print(&self, stats: &Stats, secs: f64, late_us: Option<u64>) {
        let total = stats.ok + stats.errors.values().sum::<u64>();
        let rps = total as f64 / secs;
        let mode = &self.mode;
        let size = self
            .size
            .map(|s| format!("{s}B"))
            .unwrap_or_else(|| "-".into());
        let h = &stats.latency;
        let q = |h: &Histogram<u64>, p: f64| h.value_at_quantile(p);
        let target = &self.target;
        println!(
            "{target} op={} size={} mode={} conns={} sign={} measured={:.1}s",
            self.op, size, mode, self.connections, self.sign, secs
        );
        println!(
            "  requests={total} ok={} errors={} throughput={rps:.0} req/s",
            stats.ok,
            total - stats.ok
        );
        let what = if self.open_loop {
            "latency from intended send (us)"
        } else {
            "latency (us)"
        };
        println!(
            "  {what}: p50={} p90={} p99={} p99.9={} max={} mean={:.0}",
            q(h, 0.5),
            q(h, 0.9),
            q(h, 0.99),
            q(h, 0.999),
            h.max(),
            h.mean()
        );
        if self.open_loop {
            let s = &stats.service;
            println!(
                "  service time from actual send (us): p50={} p99={} p99.9={} max={}; scheduler max lateness {} us",
                q(s, 0.5),
                q(s, 0.99),
                q(s, 0.999),
                s.max(),
                late_us.unwrap_or(0)
            );
        }
        for (name, n) in &stats.errors {
            println!("  non-2xx/failed: {name}: {n}");
        }
        if self.json {
            let mut line = json!({
                "target": target, "targets": target.split(',').count(), "op": self.op, "size": self.size, "mode": mode,
                "connections": self.connections, "seconds": secs, "requests": total, "ok": stats.ok,
                "rps": rps.round(), "p50_us": q(h, 0.5), "p90_us": q(h, 0.9), "p99_us": q(h, 0.99),
                "p999_us": q(h, 0.999), "max_us": h.max(), "errors": stats.errors,
                "service_p99_us": q(&stats.service, 0.99), "scheduler_late_max_us": late_us,
            });
            if let (Some(Value::Object(extra)), Value::Object(map)) = (&self.extra, &mut line) {
                map.extend(extra.clone());
            }
            println!("{line}");
        }
    }
}

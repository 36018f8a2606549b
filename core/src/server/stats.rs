//! [`ListenerStats`]: the connection counters of one listener (open connections,
//! connections closed at accept by the cap, connections closed by a timeout), and
//! their Prometheus exposition.

use std::{
    fmt::Write,
    sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed},
};

/// Why the server closed a connection before the client did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeoutKind {
    /// A request's headers did not arrive in time.
    Header,
    /// A request's body did not arrive in time.
    Body,
    /// No request for the idle timeout.
    Idle,
}

impl TimeoutKind {
    /// The metric label.
    pub fn label(self) -> &'static str {
        match self {
            TimeoutKind::Header => "header",
            TimeoutKind::Body => "body",
            TimeoutKind::Idle => "idle",
        }
    }
}

/// The counters of one listener.
#[derive(Debug)]
pub struct ListenerStats {
    name: &'static str,
    open: AtomicUsize,
    max: AtomicUsize,
    refused: AtomicU64,
    timeouts: [AtomicU64; 3],
}

impl ListenerStats {
    /// Counters of the listener labelled `name`.
    pub fn new(name: &'static str) -> ListenerStats {
        ListenerStats {
            name,
            open: AtomicUsize::new(0),
            max: AtomicUsize::new(0),
            refused: AtomicU64::new(0),
            timeouts: Default::default(),
        }
    }

    /// The listener's label.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// Connections open now.
    pub fn open(&self) -> usize {
        self.open.load(Relaxed)
    }

    /// Connections closed at accept because the listener was at its cap.
    pub fn refused(&self) -> u64 {
        self.refused.load(Relaxed)
    }

    /// Connections closed for `kind`.
    pub fn timeouts(&self, kind: TimeoutKind) -> u64 {
        self.timeouts[kind as usize].load(Relaxed)
    }

    pub(super) fn set_max(&self, max: usize) {
        self.max.store(max, Relaxed);
    }

    pub(super) fn opened(&self) {
        self.open.fetch_add(1, Relaxed);
    }

    pub(super) fn closed(&self) {
        self.open.fetch_sub(1, Relaxed);
    }

    pub(super) fn count_refused(&self) {
        self.refused.fetch_add(1, Relaxed);
    }

    pub(super) fn count_timeout(&self, kind: TimeoutKind) {
        self.timeouts[kind as usize].fetch_add(1, Relaxed);
    }
}

/// The counters of every listener.
#[derive(Debug)]
pub struct ListenerMetrics {
    /// The XKS listener's.
    pub xks: std::sync::Arc<ListenerStats>,
    /// The admin listener's.
    pub admin: std::sync::Arc<ListenerStats>,
    /// The metrics listener's.
    pub metrics: std::sync::Arc<ListenerStats>,
}

impl Default for ListenerMetrics {
    fn default() -> Self {
        ListenerMetrics {
            xks: std::sync::Arc::new(ListenerStats::new("xks")),
            admin: std::sync::Arc::new(ListenerStats::new("admin")),
            metrics: std::sync::Arc::new(ListenerStats::new("metrics")),
        }
    }
}

impl ListenerMetrics {
    /// Appends the Prometheus text of every listener's counters to `out`.
    pub fn render(&self, out: &mut String) {
        let all = [&self.xks, &self.admin, &self.metrics];
        let _ = writeln!(
            out,
            "# HELP keyhold_listener_connections Connections open now.\n# TYPE keyhold_listener_connections gauge"
        );
        for s in all {
            let _ = writeln!(
                out,
                "keyhold_listener_connections{{listener=\"{}\"}} {}",
                s.name,
                s.open()
            );
        }
        let _ = writeln!(
            out,
            "# HELP keyhold_listener_connections_max Most connections open at once.\n# TYPE keyhold_listener_connections_max gauge"
        );
        for s in all {
            let _ = writeln!(
                out,
                "keyhold_listener_connections_max{{listener=\"{}\"}} {}",
                s.name,
                s.max.load(Relaxed)
            );
        }
        let _ = writeln!(
            out,
            "# HELP keyhold_listener_refused_total Connections closed at accept: the listener was at max_connections.\n# TYPE keyhold_listener_refused_total counter"
        );
        for s in all {
            let _ = writeln!(
                out,
                "keyhold_listener_refused_total{{listener=\"{}\"}} {}",
                s.name,
                s.refused()
            );
        }
        let _ = writeln!(
            out,
            "# HELP keyhold_listener_timeouts_total Connections closed by the server for a timeout.\n# TYPE keyhold_listener_timeouts_total counter"
        );
        for s in all {
            for kind in [TimeoutKind::Header, TimeoutKind::Body, TimeoutKind::Idle] {
                let _ = writeln!(
                    out,
                    "keyhold_listener_timeouts_total{{listener=\"{}\",phase=\"{}\"}} {}",
                    s.name,
                    kind.label(),
                    s.timeouts(kind)
                );
            }
        }
    }
}

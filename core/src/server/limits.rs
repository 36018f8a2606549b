//! [`ListenerLimits`]: a listener's connection limits as enforced (from
//! [`ConnectionsConfig`]), and the open file budget the connection caps are kept
//! below.

use std::time::Duration;

use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};

use crate::config::ConnectionsConfig;

/// File descriptors kept out of every listener's reach: the store, the audit log,
/// plugin libraries and their HSM sessions, outgoing AWS connections, log files.
const RESERVED_FDS: u64 = 256;

/// The soft open file limit is raised towards the hard one, but not past this.
const RAISE_LIMIT_TO: u64 = 1 << 20;

/// The connection limits one listener enforces.
#[derive(Debug, Clone)]
pub struct ListenerLimits {
    /// Longest a request's headers may take (from connection start for the first
    /// request, from its first byte for later ones).
    pub header_timeout: Duration,
    /// Longest a request's body may take after its headers.
    pub body_timeout: Duration,
    /// How long a connection without a request in progress is kept.
    pub idle_timeout: Duration,
    /// HTTP/2 keep-alive ping interval (`None`: no pings).
    pub h2_keepalive_interval: Option<Duration>,
    /// How long a keep-alive ping may go unanswered.
    pub h2_keepalive_timeout: Duration,
    /// Most concurrent HTTP/2 streams per connection.
    pub h2_max_concurrent_streams: u32,
    /// Longest request target accepted (longer: 414).
    pub max_uri_bytes: usize,
    /// Most bytes of header names and values (more: 431).
    pub max_header_bytes: usize,
    /// Most header fields (more: 431).
    pub max_headers: usize,
    /// Most connections open at once (already kept below the open file limit).
    pub max_connections: usize,
}

impl ListenerLimits {
    /// The limits of `config`, with `max_connections` defaulting to `default_max`
    /// and capped at `cap` (see [`ConnectionBudget`]).
    pub fn new(config: &ConnectionsConfig, default_max: usize, cap: usize) -> ListenerLimits {
        let ms = Duration::from_millis;
        ListenerLimits {
            header_timeout: ms(config.header_timeout_ms),
            body_timeout: ms(config.body_timeout_ms),
            idle_timeout: ms(config.idle_timeout_ms),
            h2_keepalive_interval: (config.h2_keepalive_interval_ms > 0)
                .then(|| ms(config.h2_keepalive_interval_ms)),
            h2_keepalive_timeout: ms(config.h2_keepalive_timeout_ms),
            h2_max_concurrent_streams: config.h2_max_concurrent_streams,
            max_uri_bytes: config.max_uri_bytes,
            max_header_bytes: config.max_header_bytes,
            max_headers: config.max_headers,
            max_connections: config
                .max_connections
                .unwrap_or(default_max)
                .min(cap)
                .max(1),
        }
    }
}

/// How many connections the listeners may hold together: the open file limit less a
/// reserve for everything else the process opens.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionBudget {
    /// The soft open file limit (after [`ConnectionBudget::of_process`] raised it).
    pub fd_limit: u64,
    /// What is left for connections.
    pub connections: usize,
}

impl ConnectionBudget {
    /// Raises the soft open file limit to the hard one (at most 2^20), then derives
    /// the budget from it.
    pub fn of_process() -> ConnectionBudget {
        let limit = getrlimit(Resource::Nofile);
        if let (Some(current), maximum) = (limit.current, limit.maximum) {
            let target = maximum.unwrap_or(RAISE_LIMIT_TO).min(RAISE_LIMIT_TO);
            if target > current {
                let raised = Rlimit {
                    current: Some(target),
                    maximum: limit.maximum,
                };
                if let Err(e) = setrlimit(Resource::Nofile, raised) {
                    tracing::debug!("cannot raise the open file limit from {current}: {e}");
                }
            }
        }
        let fd_limit = getrlimit(Resource::Nofile)
            .current
            .unwrap_or(RAISE_LIMIT_TO);
        ConnectionBudget::from_fd_limit(fd_limit)
    }

    /// The budget under an open file limit of `fd_limit`.
    pub fn from_fd_limit(fd_limit: u64) -> ConnectionBudget {
        let left = fd_limit.saturating_sub(RESERVED_FDS).max(8);
        ConnectionBudget {
            fd_limit,
            connections: usize::try_from(left).unwrap_or(usize::MAX),
        }
    }

    /// Splits the budget: the admin listener may take an eighth of it, the metrics
    /// listener a sixteenth, the XKS listener what the other two leave.
    /// Returns the caps (xks, admin, metrics), given each listener's wanted
    /// maximum.
    pub fn split(&self, xks: usize, admin: usize, metrics: usize) -> (usize, usize, usize) {
        let total = self.connections;
        let admin = admin.min(total / 8).max(1);
        let metrics = metrics.min(total / 16).max(1);
        let xks = xks.min(total.saturating_sub(admin + metrics)).max(1);
        (xks, admin, metrics)
    }
}

/// Default `max_connections` of the XKS listener.
pub const DEFAULT_XKS_CONNECTIONS: usize = 4096;
/// Default `max_connections` of the admin listener.
pub const DEFAULT_ADMIN_CONNECTIONS: usize = 256;
/// Default `max_connections` of the metrics listener.
pub const DEFAULT_METRICS_CONNECTIONS: usize = 64;

/// The limits of the three listeners.
#[derive(Debug, Clone)]
pub struct Listeners {
    /// The XKS listener's.
    pub xks: ListenerLimits,
    /// The admin listener's.
    pub admin: ListenerLimits,
    /// The metrics listener's.
    pub metrics: ListenerLimits,
}

impl Listeners {
    /// The limits `config` asks for, the connection caps kept within `budget`
    /// (a cap asked for beyond it is lowered, with a warning).
    pub fn of_config(config: &crate::config::Config, budget: ConnectionBudget) -> Listeners {
        let wanted = |c: &ConnectionsConfig, default: usize| c.max_connections.unwrap_or(default);
        let (x, a, m) = (
            &config.xks.connections,
            &config.admin.connections,
            &config.metrics.connections,
        );
        let wants = (
            wanted(x, DEFAULT_XKS_CONNECTIONS),
            wanted(a, DEFAULT_ADMIN_CONNECTIONS),
            wanted(m, DEFAULT_METRICS_CONNECTIONS),
        );
        let caps = budget.split(wants.0, wants.1, wants.2);
        for (name, want, cap) in [
            ("xks", wants.0, caps.0),
            ("admin", wants.1, caps.1),
            ("metrics", wants.2, caps.2),
        ] {
            if cap < want {
                tracing::warn!(
                    listener = name,
                    wanted = want,
                    cap,
                    fd_limit = budget.fd_limit,
                    "max_connections lowered to stay below the open file limit"
                );
            }
        }
        Listeners {
            xks: ListenerLimits::new(x, wants.0, caps.0),
            admin: ListenerLimits::new(a, wants.1, caps.1),
            metrics: ListenerLimits::new(m, wants.2, caps.2),
        }
    }
}

#[cfg(test)]
mod tests;

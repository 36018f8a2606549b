//! `[metrics]`: the Prometheus endpoint and the in-memory traffic history behind the
//! per-store charts (`GET /api/v1/stores/{id}/metrics`).

use std::net::SocketAddr;

use serde::Deserialize;

use super::{ConfigError, ConnectionsConfig, invalid};

/// Prometheus metrics endpoint and the traffic history.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsConfig {
    /// Where `GET /metrics` is served (plain HTTP; keep it on a private address).
    /// Disabled when absent.
    pub listen: Option<SocketAddr>,
    /// Connection limits of the metrics listener (`[metrics.connections]`).
    #[serde(default)]
    pub connections: ConnectionsConfig,
    /// How often each store's counters are sampled into its traffic history, in
    /// seconds (1..=60, default 10). The history keeps at most 360 points per store:
    /// the last hour at 10 s or more, 360 intervals below (6 minutes at 1 s).
    #[serde(default = "default_history_interval_seconds")]
    pub history_interval_seconds: u64,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        MetricsConfig {
            listen: None,
            connections: ConnectionsConfig::default(),
            history_interval_seconds: default_history_interval_seconds(),
        }
    }
}

fn default_history_interval_seconds() -> u64 {
    crate::metrics::history::DEFAULT_INTERVAL_SECONDS
}

impl MetricsConfig {
    /// Refuses out-of-range values, naming the key.
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        self.connections.validate("metrics.connections")?;
        if !(1..=60).contains(&self.history_interval_seconds) {
            return Err(invalid(
                "metrics.history_interval_seconds",
                format!("must be 1..=60 (got {})", self.history_interval_seconds),
            ));
        }
        Ok(())
    }
}

//! Connection limits of a listener (`[xks.connections]`, `[admin.connections]`,
//! `[metrics.connections]`): how long a client may take to send a request's headers
//! and body, how long an idle connection is kept, HTTP/2 keep-alive pings and stream
//! limits, and how many connections are open at once.

use serde::Deserialize;

use super::{ConfigError, invalid};

/// The connection limits of one listener. Every field has a default; a table may set
/// any of them.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ConnectionsConfig {
    /// Longest a client may take to send a request's headers, in milliseconds: from
    /// the connection's start (after TLS) for its first request, and from the first
    /// byte of each later one. Past it the connection is closed (slowloris).
    #[serde(default = "default_header_timeout_ms")]
    pub header_timeout_ms: u64,
    /// Longest a request's body may take to arrive after its headers, in
    /// milliseconds. Past it the request is answered with an error and the connection
    /// is closed.
    #[serde(default = "default_body_timeout_ms")]
    pub body_timeout_ms: u64,
    /// How long a connection with no request in progress is kept open, in
    /// milliseconds (HTTP/1.1 keep-alive, HTTP/2 idle).
    #[serde(default = "default_idle_timeout_ms")]
    pub idle_timeout_ms: u64,
    /// Interval of HTTP/2 keep-alive pings, in milliseconds; 0 sends none.
    #[serde(default = "default_h2_keepalive_interval_ms")]
    pub h2_keepalive_interval_ms: u64,
    /// How long an HTTP/2 keep-alive ping may go unanswered before the connection is
    /// closed, in milliseconds.
    #[serde(default = "default_h2_keepalive_timeout_ms")]
    pub h2_keepalive_timeout_ms: u64,
    /// Most concurrent HTTP/2 streams per connection.
    #[serde(default = "default_h2_max_concurrent_streams")]
    pub h2_max_concurrent_streams: u32,
    /// Longest request target (path and query) accepted, in bytes; longer ones are
    /// answered 414 with the listener's JSON error.
    #[serde(default = "default_max_uri_bytes")]
    pub max_uri_bytes: usize,
    /// Most bytes of request header names and values together; more is answered 431
    /// with the listener's JSON error.
    #[serde(default = "default_max_header_bytes")]
    pub max_header_bytes: usize,
    /// Most request header fields; more is answered 431 with the listener's JSON
    /// error.
    #[serde(default = "default_max_headers")]
    pub max_headers: usize,
    /// Most connections open at once; further ones are closed as they are accepted.
    /// Default: 4096 (XKS), 256 (admin), 64 (metrics); in any case kept below the
    /// process's open file limit.
    pub max_connections: Option<usize>,
}

impl Default for ConnectionsConfig {
    fn default() -> Self {
        ConnectionsConfig {
            header_timeout_ms: default_header_timeout_ms(),
            body_timeout_ms: default_body_timeout_ms(),
            idle_timeout_ms: default_idle_timeout_ms(),
            h2_keepalive_interval_ms: default_h2_keepalive_interval_ms(),
            h2_keepalive_timeout_ms: default_h2_keepalive_timeout_ms(),
            h2_max_concurrent_streams: default_h2_max_concurrent_streams(),
            max_uri_bytes: default_max_uri_bytes(),
            max_header_bytes: default_max_header_bytes(),
            max_headers: default_max_headers(),
            max_connections: None,
        }
    }
}

fn default_header_timeout_ms() -> u64 {
    5_000
}
fn default_body_timeout_ms() -> u64 {
    2_000
}
fn default_idle_timeout_ms() -> u64 {
    60_000
}
fn default_h2_keepalive_interval_ms() -> u64 {
    20_000
}
fn default_h2_keepalive_timeout_ms() -> u64 {
    10_000
}
fn default_h2_max_concurrent_streams() -> u32 {
    100
}

fn default_max_uri_bytes() -> usize {
    8 * 1024
}
fn default_max_header_bytes() -> usize {
    16 * 1024
}
fn default_max_headers() -> usize {
    100
}

/// The longest any of the timeouts may be: one hour.
const MAX_TIMEOUT_MS: u64 = 3_600_000;

impl ConnectionsConfig {
    /// Checks the values; `key` names the table (e.g. `xks.connections`).
    pub fn validate(&self, key: &str) -> Result<(), ConfigError> {
        let timeouts = [
            ("header_timeout_ms", self.header_timeout_ms),
            ("body_timeout_ms", self.body_timeout_ms),
            ("idle_timeout_ms", self.idle_timeout_ms),
            ("h2_keepalive_timeout_ms", self.h2_keepalive_timeout_ms),
        ];
        for (field, value) in timeouts {
            if !(1..=MAX_TIMEOUT_MS).contains(&value) {
                return Err(invalid(
                    format!("{key}.{field}"),
                    format!("must be 1..={MAX_TIMEOUT_MS} milliseconds"),
                ));
            }
        }
        if self.h2_keepalive_interval_ms > MAX_TIMEOUT_MS {
            return Err(invalid(
                format!("{key}.h2_keepalive_interval_ms"),
                format!("must be 0 (no pings) ..={MAX_TIMEOUT_MS} milliseconds"),
            ));
        }
        if self.h2_max_concurrent_streams == 0 {
            return Err(invalid(
                format!("{key}.h2_max_concurrent_streams"),
                "must be greater than zero",
            ));
        }
        let sizes = [
            ("max_uri_bytes", self.max_uri_bytes, 256, 64 * 1024),
            ("max_header_bytes", self.max_header_bytes, 1024, 256 * 1024),
            ("max_headers", self.max_headers, 8, 1024),
        ];
        for (field, value, min, max) in sizes {
            if !(min..=max).contains(&value) {
                return Err(invalid(
                    format!("{key}.{field}"),
                    format!("must be {min}..={max}"),
                ));
            }
        }
        if self.max_connections == Some(0) {
            return Err(invalid(
                format!("{key}.max_connections"),
                "must be greater than zero",
            ));
        }
        Ok(())
    }
}

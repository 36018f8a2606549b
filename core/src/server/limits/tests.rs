//! The connection budget under the open file limit.

use super::*;

#[test]
fn caps_stay_below_the_open_file_limit() {
    let budget = ConnectionBudget::from_fd_limit(1024);
    assert_eq!(budget.connections, 1024 - 256);
    let (xks, admin, metrics) = budget.split(4096, 256, 64);
    assert!(xks + admin + metrics <= budget.connections);
    assert_eq!((admin, metrics), (96, 48));
    assert_eq!(xks, 768 - 96 - 48);
    // A generous limit leaves the wanted values alone.
    let big = ConnectionBudget::from_fd_limit(1 << 20);
    assert_eq!(big.split(4096, 256, 64), (4096, 256, 64));
    // A tiny limit still leaves one connection each.
    let tiny = ConnectionBudget::from_fd_limit(10);
    let (x, a, m) = tiny.split(4096, 256, 64);
    assert!(x >= 1 && a >= 1 && m >= 1);
}

#[test]
fn limits_follow_the_configuration() {
    let config = ConnectionsConfig {
        header_timeout_ms: 1_500,
        h2_keepalive_interval_ms: 0,
        max_connections: Some(10_000),
        ..ConnectionsConfig::default()
    };
    let limits = ListenerLimits::new(&config, 4096, 500);
    assert_eq!(limits.header_timeout, Duration::from_millis(1_500));
    assert_eq!(limits.h2_keepalive_interval, None);
    assert_eq!(limits.max_connections, 500, "capped by the budget");
    let limits = ListenerLimits::new(&ConnectionsConfig::default(), 4096, 100_000);
    assert_eq!(limits.max_connections, 4096);
    assert_eq!(limits.h2_keepalive_interval, Some(Duration::from_secs(20)));
}

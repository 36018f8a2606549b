//! Tests of the metrics counters and their text exposition.

use super::*;

#[test]
fn renders_counters_and_histograms() {
    let store = StoreMetrics::default();
    store.record(XksOp::Encrypt, Outcome::Ok, 120);
    store.record(XksOp::Encrypt, Outcome::Ok, 3_000);
    store.record(
        XksOp::Encrypt,
        Outcome::Refused(XksErrorKind::InvalidKeyUsage),
        80,
    );
    let global = GlobalMetrics::default();
    global.throttled_quota.fetch_add(2, Relaxed);
    let h = Histogram::default();
    h.observe_us(40);
    let text = render(&Snapshot {
        global: &global,
        stores: vec![("acme", &store)],
        sources: vec![SourceStats {
            name: "ctm",
            latency: &h,
            errors: 1,
            in_use: 3,
            capacity: 64,
            gcm_encryptions: vec![("k\"1".to_string(), 131_072)],
        }],
        in_flight: 5,
    });
    assert!(text.contains(
        "keyhold_xks_requests_total{store=\"acme\",operation=\"Encrypt\",outcome=\"ok\"} 2"
    ));
    assert!(text.contains("outcome=\"InvalidKeyUsageException\"} 1"));
    assert!(
        text.contains("keyhold_source_key_gcm_encryptions{source=\"ctm\",key=\"k\\\"1\"} 131072")
    );
    assert!(text.contains(
        "keyhold_xks_request_duration_seconds_bucket{store=\"acme\",operation=\"Encrypt\",le=\"0.00025\"} 2"
    ));
    assert!(text.contains(
        "keyhold_xks_request_duration_seconds_count{store=\"acme\",operation=\"Encrypt\"} 3"
    ));
    assert!(text.contains("keyhold_xks_throttled_total{reason=\"quota\"} 2"));
    assert!(text.contains("keyhold_plugin_pool_in_use{source=\"ctm\"} 3"));
    assert!(text.contains("keyhold_xks_in_flight 5"));
    assert_eq!(label("a\"b"), "a\\\"b");
}

#[test]
fn kinds_sharing_a_name_share_a_counter() {
    let store = StoreMetrics::default();
    store.record(
        XksOp::Decrypt,
        Outcome::Refused(XksErrorKind::MethodNotAllowed),
        1,
    );
    assert_eq!(
        store.count(XksOp::Decrypt, Outcome::Refused(XksErrorKind::Validation)),
        1
    );
    assert_eq!(Outcome::all().count(), Outcome::COUNT);
    let labels: Vec<_> = Outcome::all().map(Outcome::label).collect();
    assert_eq!(labels[0], "ok");
    assert_eq!(labels[1], "ValidationException");
    assert_eq!(labels[Outcome::COUNT - 1], "InternalException");
}

/// The exposition text is the one the string-indexed counters rendered (a fixed
/// sample, every operation and outcome label included).
#[test]
fn exposition_text_is_unchanged() {
    let a = StoreMetrics::default();
    let b = StoreMetrics::default();
    for (i, op) in XksOp::ALL.into_iter().enumerate() {
        for (k, outcome) in Outcome::all().enumerate() {
            if (i + k) % 3 == 0 {
                a.record(op, outcome, (i * 1000 + k * 77) as u64);
            }
        }
    }
    b.record(XksOp::Encrypt, Outcome::Ok, 5);
    let g = GlobalMetrics::default();
    g.record_unrouted(Outcome::Refused(XksErrorKind::InvalidUriPath));
    g.record_unrouted(Outcome::Refused(XksErrorKind::InvalidUriPath));
    g.record_unrouted(Outcome::Refused(XksErrorKind::InvalidUriPath));
    g.record_unrouted(Outcome::Ok);
    g.throttled_quota.fetch_add(2, Relaxed);
    g.shed_in_flight.fetch_add(4, Relaxed);
    g.shed_pool.fetch_add(5, Relaxed);
    let h1 = Histogram::default();
    h1.observe_us(40);
    h1.observe_us(7_000_000);
    let h2 = Histogram::default();
    let source = |name, latency, errors, in_use, capacity| SourceStats {
        name,
        latency,
        errors,
        in_use,
        capacity,
        gcm_encryptions: if name == "ctm" {
            vec![("hc".to_string(), 65_536)]
        } else {
            Vec::new()
        },
    };
    let text = render(&Snapshot {
        global: &g,
        stores: vec![("a\"x", &a), ("b", &b)],
        sources: vec![source("ctm", &h1, 1, 3, 64), source("luna", &h2, 0, 0, 8)],
        in_flight: 5,
    });
    assert_eq!(text, include_str!("exposition.txt"));
}

#[test]
fn the_store_gauge_is_one_or_zero() {
    let mut text = String::new();
    render_store_reachable(&mut text, true);
    assert!(text.contains("# TYPE keyhold_store_reachable gauge"));
    assert!(text.ends_with("keyhold_store_reachable 1\n"), "{text}");
    let mut text = String::new();
    render_store_reachable(&mut text, false);
    assert!(text.ends_with("keyhold_store_reachable 0\n"), "{text}");
}

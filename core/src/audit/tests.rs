//! Unit tests of the audit log: chain, torn tails, segments, damage, keying and
//! anchoring, refusal aggregation.

use std::{
    fs::OpenOptions,
    io::Write,
    sync::{Arc, Mutex},
    time::Duration,
};

use serde_json::json;

use super::*;

fn lines_of(base: &Path) -> Vec<String> {
    segments::list(base)
        .unwrap()
        .into_iter()
        .flat_map(|(_, p)| {
            std::fs::read_to_string(p)
                .unwrap()
                .lines()
                .map(str::to_string)
                .collect::<Vec<_>>()
        })
        .collect()
}

#[derive(Default)]
struct MemAnchor(Mutex<Option<Anchor>>);

impl AnchorStore for MemAnchor {
    fn save(&self, anchor: &Anchor) -> Result<(), String> {
        *self.0.lock().unwrap() = Some(anchor.clone());
        Ok(())
    }

    fn load(&self) -> Result<Option<Anchor>, String> {
        Ok(self.0.lock().unwrap().clone())
    }
}

fn keyed(anchor: &Arc<MemAnchor>) -> AuditSettings {
    AuditSettings {
        key: Some(ChainKey::from_bytes([7; 32])),
        anchor: Some(anchor.clone()),
        ..AuditSettings::default()
    }
}

#[test]
fn chain_verifies_and_detects_tampering() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    {
        let log = AuditLog::open(&path).unwrap();
        for i in 0..5 {
            log.record(json!({"kind": "xks", "i": i}));
        }
        assert_eq!(log.record_durable(json!({"kind": "admin"})).unwrap(), 6);
    }
    assert_eq!(verify(&path).unwrap().0, 6);
    // Reopen continues the chain.
    {
        let log = AuditLog::open(&path).unwrap();
        assert_eq!(
            log.record_durable(json!({"kind": "admin", "n": 2}))
                .unwrap(),
            7
        );
    }
    assert_eq!(verify(&path).unwrap().0, 7);
    let text = std::fs::read_to_string(&path).unwrap();
    // Edit one record.
    let edited = text.replacen("\"i\":2", "\"i\":9", 1);
    std::fs::write(&path, &edited).unwrap();
    let e = verify(&path).unwrap_err().to_string();
    assert!(e.contains("record 3"), "{e}");
    // Delete one record.
    let lines: Vec<&str> = text.lines().collect();
    let without: String = lines
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != 1)
        .map(|(_, l)| format!("{l}\n"))
        .collect();
    std::fs::write(&path, without).unwrap();
    assert!(verify(&path).is_err());
}

#[test]
fn torn_tail_is_cut_and_the_chain_continues() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    {
        let log = AuditLog::open(&path).unwrap();
        log.record_durable(json!({"a": 1})).unwrap();
        log.record_durable(json!({"a": 2})).unwrap();
    }
    let mut f = OpenOptions::new().append(true).open(&path).unwrap();
    f.write_all(b"{\"seq\":3,\"time\":\"x").unwrap();
    drop(f);
    assert!(verify(&path).is_err(), "a torn line does not verify");
    let log = AuditLog::open(&path).unwrap();
    assert_eq!(log.record_durable(json!({"a": 3})).unwrap(), 3);
    log.flush().unwrap();
    assert_eq!(verify(&path).unwrap().0, 3);
    assert_eq!(log.counters().damaged_segments.load(Relaxed), 0);
}

#[test]
fn the_log_rotates_into_segments_and_the_chain_runs_across_them() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    let settings = AuditSettings {
        segment_max_bytes: 1000,
        ..AuditSettings::default()
    };
    {
        let log = AuditLog::open_with(&path, settings.clone()).unwrap();
        for i in 0..40 {
            log.record_durable(json!({"kind": "admin", "i": i}))
                .unwrap();
        }
    }
    let segs = segments::list(&path).unwrap();
    assert!(segs.len() >= 5, "{segs:?}");
    for (_, p) in &segs[..segs.len() - 1] {
        let len = std::fs::metadata(p).unwrap().len();
        assert!(
            (1000..1300).contains(&len),
            "{} is {len} bytes",
            p.display()
        );
    }
    let report = verify_all(&path, None, None).unwrap();
    assert!(report.is_intact(), "{:?}", report.problems());
    assert_eq!((report.records, report.last_seq), (40, 40));
    // Reopening continues in the last segment.
    let log = AuditLog::open_with(&path, settings).unwrap();
    assert_eq!(log.record_durable(json!({"kind": "admin"})).unwrap(), 41);
    assert_eq!(verify(&path).unwrap().0, 41);
    // A missing middle segment is reported.
    std::fs::remove_file(&segs[2].1).unwrap();
    let report = verify_all(&path, None, None).unwrap();
    assert!(!report.is_intact());
    assert!(
        report.problems()[0].contains("missing"),
        "{:?}",
        report.problems()
    );
}

#[test]
fn a_damaged_last_segment_is_followed_by_a_new_one_and_serving_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    {
        let log = AuditLog::open(&path).unwrap();
        for i in 0..5 {
            log.record_durable(json!({"kind": "admin", "i": i}))
                .unwrap();
        }
    }
    // An unparsable middle line.
    let text = std::fs::read_to_string(&path).unwrap();
    let mut lines: Vec<&str> = text.lines().collect();
    lines[2] = "garbage in the middle";
    std::fs::write(&path, lines.join("\n") + "\n").unwrap();

    let log = AuditLog::open(&path).unwrap();
    assert_eq!(log.counters().damaged_segments.load(Relaxed), 1);
    // The chain continues from the last good record (2), after the damage record (3).
    assert_eq!(
        log.record_durable(json!({"kind": "admin", "after": 1}))
            .unwrap(),
        4
    );
    drop(log);
    let second = segments::path_of(&path, 1);
    let first: Record = serde_json::from_str(
        std::fs::read_to_string(&second)
            .unwrap()
            .lines()
            .next()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(first.event["kind"], AFTER_DAMAGE);
    assert_eq!(first.event["line"], 3);

    let report = verify_all(&path, None, None).unwrap();
    assert_eq!(report.damaged.len(), 1, "{:?}", report.problems());
    assert_eq!(report.damaged[0].path, path);
    assert_eq!(report.damaged[0].line, 3);
    assert_eq!(report.last_seq, 4, "the new segment verifies");
    assert!(
        verify(&path).is_err(),
        "audit-verify still reports the damage"
    );
}

#[test]
fn an_unkeyed_log_continues_in_a_keyed_segment() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    {
        let log = AuditLog::open(&path).unwrap();
        log.record_durable(json!({"kind": "admin"})).unwrap();
    }
    let anchor = Arc::new(MemAnchor::default());
    {
        let log = AuditLog::open_with(&path, keyed(&anchor)).unwrap();
        assert_eq!(log.record_durable(json!({"kind": "admin"})).unwrap(), 3);
    }
    let lines = lines_of(&path);
    assert_eq!(lines.len(), 3);
    let note: Record = serde_json::from_str(&lines[1]).unwrap();
    assert_eq!(note.event["kind"], KEYED_FROM_HERE);
    assert_eq!(note.mac.as_deref(), Some(KEYED_MAC));
    let key = ChainKey::from_bytes([7; 32]);
    let a = anchor.0.lock().unwrap().clone().unwrap();
    let report = verify_all(&path, Some(&key), Some(&a)).unwrap();
    assert!(report.is_intact(), "{:?}", report.problems());
    assert_eq!(report.keyed_from, Some(2));
    // Without the key, keyed records cannot be verified; with a wrong one they fail.
    assert!(!verify_all(&path, None, None).unwrap().is_intact());
    let wrong = ChainKey::from_bytes([8; 32]);
    assert!(!verify_all(&path, Some(&wrong), None).unwrap().is_intact());
    // A keyed log is not opened without its key.
    assert!(matches!(
        AuditLog::open(&path),
        Err(AuditError::KeyNeeded { .. })
    ));
}

#[test]
fn truncating_the_tail_of_a_keyed_log_is_detected_by_the_anchor() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    let anchor = Arc::new(MemAnchor::default());
    {
        let log = AuditLog::open_with(&path, keyed(&anchor)).unwrap();
        for i in 0..6 {
            log.record_durable(json!({"kind": "admin", "i": i}))
                .unwrap();
        }
    }
    let key = ChainKey::from_bytes([7; 32]);
    let a = anchor.0.lock().unwrap().clone().unwrap();
    assert_eq!(a.seq, 6);
    assert!(verify_all(&path, Some(&key), Some(&a)).unwrap().is_intact());
    // Cut the last two records: the chain itself still verifies...
    let lines = lines_of(&path);
    std::fs::write(&path, lines[..4].join("\n") + "\n").unwrap();
    let report = verify_all(&path, Some(&key), None).unwrap();
    assert!(report.is_intact());
    // ...but not against the store's anchor.
    let report = verify_all(&path, Some(&key), Some(&a)).unwrap();
    assert!(!report.is_intact());
    let problem = report.anchor_problem.unwrap();
    assert!(
        problem.contains("truncated") && problem.contains("record 6"),
        "{problem}"
    );
}

#[test]
fn rewriting_a_keyed_log_with_a_plain_chain_is_detected() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    let anchor = Arc::new(MemAnchor::default());
    {
        let log = AuditLog::open_with(&path, keyed(&anchor)).unwrap();
        for i in 0..4 {
            log.record_durable(json!({"kind": "admin", "user": format!("u{i}")}))
                .unwrap();
        }
    }
    let key = ChainKey::from_bytes([7; 32]);
    let a = anchor.0.lock().unwrap().clone().unwrap();
    // Edit record 2 and recompute every hash after it as a plain SHA-256 chain, once
    // keeping the `mac` marker and once dropping it (posing as an old unkeyed log).
    for keep_marker in [true, false] {
        let mut prev = GENESIS.to_string();
        let mut out = String::new();
        for line in lines_of(&path) {
            let mut rec: Record = serde_json::from_str(&line).unwrap();
            if rec.seq == 2 {
                rec.event["user"] = json!("someone-else");
            }
            if !keep_marker {
                rec.mac = None;
            }
            rec.prev = prev.clone();
            rec.hash = chain::link(None, &rec.prev, rec.seq, &rec.time, &rec.event);
            prev = rec.hash.clone();
            out += &serde_json::to_string(&rec).unwrap();
            out += "\n";
        }
        let copy = dir.path().join(format!("rewritten-{keep_marker}.jsonl"));
        std::fs::write(&copy, out).unwrap();
        let report = verify_all(&copy, Some(&key), Some(&a)).unwrap();
        assert!(
            !report.is_intact(),
            "rewrite (marker kept: {keep_marker}) went unnoticed"
        );
        if keep_marker {
            assert_eq!(report.damaged[0].line, 1, "{:?}", report.problems());
        } else {
            let p = report.anchor_problem.clone().unwrap();
            assert!(p.contains("rewritten"), "{p}");
        }
    }
}

#[test]
fn unauthenticated_refusals_are_aggregated_per_interval() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    let settings = AuditSettings {
        refusals: RefusalLimits {
            interval: Duration::from_secs(3600),
            records_per_interval: 20,
        },
        ..AuditSettings::default()
    };
    let log = AuditLog::open_with(&path, settings).unwrap();
    for i in 0..5000 {
        let reason = if i % 2 == 0 {
            "AuthenticationFailedException/401"
        } else {
            "InvalidUriPathException/404"
        };
        log.record_refusal(json!({"kind": "xks", "i": i}), reason);
    }
    log.flush().unwrap();
    let lines = lines_of(&path);
    assert_eq!(lines.len(), 21, "20 records and one aggregate");
    let agg: Record = serde_json::from_str(&lines[20]).unwrap();
    assert_eq!(agg.event["kind"], "xks_refusals_aggregated");
    assert_eq!(agg.event["suppressed"], 4980);
    assert_eq!(
        agg.event["counts"]["AuthenticationFailedException/401"],
        2490
    );
    assert_eq!(log.counters().refusals_aggregated.load(Relaxed), 4980);
    // Still within the interval: further refusals are only counted.
    log.record_refusal(json!({"kind": "xks"}), "x");
    log.flush().unwrap();
    assert_eq!(lines_of(&path).len(), 22);
    assert!(verify(&path).is_ok());
}

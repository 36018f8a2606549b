//! Unit tests of the audit API's rules: the query, the filters, how records and the
//! chain's state are shown.

use std::path::PathBuf;

use serde_json::json;

use super::{
    filter::{Outcome, Query, parse_query, store_of, success},
    *,
};
use crate::audit::{Damage, Record};

fn refused(query: &str) -> String {
    let e = parse_query(Some(query)).expect_err(query);
    assert_eq!(e.code(), "invalid_input", "{query}");
    assert_eq!(e.status.as_u16(), 400);
    e.message().to_string()
}

#[test]
fn the_query_is_read_with_its_defaults_and_limits() {
    assert_eq!(
        parse_query(None).unwrap(),
        Query {
            limit: 100,
            ..Query::default()
        }
    );
    let q = parse_query(Some(
        "store=pay%20roll&user=root&outcome=refused%3A+forbidden&action=create_store&limit=1000&before=42",
    ))
    .unwrap();
    assert_eq!(q.store.as_deref(), Some("pay roll"));
    assert_eq!(q.user.as_deref(), Some("root"));
    assert_eq!(
        q.outcome,
        Some(Outcome::Exactly("refused: forbidden".into()))
    );
    assert_eq!(q.action.as_deref(), Some("create_store"));
    assert_eq!((q.limit, q.before), (1000, Some(42)));
    assert_eq!(
        parse_query(Some("outcome=success")).unwrap().outcome,
        Some(Outcome::Success)
    );
    assert_eq!(
        parse_query(Some("outcome=failure")).unwrap().outcome,
        Some(Outcome::Failure)
    );
    assert!(refused("limit=1001").contains("from 1 to 1000"));
    assert!(refused("limit=0").contains("'0'"));
    assert!(refused("limit=ten").contains("'ten'"));
    assert!(refused("before=0").contains("sequence number"));
    assert!(refused("before=-3").contains("'-3'"));
    assert!(refused("colour=red").contains("unknown query parameter 'colour'"));
    assert!(refused("user=a&user=b").contains("'user' is given twice"));
    assert!(refused("store=").contains("'store' is empty"));
}

fn xks(store: &str, outcome: &str) -> serde_json::Value {
    json!({"kind": "xks", "outcome": outcome, "store": store, "operation": "Encrypt",
           "keyId": "k1", "status": 400})
}

fn admin(user: &str, action: &str, object: &str, outcome: &str) -> serde_json::Value {
    json!({"kind": "admin", "user": user, "action": action, "object": object,
           "outcome": outcome})
}

#[test]
fn records_name_their_store_and_outcome() {
    assert_eq!(store_of(&xks("payroll", "ok")), Some("payroll"));
    assert_eq!(
        store_of(&admin("root", "create_hyok_key", "store/s-1/key/k", "ok")),
        Some("s-1")
    );
    assert_eq!(
        store_of(&admin("root", "create_user", "user/bob", "ok")),
        None
    );
    assert_eq!(success(&admin("root", "a", "o", "ok")), Some(true));
    assert_eq!(success(&admin("root", "a", "o", "succeeded")), Some(true));
    assert_eq!(
        success(&admin("root", "a", "o", "refused: forbidden")),
        Some(false)
    );
    assert_eq!(
        success(&xks("s", "AuthenticationFailedException")),
        Some(false)
    );
    assert_eq!(
        success(&json!({"kind": "xks_refusals_aggregated", "suppressed": 3})),
        Some(false)
    );
    assert_eq!(success(&json!({"kind": "audit_chain_keyed"})), None);
}

#[test]
fn filters_keep_what_matches_every_condition() {
    let records = [
        admin("root", "create_store", "store/payroll", "ok"),
        admin("alice", "update_store", "store/s-1", "refused: forbidden"),
        xks("payroll", "ok"),
        xks("other", "AuthenticationFailedException"),
        admin("root", "create_user", "user/alice", "ok"),
        json!({"kind": "audit_chain_keyed", "unkeyedUpTo": 3}),
    ];
    let kept = |f: &Filter| -> Vec<usize> {
        (0..records.len())
            .filter(|i| f.keeps(&records[*i]))
            .collect()
    };
    assert_eq!(kept(&Filter::default()), [0, 1, 2, 3, 4, 5]);
    let by_store = Filter {
        stores: Some(vec!["payroll".into(), "s-1".into()]),
        ..Filter::default()
    };
    assert_eq!(kept(&by_store), [0, 1, 2]);
    let by_user = Filter {
        user: Some("root".into()),
        ..Filter::default()
    };
    assert_eq!(kept(&by_user), [0, 4]);
    let failures = Filter {
        outcome: Some(Outcome::Failure),
        ..Filter::default()
    };
    assert_eq!(kept(&failures), [1, 3]);
    let successes = Filter {
        outcome: Some(Outcome::Success),
        ..Filter::default()
    };
    assert_eq!(kept(&successes), [0, 2, 4]);
    let exactly = Filter {
        outcome: Some(Outcome::Exactly("refused: forbidden".into())),
        ..Filter::default()
    };
    assert_eq!(kept(&exactly), [1]);
    let encrypts = Filter {
        action: Some("Encrypt".into()),
        ..Filter::default()
    };
    assert_eq!(kept(&encrypts), [2, 3]);
    let all = Filter {
        stores: Some(vec!["payroll".into()]),
        user: Some("root".into()),
        outcome: Some(Outcome::Success),
        action: Some("create_store".into()),
    };
    assert_eq!(kept(&all), [0]);
}

fn record(seq: u64, event: serde_json::Value) -> Record {
    Record {
        seq,
        time: "2026-12-03T07:00:00Z".into(),
        event,
        prev: "p".into(),
        hash: "h".into(),
        mac: None,
    }
}

#[test]
fn a_record_is_shown_with_its_common_fields() {
    let mut e = xks("payroll", "InvalidCiphertextException");
    e["node"] = json!("n1");
    let shown = summarize(record(7, e.clone()));
    assert_eq!(shown.seq, 7);
    assert_eq!(shown.kind.as_deref(), Some("xks"));
    assert_eq!(shown.user, None);
    assert_eq!(shown.action.as_deref(), Some("Encrypt"));
    assert_eq!(shown.object.as_deref(), Some("store/payroll/key/k1"));
    assert_eq!(shown.store.as_deref(), Some("payroll"));
    assert_eq!(shown.outcome.as_deref(), Some("InvalidCiphertextException"));
    assert_eq!(shown.success, Some(false));
    assert_eq!(shown.node.as_deref(), Some("n1"));
    assert_eq!(shown.event, e);
    let shown = summarize(record(8, admin("root", "block_store", "store/s-9", "ok")));
    assert_eq!(shown.user.as_deref(), Some("root"));
    assert_eq!(shown.object.as_deref(), Some("store/s-9"));
    assert_eq!(shown.store.as_deref(), Some("s-9"));
    assert_eq!(shown.success, Some(true));
}

fn report() -> VerifyReport {
    VerifyReport {
        segments: vec![
            PathBuf::from("/data/audit.jsonl"),
            PathBuf::from("/data/audit.jsonl.1"),
        ],
        records: 10,
        last_seq: 10,
        last_hash: "abc".into(),
        keyed_from: Some(1),
        damaged: Vec::new(),
        anchor_problem: None,
        tail_missing: Vec::new(),
    }
}

#[test]
fn a_verified_chain_shows_its_anchor_matched() {
    let anchor = Anchor {
        seq: 9,
        hash: "h9".into(),
    };
    let s = status_of(&report(), Some(&anchor), "n1".into(), "t".into());
    assert_eq!(s.state, ChainState::Verified);
    assert_eq!((s.segments, s.records, s.last_seq), (2, 10, 10));
    assert_eq!(s.keyed_from, Some(1));
    assert_eq!(
        s.anchor,
        Some(ChainAnchor {
            seq: 9,
            hash: "h9".into(),
            matched: true
        })
    );
    assert!(s.problems.is_empty());
    assert_eq!(s.node, "n1");
}

#[test]
fn a_broken_chain_names_the_segment_line_and_reason() {
    let mut r = report();
    r.damaged.push(Damage {
        path: PathBuf::from("/data/audit.jsonl"),
        line: 3,
        reason: "its content does not match its hash".into(),
    });
    r.anchor_problem = Some("the log was rewritten".into());
    r.tail_missing.push(12);
    let anchor = Anchor {
        seq: 9,
        hash: "h9".into(),
    };
    let s = status_of(&r, Some(&anchor), "n1".into(), "t".into());
    assert_eq!(s.state, ChainState::Broken);
    assert_eq!(s.problems.len(), 3);
    let p = &s.problems[0];
    assert_eq!(p.kind, "damaged_segment");
    assert_eq!(
        p.segment.as_deref(),
        Some("audit.jsonl"),
        "no directory shown"
    );
    assert_eq!(p.line, Some(3));
    assert_eq!(
        p.message,
        "audit.jsonl: record 3 does not verify: its content does not match its hash"
    );
    assert_eq!(s.problems[1].kind, "anchor");
    assert_eq!(s.problems[2].seq, Some(12));
    assert_eq!(s.anchor.map(|a| a.matched), Some(false));
}

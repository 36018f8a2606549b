//! Unit tests of reading the log newest first: lines read backwards across chunk
//! boundaries, a torn tail left unread, paging across segments, the budget.

use std::io::Write;

use serde_json::json;

use super::*;
use crate::audit::{AuditLog, AuditSettings};

fn backwards(bytes: &[u8]) -> Vec<Line> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("f");
    std::fs::write(&path, bytes).unwrap();
    let mut b = Backwards::open(&path).unwrap();
    let mut out = Vec::new();
    while let Some(l) = b.next_line().unwrap() {
        out.push(l);
    }
    out
}

fn text(s: &str) -> Line {
    Line::Text(s.as_bytes().to_vec())
}

#[test]
fn lines_are_read_from_the_last_to_the_first() {
    assert_eq!(backwards(b""), vec![]);
    assert_eq!(backwards(b"a\n"), vec![text("a")]);
    assert_eq!(
        backwards(b"a\nbb\n\nccc\n"),
        vec![text("ccc"), text(""), text("bb"), text("a")]
    );
}

#[test]
fn a_final_line_without_its_newline_is_not_read() {
    assert_eq!(backwards(b"a\nb\npartial"), vec![text("b"), text("a")]);
    assert_eq!(backwards(b"partial only"), vec![]);
}

#[test]
fn lines_longer_than_a_chunk_are_read_whole() {
    let long = "x".repeat(3 * CHUNK as usize + 17);
    let mid = "y".repeat(CHUNK as usize - 1);
    let file = format!("first\n{long}\n{mid}\nlast\n");
    assert_eq!(
        backwards(file.as_bytes()),
        vec![text("last"), text(&mid), text(&long), text("first")]
    );
    // A torn tail longer than a chunk too.
    let file = format!("first\n{long}");
    assert_eq!(backwards(file.as_bytes()), vec![text("first")]);
}

/// A log of `n` records (`{"kind":"admin","user":"u<i % 3>","i":i}`) in segments of
/// about `max` bytes.
fn log(n: u64, max: u64) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    let log = AuditLog::open_with(
        &path,
        AuditSettings {
            segment_max_bytes: max,
            ..AuditSettings::default()
        },
    )
    .unwrap();
    for i in 1..=n {
        let seq = log
            .record_durable(json!({"kind": "admin", "user": format!("u{}", i % 3), "i": i}))
            .unwrap();
        assert_eq!(seq, i);
    }
    (dir, path)
}

fn seqs(page: &Page) -> Vec<u64> {
    page.records.iter().map(|r| r.seq).collect()
}

fn request(before: Option<u64>, limit: usize) -> PageRequest {
    PageRequest {
        before,
        limit,
        budget: 1_000,
    }
}

#[test]
fn pages_walk_every_segment_newest_first() {
    let (_dir, path) = log(40, 600);
    assert!(segments::list(&path).unwrap().len() > 3, "several segments");
    let mut all = Vec::new();
    let mut before = None;
    loop {
        let page = newest_first(&path, &request(before, 7), |_| true).unwrap();
        assert!(page.records.len() <= 7);
        all.extend(seqs(&page));
        match page.next_before {
            Some(b) => before = Some(b),
            None => break,
        }
    }
    assert_eq!(all, (1..=40).rev().collect::<Vec<_>>());
}

#[test]
fn a_filter_keeps_matching_records_and_the_cursor_moves_past_the_rest() {
    let (_dir, path) = log(30, 500);
    let keep = |r: &Record| r.event["user"] == "u1";
    let page = newest_first(&path, &request(None, 4), keep).unwrap();
    assert_eq!(seqs(&page), [28, 25, 22, 19]);
    assert_eq!(page.next_before, Some(19));
    let page = newest_first(&path, &request(Some(19), 100), keep).unwrap();
    assert_eq!(seqs(&page), [16, 13, 10, 7, 4, 1]);
    assert_eq!(page.next_before, None, "the first record was read");
    assert_eq!(page.scanned, 18, "records 18..=1 examined");
}

#[test]
fn the_budget_ends_a_page_early_with_a_cursor() {
    let (_dir, path) = log(30, 500);
    let req = PageRequest {
        before: None,
        limit: 10,
        budget: 5,
    };
    let page = newest_first(&path, &req, |r| r.event["user"] == "nobody").unwrap();
    assert!(page.records.is_empty());
    assert_eq!(page.scanned, 5);
    assert_eq!(
        page.next_before,
        Some(26),
        "continue below the last examined"
    );
}

#[test]
fn lines_that_are_not_records_are_skipped_and_counted() {
    let (_dir, path) = log(5, 0);
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .unwrap();
    f.write_all(b"not a record\n{\"torn\":").unwrap();
    let page = newest_first(&path, &request(None, 100), |_| true).unwrap();
    assert_eq!(seqs(&page), [5, 4, 3, 2, 1]);
    assert_eq!(page.unreadable, 1);
    assert_eq!(page.scanned, 6);
}

#[test]
fn before_skips_newer_segments_without_reading_them() {
    let (_dir, path) = log(40, 600);
    let segs = segments::list(&path).unwrap();
    // Garbage in the last segment does not count: it is never read below its first seq.
    let last = &segs.last().unwrap().1;
    let first_of_last = first_seq(last).unwrap().unwrap();
    let mut f = std::fs::OpenOptions::new().append(true).open(last).unwrap();
    f.write_all(b"garbage\n").unwrap();
    let page = newest_first(&path, &request(Some(first_of_last), 3), |_| true).unwrap();
    assert_eq!(
        seqs(&page),
        [first_of_last - 1, first_of_last - 2, first_of_last - 3]
    );
    assert_eq!(page.unreadable, 0);
}

#[test]
fn a_live_log_with_a_record_being_written_verifies_but_not_at_rest() {
    let (_dir, path) = log(5, 0);
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .unwrap();
    f.write_all(b"{\"seq\":6,\"ti").unwrap();
    let live = crate::audit::verify_live(&path, None, None).unwrap();
    assert!(live.is_intact(), "{:?}", live.problems());
    assert_eq!(live.last_seq, 5);
    let at_rest = crate::audit::verify_all(&path, None, None).unwrap();
    assert_eq!(at_rest.damaged.len(), 1, "a torn line at rest is damage");
}

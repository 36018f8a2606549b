//! Verification of a whole log, segment by segment, streaming: each segment's first
//! record must link to the last record verified before it (after a damaged segment,
//! that is the last record that verified in it, and the next segment must open with
//! the `audit_segment_after_damage` record the server wrote). With the store's
//! [`Anchor`], truncation of the tail and rewrites are detected too.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{
    AuditError, ChainKey,
    chain::ChainState,
    segments::{self, Start, Torn},
};

/// The kind of the record that opens a segment started after a damaged one.
pub const AFTER_DAMAGE: &str = "audit_segment_after_damage";

/// The latest durable record, as anchored in the store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Anchor {
    /// Its sequence number.
    pub seq: u64,
    /// Its hash.
    pub hash: String,
}

/// A segment that does not verify.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Damage {
    /// The segment file.
    pub path: PathBuf,
    /// 1-based line of the first problem.
    pub line: u64,
    /// What is wrong.
    pub reason: String,
}

impl std::fmt::Display for Damage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}: record {} does not verify: {}",
            self.path.display(),
            self.line,
            self.reason
        )
    }
}

/// What [`verify_all`] found.
#[derive(Debug, Clone)]
pub struct VerifyReport {
    /// The segments, in order.
    pub segments: Vec<PathBuf>,
    /// Records that verified.
    pub records: u64,
    /// The last verified record's sequence number.
    pub last_seq: u64,
    /// Its hash.
    pub last_hash: String,
    /// Sequence number of the first keyed record, if any.
    pub keyed_from: Option<u64>,
    /// Damaged segments.
    pub damaged: Vec<Damage>,
    /// What is wrong with respect to the store's anchor (truncation, rewrite).
    pub anchor_problem: Option<String>,
    /// Records the server wrote on finding the log's tail cut (`audit_tail_missing`).
    pub tail_missing: Vec<u64>,
}

impl VerifyReport {
    /// Whether every segment verified (and the anchor, when given, matched).
    pub fn is_intact(&self) -> bool {
        self.damaged.is_empty() && self.anchor_problem.is_none() && self.tail_missing.is_empty()
    }

    /// Every problem, one line each.
    pub fn problems(&self) -> Vec<String> {
        let mut out: Vec<String> = self.damaged.iter().map(ToString::to_string).collect();
        out.extend(self.anchor_problem.clone());
        out.extend(self.tail_missing.iter().map(|seq| {
            format!(
                "record {seq}: on a start the server found the log's tail cut (the store's anchor named a later record)"
            )
        }));
        out
    }
}

/// Verifies every segment of the log at `base`; keyed records need `key`. Only I/O
/// failures are errors: damage is reported in the result.
pub fn verify_all(
    base: &Path,
    key: Option<&ChainKey>,
    anchor: Option<&Anchor>,
) -> Result<VerifyReport, AuditError> {
    verify_segments(base, key, anchor, false)
}

/// [`verify_all`] of a log that its writer is appending to: a final line of the last
/// segment without its newline is a record being written, not damage (verification
/// stops before it). `anchor` must be read before the call, so that it names a record
/// already on disk.
pub fn verify_live(
    base: &Path,
    key: Option<&ChainKey>,
    anchor: Option<&Anchor>,
) -> Result<VerifyReport, AuditError> {
    verify_segments(base, key, anchor, true)
}

fn verify_segments(
    base: &Path,
    key: Option<&ChainKey>,
    anchor: Option<&Anchor>,
    live: bool,
) -> Result<VerifyReport, AuditError> {
    let segs = segments::list(base)?;
    let mut report = VerifyReport {
        segments: segs.iter().map(|(_, p)| p.clone()).collect(),
        records: 0,
        last_seq: 0,
        last_hash: super::GENESIS.to_string(),
        keyed_from: None,
        damaged: Vec::new(),
        anchor_problem: None,
        tail_missing: Vec::new(),
    };
    if segs.is_empty() {
        return Err(AuditError::io(
            base,
            std::io::Error::new(std::io::ErrorKind::NotFound, "no audit log here"),
        ));
    }
    let mut state = ChainState::genesis(false);
    let mut after_damage = false;
    let mut anchor_matched = None;
    for (i, (n, path)) in segs.iter().enumerate() {
        if i > 0 && segs[i - 1].0 + 1 != *n {
            report.damaged.push(Damage {
                path: path.clone(),
                line: 0,
                reason: format!("segment {} is missing before it", segs[i - 1].0 + 1),
            });
        }
        let torn = if live && i + 1 == segs.len() {
            Torn::Stop
        } else {
            Torn::Damage
        };
        let scan = segments::scan(path, Start::After(state.clone()), key, anchor, torn)?;
        if after_damage && scan.records > 0 && scan.first_kind.as_deref() != Some(AFTER_DAMAGE) {
            report.damaged.push(Damage {
                path: path.clone(),
                line: 1,
                reason: format!(
                    "follows a damaged segment but does not open with '{AFTER_DAMAGE}'"
                ),
            });
        }
        report.keyed_from = report.keyed_from.or(scan.first_keyed);
        anchor_matched = anchor_matched.or(scan.anchor_matched);
        report.records += scan.records;
        report.tail_missing.extend(scan.tail_missing);
        state = scan.state;
        after_damage = false;
        if let Some((line, reason)) = scan.damage {
            report.damaged.push(Damage {
                path: path.clone(),
                line,
                reason,
            });
            after_damage = true;
        }
    }
    report.last_seq = state.seq;
    report.last_hash = state.prev.clone();
    if let Some(a) = anchor {
        report.anchor_problem = match anchor_matched {
            Some(true) => None,
            Some(false) => Some(format!(
                "record {} differs from the one anchored in the store: the log was rewritten",
                a.seq
            )),
            None if a.seq > state.seq => Some(format!(
                "the store's anchor names record {} but the log ends at record {}: its tail was truncated",
                a.seq, state.seq
            )),
            None => Some(format!(
                "the anchored record {} could not be verified",
                a.seq
            )),
        };
    }
    Ok(report)
}

/// Checks the log at `base` without key or anchor (unkeyed logs); returns the number
/// of records and the last hash, or the first damage.
pub fn verify(base: &Path) -> Result<(u64, String), AuditError> {
    let report = verify_all(base, None, None)?;
    match report.damaged.into_iter().next() {
        Some(d) => Err(AuditError::Broken {
            path: d.path,
            line: d.line,
            reason: d.reason,
        }),
        None => Ok((report.last_seq, report.last_hash)),
    }
}

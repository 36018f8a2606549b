//! Segment files: the log at `audit.jsonl` is its first segment, then `audit.jsonl.1`,
//! `audit.jsonl.2`, ... (a new one when the current one reaches its maximum size). The
//! chain runs on across segments. Segments are read line by line ([`scan`]), never
//! whole.

use std::{
    fs::{File, OpenOptions},
    io::{BufRead, BufReader, Read},
    path::{Path, PathBuf},
};

use super::{
    Anchor, AuditError, ChainKey, Record,
    chain::{self, ChainState},
};

/// Longest line read as a record; a longer one is damage.
const MAX_LINE_BYTES: u64 = 16 * 1024 * 1024;

/// The path of segment `n` of the log at `base`.
pub(super) fn path_of(base: &Path, n: u64) -> PathBuf {
    if n == 0 {
        return base.to_path_buf();
    }
    let mut name = base.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".{n}"));
    base.with_file_name(name)
}

/// The segments of the log at `base` that exist, in order.
pub(super) fn list(base: &Path) -> Result<Vec<(u64, PathBuf)>, AuditError> {
    let io = |e: std::io::Error| AuditError::io(base, e);
    let dir = match base.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let stem = base
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut found = Vec::new();
    if base.exists() {
        found.push((0, base.to_path_buf()));
    }
    let entries = match std::fs::read_dir(&dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(found),
        Err(e) => return Err(io(e)),
    };
    for entry in entries {
        let entry = entry.map_err(io)?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let n = name
            .strip_prefix(&stem)
            .and_then(|rest| rest.strip_prefix('.'))
            .and_then(|n| n.parse::<u64>().ok())
            .filter(|n| *n > 0);
        if let Some(n) = n {
            found.push((n, entry.path()));
        }
    }
    found.sort();
    Ok(found)
}

/// What [`scan`] found in one segment.
#[derive(Debug)]
pub(super) struct Scan {
    /// The chain after the last record that verified (the start state when none did).
    pub state: ChainState,
    /// Records that verified.
    pub records: u64,
    /// The first problem: 1-based line and what is wrong (verification stops there).
    pub damage: Option<(u64, String)>,
    /// Bytes up to the end of the last whole line.
    pub good_len: u64,
    /// Whether the segment's first record opened a keyed chain after unkeyed records.
    pub first_keyed: Option<u64>,
    /// The anchored record was found: whether its hash matched.
    pub anchor_matched: Option<bool>,
    /// The first record's kind, if it parsed.
    pub first_kind: Option<String>,
    /// A keyed record was read (verified or not).
    pub saw_keyed: bool,
    /// Verified records saying the log's tail had been cut (found at a start).
    pub tail_missing: Vec<u64>,
}

/// What [`scan`] does with a final line that lacks its newline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Torn {
    /// Cut it off the file (a write torn by a crash, found on open).
    Cut,
    /// Report it as damage (a log at rest).
    Damage,
    /// Stop before it without damage: the live log's last segment, whose writer may be
    /// in the middle of appending that line.
    Stop,
}

/// How [`scan`] starts.
pub(super) enum Start {
    /// The first record must follow this state.
    After(ChainState),
    /// The first record is trusted as the start (its link is checked by `audit-verify`).
    FirstRecord,
}

/// Reads a segment line by line, checking each record against the chain. A final line
/// without its newline is handled as `torn` says.
pub(super) fn scan(
    path: &Path,
    start: Start,
    key: Option<&ChainKey>,
    anchor: Option<&Anchor>,
    torn: Torn,
) -> Result<Scan, AuditError> {
    let io = |e: std::io::Error| AuditError::io(path, e);
    let file = File::open(path).map_err(io)?;
    let mut reader = BufReader::with_capacity(64 * 1024, file);
    let (mut state, mut trust_first) = match start {
        Start::After(s) => (s, false),
        Start::FirstRecord => (ChainState::genesis(false), true),
    };
    let mut scan = Scan {
        state: state.clone(),
        records: 0,
        damage: None,
        good_len: 0,
        first_keyed: None,
        anchor_matched: None,
        first_kind: None,
        saw_keyed: false,
        tail_missing: Vec::new(),
    };
    let mut line = Vec::new();
    let mut n = 0u64;
    loop {
        line.clear();
        let read = (&mut reader)
            .take(MAX_LINE_BYTES + 1)
            .read_until(b'\n', &mut line)
            .map_err(io)?;
        if read == 0 {
            break;
        }
        n += 1;
        if line.last() != Some(&b'\n') {
            if read as u64 > MAX_LINE_BYTES {
                scan.damage = Some((n, "line too long to be a record".into()));
            } else {
                match torn {
                    Torn::Cut => cut(path, scan.good_len, read)?,
                    Torn::Stop => {}
                    Torn::Damage => {
                        scan.damage =
                            Some((n, "torn final line (a write cut short by a crash)".into()));
                    }
                }
            }
            break;
        }
        let rec: Record = match serde_json::from_slice(&line) {
            Ok(r) => r,
            Err(e) => {
                // serde's message may quote the line: keep only its position.
                let why = format!("not a record (column {})", e.column());
                scan.damage = Some((n, why));
                break;
            }
        };
        scan.saw_keyed |= rec.mac.is_some();
        if n == 1 {
            scan.first_kind = rec.event["kind"].as_str().map(str::to_string);
        }
        if trust_first {
            trust_first = false;
            state = ChainState {
                seq: rec.seq.saturating_sub(1),
                prev: rec.prev.clone(),
                keyed: false,
            };
        }
        if let Err(why) = chain::check(&rec, &state, key) {
            scan.damage = Some((n, why));
            break;
        }
        if rec.mac.is_some() && !state.keyed && scan.first_keyed.is_none() {
            scan.first_keyed = Some(rec.seq);
        }
        if let Some(a) = anchor.filter(|a| a.seq == rec.seq) {
            scan.anchor_matched = Some(a.hash == rec.hash);
        }
        if rec.event["kind"] == super::TAIL_MISSING {
            scan.tail_missing.push(rec.seq);
        }
        state = ChainState::after(&rec);
        scan.records += 1;
        scan.good_len += read as u64;
    }
    scan.state = state;
    Ok(scan)
}

/// Cuts the torn tail of `path` back to `keep` bytes.
fn cut(path: &Path, keep: u64, dropped: usize) -> Result<(), AuditError> {
    tracing::warn!(
        path = %path.display(),
        dropped_bytes = dropped,
        "audit log ended in a torn record (crash during a write); cutting it off"
    );
    let f = OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(|e| AuditError::io(path, e))?;
    f.set_len(keep).map_err(|e| AuditError::io(path, e))?;
    f.sync_all().map_err(|e| AuditError::io(path, e))
}

/// Creates segment `path` (which must not exist) and makes its name durable.
pub(super) fn create(path: &Path) -> Result<File, AuditError> {
    let file = OpenOptions::new()
        .create_new(true)
        .append(true)
        .open(path)
        .map_err(|e| AuditError::io(path, e))?;
    if let Some(dir) = path.parent() {
        if let Ok(d) = File::open(dir) {
            let _ = d.sync_all();
        }
    }
    Ok(file)
}

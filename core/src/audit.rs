//! The audit log: append-only JSON lines in size-capped segment files, each record
//! chained to the previous one by a hash (HMAC-SHA256 under a key derived from the
//! master key once keyed) so that any edit, deletion or reordering is detectable
//! ([`verify_all`], `keyhold audit-verify`); the latest durable record is anchored in
//! the store, so truncating the tail or rewriting the chain is detected too.
//!
//! Records are written by one background thread. Data-plane events are handed over
//! without blocking (a full queue drops the event and counts it); refusals of
//! unauthenticated requests are rate-limited (a few per interval, the rest counted in
//! one aggregate record); management events wait until their record is written and
//! fsync'd. On open, a torn last line left by a crash is cut off and the chain
//! continues; a damaged last segment is left as it is: a new segment starts with a
//! record saying so, an error is logged and counted, and the server keeps serving.

mod anchor;
mod chain;
mod read;
mod refusals;
mod segments;
mod verify;
mod writer;

use std::{
    path::{Path, PathBuf},
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering::Relaxed},
        mpsc::{SyncSender, TrySendError, sync_channel},
    },
    time::Instant,
};

use serde::{Deserialize, Serialize};
use serde_json::json;

pub use anchor::{ANCHOR_KEY, StoreAnchor, anchor_key, load as load_anchor};
pub use chain::{ChainKey, GENESIS, KEYED_MAC};
pub use read::{Page, PageRequest};
pub use refusals::RefusalLimits;
pub use verify::{AFTER_DAMAGE, Anchor, Damage, VerifyReport, verify, verify_all, verify_live};

use chain::ChainState;
use refusals::RefusalWindow;
use segments::{Start, Torn};
use writer::{Msg, Writer};

/// The record that opens the first keyed segment of a log that was not keyed before.
pub const KEYED_FROM_HERE: &str = "audit_chain_keyed";

/// Audit failures.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuditError {
    /// The file could not be read or written.
    #[error("audit log {path}: {reason}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The chain is broken at this record.
    #[error("audit log {path}: record {line} does not verify: {reason}")]
    Broken {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: u64,
        /// What is wrong.
        reason: String,
    },
    /// The log is keyed but no chain key was given.
    #[error("audit log {path} is keyed: opening it needs the master key")]
    KeyNeeded {
        /// The segment.
        path: PathBuf,
    },
    /// The writer thread is gone.
    #[error("audit log writer stopped")]
    Stopped,
}

impl AuditError {
    fn io(path: &Path, e: std::io::Error) -> AuditError {
        AuditError::Io {
            path: path.to_path_buf(),
            reason: e.to_string(),
        }
    }
}

/// One record as stored.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Record {
    /// Sequence number, from 1, across segments.
    pub seq: u64,
    /// RFC 3339 time.
    pub time: String,
    /// The event.
    pub event: serde_json::Value,
    /// Hash of the previous record.
    pub prev: String,
    /// SHA-256 (or, keyed, HMAC-SHA256) over `prev`, `seq`, `time` and the event's JSON.
    pub hash: String,
    /// `hmac-sha256` for a keyed record; absent for records from before keying.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac: Option<String>,
}

/// Where the latest durable record is anchored (the store, in the server).
pub trait AnchorStore: Send + Sync {
    /// Saves the anchor (overwriting the previous one).
    fn save(&self, anchor: &Anchor) -> Result<(), String>;
    /// The saved anchor, if any.
    fn load(&self) -> Result<Option<Anchor>, String>;
}

/// The record written when the log ends before the record anchored in the store.
pub const TAIL_MISSING: &str = "audit_tail_missing";

/// How the log is written.
#[derive(Clone, Default)]
pub struct AuditSettings {
    /// A segment this long or longer is followed by a new one (0: the default, 64 MiB).
    pub segment_max_bytes: u64,
    /// Rate limit of unauthenticated refusals.
    pub refusals: RefusalLimits,
    /// Key of the chain: records are keyed (HMAC) when given.
    pub key: Option<ChainKey>,
    /// Where the latest durable record is anchored.
    pub anchor: Option<Arc<dyn AnchorStore>>,
    /// The node writing the log: named in every record (`event.node`), so that the
    /// chains of a cluster's nodes are told apart.
    pub node: Option<String>,
}

/// The default segment size: 64 MiB.
pub const DEFAULT_SEGMENT_MAX_BYTES: u64 = 64 * 1024 * 1024;

/// Counters of the log, for metrics.
#[derive(Debug, Default)]
pub struct AuditCounters {
    /// Events dropped because the queue was full.
    pub dropped: AtomicU64,
    /// Damaged segments found on open.
    pub damaged_segments: AtomicU64,
    /// Unauthenticated refusals counted in aggregate records instead of recorded one by
    /// one.
    pub refusals_aggregated: AtomicU64,
}

/// A handle to the audit log; cheap to clone.
#[derive(Clone)]
pub struct AuditLog {
    tx: SyncSender<Msg>,
    counters: Arc<AuditCounters>,
    window: Arc<Mutex<RefusalWindow>>,
    path: PathBuf,
    /// The chain key and the anchor store, for [`AuditLog::verify_now`].
    key: Option<ChainKey>,
    anchor: Option<Arc<dyn AnchorStore>>,
}

/// Now, in RFC 3339.
pub(crate) fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

impl AuditLog {
    /// Opens (or creates) an unkeyed log at `path` with the default settings.
    pub fn open(path: &Path) -> Result<AuditLog, AuditError> {
        Self::open_with(path, AuditSettings::default())
    }

    /// Opens (or creates) the log whose first segment is `path`: a torn tail is cut, a
    /// damaged last segment is followed by a new one (logged and counted), an unkeyed
    /// log opened with a key continues in a new keyed segment.
    pub fn open_with(path: &Path, settings: AuditSettings) -> Result<AuditLog, AuditError> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| AuditError::io(path, e))?;
        }
        let counters = Arc::new(AuditCounters::default());
        let key = settings.key.clone();
        let (chain_key, anchor_store) = (settings.key.clone(), settings.anchor.clone());
        let segs = segments::list(path)?;
        let mut opening_note = None;
        let (segment, state, good_len) = match segs.last() {
            None => (0, ChainState::genesis(key.is_some()), 0),
            Some((n, last)) => {
                let start = if *n == 0 {
                    Start::After(ChainState::genesis(false))
                } else {
                    Start::FirstRecord
                };
                let mut scan = segments::scan(last, start, key.as_ref(), None, Torn::Cut)?;
                if scan.records == 0 && *n > 0 {
                    // Empty (or nothing verified): the chain stands where the segments
                    // before it end.
                    scan.state = previous_end(path, *n, key.as_ref())?;
                }
                if scan.saw_keyed && key.is_none() {
                    return Err(AuditError::KeyNeeded { path: last.clone() });
                }
                match scan.damage {
                    Some((line, reason)) => {
                        counters.damaged_segments.fetch_add(1, Relaxed);
                        tracing::error!(
                            path = %last.display(), line, %reason,
                            "AUDIT LOG DAMAGED: the last segment does not verify; it is left as it is \
                             and a new segment continues the chain from its last good record \
                             (run `keyhold audit-verify`)"
                        );
                        let state = scan.state;
                        opening_note = Some(json!({
                            "kind": AFTER_DAMAGE,
                            "damagedSegment": last.file_name().map(|f| f.to_string_lossy().into_owned()),
                            "line": line,
                            "reason": reason,
                            "lastVerifiedSeq": state.seq,
                        }));
                        (n + 1, state, 0)
                    }
                    None if key.is_some() && !scan.state.keyed && scan.state.seq > 0 => {
                        tracing::warn!(
                            path = %last.display(),
                            "audit log was not keyed: continuing in a new keyed segment"
                        );
                        opening_note = Some(json!({
                            "kind": KEYED_FROM_HERE,
                            "unkeyedUpTo": scan.state.seq,
                        }));
                        (n + 1, scan.state, 0)
                    }
                    None => (*n, scan.state, scan.good_len),
                }
            }
        };
        let seg_path = segments::path_of(path, segment);
        let file = if good_len == 0 && !seg_path.exists() {
            segments::create(&seg_path)?
        } else {
            std::fs::OpenOptions::new()
                .append(true)
                .open(&seg_path)
                .map_err(|e| AuditError::io(&seg_path, e))?
        };
        let mut w = Writer {
            base: path.to_path_buf(),
            segment,
            file,
            good_len,
            max_bytes: match settings.segment_max_bytes {
                0 => DEFAULT_SEGMENT_MAX_BYTES,
                n => n,
            },
            state: ChainState {
                keyed: key.is_some(),
                ..state
            },
            key,
            anchor: settings.anchor.clone(),
            node: settings.node.clone(),
        };
        let mut notes: Vec<serde_json::Value> = opening_note.into_iter().collect();
        if let Some(missing) = tail_missing(settings.anchor.as_deref(), &w.state) {
            // Recorded in the chain before the anchor moves on, so the evidence stays.
            counters.damaged_segments.fetch_add(1, Relaxed);
            notes.push(missing);
        }
        let noted = !notes.is_empty();
        for note in notes {
            w.append(note).map_err(|reason| AuditError::Io {
                path: seg_path.clone(),
                reason,
            })?;
        }
        w.file
            .sync_all()
            .map_err(|e| AuditError::io(&seg_path, e))?;
        if noted {
            w.anchor();
        }
        let (tx, rx) = sync_channel(4096);
        let window = Arc::new(Mutex::new(RefusalWindow::new(settings.refusals)));
        let thread_window = window.clone();
        // The thread ends when the last handle is dropped.
        std::thread::Builder::new()
            .name("keyhold-audit".into())
            .spawn(move || writer::run(rx, w, thread_window))
            .map_err(|e| AuditError::io(path, e))?;
        Ok(AuditLog {
            tx,
            counters,
            window,
            path: path.to_path_buf(),
            key: chain_key,
            anchor: anchor_store,
        })
    }

    /// Where the log is (its first segment).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A page of the log, newest first: the records `keep` accepts, as `req` says
    /// (blocking: reads files).
    pub fn read_page(
        &self,
        req: &PageRequest,
        keep: impl FnMut(&Record) -> bool,
    ) -> Result<Page, AuditError> {
        read::newest_first(&self.path, req, keep)
    }

    /// Verifies the whole log as it stands, with the chain key and against the anchor
    /// in the store (read first), while it is being written (blocking: streams every
    /// segment). Returns the report and the anchor checked, if any.
    pub fn verify_now(&self) -> Result<(VerifyReport, Option<Anchor>), AuditError> {
        let anchor = match &self.anchor {
            None => None,
            Some(store) => store.load().map_err(|reason| AuditError::Io {
                path: self.path.clone(),
                reason: format!("the audit anchor could not be read from the store: {reason}"),
            })?,
        };
        let report = verify_live(&self.path, self.key.as_ref(), anchor.as_ref())?;
        Ok((report, anchor))
    }

    /// Records a data-plane event without waiting; a full queue drops it (counted).
    pub fn record(&self, event: serde_json::Value) {
        match self.tx.try_send(Msg::Event(event)) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                self.counters.dropped.fetch_add(1, Relaxed);
            }
        }
    }

    /// Records the refusal of an unauthenticated request, rate-limited: per interval
    /// the first few are recorded one by one, the rest only counted under `reason`
    /// (e.g. `AuthenticationFailedException/401`) in one aggregate record.
    pub fn record_refusal(&self, event: serde_json::Value, reason: &str) {
        let (individual, ended) = self
            .window
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .admit(reason, Instant::now());
        if let Some(agg) = ended {
            self.record(agg);
        }
        if individual {
            self.record(event);
        } else {
            self.counters.refusals_aggregated.fetch_add(1, Relaxed);
        }
    }

    /// Records an event and waits until it is written and fsync'd; returns its
    /// sequence number.
    pub fn record_durable(&self, event: serde_json::Value) -> Result<u64, AuditError> {
        let (done_tx, done_rx) = sync_channel(1);
        self.tx
            .send(Msg::Durable(event, done_tx))
            .map_err(|_| AuditError::Stopped)?;
        done_rx
            .recv()
            .map_err(|_| AuditError::Stopped)?
            .map_err(|reason| AuditError::Io {
                path: self.path.clone(),
                reason,
            })
    }

    /// Waits until every event queued so far is written and fsync'd (refusals counted
    /// so far included, as an aggregate record).
    pub fn flush(&self) -> Result<(), AuditError> {
        let (done_tx, done_rx) = sync_channel(1);
        self.tx
            .send(Msg::Flush(done_tx))
            .map_err(|_| AuditError::Stopped)?;
        done_rx.recv().map_err(|_| AuditError::Stopped)?;
        Ok(())
    }

    /// [`AuditLog::flush`], then lets go of the anchor store so that the store can
    /// close (called when the server stops); records written later are not anchored.
    pub fn release_anchor(&self) -> Result<(), AuditError> {
        let (done_tx, done_rx) = sync_channel(1);
        self.tx
            .send(Msg::Release(done_tx))
            .map_err(|_| AuditError::Stopped)?;
        done_rx.recv().map_err(|_| AuditError::Stopped)?;
        Ok(())
    }

    /// Events dropped because the queue was full.
    pub fn dropped(&self) -> u64 {
        self.counters.dropped.load(Relaxed)
    }

    /// The log's counters.
    pub fn counters(&self) -> &AuditCounters {
        &self.counters
    }
}

/// The record saying the log ends before the record anchored in the store (its tail
/// was cut), if it does; logged as an error.
fn tail_missing(anchor: Option<&dyn AnchorStore>, state: &ChainState) -> Option<serde_json::Value> {
    let anchored = match anchor?.load() {
        Ok(a) => a?,
        Err(e) => {
            tracing::error!("audit anchor could not be read: {e}");
            return None;
        }
    };
    if anchored.seq <= state.seq {
        return None;
    }
    tracing::error!(
        anchored = anchored.seq,
        last = state.seq,
        "AUDIT LOG TRUNCATED: the store's anchor names a record past the log's end; \
         continuing, with a record saying so (run `keyhold audit-verify`)"
    );
    Some(json!({
        "kind": TAIL_MISSING,
        "anchoredSeq": anchored.seq,
        "anchoredHash": anchored.hash,
        "logEndedAt": state.seq,
    }))
}

/// The chain state at the end of segment `n - 1` (when segment `n` has no record that
/// verifies): the last record of the segments before, read line by line.
fn previous_end(base: &Path, n: u64, key: Option<&ChainKey>) -> Result<ChainState, AuditError> {
    for m in (0..n).rev() {
        let p = segments::path_of(base, m);
        if !p.exists() {
            continue;
        }
        let start = if m == 0 {
            Start::After(ChainState::genesis(false))
        } else {
            Start::FirstRecord
        };
        let scan = segments::scan(&p, start, key, None, Torn::Damage)?;
        if scan.records > 0 {
            return Ok(scan.state);
        }
    }
    Ok(ChainState::genesis(key.is_some()))
}

#[cfg(test)]
mod tests;

//! The audit log: append-only JSON lines, each record chained to the previous one by a
//! SHA-256 hash so that any edit, deletion or reordering is detectable
//! ([`verify`], `keyhold audit-verify`).
//!
//! Records are written by one background thread. Data-plane events are handed over
//! without blocking (a full queue drops the event and counts it); management events
//! wait until their record is written and fsync'd. On open, a torn last line left by a
//! crash is cut off and the chain continues from the last whole record.

use std::{
    fs::{File, OpenOptions},
    io::{BufRead, BufReader, Seek, SeekFrom, Write},
    path::{Path, PathBuf},
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering::Relaxed},
        mpsc::{Receiver, SyncSender, TrySendError, sync_channel},
    },
};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Hash of the record before the first one.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

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
    /// The writer thread is gone.
    #[error("audit log writer stopped")]
    Stopped,
}

/// One record as stored.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Record {
    /// Sequence number, from 1.
    pub seq: u64,
    /// RFC 3339 time.
    pub time: String,
    /// The event.
    pub event: serde_json::Value,
    /// Hash of the previous record.
    pub prev: String,
    /// SHA-256 over `prev`, `seq`, `time` and the event's JSON.
    pub hash: String,
}

fn chain_hash(prev: &str, seq: u64, time: &str, event: &serde_json::Value) -> String {
    let mut h = Sha256::new();
    h.update(prev.as_bytes());
    h.update(b"\n");
    h.update(seq.to_string().as_bytes());
    h.update(b"\n");
    h.update(time.as_bytes());
    h.update(b"\n");
    h.update(event.to_string().as_bytes());
    hex::encode(h.finalize())
}

/// Checks a whole file; returns the number of records and the last hash.
pub fn verify(path: &Path) -> Result<(u64, String), AuditError> {
    let io = |e: std::io::Error| AuditError::Io {
        path: path.to_path_buf(),
        reason: e.to_string(),
    };
    let file = File::open(path).map_err(io)?;
    let mut prev = GENESIS.to_string();
    let mut count = 0;
    for (i, line) in BufReader::new(file).lines().enumerate() {
        let line = line.map_err(io)?;
        let n = i as u64 + 1;
        let broken = |reason: String| AuditError::Broken {
            path: path.to_path_buf(),
            line: n,
            reason,
        };
        let rec: Record =
            serde_json::from_str(&line).map_err(|e| broken(format!("not a record: {e}")))?;
        if rec.seq != n {
            return Err(broken(format!(
                "sequence {} where {n} was expected",
                rec.seq
            )));
        }
        if rec.prev != prev {
            return Err(broken(
                "its previous-hash does not match the record before".into(),
            ));
        }
        if chain_hash(&rec.prev, rec.seq, &rec.time, &rec.event) != rec.hash {
            return Err(broken("its content does not match its hash".into()));
        }
        prev = rec.hash;
        count = n;
    }
    Ok((count, prev))
}

/// Cuts a torn final line (no trailing newline) left by a crash, then verifies.
fn recover(path: &Path) -> Result<(u64, String), AuditError> {
    let io = |e: std::io::Error| AuditError::Io {
        path: path.to_path_buf(),
        reason: e.to_string(),
    };
    if !path.exists() {
        return Ok((0, GENESIS.to_string()));
    }
    let bytes = std::fs::read(path).map_err(io)?;
    if !bytes.is_empty() && bytes.last() != Some(&b'\n') {
        let keep = bytes.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
        tracing::warn!(
            path = %path.display(),
            dropped_bytes = bytes.len() - keep,
            "audit log ended in a torn record (crash during a write); cutting it off"
        );
        let f = OpenOptions::new().write(true).open(path).map_err(io)?;
        f.set_len(keep as u64).map_err(io)?;
        f.sync_all().map_err(io)?;
    }
    verify(path)
}

enum Msg {
    Event(serde_json::Value),
    Durable(serde_json::Value, SyncSender<Result<u64, String>>),
    Flush(SyncSender<()>),
}

/// A handle to the audit log; cheap to clone.
#[derive(Clone)]
pub struct AuditLog {
    tx: SyncSender<Msg>,
    dropped: Arc<AtomicU64>,
    path: PathBuf,
}

impl AuditLog {
    /// Opens (or creates) the log at `path`, repairing a torn tail and refusing a
    /// broken chain.
    pub fn open(path: &Path) -> Result<AuditLog, AuditError> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| AuditError::Io {
                path: path.to_path_buf(),
                reason: e.to_string(),
            })?;
        }
        let (count, last) = recover(path)?;
        let mut file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|e| AuditError::Io {
                path: path.to_path_buf(),
                reason: e.to_string(),
            })?;
        let _ = file.seek(SeekFrom::End(0));
        let (tx, rx) = sync_channel(4096);
        let p = path.to_path_buf();
        // The thread ends when the last handle is dropped.
        std::thread::Builder::new()
            .name("keyhold-audit".into())
            .spawn(move || write_loop(rx, file, count, last, p))
            .map_err(|e| AuditError::Io {
                path: path.to_path_buf(),
                reason: e.to_string(),
            })?;
        Ok(AuditLog {
            tx,
            dropped: Arc::new(AtomicU64::new(0)),
            path: path.to_path_buf(),
        })
    }

    /// Where the log is.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Records a data-plane event without waiting; a full queue drops it (counted).
    pub fn record(&self, event: serde_json::Value) {
        match self.tx.try_send(Msg::Event(event)) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                self.dropped.fetch_add(1, Relaxed);
            }
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

    /// Waits until every event queued so far is written and fsync'd.
    pub fn flush(&self) -> Result<(), AuditError> {
        let (done_tx, done_rx) = sync_channel(1);
        self.tx
            .send(Msg::Flush(done_tx))
            .map_err(|_| AuditError::Stopped)?;
        done_rx.recv().map_err(|_| AuditError::Stopped)?;
        Ok(())
    }

    /// Events dropped because the queue was full.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Relaxed)
    }
}

struct Writer {
    file: File,
    seq: u64,
    prev: String,
    path: PathBuf,
    /// File length after the last whole record.
    good_len: u64,
}

impl Writer {
    fn append(&mut self, event: serde_json::Value) -> Result<u64, String> {
        let time = time::OffsetDateTime::now_utc()
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default();
        let next = self.seq + 1;
        let hash = chain_hash(&self.prev, next, &time, &event);
        let rec = Record {
            seq: next,
            time,
            event,
            prev: self.prev.clone(),
            hash: hash.clone(),
        };
        let mut line = serde_json::to_vec(&rec).map_err(|e| e.to_string())?;
        line.push(b'\n');
        if let Err(e) = self.file.write_all(&line) {
            // Never leave a partial record in the middle of the chain: cut back to the
            // end of the last whole record.
            let _ = self.file.set_len(self.good_len);
            return Err(e.to_string());
        }
        self.good_len += line.len() as u64;
        self.seq = next;
        self.prev = hash;
        Ok(next)
    }
}

fn write_loop(rx: Receiver<Msg>, file: File, seq: u64, prev: String, path: PathBuf) {
    let good_len = file.metadata().map(|m| m.len()).unwrap_or(0);
    let mut w = Writer {
        file,
        seq,
        prev,
        path,
        good_len,
    };
    while let Ok(first) = rx.recv() {
        let mut waiting = Vec::new();
        let mut flushes = Vec::new();
        // Batch whatever else is queued, then make it durable once.
        for msg in std::iter::once(first).chain(std::iter::from_fn(|| rx.try_recv().ok())) {
            match msg {
                Msg::Event(e) => {
                    if let Err(err) = w.append(e) {
                        tracing::error!(path = %w.path.display(), "audit write failed: {err}");
                    }
                }
                Msg::Durable(e, done) => {
                    let r = w.append(e);
                    waiting.push((done, r));
                }
                Msg::Flush(done) => flushes.push(done),
            }
        }
        let synced = w.file.sync_data().map_err(|e| e.to_string());
        for (done, r) in waiting {
            let _ = done.send(r.and_then(|seq| synced.clone().map(|_| seq)));
        }
        for done in flushes {
            let _ = done.send(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

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
        // Reopening a broken chain is refused.
        assert!(AuditLog::open(&path).is_err());
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
    }
}

//! The writer thread: appends records to the current segment (starting the next one
//! when it is full), makes them durable in batches, writes the aggregate records of
//! rate-limited refusals when their interval ends, and anchors the latest durable
//! record in the store.

use std::{
    fs::File,
    io::Write,
    path::PathBuf,
    sync::{
        Arc, Mutex,
        mpsc::{Receiver, RecvTimeoutError, SyncSender},
    },
    time::Instant,
};

use super::{
    Anchor, AnchorStore, ChainKey, KEYED_MAC, Record,
    chain::{self, ChainState},
    refusals::RefusalWindow,
    segments,
};

/// A message to the writer.
pub(super) enum Msg {
    /// A data-plane event: written, made durable with the batch.
    Event(serde_json::Value),
    /// A management event: the sender waits for its sequence number once durable.
    Durable(serde_json::Value, SyncSender<Result<u64, String>>),
    /// Answered once everything before it is durable (and counted refusals recorded).
    Flush(SyncSender<()>),
    /// A flush that also lets go of the anchor store (the server is stopping and its
    /// store must close); later records are no longer anchored.
    Release(SyncSender<()>),
}

/// Appends records.
pub(super) struct Writer {
    /// The log's first segment (names the others).
    pub base: PathBuf,
    /// The current segment's number.
    pub segment: u64,
    /// The current segment.
    pub file: File,
    /// Its length after the last whole record.
    pub good_len: u64,
    /// A segment this long or longer is followed by a new one.
    pub max_bytes: u64,
    /// Where the chain stands.
    pub state: ChainState,
    /// The chain key (keyed records), if any.
    pub key: Option<ChainKey>,
    /// Where the latest durable record is anchored, if anywhere.
    pub anchor: Option<Arc<dyn AnchorStore>>,
    /// The node named in every record, if any.
    pub node: Option<String>,
}

impl Writer {
    /// Appends one record (starting a new segment first when this one is full).
    pub fn append(&mut self, mut event: serde_json::Value) -> Result<u64, String> {
        if let (Some(node), Some(fields)) = (&self.node, event.as_object_mut()) {
            fields
                .entry("node")
                .or_insert_with(|| serde_json::Value::String(node.clone()));
        }
        if self.good_len >= self.max_bytes && self.good_len > 0 {
            self.rotate().map_err(|e| e.to_string())?;
        }
        let time = super::now_rfc3339();
        let next = self.state.seq + 1;
        let hash = chain::link(self.key.as_ref(), &self.state.prev, next, &time, &event);
        let rec = Record {
            seq: next,
            time,
            event,
            prev: self.state.prev.clone(),
            hash,
            mac: self.key.as_ref().map(|_| KEYED_MAC.to_string()),
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
        self.state = ChainState::after(&rec);
        Ok(next)
    }

    /// Closes the current segment (durably) and opens the next one.
    pub fn rotate(&mut self) -> Result<(), super::AuditError> {
        self.file
            .sync_all()
            .map_err(|e| super::AuditError::io(&self.base, e))?;
        let next = self.segment + 1;
        let path = segments::path_of(&self.base, next);
        self.file = segments::create(&path)?;
        self.segment = next;
        self.good_len = 0;
        tracing::info!(path = %path.display(), "audit log: new segment");
        Ok(())
    }

    /// Records the latest record in the anchor store.
    pub fn anchor(&self) {
        if let Some(store) = &self.anchor {
            let a = Anchor {
                seq: self.state.seq,
                hash: self.state.prev.clone(),
            };
            if let Err(e) = store.save(&a) {
                tracing::error!("audit anchor could not be saved in the store: {e}");
            }
        }
    }
}

/// Runs the writer until every handle is dropped.
pub(super) fn run(rx: Receiver<Msg>, mut w: Writer, window: Arc<Mutex<RefusalWindow>>) {
    let lock = |w: &Arc<Mutex<RefusalWindow>>| {
        w.lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .roll(Instant::now(), false)
    };
    loop {
        let wait = window
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remaining(Instant::now());
        let first = match rx.recv_timeout(wait) {
            Ok(m) => Some(m),
            Err(RecvTimeoutError::Timeout) => None,
            Err(RecvTimeoutError::Disconnected) => break,
        };
        let mut waiting = Vec::new();
        let mut flushes = Vec::new();
        let mut release = false;
        let mut wrote = false;
        // Batch whatever else is queued, then make it durable once.
        for msg in first
            .into_iter()
            .chain(std::iter::from_fn(|| rx.try_recv().ok()))
        {
            match msg {
                Msg::Event(e) => {
                    wrote = true;
                    if let Err(err) = w.append(e) {
                        tracing::error!(path = %w.base.display(), "audit write failed: {err}");
                    }
                }
                Msg::Durable(e, done) => {
                    wrote = true;
                    let r = w.append(e);
                    waiting.push((done, r));
                }
                Msg::Flush(done) => flushes.push(done),
                Msg::Release(done) => {
                    release = true;
                    flushes.push(done);
                }
            }
        }
        let aggregate = if flushes.is_empty() {
            lock(&window)
        } else {
            window
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .roll(Instant::now(), true)
        };
        if let Some(agg) = aggregate {
            wrote = true;
            if let Err(err) = w.append(agg) {
                tracing::error!(path = %w.base.display(), "audit write failed: {err}");
            }
        }
        if !wrote && flushes.is_empty() {
            continue;
        }
        let synced = w.file.sync_data().map_err(|e| e.to_string());
        if !waiting.is_empty() && synced.is_ok() {
            w.anchor();
        }
        if release {
            w.anchor = None;
        }
        for (done, r) in waiting {
            let _ = done.send(r.and_then(|seq| synced.clone().map(|_| seq)));
        }
        for done in flushes {
            let _ = done.send(());
        }
    }
    // Last words: the refusals counted since the last aggregate.
    let last = window
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .roll(Instant::now(), true);
    if let Some(agg) = last {
        if w.append(agg).is_ok() {
            let _ = w.file.sync_data();
        }
    }
}

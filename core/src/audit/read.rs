//! Reading the log newest first, a page at a time (the admin API's `GET /api/v1/audit`):
//! segments from the last to the first, each read backwards in chunks, so that a page
//! costs the records it looks at (at most a budget of them), never the whole log in
//! memory. Records are not verified here (that is [`super::verify_live`]); a line that
//! is not a record is skipped and counted. A final line without its newline is a record
//! being written and is not read yet.

use std::{
    fs::File,
    io::{BufRead, BufReader, Read},
    os::unix::fs::FileExt,
    path::Path,
};

use super::{AuditError, Record, segments};

/// Bytes read at a time, backwards.
const CHUNK: u64 = 64 * 1024;

/// Longest line read as a record; a longer one is skipped (counted as unreadable).
const MAX_LINE_BYTES: usize = 16 * 1024 * 1024;

/// Which records a page holds.
#[derive(Debug, Clone, Copy)]
pub struct PageRequest {
    /// Only records with a smaller sequence number (the previous page's `next_before`).
    pub before: Option<u64>,
    /// At most this many records.
    pub limit: usize,
    /// At most this many lines are examined (records older than `before` and lines that
    /// are not records); when reached, the page ends early with a `next_before`.
    pub budget: u64,
}

/// One page, newest first.
#[derive(Debug, Clone, Default)]
pub struct Page {
    /// The records kept, newest first.
    pub records: Vec<Record>,
    /// Pass as `before` for the next page; `None` once the log's first record was read.
    pub next_before: Option<u64>,
    /// Lines examined.
    pub scanned: u64,
    /// Examined lines that were not records (skipped).
    pub unreadable: u64,
}

/// A line read backwards.
#[derive(Debug, PartialEq, Eq)]
enum Line {
    /// A whole line, without its newline.
    Text(Vec<u8>),
    /// A line longer than [`MAX_LINE_BYTES`] (skipped, not held).
    TooLong,
}

/// Reads a file's newline-terminated lines from the last to the first.
struct Backwards {
    file: File,
    /// The file offset where `buf` starts.
    pos: u64,
    /// Bytes `[pos, pos + buf.len())`: whole lines only (it ends with a newline), or
    /// empty.
    buf: Vec<u8>,
}

impl Backwards {
    fn open(path: &Path) -> std::io::Result<Backwards> {
        let file = File::open(path)?;
        let len = file.metadata()?.len();
        let mut b = Backwards {
            file,
            pos: len,
            buf: Vec::new(),
        };
        // A final line without its newline is being written: not read.
        b.skip_back()?;
        Ok(b)
    }

    /// Reads `n` bytes ending at `pos` (moving `pos` back).
    fn read_back(&mut self, n: u64) -> std::io::Result<Vec<u8>> {
        let n = n.min(self.pos);
        self.pos -= n;
        let mut chunk = vec![0; n as usize];
        self.file.read_exact_at(&mut chunk, self.pos)?;
        Ok(chunk)
    }

    /// Drops `buf` and what comes before it back to the previous newline (kept).
    fn skip_back(&mut self) -> std::io::Result<()> {
        self.buf.clear();
        while self.pos > 0 {
            let mut chunk = self.read_back(CHUNK)?;
            if let Some(i) = chunk.iter().rposition(|b| *b == b'\n') {
                chunk.truncate(i + 1);
                self.buf = chunk;
                return Ok(());
            }
        }
        Ok(())
    }

    /// The line before the ones already read, if any.
    fn next_line(&mut self) -> std::io::Result<Option<Line>> {
        loop {
            if self.buf.is_empty() {
                if self.pos == 0 {
                    return Ok(None);
                }
                // Only after a skip that found no newline: nothing left.
                self.skip_back()?;
                continue;
            }
            let body_end = self.buf.len() - 1;
            if let Some(i) = self.buf[..body_end].iter().rposition(|b| *b == b'\n') {
                let line = self.buf[i + 1..body_end].to_vec();
                self.buf.truncate(i + 1);
                return Ok(Some(Line::Text(line)));
            }
            if self.pos == 0 {
                let mut line = std::mem::take(&mut self.buf);
                line.truncate(body_end);
                return Ok(Some(Line::Text(line)));
            }
            if self.buf.len() > MAX_LINE_BYTES {
                self.skip_back()?;
                return Ok(Some(Line::TooLong));
            }
            // Read more before this line: as much again as held (at least a chunk), so
            // that a long line costs linear time.
            let more = (self.buf.len() as u64).max(CHUNK);
            let mut chunk = self.read_back(more)?;
            chunk.append(&mut self.buf);
            self.buf = chunk;
        }
    }
}

/// The sequence number of a segment's first record, if it reads as one.
fn first_seq(path: &Path) -> std::io::Result<Option<u64>> {
    let mut reader = BufReader::new(File::open(path)?);
    let mut line = Vec::new();
    (&mut reader)
        .take(MAX_LINE_BYTES as u64)
        .read_until(b'\n', &mut line)?;
    if line.last() != Some(&b'\n') {
        return Ok(None);
    }
    Ok(serde_json::from_slice::<Record>(&line).ok().map(|r| r.seq))
}

/// Reads the log at `base` newest first and keeps the records `keep` accepts, as
/// `req` says. A segment whose first record is not older than `req.before` is skipped
/// without reading it.
pub fn newest_first(
    base: &Path,
    req: &PageRequest,
    mut keep: impl FnMut(&Record) -> bool,
) -> Result<Page, AuditError> {
    let mut page = Page::default();
    if req.limit == 0 {
        return Ok(page);
    }
    // The oldest record examined so far: where the next page starts.
    let mut oldest = None;
    for (_, path) in segments::list(base)?.iter().rev() {
        let io = |e: std::io::Error| AuditError::io(path, e);
        if let Some(before) = req.before {
            if first_seq(path).map_err(io)?.is_some_and(|s| s >= before) {
                continue;
            }
        }
        let mut lines = match Backwards::open(path) {
            Ok(l) => l,
            // Gone since it was listed (never, as segments are not deleted): nothing.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(io(e)),
        };
        while let Some(line) = lines.next_line().map_err(io)? {
            let rec = match &line {
                Line::Text(text) => serde_json::from_slice::<Record>(text).ok(),
                Line::TooLong => None,
            };
            if let (Some(r), Some(before)) = (&rec, req.before) {
                if r.seq >= before {
                    // Newer than the page: not examined.
                    continue;
                }
            }
            if page.scanned >= req.budget {
                page.next_before = oldest;
                return Ok(page);
            }
            page.scanned += 1;
            let Some(rec) = rec else {
                page.unreadable += 1;
                continue;
            };
            oldest = Some(rec.seq);
            if keep(&rec) {
                page.records.push(rec);
                if page.records.len() >= req.limit {
                    page.next_before = oldest.filter(|seq| *seq > 1);
                    return Ok(page);
                }
            }
        }
    }
    Ok(page)
}

#[cfg(test)]
mod tests;

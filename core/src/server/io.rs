//! [`ConnIo`]: a connection's byte stream as hyper sees it. It tells the connection's
//! [`Activity`] when bytes arrive (the start of a request's headers) and whether the
//! client speaks HTTP/2, and when hyper lets go of it, it closes the connection with
//! a lingering close: shut the write side (a TLS `close_notify`, then FIN), then read
//! and discard what the client still sends, for a bounded time and amount, so that
//! the kernel does not answer unread input with a reset that would destroy responses
//! the client has not read yet (an early answer, or the answers before a malformed
//! pipelined request). On HTTP/1.1 it also replaces hyper's automatic, empty-bodied
//! refusals with the listener's JSON answer ([`Refusals::rewrite_tail`]).

use std::{
    io,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
    time::Duration,
};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};

use super::{activity::Activity, refusal::Refusals, stats::ListenerStats};

/// Longest a closed connection lingers, reading and discarding the client's input.
pub const LINGER_TIME: Duration = Duration::from_secs(2);

/// Most bytes read and discarded while lingering.
pub const LINGER_BYTES: usize = 4 << 20;

/// The HTTP/2 connection preface's first line.
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n";

/// A connection's slot under the listener's cap: counted open until dropped (after
/// lingering).
#[derive(Debug)]
pub struct Slot {
    _permit: tokio::sync::OwnedSemaphorePermit,
    stats: Arc<ListenerStats>,
}

impl Slot {
    /// Takes a slot, or `None` when the listener is at its cap.
    pub fn take(cap: &Arc<tokio::sync::Semaphore>, stats: &Arc<ListenerStats>) -> Option<Slot> {
        let permit = cap.clone().try_acquire_owned().ok()?;
        stats.opened();
        Some(Slot {
            _permit: permit,
            stats: stats.clone(),
        })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.stats.closed();
    }
}

/// Where the connection's protocol is known from its first bytes.
#[derive(Debug, Clone, Copy)]
enum Sniff {
    /// This many bytes of the HTTP/2 preface seen so far.
    Undecided(usize),
    /// HTTP/1.x.
    Http1,
    /// HTTP/2.
    Http2,
}

/// A connection's stream (TCP or TLS) with activity tracking and a lingering close.
pub struct ConnIo<I>
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    io: Option<I>,
    activity: Arc<Activity>,
    sniff: Sniff,
    slot: Option<Slot>,
    refusals: Refusals,
    /// A rewritten refusal not written yet, and how much of it was.
    pending: Vec<u8>,
    pending_at: usize,
}

impl<I> ConnIo<I>
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    /// Wraps `io`, reporting to `activity`, answering hyper's refusals as
    /// `refusals` says; `slot` is released after lingering.
    pub fn new(io: I, activity: Arc<Activity>, slot: Slot, refusals: Refusals) -> ConnIo<I> {
        ConnIo {
            io: Some(io),
            activity,
            sniff: Sniff::Undecided(0),
            slot: Some(slot),
            refusals,
            pending: Vec::new(),
            pending_at: 0,
        }
    }

    /// Writes what is left of a rewritten refusal.
    fn poll_pending(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let io = self
            .io
            .as_mut()
            .ok_or_else(|| io::Error::from(io::ErrorKind::NotConnected))?;
        while self.pending_at < self.pending.len() {
            let n = std::task::ready!(
                Pin::new(&mut *io).poll_write(cx, &self.pending[self.pending_at..])
            )?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.pending_at += n;
        }
        self.pending.clear();
        self.pending_at = 0;
        Poll::Ready(Ok(()))
    }

    fn io(&mut self) -> io::Result<&mut I> {
        self.io
            .as_mut()
            .ok_or_else(|| io::Error::from(io::ErrorKind::NotConnected))
    }

    fn saw(&mut self, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        if let Sniff::Undecided(seen) = self.sniff {
            let want = &H2_PREFACE[seen..];
            let n = want.len().min(bytes.len());
            self.sniff = if bytes[..n] != want[..n] {
                Sniff::Http1
            } else if seen + n == H2_PREFACE.len() {
                self.activity.multiplexed();
                Sniff::Http2
            } else {
                Sniff::Undecided(seen + n)
            };
        }
        if !matches!(self.sniff, Sniff::Http2) {
            self.activity.read_bytes();
        }
    }
}

impl<I> AsyncRead for ConnIo<I>
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let res = Pin::new(this.io()?).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = res {
            if buf.filled().len() > before {
                this.saw(&buf.filled()[before..]);
            }
        }
        res
    }
}

impl<I> AsyncWrite for ConnIo<I>
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        std::task::ready!(this.poll_pending(cx))?;
        if !matches!(this.sniff, Sniff::Http2) {
            if let Some((start, answer)) = this.refusals.rewrite_tail(buf) {
                if start > 0 {
                    return Pin::new(this.io()?).poll_write(cx, &buf[..start]);
                }
                // Taken as written; flushing writes the answer instead.
                this.pending = answer;
                return Poll::Ready(Ok(buf.len()));
            }
        }
        Pin::new(this.io()?).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        std::task::ready!(this.poll_pending(cx))?;
        Pin::new(this.io()?).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.as_ref().is_some_and(I::is_write_vectored)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        std::task::ready!(this.poll_pending(cx))?;
        Pin::new(this.io()?).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        std::task::ready!(this.poll_pending(cx))?;
        Pin::new(this.io()?).poll_shutdown(cx)
    }
}

impl<I> Drop for ConnIo<I>
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    fn drop(&mut self) {
        let (Some(io), slot) = (self.io.take(), self.slot.take()) else {
            return;
        };
        let unwritten = self.pending.split_off(self.pending_at);
        // Outside a runtime (it is shutting down) the stream simply closes.
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                linger(io, unwritten).await;
                drop(slot);
            });
        }
    }
}

/// The lingering close: write what is left of an answer (`unwritten`), shut the
/// write side, then read and discard until the client closes, [`LINGER_BYTES`] were
/// read or [`LINGER_TIME`] passed.
pub async fn linger<I>(io: I, unwritten: Vec<u8>)
where
    I: AsyncRead + AsyncWrite + Unpin,
{
    linger_at_most(io, unwritten, LINGER_BYTES).await
}

/// [`linger`], discarding at most `max_bytes`.
pub async fn linger_at_most<I>(mut io: I, unwritten: Vec<u8>, max_bytes: usize)
where
    I: AsyncRead + AsyncWrite + Unpin,
{
    let _ = tokio::time::timeout(LINGER_TIME, async {
        if !unwritten.is_empty() {
            let _ = io.write_all(&unwritten).await;
        }
        // Already shut (hyper's graceful close) or failing: read what is left anyway.
        let _ = io.shutdown().await;
        let mut buf = vec![0u8; 16 * 1024];
        let mut discarded = 0;
        while discarded < max_bytes {
            match io.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => discarded += n,
            }
        }
    })
    .await;
}

//! Request and response bodies as the listener hands them over.
//!
//! [`RequestBody`]: the request's body with its deadline: past it, reading fails with
//! [`BodyTimeout`] and the connection is asked to close (a stalled body cannot hold a
//! request, or its in-flight slot, open).
//!
//! [`ResponseBody`]: the service's response body, which keeps the request's body
//! alive until the response is sent, however early the service dropped it. Dropping
//! an HTTP/2 request body before the response is sent resets the stream
//! (`RST_STREAM(CANCEL)`) and the client loses the answer (curl: "Stream error in the
//! HTTP/2 framing layer"). Then:
//! - HTTP/2: before an early answer goes out, the rest of the request body is read
//!   and discarded, up to [`DRAIN_BYTES`] and the body's deadline
//!   ([`Keeper::finish_request`]), so the client finishes sending before it sees the
//!   answer and the stream ends without a reset. Answering first resets a stream
//!   still receiving with `RST_STREAM(NO_ERROR)` (RFC 9113, 8.1), which curl reports as
//!   "Stream error in the HTTP/2 framing layer" about half the time; and a client that
//!   stops uploading when it sees an error status ends its body short of its
//!   content-length, which the h2 stack resets with `PROTOCOL_ERROR`, discarding the
//!   answer. Beyond the bounds the answer goes out and the stream is reset with
//!   `NO_ERROR`.
//! - HTTP/1.1: the rest of the request body is read and discarded after the response,
//!   within the same bounds, so the connection stays usable; beyond them it is closed
//!   (lingering, see [`super::io`]).

use std::{
    pin::Pin,
    sync::{Arc, Mutex, PoisonError},
    task::{Context, Poll},
};

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use tokio::time::{Instant, Sleep};

use super::{activity::Activity, stats::ListenerStats, stats::TimeoutKind};

/// Most bytes of a request body read and discarded after an early answer.
pub const DRAIN_BYTES: usize = 4 << 20;

/// Boxed error of the bodies.
type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The request body did not arrive before its deadline.
#[derive(Debug, thiserror::Error)]
#[error("request body not received within {} ms", .0.as_millis())]
pub struct BodyTimeout(pub std::time::Duration);

/// The request body, shared between the service and the response that outlives it.
type Shared = Arc<Mutex<Option<Incoming>>>;

fn lock(shared: &Shared) -> std::sync::MutexGuard<'_, Option<Incoming>> {
    shared.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A request body with a deadline (see the module documentation).
pub struct RequestBody {
    shared: Shared,
    deadline: Instant,
    timeout: std::time::Duration,
    sleep: Option<Pin<Box<Sleep>>>,
    activity: Arc<Activity>,
    stats: Arc<ListenerStats>,
    timed_out: bool,
}

impl RequestBody {
    /// `incoming`, due within `timeout` from now; returns the body and the keeper the
    /// response holds. `drain`: read the rest after the response (HTTP/1.1).
    pub(super) fn new(
        incoming: Incoming,
        timeout: std::time::Duration,
        drain: bool,
        activity: Arc<Activity>,
        stats: Arc<ListenerStats>,
    ) -> (RequestBody, Keeper) {
        let shared = Arc::new(Mutex::new(Some(incoming)));
        let deadline = Instant::now() + timeout;
        let keeper = Keeper {
            shared: shared.clone(),
            deadline,
            drain,
            held: 0,
            sleep: None,
        };
        let body = RequestBody {
            shared,
            deadline,
            timeout,
            sleep: None,
            activity,
            stats,
            timed_out: false,
        };
        (body, keeper)
    }
}

impl Body for RequestBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        if self.timed_out {
            return Poll::Ready(None);
        }
        {
            let mut guard = lock(&self.shared);
            let Some(incoming) = guard.as_mut() else {
                return Poll::Ready(None);
            };
            if let Poll::Ready(frame) = Pin::new(incoming).poll_frame(cx) {
                return Poll::Ready(frame.map(|r| r.map_err(Into::into)));
            }
        }
        let deadline = self.deadline;
        let sleep = self
            .sleep
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        if sleep.as_mut().poll(cx).is_pending() {
            return Poll::Pending;
        }
        self.timed_out = true;
        self.stats.count_timeout(TimeoutKind::Body);
        self.activity.close(TimeoutKind::Body);
        Poll::Ready(Some(Err(Box::new(BodyTimeout(self.timeout)))))
    }

    fn is_end_stream(&self) -> bool {
        self.timed_out || lock(&self.shared).as_ref().is_none_or(Body::is_end_stream)
    }

    fn size_hint(&self) -> SizeHint {
        lock(&self.shared)
            .as_ref()
            .map_or_else(|| SizeHint::with_exact(0), Body::size_hint)
    }
}

/// Holds a request's body until its response is sent, then drains it (see the module
/// documentation).
pub struct Keeper {
    shared: Shared,
    deadline: Instant,
    /// HTTP/1.1: drain after the response, on a task of its own.
    drain: bool,
    /// HTTP/2: what was read before the answer went out.
    held: usize,
    sleep: Option<Pin<Box<Sleep>>>,
}

impl Keeper {
    /// HTTP/2: reads and discards the rest of the request body before the answer goes
    /// out (see the module documentation); at once when it was read already.
    pub(super) async fn finish_request(&mut self) {
        if !self.drain {
            std::future::poll_fn(|cx| self.poll_request_end(cx)).await;
        }
    }

    /// Reads and discards the rest of the request body: ready at its end, after
    /// [`DRAIN_BYTES`], or at the deadline.
    fn poll_request_end(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        loop {
            if self.held >= DRAIN_BYTES {
                return Poll::Ready(());
            }
            let polled = {
                let mut guard = lock(&self.shared);
                let Some(incoming) = guard.as_mut() else {
                    return Poll::Ready(());
                };
                if incoming.is_end_stream() {
                    return Poll::Ready(());
                }
                Pin::new(incoming).poll_frame(cx)
            };
            match polled {
                Poll::Ready(Some(Ok(frame))) => {
                    self.held += frame.data_ref().map_or(0, Bytes::len);
                }
                Poll::Ready(Some(Err(_)) | None) => return Poll::Ready(()),
                Poll::Pending => {
                    let deadline = self.deadline;
                    let sleep = self
                        .sleep
                        .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
                    return sleep.as_mut().poll(cx);
                }
            }
        }
    }
}

impl Drop for Keeper {
    fn drop(&mut self) {
        let Some(incoming) = lock(&self.shared).take() else {
            return;
        };
        if !self.drain || incoming.is_end_stream() || Instant::now() >= self.deadline {
            return;
        }
        let deadline = self.deadline;
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(drain(incoming, deadline));
        }
    }
}

/// Reads and discards `incoming` until its end, [`DRAIN_BYTES`] or `deadline`.
async fn drain(mut incoming: Incoming, deadline: Instant) {
    let _ = tokio::time::timeout_at(deadline, async {
        let mut drained = 0usize;
        while drained < DRAIN_BYTES {
            match incoming.frame().await {
                Some(Ok(frame)) => {
                    drained += frame.data_ref().map_or(0, Bytes::len);
                }
                Some(Err(_)) | None => break,
            }
        }
    })
    .await;
}

/// A response body that keeps its request's body (see [`Keeper`]) until it is
/// dropped, after the response went out: the service's, or the listener's refusal.
pub struct ResponseBody<B> {
    inner: Inner<B>,
    _keeper: Keeper,
}

enum Inner<B> {
    Service(B),
    Refusal(http_body_util::Full<Bytes>),
}

impl<B> ResponseBody<B> {
    /// The service's body `inner`.
    pub(super) fn service(inner: B, keeper: Keeper) -> ResponseBody<B> {
        ResponseBody {
            inner: Inner::Service(inner),
            _keeper: keeper,
        }
    }

    /// The listener's refusal `body`.
    pub(super) fn refusal(body: http_body_util::Full<Bytes>, keeper: Keeper) -> ResponseBody<B> {
        ResponseBody {
            inner: Inner::Refusal(body),
            _keeper: keeper,
        }
    }
}

impl<B> Body for ResponseBody<B>
where
    B: Body<Data = Bytes> + Unpin,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        match &mut self.inner {
            Inner::Service(b) => Pin::new(b).poll_frame(cx),
            Inner::Refusal(full) => Pin::new(full)
                .poll_frame(cx)
                .map(|frame| frame.map(|r| r.map_err(|never| match never {}))),
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.inner {
            Inner::Service(b) => b.is_end_stream(),
            Inner::Refusal(full) => full.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.inner {
            Inner::Service(b) => b.size_hint(),
            Inner::Refusal(full) => full.size_hint(),
        }
    }
}

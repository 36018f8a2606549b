//! [`Activity`]: what one connection is doing (requests in progress, when it went
//! idle, when the client started sending the next request's headers), shared by the
//! connection's I/O, its requests and its watchdog; and [`Activity::expired`], the
//! watchdog that says when the connection has outstayed a timeout.

use std::sync::{Mutex, PoisonError};

use tokio::{sync::Notify, time::Instant};

use super::{limits::ListenerLimits, stats::TimeoutKind};

/// The shared state of one connection.
#[derive(Debug)]
pub struct Activity {
    state: Mutex<State>,
    changed: Notify,
}

#[derive(Debug)]
struct State {
    /// Requests handed to the service and not answered yet.
    in_flight: usize,
    /// When the last request was answered (or the connection started).
    idle_since: Instant,
    /// When the client started sending the next request's headers (the connection's
    /// start for the first request); `None` once they arrived.
    head_started: Option<Instant>,
    /// Reads no longer start a head (HTTP/2: frames other than requests arrive all
    /// the time).
    multiplexed: bool,
    /// A request asked for the connection to be closed (its body timed out).
    close: Option<TimeoutKind>,
}

impl Activity {
    /// A connection starting now: its first request's headers are awaited.
    pub fn new() -> Activity {
        let now = Instant::now();
        Activity {
            state: Mutex::new(State {
                in_flight: 0,
                idle_since: now,
                head_started: Some(now),
                multiplexed: false,
                close: None,
            }),
            changed: Notify::new(),
        }
    }

    fn with<R>(&self, f: impl FnOnce(&mut State) -> R) -> R {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        f(&mut state)
    }

    /// Bytes arrived from the client: with no request in progress, they start the
    /// next request's headers (HTTP/1.1).
    pub fn read_bytes(&self) {
        let started = self.with(|s| {
            if s.in_flight == 0 && s.head_started.is_none() && !s.multiplexed {
                s.head_started = Some(Instant::now());
                true
            } else {
                false
            }
        });
        if started {
            self.changed.notify_one();
        }
    }

    /// The connection speaks HTTP/2: only the first request has a header deadline.
    pub fn multiplexed(&self) {
        self.with(|s| s.multiplexed = true);
    }

    /// A request's headers arrived and it goes to the service; the connection is busy
    /// until the returned guard is dropped.
    pub fn request(self: &std::sync::Arc<Self>) -> InFlight {
        self.with(|s| {
            s.in_flight += 1;
            s.head_started = None;
        });
        self.changed.notify_one();
        InFlight(self.clone())
    }

    /// Asks for the connection to be closed once its current requests are answered.
    pub fn close(&self, why: TimeoutKind) {
        self.with(|s| {
            s.close.get_or_insert(why);
        });
        self.changed.notify_one();
    }

    /// Resolves when the connection must be closed, with why: a header or idle
    /// timeout per `limits`, or a request's [`Activity::close`].
    pub async fn expired(&self, limits: &ListenerLimits) -> TimeoutKind {
        loop {
            let next = self.with(|s| {
                if let Some(why) = s.close {
                    return Err(why);
                }
                Ok(match (s.in_flight, s.head_started) {
                    (0, Some(t)) => Some((t + limits.header_timeout, TimeoutKind::Header)),
                    (0, None) => Some((s.idle_since + limits.idle_timeout, TimeoutKind::Idle)),
                    _ => None,
                })
            });
            match next {
                Err(why) => return why,
                Ok(None) => self.changed.notified().await,
                Ok(Some((deadline, why))) => {
                    if Instant::now() >= deadline {
                        return why;
                    }
                    tokio::select! {
                        _ = tokio::time::sleep_until(deadline) => {}
                        _ = self.changed.notified() => {}
                    }
                }
            }
        }
    }
}

impl Default for Activity {
    fn default() -> Self {
        Activity::new()
    }
}

/// A request in progress on its connection (see [`Activity::request`]).
#[derive(Debug)]
pub struct InFlight(std::sync::Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.with(|s| {
            s.in_flight = s.in_flight.saturating_sub(1);
            if s.in_flight == 0 {
                s.idle_since = Instant::now();
            }
        });
        self.0.changed.notify_one();
    }
}

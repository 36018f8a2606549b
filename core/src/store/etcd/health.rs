//! Whether etcd answers, as seen by this node: [`Reachability`].
//!
//! A call that times out, or fails because etcd cannot be reached (connection refused
//! or reset, gRPC `Unavailable`), marks etcd **down**: a warning is logged once, and
//! from then on every call fails at once with [`StoreError::Backend`] instead of waiting
//! for its deadline, so that nothing on a request path (a key source revalidating a
//! cached key, the `/metrics` scrape, an admin request) hangs on a dead or cut-off etcd.
//! The follower keeps trying meanwhile (it is the probe): its first successful read marks
//! etcd **up** again (logged once, with how long it was down), and it catches up with
//! every transaction committed meanwhile. A successful call marks it up too.

use std::{
    sync::{
        Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::Instant,
};

use super::super::{StoreError, lock};

/// How every message of an etcd that cannot be reached ends: the call was not carried
/// out (a commit whose transaction was sent says otherwise, see `EtcdStore::commit`).
pub const NOTHING_CHANGED: &str = "; nothing was changed";

/// Whether etcd answers; see the module docs.
pub struct Reachability {
    up: AtomicBool,
    /// The client URLs, for messages.
    endpoints: String,
    /// Since when it is down, and the error that said so.
    down: Mutex<Option<(Instant, String)>>,
}

impl Reachability {
    /// Up, for a store that just connected to `endpoints`.
    pub fn new(endpoints: &[String]) -> Reachability {
        Reachability {
            up: AtomicBool::new(true),
            endpoints: endpoints.join(","),
            down: Mutex::new(None),
        }
    }

    /// Whether etcd answered the last call.
    pub fn is_up(&self) -> bool {
        self.up.load(Ordering::SeqCst)
    }

    /// `Ok` while up; else the error a call gets without trying.
    pub fn check(&self) -> Result<(), StoreError> {
        if self.is_up() {
            return Ok(());
        }
        let (since, why) = lock(&self.down)
            .clone()
            .unwrap_or_else(|| (Instant::now(), "unknown".into()));
        Err(StoreError::Backend {
            backend: "etcd",
            message: format!(
                "etcd at {} has been unreachable for {} s (last error: {why}; the node reconnects by itself when it is back){NOTHING_CHANGED}",
                self.endpoints,
                since.elapsed().as_secs()
            ),
        })
    }

    /// Marks etcd up; logs once when it was down.
    pub fn mark_up(&self) {
        if self.up.swap(true, Ordering::SeqCst) {
            return;
        }
        let was = lock(&self.down).take();
        let secs = was.map_or(0, |(since, _)| since.elapsed().as_secs());
        tracing::info!(
            endpoints = %self.endpoints,
            down_seconds = secs,
            "etcd is reachable again: admin changes are accepted and the node catches up with every change made meanwhile"
        );
    }

    /// Marks etcd down because of `why`; logs a warning once.
    pub fn mark_down(&self, why: &str) {
        if !self.up.swap(false, Ordering::SeqCst) {
            return;
        }
        *lock(&self.down) = Some((Instant::now(), why.to_string()));
        tracing::warn!(
            endpoints = %self.endpoints,
            "etcd is unreachable ({why}): the data plane serves from its last snapshot; admin changes are refused (503 store_unavailable) until it is back"
        );
    }

    /// The error of a failed etcd call (marking etcd down when it means that).
    pub fn failed(&self, e: etcd_client::Error) -> StoreError {
        if super::retry::is_unavailable(&e) {
            self.mark_down(&e.to_string());
            StoreError::Backend {
                backend: "etcd",
                message: format!(
                    "etcd at {} is unreachable ({e}){NOTHING_CHANGED}",
                    self.endpoints
                ),
            }
        } else {
            StoreError::Backend {
                backend: "etcd",
                message: e.to_string(),
            }
        }
    }

    /// The error of a call that got no answer within `timeout_ms` (marking etcd down).
    pub fn timed_out(&self, timeout_ms: u128) -> StoreError {
        let why = format!("no answer within {timeout_ms} ms");
        self.mark_down(&why);
        StoreError::Backend {
            backend: "etcd",
            message: format!(
                "etcd at {} did not answer within {timeout_ms} ms{NOTHING_CHANGED}",
                self.endpoints
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn down_fails_fast_until_up_again() {
        let r = Reachability::new(&["http://a:1".into(), "http://b:2".into()]);
        assert!(r.is_up() && r.check().is_ok());
        let refused = etcd_client::Error::IoError(std::io::Error::new(
            std::io::ErrorKind::ConnectionRefused,
            "connect",
        ));
        let err = r.failed(refused).to_string();
        assert!(
            err.contains("http://a:1,http://b:2") && err.contains("unreachable"),
            "{err}"
        );
        assert!(!r.is_up());
        let fast = r.check().unwrap_err().to_string();
        assert!(
            fast.contains("has been unreachable") && fast.contains("connect"),
            "{fast}"
        );
        assert!(fast.ends_with(NOTHING_CHANGED), "{fast}");
        r.mark_up();
        assert!(r.check().is_ok());
        // A refusal by a reachable etcd is not an outage.
        let refusal = etcd_client::Error::InvalidArgs("too many ops".into());
        assert!(!super::super::retry::is_unavailable(&refusal));
        r.failed(refusal);
        assert!(r.is_up());
        r.timed_out(5000);
        assert!(
            r.check()
                .unwrap_err()
                .to_string()
                .contains("no answer within 5000 ms")
        );
    }
}

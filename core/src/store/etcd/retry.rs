//! Failing over between etcd members: the client balances its calls over every
//! configured endpoint, but a call that lands on a member that just died (or is cut off
//! from the leader) fails; it is tried again, on whichever member answers, until the
//! store's call deadline.

use std::time::{Duration, Instant};

/// First pause before another try; doubled each time up to [`MAX_PAUSE`].
const FIRST_PAUSE: Duration = Duration::from_millis(5);
/// Longest pause between tries.
const MAX_PAUSE: Duration = Duration::from_millis(200);

/// How long one try may take: a fraction of the whole call's deadline, so that a call
/// stuck on a member that lost its leader (it waits for one that is gone) is given up
/// and tried again while there is time left; at least 500 ms (a slow disk's commit),
/// at most 2 s, never more than the whole deadline.
pub fn attempt_timeout(timeout: Duration) -> Duration {
    (timeout / 4)
        .clamp(Duration::from_millis(500), Duration::from_secs(2))
        .min(timeout)
}

/// Whether `e` says the member could not be reached or could not serve the call now
/// (connection refused or reset, no leader, leader changed, timed out), so that another
/// member, or the same one a moment later, may answer it.
pub fn is_unavailable(e: &etcd_client::Error) -> bool {
    match e {
        etcd_client::Error::TransportError(_) | etcd_client::Error::IoError(_) => true,
        etcd_client::Error::GRpcStatus(status) => retryable_code(status.code() as i32),
        _ => false,
    }
}

/// The gRPC status codes another try may fix: CANCELLED (1, a connection that went
/// away), UNKNOWN (2, a transport failure), DEADLINE_EXCEEDED (4), UNAVAILABLE (14: no
/// connection, no leader, leader changed, request timed out in raft).
fn retryable_code(code: i32) -> bool {
    matches!(code, 1 | 2 | 4 | 14)
}

/// The pauses between tries: growing, and never past `deadline`.
pub struct Backoff {
    pause: Duration,
    deadline: Instant,
}

impl Backoff {
    /// Tries until `deadline`.
    pub fn until(deadline: Instant) -> Backoff {
        Backoff {
            pause: FIRST_PAUSE,
            deadline,
        }
    }

    /// The next pause, or `None` when it would end past the deadline.
    pub fn next_pause(&mut self) -> Option<Duration> {
        self.next_pause_at(Instant::now())
    }

    fn next_pause_at(&mut self, now: Instant) -> Option<Duration> {
        let pause = self.pause;
        if now + pause >= self.deadline {
            return None;
        }
        self.pause = (self.pause * 2).min(MAX_PAUSE);
        Some(pause)
    }
}

/// How long a member's TCP port may take to accept a connection in [`Members::any_accepts`].
const PROBE_TIMEOUT: Duration = Duration::from_millis(150);

/// The members' addresses (`host:port` of each client URL), to tell a member that
/// failed a call (another may answer: try again) from an etcd that nobody can reach
/// (fail now: waiting for the deadline would only stall the callers).
#[derive(Debug, Clone)]
pub struct Members {
    addrs: Vec<String>,
}

impl Members {
    /// The members at `endpoints` (`http://host:port`, `https://host:port/`, `host:port`).
    pub fn new(endpoints: &[String]) -> Members {
        let addrs = endpoints
            .iter()
            .map(|url| {
                let rest = url.split_once("://").map_or(url.as_str(), |(_, r)| r);
                rest.split('/').next().unwrap_or(rest).to_string()
            })
            .collect();
        Members { addrs }
    }

    /// Whether any member accepts a TCP connection within [`PROBE_TIMEOUT`] (all are
    /// tried at once).
    pub async fn any_accepts(&self) -> bool {
        let mut probes = tokio::task::JoinSet::new();
        for addr in self.addrs.clone() {
            probes.spawn(async move {
                matches!(
                    tokio::time::timeout(PROBE_TIMEOUT, tokio::net::TcpStream::connect(addr)).await,
                    Ok(Ok(_))
                )
            });
        }
        while let Some(accepted) = probes.join_next().await {
            if accepted.unwrap_or(false) {
                return true;
            }
        }
        false
    }
}

/// Runs `op` (one etcd call, made afresh each time) until it succeeds, fails for a
/// reason another try cannot fix, no member of `members` accepts connections any more,
/// or `timeout` has passed; returns the last outcome. Only for calls that may be
/// repeated: reads (a transaction's retry is decided by its caller, which knows whether
/// it may have applied).
pub async fn retrying<T, F, Fut>(
    timeout: Duration,
    members: &Members,
    mut op: F,
) -> Result<T, etcd_client::Error>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, etcd_client::Error>>,
{
    let mut backoff = Backoff::until(Instant::now() + timeout);
    loop {
        match op().await {
            Err(e) if is_unavailable(&e) => {
                // No member accepts connections: etcd is unreachable, fail now.
                let pause = if members.any_accepts().await {
                    backoff.next_pause()
                } else {
                    None
                };
                match pause {
                    Some(pause) => {
                        tracing::debug!("etcd call failed ({e}); trying again");
                        tokio::time::sleep(pause).await;
                    }
                    None => return Err(e),
                }
            }
            other => return other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn members_are_probed_by_their_host_and_port() {
        let m = Members::new(&[
            "http://127.0.0.1:2379".into(),
            "https://etcd-2.example:2379/".into(),
            "10.0.0.3:2379".into(),
        ]);
        assert_eq!(
            m.addrs,
            ["127.0.0.1:2379", "etcd-2.example:2379", "10.0.0.3:2379"]
        );
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let open = listener.local_addr().expect("addr").to_string();
        let closed = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
            l.local_addr().expect("addr").to_string()
        };
        let both = Members::new(&[format!("http://{closed}"), format!("http://{open}")]);
        assert!(rt.block_on(both.any_accepts()), "one member accepts");
        let none = Members::new(&[format!("http://{closed}")]);
        assert!(!rt.block_on(none.any_accepts()), "nobody accepts");
    }

    #[test]
    fn unavailable_members_are_retried_other_errors_are_not() {
        // UNAVAILABLE, UNKNOWN, CANCELLED, DEADLINE_EXCEEDED: yes.
        for code in [14, 2, 1, 4] {
            assert!(retryable_code(code), "{code}");
        }
        // INVALID_ARGUMENT, NOT_FOUND, FAILED_PRECONDITION, PERMISSION_DENIED,
        // RESOURCE_EXHAUSTED (e.g. request too large), UNAUTHENTICATED: no.
        for code in [3, 5, 9, 7, 8, 16] {
            assert!(!retryable_code(code), "{code}");
        }
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        assert!(is_unavailable(&etcd_client::Error::IoError(io)));
        assert!(!is_unavailable(&etcd_client::Error::InvalidArgs(
            "x".into()
        )));
    }

    #[test]
    fn a_try_takes_a_fraction_of_the_deadline() {
        let ms = |n| Duration::from_millis(n);
        assert_eq!(attempt_timeout(ms(5000)), ms(1250));
        assert_eq!(attempt_timeout(ms(1000)), ms(500));
        assert_eq!(attempt_timeout(ms(200)), ms(200));
        assert_eq!(attempt_timeout(ms(60_000)), ms(2000));
    }

    #[test]
    fn backoff_grows_and_stops_at_the_deadline() {
        let start = Instant::now();
        let mut b = Backoff::until(start + Duration::from_millis(100));
        let mut now = start;
        let mut pauses = Vec::new();
        while let Some(p) = b.next_pause_at(now) {
            pauses.push(p.as_millis());
            now += p;
        }
        assert_eq!(pauses, [5, 10, 20, 40]);
        let mut b = Backoff::until(start + Duration::from_secs(5));
        let longest = (0..20).filter_map(|_| b.next_pause_at(start)).max();
        assert_eq!(longest, Some(MAX_PAUSE));
    }
}

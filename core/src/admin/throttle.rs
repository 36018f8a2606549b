//! Login throttling, kept in memory on each node: per-user and per-client-address
//! backoff after failed logins, and the small bounded pool password checks wait for.
//!
//! After [`USER_FAILURES`] failed logins for a user name (or [`ADDRESS_FAILURES`] from
//! one client address) with no more than [`WINDOW`] between them, further attempts are
//! refused without checking the password for [`FIRST_LOCK`], doubling with each
//! failure after that up to [`MAX_LOCK`]. A successful login resets its user's count.
//! Each table holds at most [`MAX_KEYS`] entries: beyond that, stale entries go first,
//! then the oldest.
//!
//! Password hashing (argon2, deliberately slow) runs on the blocking pool, which HSM
//! calls share: at most [`HASH_PERMITS`] logins hash at a time, at most
//! [`MAX_WAITING`] more wait, and any beyond that are refused at once as busy.

use std::{
    collections::HashMap,
    hash::Hash,
    net::IpAddr,
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Failed logins for one user name before its attempts are refused for a while.
pub const USER_FAILURES: u32 = 5;
/// Failed logins from one client address before its attempts are refused for a while
/// (higher than per user: one address may serve several people).
pub const ADDRESS_FAILURES: u32 = 20;
/// How long a count of failures is remembered after the last failure.
pub const WINDOW: Duration = Duration::from_secs(15 * 60);
/// The first refusal period; each further failure doubles it.
pub const FIRST_LOCK: Duration = Duration::from_secs(30);
/// The longest refusal period.
pub const MAX_LOCK: Duration = Duration::from_secs(15 * 60);
/// The most user names (and, separately, addresses) remembered.
pub const MAX_KEYS: usize = 10_000;
/// Password checks running at once.
pub const HASH_PERMITS: usize = 2;
/// Logins waiting for a password check beyond those running; more are refused busy.
pub const MAX_WAITING: usize = 32;

#[derive(Debug, Clone, Copy)]
struct Entry {
    failures: u32,
    last: Instant,
    locked_until: Option<Instant>,
}

/// Failure counts by key (a user name or an address), bounded.
#[derive(Debug)]
struct Table<K> {
    limit: u32,
    entries: HashMap<K, Entry>,
}

impl<K: Hash + Eq + Clone> Table<K> {
    fn new(limit: u32) -> Table<K> {
        Table {
            limit,
            entries: HashMap::new(),
        }
    }

    /// How long `key` is still refused at `now`.
    fn locked(&self, key: &K, now: Instant) -> Option<Duration> {
        let until = self.entries.get(key)?.locked_until?;
        (until > now).then(|| until - now)
    }

    /// Counts a failure; returns the refusal period when one starts.
    fn fail(&mut self, key: &K, now: Instant) -> Option<Duration> {
        if !self.entries.contains_key(key) {
            self.make_room(now);
        }
        let e = self.entries.entry(key.clone()).or_insert(Entry {
            failures: 0,
            last: now,
            locked_until: None,
        });
        if now.duration_since(e.last) > WINDOW {
            e.failures = 0;
        }
        e.failures = e.failures.saturating_add(1);
        e.last = now;
        if e.failures < self.limit {
            return None;
        }
        let doublings = (e.failures - self.limit).min(16);
        let lock = FIRST_LOCK.saturating_mul(1 << doublings).min(MAX_LOCK);
        e.locked_until = Some(now + lock);
        Some(lock)
    }

    fn reset(&mut self, key: &K) {
        self.entries.remove(key);
    }

    /// Keeps the table below [`MAX_KEYS`]: drops entries neither locked nor recent,
    /// then, if still full, the one whose last failure is oldest.
    fn make_room(&mut self, now: Instant) {
        if self.entries.len() < MAX_KEYS {
            return;
        }
        self.entries.retain(|_, e| {
            e.locked_until.is_some_and(|t| t > now) || now.duration_since(e.last) <= WINDOW
        });
        while self.entries.len() >= MAX_KEYS {
            let Some(oldest) = self
                .entries
                .iter()
                .min_by_key(|(_, e)| e.last)
                .map(|(k, _)| k.clone())
            else {
                break;
            };
            self.entries.remove(&oldest);
        }
    }
}

/// Why a login is refused before its password is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Too many failures for the user or the address: retry after this long.
    TooManyAttempts(Duration),
    /// Too many logins waiting for a password check.
    Busy,
}

/// The login throttle of one node.
#[derive(Debug)]
pub struct LoginThrottle {
    users: Mutex<Table<String>>,
    addresses: Mutex<Table<IpAddr>>,
    hashing: Arc<Semaphore>,
    waiting: AtomicUsize,
}

impl Default for LoginThrottle {
    fn default() -> Self {
        LoginThrottle {
            users: Mutex::new(Table::new(USER_FAILURES)),
            addresses: Mutex::new(Table::new(ADDRESS_FAILURES)),
            hashing: Arc::new(Semaphore::new(HASH_PERMITS)),
            waiting: AtomicUsize::new(0),
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic while holding the lock leaves counts that are still usable.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl LoginThrottle {
    /// Whether a login for `user` from `address` may go ahead now.
    pub fn check(&self, user: &str, address: Option<IpAddr>) -> Result<(), Refusal> {
        let now = Instant::now();
        let by_user = lock(&self.users).locked(&user.to_string(), now);
        let by_address = address.and_then(|a| lock(&self.addresses).locked(&a, now));
        match by_user.max(by_address) {
            Some(d) => Err(Refusal::TooManyAttempts(d)),
            None => Ok(()),
        }
    }

    /// Waits for a password-check slot; refused at once when too many wait already.
    pub async fn hashing_slot(&self) -> Result<OwnedSemaphorePermit, Refusal> {
        if let Ok(permit) = self.hashing.clone().try_acquire_owned() {
            return Ok(permit);
        }
        if self.waiting.fetch_add(1, Ordering::SeqCst) >= MAX_WAITING {
            self.waiting.fetch_sub(1, Ordering::SeqCst);
            return Err(Refusal::Busy);
        }
        let permit = self.hashing.clone().acquire_owned().await;
        self.waiting.fetch_sub(1, Ordering::SeqCst);
        permit.map_err(|_| Refusal::Busy)
    }

    /// Counts a failed login; returns the refusal period when one starts for the user
    /// or the address.
    pub fn failed(&self, user: &str, address: Option<IpAddr>) -> Option<Duration> {
        let now = Instant::now();
        let by_user = lock(&self.users).fail(&user.to_string(), now);
        let by_address = address.and_then(|a| lock(&self.addresses).fail(&a, now));
        by_user.max(by_address)
    }

    /// A successful login: the user's count starts again.
    pub fn succeeded(&self, user: &str) {
        lock(&self.users).reset(&user.to_string());
    }
}

#[cfg(test)]
mod tests;

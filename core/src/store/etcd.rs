//! The clustered backend: the [`Store`] on etcd, so that every node of a cluster sees
//! the same state and the same ordered feed of transactions.
//!
//! Layout under the configured prefix (see [`codec::Layout`]):
//! - `rev`: the store revision, raised by exactly one by every transaction;
//! - `d/<key>`: each entry, its value prefixed with the store revision that wrote it;
//! - `log/<revision>`: each transaction as watchers see it (every write, in order),
//!   the last [`LOG_RETAIN`] kept.
//!
//! A commit is ONE etcd transaction: it compares the revision counter (so concurrent
//! committers on other nodes serialize; the loser retries) and the caller's conditions,
//! then writes the entries, the counter and the log record. Nodes follow the log: an
//! etcd watch on `log/`, resumed from the last delivered revision after any break by
//! reading the log records it missed. Should those be gone (a node cut off for more than
//! [`LOG_RETAIN`] transactions), the node delivers one synthetic transaction that turns
//! what its subscribers know into the current state (every current entry, and the
//! deletion of every key that disappeared): nothing is ever missed.
//!
//! The trait is synchronous; etcd's client is async. Calls run on the store's own small
//! runtime and the caller's thread waits for the answer (like a local disk write), with
//! a deadline: an etcd that does not answer is a [`StoreError::Backend`], and from then
//! on calls fail at once until the follower reaches etcd again ([`health`]). A commit
//! larger than etcd takes is refused before it is sent ([`limits`]).
//!
//! The client balances calls over every configured endpoint. A call that fails because
//! its member died or lost the leader is tried again (on whichever member answers) until
//! the deadline; a transaction whose answer was lost that way is known to have applied
//! or not by its log record (see [`EtcdStore::commit`]), so it is never applied twice.
//! Only when no member answers within the deadline is etcd marked unreachable.

mod codec;
mod follower;
mod health;
mod limits;
mod retry;

use std::{
    collections::BTreeSet,
    path::PathBuf,
    sync::{Arc, Mutex},
    time::Duration,
};

use etcd_client::{Client, Compare, CompareOp, ConnectOptions, GetOptions, Txn, TxnOp};
use tokio::sync::broadcast;

use self::codec::Layout;
use self::health::Reachability;
use super::{
    Change, CommitLimits, Condition, Entry, Store, StoreError, WATCH_CAPACITY, WatchEvent, Write,
    lock,
};

/// How many transactions' log records are kept for nodes catching up.
pub const LOG_RETAIN: u64 = 10_000;

/// Most commit attempts when other nodes keep committing first.
const MAX_ATTEMPTS: u32 = 256;

/// Records per page when reading ranges.
const PAGE: i64 = 256;

/// How to reach etcd.
#[derive(Debug, Clone)]
pub struct EtcdSettings {
    /// Client URLs, e.g. `http://127.0.0.1:2379`.
    pub endpoints: Vec<String>,
    /// Prefix of every key this store writes (e.g. `keyhold/`): several clusters may
    /// share one etcd.
    pub prefix: String,
    /// User name and password, when etcd has authentication on.
    pub user: Option<(String, String)>,
    /// TLS to etcd.
    pub tls: Option<EtcdTls>,
    /// Deadline of each etcd call.
    pub timeout: Duration,
    /// How many transactions' log records are kept for nodes catching up (default
    /// [`LOG_RETAIN`]).
    pub log_retain: u64,
}

/// TLS to etcd: the CA that signed its certificate, and an optional client identity.
#[derive(Debug, Clone)]
pub struct EtcdTls {
    /// PEM CA bundle.
    pub ca_file: PathBuf,
    /// PEM client certificate (with `key_file`).
    pub cert_file: Option<PathBuf>,
    /// PEM client key.
    pub key_file: Option<PathBuf>,
}

/// What the feed has delivered.
struct Feed {
    /// The last revision delivered to subscribers.
    last: u64,
    /// Every store key subscribers know to exist (to turn a resync into deletions).
    known: BTreeSet<String>,
    tx: broadcast::Sender<Arc<WatchEvent>>,
}

impl Feed {
    /// Delivers `events` in revision order from `last + 1`, skipping those already
    /// delivered; stops at a gap. Returns whether it reached `upto`.
    fn deliver(&mut self, events: impl IntoIterator<Item = Arc<WatchEvent>>, upto: u64) -> bool {
        for event in events {
            if event.revision <= self.last {
                continue;
            }
            if event.revision != self.last + 1 {
                break;
            }
            for change in &event.changes {
                match change.value {
                    Some(_) => self.known.insert(change.key.clone()),
                    None => self.known.remove(&change.key),
                };
            }
            self.last = event.revision;
            let _ = self.tx.send(event);
        }
        self.last >= upto
    }
}

struct Inner {
    client: Client,
    layout: Layout,
    timeout: Duration,
    log_retain: u64,
    feed: Mutex<Feed>,
    /// Whether etcd answers (calls fail at once while it does not).
    health: Reachability,
    /// The members' addresses, probed when a call fails.
    members: retry::Members,
    /// Tests: stop following the log (to make this node miss transactions).
    #[cfg(test)]
    paused: std::sync::atomic::AtomicBool,
}

/// The [`Store`] on etcd.
pub struct EtcdStore {
    inner: Arc<Inner>,
    /// Dropped after `inner`: stopping the runtime ends the follower, which may hold
    /// the last reference to `inner`.
    runtime: OwnRuntime,
}

/// The store's own runtime, shut down without waiting when the store goes (a runtime
/// cannot be dropped inside another one's context, and the store may be opened and
/// dropped by an async caller).
struct OwnRuntime(Option<tokio::runtime::Runtime>);

impl OwnRuntime {
    fn get(&self) -> &tokio::runtime::Runtime {
        self.0
            .as_ref()
            .unwrap_or_else(|| unreachable!("the runtime lives until drop"))
    }
}

impl Drop for OwnRuntime {
    fn drop(&mut self) {
        if let Some(rt) = self.0.take() {
            rt.shutdown_background();
        }
    }
}

fn backend(message: impl std::fmt::Display) -> StoreError {
    StoreError::Backend {
        backend: "etcd",
        message: message.to_string(),
    }
}

fn corrupt(key: &[u8], message: &str) -> StoreError {
    StoreError::Corrupt {
        key: String::from_utf8_lossy(key).into_owned(),
        message: message.to_string(),
    }
}

/// The smallest key after every key starting with `prefix`.
fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0]
}

impl EtcdStore {
    /// Connects to etcd and starts following the transaction log.
    pub fn open(settings: &EtcdSettings) -> Result<EtcdStore, StoreError> {
        let runtime = OwnRuntime(Some(
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .thread_name("keyhold-etcd")
                .enable_all()
                .build()
                .map_err(|e| backend(format!("cannot start the etcd client runtime: {e}")))?,
        ));
        let options = connect_options(settings)?;
        let endpoints = settings.endpoints.clone();
        let client = wait(runtime.get(), settings.timeout, async move {
            Client::connect(endpoints, Some(options)).await
        })?
        .map_err(|e| backend(format!("cannot connect to {:?}: {e}", settings.endpoints)))?;
        let (tx, _) = broadcast::channel(WATCH_CAPACITY);
        let inner = Arc::new(Inner {
            client,
            layout: Layout::new(&settings.prefix),
            timeout: settings.timeout,
            log_retain: settings.log_retain.max(1),
            health: Reachability::new(&settings.endpoints),
            members: retry::Members::new(&settings.endpoints),
            #[cfg(test)]
            paused: std::sync::atomic::AtomicBool::new(false),
            feed: Mutex::new(Feed {
                last: 0,
                known: BTreeSet::new(),
                tx,
            }),
        });
        let store = EtcdStore { inner, runtime };
        // Start from the current state: the revision and every key that exists.
        let revision = store.revision()?;
        let known = store.known_keys()?;
        {
            let mut feed = lock(&store.inner.feed);
            feed.last = revision;
            feed.known = known;
        }
        let follower = Arc::downgrade(&store.inner);
        store.runtime().spawn(follower::follow(follower));
        Ok(store)
    }

    fn runtime(&self) -> &tokio::runtime::Runtime {
        self.runtime.get()
    }

    /// Runs the call `op` makes on the store's runtime and waits for it, trying again
    /// while members are unavailable, at most the call deadline; fails at once while etcd
    /// is known to be unreachable. Only for calls that may be repeated (reads).
    fn call<T, F, Fut>(&self, op: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnMut() -> Fut + Send + 'static,
        Fut: Future<Output = Result<T, etcd_client::Error>> + Send + 'static,
    {
        self.inner.health.check()?;
        let timeout = self.inner.timeout;
        let members = self.inner.members.clone();
        self.observed(wait(self.runtime(), timeout, async move {
            retry::retrying(timeout, &members, op).await
        }))
    }

    /// The outcome of a call, marking etcd up when it answered and down when no member
    /// could be reached.
    fn observed<T>(
        &self,
        outcome: Result<Result<T, etcd_client::Error>, StoreError>,
    ) -> Result<T, StoreError> {
        let health = &self.inner.health;
        match outcome {
            Ok(Ok(value)) => {
                health.mark_up();
                Ok(value)
            }
            Ok(Err(e)) => Err(health.failed(e)),
            Err(StoreError::Backend { message, .. }) if message.starts_with(NO_ANSWER) => {
                Err(health.timed_out(self.inner.timeout.as_millis()))
            }
            Err(e) => Err(e),
        }
    }

    fn client(&self) -> Client {
        self.inner.client.clone()
    }

    /// The raw etcd entry of `key`.
    fn get_raw(&self, key: Vec<u8>) -> Result<Option<etcd_client::KeyValue>, StoreError> {
        let client = self.client();
        let mut resp = self.call(move || {
            let (mut client, key) = (client.clone(), key.clone());
            async move { client.get(key, None).await }
        })?;
        Ok(resp.take_kvs().into_iter().next())
    }

    /// The current store revision and the counter's etcd mod revision (0: absent).
    fn counter(&self) -> Result<(u64, i64), StoreError> {
        let key = self.inner.layout.revision();
        match self.get_raw(key.clone())? {
            None => Ok((0, 0)),
            Some(kv) => {
                let n = std::str::from_utf8(kv.value())
                    .ok()
                    .and_then(|v| v.parse::<u64>().ok())
                    .ok_or_else(|| corrupt(&key, "the revision counter is not a number"))?;
                Ok((n, kv.mod_revision()))
            }
        }
    }

    /// Every etcd entry in `[from, to)`, in key order, read page by page.
    fn range(&self, from: Vec<u8>, to: Vec<u8>) -> Result<Vec<etcd_client::KeyValue>, StoreError> {
        let client = self.client();
        self.call(move || range_async(client.clone(), from.clone(), to.clone(), false))
    }

    /// Every store key that exists (names only: values are not read).
    fn known_keys(&self) -> Result<BTreeSet<String>, StoreError> {
        let layout = self.inner.layout.clone();
        let client = self.client();
        let (from, to) = (layout.data(""), prefix_end(&layout.data("")));
        let kvs = self.call(move || range_async(client.clone(), from.clone(), to.clone(), true))?;
        Ok(kvs
            .iter()
            .filter_map(|kv| layout.data_key(kv.key()).map(str::to_string))
            .collect())
    }

    /// The compare for `condition` and the failure it means: `None` when the condition
    /// is known to fail already.
    fn compare(&self, condition: &Condition) -> Result<Option<Compare>, StoreError> {
        let key = self.inner.layout.data(condition.key());
        Ok(Some(match condition {
            Condition::Absent(_) => Compare::version(key, CompareOp::Equal, 0),
            Condition::Exists(_) => Compare::version(key, CompareOp::Greater, 0),
            Condition::Revision(_, revision) => {
                let Some(kv) = self.get_raw(key.clone())? else {
                    return Ok(None);
                };
                let (current, _) = codec::decode_value(kv.value())
                    .ok_or_else(|| corrupt(&key, "entry without its revision"))?;
                if current != *revision {
                    return Ok(None);
                }
                Compare::mod_revision(key, CompareOp::Equal, kv.mod_revision())
            }
        }))
    }

    /// The first condition that does not hold now (for the conflict's key).
    fn first_failing(&self, conditions: &[Condition]) -> Result<Option<String>, StoreError> {
        for condition in conditions {
            let current = self.get(condition.key())?.map(|e| e.revision);
            if !condition.holds(current) {
                return Ok(Some(condition.key().to_string()));
            }
        }
        Ok(None)
    }

    /// The attempts of [`Store::commit`] (see there); `unknown` is the attempt whose
    /// answer was lost, if any.
    fn commit_attempts(
        &self,
        conditions: &[Condition],
        writes: Vec<Write>,
        unknown: &mut Option<(u64, Vec<u8>)>,
    ) -> Result<u64, StoreError> {
        let layout = &self.inner.layout;
        let deadline = std::time::Instant::now() + self.inner.timeout;
        let mut backoff = retry::Backoff::until(deadline);
        let changes: Vec<Change> = writes.iter().cloned().map(Write::into_change).collect();
        for attempt in 0..MAX_ATTEMPTS {
            let (current, counter_rev) = self.counter()?;
            if let Some((revision, record)) = unknown.take_if(|(rev, _)| current >= *rev) {
                let applied = self
                    .get_raw(layout.log(revision))?
                    .is_some_and(|kv| kv.value() == record.as_slice());
                if applied {
                    // Byte for byte the same transaction at the revision it had to take:
                    // this attempt's (or, should another node have committed the very
                    // same writes against the same counter, one with the same effect).
                    tracing::info!(revision, "an etcd commit whose answer was lost applied");
                    self.deliver_through(Arc::new(WatchEvent { revision, changes }))?;
                    return Ok(revision);
                }
            }
            let mut compares = vec![match counter_rev {
                0 => Compare::version(layout.revision(), CompareOp::Equal, 0),
                rev => Compare::mod_revision(layout.revision(), CompareOp::Equal, rev),
            }];
            for condition in conditions {
                match self.compare(condition)? {
                    Some(c) => compares.push(c),
                    None => {
                        return Err(StoreError::Conflict {
                            key: condition.key().to_string(),
                        });
                    }
                }
            }
            let next = current + 1;
            let mut ops = Vec::new();
            let mut record = Vec::new();
            if !writes.is_empty() {
                // etcd refuses a key twice in one transaction: the last write wins.
                let mut seen = BTreeSet::new();
                for write in writes.iter().rev() {
                    if !seen.insert(write.key()) {
                        continue;
                    }
                    ops.push(match write {
                        Write::Put(key, value) => {
                            TxnOp::put(layout.data(key), codec::encode_value(next, value), None)
                        }
                        Write::Delete(key) => TxnOp::delete(layout.data(key), None),
                    });
                }
                record = codec::encode_event(&WatchEvent {
                    revision: next,
                    changes: changes.clone(),
                });
                ops.push(TxnOp::put(layout.revision(), next.to_string(), None));
                ops.push(TxnOp::put(layout.log(next), record.clone(), None));
                let retain = self.inner.log_retain;
                if next > retain {
                    ops.push(TxnOp::delete(layout.log(next - retain), None));
                }
            }
            let txn = Txn::new().when(compares).and_then(ops);
            let mut client = self.client();
            let resp = match wait(self.runtime(), self.inner.timeout, async move {
                client.txn(txn).await
            }) {
                Ok(Err(e)) if retry::is_unavailable(&e) => {
                    if !writes.is_empty() {
                        *unknown = Some((next, record));
                    }
                    let members = self.inner.members.clone();
                    let pause = match wait(self.runtime(), self.inner.timeout, async move {
                        members.any_accepts().await
                    }) {
                        Ok(true) => backoff.next_pause(),
                        _ => None,
                    };
                    match pause {
                        Some(pause) => {
                            tracing::debug!("etcd commit failed ({e}); trying again");
                            std::thread::sleep(pause);
                            continue;
                        }
                        None => return Err(self.inner.health.failed(e)),
                    }
                }
                Ok(Err(e)) => {
                    return Err(backend(format!(
                        "etcd refused the transaction: {e}{}",
                        health::NOTHING_CHANGED
                    )));
                }
                outcome => self.observed(outcome)?,
            };
            if resp.succeeded() {
                if writes.is_empty() {
                    return Ok(current);
                }
                let delivered = self.deliver_through(Arc::new(WatchEvent {
                    revision: next,
                    changes,
                }));
                // Committed: a failure to read the log records before it only delays
                // this node's feed (the follower delivers them).
                if let Err(e) = delivered {
                    tracing::warn!(
                        revision = next,
                        "committed; delivering it to this node's feed waits for the follower: {e}"
                    );
                }
                return Ok(next);
            }
            // A condition failed, or another node committed first (then: again, after
            // a short pause growing with the attempts, so that committers spread out).
            if unknown.is_none() && self.counter()?.0 == current {
                if let Some(key) = self.first_failing(conditions)? {
                    return Err(StoreError::Conflict { key });
                }
            }
            std::thread::sleep(Duration::from_micros(
                u64::from(attempt.min(50)) * 100 + u64::from(std::process::id() % 97),
            ));
        }
        Err(backend(format!(
            "commit gave up after {MAX_ATTEMPTS} attempts: other nodes kept committing first"
        )))
    }

    /// Delivers every transaction up to `event` (reading the ones this node has not
    /// seen from the log), then `event`.
    fn deliver_through(&self, event: Arc<WatchEvent>) -> Result<(), StoreError> {
        let upto = event.revision;
        let last = lock(&self.inner.feed).last;
        let mut events = Vec::new();
        if last + 1 < upto {
            let layout = &self.inner.layout;
            for kv in self.range(layout.log(last + 1), layout.log(upto))? {
                events.push(
                    codec::decode_event(kv.value())
                        .ok_or_else(|| corrupt(kv.key(), "damaged transaction log record"))?,
                );
            }
        }
        events.push(event);
        let reached = lock(&self.inner.feed).deliver(events, upto);
        if !reached {
            // The records between are gone: the follower resynchronizes.
            tracing::warn!(
                revision = upto,
                "etcd transaction log has a gap; the follower resynchronizes"
            );
        }
        Ok(())
    }
}

/// The start of the message of a call that timed out.
const NO_ANSWER: &str = "etcd did not answer within";

/// Runs `fut` on `runtime` and waits for it on this thread (any thread: an async
/// caller blocks briefly, as on a local disk write), at most `timeout`.
fn wait<T: Send + 'static>(
    runtime: &tokio::runtime::Runtime,
    timeout: Duration,
    fut: impl Future<Output = T> + Send + 'static,
) -> Result<T, StoreError> {
    let (tx, rx) = std::sync::mpsc::sync_channel(1);
    runtime.spawn(async move {
        let _ = tx.send(tokio::time::timeout(timeout, fut).await);
    });
    match rx.recv() {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(_)) => Err(backend(format!("{NO_ANSWER} {} ms", timeout.as_millis()))),
        Err(_) => Err(backend("the etcd client runtime stopped")),
    }
}

/// The client options of `settings`: deadlines, keep-alive, user and TLS.
pub(crate) fn connect_options(settings: &EtcdSettings) -> Result<ConnectOptions, StoreError> {
    // Each try of a call gets part of the deadline (see `retry::attempt_timeout`).
    let attempt = retry::attempt_timeout(settings.timeout);
    let mut options = ConnectOptions::new()
        .with_connect_timeout(attempt)
        .with_timeout(attempt)
        .with_keep_alive(Duration::from_secs(10), settings.timeout);
    if let Some((user, password)) = &settings.user {
        options = options.with_user(user, password);
    }
    if let Some(tls) = &settings.tls {
        options = options.with_tls(tls_options(tls)?);
    }
    Ok(options)
}

fn tls_options(tls: &EtcdTls) -> Result<etcd_client::TlsOptions, StoreError> {
    let read = |path: &PathBuf| {
        std::fs::read(path).map_err(|e| backend(format!("cannot read {}: {e}", path.display())))
    };
    let mut options = etcd_client::TlsOptions::new()
        .ca_certificate(etcd_client::Certificate::from_pem(read(&tls.ca_file)?));
    match (&tls.cert_file, &tls.key_file) {
        (Some(cert), Some(key)) => {
            options = options.identity(etcd_client::Identity::from_pem(read(cert)?, read(key)?));
        }
        (None, None) => {}
        _ => return Err(backend("give both the etcd client cert_file and key_file")),
    }
    Ok(options)
}

/// Every etcd entry in `[from, to)`, page by page, every page read at the etcd
/// revision of the first (one consistent snapshot); with `keys_only`, without values.
async fn range_async(
    mut client: Client,
    from: Vec<u8>,
    to: Vec<u8>,
    keys_only: bool,
) -> Result<Vec<etcd_client::KeyValue>, etcd_client::Error> {
    let mut out = Vec::new();
    let mut start = from;
    let mut at = 0;
    loop {
        let mut options = GetOptions::new()
            .with_range(to.clone())
            .with_limit(PAGE)
            .with_revision(at);
        if keys_only {
            options = options.with_keys_only();
        }
        let mut resp = client.get(start.clone(), Some(options)).await?;
        if at == 0 {
            at = resp.header().map_or(0, |h| h.revision());
        }
        let more = resp.more();
        let kvs = resp.take_kvs();
        let Some(last) = kvs.last() else { break };
        start = last.key().to_vec();
        start.push(0);
        out.extend(kvs);
        if !more {
            break;
        }
    }
    Ok(out)
}

impl Store for EtcdStore {
    fn get(&self, key: &str) -> Result<Option<Entry>, StoreError> {
        let Some(kv) = self.get_raw(self.inner.layout.data(key))? else {
            return Ok(None);
        };
        let (revision, value) = codec::decode_value(kv.value())
            .ok_or_else(|| corrupt(kv.key(), "entry without its revision"))?;
        Ok(Some(Entry {
            key: key.to_string(),
            value: value.to_vec(),
            revision,
        }))
    }

    fn scan(&self, prefix: &str) -> Result<Vec<Entry>, StoreError> {
        let from = self.inner.layout.data(prefix);
        let to = prefix_end(&self.inner.layout.data(""));
        let to = if prefix.is_empty() {
            to
        } else {
            prefix_end(&from)
        };
        let mut out = Vec::new();
        for kv in self.range(from, to)? {
            let key = self
                .inner
                .layout
                .data_key(kv.key())
                .ok_or_else(|| corrupt(kv.key(), "key is not UTF-8"))?;
            let (revision, value) = codec::decode_value(kv.value())
                .ok_or_else(|| corrupt(kv.key(), "entry without its revision"))?;
            out.push(Entry {
                key: key.to_string(),
                value: value.to_vec(),
                revision,
            });
        }
        Ok(out)
    }

    /// One etcd transaction per attempt: the revision counter's compare makes attempts
    /// (this node's and other nodes') apply one at a time. An attempt whose answer is
    /// lost (its member died) may or may not have applied: it can only have applied as
    /// the next revision, so once the counter has moved past it, that revision's log
    /// record says whether it was this attempt (the same record) or another commit.
    /// Until then, a new attempt carries the same compare, so at most one of the two
    /// applies.
    fn commit(&self, conditions: &[Condition], writes: Vec<Write>) -> Result<u64, StoreError> {
        limits::check(conditions.len(), &writes)?;
        self.inner.health.check()?;
        // (revision, log record) of an attempt whose answer was lost.
        let mut unknown: Option<(u64, Vec<u8>)> = None;
        self.commit_attempts(conditions, writes, &mut unknown)
            .map_err(|e| match e {
                // Sent, then etcd went away: whether it applied is unknown.
                StoreError::Backend { backend, message } if unknown.is_some() => {
                    StoreError::Backend {
                        backend,
                        message: format!(
                            "{} while committing: the change may or may not have been made (read it again)",
                            message.strip_suffix(health::NOTHING_CHANGED).unwrap_or(&message)
                        ),
                    }
                }
                other => other,
            })
    }

    fn revision(&self) -> Result<u64, StoreError> {
        Ok(self.counter()?.0)
    }

    fn watch(&self) -> broadcast::Receiver<Arc<WatchEvent>> {
        lock(&self.inner.feed).tx.subscribe()
    }

    fn commit_limits(&self) -> Option<CommitLimits> {
        Some(limits::LIMITS)
    }

    fn reachable(&self) -> bool {
        self.inner.health.is_up()
    }
}

#[cfg(test)]
mod tests;

//! An opened key source and the bounded, deadline-guarded way the core calls it.

use std::{
    sync::{
        Arc,
        atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering::Relaxed},
    },
    time::{Duration, Instant},
};

use keyhold_sdk::{Host as _, KeySourceBox, KeySourceError, SourceInfo, invocations};
use tokio::sync::Semaphore;

use super::{LoadedPlugin, StoreHost};
use crate::metrics::Histogram;

/// Why a call into a key source did not produce an answer (answered as the XKS error
/// `XksErrorKind::from(&PluginCallError)` maps it to).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PluginCallError {
    /// The key source answered with an error.
    #[error(transparent)]
    Source(#[from] KeySourceError),
    /// Every call slot stayed busy for the queueing deadline: the request is shed.
    #[error("key source '{source_name}' is saturated: no call slot freed up within {ms} ms")]
    Busy {
        /// The key source.
        source_name: String,
        /// The queueing deadline.
        ms: u128,
    },
    /// The key source did not answer within the call deadline.
    #[error("key source '{source_name}' did not answer {what} within {ms} ms")]
    Timeout {
        /// The key source.
        source_name: String,
        /// The operation.
        what: &'static str,
        /// The deadline.
        ms: u128,
    },
    /// The host-side call task failed (a bug; plugin panics are caught in the plugin).
    #[error("key source '{source_name}' call {what} failed: {reason}")]
    Internal {
        /// The key source.
        source_name: String,
        /// The operation.
        what: &'static str,
        /// What happened.
        reason: String,
    },
}

/// Where a key source's calls run (`[sources.<name>] inline_calls`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum InlineCalls {
    /// On the blocking pool (`false`, the default): a slow key source cannot stall the
    /// runtime, and the call deadline applies.
    #[default]
    Never,
    /// On the request's own thread (`true`): for sources that answer from memory in
    /// microseconds (ctm).
    Always,
    /// On the request's own thread while the source has proved fast (`"auto"`): after
    /// [`AUTO_WARMUP`] calls in a row each under [`AUTO_FAST_LIMIT`], and with at most
    /// one runtime thread fewer than there are (at least one) inside an inline call at
    /// once; the first slower call sends the calls back to the blocking pool until the
    /// source proves fast again. For PKCS#11 tokens that answer in tens of
    /// microseconds (SoftHSM2, a local HSM): no thread hand-off per call while the
    /// token is fast, and a slow or hung token still cannot hold every runtime thread.
    Auto,
}

impl<'de> serde::Deserialize<'de> for InlineCalls {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(serde::Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Bool(bool),
            Text(String),
        }
        match Raw::deserialize(d)? {
            Raw::Bool(false) => Ok(InlineCalls::Never),
            Raw::Bool(true) => Ok(InlineCalls::Always),
            Raw::Text(t) if t == "auto" => Ok(InlineCalls::Auto),
            Raw::Text(t) => Err(serde::de::Error::custom(format!(
                "inline_calls must be true, false or \"auto\", not {t:?}"
            ))),
        }
    }
}

/// Calls in a row under [`AUTO_FAST_LIMIT`] before `inline_calls = "auto"` runs calls
/// inline.
pub const AUTO_WARMUP: u32 = 64;
/// Longest call that still counts as fast for `inline_calls = "auto"`.
pub const AUTO_FAST_LIMIT: Duration = Duration::from_micros(500);

/// The state of `inline_calls = "auto"`.
#[derive(Debug)]
struct AutoInline {
    /// Calls in a row that took less than [`AUTO_FAST_LIMIT`] (saturating).
    fast_streak: AtomicU32,
    /// Calls running inline now.
    inline_now: AtomicUsize,
    /// Most calls running inline at once.
    max_inline: usize,
}

impl AutoInline {
    fn new() -> AutoInline {
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        AutoInline {
            fast_streak: AtomicU32::new(0),
            inline_now: AtomicUsize::new(0),
            max_inline: threads.saturating_sub(1).max(1),
        }
    }

    /// Takes an inline slot when the source proved fast and one is free.
    fn try_inline(&self) -> Option<InlineSlot<'_>> {
        if self.fast_streak.load(Relaxed) < AUTO_WARMUP {
            return None;
        }
        self.inline_now
            .fetch_update(Relaxed, Relaxed, |n| (n < self.max_inline).then_some(n + 1))
            .ok()
            .map(|_| InlineSlot(self))
    }

    /// Notes how long a call took.
    fn observe(&self, took: Duration) {
        if took < AUTO_FAST_LIMIT {
            let _ = self
                .fast_streak
                .fetch_update(Relaxed, Relaxed, |n| Some(n.saturating_add(1)));
        } else {
            self.fast_streak.store(0, Relaxed);
        }
    }
}

/// An inline slot of [`AutoInline`], given back when dropped.
struct InlineSlot<'a>(&'a AutoInline);

impl Drop for InlineSlot<'_> {
    fn drop(&mut self) {
        self.0.inline_now.fetch_sub(1, Relaxed);
    }
}

/// Call-slot and deadline settings of a key source.
#[derive(Debug, Clone, Copy)]
pub struct CallLimits {
    /// Most calls in flight at once.
    pub concurrency: usize,
    /// Longest wait for a free slot before the request is shed.
    pub queue_timeout: Duration,
    /// Longest a call may take (waiting included).
    pub call_timeout: Duration,
}

/// One opened key source: its plugin, its identity, and a bounded call pool.
pub struct KeySourceHandle {
    /// The key source's configured name.
    pub name: String,
    /// The library it came from (`None` for a key source built in-process, in tests).
    pub plugin: Option<LoadedPlugin>,
    /// Vendor and model the source reports.
    pub info: SourceInfo,
    source: Arc<KeySourceBox>,
    permits: Arc<Semaphore>,
    limits: CallLimits,
    /// Latency of every call.
    pub latency: Histogram,
    /// Calls that failed, timed out or were shed.
    pub errors: AtomicU64,
    /// Calls shed because no slot freed up in time.
    pub shed: AtomicU64,
    inline: InlineCalls,
    auto: Arc<AutoInline>,
    /// The source's view of the store, where it keeps its AES-GCM encryption counters
    /// (read for `/metrics`, see [`KeySourceHandle::gcm_encryptions`]).
    host: Option<StoreHost>,
}

impl std::fmt::Debug for KeySourceHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeySourceHandle")
            .field("name", &self.name)
            .field("plugin", &self.plugin)
            .finish()
    }
}

impl KeySourceHandle {
    /// Wraps an opened key source.
    pub fn new(
        name: &str,
        plugin: Option<LoadedPlugin>,
        source: KeySourceBox,
        limits: CallLimits,
    ) -> KeySourceHandle {
        let info = source.info();
        KeySourceHandle {
            name: name.to_string(),
            plugin,
            info,
            source: Arc::new(source),
            permits: Arc::new(Semaphore::new(limits.concurrency.max(1))),
            limits,
            latency: Histogram::default(),
            errors: AtomicU64::new(0),
            shed: AtomicU64::new(0),
            inline: InlineCalls::Never,
            auto: Arc::new(AutoInline::new()),
            host: None,
        }
    }

    /// Gives the handle the source's view of the store (the one its `open` got), so
    /// that its per-key AES-GCM encryption counters can be reported.
    pub fn with_host(mut self, host: StoreHost) -> Self {
        self.host = Some(host);
        self
    }

    /// The AES-GCM encryptions reserved per key (key name, count), as the source
    /// persisted them in its store namespace (`gcm-invocations/<key>`, see
    /// [`keyhold_sdk::invocations`]): an upper bound of the encryptions made under the
    /// key on every node, exceeding it by at most two unused blocks per node and
    /// restart. Empty without a host, or when the store cannot be read.
    pub fn gcm_encryptions(&self) -> Vec<(String, u64)> {
        let Some(host) = &self.host else {
            return Vec::new();
        };
        let Ok(entries) = host.kv_list(invocations::KV_PREFIX.into()).into_result() else {
            return Vec::new();
        };
        entries
            .iter()
            .filter_map(|e| {
                let key = e.key.as_str().strip_prefix(invocations::KV_PREFIX)?;
                let count = invocations::Reserved::from_bytes(e.value.as_slice()).ok()?;
                Some((key.to_string(), count.reserved))
            })
            .collect()
    }

    /// Where calls run (see [`InlineCalls`] and `SourceDecl::inline_calls`): inline
    /// only for sources that never block for long. The call slots still bound
    /// concurrency; the call deadline cannot interrupt an inline call.
    pub fn with_inline_calls(mut self, inline: InlineCalls) -> Self {
        self.inline = inline;
        self
    }

    /// The key source itself, for synchronous callers that are already on a blocking
    /// thread (start-up reconciliation, tests).
    pub fn source(&self) -> &KeySourceBox {
        &self.source
    }

    /// Call slots in use now.
    pub fn in_use(&self) -> usize {
        self.limits
            .concurrency
            .saturating_sub(self.permits.available_permits())
    }

    /// Call slots in all.
    pub fn capacity(&self) -> usize {
        self.limits.concurrency
    }

    /// Runs `f` against the key source on the blocking pool. Waits at most the queueing
    /// deadline for a call slot (else [`PluginCallError::Busy`]) and the call deadline
    /// for the answer (else [`PluginCallError::Timeout`]). A call that misses its
    /// deadline keeps its slot until the key source returns, so a hung key manager
    /// cannot pile up threads.
    pub async fn call<T, F>(&self, what: &'static str, f: F) -> Result<T, PluginCallError>
    where
        T: Send + 'static,
        F: FnOnce(&KeySourceBox) -> Result<T, KeySourceError> + Send + 'static,
    {
        let started = Instant::now();
        let result = self.call_inner(what, f, started).await;
        self.latency
            .observe_us(started.elapsed().as_micros() as u64);
        if let Err(e) = &result {
            self.errors.fetch_add(1, Relaxed);
            if matches!(e, PluginCallError::Busy { .. }) {
                self.shed.fetch_add(1, Relaxed);
            }
        }
        result
    }

    async fn call_inner<T, F>(
        &self,
        what: &'static str,
        f: F,
        started: Instant,
    ) -> Result<T, PluginCallError>
    where
        T: Send + 'static,
        F: FnOnce(&KeySourceBox) -> Result<T, KeySourceError> + Send + 'static,
    {
        let permit = match self.permits.clone().try_acquire_owned() {
            Ok(p) => p,
            Err(_) => tokio::time::timeout(
                self.limits.queue_timeout,
                self.permits.clone().acquire_owned(),
            )
            .await
            .map_err(|_| PluginCallError::Busy {
                source_name: self.name.clone(),
                ms: self.limits.queue_timeout.as_millis(),
            })?
            .map_err(|e| PluginCallError::Internal {
                source_name: self.name.clone(),
                what,
                reason: e.to_string(),
            })?,
        };
        let slot = match self.inline {
            InlineCalls::Always => {
                let result = f(&self.source);
                drop(permit);
                return result.map_err(PluginCallError::Source);
            }
            InlineCalls::Never => None,
            InlineCalls::Auto => self.auto.try_inline(),
        };
        if let Some(slot) = slot {
            let t0 = Instant::now();
            let result = f(&self.source);
            self.auto.observe(t0.elapsed());
            drop(slot);
            drop(permit);
            return result.map_err(PluginCallError::Source);
        }
        let source = self.source.clone();
        let auto = (self.inline == InlineCalls::Auto).then(|| self.auto.clone());
        let task = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            let t0 = Instant::now();
            let result = f(&source);
            if let Some(auto) = auto {
                auto.observe(t0.elapsed());
            }
            result
        });
        let deadline = tokio::time::Instant::from_std(started + self.limits.call_timeout);
        match tokio::time::timeout_at(deadline, task).await {
            Err(_) => Err(PluginCallError::Timeout {
                source_name: self.name.clone(),
                what,
                ms: self.limits.call_timeout.as_millis(),
            }),
            Ok(Err(join)) => Err(PluginCallError::Internal {
                source_name: self.name.clone(),
                what,
                reason: join.to_string(),
            }),
            Ok(Ok(result)) => result.map_err(PluginCallError::Source),
        }
    }
}

#[cfg(test)]
mod tests;

//! An opened key source and the bounded, deadline-guarded way the core calls it.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use keyhold_sdk::{KeySourceBox, KeySourceError, SourceInfo};
use tokio::sync::Semaphore;

use super::LoadedPlugin;

/// Why a call into a key source did not produce an answer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PluginCallError {
    /// The key source answered with an error.
    #[error(transparent)]
    Source(#[from] KeySourceError),
    /// No answer (or no free call slot) within the deadline.
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

impl PluginCallError {
    /// The XKS `errorName` for this failure.
    pub fn xks_error_name(&self) -> &'static str {
        match self {
            PluginCallError::Source(e) => e.xks_error_name(),
            PluginCallError::Timeout { .. } => "DependencyTimeoutException",
            PluginCallError::Internal { .. } => "InternalException",
        }
    }
}

/// One opened key source: its plugin, its identity, and a bounded call pool.
pub struct KeySourceHandle {
    /// The key source's configured name.
    pub name: String,
    /// The library it came from.
    pub plugin: LoadedPlugin,
    /// Vendor and model the source reports.
    pub info: SourceInfo,
    source: Arc<KeySourceBox>,
    permits: Arc<Semaphore>,
    timeout: Duration,
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
    /// Wraps an opened key source. At most `concurrency` calls run at once; each call
    /// (including waiting for a slot) must finish within `timeout`.
    pub fn new(
        name: &str,
        plugin: LoadedPlugin,
        source: KeySourceBox,
        concurrency: usize,
        timeout: Duration,
    ) -> KeySourceHandle {
        let info = source.info();
        KeySourceHandle {
            name: name.to_string(),
            plugin,
            info,
            source: Arc::new(source),
            permits: Arc::new(Semaphore::new(concurrency.max(1))),
            timeout,
        }
    }

    /// The key source itself, for synchronous callers that are already on a blocking
    /// thread (start-up reconciliation, tests).
    pub fn source(&self) -> &KeySourceBox {
        &self.source
    }

    /// Runs `f` against the key source on the blocking pool, bounded by the call slots
    /// and the deadline. A call that misses the deadline keeps its slot until the key
    /// source returns, so a hung key manager cannot pile up threads.
    pub async fn call<T, F>(&self, what: &'static str, f: F) -> Result<T, PluginCallError>
    where
        T: Send + 'static,
        F: FnOnce(&KeySourceBox) -> Result<T, KeySourceError> + Send + 'static,
    {
        let deadline = tokio::time::Instant::from_std(Instant::now() + self.timeout);
        let timeout = || PluginCallError::Timeout {
            source_name: self.name.clone(),
            what,
            ms: self.timeout.as_millis(),
        };
        let permit = tokio::time::timeout_at(deadline, self.permits.clone().acquire_owned())
            .await
            .map_err(|_| timeout())?
            .map_err(|e| PluginCallError::Internal {
                source_name: self.name.clone(),
                what,
                reason: e.to_string(),
            })?;
        let source = self.source.clone();
        let task = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            f(&source)
        });
        match tokio::time::timeout_at(deadline, task).await {
            Err(_) => Err(timeout()),
            Ok(Err(join)) => Err(PluginCallError::Internal {
                source_name: self.name.clone(),
                what,
                reason: join.to_string(),
            }),
            Ok(Ok(result)) => result.map_err(PluginCallError::Source),
        }
    }
}

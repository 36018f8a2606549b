//! [`AdminState`], what every handler shares, and [`Actor`], a principal acting on it:
//! the two ways a handler touches the store, [`Actor::read`] and the audited
//! [`Actor::change`].

use std::sync::Arc;

use axum::http::StatusCode;

use serde_json::{Value, json};

use super::ApiError;
use crate::{
    audit::AuditLog,
    identity::Principal,
    ops::{OpError, Operations},
};

/// What every handler shares.
#[derive(Clone)]
pub struct AdminState {
    ops: Arc<Operations>,
    audit: AuditLog,
    pub(super) session_ttl_seconds: u64,
    /// Login backoff and the password-check pool of this node.
    pub(super) login_throttle: Arc<super::throttle::LoginThrottle>,
    shutdown: Option<tokio::sync::watch::Receiver<bool>>,
    /// The cluster as this node sees it, and the store backend's name.
    cluster: (Arc<dyn crate::cluster::Membership>, &'static str),
    /// This node's recent traffic per store (sampled by the server's sampler task).
    history: Arc<crate::metrics::history::History>,
}

/// The audit record of an admin change (refused or done): never secrets. The user,
/// object (it may hold a request path) and a refusal's message are escaped and capped
/// ([`crate::logsafe`]).
fn audit_event(user: &str, action: &str, object: &str, outcome: String, details: Value) -> Value {
    use crate::logsafe::{clip, clip_to};
    let mut event = json!({
        "kind": "admin",
        "user": clip(user),
        "action": action,
        "object": clip_to(object, 256),
        "outcome": outcome,
    });
    match details {
        Value::Null => {}
        Value::String(message) => event["details"] = json!(clip_to(&message, 1024)),
        other => event["details"] = other,
    }
    event
}

fn task_failed(e: tokio::task::JoinError) -> ApiError {
    ApiError::internal(format!("task failed: {e}"))
}

impl AdminState {
    /// State over `ops`, auditing to `audit`.
    pub fn new(ops: Arc<Operations>, audit: AuditLog, session_ttl_seconds: u64) -> AdminState {
        AdminState {
            ops,
            audit,
            session_ttl_seconds,
            login_throttle: Arc::default(),
            shutdown: None,
            cluster: (
                Arc::new(crate::cluster::Solo::new(crate::cluster::NodeInfo {
                    id: "local".into(),
                    version: env!("CARGO_PKG_VERSION").into(),
                    xks_addr: String::new(),
                    admin_addr: None,
                    started_at: crate::cluster::unix_now(),
                    heartbeat_at: crate::cluster::unix_now(),
                })),
                "embedded",
            ),
            history: Arc::new(crate::metrics::history::History::new(
                crate::metrics::history::DEFAULT_INTERVAL_SECONDS,
            )),
        }
    }

    /// Answers store traffic from `history` (the one the server's sampler fills); an
    /// empty history by default.
    pub fn with_history(mut self, history: Arc<crate::metrics::history::History>) -> AdminState {
        self.history = history;
        self
    }

    /// The cluster this node belongs to (`backend`: the store backend's name); a lone
    /// node by default.
    pub fn with_membership(
        mut self,
        membership: Arc<dyn crate::cluster::Membership>,
        backend: &'static str,
    ) -> AdminState {
        self.cluster = (membership, backend);
        self
    }

    /// Lets background jobs see the server stopping (`true` on `shutdown`): they stop
    /// before their next unit of work, as `interrupted`.
    pub fn with_shutdown(mut self, shutdown: tokio::sync::watch::Receiver<bool>) -> AdminState {
        self.shutdown = Some(shutdown);
        self
    }

    /// Runs a read-only operation on the blocking pool.
    pub(super) async fn read<T, F>(&self, f: F) -> Result<T, ApiError>
    where
        T: Send + 'static,
        F: FnOnce(&Operations) -> Result<T, OpError> + Send + 'static,
    {
        let ops = self.ops.clone();
        tokio::task::spawn_blocking(move || f(&ops))
            .await
            .map_err(task_failed)?
            .map_err(ApiError::from)
    }

    /// Records a change refused before it ran (e.g. by the admins-only check).
    pub(super) async fn audit_refusal(&self, user: &str, action: &str, object: &str, e: &ApiError) {
        let event = audit_event(
            user,
            action,
            object,
            format!("refused: {}", e.code()),
            json!(e.message()),
        );
        let audit = self.audit.clone();
        let written = tokio::task::spawn_blocking(move || audit.record_durable(event)).await;
        if !matches!(written, Ok(Ok(_))) {
            tracing::error!(action, "admin audit record of a refusal failed");
        }
    }
}

/// A principal acting through the admin API: what a handler does for its caller.
pub struct Actor {
    state: AdminState,
    /// Who acts.
    pub principal: Principal,
}

impl Actor {
    /// The cluster as this node sees it.
    pub(super) fn membership(&self) -> &Arc<dyn crate::cluster::Membership> {
        &self.state.cluster.0
    }

    /// The audit log this node writes.
    pub(super) fn audit_log(&self) -> &AuditLog {
        &self.state.audit
    }

    /// This node's recent traffic per store.
    pub(super) fn history(&self) -> &crate::metrics::history::History {
        &self.state.history
    }

    /// The store backend's name.
    pub(super) fn backend(&self) -> &'static str {
        self.state.cluster.1
    }

    /// `principal` acting on `state`.
    pub(super) fn new(state: AdminState, principal: Principal) -> Actor {
        Actor { state, principal }
    }

    /// Runs a read-only operation for the principal (handed to `f`) on the blocking
    /// pool.
    pub(super) async fn read<T, F>(&self, f: F) -> Result<T, ApiError>
    where
        T: Send + 'static,
        F: FnOnce(&Operations, &Principal) -> Result<T, OpError> + Send + 'static,
    {
        let who = self.principal.clone();
        self.state.read(move |ops| f(ops, &who)).await
    }

    /// Runs a change by the principal on the blocking pool and records it (refused or
    /// done) in the audit log, durably, before answering; then waits until this node's
    /// data plane has applied it. `f` gets the operations and the principal, and
    /// returns the result and audit details (never secrets; `Value::Null` for none).
    pub(super) async fn change<T, F>(
        &self,
        action: &'static str,
        object: String,
        f: F,
    ) -> Result<T, ApiError>
    where
        T: Send + 'static,
        F: FnOnce(&Operations, &Principal) -> Result<(T, Value), OpError> + Send + 'static,
    {
        self.change_if_any(action, object, move |ops, who| {
            f(ops, who).map(|(t, details)| (t, Some(details)))
        })
        .await
    }

    /// [`Actor::change`] of a change that may turn out to change nothing: `f` returns
    /// `None` details then, and no audit record is written (a refusal still is).
    pub(super) async fn change_if_any<T, F>(
        &self,
        action: &'static str,
        object: String,
        f: F,
    ) -> Result<T, ApiError>
    where
        T: Send + 'static,
        F: FnOnce(&Operations, &Principal) -> Result<(T, Option<Value>), OpError> + Send + 'static,
    {
        let state = &self.state;
        let (ops, audit, who) = (
            state.ops.clone(),
            state.audit.clone(),
            self.principal.clone(),
        );
        let (result, audited) = tokio::task::spawn_blocking(move || {
            let result = f(&ops, &who);
            let record = match &result {
                Ok((_, None)) => None,
                Ok((_, Some(d))) => Some(("ok".to_string(), d.clone())),
                Err(e) => Some((format!("refused: {}", e.code()), json!(e.to_string()))),
            };
            let audited = match record {
                None => Ok(0),
                Some((outcome, details)) => {
                    audit.record_durable(audit_event(&who.user, action, &object, outcome, details))
                }
            };
            if result.is_ok() && audited.is_ok() {
                // Answered only once this node's data plane serves the change
                // (read-your-writes for XKS requests right after an admin call).
                let _ = ops.wait_applied();
            }
            (result.map(|(t, _)| t), audited)
        })
        .await
        .map_err(task_failed)?;
        let t = result.map_err(ApiError::from)?;
        // An acknowledged change always has its audit record: if the record could not
        // be written, the caller is told (the change itself is already committed).
        if let Err(e) = audited {
            tracing::error!(action, "admin audit record failed: {e}");
            return Err(ApiError::internal(format!(
                "the change was applied but its audit record could not be written: {e}"
            )));
        }
        Ok(t)
    }

    /// Runs `job` (a long job a change has just started) on the blocking pool in the
    /// background, with the shared operations and whether the server is stopping, and
    /// records its end in the audit log: `job` returns the outcome (e.g. the job's
    /// final state) and audit details.
    pub(super) fn spawn_job<F>(&self, action: &'static str, object: String, job: F)
    where
        F: FnOnce(&Operations, crate::ops::Stopping<'_>) -> Result<(String, Value), OpError>
            + Send
            + 'static,
    {
        let (ops, audit, user, shutdown) = (
            self.state.ops.clone(),
            self.state.audit.clone(),
            self.principal.user.clone(),
            self.state.shutdown.clone(),
        );
        tokio::task::spawn_blocking(move || {
            let stopping = || shutdown.as_ref().is_some_and(|rx| *rx.borrow());
            let (outcome, details) = match job(&ops, &stopping) {
                Ok(ended) => ended,
                Err(e) => (format!("failed: {}", e.code()), json!(e.to_string())),
            };
            let event = audit_event(&user, action, &object, outcome, details);
            if let Err(e) = audit.record_durable(event) {
                tracing::error!(action, %object, "audit record of a job's end failed: {e}");
            }
        });
    }

    /// [`Actor::change`] whose result is answered as JSON with `201 Created`.
    pub(super) async fn create<T, F>(
        &self,
        action: &'static str,
        object: String,
        f: F,
    ) -> Result<(StatusCode, axum::Json<T>), ApiError>
    where
        T: Send + 'static,
        F: FnOnce(&Operations, &Principal) -> Result<(T, Value), OpError> + Send + 'static,
    {
        Ok(super::reply::created(self.change(action, object, f).await?))
    }

    /// [`Actor::change`] without result or audit details, answered `204 No Content`.
    pub(super) async fn change_no_content<F>(
        &self,
        action: &'static str,
        object: String,
        f: F,
    ) -> Result<StatusCode, ApiError>
    where
        F: FnOnce(&Operations, &Principal) -> Result<(), OpError> + Send + 'static,
    {
        self.change(action, object, move |ops, who| {
            f(ops, who).map(|()| ((), Value::Null))
        })
        .await?;
        Ok(StatusCode::NO_CONTENT)
    }
}

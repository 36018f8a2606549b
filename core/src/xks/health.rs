//! Deep health checks: a real encrypt and decrypt with the store's health-check key,
//! plus the key source's own view of its key managers, cached for at most the
//! configured age (<= 60 s).

use std::time::{Duration, Instant};

use keyhold_sdk::{EkmNode, HealthStatus};
use tokio::sync::Mutex;

use super::{ops::reopen, routing::StoreRoute};

/// The outcome of one deep check.
#[derive(Debug, Clone)]
pub struct HealthResult {
    /// When it was taken.
    pub at: Instant,
    /// The key managers and their status (all `UNAVAILABLE` when the check failed).
    pub nodes: Vec<EkmNode>,
    /// Vendor of the key manager.
    pub vendor: String,
    /// `Err(reason)` when the encrypt/decrypt round trip failed.
    pub outcome: Result<(), String>,
}

impl HealthResult {
    /// Whether the store can serve crypto.
    pub fn is_healthy(&self) -> bool {
        self.outcome.is_ok()
            && self
                .nodes
                .iter()
                .any(|n| n.status != HealthStatus::Unavailable)
    }
}

/// One store's cached result; concurrent callers share one refresh.
#[derive(Default)]
pub struct HealthCache {
    last: Mutex<Option<HealthResult>>,
}

impl HealthCache {
    /// The cached result when younger than `max_age`, else a fresh one.
    pub async fn get(&self, route: &StoreRoute, max_age: Duration) -> HealthResult {
        let mut last = self.last.lock().await;
        if let Some(r) = last.as_ref() {
            if r.at.elapsed() < max_age {
                return r.clone();
            }
        }
        let fresh = check(route).await;
        *last = Some(fresh.clone());
        fresh
    }

    /// Forgets the cached result (e.g. after the store's health-check key changed).
    pub async fn invalidate(&self) {
        *self.last.lock().await = None;
    }
}

async fn check(route: &StoreRoute) -> HealthResult {
    let at = Instant::now();
    let source = match &route.source {
        Ok(s) => s.clone(),
        Err(reason) => {
            return HealthResult {
                at,
                nodes: vec![EkmNode {
                    id: route.record.source.as_str().into(),
                    model: "key source not loaded".into(),
                    status: HealthStatus::Unavailable,
                }],
                vendor: "unknown".into(),
                outcome: Err(reason.clone()),
            };
        }
    };
    let key = route.record.health_check_key.clone();
    let outcome = source
        .call("health check", move |src| {
            let mut probe = [0u8; 32];
            crate::secrets::fill_random(&mut probe);
            let aad = b"keyhold health check";
            let sealed = src
                .encrypt(key.as_str().into(), probe[..].into(), aad[..].into())
                .into_result()?;
            let plain = src
                .decrypt(key.as_str().into(), reopen(&sealed, aad))
                .into_result()?;
            if plain.as_slice() != probe {
                return Err(keyhold_sdk::KeySourceError::internal(
                    "health-check round trip returned different bytes",
                ));
            }
            Ok(())
        })
        .await
        .map_err(|e| format!("health-check key '{}': {e}", route.record.health_check_key));
    let mut nodes = source
        .call("health", |src| Ok(src.health().into_vec()))
        .await
        .unwrap_or_else(|e| {
            vec![EkmNode {
                id: source.name.as_str().into(),
                model: e.to_string().into(),
                status: HealthStatus::Unavailable,
            }]
        });
    if nodes.is_empty() {
        nodes.push(EkmNode {
            id: source.name.as_str().into(),
            model: source.info.model.clone(),
            status: HealthStatus::Unavailable,
        });
    }
    nodes.truncate(10);
    if outcome.is_err() {
        for n in &mut nodes {
            n.status = HealthStatus::Unavailable;
        }
    }
    HealthResult {
        at,
        nodes,
        vendor: source.info.vendor.to_string(),
        outcome,
    }
}

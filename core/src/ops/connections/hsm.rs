//! Changing an HSM connection: the changed connection is tested before it is saved.

use super::super::{OpError, Operations, decode, to_json};
use crate::{
    api::connections::{HsmConnectionPatch, TestStatus},
    model::{HsmConnectionRecord, keys, rules::RuleViolation},
    store::{Condition, Write},
};

/// Checks an HSM connection's settings (creation and change).
pub(super) fn validate(rec: &HsmConnectionRecord) -> Result<(), OpError> {
    if rec.module.is_empty() || !rec.module.starts_with('/') {
        return Err(OpError::Input(
            "module must be the absolute path of the PKCS#11 library".into(),
        ));
    }
    match (&rec.pin_env, &rec.pin_file) {
        (Some(_), Some(_)) | (None, None) => {
            return Err(OpError::Input(
                "set exactly one of pin_env (a variable name) and pin_file (a path): \
                 the PIN itself is never stored"
                    .into(),
            ));
        }
        (Some(v), None) if v.is_empty() || v.contains('=') => {
            return Err(OpError::Input(format!(
                "pin_env '{v}' is not an environment variable name"
            )));
        }
        (None, Some(f)) if !f.starts_with('/') => {
            return Err(OpError::Input("pin_file must be an absolute path".into()));
        }
        _ => {}
    }
    if rec.pool_size == Some(0) {
        return Err(OpError::Input("pool_size must be at least 1".into()));
    }
    if rec.op_timeout_ms == Some(0) {
        return Err(OpError::Input(
            "op_timeout_ms must be at least 1 (milliseconds)".into(),
        ));
    }
    Ok(())
}

/// `current` with `patch` applied (not yet checked): setting one of `pin_env` and
/// `pin_file` clears the other; `module_env` replaces the map. `token_label` is a
/// source's binding: a different one is refused.
pub(super) fn patched(
    current: &HsmConnectionRecord,
    patch: HsmConnectionPatch,
) -> Result<HsmConnectionRecord, OpError> {
    let mut next = current.clone();
    if let Some(label) = patch.token_label {
        if label != current.token_label {
            return Err(OpError::Rule(RuleViolation {
                code: "token_label_immutable",
                message: format!(
                    "token_label cannot change: HSM connection '{}' is bound to token '{}' \
                     (key sources made from it, and their stores, are bound to that token); \
                     create another connection for another token",
                    current.name, current.token_label
                ),
            }));
        }
    }
    if let Some(module) = patch.module {
        next.module = module;
    }
    match (patch.pin_env, patch.pin_file) {
        (Some(_), Some(_)) => {
            return Err(OpError::Input(
                "set one of pin_env and pin_file, not both".into(),
            ));
        }
        (Some(v), None) => {
            next.pin_env = Some(v);
            next.pin_file = None;
        }
        (None, Some(f)) => {
            next.pin_file = Some(f);
            next.pin_env = None;
        }
        (None, None) => {}
    }
    if let Some(env) = patch.module_env {
        next.module_env = env;
    }
    if let Some(n) = patch.pool_size {
        next.pool_size = Some(n);
    }
    if let Some(ms) = patch.op_timeout_ms {
        next.op_timeout_ms = Some(ms);
    }
    validate(&next)?;
    Ok(next)
}

impl Operations {
    /// Changes an HSM connection. The changed connection is tested first (a key source
    /// opened with it, as the connection test does); a failed test refuses the change
    /// (422 `connection_test_failed`, with the reason) and nothing is saved. Returns the
    /// connection and whether anything changed (a patch that changes nothing writes
    /// nothing). Key sources made from it keep their session until reopened.
    pub fn update_hsm_connection(
        &self,
        name: &str,
        patch: HsmConnectionPatch,
    ) -> Result<(HsmConnectionRecord, bool), OpError> {
        let key = keys::hsm_connection(name);
        let entry = self.entry(&key, "HSM connection", name)?;
        let current: HsmConnectionRecord = decode(&entry)?;
        let next = patched(&current, patch)?;
        if next == current {
            return Ok((current, false));
        }
        let test = self.test_hsm_record(&next)?;
        if test.status != TestStatus::Ready {
            return Err(OpError::Rule(RuleViolation {
                code: "connection_test_failed",
                message: format!(
                    "the changed connection failed its test, nothing was saved: {}",
                    test.reason.unwrap_or_default()
                ),
            }));
        }
        self.commit_read(
            &[Condition::Revision(key.clone(), entry.revision)],
            vec![Write::Put(key, to_json(&next))],
            "HSM connection",
            name,
            entry.revision,
        )?;
        Ok((next, true))
    }
}

#[cfg(test)]
mod tests;

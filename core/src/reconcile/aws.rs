//! The AWS side of config-file setup: declared AWS connections and accounts are
//! created before the stores ([`declare`]); declared stores that say `linked` and
//! `connected` are linked and connected once the server serves them ([`link_declared`]),
//! since AWS KMS calls the proxy back while doing so. Both are idempotent across
//! restarts: what exists is found (a store already on AWS KMS by its endpoint and
//! path, as a refresh would), not made twice.

use crate::{
    api::{connections::NewAwsConnection, stores::LinkRequest},
    config::Config,
    model::{AwsLink, ConnectionState},
    ops::{OpError, Operations},
};

use super::ReconcileError;

fn op_err(what: String, e: OpError) -> ReconcileError {
    ReconcileError::Declared {
        what,
        reason: e.to_string(),
    }
}

/// Creates the declared AWS connections and accounts that do not exist yet (existing
/// ones are left as they are: change them through the admin API).
pub fn declare(cfg: &Config, ops: &Operations) -> Result<(), ReconcileError> {
    for (name, decl) in &cfg.aws.connections {
        let what = format!("aws.connections.{name}");
        match ops.get_aws_connection(name) {
            Ok(_) => continue,
            Err(OpError::NotFound { .. }) => {}
            Err(e) => return Err(op_err(what, e)),
        }
        let secret = decl.secret().map_err(|reason| ReconcileError::Declared {
            what: what.clone(),
            reason,
        })?;
        let new = NewAwsConnection {
            name: name.clone(),
            access_key_id: decl.access_key_id.clone(),
            secret_access_key: secret,
            role_arn: decl.role_arn.clone(),
            endpoint_url: decl.endpoint_url.clone(),
            sts_endpoint_url: decl.sts_endpoint_url.clone(),
            sts_regional_endpoints: decl.sts_regional_endpoints,
            ca_file: decl
                .ca_file
                .as_ref()
                .map(|p| p.to_string_lossy().into_owned()),
        };
        ops.create_aws_connection(new)
            .map_err(|e| op_err(what, e))?;
        tracing::info!(connection = %name, "created AWS connection");
    }
    for (id, decl) in &cfg.aws.accounts {
        let what = format!("aws.accounts.{id}");
        match ops.get_account(id) {
            Ok(_) => continue,
            Err(OpError::NotFound { .. }) => {}
            Err(e) => return Err(op_err(what, e)),
        }
        ops.create_account_with(
            id,
            &decl.name,
            decl.regions.clone(),
            Vec::new(),
            decl.connection.clone(),
        )
        .map_err(|e| op_err(what, e))?;
        tracing::info!(account = %id, "created AWS account");
    }
    Ok(())
}

/// What [`link_declared`] did to one declared store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkOutcome {
    /// Linked and in the declared state already.
    Unchanged,
    /// Found on AWS KMS by endpoint and path, and recorded as linked.
    Found,
    /// Created on AWS KMS.
    Linked,
    /// Connected (after linking, or already linked).
    Connected,
}

/// Links (and connects, when declared) every declared store that says `linked`.
/// Returns, per such store, what was done or why it failed (AWS unreachable, the proxy
/// unreachable from AWS KMS, ...): failures are for the caller to log and retry.
pub fn link_declared(
    cfg: &Config,
    ops: &Operations,
) -> Vec<(String, Result<Vec<LinkOutcome>, OpError>)> {
    cfg.stores
        .iter()
        .filter(|d| d.linked)
        .map(|d| (d.name.clone(), link_one(ops, &d.name, d.connected)))
        .collect()
}

fn link_one(ops: &Operations, name: &str, connected: bool) -> Result<Vec<LinkOutcome>, OpError> {
    let id = ops.store_id_by_name(name)?;
    let mut done = Vec::new();
    let mut store = ops.get_store(&id)?.value;
    if store.aws.is_none() {
        let kms = ops.kms_for_store(&store)?;
        let endpoint = match &store.location {
            crate::model::XksLocation::Public { endpoint }
            | crate::model::XksLocation::Vpc { endpoint, .. } => endpoint.clone(),
            crate::model::XksLocation::Unset => String::new(),
        };
        let path = store.xks_base_path();
        let existing = crate::ops::block_on_aws(kms.list_xks_stores())?
            .into_iter()
            .find(|s| s.uri_endpoint == endpoint && s.uri_path == path);
        store = match existing {
            Some(found) => {
                done.push(LinkOutcome::Found);
                let link = AwsLink {
                    custom_key_store_id: found.id,
                    connection_state: found.connection_state,
                    connection_error_code: found.connection_error_code,
                };
                ops.set_store_link(&id, Some(link))?.value
            }
            None => {
                done.push(LinkOutcome::Linked);
                ops.link_store(&id, LinkRequest::default())?.value
            }
        };
    }
    let state = store.aws.as_ref().map(|l| l.connection_state);
    if connected && state != Some(ConnectionState::Connected) {
        if state == Some(ConnectionState::Failed) {
            // AWS KMS wants a failed store disconnected before it connects again.
            ops.set_store_connected(&id, false)?;
        }
        let now = ops.set_store_connected(&id, true)?.value;
        match now
            .aws
            .as_ref()
            .map(|l| (l.connection_state, &l.connection_error_code))
        {
            Some((ConnectionState::Connected, _)) => done.push(LinkOutcome::Connected),
            Some((s, code)) => {
                return Err(OpError::Rule(crate::model::rules::RuleViolation {
                    code: "connect_failed",
                    message: format!(
                        "key store '{name}' is {} on AWS KMS (ConnectionErrorCode {})",
                        s.as_str(),
                        code.as_deref().unwrap_or("none")
                    ),
                }));
            }
            None => {}
        }
    }
    if done.is_empty() {
        done.push(LinkOutcome::Unchanged);
    }
    Ok(done)
}

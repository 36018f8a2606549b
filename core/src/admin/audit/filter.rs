//! The rules of `GET /api/v1/audit`, without I/O: reading its query, which records a
//! filter keeps, and how a stored record is shown ([`summarize`]).

use serde_json::Value;

use crate::{
    admin::ApiError,
    api::audit::{AuditRecord, DEFAULT_LIMIT, MAX_LIMIT},
    audit::Record,
};

/// The query of `GET /api/v1/audit`, read.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct Query {
    pub store: Option<String>,
    pub user: Option<String>,
    pub outcome: Option<Outcome>,
    pub action: Option<String>,
    pub limit: usize,
    pub before: Option<u64>,
}

/// Which outcomes the `outcome` filter keeps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Outcome {
    /// `success`: `ok` and `succeeded`.
    Success,
    /// `failure`: every other outcome.
    Failure,
    /// Exactly this outcome, as recorded (e.g. `refused: forbidden`).
    Exactly(String),
}

fn invalid(message: String) -> ApiError {
    ApiError::new(400, "invalid_input", message)
}

/// Reads the query string: unknown or repeated parameters, empty values, a limit
/// outside `1..=1000` and a `before` that is not a positive number are refused with
/// 400 `invalid_input`.
pub(super) fn parse_query(query: Option<&str>) -> Result<Query, ApiError> {
    let mut q = Query::default();
    let mut limit = None;
    let pairs = query
        .unwrap_or_default()
        .split('&')
        .filter(|p| !p.is_empty());
    for pair in pairs {
        let (name, raw) = pair.split_once('=').unwrap_or((pair, ""));
        let name = decode(name);
        let value = decode(raw);
        let shown = crate::logsafe::clip_to(&name, 64);
        if value.is_empty() {
            return Err(invalid(format!("query parameter '{shown}' is empty")));
        }
        let slot_taken = match name.as_str() {
            "store" => q.store.replace(value).is_some(),
            "user" => q.user.replace(value).is_some(),
            "action" => q.action.replace(value).is_some(),
            "outcome" => q.outcome.replace(parse_outcome(value)).is_some(),
            "limit" => limit.replace(parse_limit(&value)?).is_some(),
            "before" => q.before.replace(parse_before(&value)?).is_some(),
            _ => {
                return Err(invalid(format!(
                    "unknown query parameter '{shown}' (store, user, outcome, action, limit, before)"
                )));
            }
        };
        if slot_taken {
            return Err(invalid(format!("query parameter '{shown}' is given twice")));
        }
    }
    q.limit = limit.unwrap_or(DEFAULT_LIMIT);
    Ok(q)
}

/// A query component, percent-decoded (`+` is a space).
fn decode(s: &str) -> String {
    percent_encoding::percent_decode_str(&s.replace('+', " "))
        .decode_utf8_lossy()
        .into_owned()
}

fn parse_outcome(value: String) -> Outcome {
    match value.as_str() {
        "success" => Outcome::Success,
        "failure" => Outcome::Failure,
        _ => Outcome::Exactly(value),
    }
}

fn parse_limit(value: &str) -> Result<usize, ApiError> {
    let refused = || {
        invalid(format!(
            "limit must be a number of records from 1 to {MAX_LIMIT}, got '{}'",
            crate::logsafe::clip_to(value, 32)
        ))
    };
    match value.parse::<usize>() {
        Ok(n) if (1..=MAX_LIMIT).contains(&n) => Ok(n),
        _ => Err(refused()),
    }
}

fn parse_before(value: &str) -> Result<u64, ApiError> {
    match value.parse::<u64>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(invalid(format!(
            "before must be a record's sequence number (a page's next_before), got '{}'",
            crate::logsafe::clip_to(value, 32)
        ))),
    }
}

/// What a filter keeps: every condition given must hold.
#[derive(Debug, Default, Clone)]
pub(super) struct Filter {
    /// The names a record may give the store by (the reference asked for, and the
    /// store's id and current name when it exists); `None`: any record.
    pub stores: Option<Vec<String>>,
    pub user: Option<String>,
    pub outcome: Option<Outcome>,
    pub action: Option<String>,
}

impl Filter {
    /// Whether the record with `event` is kept.
    pub fn keeps(&self, event: &Value) -> bool {
        if let Some(names) = &self.stores {
            match store_of(event) {
                Some(s) if names.iter().any(|n| *n == s) => {}
                _ => return false,
            }
        }
        if let Some(user) = &self.user {
            if event["user"].as_str() != Some(user) {
                return false;
            }
        }
        if let Some(action) = &self.action {
            if action_of(event) != Some(action.as_str()) {
                return false;
            }
        }
        match &self.outcome {
            None => true,
            Some(Outcome::Success) => success(event) == Some(true),
            Some(Outcome::Failure) => success(event) == Some(false),
            Some(Outcome::Exactly(o)) => outcome_of(event).as_deref() == Some(o.as_str()),
        }
    }
}

fn str_field(event: &Value, field: &str) -> Option<String> {
    event[field].as_str().map(str::to_string)
}

fn is_xks(event: &Value) -> bool {
    event["kind"] == "xks"
}

/// The store a record is about: an XKS record's `store` (a name); an admin record's
/// object `store/<ref>[/...]` (an id, or the name when the store is created).
pub(super) fn store_of(event: &Value) -> Option<&str> {
    if is_xks(event) {
        return event["store"].as_str();
    }
    let object = event["object"].as_str()?;
    let rest = object.strip_prefix("store/")?;
    let store = rest.split('/').next().unwrap_or(rest);
    (!store.is_empty()).then_some(store)
}

/// An admin record's action, an XKS record's operation.
fn action_of(event: &Value) -> Option<&str> {
    if is_xks(event) {
        event["operation"].as_str()
    } else {
        event["action"].as_str()
    }
}

/// The outcome as recorded (aggregated unauthenticated refusals have none of their
/// own: they are refusals).
fn outcome_of(event: &Value) -> Option<String> {
    str_field(event, "outcome")
}

/// Whether the record's outcome is a success; `None` for a record without one.
pub(super) fn success(event: &Value) -> Option<bool> {
    if event["kind"] == "xks_refusals_aggregated" {
        return Some(false);
    }
    let outcome = event["outcome"].as_str()?;
    Some(matches!(outcome, "ok" | "succeeded"))
}

/// How the API shows a stored record.
pub(super) fn summarize(rec: Record) -> AuditRecord {
    let e = &rec.event;
    let object = if is_xks(e) {
        e["store"].as_str().map(|s| match e["keyId"].as_str() {
            Some(k) => format!("store/{s}/key/{k}"),
            None => format!("store/{s}"),
        })
    } else {
        str_field(e, "object")
    };
    AuditRecord {
        seq: rec.seq,
        time: rec.time.clone(),
        kind: str_field(e, "kind"),
        user: str_field(e, "user"),
        action: action_of(e).map(str::to_string),
        object,
        store: store_of(e).map(str::to_string),
        outcome: outcome_of(e),
        success: success(e),
        node: str_field(e, "node"),
        event: rec.event,
    }
}

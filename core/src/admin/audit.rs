//! The audit log over the API (admins only: it holds every account's and user's
//! actions, and no ACL permission grants it): its records newest first, filtered and a
//! page at a time, and whether its hash chain verifies. Both read the answering node's
//! own log (each node of a cluster keeps its own chain) on the blocking pool; a page
//! reads segments backwards from the newest and stops once full.

mod filter;

use axum::extract::RawQuery;

use super::{ApiError, prelude::*, responses::AdminOnly};
use crate::{
    api::audit::{AuditPage, AuditStatus, ChainAnchor, ChainProblem, ChainState},
    audit::{Anchor, AuditError, PageRequest, VerifyReport},
    ops::Operations,
};

use self::filter::{Filter, parse_query, summarize};

/// Lines one page examines at most.
const PAGE_BUDGET: u64 = 100_000;

pub(super) fn routes() -> OpenApiRouter<AdminState> {
    OpenApiRouter::new()
        .routes(routes!(list_audit))
        .routes(routes!(audit_status))
}

/// `GET /api/v1/audit` query (documented here, read by [`filter::parse_query`]).
#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
struct AuditQuery {
    /// Only records about this store (its id or name; a deleted store's too): admin
    /// changes of the store, its credentials, keys and schedule, and its XKS requests.
    store: Option<String>,
    /// Only records by this admin API user (e.g. `root`, `(scheduler)`).
    user: Option<String>,
    /// `success` (`ok`, `succeeded`), `failure` (every other outcome: refusals, failed
    /// jobs, XKS errors), or an outcome exactly as recorded (e.g. `refused: forbidden`,
    /// `AuthenticationFailedException`).
    outcome: Option<String>,
    /// Only this admin operation (e.g. `create_store`) or XKS operation (e.g. `Encrypt`).
    action: Option<String>,
    /// Records per page, 1 to 1000 (default 100).
    limit: Option<usize>,
    /// Only records older than this sequence number (the previous page's `next_before`).
    before: Option<u64>,
}

fn unreadable(e: AuditError) -> ApiError {
    ApiError::new(500, "audit_unreadable", e.to_string())
}

fn task_failed(e: tokio::task::JoinError) -> ApiError {
    ApiError::internal(format!("task failed: {e}"))
}

/// The names a record may give store `reference` by: the reference itself, and the
/// store's id and current name when it exists.
fn store_names(
    ops: &Operations,
    reference: String,
) -> std::result::Result<Vec<String>, crate::ops::OpError> {
    let mut names = vec![reference.clone()];
    let id = match ops.store_id_for_name(&reference)? {
        Some(id) => id,
        None => reference,
    };
    match ops.get_store(&id) {
        Ok(store) => {
            names.push(store.value.name);
            names.push(id);
        }
        Err(crate::ops::OpError::NotFound { .. }) => {}
        Err(e) => return Err(e),
    }
    names.sort();
    names.dedup();
    Ok(names)
}

/// The audit log, newest first (admins only).
///
/// Records of the answering node's log that match every filter given, at most `limit`
/// of them; `next_before` continues with older records. The records are shown as
/// written; whether the chain verifies is `GET /api/v1/audit/status`.
#[utoipa::path(get, path = "/api/v1/audit", params(AuditQuery), responses(
    (status = 200, description = "A page of records, newest first.", body = AuditPage),
    (status = 400, description = "An unknown or repeated parameter, a limit outside 1..=1000, a before that is not a sequence number (invalid_input).", body = ErrorBody),
    AdminOnly,
    (status = 500, description = "The log could not be read (audit_unreadable).", body = ErrorBody),
))]
async fn list_audit(Admin(c): Admin, RawQuery(query): RawQuery) -> Result<Json<AuditPage>> {
    let q = parse_query(query.as_deref())?;
    let stores = match q.store {
        None => None,
        Some(reference) => Some(c.read(move |ops, _| store_names(ops, reference)).await?),
    };
    let filter = Filter {
        stores,
        user: q.user,
        outcome: q.outcome,
        action: q.action,
    };
    let req = PageRequest {
        before: q.before,
        limit: q.limit,
        budget: PAGE_BUDGET,
    };
    let audit = c.audit_log().clone();
    let page =
        tokio::task::spawn_blocking(move || audit.read_page(&req, |rec| filter.keeps(&rec.event)))
            .await
            .map_err(task_failed)?
            .map_err(unreadable)?;
    Ok(Json(AuditPage {
        records: page.records.into_iter().map(summarize).collect(),
        next_before: page.next_before,
        scanned: page.scanned,
        unreadable: page.unreadable,
    }))
}

/// Whether the audit log's chain verifies (admins only).
///
/// Verifies the answering node's whole log now, as `keyhold audit-verify` does
/// (streaming, with the chain key, against the store's anchor), while it is being
/// written: `broken` names each segment and record that does not verify, and why.
#[utoipa::path(get, path = "/api/v1/audit/status", responses(
    (status = 200, description = "The chain's state.", body = AuditStatus),
    AdminOnly,
    (status = 500, description = "The log could not be read (audit_unreadable).", body = ErrorBody),
))]
async fn audit_status(Admin(c): Admin) -> Result<Json<AuditStatus>> {
    let audit = c.audit_log().clone();
    let (report, anchor) = tokio::task::spawn_blocking(move || audit.verify_now())
        .await
        .map_err(task_failed)?
        .map_err(unreadable)?;
    let node = c.membership().node_id().to_string();
    Ok(Json(status_of(
        &report,
        anchor.as_ref(),
        node,
        crate::audit::now_rfc3339(),
    )))
}

/// A segment's file name (the data directory is not shown).
fn file_name(path: &std::path::Path) -> String {
    path.file_name().map_or_else(
        || path.display().to_string(),
        |f| f.to_string_lossy().into_owned(),
    )
}

/// The status the API shows for a verification's report.
fn status_of(
    report: &VerifyReport,
    anchor: Option<&Anchor>,
    node: String,
    checked_at: String,
) -> AuditStatus {
    let mut problems: Vec<ChainProblem> = report
        .damaged
        .iter()
        .map(|d| {
            let segment = file_name(&d.path);
            ChainProblem {
                kind: "damaged_segment".into(),
                message: format!("{segment}: record {} does not verify: {}", d.line, d.reason),
                segment: Some(segment),
                line: Some(d.line),
                seq: None,
            }
        })
        .collect();
    problems.extend(report.anchor_problem.iter().map(|p| ChainProblem {
        kind: "anchor".into(),
        segment: None,
        line: None,
        seq: None,
        message: p.clone(),
    }));
    problems.extend(report.tail_missing.iter().map(|seq| ChainProblem {
        kind: "tail_missing".into(),
        segment: None,
        line: None,
        seq: Some(*seq),
        message: format!(
            "record {seq}: on a start the server found the log's tail cut (the store's anchor named a later record)"
        ),
    }));
    AuditStatus {
        state: if report.is_intact() {
            ChainState::Verified
        } else {
            ChainState::Broken
        },
        node,
        segments: report.segments.len() as u64,
        records: report.records,
        last_seq: report.last_seq,
        last_hash: report.last_hash.clone(),
        keyed_from: report.keyed_from,
        anchor: anchor.map(|a| ChainAnchor {
            seq: a.seq,
            hash: a.hash.clone(),
            matched: report.anchor_problem.is_none(),
        }),
        problems,
        checked_at,
    }
}

#[cfg(test)]
mod tests;

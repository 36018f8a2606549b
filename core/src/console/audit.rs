//! The audit log (admins only, as the API says): the chain's status as a banner
//! (verified, or broken with each problem), a filter form (store, user, outcome,
//! action; a GET form, nothing changes), the records newest first, and paging to older
//! records with the API's `next_before`.

use std::collections::HashMap;

use axum::{Router, extract::Query, response::Response, routing::get};
use maud::{Markup, html};

use super::{ConsoleState, Field, Session, error_banner, ok_banner, page_with_status, table};
use crate::api::audit::{AuditPage, AuditStatus, ChainState};

pub(super) fn routes() -> Router<ConsoleState> {
    Router::new().route("/console/audit", get(list))
}

/// The filters the page passes on to the API, in this order.
const FILTERS: &[&str] = &["store", "user", "outcome", "action", "limit"];

/// Records per page when none is asked for.
const PAGE: &str = "50";

/// A query string value, percent-encoded.
fn enc(v: &str) -> String {
    percent_encoding::utf8_percent_encode(v, percent_encoding::NON_ALPHANUMERIC).to_string()
}

/// The query (`a=b&c=d`, empty values left out) of the filters in `q`, with
/// `before` when given.
pub fn filter_query(q: &HashMap<String, String>, before: Option<u64>) -> String {
    let mut pairs: Vec<String> = FILTERS
        .iter()
        .filter_map(|f| {
            let v = q.get(*f).map(|v| v.trim()).filter(|v| !v.is_empty())?;
            Some(format!("{f}={}", enc(v)))
        })
        .collect();
    if !q.contains_key("limit") {
        pairs.push(format!("limit={PAGE}"));
    }
    if let Some(b) = before {
        pairs.push(format!("before={b}"));
    }
    pairs.join("&")
}

/// The chain's status banner.
fn status_banner(s: &AuditStatus) -> Markup {
    match s.state {
        ChainState::Verified => ok_banner(&format!(
            "Audit chain verified: {} records in {} segments{} (node {}).",
            s.records,
            s.segments,
            s.anchor
                .as_ref()
                .map(|a| format!(", matching the store's anchor at record {}", a.seq))
                .unwrap_or_default(),
            s.node
        )),
        ChainState::Broken => html! {
            div role="alert" class="error" data-code="audit_chain_broken" id="chain-status" {
                strong { "The audit chain does NOT verify (node " (s.node) "):" }
                ul {
                    @for p in &s.problems { li data-kind=(p.kind) { (p.message) } }
                }
            }
        },
    }
}

fn filter_form(q: &HashMap<String, String>) -> Markup {
    let v = |f: &str| q.get(f).cloned().unwrap_or_default();
    let mut outcomes = [
        ("", "Any outcome"),
        ("success", "Success"),
        ("failure", "Failure"),
    ]
    .map(|(v, t)| (v.to_string(), t.to_string()))
    .to_vec();
    // An exact outcome asked for in the address (e.g. `refused: forbidden`) stays
    // selected.
    let asked = v("outcome");
    if !outcomes.iter().any(|(o, _)| *o == asked) {
        outcomes.push((asked.clone(), asked));
    }
    html! {
        form id="audit-filter-form" method="get" action="/console/audit" class="stack filters" {
            (Field::text("store", "Store").value(v("store")).help("Its name or id."))
            (Field::text("user", "User").value(v("user")))
            (Field::select("outcome", "Outcome", outcomes).value(v("outcome")))
            (Field::text("action", "Action").value(v("action"))
                .help("An admin operation (create_store) or an XKS operation (Encrypt)."))
            div class="actions" {
                button id="audit-filter-submit" type="submit" class="primary" { "Filter" }
                " "
                a href="/console/audit" { "Clear" }
            }
        }
    }
}

fn records_table(p: &AuditPage) -> Markup {
    let rows = html! {
        @for r in &p.records {
            tr data-name=(r.seq) {
                td { (r.seq) }
                td { (r.time) }
                td { (r.kind.as_deref().unwrap_or("—")) }
                td { (r.user.as_deref().unwrap_or("—")) }
                td { (r.action.as_deref().unwrap_or("—")) }
                td { (r.object.as_deref().unwrap_or("—")) }
                td {
                    @match r.success {
                        Some(true) => span class="badge good" { (r.outcome.as_deref().unwrap_or("ok")) },
                        Some(false) => span class="badge bad" { (r.outcome.as_deref().unwrap_or("failed")) },
                        None => "—",
                    }
                }
            }
        }
    };
    table(
        "audit-records",
        "Audit records, newest first",
        &["Seq", "Time", "Kind", "User", "Action", "Object", "Outcome"],
        rows,
    )
}

async fn list(sess: Session, Query(q): Query<HashMap<String, String>>) -> Response {
    let before = q.get("before").and_then(|b| b.trim().parse::<u64>().ok());
    let records = sess
        .api
        .get::<AuditPage>(&format!("/api/v1/audit?{}", filter_query(&q, before)))
        .await;
    // The whole chain is verified for the first page only (it reads every segment).
    let status = match (&records, before) {
        (Ok(_), None) => Some(sess.api.get::<AuditStatus>("/api/v1/audit/status").await),
        _ => None,
    };
    let body = html! {
        h1 { "Audit log" }
        @match &status {
            Some(Ok(s)) => (status_banner(s)),
            Some(Err(e)) => (error_banner(e)),
            None => {},
        }
        (filter_form(&q))
        @match &records {
            Err(e) => (error_banner(e)),
            Ok(p) => {
                @if p.records.is_empty() { p { "No records match." } }
                @else { (records_table(p)) }
                nav class="pager" aria-label="Pages" {
                    @if before.is_some() {
                        a id="audit-newest" href={ "/console/audit?" (filter_query(&q, None)) } { "Newest" }
                        " "
                    }
                    @if let Some(next) = p.next_before {
                        a id="audit-older" rel="next" href={ "/console/audit?" (filter_query(&q, Some(next))) } { "Older records" }
                    }
                }
            }
        }
    };
    let code = records
        .as_ref()
        .err()
        .map_or(axum::http::StatusCode::OK, |e| e.status);
    page_with_status(&sess, code, "audit", "Audit log", body)
}

#[cfg(test)]
mod tests;

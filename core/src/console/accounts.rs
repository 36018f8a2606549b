//! AWS accounts and their ACLs: the list (accounts the user may view) with the create
//! form, an account's page with its edit form (the account's `ETag` sent back as
//! `If-Match`: a change made meanwhile shows the conflict with the current values),
//! "refresh all" (a job, followed on the operations page) and delete with confirmation.

use std::collections::{BTreeSet, HashMap};

use axum::{
    Router,
    extract::{Path, Query},
    http::{Method, StatusCode},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use maud::{Markup, html};

use super::{
    ApiFailure, ConsoleState, Field, FormData, Post, Session, Style, button_form, confirm_form,
    details, error_banner, notice, page_with_status, post_form, redirect, seg, table, when,
};
use crate::api::{
    accounts::{Account, AccountPatch, AclEntry, NewAccount, Permission},
    jobs::Job,
};

pub(super) fn routes() -> Router<ConsoleState> {
    Router::new()
        .route("/console/accounts", get(list).post(create))
        .route("/console/accounts/{id}", get(show).post(update))
        .route("/console/accounts/{id}/delete", post(delete))
        .route("/console/accounts/{id}/refresh", post(refresh))
}

const DONE: &[(&str, &str)] = &[
    ("created", "Account created."),
    ("updated", "Account saved."),
    ("deleted", "Account deleted."),
];

/// An ACL as text: one entry per line, `user:alice = view, create_store`.
pub fn acl_text(acl: &[AclEntry]) -> String {
    acl.iter()
        .map(|e| {
            let perms: Vec<&str> = e.permissions.iter().map(|p| p.as_str()).collect();
            format!("{} = {}", e.principal, perms.join(", "))
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Reads an ACL written as [`acl_text`] writes it; `Err` names the line and what is
/// wrong (the API checks the principals).
pub fn parse_acl(text: &str) -> Result<Vec<AclEntry>, String> {
    let mut acl = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let Some((principal, perms)) = line.split_once('=') else {
            return Err(format!(
                "ACL line {}: write `user:<name> = view, create_store` or `group:<name> = ...`",
                i + 1
            ));
        };
        let mut permissions = BTreeSet::new();
        for p in perms.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let perm: Permission = serde_json::from_value(serde_json::Value::String(p.into()))
                .map_err(|_| {
                    let known: Vec<&str> = Permission::ALL.iter().map(|p| p.as_str()).collect();
                    format!(
                        "ACL line {}: unknown permission '{p}' (one of {})",
                        i + 1,
                        known.join(", ")
                    )
                })?;
            permissions.insert(perm);
        }
        acl.push(AclEntry {
            principal: principal.trim().to_string(),
            permissions,
        });
    }
    Ok(acl)
}

/// Regions from a comma- or line-separated list.
pub fn parse_list(text: &str) -> Vec<String> {
    text.split([',', '\n'])
        .map(str::trim)
        .filter(|r| !r.is_empty())
        .map(str::to_string)
        .collect()
}

fn account_fields(values: &FormData, with_id: bool, bad: Option<&(String, String)>) -> Markup {
    let err = |name: &str| bad.filter(|(f, _)| f == name).map(|(_, m)| m.clone());
    html! {
        @if with_id {
            (Field::text("id", "AWS account id").value(values.text("id")).required()
                .attr("pattern", "[0-9]{12}").help("The 12-digit AWS account id.").error(err("id")))
        }
        (Field::text("name", "Name").value(values.text("name")).required().error(err("name")))
        (Field::text("regions", "Regions").value(values.text("regions"))
            .help("Comma-separated, e.g. eu-west-1, us-east-1.").error(err("regions")))
        (Field::text("aws_connection", "AWS connection").value(values.text("aws_connection"))
            .help("The name of the AWS connection that reaches its AWS KMS (empty: none).")
            .error(err("aws_connection")))
        (Field::textarea("acl", "ACL").value(values.text("acl"))
            .help("One entry per line: user:<name> = view, create_store (or group:<name> = ...). \
                   Permissions: view, create_store, update_store, delete_store, \
                   manage_credentials, block, manage_keys.")
            .error(err("acl")))
    }
}

/// Which field a refusal is about (for the form).
fn field_of(e: &ApiFailure) -> Option<&'static str> {
    let m = e.message.to_lowercase();
    if m.contains("acl") || m.contains("principal") {
        Some("acl")
    } else if m.contains("region") {
        Some("regions")
    } else if m.contains("connection") {
        Some("aws_connection")
    } else if m.contains("account id") || m.contains("12 digits") {
        Some("id")
    } else if m.contains("name") {
        Some("name")
    } else {
        None
    }
}

async fn list_page(
    sess: &Session,
    status: StatusCode,
    q: &HashMap<String, String>,
    values: &FormData,
    refusal: Option<&ApiFailure>,
    bad: Option<(String, String)>,
) -> Response {
    let accounts = sess.api.get::<Vec<Account>>("/api/v1/accounts").await;
    let rows = match &accounts {
        Ok(list) => html! {
            @for a in list {
                tr data-name=(a.id) {
                    td { a href={ "/console/accounts/" (seg(&a.id)) } { code { (a.id) } } }
                    td { (a.name) }
                    td { (a.regions.join(", ")) }
                    td { (a.aws_connection.as_deref().unwrap_or("—")) }
                    td { @for e in &a.acl { div { code { (acl_text(std::slice::from_ref(e))) } } } }
                }
            }
        },
        Err(_) => html! {},
    };
    let body = html! {
        h1 { "AWS accounts" }
        (notice(q, DONE))
        @if let Some(e) = refusal { (error_banner(e)) }
        @match &accounts {
            Err(e) => (error_banner(e)),
            Ok(list) if list.is_empty() => p { "No accounts you may view." },
            Ok(_) => (table("accounts", "AWS accounts", &["ID", "Name", "Regions", "AWS connection", "ACL"], rows)),
        }
        h2 { "Create an account" }
        p class="help" { "Admins only. Key stores of the account are governed by its ACL." }
        (post_form(sess, "create-account", "/console/accounts",
            account_fields(values, true, bad.as_ref()), "Create account"))
    };
    page_with_status(sess, status, "accounts", "AWS accounts", body)
}

async fn list(sess: Session, Query(q): Query<HashMap<String, String>>) -> Response {
    list_page(&sess, StatusCode::OK, &q, &FormData::default(), None, None).await
}

async fn create(Post { sess, form }: Post) -> Response {
    let no_query = HashMap::new();
    let acl = match parse_acl(form.text("acl")) {
        Ok(acl) => acl,
        Err(m) => {
            let e = ApiFailure::new(StatusCode::BAD_REQUEST, "invalid_input", m.clone());
            let bad = Some(("acl".to_string(), m));
            return list_page(&sess, e.status, &no_query, &form, Some(&e), bad).await;
        }
    };
    let body = NewAccount {
        id: form.text("id").to_string(),
        name: form.text("name").to_string(),
        regions: parse_list(form.text("regions")),
        acl,
        aws_connection: form.opt("aws_connection"),
    };
    match sess.api.post::<_, Account>("/api/v1/accounts", &body).await {
        Ok(a) => redirect(&format!("/console/accounts/{}?done=created", seg(&a.id))),
        Err(e) => {
            let bad = field_of(&e).map(|f| (f.to_string(), e.message.clone()));
            list_page(&sess, e.status, &no_query, &form, Some(&e), bad).await
        }
    }
}

/// The form values of an account as stored.
fn values_of(a: &Account) -> FormData {
    let regions = a.regions.join(", ");
    let acl = acl_text(&a.acl);
    FormData::from_pairs([
        ("name", a.name.as_str()),
        ("regions", regions.as_str()),
        ("aws_connection", a.aws_connection.as_deref().unwrap_or("")),
        ("acl", acl.as_str()),
    ])
}

/// An account's page: details, the edit form (with `values` and `etag`), refresh and
/// delete.
fn account_page(
    sess: &Session,
    status: StatusCode,
    a: &Account,
    etag: &str,
    values: &FormData,
    banner: Option<Markup>,
    q: &HashMap<String, String>,
) -> Response {
    let base = format!("/console/accounts/{}", seg(&a.id));
    let body = html! {
        p { a href="/console/accounts" { "← AWS accounts" } }
        h1 { "Account " (a.name) }
        (notice(q, DONE))
        @if let Some(b) = banner { (b) }
        (details(&[
            ("ID", html! { code { (a.id) } }),
            ("Regions", html! { (a.regions.join(", ")) }),
            ("AWS connection", html! { (a.aws_connection.as_deref().unwrap_or("—")) }),
            ("Created", html! { (when(a.created_at)) }),
        ]))
        h2 { "Edit" }
        form id="update-account-form" method="post" action=(base) class="stack" {
            (super::csrf_field(sess))
            input type="hidden" name="etag" value=(etag);
            (account_fields(values, false, None))
            div class="actions" {
                button id="update-account-submit" type="submit" class="primary" { "Save" }
            }
        }
        h2 { "Refresh all" }
        p class="help" { "Imports the account's key stores and keys from AWS KMS, as a job." }
        (button_form(sess, "refresh-account", &format!("{base}/refresh"), "Refresh all", Style::Plain))
        h2 { "Delete" }
        (confirm_form(sess, "delete-account", &format!("{base}/delete"), &a.id, "Delete account"))
    };
    page_with_status(
        sess,
        status,
        "accounts",
        &format!("Account {}", a.name),
        body,
    )
}

async fn show(
    sess: Session,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let path = format!("/api/v1/accounts/{}", seg(&id));
    match sess.api.get_etag::<Account>(&path).await {
        Ok((a, etag)) => {
            let values = values_of(&a);
            account_page(&sess, StatusCode::OK, &a, &etag, &values, None, &q)
        }
        Err(e) => e.into_response(),
    }
}

async fn update(Path(id): Path<String>, Post { sess, form }: Post) -> Response {
    let path = format!("/api/v1/accounts/{}", seg(&id));
    let no_query = HashMap::new();
    let acl = parse_acl(form.text("acl"));
    let patch = acl.clone().map(|acl| AccountPatch {
        name: Some(form.text("name").to_string()),
        regions: Some(parse_list(form.text("regions"))),
        acl: Some(acl),
        aws_connection: Some(form.text("aws_connection").to_string()),
    });
    let sent = match patch {
        Ok(patch) => match serde_json::to_vec(&patch) {
            Ok(body) => {
                sess.api
                    .call(Method::PUT, &path, Some(body), Some(form.text("etag")))
                    .await
            }
            Err(e) => Err(ApiFailure::internal(e.to_string())),
        },
        Err(m) => Err(ApiFailure::new(StatusCode::BAD_REQUEST, "invalid_input", m)),
    };
    let e = match sent {
        Ok(_) => return redirect(&format!("/console/accounts/{}?done=updated", seg(&id))),
        Err(e) => e,
    };
    // Shown again with the refusal: a conflict with the current values and version,
    // anything else with what was submitted.
    let (a, etag) = match sess.api.get_etag::<Account>(&path).await {
        Ok(found) => found,
        Err(now) => return now.into_response(),
    };
    let (values, banner) = if e.status == StatusCode::PRECONDITION_FAILED {
        let banner = html! {
            (error_banner(&e))
            p class="conflict" { "The account was changed meanwhile: the form now shows its current values. Make your change again and save." }
        };
        (values_of(&a), banner)
    } else {
        (form, error_banner(&e))
    };
    account_page(&sess, e.status, &a, &etag, &values, Some(banner), &no_query)
}

async fn delete(Path(id): Path<String>, Post { sess, form }: Post) -> Response {
    let path = format!("/api/v1/accounts/{}", seg(&id));
    if !form.confirmed(&id) {
        let e = ApiFailure::new(
            StatusCode::BAD_REQUEST,
            "confirmation_mismatch",
            format!("type the account id {id} to confirm"),
        );
        return super::html::failure_page(&e);
    }
    match sess.api.delete(&path).await {
        Ok(()) => redirect("/console/accounts?done=deleted"),
        Err(e) => refused(&sess, &id, &e).await,
    }
}

/// Account `id`'s page again with the API's refusal `e` of an action on it (its
/// current values in the form); the bare refusal when the account cannot be read.
async fn refused(sess: &Session, id: &str, e: &ApiFailure) -> Response {
    let path = format!("/api/v1/accounts/{}", seg(id));
    let Ok((a, etag)) = sess.api.get_etag::<Account>(&path).await else {
        return e.clone().into_response();
    };
    let values = values_of(&a);
    let no_query = HashMap::new();
    let banner = Some(error_banner(e));
    account_page(sess, e.status, &a, &etag, &values, banner, &no_query)
}

async fn refresh(Path(id): Path<String>, Post { sess, .. }: Post) -> Response {
    let path = format!("/api/v1/accounts/{}/refresh", seg(&id));
    match sess.api.post_empty::<Job>(&path).await {
        Ok(job) => redirect(&format!(
            "/console/operations/jobs/{}?done=started",
            seg(&job.id)
        )),
        Err(e) => refused(&sess, &id, &e).await,
    }
}

#[cfg(test)]
mod tests;

//! A key store's page: details, the health-check URI, charts, edit (with the version
//! conflict shown), block/unblock, link/connect/disconnect, delete with confirmation;
//! its credentials and HYOK keys come from [`super::store_keys`].

use std::collections::HashMap;

use axum::{
    Router,
    extract::{Path, Query},
    http::StatusCode,
    response::{IntoResponse, Response},
    routing::{get, post},
};
use maud::{Markup, PreEscaped, html};

use super::{
    ApiFailure, ConsoleState, Field, FormData, Post, Session, Style, button_form, confirm_form,
    details, error_banner, notice, page_with_status, post_form, redirect, seg, store_keys,
    stores::{
        err_for, field_of, link_state, location_fields, location_fields_in, location_from_form,
        location_values,
    },
    when,
};
use crate::api::{
    metrics::StoreHistory,
    stores::{ConnectionState, LinkPlan, LinkRequest, Store, StorePatch, StoreRecord, XksLocation},
};

pub(super) fn routes() -> Router<ConsoleState> {
    Router::new()
        .route("/console/stores/{id}", get(show))
        .route("/console/stores/{id}/edit", post(edit))
        .route("/console/stores/{id}/block", post(block))
        .route("/console/stores/{id}/unblock", post(unblock))
        .route("/console/stores/{id}/link/review", post(review_link))
        .route("/console/stores/{id}/link", post(link))
        .route("/console/stores/{id}/connect", post(connect))
        .route("/console/stores/{id}/disconnect", post(disconnect))
        .route("/console/stores/{id}/delete", post(delete))
}

/// The success texts of `?done=` on a store's page.
const DONE: &[(&str, &str)] = &[
    ("created", "Key store created."),
    ("saved", "Changes saved."),
    (
        "blocked",
        "Key store blocked: AWS KMS's requests are refused.",
    ),
    ("unblocked", "Key store unblocked."),
    (
        "linked",
        "Key store linked: its external key store exists on AWS KMS.",
    ),
    ("connected", "Connect requested: see the connection state."),
    (
        "disconnected",
        "Disconnect requested: see the connection state.",
    ),
    (
        "credential_added",
        "Credential added: download its credentials file below (once).",
    ),
    ("credential_deleted", "Credential deleted."),
    ("schedule_assigned", "Rotation schedule assigned."),
    ("schedule_unassigned", "Rotation schedule unassigned."),
    ("key_created", "HYOK key created."),
    ("key_deleted", "HYOK key deleted."),
    ("key_blocked", "HYOK key blocked."),
    ("key_unblocked", "HYOK key unblocked."),
    ("key_linked", "HYOK key linked: its AWS KMS key exists."),
];

/// What a store page shows beyond the store: a refusal, a form sent back, a review.
#[derive(Default)]
pub(super) struct Shown {
    /// The status to answer with (the API's, for a refusal).
    pub status: Option<StatusCode>,
    /// A banner at the top (the API's refusal).
    pub banner: Option<Markup>,
    /// The edit form as submitted, and the field a refusal is about.
    pub edit: Option<(FormData, Option<(&'static str, String)>)>,
    /// What a conflicting edit wanted (shown next to the current values).
    pub conflict: Option<Markup>,
    /// The HYOK key form as submitted, and the field a refusal is about.
    pub key_form: Option<(FormData, Option<(&'static str, String)>)>,
    /// A link plan to confirm.
    pub link_plan: Option<(LinkPlan, FormData)>,
    /// The delete confirmation as submitted (a mismatch).
    pub delete_refused: bool,
}

pub(super) fn store_path(id: &str) -> String {
    format!("/api/v1/stores/{}", seg(id))
}

pub(super) fn page_path(id: &str) -> String {
    format!("/console/stores/{}", seg(id))
}

async fn show(
    sess: Session,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    render(&sess, &id, &q, Shown::default()).await
}

/// The charts of a store (requests per second, p50/p99 latency, errors by XKS error
/// name) over the last hour: `GET /api/v1/stores/{id}/metrics` (the answering node's
/// traffic history) drawn by [`crate::metrics::charts::store_charts`] as inline SVG
/// (its text escaped there); a refusal shows as the API's banner.
async fn store_charts_section(sess: &Session, store: &Store) -> Markup {
    let path = format!("{}/metrics", store_path(&store.record.id));
    match sess.api.get::<StoreHistory>(&path).await {
        Ok(history) => html! {
            div id="store-charts" class="charts" {
                (PreEscaped(crate::metrics::charts::store_charts(&history)))
            }
        },
        Err(e) => html! {
            section id="store-charts" class="charts" aria-labelledby="charts-title" {
                h2 id="charts-title" { "Requests and latency, last hour" }
                (error_banner(&e))
            }
        },
    }
}

/// The whole store page.
pub(super) async fn render(
    sess: &Session,
    id: &str,
    q: &HashMap<String, String>,
    shown: Shown,
) -> Response {
    let (store, etag) = match sess.api.get_etag::<Store>(&store_path(id)).await {
        Ok(s) => s,
        Err(e) => return e.into_response(),
    };
    let r = &store.record;
    let url = page_path(&r.id);
    let download = q.get("download").filter(|d| {
        d.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    });
    let credentials = store_keys::credentials_section(sess, &store).await;
    let keys = store_keys::keys_section(sess, &store, shown.key_form).await;
    let charts = store_charts_section(sess, &store).await;
    let edit_values = match &shown.edit {
        Some((form, _)) => form.clone(),
        None => form_values(r),
    };
    let edit_bad = shown.edit.and_then(|(_, bad)| bad);
    let body = html! {
        h1 { "Key store " (r.name) }
        (notice(q, DONE))
        @if let Some(b) = shown.banner { (b) }
        @if let Some(d) = download {
            section id="credentials-download-step" class="warn" aria-labelledby="download-title" {
                h2 id="download-title" { "Download the credentials file" }
                p { "Its secret is offered once, to this session, for 10 minutes; it is never shown again." }
                p { a id="credentials-download" class="download" href={ "/console/downloads/" (d) } download {
                    "Download the credentials file" } }
            }
        }
        (details(&[
            ("ID", html! { code { (r.id) } }),
            ("Status", html! {
                @if r.blocked { span class="badge bad" { "blocked" } } @else { span class="badge good" { "serving" } }
            }),
            ("Type", html! { (format!("{:?}", r.kind).to_lowercase()) }),
            ("AWS link", html! { (link_state(&store)) }),
            ("AWS key store id", html! { @if let Some(a) = &r.aws { code { (a.custom_key_store_id) } } @else { "—" } }),
            ("Connection error", html! {
                @match r.aws.as_ref().and_then(|a| a.connection_error_code.as_deref()) { Some(c) => code { (c) }, None => "—" }
            }),
            ("Account", html! { (store.account.as_deref().unwrap_or("(none: admins only)")) }),
            ("Region", html! { (r.region.as_deref().unwrap_or("—")) }),
            ("Key source", html! { (r.source) " (" (r.plugin) ")" @if let Some(c) = &r.container { ", container " (c) } }),
            ("Health-check key", html! { code { (r.health_check_key) } }),
            ("XKS URI path", html! { code { (store.xks_uri_path) } }),
            ("Health-check URI", html! { "GET " code id="health-check-uri" { (store.health_check_path) } " on the XKS listener (no authentication)" }),
            ("Location", html! { (location_text(&r.location)) }),
            ("Max credentials", html! { (r.max_credentials) }),
            ("Success audit", html! { (on_off(r.success_audit)) }),
            ("Mutual TLS", html! { (on_off(r.mtls)) }),
            ("Rotation schedule", html! { (r.rotation_schedule.as_deref().unwrap_or("—")) }),
            ("Created", html! { (when(r.created_at)) }),
            ("Version", html! { (store.version) }),
        ]))
        (charts)
        section aria-labelledby="actions-title" {
            h2 id="actions-title" { "Actions" }
            @if r.blocked {
                (button_form(sess, "unblock-store", &format!("{url}/unblock"), "Unblock", Style::Plain))
            } @else {
                (button_form(sess, "block-store", &format!("{url}/block"), "Block", Style::Danger))
            }
            @if let Some(aws) = &r.aws {
                @let state = aws.connection_state;
                @if matches!(state, ConnectionState::Disconnected | ConnectionState::Failed) {
                    (button_form(sess, "connect-store", &format!("{url}/connect"), "Connect on AWS KMS", Style::Plain))
                }
                @if !matches!(state, ConnectionState::Disconnected | ConnectionState::Disconnecting) {
                    (button_form(sess, "disconnect-store", &format!("{url}/disconnect"), "Disconnect on AWS KMS", Style::Plain))
                }
            }
        }
        @if r.aws.is_none() && store.account.is_some() {
            (link_section(sess, &store, shown.link_plan))
        }
        section aria-labelledby="edit-title" {
            h2 id="edit-title" { "Edit" }
            @if let Some(c) = shown.conflict { (c) }
            (post_form(sess, "edit-store", &format!("{url}/edit"), html! {
                input type="hidden" name="etag" value=(etag);
                (edit_fields(&edit_values, &edit_bad))
            }, "Save changes"))
        }
        (credentials)
        (keys)
        section aria-labelledby="delete-title" {
            h2 id="delete-title" { "Delete" }
            p { "Deleting a key store is irreversible; it must have no HYOK keys left." }
            @if shown.delete_refused {
                div role="alert" class="error" data-code="confirmation_mismatch" {
                    "The name typed does not match: nothing was deleted."
                }
            }
            (confirm_form(sess, "delete-store", &format!("{url}/delete"), &r.name, "Delete key store"))
        }
    };
    let status = shown.status.unwrap_or(StatusCode::OK);
    page_with_status(
        sess,
        status,
        "stores",
        &format!("Key store {}", r.name),
        body,
    )
}

fn on_off(b: bool) -> &'static str {
    if b { "on" } else { "off" }
}

fn location_text(l: &XksLocation) -> String {
    match l {
        XksLocation::Unset => "not set".into(),
        XksLocation::Public { endpoint } => format!("public endpoint {endpoint}"),
        XksLocation::Vpc {
            service_name,
            endpoint,
        } => format!("VPC endpoint service {service_name}, endpoint {endpoint}"),
    }
}

/// The edit form's values for a store as it is.
pub fn form_values(r: &StoreRecord) -> FormData {
    let location = location_values(&r.location);
    let max = r.max_credentials.to_string();
    let cns = r.mtls_cns.join("\n");
    let mut pairs: Vec<(&str, &str)> = vec![
        ("name", &r.name),
        ("health_check_key", &r.health_check_key),
        ("max_credentials", &max),
        ("region", r.region.as_deref().unwrap_or("")),
        ("mtls_cns", &cns),
        ("mtls_ca_pem", r.mtls_ca_pem.as_deref().unwrap_or("")),
    ];
    for (k, v) in &location {
        pairs.push((k, v));
    }
    if r.success_audit {
        pairs.push(("success_audit", "true"));
    }
    if r.mtls {
        pairs.push(("mtls", "true"));
    }
    FormData::from_pairs(pairs)
}

fn edit_fields(values: &FormData, bad: &Option<(&'static str, String)>) -> Markup {
    let err = |n: &str| err_for(bad, n);
    html! {
        (Field::text("name", "Name").value(values.text("name")).required().error(err("name")))
        (location_fields(values, bad))
        (Field::text("region", "AWS region").value(values.text("region"))
            .help("Fixed once linked.").error(err("region")))
        (Field::text("health_check_key", "Health-check key").value(values.text("health_check_key"))
            .help("A key of the store's source that follows the health-check key rules.")
            .error(err("health_check_key")))
        (Field::number("max_credentials", "Max credentials").value(values.text("max_credentials"))
            .help("2 to 20.").error(err("max_credentials")))
        (Field::checkbox("success_audit", "Audit successful crypto operations", values.checked("success_audit")))
        (Field::checkbox("mtls", "Require mutual TLS", values.checked("mtls")))
        (Field::textarea("mtls_cns", "Accepted client certificate CNs").value(values.text("mtls_cns"))
            .help("One per line; empty: the defaults.").error(err("mtls_cns")))
        (Field::textarea("mtls_ca_pem", "Client CA bundle (PEM)").value(values.text("mtls_ca_pem"))
            .help("Empty: the XKS listener's client CA.").error(err("mtls_ca_pem")))
    }
}

fn normalized(s: &str) -> String {
    s.replace("\r\n", "\n").trim().to_string()
}

/// The patch of the edit form against the store as it is: only the fields that
/// differ; `Err((field, message))` for what the console can tell without asking.
pub fn patch_from_form(
    form: &FormData,
    r: &StoreRecord,
) -> Result<StorePatch, (&'static str, String)> {
    let mut p = StorePatch::default();
    let name = form.text("name");
    if name != r.name {
        p.name = Some(name.to_string());
    }
    let location = location_from_form(form)?;
    if location != r.location {
        p.location = Some(location);
    }
    let hc = form.text("health_check_key");
    if hc != r.health_check_key {
        p.health_check_key = Some(hc.to_string());
    }
    let max = form
        .number::<u32>("max_credentials")
        .map_err(|m| ("max_credentials", m))?;
    if let Some(m) = max.filter(|m| *m != r.max_credentials) {
        p.max_credentials = Some(m);
    }
    if form.checked("success_audit") != r.success_audit {
        p.success_audit = Some(form.checked("success_audit"));
    }
    if form.checked("mtls") != r.mtls {
        p.mtls = Some(form.checked("mtls"));
    }
    let cns = form.lines("mtls_cns");
    if cns != r.mtls_cns {
        p.mtls_cns = Some(cns);
    }
    let ca = normalized(form.text("mtls_ca_pem"));
    if ca != normalized(r.mtls_ca_pem.as_deref().unwrap_or("")) {
        p.mtls_ca_pem = Some(ca);
    }
    let region = form.opt("region");
    if region.is_some() && region != r.region {
        p.region = region;
    }
    Ok(p)
}

async fn edit(Path(id): Path<String>, Post { sess, form }: Post) -> Response {
    let etag = form.text("etag").to_string();
    let current = match sess.api.get::<Store>(&store_path(&id)).await {
        Ok(s) => s,
        Err(e) => return e.into_response(),
    };
    let q = HashMap::new();
    let patch = match patch_from_form(&form, &current.record) {
        Ok(p) => p,
        Err((field, msg)) => {
            let e = ApiFailure::new(StatusCode::BAD_REQUEST, "invalid_input", msg.clone());
            let shown = Shown {
                status: Some(e.status),
                banner: Some(error_banner(&e)),
                edit: Some((form, Some((field, msg)))),
                ..Shown::default()
            };
            return render(&sess, &id, &q, shown).await;
        }
    };
    // Always sent with the version the form was read at: a change made meanwhile is
    // a conflict (412), even when this form changes nothing.
    match sess
        .api
        .patch::<_, Store>(&store_path(&id), &patch, &etag)
        .await
    {
        Ok(_) => redirect(&format!("{}?done=saved", page_path(&id))),
        Err(e) if e.status == StatusCode::PRECONDITION_FAILED => {
            let conflict = html! {
                div class="warn" id="edit-conflict" {
                    p { "The key store changed since you opened this page (version now "
                        (current.version) "): the form shows its current values. Your changes were not saved:" }
                    ul {
                        @for (k, v) in conflict_lines(&form, &current.record) {
                            li { code { (k) } ": " (v) }
                        }
                    }
                }
            };
            let shown = Shown {
                status: Some(e.status),
                banner: Some(error_banner(&e)),
                conflict: Some(conflict),
                ..Shown::default()
            };
            render(&sess, &id, &q, shown).await
        }
        Err(e) => {
            let bad = field_of(&e).map(|f| (f, e.message.clone()));
            let shown = Shown {
                status: Some(e.status),
                banner: Some(error_banner(&e)),
                edit: Some((form, bad)),
                ..Shown::default()
            };
            render(&sess, &id, &q, shown).await
        }
    }
}

/// The submitted values that differ from the store as it is now.
fn conflict_lines(form: &FormData, now: &StoreRecord) -> Vec<(String, String)> {
    let current = form_values(now);
    let mut out = Vec::new();
    for name in [
        "name",
        "location",
        "endpoint",
        "service_name",
        "region",
        "health_check_key",
        "max_credentials",
        "mtls_cns",
        "mtls_ca_pem",
    ] {
        if normalized(form.text(name)) != normalized(current.text(name)) {
            out.push((name.to_string(), form.text(name).to_string()));
        }
    }
    for name in ["success_audit", "mtls"] {
        if form.checked(name) != current.checked(name) {
            out.push((name.to_string(), on_off(form.checked(name)).to_string()));
        }
    }
    out
}

/// A POST without a body on the store's API path `suffix`, then back to the page with
/// `done`, or the page with the refusal.
async fn store_action(sess: Session, id: &str, suffix: &str, done: &str) -> Response {
    let path = format!("{}/{suffix}", store_path(id));
    match sess.api.post_empty::<serde_json::Value>(&path).await {
        Ok(_) => redirect(&format!("{}?done={done}", page_path(id))),
        Err(e) => refused(&sess, id, &e).await,
    }
}

/// The store page with the API's refusal on top.
pub(super) async fn refused(sess: &Session, id: &str, e: &ApiFailure) -> Response {
    if e.status == StatusCode::UNAUTHORIZED {
        return e.clone().into_response();
    }
    let shown = Shown {
        status: Some(e.status),
        banner: Some(error_banner(e)),
        ..Shown::default()
    };
    render(sess, id, &HashMap::new(), shown).await
}

async fn block(Path(id): Path<String>, Post { sess, .. }: Post) -> Response {
    store_action(sess, &id, "block", "blocked").await
}

async fn unblock(Path(id): Path<String>, Post { sess, .. }: Post) -> Response {
    store_action(sess, &id, "unblock", "unblocked").await
}

async fn connect(Path(id): Path<String>, Post { sess, .. }: Post) -> Response {
    store_action(sess, &id, "connect", "connected").await
}

async fn disconnect(Path(id): Path<String>, Post { sess, .. }: Post) -> Response {
    store_action(sess, &id, "disconnect", "disconnected").await
}

fn link_request(form: &FormData) -> Result<LinkRequest, (&'static str, String)> {
    Ok(LinkRequest {
        name: form.opt("name"),
        location: match form.text("location") {
            "" => None,
            _ => Some(location_from_form(form)?),
        },
        region: form.opt("region"),
    })
}

fn link_section(sess: &Session, store: &Store, plan: Option<(LinkPlan, FormData)>) -> Markup {
    let url = page_path(&store.record.id);
    let values = plan.as_ref().map_or_else(
        || {
            let mut v = form_values(&store.record);
            v = FormData::from_pairs(
                ["name", "region", "location", "endpoint", "service_name"]
                    .into_iter()
                    .map(|k| (k, v.raw(k).unwrap_or(""))),
            );
            v
        },
        |(_, f)| f.clone(),
    );
    let fields = html! {
        (Field::text("name", "Name on AWS KMS").value(values.text("name")).id_prefix("link"))
        (Field::text("region", "AWS region").value(values.text("region")).id_prefix("link"))
        (location_fields_in(&values, &None, Some("link")))
    };
    html! {
        section aria-labelledby="link-title" {
            h2 id="link-title" { "Link to AWS KMS" }
            p { "Linking creates the external key store on AWS KMS (which first checks that it reaches this proxy). Review the details first." }
            @if let Some((p, _)) = &plan {
                div id="link-plan" class="rules" {
                    h3 { "AWS KMS will get" }
                    (details(&[
                        ("CustomKeyStoreName", html! { (p.name) }),
                        ("Account", html! { (p.account.as_deref().unwrap_or("—")) }),
                        ("Region", html! { (p.region.as_deref().unwrap_or("—")) }),
                        ("XksProxyUriEndpoint", html! { (p.uri_endpoint.as_deref().unwrap_or("—")) }),
                        ("XksProxyUriPath", html! { code { (p.uri_path) } }),
                        ("Connectivity", html! { (location_text(&p.location)) }),
                        ("Credential", html! { code { (p.access_key_id) } }),
                    ]))
                }
                (post_form(sess, "link-store", &format!("{url}/link"), fields.clone(), "Link now"))
            } @else {
                (post_form(sess, "review-link", &format!("{url}/link/review"), fields, "Review"))
            }
        }
    }
}

async fn review_link(Path(id): Path<String>, Post { sess, form }: Post) -> Response {
    let body = match link_request(&form) {
        Ok(b) => b,
        Err((_, msg)) => {
            let e = ApiFailure::new(StatusCode::BAD_REQUEST, "invalid_input", msg);
            return refused(&sess, &id, &e).await;
        }
    };
    let path = format!("{}/link/review", store_path(&id));
    match sess.api.post::<_, LinkPlan>(&path, &body).await {
        Ok(plan) => {
            let shown = Shown {
                link_plan: Some((plan, form)),
                ..Shown::default()
            };
            render(&sess, &id, &HashMap::new(), shown).await
        }
        Err(e) => refused(&sess, &id, &e).await,
    }
}

async fn link(Path(id): Path<String>, Post { sess, form }: Post) -> Response {
    let body = match link_request(&form) {
        Ok(b) => b,
        Err((_, msg)) => {
            let e = ApiFailure::new(StatusCode::BAD_REQUEST, "invalid_input", msg);
            return refused(&sess, &id, &e).await;
        }
    };
    let path = format!("{}/link", store_path(&id));
    match sess.api.post::<_, Store>(&path, &body).await {
        Ok(_) => redirect(&format!("{}?done=linked", page_path(&id))),
        Err(e) => refused(&sess, &id, &e).await,
    }
}

async fn delete(Path(id): Path<String>, Post { sess, form }: Post) -> Response {
    let store = match sess.api.get::<Store>(&store_path(&id)).await {
        Ok(s) => s,
        Err(e) => return e.into_response(),
    };
    if !form.confirmed(&store.record.name) {
        let shown = Shown {
            status: Some(StatusCode::CONFLICT),
            delete_refused: true,
            ..Shown::default()
        };
        return render(&sess, &id, &HashMap::new(), shown).await;
    }
    match sess
        .api
        .delete(&format!("{}?confirm=true", store_path(&id)))
        .await
    {
        Ok(()) => redirect("/console/stores?done=deleted"),
        Err(e) => refused(&sess, &id, &e).await,
    }
}

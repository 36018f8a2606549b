//! Key stores: the list, and creating one (a step showing the rules, ending with the
//! credentials file downloaded once).

use std::collections::HashMap;

use axum::{
    Router,
    extract::Query,
    http::StatusCode,
    response::{IntoResponse, Response},
    routing::get,
};
use maud::{Markup, html};

use super::{
    ApiFailure, ConsoleState, Field, FormData, Post, Session, error_banner, notice, page,
    page_with_status, post_form, redirect, seg, table,
};
use crate::api::{
    accounts::Account,
    credentials::Credential,
    metrics::StoreHistory,
    sources::Source,
    stores::{CreatedStore, NewStore, Store, XksLocation},
};

pub(super) fn routes() -> Router<ConsoleState> {
    Router::new()
        .route("/console/stores", get(list).post(create))
        .route("/console/stores/new", get(new_store))
}

/// The success texts of `?done=` on the list.
const DONE: &[(&str, &str)] = &[("deleted", "Key store deleted.")];

/// A store's status as words: its kind, and its AWS link with the connection state.
pub(super) fn link_state(s: &Store) -> String {
    match &s.record.aws {
        Some(aws) => format!("linked, {}", aws.connection_state.as_str()),
        None => "unlinked".into(),
    }
}

/// A store's current request rate on this node: the newest point of its history
/// (`GET /api/v1/stores/{id}/metrics?last=1`) when it covers the last sampled interval,
/// 0 when the store had no requests then; `None` when the history cannot be read.
async fn request_rate(sess: &Session, store: &Store) -> Option<f64> {
    let path = format!("/api/v1/stores/{}/metrics?last=1", seg(&store.record.id));
    let h = sess.api.get::<StoreHistory>(&path).await.ok()?;
    Some(current_rate(&h))
}

/// The rate of the last sampled interval: its point's rate, or 0 without one.
pub(super) fn current_rate(h: &StoreHistory) -> f64 {
    match (h.points.last(), h.sampled_at) {
        (Some(p), Some(at)) if p.at == at => p.requests_per_second,
        _ => 0.0,
    }
}

fn request_rate_cell(rate: Option<f64>) -> Markup {
    html! {
        td data-metric="request-rate" {
            @match rate { Some(r) => (format!("{r:.1}")), None => "—" }
        }
    }
}

async fn list(sess: Session, Query(q): Query<HashMap<String, String>>) -> Response {
    let stores = match sess.api.get::<Vec<Store>>("/api/v1/stores").await {
        Ok(s) => s,
        Err(e) => return e.into_response(),
    };
    let mut counts = Vec::with_capacity(stores.len());
    for s in &stores {
        let path = format!("/api/v1/stores/{}/credentials", seg(&s.record.id));
        let count = sess
            .api
            .get::<Vec<Credential>>(&path)
            .await
            .map(|c| c.len());
        counts.push((count, request_rate(&sess, s).await));
    }
    let rows = html! {
        @for (s, (count, rate)) in stores.iter().zip(&counts) {
            tr data-name=(s.record.name) {
                td { a href={ "/console/stores/" (seg(&s.record.id)) } { (s.record.name) } }
                td { code { (s.record.id) } }
                td { (format!("{:?}", s.record.kind).to_lowercase()) }
                td {
                    @if s.record.blocked { span class="badge bad" { "blocked" } }
                    @else { span class="badge good" { "serving" } }
                }
                td { (link_state(s)) }
                td data-metric="credentials" {
                    @match count { Ok(n) => (n), Err(_) => "—" }
                }
                (request_rate_cell(*rate))
            }
        }
    };
    let body = html! {
        h1 { "Key stores" }
        (notice(&q, DONE))
        p { a id="new-store" href="/console/stores/new" { "Create a key store" } }
        @if stores.is_empty() {
            p { "No key stores you may view." }
        } @else {
            (table("stores", "Key stores", &["Name", "ID", "Type", "Blocked",
                "AWS link", "Credentials", "Requests/s"], rows))
        }
    };
    page(&sess, "stores", "Key stores", body)
}

/// The rules a new store must follow (from the manual), shown before creating one.
fn rules() -> Markup {
    html! {
        section class="rules" aria-labelledby="rules-title" {
            h2 id="rules-title" { "Before you create a key store" }
            ul {
                li { "The key source (and its container) is fixed forever: health-check and HYOK keys must come from it." }
                li { "The health-check key must exist first, in that source: a symmetric AES-256 key." }
                li { "ctm: not exportable, not deletable, usage encrypt + decrypt + wrap + unwrap." }
                li { "luna: CKA_EXTRACTABLE=false, CKA_SENSITIVE=true, CKA_ENCRYPT, CKA_DECRYPT, CKA_WRAP and CKA_UNWRAP all true." }
                li { "The name is unique; the URI path prefix is generated (keystores/<id>) unless given, and never changes." }
                li { "Max credentials: 2 to 20 (default 20); adding one more evicts the oldest." }
                li { "Linked stores are created on AWS KMS at once: they need an account, a region of that account and a location AWS KMS can reach." }
                li { "The credentials file is offered once, right after creation: download it and keep it; its secret is never shown again." }
            }
        }
    }
}

/// The fields of the create form, with `values` (a refused submission) and the field
/// the refusal is about.
fn create_fields(
    values: &FormData,
    accounts: &[Account],
    sources: &[Source],
    bad: Option<(&str, String)>,
) -> Markup {
    let err = |name: &str| {
        bad.as_ref()
            .filter(|(f, _)| *f == name)
            .map(|(_, m)| m.clone())
    };
    let mut account_options = vec![(String::new(), "(none: admins only)".to_string())];
    account_options.extend(
        accounts
            .iter()
            .map(|a| (a.id.clone(), format!("{} ({})", a.name, a.id))),
    );
    let source_options = sources
        .iter()
        .map(|s| (s.name.clone(), format!("{} ({})", s.name, s.plugin)))
        .collect();
    html! {
        (Field::text("name", "Name").value(values.text("name")).required().error(err("name")))
        (Field::select("source", "Key source", source_options).value(values.text("source")).required()
            .help("Fixed forever.").error(err("source")))
        (Field::text("health_check_key", "Health-check key").value(values.text("health_check_key")).required()
            .help("The name of a key of that source that follows the rules above.")
            .error(err("health_check_key")))
        (Field::select("account", "AWS account", account_options).value(values.text("account")).error(err("account")))
        (Field::text("region", "AWS region").value(values.text("region"))
            .help("One of the account's regions; needed to link.").error(err("region")))
        (Field::text("uri_path_prefix", "URI path prefix").value(values.text("uri_path_prefix"))
            .help("Leave empty to generate keystores/<id>.").error(err("uri_path_prefix")))
        (Field::number("max_credentials", "Max credentials").value(values.text("max_credentials"))
            .attr("min", "2").help("2 to 20; default 20.").error(err("max_credentials")))
        (location_fields(values, &bad))
        (Field::checkbox("linked", "Also create it on AWS KMS (linked)", values.checked("linked")))
        (Field::text("rotation_schedule", "Rotation schedule").value(values.text("rotation_schedule"))
            .help("Linked stores only: a schedule's name.").error(err("rotation_schedule")))
        (Field::checkbox("success_audit", "Audit successful crypto operations", values.checked("success_audit")))
        (Field::checkbox("mtls", "Require mutual TLS", values.checked("mtls")))
        (Field::textarea("mtls_cns", "Accepted client certificate CNs").value(values.text("mtls_cns"))
            .help("One per line; empty: the listener's defaults.").error(err("mtls_cns")))
        (Field::textarea("mtls_ca_pem", "Client CA bundle (PEM)").value(values.text("mtls_ca_pem"))
            .help("Empty: the XKS listener's client CA.").error(err("mtls_ca_pem")))
    }
}

/// The error of field `name`, if the refusal is about it.
pub(super) fn err_for(bad: &Option<(&str, String)>, name: &str) -> Option<String> {
    bad.as_ref()
        .filter(|(f, _)| *f == name)
        .map(|(_, m)| m.clone())
}

/// The XKS location fields: `location` (unset, public, vpc), `endpoint`,
/// `service_name`.
pub(super) fn location_fields(values: &FormData, bad: &Option<(&str, String)>) -> Markup {
    location_fields_in(values, bad, None)
}

/// [`location_fields`] with ids `<prefix>-<name>` (a second form on the page).
pub(super) fn location_fields_in(
    values: &FormData,
    bad: &Option<(&str, String)>,
    prefix: Option<&str>,
) -> Markup {
    let id = |f: Field| match prefix {
        Some(p) => f.id_prefix(p),
        None => f,
    };
    let options = [
        ("unset", "Not set yet"),
        ("public", "Public endpoint"),
        ("vpc", "VPC endpoint service"),
    ]
    .map(|(v, t)| (v.to_string(), t.to_string()))
    .to_vec();
    html! {
        (id(Field::select("location", "XKS location", options).value(values.text("location"))
            .error(err_for(bad, "location"))))
        (id(Field::text("endpoint", "Proxy URI endpoint").value(values.text("endpoint"))
            .help("https://<fqdn> AWS KMS calls (public), or the private DNS name (VPC).")
            .error(err_for(bad, "endpoint"))))
        (id(Field::text("service_name", "VPC endpoint service name").value(values.text("service_name"))
            .error(err_for(bad, "service_name"))))
    }
}

/// The form values of a location.
pub(super) fn location_values(l: &XksLocation) -> [(&'static str, String); 3] {
    match l {
        XksLocation::Unset => [
            ("location", "unset".into()),
            ("endpoint", String::new()),
            ("service_name", String::new()),
        ],
        XksLocation::Public { endpoint } => [
            ("location", "public".into()),
            ("endpoint", endpoint.clone()),
            ("service_name", String::new()),
        ],
        XksLocation::Vpc {
            service_name,
            endpoint,
        } => [
            ("location", "vpc".into()),
            ("endpoint", endpoint.clone()),
            ("service_name", service_name.clone()),
        ],
    }
}

/// The XKS location of a form's `location`, `endpoint` and `service_name` fields.
pub(super) fn location_from_form(form: &FormData) -> Result<XksLocation, (&'static str, String)> {
    match form.text("location") {
        "" | "unset" => Ok(XksLocation::Unset),
        "public" => match form.opt("endpoint") {
            Some(endpoint) => Ok(XksLocation::Public { endpoint }),
            None => Err(("endpoint", "a public location needs its endpoint".into())),
        },
        "vpc" => match (form.opt("service_name"), form.opt("endpoint")) {
            (Some(service_name), Some(endpoint)) => Ok(XksLocation::Vpc {
                service_name,
                endpoint,
            }),
            (None, _) => Err((
                "service_name",
                "a VPC location needs its service name".into(),
            )),
            (_, None) => Err((
                "endpoint",
                "a VPC location needs its private DNS name".into(),
            )),
        },
        _ => Err(("location", "choose public, vpc or not set".into())),
    }
}

/// The API body of the create form; `Err((field, message))` for what the console can
/// tell without asking (the API checks the rest).
pub fn new_store_from_form(form: &FormData) -> Result<NewStore, (&'static str, String)> {
    let max_credentials = form
        .number::<u32>("max_credentials")
        .map_err(|m| ("max_credentials", m))?;
    Ok(NewStore {
        name: form.text("name").to_string(),
        account: form.opt("account"),
        source: form.text("source").to_string(),
        uri_path_prefix: form.opt("uri_path_prefix"),
        health_check_key: form.text("health_check_key").to_string(),
        max_credentials,
        location: location_from_form(form)?,
        success_audit: form.checked("success_audit"),
        mtls: form.checked("mtls"),
        mtls_ca_pem: form.opt("mtls_ca_pem"),
        mtls_cns: form.lines("mtls_cns"),
        region: form.opt("region"),
        linked: form.checked("linked"),
        rotation_schedule: form.opt("rotation_schedule"),
    })
}

/// Which form field an API refusal of a new or changed store is about.
pub(super) fn field_of(e: &ApiFailure) -> Option<&'static str> {
    let m = e.message.to_lowercase();
    match e.code.as_str() {
        "invalid_key" | "source_key_not_found" | "source_key_duplicate" => Some("health_check_key"),
        _ if m.contains("health") => Some("health_check_key"),
        _ if m.contains("max_credentials") || m.contains("max credentials") => {
            Some("max_credentials")
        }
        _ if m.contains("prefix") => Some("uri_path_prefix"),
        _ if m.contains("region") => Some("region"),
        _ if m.contains("source") => Some("source"),
        _ if m.contains("name") => Some("name"),
        _ => None,
    }
}

async fn create_page(
    sess: &Session,
    status: StatusCode,
    values: &FormData,
    refusal: Option<Markup>,
    bad: Option<(&str, String)>,
) -> Response {
    // The lists only fill the drop-downs: a user who may not list them still sees
    // the form (and the API decides).
    let accounts = sess
        .api
        .get::<Vec<Account>>("/api/v1/accounts")
        .await
        .unwrap_or_default();
    let sources = sess
        .api
        .get::<Vec<Source>>("/api/v1/sources")
        .await
        .unwrap_or_default();
    let body = html! {
        h1 { "Create a key store" }
        p { "Step 1 of 2: the store. Step 2: download its credentials file (once)." }
        (rules())
        @if !sources.is_empty() {
            p id="check-keys" { "Which keys qualify as health-check keys: see "
                @for (i, s) in sources.iter().enumerate() {
                    @if i > 0 { ", " }
                    a href={ "/console/sources/" (seg(&s.name)) } { (s.name) }
                }
                "." }
        }
        @if let Some(r) = refusal { (r) }
        (post_form(sess, "create-store", "/console/stores",
            create_fields(values, &accounts, &sources, bad), "Create key store"))
    };
    page_with_status(sess, status, "stores", "Create a key store", body)
}

async fn new_store(sess: Session) -> Response {
    create_page(&sess, StatusCode::OK, &FormData::default(), None, None).await
}

async fn create(Post { sess, form }: Post) -> Response {
    let body = match new_store_from_form(&form) {
        Ok(b) => b,
        Err((field, msg)) => {
            let e = ApiFailure::new(StatusCode::BAD_REQUEST, "invalid_input", msg.clone());
            let banner = error_banner(&e);
            return create_page(&sess, e.status, &form, Some(banner), Some((field, msg))).await;
        }
    };
    match sess
        .api
        .post::<_, CreatedStore>("/api/v1/stores", &body)
        .await
    {
        Ok(created) => {
            let file = match serde_json::to_vec_pretty(&created.credentials_file) {
                Ok(f) => f,
                Err(e) => return ApiFailure::internal(e.to_string()).into_response(),
            };
            let filename = format!("{}-credentials.json", created.store.record.name);
            let url = sess.offer_download(&filename, file);
            let id = url.rsplit('/').next().unwrap_or_default();
            redirect(&format!(
                "/console/stores/{}?done=created&download={}",
                seg(&created.store.record.id),
                seg(id)
            ))
        }
        Err(e) => {
            let bad = field_of(&e).map(|f| (f, e.message.clone()));
            let banner = error_banner(&e);
            create_page(&sess, e.status, &form, Some(banner), bad).await
        }
    }
}

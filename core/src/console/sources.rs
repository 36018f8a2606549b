//! Key sources: the list (plugin, status), creating a luna source from an HSM
//! connection, a source's page (details, reopen, delete with confirmation) and its
//! keys (list with the health-check key check, create).

use std::collections::HashMap;

use axum::{
    Router,
    extract::{Path, Query},
    http::StatusCode,
    response::{IntoResponse, Response},
    routing::{get, post},
};
use maud::{Markup, html};

use super::{
    ApiFailure, ConsoleState, Field, FormData, Post, Session, Style, button_form, confirm_form,
    details, error_banner, notice, page_with_status, post_form, redirect, seg, table,
};
use crate::api::{
    connections::HsmConnection,
    sources::{CheckedSourceKey, NewSource, NewSourceKey, Source, SourceKey, SourceState},
};

pub(super) fn routes() -> Router<ConsoleState> {
    Router::new()
        .route("/console/sources", get(list).post(create))
        .route("/console/sources/{name}", get(show))
        .route("/console/sources/{name}/reopen", post(reopen))
        .route("/console/sources/{name}/delete", post(delete))
        .route("/console/sources/{name}/keys", post(create_key))
}

/// The usages a source key may have.
const USAGES: [&str; 4] = ["encrypt", "decrypt", "wrap", "unwrap"];

const LIST_DONE: &[(&str, &str)] = &[
    ("created", "Key source created."),
    ("deleted", "Key source deleted."),
];

const DONE: &[(&str, &str)] = &[
    ("created", "Key source created."),
    ("reopened", "Key source reopened: see its status."),
    ("key_created", "Key created."),
];

fn status_badge(s: &Source) -> Markup {
    html! {
        @match s.status {
            SourceState::Opened => span class="badge good" { "opened" },
            SourceState::Failed => span class="badge bad" { "failed" },
        }
    }
}

fn source_path(name: &str) -> String {
    format!("/api/v1/sources/{}", seg(name))
}

fn page_path(name: &str) -> String {
    format!("/console/sources/{}", seg(name))
}

async fn list_page(
    sess: &Session,
    status: StatusCode,
    q: &HashMap<String, String>,
    form: Option<(FormData, Markup)>,
) -> Response {
    let sources = match sess.api.get::<Vec<Source>>("/api/v1/sources").await {
        Ok(s) => s,
        Err(e) => return e.into_response(),
    };
    // Only fills the drop-down (admins list connections).
    let connections = sess
        .api
        .get::<Vec<HsmConnection>>("/api/v1/connections/hsm")
        .await
        .unwrap_or_default();
    let (values, banner) = match form {
        Some((v, b)) => (v, Some(b)),
        None => (FormData::default(), None),
    };
    let rows = html! {
        @for s in &sources {
            tr data-name=(s.name) {
                td { a href=(page_path(&s.name)) { (s.name) } }
                td { (s.plugin) }
                td { (s.container.as_deref().unwrap_or("—")) }
                td { (status_badge(s)) @if let Some(r) = &s.reason { " " (r) } }
                td { (s.hsm_connection.as_deref().unwrap_or("—")) }
            }
        }
    };
    let conn_options = connections
        .iter()
        .map(|c| (c.name.clone(), format!("{} ({})", c.name, c.token_label)))
        .collect();
    let body = html! {
        h1 { "Key sources" }
        (notice(q, LIST_DONE))
        @if let Some(b) = banner { (b) }
        (table("sources", "Key sources", &["Name", "Plugin", "Container", "Status", "HSM connection"], rows))
        h2 { "Create a luna key source" }
        p { "A luna source is made from an HSM connection (its partition becomes the source's container). ctm sources are declared in the configuration file." }
        (post_form(sess, "create-source", "/console/sources", html! {
            (Field::text("name", "Name").value(values.text("name")).required())
            input type="hidden" name="plugin" value="luna";
            @if connections.is_empty() {
                (Field::text("hsm_connection", "HSM connection").value(values.text("hsm_connection")).required()
                    .help("The name of an HSM connection."))
            } @else {
                (Field::select("hsm_connection", "HSM connection", conn_options).value(values.text("hsm_connection")).required())
            }
        }, "Create key source"))
    };
    page_with_status(sess, status, "sources", "Key sources", body)
}

async fn list(sess: Session, Query(q): Query<HashMap<String, String>>) -> Response {
    list_page(&sess, StatusCode::OK, &q, None).await
}

async fn create(Post { sess, form }: Post) -> Response {
    let body = NewSource {
        name: form.text("name").to_string(),
        plugin: form.opt("plugin").unwrap_or_else(|| "luna".into()),
        hsm_connection: form.text("hsm_connection").to_string(),
    };
    match sess
        .api
        .post::<_, Option<Source>>("/api/v1/sources", &body)
        .await
    {
        Ok(_) => redirect(&format!("{}?done=created", page_path(&body.name))),
        Err(e) if e.status == StatusCode::UNAUTHORIZED => e.into_response(),
        Err(e) => {
            let banner = error_banner(&e);
            list_page(&sess, e.status, &HashMap::new(), Some((form, banner))).await
        }
    }
}

/// The health-check key rules of a plugin (from the manual).
pub(super) fn health_check_rules(plugin: &str) -> Markup {
    html! {
        div class="rules" id="health-check-rules" {
            p { strong { "Health-check key rules" } " (a store's health-check key must be a symmetric AES-256 key of the store's source that follows them):" }
            ul {
                @if plugin == "luna" {
                    li { "CKA_EXTRACTABLE = false" }
                    li { "CKA_SENSITIVE = true" }
                    li { "CKA_ENCRYPT, CKA_DECRYPT, CKA_WRAP and CKA_UNWRAP all true" }
                } @else {
                    li { "not exportable" }
                    li { "not deletable" }
                    li { "usage: encrypt + decrypt + wrap + unwrap" }
                }
            }
        }
    }
}

/// A source's page with its keys; `form`: the key form as submitted and its refusal.
async fn source_page(
    sess: &Session,
    status: StatusCode,
    name: &str,
    q: &HashMap<String, String>,
    banner: Option<Markup>,
    form: Option<FormData>,
) -> Response {
    let source = match sess.api.get::<Source>(&source_path(name)).await {
        Ok(s) => s,
        Err(e) => return e.into_response(),
    };
    let keys_path = format!("{}/keys", source_path(name));
    let keys = match sess.api.get::<Vec<SourceKey>>(&keys_path).await {
        Ok(keys) => {
            let mut checked = Vec::with_capacity(keys.len());
            for k in keys {
                let path = format!("{keys_path}/{}", seg(&k.name));
                let check = sess.api.get::<CheckedSourceKey>(&path).await.ok();
                checked.push((k, check));
            }
            Ok(checked)
        }
        Err(e) => Err(e),
    };
    let url = page_path(name);
    let values = form.unwrap_or_else(|| FormData::from_pairs(USAGES.iter().map(|u| ("usage", *u))));
    let usages = values.all("usage");
    let body = html! {
        h1 { "Key source " (source.name) }
        (notice(q, DONE))
        @if let Some(b) = banner { (b) }
        (details(&[
            ("Plugin", html! { (source.plugin) }),
            ("Status", html! { (status_badge(&source)) }),
            ("Reason", html! { (source.reason.as_deref().unwrap_or("—")) }),
            ("Container", html! { (source.container.as_deref().unwrap_or("—")) }),
            ("HSM connection", html! { (source.hsm_connection.as_deref().unwrap_or("—")) }),
            ("Vendor", html! { (source.vendor.as_deref().unwrap_or("—")) }),
            ("Model", html! { (source.model.as_deref().unwrap_or("—")) }),
        ]))
        section aria-labelledby="source-actions-title" {
            h2 id="source-actions-title" { "Actions" }
            (button_form(sess, "reopen-source", &format!("{url}/reopen"), "Reopen", Style::Plain))
        }
        section aria-labelledby="source-keys-title" {
            h2 id="source-keys-title" { "Keys" }
            (health_check_rules(&source.plugin))
            @match &keys {
                Ok(keys) => {
                    (table("source-keys", "Keys", &["Name", "Bits", "Usage", "Enabled", "Exportable", "Deletable", "Health-check key", "Attributes"], html! {
                        @for (k, check) in keys {
                            tr data-name=(k.name) {
                                td { code { (k.name) } }
                                td { (k.bits) }
                                td { (k.usage.join(", ")) }
                                td { (yes_no(k.enabled)) }
                                td { (yes_no(k.exportable)) }
                                td { (yes_no(k.deletable)) }
                                td data-check="health-check" {
                                    @match check {
                                        Some(c) if c.valid_health_check_key => span class="badge good" { "valid" },
                                        Some(c) => {
                                            span class="badge bad" { "not valid" }
                                            ul class="problems" { @for p in &c.problems { li { (p) } } }
                                        },
                                        None => "—",
                                    }
                                }
                                td { @for (a, v) in &k.attributes { code { (a) "=" (v) } " " } }
                            }
                        }
                    }))
                }
                Err(e) => (error_banner(e)),
            }
            h3 { "Create a key" }
            (post_form(sess, "create-source-key", &format!("{url}/keys"), html! {
                (Field::text("name", "Name").value(values.text("name")).required())
                fieldset {
                    legend { "Usage" }
                    @for u in USAGES {
                        div class="field" {
                            input type="checkbox" id={ "usage-" (u) } name="usage" value=(u) checked[usages.iter().any(|x| x == u)];
                            label for={ "usage-" (u) } { (u) }
                        }
                    }
                }
                (Field::checkbox("exportable", "Exportable (may leave the source)", values.checked("exportable"))
                    .help("A health-check key must not be exportable."))
                (Field::checkbox("deletable", "Deletable", values.checked("deletable"))
                    .help("A ctm health-check key must not be deletable."))
            }, "Create key"))
        }
        section aria-labelledby="delete-source-title" {
            h2 id="delete-source-title" { "Delete" }
            p { "Deleting a key source is refused while a key store uses it; its keys stay in the key manager." }
            (confirm_form(sess, "delete-source", &format!("{url}/delete"), &source.name, "Delete key source"))
        }
    };
    page_with_status(sess, status, "sources", &format!("Key source {name}"), body)
}

fn yes_no(b: bool) -> &'static str {
    if b { "yes" } else { "no" }
}

async fn show(
    sess: Session,
    Path(name): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    source_page(&sess, StatusCode::OK, &name, &q, None, None).await
}

async fn refused(sess: &Session, name: &str, e: &ApiFailure, form: Option<FormData>) -> Response {
    if e.status == StatusCode::UNAUTHORIZED {
        return e.clone().into_response();
    }
    source_page(
        sess,
        e.status,
        name,
        &HashMap::new(),
        Some(error_banner(e)),
        form,
    )
    .await
}

async fn reopen(Path(name): Path<String>, Post { sess, .. }: Post) -> Response {
    let path = format!("{}/reopen", source_path(&name));
    match sess.api.post_empty::<Source>(&path).await {
        Ok(_) => redirect(&format!("{}?done=reopened", page_path(&name))),
        Err(e) => refused(&sess, &name, &e, None).await,
    }
}

async fn delete(Path(name): Path<String>, Post { sess, form }: Post) -> Response {
    if !form.confirmed(&name) {
        let e = ApiFailure::new(
            StatusCode::CONFLICT,
            "confirmation_mismatch",
            "the name typed does not match: nothing was deleted",
        );
        return refused(&sess, &name, &e, None).await;
    }
    match sess.api.delete(&source_path(&name)).await {
        Ok(()) => redirect("/console/sources?done=deleted"),
        Err(e) => refused(&sess, &name, &e, None).await,
    }
}

/// The API body of the source key form.
pub fn new_source_key_from_form(form: &FormData) -> NewSourceKey {
    NewSourceKey {
        name: form.text("name").to_string(),
        usage: form.all("usage"),
        exportable: form.checked("exportable"),
        deletable: form.checked("deletable"),
    }
}

async fn create_key(Path(name): Path<String>, Post { sess, form }: Post) -> Response {
    let body = new_source_key_from_form(&form);
    let path = format!("{}/keys", source_path(&name));
    match sess.api.post::<_, SourceKey>(&path, &body).await {
        Ok(_) => redirect(&format!("{}?done=key_created", page_path(&name))),
        Err(e) => refused(&sess, &name, &e, Some(form)).await,
    }
}

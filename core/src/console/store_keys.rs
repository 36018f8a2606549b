//! A key store's credentials (add = rotate, with the new credentials file offered
//! once; delete) and HYOK keys (create with the API's refusal naming each failing
//! attribute, block/unblock, link, delete with confirmation).

use std::collections::HashMap;

use axum::{
    Router,
    extract::Path,
    http::StatusCode,
    response::{IntoResponse, Response},
    routing::{get, post},
};
use maud::{Markup, html};

use super::{
    ApiFailure, ConsoleState, Field, FormData, Post, Session, Style, button_form, error_banner,
    post_form, redirect, seg,
    store::{Shown, page_path, refused, render, store_path},
    table, when,
};
use crate::api::{
    credentials::{Credential, CredentialsFile, EVICTED_HEADER},
    keys::{HyokKey, NewHyokKey},
    schedules::{Schedule, ScheduleAssignment, StoreSchedule},
    stores::Store,
};

pub(super) fn routes() -> Router<ConsoleState> {
    Router::new()
        .route("/console/stores/{id}/credentials", post(add_credential))
        .route(
            "/console/stores/{id}/credentials/{akid}/delete",
            post(delete_credential),
        )
        .route("/console/stores/{id}/schedule", post(assign_schedule))
        .route(
            "/console/stores/{id}/schedule/unassign",
            post(unassign_schedule),
        )
        .route("/console/stores/{id}/keys", post(create_key))
        .route("/console/stores/{id}/keys/{ext}/block", post(block_key))
        .route("/console/stores/{id}/keys/{ext}/unblock", post(unblock_key))
        .route("/console/stores/{id}/keys/{ext}/link", post(link_key))
        .route(
            "/console/stores/{id}/keys/{ext}/delete",
            get(confirm_delete_key).post(delete_key),
        )
}

/// The credentials section of a store's page.
pub(super) async fn credentials_section(sess: &Session, store: &Store) -> Markup {
    let id = &store.record.id;
    let url = page_path(id);
    let listed = sess
        .api
        .get::<Vec<Credential>>(&format!("{}/credentials", store_path(id)))
        .await;
    html! {
        section aria-labelledby="credentials-title" {
            h2 id="credentials-title" { "Credentials" }
            p { "AWS KMS signs its requests with one of these. Adding one (rotation) offers its credentials file once; at "
                (store.record.max_credentials) " credentials the oldest is evicted." }
            @match &listed {
                Ok(creds) => {
                    (table("credentials", "Credentials", &["Access key id", "Created", "Actions"], html! {
                        @for c in creds {
                            tr data-name=(c.access_key_id) {
                                td { code { (c.access_key_id) } }
                                td { (when(c.created_at)) }
                                td { (button_form(sess, &format!("delete-credential-{}", c.access_key_id),
                                    &format!("{url}/credentials/{}/delete", seg(&c.access_key_id)),
                                    "Delete", Style::Danger)) }
                            }
                        }
                    }))
                }
                Err(e) => (error_banner(e)),
            }
            (button_form(sess, "add-credential", &format!("{url}/credentials"), "Add a credential (rotate)", Style::Primary))
            @if store.record.aws.is_some() {
                (schedule_part(sess, store).await)
            }
        }
    }
}

/// The scheduled rotation of a linked store: its schedule, last and next run; assign
/// another or unassign it.
async fn schedule_part(sess: &Session, store: &Store) -> Markup {
    let id = &store.record.id;
    let url = page_path(id);
    let current = sess
        .api
        .get::<StoreSchedule>(&format!("{}/schedule", store_path(id)))
        .await
        .ok();
    let options = sess
        .api
        .get::<Vec<Schedule>>("/api/v1/schedules")
        .await
        .unwrap_or_default()
        .into_iter()
        .map(|s| (s.name, s.description))
        .collect();
    html! {
        h3 { "Scheduled rotation" }
        @match &current {
            Some(s) => {
                p id="store-schedule" {
                    "Schedule " strong { (s.state.schedule) } " (" (s.description) "); next run "
                    (when(s.state.next_run_at))
                    @if let Some(last) = s.state.last_run_at { "; last run " (when(last)) }
                    @if let Some(r) = &s.state.last_result { ": " (r) }
                    "."
                }
                (button_form(sess, "unassign-schedule", &format!("{url}/schedule/unassign"), "Unassign", Style::Plain))
            }
            None => p id="store-schedule" { "No scheduled rotation." }
        }
        (post_form(sess, "assign-schedule", &format!("{url}/schedule"), html! {
            (Field::select("schedule", "Rotation schedule", options)
                .value(current.as_ref().map(|s| s.state.schedule.clone()).unwrap_or_default())
                .help("Rotations add a credential and push it to AWS KMS."))
        }, "Assign schedule"))
    }
}

async fn assign_schedule(Path(id): Path<String>, Post { sess, form }: Post) -> Response {
    let body = ScheduleAssignment {
        schedule: form.text("schedule").to_string(),
    };
    let path = format!("{}/schedule", store_path(&id));
    match sess.api.put::<_, StoreSchedule>(&path, &body).await {
        Ok(_) => redirect(&format!("{}?done=schedule_assigned", page_path(&id))),
        Err(e) => refused(&sess, &id, &e).await,
    }
}

async fn unassign_schedule(Path(id): Path<String>, Post { sess, .. }: Post) -> Response {
    match sess
        .api
        .delete(&format!("{}/schedule", store_path(&id)))
        .await
    {
        Ok(()) => redirect(&format!("{}?done=schedule_unassigned", page_path(&id))),
        Err(e) => refused(&sess, &id, &e).await,
    }
}

async fn add_credential(Path(id): Path<String>, Post { sess, .. }: Post) -> Response {
    let path = format!("{}/credentials", store_path(&id));
    let reply = match sess.api.post_reply(&path, &serde_json::json!({})).await {
        Ok(r) => r,
        Err(e) => return refused(&sess, &id, &e).await,
    };
    let file = match reply.json::<CredentialsFile>() {
        Ok(f) => f,
        Err(e) => return e.into_response(),
    };
    let store = sess.api.get::<Store>(&store_path(&id)).await;
    let name = store.map_or_else(|_| id.clone(), |s| s.record.name);
    let bytes = match serde_json::to_vec_pretty(&file) {
        Ok(b) => b,
        Err(e) => return ApiFailure::internal(e.to_string()).into_response(),
    };
    let filename = format!("{name}-{}.json", file.credential.access_key_id);
    let url = sess.offer_download(&filename, bytes);
    let slot = url.rsplit('/').next().unwrap_or_default();
    let evicted = reply
        .headers
        .get(EVICTED_HEADER)
        .map_or(0, |v| v.as_bytes().split(|b| *b == b',').count());
    redirect(&format!(
        "{}?done=credential_added&download={}&evicted={evicted}",
        page_path(&id),
        seg(slot)
    ))
}

async fn delete_credential(
    Path((id, akid)): Path<(String, String)>,
    Post { sess, .. }: Post,
) -> Response {
    let path = format!("{}/credentials/{}", store_path(&id), seg(&akid));
    match sess.api.delete(&path).await {
        Ok(()) => redirect(&format!("{}?done=credential_deleted", page_path(&id))),
        Err(e) => refused(&sess, &id, &e).await,
    }
}

/// The HYOK keys section of a store's page, with the create form (as submitted, when
/// refused).
pub(super) async fn keys_section(
    sess: &Session,
    store: &Store,
    form: Option<(FormData, Option<(&'static str, String)>)>,
) -> Markup {
    let id = &store.record.id;
    let url = page_path(id);
    let linked_store = store.record.aws.is_some();
    let listed = sess
        .api
        .get::<Vec<HyokKey>>(&format!("{}/keys", store_path(id)))
        .await;
    let (values, bad) = form.unwrap_or_default();
    let err = |n: &str| {
        bad.as_ref()
            .filter(|(f, _)| *f == n)
            .map(|(_, m)| m.clone())
    };
    let linked_options = vec![
        (
            "".to_string(),
            "As the store (linked stores: yes)".to_string(),
        ),
        (
            "true".to_string(),
            "Yes: also create its AWS KMS key".to_string(),
        ),
        ("false".to_string(), "No: only here".to_string()),
    ];
    html! {
        section aria-labelledby="keys-title" {
            h2 id="keys-title" { "HYOK keys" }
            @match &listed {
                Ok(keys) => {
                    (table("keys", "HYOK keys", &["External key id", "Source key", "Status", "AWS KMS key", "Created", "Actions"], html! {
                        @for k in keys {
                            @let kurl = format!("{url}/keys/{}", seg(&k.external_id));
                            tr data-name=(k.external_id) {
                                td { code { (k.external_id) } }
                                td { code { (k.source_key) } @if k.allow_weak_key { " " span class="badge bad" { "weak key allowed" } } }
                                td { @if k.blocked { span class="badge bad" { "blocked" } } @else { span class="badge good" { "enabled" } } }
                                td { @match &k.aws { Some(a) => code { (a.key_id) }, None => "unlinked" } }
                                td { (when(k.created_at)) }
                                td {
                                    @if k.blocked {
                                        (button_form(sess, &format!("unblock-key-{}", k.external_id), &format!("{kurl}/unblock"), "Unblock", Style::Plain))
                                    } @else {
                                        (button_form(sess, &format!("block-key-{}", k.external_id), &format!("{kurl}/block"), "Block", Style::Plain))
                                    }
                                    @if linked_store && k.aws.is_none() {
                                        (button_form(sess, &format!("link-key-{}", k.external_id), &format!("{kurl}/link"), "Link", Style::Plain))
                                    }
                                    a class="danger-link" id={ "delete-key-" (k.external_id) } href={ (kurl) "/delete" } { "Delete…" }
                                }
                            }
                        }
                    }))
                }
                Err(e) => (error_banner(e)),
            }
            h3 { "Create a HYOK key" }
            div class="rules" {
                p { "The source key must be a key of this store's source (" (store.record.source) "), not its health-check key and not bound to another HYOK key. It must not be exportable, must be sensitive and private, and allow encrypt and decrypt; a key that breaks a rule is refused, naming each failing attribute, unless you allow a weak key explicitly." }
            }
            (post_form(sess, "create-key", &format!("{url}/keys"), html! {
                (Field::text("external_id", "External key id").value(values.text("external_id")).required()
                    .help("The id AWS KMS uses in XKS paths.").error(err("external_id")))
                (Field::text("source_key", "Source key").value(values.text("source_key")).required()
                    .error(err("source_key")))
                (Field::select("linked", "Create on AWS KMS too", linked_options).value(values.text("linked"))
                    .help("Linked keys need a linked, CONNECTED store."))
                (Field::checkbox("allow_weak_key", "Allow a source key that breaks the HYOK key rules", values.checked("allow_weak_key"))
                    .help("Recorded on the key and in the audit log."))
            }, "Create HYOK key"))
        }
    }
}

/// The API body of the HYOK key form.
pub fn new_key_from_form(form: &FormData) -> NewHyokKey {
    NewHyokKey {
        external_id: form.text("external_id").to_string(),
        source_key: form.text("source_key").to_string(),
        linked: match form.text("linked") {
            "true" => Some(true),
            "false" => Some(false),
            _ => None,
        },
        allow_weak_key: form.checked("allow_weak_key"),
    }
}

/// Which field of the HYOK key form a refusal is about.
fn key_field_of(e: &ApiFailure) -> Option<&'static str> {
    match e.code.as_str() {
        "invalid_key"
        | "source_key_not_found"
        | "source_key_in_use"
        | "source_key_is_health_check_key"
        | "source_key_duplicate" => Some("source_key"),
        "already_exists" | "conflict" if e.message.contains("key") => Some("external_id"),
        _ if e.message.contains("external") => Some("external_id"),
        _ => None,
    }
}

async fn create_key(Path(id): Path<String>, Post { sess, form }: Post) -> Response {
    let body = new_key_from_form(&form);
    let path = format!("{}/keys", store_path(&id));
    match sess.api.post::<_, HyokKey>(&path, &body).await {
        Ok(_) => redirect(&format!("{}?done=key_created", page_path(&id))),
        Err(e) if e.status == StatusCode::UNAUTHORIZED => e.into_response(),
        Err(e) => {
            let bad = key_field_of(&e).map(|f| (f, e.message.clone()));
            let shown = Shown {
                status: Some(e.status),
                banner: Some(error_banner(&e)),
                key_form: Some((form, bad)),
                ..Shown::default()
            };
            render(&sess, &id, &HashMap::new(), shown).await
        }
    }
}

async fn key_action(sess: Session, id: &str, ext: &str, action: &str, done: &str) -> Response {
    let path = format!("{}/keys/{}/{action}", store_path(id), seg(ext));
    match sess.api.post_empty::<serde_json::Value>(&path).await {
        Ok(_) => redirect(&format!("{}?done={done}", page_path(id))),
        Err(e) => refused(&sess, id, &e).await,
    }
}

async fn block_key(Path((id, ext)): Path<(String, String)>, Post { sess, .. }: Post) -> Response {
    key_action(sess, &id, &ext, "block", "key_blocked").await
}

async fn unblock_key(Path((id, ext)): Path<(String, String)>, Post { sess, .. }: Post) -> Response {
    key_action(sess, &id, &ext, "unblock", "key_unblocked").await
}

async fn link_key(Path((id, ext)): Path<(String, String)>, Post { sess, .. }: Post) -> Response {
    key_action(sess, &id, &ext, "link", "key_linked").await
}

fn delete_key_page(
    sess: &Session,
    status: StatusCode,
    id: &str,
    key: &HyokKey,
    banner: Option<Markup>,
) -> Response {
    let url = format!("{}/keys/{}/delete", page_path(id), seg(&key.external_id));
    let label = format!("Type {} to confirm", key.external_id);
    let body = html! {
        h1 { "Delete HYOK key " (key.external_id) }
        @if let Some(b) = banner { (b) }
        p { "Data encrypted under this key can no longer be decrypted through this store." }
        form id="delete-key-form" method="post" action=(url) class="stack confirm" {
            (super::csrf_field(sess))
            @if key.aws.is_some() {
                (Field::number("pending_window_days", "Waiting period of the AWS KMS key's deletion (days)")
                    .attr("min", "7").attr("max", "30").value("30")
                    .help("Its AWS KMS key is scheduled for deletion first: 7 to 30 days."))
            }
            (Field::text("confirm_name", &label).required().autocomplete("off")
                .help("This cannot be undone."))
            div class="actions" {
                button id="delete-key-submit" type="submit" class="danger" { "Delete HYOK key" }
            }
        }
        p { a href=(page_path(id)) { "Back to the key store" } }
    };
    super::page_with_status(sess, status, "stores", "Delete HYOK key", body)
}

async fn confirm_delete_key(sess: Session, Path((id, ext)): Path<(String, String)>) -> Response {
    let path = format!("{}/keys/{}", store_path(&id), seg(&ext));
    match sess.api.get::<HyokKey>(&path).await {
        Ok(key) => delete_key_page(&sess, StatusCode::OK, &id, &key, None),
        Err(e) => e.into_response(),
    }
}

async fn delete_key(
    Path((id, ext)): Path<(String, String)>,
    Post { sess, form }: Post,
) -> Response {
    let path = format!("{}/keys/{}", store_path(&id), seg(&ext));
    let key = match sess.api.get::<HyokKey>(&path).await {
        Ok(k) => k,
        Err(e) => return e.into_response(),
    };
    if !form.confirmed(&key.external_id) {
        let e = ApiFailure::new(
            StatusCode::CONFLICT,
            "confirmation_mismatch",
            "the key id typed does not match: nothing was deleted",
        );
        return delete_key_page(&sess, e.status, &id, &key, Some(error_banner(&e)));
    }
    let days = match form.number::<i32>("pending_window_days") {
        Ok(d) => d,
        Err(msg) => {
            let e = ApiFailure::new(StatusCode::BAD_REQUEST, "invalid_input", msg);
            return delete_key_page(&sess, e.status, &id, &key, Some(error_banner(&e)));
        }
    };
    let query = days.map_or(String::new(), |d| format!("?pending_window_days={d}"));
    match sess.api.delete(&format!("{path}{query}")).await {
        Ok(()) => redirect(&format!("{}?done=key_deleted", page_path(&id))),
        Err(e) => delete_key_page(&sess, e.status, &id, &key, Some(error_banner(&e))),
    }
}

//! API tokens: the user's tokens (sessions and API tokens, never their secrets), issuing
//! an API token, and revoking one. A new token's bearer is never rendered into a page:
//! it is offered once as a download (the console's one-time slot, bound to this session,
//! gone after one download or 10 minutes), and the API never shows it again.

use std::collections::HashMap;

use axum::{
    Router,
    extract::{Path, Query},
    http::StatusCode,
    response::Response,
    routing::{get, post},
};
use maud::html;

use super::{
    ApiFailure, ConsoleState, Field, FormData, Post, Session, Style, button_form, error_banner,
    notice, ok_banner, page_with_status, post_form, redirect, seg, table, when,
};
use crate::api::tokens::{IssuedToken, NewToken, Token, TokenKind};

pub(super) fn routes() -> Router<ConsoleState> {
    Router::new()
        .route("/console/tokens", get(list).post(create))
        .route("/console/tokens/{id}/revoke", post(revoke))
}

const DONE: &[(&str, &str)] = &[("revoked", "Token revoked.")];

/// A download id as the list page accepts it back (the slot's own id alphabet).
fn download_id(q: &HashMap<String, String>) -> Option<&str> {
    q.get("download").map(String::as_str).filter(|id| {
        !id.is_empty()
            && id.len() <= 64
            && id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    })
}

async fn list_page(
    sess: &Session,
    status: StatusCode,
    q: &HashMap<String, String>,
    values: &FormData,
    refusal: Option<&ApiFailure>,
) -> Response {
    let tokens = sess.api.get::<Vec<Token>>("/api/v1/tokens").await;
    let rows = match &tokens {
        Ok(list) => html! {
            @for t in list {
                tr data-name=(t.id) {
                    td { code { (t.id) } }
                    td { @match t.kind { TokenKind::Session => "session", TokenKind::Api => "API" } }
                    td { (t.description) }
                    td { (when(t.created_at)) }
                    td { (t.expires_at.map_or("never".to_string(), when)) }
                    td {
                        (button_form(sess, &format!("revoke-token-{}", t.id),
                            &format!("/console/tokens/{}/revoke", seg(&t.id)), "Revoke", Style::Danger))
                    }
                }
            }
        },
        Err(_) => html! {},
    };
    let body = html! {
        h1 { "API tokens" }
        (notice(q, DONE))
        @if let Some(id) = download_id(q) {
            (ok_banner("API token created. Download it now: it is offered once and never shown again."))
            p { a id="token-download" href={ "/console/downloads/" (id) } download { "Download the token" } }
        }
        @if let Some(e) = refusal { (error_banner(e)) }
        @match &tokens {
            Err(e) => (error_banner(e)),
            Ok(_) => (table("tokens", "Your tokens", &["ID", "Kind", "Description", "Created", "Expires", ""], rows)),
        }
        h2 { "Create an API token" }
        p class="help" { "For scripts: send it as Authorization: Bearer <token>. It acts as you." }
        (post_form(sess, "create-token", "/console/tokens", html! {
            (Field::text("description", "Description").value(values.text("description")))
            (Field::number("expires_in_days", "Expires in (days)").value(values.text("expires_in_days"))
                .attr("min", "1").help("Empty: until revoked."))
        }, "Create token"))
    };
    page_with_status(sess, status, "tokens", "API tokens", body)
}

async fn list(sess: Session, Query(q): Query<HashMap<String, String>>) -> Response {
    list_page(&sess, StatusCode::OK, &q, &FormData::default(), None).await
}

async fn create(Post { sess, form }: Post) -> Response {
    let no_query = HashMap::new();
    let days = match form.number::<i64>("expires_in_days") {
        // Within a century either way (the API refuses an expiry that is not in the
        // future).
        Ok(d) if d.is_none_or(|d| (-36_500..=36_500).contains(&d)) => Ok(d),
        Ok(_) => Err("expires_in_days must be at most 36500 days".to_string()),
        Err(m) => Err(m),
    };
    let days = match days {
        Ok(d) => d,
        Err(m) => {
            let e = ApiFailure::new(StatusCode::BAD_REQUEST, "invalid_input", m);
            return list_page(&sess, e.status, &no_query, &form, Some(&e)).await;
        }
    };
    let body = NewToken {
        description: form.text("description").to_string(),
        expires_at: days.map(|d| crate::model::now_unix() + d * 86_400),
    };
    match sess
        .api
        .post::<_, IssuedToken>("/api/v1/tokens", &body)
        .await
    {
        Ok(issued) => {
            let filename = format!("keyhold-token-{}.txt", issued.info.id);
            let text = format!("{}\n", issued.token);
            let url = sess.offer_download(&filename, text.into_bytes());
            let id = url.rsplit('/').next().unwrap_or_default();
            redirect(&format!("/console/tokens?download={}", seg(id)))
        }
        Err(e) => list_page(&sess, e.status, &no_query, &form, Some(&e)).await,
    }
}

async fn revoke(Path(id): Path<String>, Post { sess, .. }: Post) -> Response {
    match sess
        .api
        .delete(&format!("/api/v1/tokens/{}", seg(&id)))
        .await
    {
        Ok(()) => redirect("/console/tokens?done=revoked"),
        Err(e) => {
            list_page(
                &sess,
                e.status,
                &HashMap::new(),
                &FormData::default(),
                Some(&e),
            )
            .await
        }
    }
}

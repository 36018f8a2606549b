//! The web console: server-rendered HTML pages at `/console/` on the admin listener
//! (same origin, TLS and limits as the API), one per procedure of the manual.
//!
//! # Stack
//! Pages are [`maud`] templates (compiled into the binary, auto-escaped), answered as
//! plain HTML with HTML forms (POST, then redirect to a GET). There is no JavaScript at
//! all (`Content-Security-Policy: script-src 'none'`); charts are inline SVG rendered on
//! the server; the one stylesheet is embedded with `include_str!`. So one binary still
//! deploys everything and nothing is built from npm.
//!
//! # The console is a client of the admin API
//! Every handler calls the `/api/v1/...` router in-process ([`client::Api`], through
//! `tower::ServiceExt::oneshot`) with the session token from the cookie as its bearer
//! and the client's address forwarded (the login throttle reads it). Authorization
//! (ACLs), validation, audit records and error codes are therefore exactly the API's;
//! console code never calls [`crate::ops`].
//!
//! # Sessions and CSRF
//! Signing in (`/console/signin`) calls `POST /api/v1/login` and keeps the session token
//! in the cookie `keyhold_session` (`HttpOnly; Secure; SameSite=Strict; Path=/`,
//! `Max-Age` from the session's expiry). A page request without it redirects to the
//! sign-in page with `next=` (only `/console/...` paths are followed); an expired or
//! revoked token does too, with a message. Every state change is a POST form carrying
//! the hidden field `csrf` = base64url(SHA-256("keyhold-console-csrf\0" || token)),
//! compared in constant time; a POST whose `Sec-Fetch-Site` is `cross-site` or whose
//! `Origin` is not the `Host` is refused too. Refusals: a 403 page, code `csrf_failed`.
//!
//! # Writing a page module (how `stores.rs`, `sources.rs`, ... are built)
//! A module exposes `pub(super) fn routes() -> Router<ConsoleState>` with full paths
//! (`/console/things`, `/console/things/{name}`) and is added to `MODULES` below
//! (one line). Its handlers take:
//! - [`Session`] (GET pages): the signed-in user (`sess.user`), the API client
//!   (`sess.api`), the CSRF token (`sess.csrf`). Missing or expired sessions never reach
//!   the handler (they are redirected to the sign-in page).
//! - [`Post`] (state changes): `Post { sess, form }`, the CSRF and origin checks already
//!   passed; `form` is a [`FormData`]: `form.text("name")` (trimmed, `""` when absent),
//!   `form.opt("name")` (`None` when empty), `form.checked("name")`, `form.all("name")`
//!   (repeated fields, e.g. checkboxes), `form.number::<u32>("name")` (`Err(message)`),
//!   `form.confirmed("expected name")` (the `confirm_name` field of a confirmation step).
//!
//! API calls (`sess.api`, an [`Api`]): `get::<T>(path)`, `get_etag::<T>(path)` (value and `ETag`),
//! `post::<B, T>(path, &body)`, `post_empty::<T>(path)`, `post_reply(path, &body)`
//! (status and headers too), `patch::<B, T>(path, &body, etag)`, `put::<B, T>(path,
//! &body)`, `delete(path)`; each answers `Result<_, ApiFailure>` ([`ApiFailure`]: the
//! API's `status`, `code`, `message`). Build paths with [`seg`] for each id or name.
//! `?` on an [`ApiFailure`] in a handler returning `Result<Response, ApiFailure>` answers
//! an error page with the API's status (and the sign-in page on 401).
//!
//! HTML helpers (module `html`, re-exported here):
//! - [`page`]`(&sess, "stores", "Title", body)` → the full page (header with the user
//!   and sign-out button, nav with the section `"stores"` marked current, skip link,
//!   `<main id="main">`), 200, `Cache-Control: no-store`; [`page_with_status`] for
//!   another status (e.g. the API's status when a form is shown again with its error).
//! - [`error_banner`]`(&failure)` → `<div role="alert" class="error" data-code="...">`;
//!   [`ok_banner`]`("Saved.")` → `<div role="status" class="ok">`;
//!   [`notice`]`(&query, &[("created", "Key store created."), ...])` → the success
//!   banner of the `?done=<key>` a POST redirected to (fixed texts only).
//! - [`Field`]: `Field::text("name", "Name").value(v).help("...").error(msg)
//!   .required()`, also `Field::password`, `Field::number`, `Field::textarea`,
//!   `Field::checkbox(name, label, checked)`, `Field::select(name, label, options)`;
//!   renders `<label for>`, `id` = `name` = the API's JSON field name, and
//!   `aria-describedby` for its help and error. Use `(field)` inside `html!`.
//! - [`post_form`]`(&sess, "create-store", "/console/stores", fields, "Create")` →
//!   `<form id="create-store-form" method="post">` with the hidden `csrf` and the submit
//!   button `id="create-store-submit"`; [`button_form`]`(&sess, "block-store", url,
//!   "Block", Style::Danger)` for a one-button action; in a table row pass an action id
//!   that includes the row (`"delete-credential-<akid>"`).
//! - [`table`]`("stores", "Key stores", &["Name", ...], rows)` → a scrolling wrapper with
//!   `<table id="stores">`; rows are `tr data-name=(name) { ... }`.
//! - [`confirm_form`]`(&sess, "delete-store", url, &name, "Delete key store")` → a
//!   confirmation step that needs the name typed into `confirm_name`; check it with
//!   `form.confirmed(&name)`.
//! - [`redirect`]`("/console/...")` → 303 (POST/redirect/GET).
//! - [`details`]`(&[("Name", html! { ... }), ...])` → a definition list of a record;
//!   [`when`]`(unix_seconds)` → `2026-12-03 07:01:02 UTC`; [`csrf_field`]`(&sess)` → the
//!   hidden field, for a form built by hand; `Field::attr("min", "2")` and
//!   `Field::id_prefix("link")` (a second form on the page with the same field names).
//! - Pages read their query (e.g. `?done=`) with `Query<HashMap<String, String>>`.
//! - Inline SVG (charts) must not use `style` attributes or `<style>` elements
//!   (`style-src 'self'`): use presentation attributes (`fill`, `stroke`) or classes
//!   of `console/console.css`.
//! - One-time downloads of secrets: `sess.offer_download(filename, bytes)` → the
//!   `/console/downloads/<id>` URL (bound to the session, served once as an
//!   attachment, gone after 10 minutes); never render a secret into HTML.

use std::sync::{Arc, LazyLock};

use axum::{
    Router,
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
    routing::{any, get},
};
use sha2::{Digest, Sha256};

use crate::admin::AdminState;

mod accounts;
mod audit;
mod auth;
mod client;
mod connections;
mod downloads;
mod form;
mod html;
mod operations;
mod sources;
mod store;
mod store_keys;
mod stores;
mod tokens;
mod users;

pub use auth::{Post, Session};
pub use client::{Api, ApiFailure, seg};
pub use form::FormData;
pub use html::{
    Field, Style, button_form, confirm_form, csrf_field, details, error_banner, notice, ok_banner,
    page, page_with_status, post_form, redirect, table, when,
};

/// What console handlers share: the admin API router they call and the one-time
/// download slots.
#[derive(Clone)]
pub struct ConsoleState {
    api: Router,
    downloads: Arc<downloads::Downloads>,
}

/// The sections in the navigation: `(key, label, href)`. A page passes its key to
/// [`page`] to be marked current.
pub const NAV: &[(&str, &str, &str)] = &[
    ("stores", "Key stores", "/console/stores"),
    ("sources", "Key sources", "/console/sources"),
    ("connections", "Connections", "/console/connections"),
    ("accounts", "Accounts", "/console/accounts"),
    ("users", "Users", "/console/users"),
    ("tokens", "API tokens", "/console/tokens"),
    ("audit", "Audit log", "/console/audit"),
    ("operations", "Operations", "/console/operations"),
];

/// Every page module's routes: add a module here.
const MODULES: &[fn() -> Router<ConsoleState>] = &[
    auth::routes,
    downloads::routes,
    stores::routes,
    store::routes,
    store_keys::routes,
    sources::routes,
    accounts::routes,
    users::routes,
    tokens::routes,
    connections::routes,
    audit::routes,
    operations::routes,
];

/// The admin listener's router: the console at `/console/` (and `/` redirecting to
/// it) in front of the admin API (`/api/v1/...`, the fallback).
pub fn router(admin: AdminState) -> Router {
    let api = crate::admin::router(admin);
    let state = ConsoleState {
        api: api.clone(),
        downloads: Arc::new(downloads::Downloads::default()),
    };
    let mut console = Router::new()
        .route("/", get(to_console))
        .route("/console", get(to_console))
        .route("/console/", get(home))
        .route(CSS_PATH, get(stylesheet))
        .route("/console/{*rest}", any(not_found));
    for module in MODULES {
        console = console.merge(module());
    }
    console
        .route_layer(axum::middleware::map_response(security_headers))
        .with_state(state)
        .fallback_service(api)
}

async fn to_console() -> Response {
    redirect("/console/")
}

async fn home(_sess: Session) -> Response {
    redirect("/console/stores")
}

async fn not_found(sess: Session) -> Response {
    let body = maud::html! {
        h1 { "Not found" }
        p { "There is no console page at this address." }
    };
    page_with_status(&sess, StatusCode::NOT_FOUND, "", "Not found", body)
}

/// The stylesheet's path.
const CSS_PATH: &str = "/console/assets/console.css";

/// The embedded stylesheet.
const CSS: &str = include_str!("console/console.css");

/// The stylesheet's strong `ETag` (its digest).
static CSS_ETAG: LazyLock<String> = LazyLock::new(|| {
    let digest = Sha256::digest(CSS.as_bytes());
    format!("\"{}\"", hex::encode(&digest[..12]))
});

/// The stylesheet's URL: versioned by its digest, so it may be cached for long.
pub(crate) fn css_url() -> String {
    format!("{CSS_PATH}?v={}", CSS_ETAG.trim_matches('"'))
}

async fn stylesheet(headers: HeaderMap) -> Response {
    let etag = CSS_ETAG.as_str();
    let cache = (header::CACHE_CONTROL, "public, max-age=31536000, immutable");
    let fresh = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(',')
                .any(|t| t.trim().trim_start_matches("W/") == etag)
        });
    if fresh {
        return (StatusCode::NOT_MODIFIED, [cache, (header::ETAG, etag)]).into_response();
    }
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            cache,
            (header::ETAG, etag),
        ],
        CSS,
    )
        .into_response()
}

/// The content security policy: no scripts, nothing from elsewhere, no framing.
pub const CSP: &str = "default-src 'none'; script-src 'none'; style-src 'self'; \
    img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// Security headers on every console answer; pages (anything not setting its own
/// `Cache-Control`) are `no-store`.
async fn security_headers(mut resp: Response) -> Response {
    let h = resp.headers_mut();
    for (name, value) in [
        (header::CONTENT_SECURITY_POLICY, CSP),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "same-origin"),
        (header::X_FRAME_OPTIONS, "DENY"),
    ] {
        h.insert(name, HeaderValue::from_static(value));
    }
    if !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    resp
}

#[cfg(test)]
mod tests;

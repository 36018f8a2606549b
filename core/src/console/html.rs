//! The page layout and the shared pieces of pages: banners, form fields, forms,
//! tables, confirmation steps (see the console's module documentation for their use).

use std::collections::HashMap;

use axum::{
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use maud::{DOCTYPE, Markup, Render, html};

use super::{ApiFailure, NAV, Session, auth, css_url};

/// The product's name in the header and titles.
pub const PRODUCT: &str = "keyhold";

fn document(title: &str, header: Markup, main: Markup) -> String {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · " (PRODUCT) }
                link rel="stylesheet" href=(css_url());
            }
            body {
                a class="skip" href="#main" { "Skip to content" }
                (header)
                main id="main" tabindex="-1" { (main) }
            }
        }
    }
    .into_string()
}

fn html_response(status: StatusCode, text: String) -> Response {
    let mut resp = (status, text).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    resp
}

/// A console page for the signed-in user, `nav` (a key of [`NAV`]) marked current.
pub fn page(sess: &Session, nav: &str, title: &str, body: Markup) -> Response {
    page_with_status(sess, StatusCode::OK, nav, title, body)
}

/// [`page`] with another status (e.g. the API's, when a form comes back with its
/// refusal).
pub fn page_with_status(
    sess: &Session,
    status: StatusCode,
    nav: &str,
    title: &str,
    body: Markup,
) -> Response {
    let header = html! {
        header class="top" {
            a class="brand" href="/console/" { (PRODUCT) }
            div class="who" {
                span id="signed-in-user" { "Signed in as " strong { (sess.user) } }
                form id="signout-form" method="post" action="/console/signout" {
                    input type="hidden" name="csrf" value=(sess.csrf);
                    button id="signout-submit" type="submit" class="link" { "Sign out" }
                }
            }
        }
        nav aria-label="Sections" {
            ul {
                @for (key, label, href) in NAV {
                    li {
                        @if *key == nav {
                            a href=(href) aria-current="page" { (label) }
                        } @else {
                            a href=(href) { (label) }
                        }
                    }
                }
            }
        }
    };
    html_response(status, document(title, header, body))
}

/// A page outside a session (sign in, refusals): the header without user and nav.
pub fn bare_page(status: StatusCode, title: &str, body: Markup) -> Response {
    let header = html! {
        header class="top" { a class="brand" href="/console/" { (PRODUCT) } }
    };
    html_response(status, document(title, header, body))
}

/// The page answering a failure: the sign-in page for an expired or revoked session
/// (401), else the error with the API's status and code.
pub fn failure_page(e: &ApiFailure) -> Response {
    if e.status == StatusCode::UNAUTHORIZED {
        let mut resp = redirect("/console/signin?expired=1");
        if let Ok(v) = HeaderValue::from_str(&auth::set_cookie("", 0)) {
            resp.headers_mut().insert(header::SET_COOKIE, v);
        }
        return resp;
    }
    let body = html! {
        h1 { "Refused" }
        (error_banner(e))
        p { a href="/console/" { "Back to the console" } }
    };
    bare_page(e.status, "Refused", body)
}

/// A 303 redirect to `to` (POST/redirect/GET).
pub fn redirect(to: &str) -> Response {
    let mut resp = StatusCode::SEE_OTHER.into_response();
    if let Ok(v) = HeaderValue::from_str(to) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    resp
}

/// The API's refusal: `<div role="alert" class="error" data-code="<code>">`.
pub fn error_banner(e: &ApiFailure) -> Markup {
    html! {
        div role="alert" class="error" data-code=(e.code) {
            strong { "Refused (" code { (e.code) } "): " }
            (e.message)
            @if let Some(aws) = &e.aws_error_code {
                " AWS error: " code { (aws) }
            }
        }
    }
}

/// A success message: `<div role="status" class="ok">`.
pub fn ok_banner(message: &str) -> Markup {
    html! { div role="status" class="ok" { (message) } }
}

/// The success banner of the `?done=<key>` a POST redirected to: the fixed text of
/// `key` in `texts` (unknown keys show nothing).
pub fn notice(query: &HashMap<String, String>, texts: &[(&str, &str)]) -> Markup {
    let text = query
        .get("done")
        .and_then(|d| texts.iter().find(|(k, _)| k == d))
        .map(|(_, t)| *t);
    html! { @if let Some(t) = text { (ok_banner(t)) } }
}

#[derive(Debug, Clone)]
enum Kind {
    Input(&'static str),
    TextArea,
    Checkbox(bool),
    Select(Vec<(String, String)>),
}

/// A labelled form field: `id` = `name` = the API's JSON field name, with its help
/// and error text tied to it by `aria-describedby`.
#[derive(Debug, Clone)]
pub struct Field {
    kind: Kind,
    name: String,
    label: String,
    value: String,
    help: Option<String>,
    error: Option<String>,
    required: bool,
    autocomplete: Option<&'static str>,
    extra: Vec<(&'static str, String)>,
    id: Option<String>,
}

impl Field {
    fn new(kind: Kind, name: &str, label: &str) -> Field {
        Field {
            kind,
            name: name.into(),
            label: label.into(),
            value: String::new(),
            help: None,
            error: None,
            required: false,
            autocomplete: None,
            extra: Vec::new(),
            id: None,
        }
    }

    /// A text input.
    pub fn text(name: &str, label: &str) -> Field {
        Field::new(Kind::Input("text"), name, label)
    }

    /// A password input (never given a value).
    pub fn password(name: &str, label: &str) -> Field {
        Field::new(Kind::Input("password"), name, label)
    }

    /// A number input.
    pub fn number(name: &str, label: &str) -> Field {
        Field::new(Kind::Input("number"), name, label)
    }

    /// A multi-line text area.
    pub fn textarea(name: &str, label: &str) -> Field {
        Field::new(Kind::TextArea, name, label)
    }

    /// A checkbox (sent as `name=true` when checked).
    pub fn checkbox(name: &str, label: &str, checked: bool) -> Field {
        Field::new(Kind::Checkbox(checked), name, label)
    }

    /// A drop-down of `(value, text)` options; [`Field::value`] selects one.
    pub fn select(name: &str, label: &str, options: Vec<(String, String)>) -> Field {
        Field::new(Kind::Select(options), name, label)
    }

    /// Its value.
    pub fn value(mut self, value: impl Into<String>) -> Field {
        self.value = value.into();
        self
    }

    /// Help text shown under it.
    pub fn help(mut self, help: impl Into<String>) -> Field {
        self.help = Some(help.into());
        self
    }

    /// An error shown under it (and `aria-invalid`).
    pub fn error(mut self, error: Option<String>) -> Field {
        self.error = error;
        self
    }

    /// Required.
    pub fn required(mut self) -> Field {
        self.required = true;
        self
    }

    /// The `autocomplete` hint.
    pub fn autocomplete(mut self, hint: &'static str) -> Field {
        self.autocomplete = Some(hint);
        self
    }

    /// A `min`, `max`, `pattern` or `placeholder` attribute.
    pub fn attr(mut self, name: &'static str, value: impl Into<String>) -> Field {
        self.extra.push((name, value.into()));
        self
    }

    /// An `id` other than the name: `<prefix>-<name>` (when a page has two forms with
    /// the same field, e.g. the store page's edit and link forms).
    pub fn id_prefix(mut self, prefix: &str) -> Field {
        self.id = Some(format!("{prefix}-{}", self.name));
        self
    }

    fn described_by(&self) -> Option<String> {
        let ids: Vec<String> = [
            self.help.as_ref().map(|_| format!("{}-help", self.id())),
            self.error.as_ref().map(|_| format!("{}-error", self.id())),
        ]
        .into_iter()
        .flatten()
        .collect();
        (!ids.is_empty()).then(|| ids.join(" "))
    }

    fn id(&self) -> &str {
        self.id.as_deref().unwrap_or(&self.name)
    }

    fn extra(&self, name: &str) -> Option<&str> {
        self.extra
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }
}

impl Render for Field {
    fn render(&self) -> Markup {
        let n = self.name.as_str();
        let id = self.id();
        let described = self.described_by();
        let invalid = self.error.as_ref().map(|_| "true");
        let (min, max) = (self.extra("min"), self.extra("max"));
        let (pattern, placeholder) = (self.extra("pattern"), self.extra("placeholder"));
        html! {
            div class={ "field" @if self.error.is_some() { " invalid" } } {
                @match &self.kind {
                    Kind::Checkbox(checked) => {
                        input type="checkbox" id=(id) name=(n) value="true" checked[*checked]
                            aria-describedby=[described.as_deref()];
                        label for=(id) { (self.label) }
                    }
                    Kind::Input(t) => {
                        label for=(id) { (self.label) @if self.required { span class="req" { " (required)" } } }
                        @let value = if *t == "password" { "" } else { self.value.as_str() };
                        input type=(t) id=(id) name=(n) value=(value) required[self.required]
                            autocomplete=[self.autocomplete] min=[min] max=[max]
                            pattern=[pattern] placeholder=[placeholder]
                            aria-invalid=[invalid] aria-describedby=[described.as_deref()];
                    }
                    Kind::TextArea => {
                        label for=(id) { (self.label) @if self.required { span class="req" { " (required)" } } }
                        textarea id=(id) name=(n) rows="4" required[self.required]
                            placeholder=[placeholder]
                            aria-invalid=[invalid] aria-describedby=[described.as_deref()] { (self.value) }
                    }
                    Kind::Select(options) => {
                        label for=(id) { (self.label) @if self.required { span class="req" { " (required)" } } }
                        select id=(id) name=(n) required[self.required]
                            aria-invalid=[invalid] aria-describedby=[described.as_deref()] {
                            @for (v, text) in options {
                                option value=(v) selected[*v == self.value] { (text) }
                            }
                        }
                    }
                }
                @if let Some(h) = &self.help {
                    p class="help" id={ (id) "-help" } { (h) }
                }
                @if let Some(e) = &self.error {
                    p class="field-error" id={ (id) "-error" } { (e) }
                }
            }
        }
    }
}

/// How a button looks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    /// The page's main action.
    Primary,
    /// A secondary action.
    Plain,
    /// A destructive action.
    Danger,
}

impl Style {
    fn class(self) -> &'static str {
        match self {
            Style::Primary => "primary",
            Style::Plain => "plain",
            Style::Danger => "danger",
        }
    }
}

/// The hidden CSRF field of the session's forms.
pub fn csrf_field(sess: &Session) -> Markup {
    html! { input type="hidden" name="csrf" value=(sess.csrf); }
}

/// `<form id="<action>-form" method="post" action=url>` with the CSRF field, `fields`
/// and the submit button `id="<action>-submit"`.
pub fn post_form(sess: &Session, action: &str, url: &str, fields: Markup, submit: &str) -> Markup {
    html! {
        form id={ (action) "-form" } method="post" action=(url) class="stack" {
            (csrf_field(sess))
            (fields)
            div class="actions" {
                button id={ (action) "-submit" } type="submit" class="primary" { (submit) }
            }
        }
    }
}

/// A one-button form (block, unblock, rotate...): `id="<action>-form"`, button
/// `id="<action>-submit"`.
pub fn button_form(sess: &Session, action: &str, url: &str, label: &str, style: Style) -> Markup {
    html! {
        form id={ (action) "-form" } method="post" action=(url) class="inline" {
            (csrf_field(sess))
            button id={ (action) "-submit" } type="submit" class=(style.class()) { (label) }
        }
    }
}

/// A table in a scrolling wrapper: `<table id=id>` with its caption and column heads;
/// `rows` are `tr data-name=(name) { td ... }`.
pub fn table(id: &str, caption: &str, head: &[&str], rows: Markup) -> Markup {
    html! {
        div class="table-wrap" role="region" aria-label=(caption) tabindex="0" {
            table id=(id) {
                caption { (caption) }
                thead { tr { @for h in head { th scope="col" { (h) } } } }
                tbody { (rows) }
            }
        }
    }
}

/// A confirmation step for an irreversible action: the name `expected` must be typed
/// into `confirm_name` (check with `FormData::confirmed`).
pub fn confirm_form(
    sess: &Session,
    action: &str,
    url: &str,
    expected: &str,
    submit: &str,
) -> Markup {
    let label = format!("Type {expected} to confirm");
    html! {
        form id={ (action) "-form" } method="post" action=(url) class="stack confirm" {
            (csrf_field(sess))
            (Field::text("confirm_name", &label).required().autocomplete("off")
                .help("This cannot be undone."))
            div class="actions" {
                button id={ (action) "-submit" } type="submit" class="danger" { (submit) }
            }
        }
    }
}

/// A definition list of `(term, value)` rows.
pub fn details(rows: &[(&str, Markup)]) -> Markup {
    html! {
        dl class="details" {
            @for (term, value) in rows {
                div { dt { (term) } dd { (value) } }
            }
        }
    }
}

/// A Unix time as UTC text (`2026-12-03 07:01:02 UTC`).
pub fn when(unix: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| {
            t.format(time::macros::format_description!(
                "[year]-[month]-[day] [hour]:[minute]:[second] UTC"
            ))
            .ok()
        })
        .unwrap_or_else(|| unix.to_string())
}

//! Signing in and out, the session cookie, and the checks every state change passes:
//! the CSRF token and the same-origin check.

use std::{net::SocketAddr, time::Instant};

use axum::{
    Router,
    extract::{ConnectInfo, FromRequest, FromRequestParts, Query, Request, State},
    http::{HeaderMap, HeaderValue, StatusCode, header, request::Parts},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use maud::html;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use super::{
    ApiFailure, ConsoleState, Field, FormData,
    client::Api,
    downloads::{Downloads, Taken},
    html::{self, error_banner, ok_banner, redirect},
};
use crate::api::{
    session::{Login, Session as ApiSession},
    tokens::Token,
};

/// The session cookie's name.
pub const COOKIE: &str = "keyhold_session";

/// Largest form body read.
const MAX_FORM: usize = 1024 * 1024;

pub(super) fn routes() -> Router<ConsoleState> {
    Router::new()
        .route("/console/signin", get(signin_page).post(signin))
        .route("/console/signout", post(signout))
}

/// The CSRF token of a session: base64url(SHA-256("keyhold-console-csrf\0" || token)).
pub fn csrf_token(session_token: &str) -> String {
    let mut h = Sha256::new();
    h.update(b"keyhold-console-csrf\0");
    h.update(session_token.as_bytes());
    URL_SAFE_NO_PAD.encode(h.finalize())
}

/// Whether `sent` is the CSRF token of `session_token` (constant time).
pub fn csrf_ok(session_token: &str, sent: Option<&str>) -> bool {
    let expected = csrf_token(session_token);
    sent.is_some_and(|s| bool::from(s.as_bytes().ct_eq(expected.as_bytes())))
}

/// The `next=` target after signing in: a `/console/...` path (with its query) only;
/// anything else (other paths, `//host`, schemes, backslashes) → `/console/`.
pub fn sanitize_next(next: Option<&str>) -> String {
    let fallback = "/console/".to_string();
    let Some(n) = next else { return fallback };
    let ok = n.starts_with("/console/")
        && !n.contains("//")
        && !n.contains('\\')
        && !n.contains("/../")
        && !n.ends_with("/..")
        && !n.chars().any(|c| c.is_control() || c == ' ')
        && !n.starts_with("/console/signin")
        && !n.starts_with("/console/signout")
        && n.len() <= 1024;
    if ok { n.to_string() } else { fallback }
}

/// Whether a state-changing request comes from another site: `Sec-Fetch-Site:
/// cross-site`, or an `Origin` whose host is not `host` (or `null`).
pub fn cross_site(sec_fetch_site: Option<&str>, origin: Option<&str>, host: Option<&str>) -> bool {
    if sec_fetch_site.is_some_and(|s| s.eq_ignore_ascii_case("cross-site")) {
        return true;
    }
    let Some(origin) = origin else { return false };
    let origin = origin.to_ascii_lowercase();
    let origin_host = origin
        .strip_prefix("https://")
        .or_else(|| origin.strip_prefix("http://"));
    match (origin_host, host) {
        (Some(o), Some(h)) => !o.eq_ignore_ascii_case(h),
        _ => true,
    }
}

/// The session token in the `Cookie` headers, if any (and cookie-safe).
pub fn session_cookie(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == COOKIE)
        .map(|(_, v)| v.trim().to_string())
        .filter(|v| {
            !v.is_empty()
                && v.len() <= 512
                && v.bytes()
                    .all(|b| b.is_ascii_graphic() && b != b';' && b != b',')
        })
}

/// The `Set-Cookie` value keeping `token` for `max_age` seconds (0: clearing it).
pub fn set_cookie(token: &str, max_age: i64) -> String {
    format!(
        "{COOKIE}={token}; HttpOnly; Secure; SameSite=Strict; Path=/; Max-Age={}",
        max_age.max(0)
    )
}

/// The signed-in user of a console request (the session cookie's token, checked by
/// the API). Requests without a valid session are redirected to the sign-in page.
pub struct Session {
    /// The user's name.
    pub user: String,
    /// The admin API, as this user.
    pub api: Api,
    /// The CSRF token forms carry (hidden field `csrf`).
    pub csrf: String,
    token: Zeroizing<String>,
    downloads: std::sync::Arc<Downloads>,
}

impl Session {
    /// Keeps `body` for one download by this session (10 minutes); its URL.
    pub fn offer_download(&self, filename: &str, body: Vec<u8>) -> String {
        let id = self
            .downloads
            .put(&self.token, filename, body, Instant::now());
        format!("/console/downloads/{id}")
    }

    pub(super) fn take_download(&self, id: &str) -> Taken {
        self.downloads.take(&self.token, id, Instant::now())
    }
}

fn peer(parts: &Parts) -> Option<ConnectInfo<SocketAddr>> {
    parts.extensions.get::<ConnectInfo<SocketAddr>>().copied()
}

/// The sign-in URL that comes back to this request's page (GETs only; else the
/// console's home).
fn signin_url(parts: &Parts, expired: bool) -> String {
    let back = if parts.method == axum::http::Method::GET {
        parts
            .uri
            .path_and_query()
            .map_or("/console/", |pq| pq.as_str())
    } else {
        "/console/"
    };
    let next = sanitize_next(Some(back));
    let mut url = format!("/console/signin?next={}", super::seg(&next));
    if expired {
        url.push_str("&expired=1");
    }
    url
}

impl FromRequestParts<ConsoleState> for Session {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &ConsoleState,
    ) -> Result<Self, Self::Rejection> {
        let Some(token) = session_cookie(&parts.headers) else {
            return Err(redirect(&signin_url(parts, false)));
        };
        let token = Zeroizing::new(token);
        let api = Api::new(state.api.clone(), Some(token.clone()), peer(parts));
        // Who is signed in (and whether the token still works): the caller's tokens.
        let tokens = match api.get::<Vec<Token>>("/api/v1/tokens").await {
            Ok(t) => t,
            Err(e) if e.status == StatusCode::UNAUTHORIZED => {
                let mut resp = redirect(&signin_url(parts, true));
                if let Ok(v) = HeaderValue::from_str(&set_cookie("", 0)) {
                    resp.headers_mut().insert(header::SET_COOKIE, v);
                }
                return Err(resp);
            }
            Err(e) => return Err(e.into_response()),
        };
        let id = token_id(&token);
        let user = tokens
            .iter()
            .find(|t| Some(t.id.as_str()) == id)
            .or(tokens.first())
            .map(|t| t.user.clone())
            .unwrap_or_default();
        Ok(Session {
            user,
            api,
            csrf: csrf_token(&token),
            token,
            downloads: state.downloads.clone(),
        })
    }
}

/// The public id of a bearer `kh_<id>.<secret>`.
fn token_id(bearer: &str) -> Option<&str> {
    bearer
        .strip_prefix("kh_")
        .and_then(|rest| rest.split_once('.'))
        .map(|(id, _)| id)
}

/// A state-changing console request: a POSTed form from this origin with the session's
/// CSRF token. Anything else is refused with the 403 page `csrf_failed` (or sent to the
/// sign-in page without a session).
pub struct Post {
    /// The signed-in user.
    pub sess: Session,
    /// The submitted fields (without `csrf`).
    pub form: FormData,
}

fn same_origin(parts: &Parts) -> bool {
    let get = |name: &str| parts.headers.get(name).and_then(|v| v.to_str().ok());
    let host = get(header::HOST.as_str()).or_else(|| parts.uri.authority().map(|a| a.as_str()));
    !cross_site(get("sec-fetch-site"), get(header::ORIGIN.as_str()), host)
}

async fn read_form(req: Request, state: &ConsoleState) -> Result<FormData, Response> {
    let bytes = axum::body::to_bytes(req.into_body(), MAX_FORM)
        .await
        .map_err(|_| {
            html::failure_page(&ApiFailure::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "form_too_large",
                "the form is too large",
            ))
        })?;
    let _ = state;
    FormData::parse(&bytes).ok_or_else(|| {
        html::failure_page(&ApiFailure::new(
            StatusCode::BAD_REQUEST,
            "invalid_form",
            "the form could not be read",
        ))
    })
}

impl FromRequest<ConsoleState> for Post {
    type Rejection = Response;

    async fn from_request(req: Request, state: &ConsoleState) -> Result<Self, Self::Rejection> {
        let (mut parts, body) = req.into_parts();
        if !same_origin(&parts) {
            return Err(csrf_refusal("the form was sent from another site"));
        }
        let sess = Session::from_request_parts(&mut parts, state).await?;
        let form = read_form(Request::from_parts(parts, body), state).await?;
        if !csrf_ok(&sess.token, form.raw("csrf")) {
            return Err(csrf_refusal(
                "the form's CSRF token is missing or wrong: reload the page and try again",
            ));
        }
        Ok(Post { sess, form })
    }
}

/// The 403 page refusing a state change (code `csrf_failed`).
pub fn csrf_refusal(why: &str) -> Response {
    html::failure_page(&ApiFailure::new(
        StatusCode::FORBIDDEN,
        "csrf_failed",
        format!("Refused: {why}."),
    ))
}

#[derive(Deserialize)]
struct SigninQuery {
    next: Option<String>,
    expired: Option<String>,
    signed_out: Option<String>,
}

async fn signin_page(Query(q): Query<SigninQuery>) -> Response {
    let next = sanitize_next(q.next.as_deref());
    let banner = if q.expired.is_some() {
        Some(html! {
            div role="alert" class="error" data-code="session_expired" {
                "Your session expired or was revoked: sign in again."
            }
        })
    } else if q.signed_out.is_some() {
        Some(ok_banner("You are signed out."))
    } else {
        None
    };
    signin_form(StatusCode::OK, &next, "", banner)
}

fn signin_form(
    status: StatusCode,
    next: &str,
    user: &str,
    banner: Option<maud::Markup>,
) -> Response {
    let body = html! {
        h1 { "Sign in" }
        @if let Some(b) = banner { (b) }
        form id="signin-form" method="post" action="/console/signin" {
            input type="hidden" name="next" value=(next);
            (Field::text("user", "User name").value(user).required().autocomplete("username"))
            (Field::password("password", "Password").required().autocomplete("current-password"))
            button id="signin-submit" type="submit" class="primary" { "Sign in" }
        }
    };
    html::bare_page(status, "Sign in", body)
}

async fn signin(State(state): State<ConsoleState>, req: Request) -> Result<Response, Response> {
    let (parts, body) = req.into_parts();
    if !same_origin(&parts) {
        return Err(csrf_refusal("the sign-in form was sent from another site"));
    }
    let api = Api::new(state.api.clone(), None, peer(&parts));
    let form = read_form(Request::from_parts(parts, body), &state).await?;
    let next = sanitize_next(form.raw("next"));
    let user = form.text("user").to_string();
    let login = Login {
        user: user.clone(),
        password: form.raw("password").unwrap_or_default().to_string(),
    };
    match api.post::<_, ApiSession>("/api/v1/login", &login).await {
        Ok(session) => {
            let now = crate::model::now_unix();
            let max_age = session.expires_at.map_or(86_400, |at| at - now);
            let mut resp = redirect(&next);
            if let Ok(v) = HeaderValue::from_str(&set_cookie(&session.token, max_age)) {
                resp.headers_mut().insert(header::SET_COOKIE, v);
            }
            Ok(resp)
        }
        Err(e) => Ok(signin_form(e.status, &next, &user, Some(error_banner(&e)))),
    }
}

async fn signout(Post { sess, .. }: Post) -> Response {
    // The cookie goes even when the API refuses (an expired token is signed out
    // already).
    let _ = sess.api.post_empty::<()>("/api/v1/logout").await;
    let mut resp = redirect("/console/signin?signed_out=1");
    if let Ok(v) = HeaderValue::from_str(&set_cookie("", 0)) {
        resp.headers_mut().insert(header::SET_COOKIE, v);
    }
    resp
}

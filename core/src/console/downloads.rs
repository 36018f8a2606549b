//! One-time download slots for secrets (a new store's credentials file, a rotated
//! credential): a secret is never rendered into a page; the page links to
//! `/console/downloads/<random id>` instead, which serves it once, as an attachment,
//! to the session that created it, within 10 minutes.

use std::{
    collections::HashMap,
    sync::Mutex,
    time::{Duration, Instant},
};

use axum::{
    Router,
    extract::Path,
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
    routing::get,
};
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use maud::html;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use super::{ConsoleState, Session, page_with_status};

/// How long a slot waits for its download.
pub const TTL: Duration = Duration::from_secs(600);

/// Most slots kept at once (the oldest go first).
const MAX_SLOTS: usize = 256;

pub(super) fn routes() -> Router<ConsoleState> {
    Router::new().route("/console/downloads/{id}", get(download))
}

struct Slot {
    /// SHA-256 of the session token it belongs to.
    owner: [u8; 32],
    filename: String,
    body: Zeroizing<Vec<u8>>,
    expires: Instant,
}

/// The slots, by id.
#[derive(Default)]
pub struct Downloads {
    slots: Mutex<HashMap<String, Slot>>,
}

/// What taking a slot found.
#[derive(Debug, PartialEq, Eq)]
pub enum Taken {
    /// The file (the slot is gone now).
    File {
        /// Its name.
        filename: String,
        /// Its bytes.
        body: Zeroizing<Vec<u8>>,
    },
    /// No such slot, served already, or another session's.
    NotFound,
    /// It waited too long (and is gone now).
    Expired,
}

fn owner_of(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

impl Downloads {
    /// Keeps `body` for one download by the session `token` until `now + TTL`; its id.
    pub fn put(&self, token: &str, filename: &str, body: Vec<u8>, now: Instant) -> String {
        let mut raw = [0u8; 24];
        crate::secrets::fill_random(&mut raw);
        let id = URL_SAFE_NO_PAD.encode(raw);
        let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        slots.retain(|_, s| s.expires > now);
        while slots.len() >= MAX_SLOTS {
            let oldest = slots
                .iter()
                .min_by_key(|(_, s)| s.expires)
                .map(|(k, _)| k.clone());
            match oldest {
                Some(k) => slots.remove(&k),
                None => break,
            };
        }
        slots.insert(
            id.clone(),
            Slot {
                owner: owner_of(token),
                filename: filename.to_string(),
                body: Zeroizing::new(body),
                expires: now + TTL,
            },
        );
        id
    }

    /// Takes slot `id` for the session `token` at `now`.
    pub fn take(&self, token: &str, id: &str, now: Instant) -> Taken {
        let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        let Some(slot) = slots.get(id) else {
            return Taken::NotFound;
        };
        if slot.owner != owner_of(token) {
            return Taken::NotFound;
        }
        let Some(slot) = slots.remove(id) else {
            return Taken::NotFound;
        };
        if slot.expires <= now {
            return Taken::Expired;
        }
        Taken::File {
            filename: slot.filename,
            body: slot.body,
        }
    }
}

async fn download(sess: Session, Path(id): Path<String>) -> Response {
    match sess.take_download(&id) {
        Taken::File { filename, body } => {
            let disposition = format!("attachment; filename=\"{}\"", safe_filename(&filename));
            let mut resp = (StatusCode::OK, body.to_vec()).into_response();
            let h = resp.headers_mut();
            h.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            if let Ok(v) = HeaderValue::from_str(&disposition) {
                h.insert(header::CONTENT_DISPOSITION, v);
            }
            resp
        }
        taken => {
            let (status, text) = if taken == Taken::Expired {
                (
                    StatusCode::GONE,
                    "This download waited more than 10 minutes and is gone.",
                )
            } else {
                (
                    StatusCode::NOT_FOUND,
                    "This download was served already, or never existed for this session.",
                )
            };
            let body = html! {
                h1 { "Download not available" }
                div role="alert" class="error" data-code="download_gone" { (text) }
                p { "A secret is offered for download once. Add a new credential to get another one." }
            };
            page_with_status(&sess, status, "", "Download not available", body)
        }
    }
}

/// `name` with only letters, digits, `.`, `-` and `_` (a header-safe file name).
pub fn safe_filename(name: &str) -> String {
    let s: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') {
                c
            } else {
                '_'
            }
        })
        .take(100)
        .collect();
    if s.is_empty() { "download".into() } else { s }
}

//! The admin API's wire types: every request body and response body of `/api/v1/...`,
//! one module per resource. The server's handlers ([`crate::admin`]) and the CLI both
//! use these, so the two cannot drift; each type derives `utoipa::ToSchema`, so the
//! OpenAPI document describes exactly what is sent.
//!
//! Records that are answered as stored (accounts, HSM connections, HYOK keys, the
//! credentials file) are re-exported from [`crate::model`] under their API names.

pub mod accounts;
pub mod audit;
pub mod connections;
pub mod credentials;
pub mod error;
pub mod jobs;
pub mod keys;
pub mod metrics;
pub mod nodes;
pub mod schedules;
pub mod session;
pub mod sources;
pub mod stores;
pub mod tokens;
pub mod users;

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

/// What a path segment keeps as it is: RFC 3986 unreserved characters plus `:` and `@`
/// (ids and names are mostly URL-safe already).
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~')
    .remove(b':')
    .remove(b'@');

/// Percent-encodes one path segment (an id or a name) of an `/api/v1/...` path (the
/// CLI's and the console's clients build their paths with it).
pub fn seg(s: &str) -> String {
    utf8_percent_encode(s, SEGMENT).to_string()
}

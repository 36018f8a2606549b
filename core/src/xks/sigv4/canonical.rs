//! The SigV4 canonical request, streamed piece by piece into a [`Sink`] (SHA-256 when
//! verifying, a buffer in tests): the URI path encoded once more, the canonical query
//! string, the signed headers with their values trimmed, and the payload hash.

use sha2::{Digest, Sha256};

use super::{AuthError, Authorization, HOST, MAX_QUERY_LEN, MAX_QUERY_PARAMS, RequestParts};

/// Receives the canonical request piece by piece.
pub(super) trait Sink {
    /// Takes the next bytes.
    fn put(&mut self, bytes: &[u8]);
}

impl Sink for Sha256 {
    fn put(&mut self, bytes: &[u8]) {
        Digest::update(self, bytes);
    }
}

#[cfg(test)]
impl Sink for Vec<u8> {
    fn put(&mut self, bytes: &[u8]) {
        self.extend_from_slice(bytes);
    }
}

/// Writes the canonical request. The caller has checked that every signed header is present.
pub(super) fn write_canonical_request(
    req: &RequestParts<'_>,
    auth: &Authorization<'_>,
    canonical_query: &str,
    body_hash_hex: &[u8; 64],
    out: &mut impl Sink,
) {
    out.put(req.method.as_bytes());
    out.put(b"\n");
    if req.path.is_empty() {
        out.put(b"/");
    } else {
        write_uri_encoded(req.path.as_bytes(), true, out);
    }
    out.put(b"\n");
    out.put(canonical_query.as_bytes());
    out.put(b"\n");
    for name in &auth.signed_headers {
        out.put(name.as_bytes());
        out.put(b":");
        let mut values = req.headers.get_all(*name).iter().peekable();
        if values.peek().is_none() && *name == HOST {
            if let Some(authority) = req.authority {
                write_trimmed(authority.as_bytes(), out);
            }
        } else {
            for (i, value) in values.enumerate() {
                if i > 0 {
                    out.put(b",");
                }
                write_trimmed(value.as_bytes(), out);
            }
        }
        out.put(b"\n");
    }
    // The canonical headers end with "\n"; a blank line separates them from the list.
    out.put(b"\n");
    for (i, name) in auth.signed_headers.iter().enumerate() {
        if i > 0 {
            out.put(b";");
        }
        out.put(name.as_bytes());
    }
    out.put(b"\n");
    out.put(body_hash_hex);
}

/// Writes `value` without leading/trailing spaces and with runs of spaces collapsed to one.
pub(super) fn write_trimmed(value: &[u8], out: &mut impl Sink) {
    let value = trim_spaces(value);
    let mut start = 0;
    let mut prev_space = false;
    for (i, &b) in value.iter().enumerate() {
        if b == b' ' {
            if prev_space {
                out.put(&value[start..i]);
                start = i + 1;
            }
            prev_space = true;
        } else {
            prev_space = false;
        }
    }
    out.put(&value[start..]);
}

pub(super) fn trim_spaces(value: &[u8]) -> &[u8] {
    let start = value.iter().position(|&b| b != b' ').unwrap_or(value.len());
    let end = value
        .iter()
        .rposition(|&b| b != b' ')
        .map_or(start, |i| i + 1);
    value.get(start..end).unwrap_or_default()
}

const HEX_UPPER: &[u8; 16] = b"0123456789ABCDEF";
const HEX_LOWER: &[u8; 16] = b"0123456789abcdef";

pub(super) fn hex_lower(bytes: &[u8; 32], out: &mut [u8; 64]) {
    for (i, b) in bytes.iter().enumerate() {
        out[2 * i] = HEX_LOWER[usize::from(b >> 4)];
        out[2 * i + 1] = HEX_LOWER[usize::from(b & 0x0f)];
    }
}

fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

/// SigV4 URI encoding: every byte but the unreserved ones (and `/` if `keep_slash`) as `%XX`.
fn write_uri_encoded(bytes: &[u8], keep_slash: bool, out: &mut impl Sink) {
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        if is_unreserved(b) || (keep_slash && b == b'/') {
            continue;
        }
        out.put(&bytes[start..i]);
        out.put(&[
            b'%',
            HEX_UPPER[usize::from(b >> 4)],
            HEX_UPPER[usize::from(b & 0x0f)],
        ]);
        start = i + 1;
    }
    out.put(&bytes[start..]);
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// `application/x-www-form-urlencoded` decoding of one name or value, then SigV4 encoding.
fn reencode_query_component(raw: &str) -> String {
    let raw = raw.as_bytes();
    let mut decoded = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        let b = raw[i];
        if b == b'+' {
            decoded.push(b' ');
        } else if b == b'%' {
            let hi = raw.get(i + 1).copied().and_then(hex_value);
            let lo = raw.get(i + 2).copied().and_then(hex_value);
            if let (Some(hi), Some(lo)) = (hi, lo) {
                decoded.push(hi << 4 | lo);
                i += 2;
            } else {
                decoded.push(b'%');
            }
        } else {
            decoded.push(b);
        }
        i += 1;
    }
    // Like the AWS SDKs, invalid UTF-8 becomes U+FFFD before re-encoding.
    let decoded = String::from_utf8_lossy(&decoded);
    let mut encoded = Vec::with_capacity(decoded.len() * 3);
    write_uri_encoded(decoded.as_bytes(), false, &mut VecSink(&mut encoded));
    String::from_utf8(encoded).unwrap_or_default()
}

struct VecSink<'a>(&'a mut Vec<u8>);

impl Sink for VecSink<'_> {
    fn put(&mut self, bytes: &[u8]) {
        self.0.extend_from_slice(bytes);
    }
}

/// The canonical query string: parameters decoded, re-encoded, sorted by name then value.
pub(super) fn canonical_query(query: &str) -> Result<String, AuthError> {
    if query.is_empty() {
        return Ok(String::new());
    }
    if query.len() > MAX_QUERY_LEN {
        return Err(AuthError::TooLarge {
            what: "query string",
        });
    }
    let mut params = Vec::new();
    for param in query.split('&').filter(|p| !p.is_empty()) {
        if params.len() == MAX_QUERY_PARAMS {
            return Err(AuthError::TooLarge {
                what: "query string",
            });
        }
        let (name, value) = param.split_once('=').unwrap_or((param, ""));
        params.push((
            reencode_query_component(name),
            reencode_query_component(value),
        ));
    }
    params.sort_unstable();
    let mut out = String::with_capacity(query.len() * 3);
    for (i, (name, value)) in params.iter().enumerate() {
        if i > 0 {
            out.push('&');
        }
        out.push_str(name);
        out.push('=');
        out.push_str(value);
    }
    Ok(out)
}

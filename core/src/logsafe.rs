//! Request-derived values made safe for log lines, audit records and error messages:
//! control characters (newline, CR, ESC, ...) and invisible formatting characters are
//! escaped so no value can forge a log line or send a terminal escape sequence, and
//! values are capped in length so no request can inflate the log.
//!
//! Every value taken from a request (HTTP method, path, header values, key ids,
//! `kmsRequestId`, `kmsOperation`, algorithm names, user names) goes through
//! [`clip`] (or [`Clipped`] in a `tracing` field) before it is logged or echoed.

use std::{borrow::Cow, fmt};

/// Most characters of a value kept by [`clip`]; the rest is replaced by a marker.
pub const MAX_CHARS: usize = 128;

/// `value` with every control or invisible formatting character escaped (`\n`,
/// `\r`, `\t`, `\\`, `\u{1b}`, ...) and cut after [`MAX_CHARS`] characters, followed by
/// `...(+N bytes)` when cut. Borrowed when nothing needed changing.
pub fn clip(value: &str) -> Cow<'_, str> {
    clip_to(value, MAX_CHARS)
}

/// [`clip`] with a limit of `max` characters.
pub fn clip_to(value: &str, max: usize) -> Cow<'_, str> {
    let long = value.chars().nth(max).is_some();
    if !long && !value.chars().any(needs_escape) {
        return Cow::Borrowed(value);
    }
    let mut out = String::with_capacity(value.len().min(max * 2) + 16);
    let mut end = value.len();
    for (taken, (i, c)) in value.char_indices().enumerate() {
        if taken == max {
            end = i;
            break;
        }
        push_escaped(&mut out, c);
    }
    if long {
        out.push_str(&format!("...(+{} bytes)", value.len() - end));
    }
    Cow::Owned(out)
}

/// Bytes that may not be UTF-8 (e.g. a header value), escaped and capped as [`clip`]
/// does; invalid UTF-8 becomes U+FFFD.
pub fn clip_bytes(value: &[u8]) -> String {
    clip(&String::from_utf8_lossy(value)).into_owned()
}

/// A value shown through [`clip`]: `tracing::info!(key_id = %Clipped(id), ...)`.
pub struct Clipped<'a>(pub &'a str);

impl fmt::Display for Clipped<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&clip(self.0))
    }
}

/// Whether `c` is written escaped: control characters, the backslash (so an escape
/// in the output is never ambiguous), and invisible characters that reorder or hide
/// text (bidirectional overrides, zero-width characters, the BOM).
fn needs_escape(c: char) -> bool {
    c.is_control()
        || c == '\\'
        || matches!(c, '\u{200B}'..='\u{200F}' | '\u{2028}'..='\u{202E}' | '\u{2060}'..='\u{2069}' | '\u{FEFF}')
}

fn push_escaped(out: &mut String, c: char) {
    match c {
        '\n' => out.push_str("\\n"),
        '\r' => out.push_str("\\r"),
        '\t' => out.push_str("\\t"),
        '\\' => out.push_str("\\\\"),
        c if needs_escape(c) => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
        c => out.push(c),
    }
}

#[cfg(test)]
mod tests;

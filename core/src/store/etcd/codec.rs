//! How the etcd backend lays out its keys and encodes what it writes: entry values
//! carry the store revision that wrote them, and each transaction's log record is the
//! transaction itself, as watchers see it.

use std::sync::Arc;

use super::super::{Change, WatchEvent};

/// The etcd keys of one store, under its configured prefix.
#[derive(Debug, Clone)]
pub struct Layout {
    prefix: String,
}

impl Layout {
    /// Keys under `prefix` (e.g. `keyhold/`).
    pub fn new(prefix: &str) -> Layout {
        Layout {
            prefix: prefix.to_string(),
        }
    }

    /// The store revision counter.
    pub fn revision(&self) -> Vec<u8> {
        format!("{}rev", self.prefix).into_bytes()
    }

    /// Where the store key `key` lives.
    pub fn data(&self, key: &str) -> Vec<u8> {
        format!("{}d/{key}", self.prefix).into_bytes()
    }

    /// The store key of an etcd data key.
    pub fn data_key<'a>(&self, etcd_key: &'a [u8]) -> Option<&'a str> {
        let rest = etcd_key.strip_prefix(format!("{}d/", self.prefix).as_bytes())?;
        std::str::from_utf8(rest).ok()
    }

    /// The log record of the transaction that created store revision `revision`
    /// (zero-padded: etcd orders keys byte-wise).
    pub fn log(&self, revision: u64) -> Vec<u8> {
        format!("{}log/{revision:020}", self.prefix).into_bytes()
    }

    /// The prefix of every log record.
    pub fn log_prefix(&self) -> Vec<u8> {
        format!("{}log/", self.prefix).into_bytes()
    }
}

/// An entry value: the store revision that wrote it, then the value.
pub fn encode_value(revision: u64, value: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 + value.len());
    out.extend_from_slice(&revision.to_be_bytes());
    out.extend_from_slice(value);
    out
}

/// The store revision and value of an entry value.
pub fn decode_value(raw: &[u8]) -> Option<(u64, &[u8])> {
    let (rev, value) = raw.split_first_chunk::<8>()?;
    Some((u64::from_be_bytes(*rev), value))
}

/// A transaction as its log record: revision, then each change (kind, key, value).
pub fn encode_event(event: &WatchEvent) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&event.revision.to_be_bytes());
    for change in &event.changes {
        out.push(u8::from(change.value.is_some()));
        put_bytes(&mut out, change.key.as_bytes());
        if let Some(value) = &change.value {
            put_bytes(&mut out, value);
        }
    }
    out
}

fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(&(bytes.len() as u32).to_be_bytes());
    out.extend_from_slice(bytes);
}

fn take_bytes<'a>(raw: &mut &'a [u8]) -> Option<&'a [u8]> {
    let (len, rest) = raw.split_first_chunk::<4>()?;
    let len = u32::from_be_bytes(*len) as usize;
    if rest.len() < len {
        return None;
    }
    let (bytes, rest) = rest.split_at(len);
    *raw = rest;
    Some(bytes)
}

/// The transaction of a log record; `None` when it is damaged.
pub fn decode_event(mut raw: &[u8]) -> Option<Arc<WatchEvent>> {
    let (rev, rest) = raw.split_first_chunk::<8>()?;
    let revision = u64::from_be_bytes(*rev);
    raw = rest;
    let mut changes = Vec::new();
    while let Some((&kind, rest)) = raw.split_first() {
        raw = rest;
        let key = String::from_utf8(take_bytes(&mut raw)?.to_vec()).ok()?;
        let value = match kind {
            0 => None,
            1 => Some(take_bytes(&mut raw)?.to_vec()),
            _ => return None,
        };
        changes.push(Change { key, value });
    }
    Some(Arc::new(WatchEvent { revision, changes }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_round_trip_and_damage_is_detected() {
        let event = WatchEvent {
            revision: 42,
            changes: vec![
                Change {
                    key: "a/é".into(),
                    value: Some(b"1".to_vec()),
                },
                Change {
                    key: String::new(),
                    value: None,
                },
                Change {
                    key: "empty".into(),
                    value: Some(Vec::new()),
                },
            ],
        };
        let raw = encode_event(&event);
        assert_eq!(*decode_event(&raw).unwrap(), event);
        assert!(decode_event(&raw[..raw.len() - 1]).is_none());
        assert!(decode_event(&raw[..5]).is_none());
        let mut bad_kind = raw.clone();
        bad_kind[8] = 7;
        assert!(decode_event(&bad_kind).is_none());
    }

    #[test]
    fn values_carry_their_revision_and_keys_sort_by_revision() {
        let raw = encode_value(7, b"v");
        assert_eq!(decode_value(&raw), Some((7, &b"v"[..])));
        assert_eq!(decode_value(b"short"), None);
        let l = Layout::new("k/");
        assert!(l.log(9) < l.log(10));
        assert_eq!(l.data_key(&l.data("a/b")), Some("a/b"));
        assert_eq!(l.data_key(b"k/log/1"), None);
    }
}

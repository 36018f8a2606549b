//! `keyhold store export` and `keyhold store import`: the whole store as one file, to
//! move from the embedded store to etcd (or back) and to back up and restore.
//!
//! # The file
//! JSON, written with mode 0600:
//!
//! ```json
//! {"format": "keyhold-store-export", "version": 1, "source": "etcd ...",
//!  "source_revision": 42, "exported_at": "2026-01-02T03:04:05Z",
//!  "master_check": "<base64>", "mac": "<hex>",
//!  "entries": [{"key": "stores/...", "value": "<base64>"}, ...]}
//! ```
//!
//! - `entries`: every entry of the store at ONE store revision (`source_revision`), in
//!   key order, values as stored: secrets stay sealed under the master key.
//! - `master_check`: the store's master-key check value ([`crate::secrets::check`]),
//!   so that an import under another master key is refused before anything is written.
//! - `mac`: HMAC-SHA256, under a key derived from the master key, of the version, the
//!   revision, the check value and every entry: a damaged or edited file is refused.
//!
//! # Importing
//! Only into an empty store. The entries go in commits that fit the target's
//! [`CommitLimits`] (etcd: 128 operations per transaction by default, three of which
//! each commit needs for itself). When more than one commit is needed, the first writes
//! the marker [`IMPORT_MARKER`] and the last deletes it: a store holding the marker is
//! a partial import, which `keyhold serve`, `export` and `import` refuse with a clear
//! message until the store is emptied.

use base64::{Engine, engine::general_purpose::STANDARD as B64};
use hmac::Mac;
use serde::{Deserialize, Serialize};

use crate::{
    secrets::{
        MasterKey,
        check::{self, CHECK_KEY, CheckError},
    },
    store::{CommitLimits, Condition, Store, StoreError, Write},
};

/// The `format` field of every export.
pub const FORMAT: &str = "keyhold-store-export";
/// The version of the file this build writes and reads.
pub const VERSION: u32 = 1;
/// The store key marking an import in progress.
pub const IMPORT_MARKER: &str = "store-import/in-progress";
/// The label of the key the `mac` is computed under (see [`MasterKey::derive`]).
const MAC_LABEL: &str = "keyhold store export v1";
/// How often an export reads again when the store changed while it was read.
const SNAPSHOT_ATTEMPTS: usize = 20;
/// Bytes kept free in each import commit for the marker.
const MARKER_BYTES: usize = 512;

/// Why an export or import was refused; nothing was written to the target store
/// unless the message says otherwise.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TransferError {
    /// The file is not a keyhold store export.
    #[error("not a keyhold store export: {0}")]
    NotAnExport(String),
    /// The file is an export of another version.
    #[error(
        "the export is format version {found}; this build reads version {VERSION} only (export again with this build's `keyhold store export`)"
    )]
    UnsupportedVersion {
        /// The file's version.
        found: u64,
    },
    /// The file is damaged or was edited.
    #[error("the export is damaged: {0}")]
    Corrupt(String),
    /// The master key does not open the check value (of the store, or of the file).
    #[error(
        "the master key ({source_desc}) cannot unwrap the {of} check value: {hint}; nothing was written"
    )]
    MasterKeyMismatch {
        /// Where the master key came from ([`crate::secrets::MasterKeySource::describe`]).
        source_desc: String,
        /// "store's" or "export's".
        of: &'static str,
        /// What to do.
        hint: &'static str,
    },
    /// The target store has entries.
    #[error(
        "the target store is not empty: it holds {entries} entries; import only into an empty store (a new etcd prefix, or a path where no store file exists); nothing was written"
    )]
    TargetNotEmpty {
        /// How many entries it holds.
        entries: usize,
    },
    /// The store holds a partial import.
    #[error("{0}")]
    UnfinishedImport(String),
    /// Something wrote to the target store while the import began.
    #[error(
        "the target store was written to while the import began (the condition on {0:?} failed): nothing was imported; stop every node using it and import again"
    )]
    TargetChanged(String),
    /// The store kept changing while it was exported.
    #[error(
        "the store changed during each of {SNAPSHOT_ATTEMPTS} attempts to read it at one revision; retry when it is quieter"
    )]
    NoSnapshot,
    /// The store failed.
    #[error("{0}")]
    Store(#[from] StoreError),
}

/// One entry of the file.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct FileEntry {
    /// The store key.
    pub key: String,
    /// The value as stored, base64.
    pub value: String,
}

/// An export file.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ExportFile {
    /// Always [`FORMAT`].
    pub format: String,
    /// [`VERSION`].
    pub version: u32,
    /// The store it was exported from (backend and place), for people.
    pub source: String,
    /// The store revision every entry was read at.
    pub source_revision: u64,
    /// When (RFC 3339, UTC).
    pub exported_at: String,
    /// The store's master-key check value, base64.
    pub master_check: String,
    /// HMAC-SHA256 of the content (see the module docs), hex.
    pub mac: String,
    /// Every entry, in key order.
    pub entries: Vec<FileEntry>,
}

/// The first fields, read before the rest to tell another version from damage.
#[derive(Deserialize)]
struct Header {
    format: Option<serde_json::Value>,
    version: Option<serde_json::Value>,
}

/// What an import did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImportReport {
    /// Entries written.
    pub entries: usize,
    /// Commits they took.
    pub commits: usize,
    /// The target's store revision afterwards.
    pub revision: u64,
}

/// The decoded, verified content of a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// (key, value) in key order.
    pub entries: Vec<(String, Vec<u8>)>,
    /// The check value.
    pub master_check: Vec<u8>,
    /// The source revision.
    pub source_revision: u64,
}

fn mac_of(
    master: &MasterKey,
    source_revision: u64,
    master_check: &[u8],
    entries: &[(String, Vec<u8>)],
) -> hmac::Hmac<sha2::Sha256> {
    let key = master.derive(MAC_LABEL);
    let mut mac = <hmac::Hmac<sha2::Sha256> as hmac::digest::KeyInit>::new_from_slice(&key[..])
        .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
    let mut field = |bytes: &[u8]| {
        mac.update(&(bytes.len() as u64).to_be_bytes());
        mac.update(bytes);
    };
    field(FORMAT.as_bytes());
    field(&VERSION.to_be_bytes());
    field(&source_revision.to_be_bytes());
    field(master_check);
    for (key, value) in entries {
        field(key.as_bytes());
        field(value);
    }
    mac
}

/// Builds the file of `entries` (in key order) read at `source_revision`.
pub fn build(
    master: &MasterKey,
    source: &str,
    source_revision: u64,
    master_check: &[u8],
    entries: &[(String, Vec<u8>)],
) -> ExportFile {
    let mac = mac_of(master, source_revision, master_check, entries);
    ExportFile {
        format: FORMAT.to_string(),
        version: VERSION,
        source: source.to_string(),
        source_revision,
        exported_at: time::OffsetDateTime::now_utc()
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default(),
        master_check: B64.encode(master_check),
        mac: hex::encode(mac.finalize().into_bytes()),
        entries: entries
            .iter()
            .map(|(key, value)| FileEntry {
                key: key.clone(),
                value: B64.encode(value),
            })
            .collect(),
    }
}

/// The file's bytes (one entry per line).
pub fn encode(file: &ExportFile) -> Vec<u8> {
    // Strings and numbers always serialize.
    let mut out = serde_json::to_vec_pretty(file).unwrap_or_default();
    out.push(b'\n');
    out
}

/// Parses a file: another format or version, or damage, are told apart.
pub fn parse(bytes: &[u8]) -> Result<ExportFile, TransferError> {
    let header: Header = serde_json::from_slice(bytes).map_err(|e| {
        let ours = bytes.windows(FORMAT.len()).any(|w| w == FORMAT.as_bytes());
        if ours {
            TransferError::Corrupt(format!("cut short or not valid JSON ({e})"))
        } else {
            TransferError::NotAnExport(format!("not a JSON object ({e})"))
        }
    })?;
    match header.format.as_ref().and_then(|f| f.as_str()) {
        Some(FORMAT) => {}
        Some(other) => {
            return Err(TransferError::NotAnExport(format!(
                "its format is {other:?}, not {FORMAT:?}"
            )));
        }
        None => {
            return Err(TransferError::NotAnExport(format!(
                "it has no \"format\": {FORMAT:?} field"
            )));
        }
    }
    match header.version.as_ref().and_then(|v| v.as_u64()) {
        Some(v) if v == u64::from(VERSION) => {}
        Some(found) => return Err(TransferError::UnsupportedVersion { found }),
        None => {
            return Err(TransferError::Corrupt(
                "the \"version\" field is missing or not a number".into(),
            ));
        }
    }
    serde_json::from_slice(bytes).map_err(|e| TransferError::Corrupt(e.to_string()))
}

/// Decodes and verifies a parsed file with `master` (described by `source_desc`): the
/// check value first (a wrong master key is told apart from damage), then every entry
/// and the `mac`.
pub fn verify(
    file: &ExportFile,
    master: &MasterKey,
    source_desc: &str,
) -> Result<Verified, TransferError> {
    let master_check = B64
        .decode(&file.master_check)
        .map_err(|_| TransferError::Corrupt("master_check is not base64".into()))?;
    match check::verify(master, &master_check) {
        Ok(()) => {}
        Err(CheckError::WrongKey) => {
            return Err(TransferError::MasterKeyMismatch {
                source_desc: source_desc.to_string(),
                of: "export's",
                hint: "the file was exported from a store sealed under another master key; import with a configuration whose master key is that one (the same secrets.master_key_file as the exporting node)",
            });
        }
        Err(CheckError::Malformed(why)) => {
            return Err(TransferError::Corrupt(format!("master_check: {why}")));
        }
    }
    let mut entries: Vec<(String, Vec<u8>)> = Vec::with_capacity(file.entries.len());
    for (i, entry) in file.entries.iter().enumerate() {
        let value = B64.decode(&entry.value).map_err(|_| {
            TransferError::Corrupt(format!("entry {i} ({:?}): value is not base64", entry.key))
        })?;
        if let Some((previous, _)) = entries.last() {
            if entry.key.as_str() <= previous.as_str() {
                return Err(TransferError::Corrupt(format!(
                    "entry {i} ({:?}) is out of key order or repeated",
                    entry.key
                )));
            }
        }
        if entry.key == IMPORT_MARKER {
            return Err(TransferError::Corrupt(format!(
                "entry {i} is the import marker {IMPORT_MARKER:?}: the export was made of a partial import"
            )));
        }
        entries.push((entry.key.clone(), value));
    }
    let expected =
        hex::decode(&file.mac).map_err(|_| TransferError::Corrupt("mac is not hex".into()))?;
    mac_of(master, file.source_revision, &master_check, &entries)
        .verify_slice(&expected)
        .map_err(|_| {
            TransferError::Corrupt(
                "its integrity code (mac) does not match its content: the file was damaged or edited".into(),
            )
        })?;
    Ok(Verified {
        entries,
        master_check,
        source_revision: file.source_revision,
    })
}

/// Splits writes of these sizes (key plus value bytes) into consecutive commits that
/// fit `limits`, each with room for the marker: the ranges of each commit.
pub fn plan_batches(sizes: &[usize], limits: CommitLimits) -> Vec<std::ops::Range<usize>> {
    let max_writes = limits.writes.min(limits.conditions).max(2) - 1;
    let max_bytes = limits.bytes.saturating_sub(MARKER_BYTES).max(1);
    let mut batches = Vec::new();
    let (mut start, mut bytes) = (0, 0usize);
    for (i, size) in sizes.iter().enumerate() {
        let full = i - start == max_writes || (i > start && bytes + size > max_bytes);
        if full {
            batches.push(start..i);
            (start, bytes) = (i, 0);
        }
        bytes += size;
    }
    if start < sizes.len() {
        batches.push(start..sizes.len());
    }
    batches
}

/// The message for a store holding the import marker, `None` when it has none.
pub fn unfinished_import(store: &dyn Store) -> Result<Option<String>, StoreError> {
    Ok(store.get(IMPORT_MARKER)?.map(|entry| {
        format!(
            "the store holds an import that did not finish (marker {IMPORT_MARKER:?}: {}): it \
             has only part of the export. Empty the store (etcd: `etcdctl del --prefix <the \
             store.etcd.prefix>`; embedded: move the store file away) and run `keyhold store \
             import` again",
            String::from_utf8_lossy(&entry.value)
        )
    }))
}

/// Exports `store`: every entry at one revision, and its check value (verified with
/// `master`, or sealed anew when the store has none yet). `source` describes the store.
pub fn export(
    store: &dyn Store,
    master: &MasterKey,
    source_desc: &str,
    source: &str,
) -> Result<ExportFile, TransferError> {
    if let Some(message) = unfinished_import(store)? {
        return Err(TransferError::UnfinishedImport(message));
    }
    for _ in 0..SNAPSHOT_ATTEMPTS {
        let before = store.revision()?;
        let entries = store.scan("")?;
        if store.revision()? != before || entries.iter().any(|e| e.revision > before) {
            continue;
        }
        let master_check = match entries.iter().find(|e| e.key == CHECK_KEY) {
            Some(entry) => {
                match check::verify(master, &entry.value) {
                    Ok(()) => {}
                    Err(CheckError::WrongKey) => {
                        return Err(TransferError::MasterKeyMismatch {
                            source_desc: source_desc.to_string(),
                            of: "store's",
                            hint: "export with the configuration the store's nodes use (their secrets.master_key_file)",
                        });
                    }
                    Err(CheckError::Malformed(why)) => {
                        return Err(StoreError::Corrupt {
                            key: CHECK_KEY.to_string(),
                            message: why,
                        }
                        .into());
                    }
                }
                entry.value.clone()
            }
            None => check::seal(master),
        };
        let entries: Vec<(String, Vec<u8>)> =
            entries.into_iter().map(|e| (e.key, e.value)).collect();
        return Ok(build(master, source, before, &master_check, &entries));
    }
    Err(TransferError::NoSnapshot)
}

/// Imports a parsed file into the empty `store` (see the module docs).
pub fn import(
    store: &dyn Store,
    master: &MasterKey,
    source_desc: &str,
    file: &ExportFile,
) -> Result<ImportReport, TransferError> {
    let verified = verify(file, master, source_desc)?;
    if let Some(message) = unfinished_import(store)? {
        return Err(TransferError::UnfinishedImport(message));
    }
    let existing = store.scan("")?.len();
    if existing > 0 {
        return Err(TransferError::TargetNotEmpty { entries: existing });
    }
    let mut entries = verified.entries;
    if let Err(at) = entries.binary_search_by(|(k, _)| k.as_str().cmp(CHECK_KEY)) {
        entries.insert(at, (CHECK_KEY.to_string(), verified.master_check.clone()));
    }
    let count = entries.len();
    let sizes: Vec<usize> = entries.iter().map(|(k, v)| k.len() + v.len()).collect();
    // Without limits (the embedded store): everything in one commit.
    let batches = store
        .commit_limits()
        .map(|limits| plan_batches(&sizes, limits))
        .unwrap_or_default();
    let puts = |range: std::ops::Range<usize>| -> (Vec<Condition>, Vec<Write>) {
        entries[range]
            .iter()
            .map(|(k, v)| {
                (
                    Condition::Absent(k.clone()),
                    Write::Put(k.clone(), v.clone()),
                )
            })
            .unzip()
    };
    // A conflict on the first commit: something wrote to the store meanwhile.
    let changed = |e: StoreError| match e {
        StoreError::Conflict { key } => TransferError::TargetChanged(key),
        other => TransferError::Store(other),
    };
    if batches.len() <= 1 {
        let (conditions, writes) = puts(0..count);
        let revision = store.commit(&conditions, writes).map_err(changed)?;
        return Ok(ImportReport {
            entries: count,
            commits: 1,
            revision,
        });
    }
    let marker = serde_json::json!({
        "source": file.source,
        "source_revision": file.source_revision,
        "entries": count,
        "commits": batches.len(),
        "started_at": time::OffsetDateTime::now_utc()
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default(),
    })
    .to_string()
    .into_bytes();
    let last = batches.len() - 1;
    let mut marker_revision = 0;
    let mut revision = 0;
    for (i, range) in batches.into_iter().enumerate() {
        let (mut conditions, mut writes) = puts(range);
        if i == 0 {
            conditions.push(Condition::Absent(IMPORT_MARKER.to_string()));
            writes.push(Write::Put(IMPORT_MARKER.to_string(), marker.clone()));
        } else {
            conditions.push(Condition::Revision(
                IMPORT_MARKER.to_string(),
                marker_revision,
            ));
        }
        if i == last {
            writes.push(Write::Delete(IMPORT_MARKER.to_string()));
        }
        revision = store.commit(&conditions, writes).map_err(|e| {
            if i == 0 {
                changed(e)
            } else {
                TransferError::UnfinishedImport(format!(
                    "the import stopped after {i} of {} commits ({e}); the store holds the marker {IMPORT_MARKER:?} and part of the export: empty it and import again",
                    last + 1
                ))
            }
        })?;
        if i == 0 {
            marker_revision = revision;
        }
    }
    Ok(ImportReport {
        entries: count,
        commits: last + 1,
        revision,
    })
}

#[cfg(test)]
mod tests;

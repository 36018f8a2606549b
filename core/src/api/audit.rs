//! The audit log: `/api/v1/audit` (records, newest first, a page at a time) and
//! `/api/v1/audit/status` (whether the hash chain verifies).

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// The most records one page holds (`limit`).
pub const MAX_LIMIT: usize = 1000;

/// Records per page when `limit` is not given.
pub const DEFAULT_LIMIT: usize = 100;

/// One audit record: its place in the chain, its time, the fields every kind of record
/// may have (filled from its event) and the event as written.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct AuditRecord {
    /// Sequence number in this node's chain, from 1.
    pub seq: u64,
    /// RFC 3339 time.
    pub time: String,
    /// What wrote it: `admin` (an admin API change or a scheduled job), `xks` (an XKS
    /// request: failures always, successes when the store audits them),
    /// `xks_refusals_aggregated` (unauthenticated refusals counted together), or a note
    /// of the log itself (`audit_segment_after_damage`, `audit_chain_keyed`,
    /// `audit_tail_missing`).
    pub kind: Option<String>,
    /// Who: the admin API user (`(scheduler)` for scheduled rotations); none for XKS
    /// requests.
    pub user: Option<String>,
    /// What: the admin operation (e.g. `create_store`), or the XKS operation (e.g.
    /// `Encrypt`).
    pub action: Option<String>,
    /// On what: the admin object (e.g. `store/<id>`, `user/<name>`); for XKS requests
    /// `store/<name>`, with `/key/<id>` when a key was named.
    pub object: Option<String>,
    /// The store the record is about, as the record names it: an admin record its id
    /// (its name when it creates it), an XKS record its name.
    pub store: Option<String>,
    /// How it ended, as recorded: `ok`, `refused: <code>`, `failed: <code>`, a job's end
    /// state (`succeeded`, `failed`, `cancelled`, `interrupted`), or for XKS requests
    /// `ok` or the XKS error name (e.g. `AuthenticationFailedException`).
    pub outcome: Option<String>,
    /// Whether the outcome is a success (`ok`, `succeeded`); none for notes without an
    /// outcome.
    pub success: Option<bool>,
    /// The node that wrote it (in a cluster each node keeps its own chain).
    pub node: Option<String>,
    /// The event as written (never secrets).
    #[schema(value_type = Object)]
    pub event: serde_json::Value,
}

/// `GET /api/v1/audit` answer: a page of records, newest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct AuditPage {
    /// The records that match, newest first (at most `limit`).
    pub records: Vec<AuditRecord>,
    /// The next (older) page: pass as `before`. Absent once the log's first record was
    /// read.
    pub next_before: Option<u64>,
    /// Records (and unreadable lines) examined for this page. A page examines at most
    /// 100000: a filter that matches little may end a page early, with fewer records
    /// and a `next_before` to continue from.
    pub scanned: u64,
    /// Examined lines that are not records (skipped; `GET /api/v1/audit/status` says
    /// whether the chain is broken).
    pub unreadable: u64,
}

/// Whether the chain verifies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ChainState {
    /// Every record links to the one before, and the log's end matches the anchor.
    Verified,
    /// Something does not verify: see `problems`.
    Broken,
}

/// A problem found by the verification.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ChainProblem {
    /// `damaged_segment` (a record that does not verify, or a missing segment),
    /// `anchor` (the log's end does not match the store's anchor: its tail was cut or it
    /// was rewritten), or `tail_missing` (the server found the tail cut on a start and
    /// recorded so).
    pub kind: String,
    /// The segment file (its name in the data directory), for a damaged segment.
    pub segment: Option<String>,
    /// The 1-based line of the first record that does not verify in that segment (0: the
    /// segment before it is missing).
    pub line: Option<u64>,
    /// The record saying so, for `tail_missing`.
    pub seq: Option<u64>,
    /// What is wrong, as `keyhold audit-verify` says it.
    pub message: String,
}

/// The store's anchor of this node's chain: its latest durable record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ChainAnchor {
    /// The anchored record's sequence number.
    pub seq: u64,
    /// Its hash.
    pub hash: String,
    /// Whether the log holds that record with that hash.
    pub matched: bool,
}

/// `GET /api/v1/audit/status` answer: the answering node's chain, verified now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AuditStatus {
    /// `verified` or `broken`.
    pub state: ChainState,
    /// The node whose log this is.
    pub node: String,
    /// Segment files.
    pub segments: u64,
    /// Records that verified.
    pub records: u64,
    /// The last verified record's sequence number.
    pub last_seq: u64,
    /// Its hash.
    pub last_hash: String,
    /// The first record keyed with the master key (HMAC), if any.
    pub keyed_from: Option<u64>,
    /// The store's anchor, if one was saved.
    pub anchor: Option<ChainAnchor>,
    /// What does not verify (empty when verified).
    pub problems: Vec<ChainProblem>,
    /// When it was checked, RFC 3339.
    pub checked_at: String,
}

//! The nodes of a keyhold cluster: which nodes are alive (each registers itself and
//! keeps its registration alive with heartbeats), how many there are (the
//! `xksProxyFleetSize` of health answers), and which one leads (the only node that runs
//! the periodic jobs that must run once: scheduled credential rotations, the AWS state
//! sync).
//!
//! On the embedded store a node is alone: [`Solo`] is its own fleet and its own leader.
//! On etcd ([`etcd::EtcdMembership`]) each node holds an etcd lease: its registration
//! and, for the leader, the leader key are attached to it, so a node that dies (or is
//! cut off from etcd) drops out, and loses the lead, when its lease expires.
//!
//! Readers never wait on etcd: the membership task keeps a [`View`] current and
//! [`Membership`] answers from it.

pub mod etcd;
mod node_id;

use std::sync::{
    Arc,
    atomic::{AtomicU32, Ordering},
};

use serde::{Deserialize, Serialize};

pub use node_id::{NODE_ID_FILE, NodeIdError, load_or_create_node_id, validate_node_id};

/// What a node publishes about itself in the registry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeInfo {
    /// The node's id (`node.id`, or generated once and kept in the data directory).
    pub id: String,
    /// keyhold's version on that node.
    pub version: String,
    /// Where its XKS endpoint listens.
    pub xks_addr: String,
    /// Where its admin API listens, when enabled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admin_addr: Option<String>,
    /// When it started (unix seconds).
    pub started_at: i64,
    /// Its last heartbeat (unix seconds).
    pub heartbeat_at: i64,
}

/// The cluster as a node last saw it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct View {
    /// The live nodes, by id.
    pub nodes: Vec<NodeInfo>,
    /// The leader's id, if one is known.
    pub leader: Option<String>,
    /// Whether the store backing the registry answered at the last heartbeat.
    pub reachable: bool,
    /// When this node last heard from the registry (unix seconds; 0: never).
    pub seen_at: i64,
}

/// The cluster's membership, as seen by this node.
pub trait Membership: Send + Sync {
    /// This node's id.
    fn node_id(&self) -> &str;
    /// The latest view of the cluster.
    fn view(&self) -> View;
    /// Whether this node leads now (and may run the once-only jobs).
    fn is_leader(&self) -> bool;
}

/// The live node count, shared with the data plane (health answers read it on every
/// call, so it is an atomic, never a lock).
#[derive(Debug, Clone)]
pub struct FleetSize(Arc<AtomicU32>);

impl FleetSize {
    /// A fleet of `n` (at least 1: the node answering is alive).
    pub fn new(n: u32) -> FleetSize {
        FleetSize(Arc::new(AtomicU32::new(n.max(1))))
    }

    /// The current count.
    pub fn get(&self) -> u32 {
        self.0.load(Ordering::Relaxed)
    }

    /// Sets the count (at least 1).
    pub fn set(&self, n: u32) {
        self.0.store(n.max(1), Ordering::Relaxed);
    }
}

impl Default for FleetSize {
    fn default() -> Self {
        FleetSize::new(1)
    }
}

/// A node alone (the embedded store): its own fleet of one and its own leader.
pub struct Solo {
    info: NodeInfo,
}

impl Solo {
    /// A lone node described by `info`.
    pub fn new(info: NodeInfo) -> Solo {
        Solo { info }
    }
}

impl Membership for Solo {
    fn node_id(&self) -> &str {
        &self.info.id
    }

    fn view(&self) -> View {
        let now = unix_now();
        let info = NodeInfo {
            heartbeat_at: now,
            ..self.info.clone()
        };
        View {
            leader: Some(info.id.clone()),
            nodes: vec![info],
            reachable: true,
            seen_at: now,
        }
    }

    fn is_leader(&self) -> bool {
        true
    }
}

/// Seconds since the Unix epoch.
pub fn unix_now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

#[cfg(test)]
mod tests;

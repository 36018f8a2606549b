//! The cluster's nodes: `GET /api/v1/nodes`. Times are Unix seconds.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::cluster::{NodeInfo, View};

/// A live node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Node {
    /// Its id (`node.id`, or generated at its first start).
    pub id: String,
    /// keyhold's version on it.
    pub version: String,
    /// Where its XKS endpoint listens.
    pub xks_addr: String,
    /// Where its admin API listens, if enabled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admin_addr: Option<String>,
    /// When it started.
    pub started_at: i64,
    /// Its last heartbeat.
    pub heartbeat_at: i64,
    /// Whether it leads the once-only jobs (scheduled rotations, the AWS state sync).
    pub leader: bool,
}

/// The cluster as the answering node sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Nodes {
    /// `embedded` (a lone node) or `etcd`.
    pub backend: String,
    /// The answering node's id.
    pub this_node: String,
    /// Whether the answering node reached the cluster registry at its last heartbeat
    /// (when not, `nodes` is what it saw last; it keeps serving XKS requests).
    pub registry_reachable: bool,
    /// When the answering node last heard from the registry.
    pub seen_at: i64,
    /// The live nodes (the `xksProxyFleetSize` of health answers), by id.
    pub nodes: Vec<Node>,
}

impl Nodes {
    /// The view of `view`, seen by `this_node` on `backend`.
    pub fn new(backend: &str, this_node: &str, view: View) -> Nodes {
        let leader = view.leader.clone();
        Nodes {
            backend: backend.to_string(),
            this_node: this_node.to_string(),
            registry_reachable: view.reachable,
            seen_at: view.seen_at,
            nodes: view
                .nodes
                .into_iter()
                .map(|n: NodeInfo| Node {
                    leader: leader.as_deref() == Some(n.id.as_str()),
                    id: n.id,
                    version: n.version,
                    xks_addr: n.xks_addr,
                    admin_addr: n.admin_addr,
                    started_at: n.started_at,
                    heartbeat_at: n.heartbeat_at,
                })
                .collect(),
        }
    }
}

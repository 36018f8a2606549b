//! The cluster's nodes (admins only): each node's id, version, addresses and last
//! heartbeat, and which one leads the once-only jobs.

use super::prelude::*;
use crate::{api::nodes::Nodes, identity};

pub(super) fn routes() -> OpenApiRouter<AdminState> {
    OpenApiRouter::new().routes(routes!(list_nodes))
}

/// The live nodes of the cluster, as the answering node sees them.
///
/// On the embedded store the answering node is alone. On etcd each node registers
/// under a lease renewed by its heartbeats; a node that stops heartbeating drops out
/// when its lease expires (`store.etcd.lease_ttl_seconds`).
#[utoipa::path(get, path = "/api/v1/nodes", responses(
    (status = 200, description = "The nodes.", body = Nodes),
    (status = 403, description = "Not an admin.", body = ErrorBody),
))]
async fn list_nodes(c: Caller) -> Result<Json<Nodes>> {
    identity::require_admin(&c.principal, "list the cluster's nodes")?;
    let membership = c.membership();
    Ok(Json(Nodes::new(
        c.backend(),
        membership.node_id(),
        membership.view(),
    )))
}

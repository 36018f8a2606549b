//! A key store's recent XKS traffic on the answering node (the in-memory history of
//! [`crate::metrics::history`]), for charts: requests per second, p50/p99 latency and
//! refusals by XKS error name, per sampling interval over the last hour.

use super::{params::StoreId, prelude::*};
use crate::api::metrics::StoreHistory;

pub(super) fn routes() -> OpenApiRouter<AdminState> {
    OpenApiRouter::new().routes(routes!(store_metrics))
}

/// A key store's XKS traffic over the last hour, as the answering node saw it: one
/// point per sampling interval (`metrics.history_interval_seconds`, 10 s by default)
/// that had requests, newest last, with requests per second, p50/p99 latency and
/// refusals by XKS `errorName`. Kept in memory: each node answers only its own
/// requests (ask each node behind a load balancer for the whole picture), and the
/// history starts empty at every start. Needs `view` on the store, as reading it.
#[utoipa::path(get, path = "/api/v1/stores/{id}/metrics", params(StoreId), responses(
    (status = 200, description = "The store's traffic history on the answering node.", body = StoreHistory),
    (status = 403, description = "Missing view.", body = ErrorBody),
    (status = 404, description = "No such store.", body = ErrorBody),
))]
async fn store_metrics(
    c: Caller,
    Path(StoreId { id }): Path<StoreId>,
) -> Result<Json<StoreHistory>> {
    let store = c
        .read(move |ops, who| authorize_store(ops, who, &id, Permission::View))
        .await?;
    let record = &store.value;
    Ok(Json(c.history().store(
        &record.id,
        &record.name,
        c.membership().node_id(),
    )))
}

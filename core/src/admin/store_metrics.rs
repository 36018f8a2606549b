//! A key store's recent XKS traffic on the answering node (the in-memory history of
//! [`crate::metrics::history`]), for charts: requests per second, p50/p99 latency and
//! refusals by XKS error name, per sampling interval over the last hour.

use axum::extract::RawQuery;

use super::{ApiError, params::StoreId, prelude::*};
use crate::api::metrics::StoreHistory;

/// The most points `last` may ask for (an hour of 10 s intervals).
const MAX_LAST: usize = 360;

/// `GET /api/v1/stores/{id}/metrics` query (read by [`parse_last`]).
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)] // documents the query; parse_last reads it
struct MetricsQuery {
    /// Only the newest `last` points (1 to 360), e.g. `last=1` for the current rate.
    last: Option<u32>,
}

/// Reads the query: nothing, or `last=<1..=360>`; anything else is 400 `invalid_input`.
fn parse_last(query: Option<&str>) -> std::result::Result<Option<usize>, ApiError> {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(query.unwrap_or_default())
        .map_err(|_| ApiError::new(400, "invalid_input", "the query string is malformed"))?;
    let mut last = None;
    for (name, value) in pairs {
        if name != "last" || last.is_some() {
            let shown = crate::logsafe::clip_to(&name, 64);
            return Err(ApiError::new(
                400,
                "invalid_input",
                format!("unknown or repeated query parameter '{shown}' (only 'last' is read)"),
            ));
        }
        match value.parse::<usize>() {
            Ok(n) if (1..=MAX_LAST).contains(&n) => last = Some(n),
            _ => {
                return Err(ApiError::new(
                    400,
                    "invalid_input",
                    format!("'last' must be a whole number from 1 to {MAX_LAST}"),
                ));
            }
        }
    }
    Ok(last)
}

pub(super) fn routes() -> OpenApiRouter<AdminState> {
    OpenApiRouter::new().routes(routes!(store_metrics))
}

/// A key store's XKS traffic over the last hour, as the answering node saw it: one
/// point per sampling interval (`metrics.history_interval_seconds`, 10 s by default)
/// that had requests, newest last, with requests per second, p50/p99 latency and
/// refusals by XKS `errorName`. Kept in memory: each node answers only its own
/// requests (ask each node behind a load balancer for the whole picture), and the
/// history starts empty at every start. Needs `view` on the store, as reading it.
#[utoipa::path(get, path = "/api/v1/stores/{id}/metrics", params(StoreId, MetricsQuery), responses(
    (status = 200, description = "The store's traffic history on the answering node.", body = StoreHistory),
    (status = 400, description = "A query parameter other than `last`, or `last` outside 1..=360.", body = ErrorBody),
    (status = 403, description = "Missing view.", body = ErrorBody),
    (status = 404, description = "No such store.", body = ErrorBody),
))]
async fn store_metrics(
    c: Caller,
    Path(StoreId { id }): Path<StoreId>,
    RawQuery(query): RawQuery,
) -> Result<Json<StoreHistory>> {
    let last = parse_last(query.as_deref())?;
    let store = c
        .read(move |ops, who| authorize_store(ops, who, &id, Permission::View))
        .await?;
    let record = &store.value;
    let mut history = c
        .history()
        .store(&record.id, &record.name, c.membership().node_id());
    if let Some(n) = last {
        let from = history.points.len().saturating_sub(n);
        history.points.drain(..from);
    }
    Ok(Json(history))
}

#[cfg(test)]
mod tests {
    use super::parse_last;

    #[test]
    fn last_is_optional_bounded_and_alone() {
        assert_eq!(parse_last(None).ok(), Some(None));
        assert_eq!(parse_last(Some("")).ok(), Some(None));
        assert_eq!(parse_last(Some("last=1")).ok(), Some(Some(1)));
        assert_eq!(parse_last(Some("last=360")).ok(), Some(Some(360)));
        for bad in [
            "last=0",
            "last=361",
            "last=x",
            "last=",
            "last=1&last=2",
            "points=3",
        ] {
            let e = parse_last(Some(bad)).err().map(|e| e.code().to_string());
            assert_eq!(e.as_deref(), Some("invalid_input"), "{bad}");
        }
    }
}

//! Every `/api/v1/stores/{id}...` route accepts the store's name in place of its id:
//! before routing, a first path segment that is no store's id but a store's name is
//! replaced by that store's id (so handlers, authorization and audit records all see
//! the id). An id wins over a name that equals it.

use axum::{
    extract::{Request, State},
    http::Uri,
    middleware::Next,
    response::{IntoResponse, Response},
};

use super::AdminState;

const STORES: &str = "/api/v1/stores/";

/// The store segment of `path` (still percent-encoded) and where it ends.
fn store_segment(path: &str) -> Option<(&str, usize)> {
    let rest = path.strip_prefix(STORES)?;
    let end = rest.find('/').unwrap_or(rest.len());
    let segment = &rest[..end];
    (!segment.is_empty()).then_some((segment, STORES.len() + end))
}

/// `uri` with the store segment (ending at `end` in its path) replaced by `id`.
fn with_store_id(uri: &Uri, end: usize, id: &str) -> Option<Uri> {
    let path = uri.path();
    let mut rewritten = format!("{STORES}{id}{}", &path[end..]);
    if let Some(q) = uri.query() {
        rewritten.push('?');
        rewritten.push_str(q);
    }
    let mut parts = uri.clone().into_parts();
    parts.path_and_query = Some(rewritten.parse().ok()?);
    Uri::from_parts(parts).ok()
}

/// The middleware: resolves a store name in the path to the store's id.
pub(super) async fn resolve(
    State(state): State<AdminState>,
    mut req: Request,
    next: Next,
) -> Response {
    if let Some((segment, end)) = store_segment(req.uri().path()) {
        let reference = percent_encoding::percent_decode_str(segment)
            .decode_utf8_lossy()
            .into_owned();
        match state
            .read(move |ops| ops.store_id_for_name(&reference))
            .await
        {
            Ok(Some(id)) => {
                if let Some(uri) = with_store_id(req.uri(), end, &id) {
                    *req.uri_mut() = uri;
                }
            }
            Ok(None) => {}
            Err(e) => return e.into_response(),
        }
    }
    next.run(req).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_store_segment_is_found_and_replaced() {
        assert_eq!(store_segment("/api/v1/stores/acme"), Some(("acme", 19)));
        assert_eq!(
            store_segment("/api/v1/stores/my%20store/keys/k1"),
            Some(("my%20store", 25))
        );
        assert_eq!(store_segment("/api/v1/stores/"), None);
        assert_eq!(store_segment("/api/v1/stores"), None);
        assert_eq!(store_segment("/api/v1/sources/x"), None);
        let uri: Uri = "/api/v1/stores/my%20store/keys/k1?pending_window_days=7"
            .parse()
            .unwrap();
        let (_, end) = store_segment(uri.path()).unwrap();
        assert_eq!(
            with_store_id(&uri, end, "0123abcd").unwrap().to_string(),
            "/api/v1/stores/0123abcd/keys/k1?pending_window_days=7"
        );
    }
}

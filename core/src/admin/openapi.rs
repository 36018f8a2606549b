//! The OpenAPI document: the parts that no handler carries (title, the bearer security
//! scheme, the 401 every authenticated route may answer), completed with the routes
//! and types the handlers declare ([`super::api_router`]); served at
//! `GET /api/v1/openapi.json`.

use std::sync::OnceLock;

use axum::{
    http::{HeaderValue, Method, header},
    response::IntoResponse,
};
use utoipa::{
    OpenApi as _,
    openapi::{
        Content, HttpMethod, OpenApi, Ref, Response,
        path::Operation,
        security::{Http, HttpAuthScheme, SecurityRequirement, SecurityScheme},
    },
};

use utoipa_axum::router::OpenApiRouter;

use crate::api::error::ErrorBody;

/// The name of the bearer-token security scheme.
const BEARER: &str = "bearer";

#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "keyhold admin API",
        version = "1",
        description = "Management plane of keyhold, an AWS KMS external key store (XKS) proxy. \
                       Every refusal is {\"error\":{\"code\",\"message\"}}; while the store \
                       cannot be reached (etcd down), requests that need it are refused with \
                       503 store_unavailable.",
    ),
    components(schemas(ErrorBody))
)]
struct Base;

/// The document's parts that no handler carries.
pub(super) fn base() -> OpenApi {
    Base::openapi()
}

fn operations_mut(doc: &mut OpenApi) -> impl Iterator<Item = &mut Operation> {
    doc.paths.paths.values_mut().flat_map(|item| {
        [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
            &mut item.patch,
        ]
        .into_iter()
        .flatten()
    })
}

/// Adds the bearer scheme, requires it on every operation that does not opt out with
/// `security(())`, and documents their 401.
pub(super) fn complete(mut doc: OpenApi) -> OpenApi {
    let components = doc.components.get_or_insert_with(Default::default);
    let mut http = Http::new(HttpAuthScheme::Bearer);
    http.description = Some("kh_<id>.<secret> from POST /api/v1/login or /api/v1/tokens".into());
    components.add_security_scheme(BEARER, SecurityScheme::Http(http));
    doc.security = Some(vec![SecurityRequirement::new(BEARER, Vec::<String>::new())]);
    for op in operations_mut(&mut doc) {
        // `security(())` on a handler (an empty requirement: no token needed) is
        // written as `security: []`, which overrides the document's requirement.
        let open = op.security.as_ref().is_some_and(|s| {
            s.is_empty() || s.iter().any(|r| *r == SecurityRequirement::default())
        });
        if open {
            op.security = Some(Vec::new());
            continue;
        }
        let mut unauthorized = Response::new("Missing, invalid, expired or revoked token.");
        unauthorized.content.insert(
            "application/json".into(),
            Content::new(Some(Ref::from_schema_name("Error"))),
        );
        op.responses
            .responses
            .entry("401".into())
            .or_insert(unauthorized.into());
    }
    doc
}

/// `router` with every operation under `tag` (one tag per resource module).
pub(super) fn tagged<S: Clone + Send + Sync + 'static>(
    tag: &str,
    mut router: OpenApiRouter<S>,
) -> OpenApiRouter<S> {
    for op in operations_mut(router.get_openapi_mut()) {
        op.tags = Some(vec![tag.to_string()]);
    }
    router
}

struct Document {
    doc: OpenApi,
    json: String,
}

fn document() -> &'static Document {
    static DOC: OnceLock<Document> = OnceLock::new();
    DOC.get_or_init(|| {
        let doc = super::openapi();
        let json = doc.to_json().unwrap_or_default();
        Document { doc, json }
    })
}

/// The `operationId` (the handler's name, e.g. `create_user`) of `method` on `path`.
pub(super) fn operation_id(method: &Method, path: &str) -> Option<&'static str> {
    let method = match *method {
        Method::GET => HttpMethod::Get,
        Method::POST => HttpMethod::Post,
        Method::PUT => HttpMethod::Put,
        Method::PATCH => HttpMethod::Patch,
        Method::DELETE => HttpMethod::Delete,
        _ => return None,
    };
    document()
        .doc
        .paths
        .get_path_operation(path, method)
        .and_then(|op| op.operation_id.as_deref())
}

/// The document as JSON (built once).
pub fn json() -> &'static str {
    &document().json
}

/// This OpenAPI document.
#[utoipa::path(
    get,
    path = "/api/v1/openapi.json",
    tag = "meta",
    security(()),
    responses((status = 200, description = "This document.", content_type = "application/json"))
)]
pub(super) async fn openapi_json() -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        json(),
    )
}

//! A store's SigV4 credentials: list (never secrets), add (rotation; the credentials
//! file is shown once), delete.

use axum::{
    Json,
    extract::{Path, State},
    http::{HeaderValue, StatusCode},
    response::{IntoResponse, Response},
};
use serde_json::json;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::{
    AdminState, Caller,
    authz::authorize_store,
    reply::{Result, created},
};
use crate::{
    api::{
        credentials::{Credential, CredentialsFile, EVICTED_HEADER},
        error::ErrorBody,
    },
    identity::Permission,
};

pub(super) fn routes() -> OpenApiRouter<AdminState> {
    OpenApiRouter::new()
        .routes(routes!(list_credentials, add_credential))
        .routes(routes!(delete_credential))
}

/// Credentials of a store: access key ids and creation times only.
#[utoipa::path(
    get,
    path = "/api/v1/stores/{id}/credentials",
    tag = "credentials",
    params(("id" = String, Path, description = "Store id")),
    responses((status = 200, description = "Credentials.", body = Vec<Credential>))
)]
async fn list_credentials(
    State(s): State<AdminState>,
    c: Caller,
    Path(id): Path<String>,
) -> Result<Json<Vec<Credential>>> {
    let creds = s
        .read_as(&c.principal, move |ops, who| {
            authorize_store(ops, who, &id, Permission::View)?;
            ops.list_credentials(&id)
        })
        .await?;
    Ok(Json(
        creds
            .into_iter()
            .map(|(akid, ns)| Credential::new(akid, ns))
            .collect(),
    ))
}

/// Add a credential (rotation); evicts the oldest at max_credentials. Body: the
/// credentials file, shown once.
#[utoipa::path(
    post,
    path = "/api/v1/stores/{id}/credentials",
    tag = "credentials",
    params(("id" = String, Path, description = "Store id")),
    responses(
        (status = 201, description = "Credentials file (exactly what the AWS KMS console accepts); evicted access key ids in x-keyhold-evicted-credentials.", body = CredentialsFile),
        (status = 409, description = "Store blocked.", body = ErrorBody),
    )
)]
async fn add_credential(
    State(s): State<AdminState>,
    c: Caller,
    Path(id): Path<String>,
) -> Result<Response> {
    let object = format!("store/{id}");
    let (file, evicted) = s
        .change(&c.principal, "add_credential", object, move |ops, who| {
            authorize_store(ops, who, &id, Permission::ManageCredentials)?;
            let (file, evicted) = ops.add_credential(&id)?;
            let details = json!({
                "access_key_id": file.credential.access_key_id,
                "evicted": evicted,
            });
            Ok(((file, evicted), details))
        })
        .await?;
    let mut resp = created(file).into_response();
    if let Ok(v) = HeaderValue::from_str(&evicted.join(",")) {
        if !evicted.is_empty() {
            resp.headers_mut().insert(EVICTED_HEADER, v);
        }
    }
    Ok(resp)
}

/// Delete a credential: requests signed with it fail at once.
#[utoipa::path(
    delete,
    path = "/api/v1/stores/{id}/credentials/{akid}",
    tag = "credentials",
    params(
        ("id" = String, Path, description = "Store id"),
        ("akid" = String, Path, description = "Access key id"),
    ),
    responses(
        (status = 204, description = "Deleted."),
        (status = 404, description = "No such credential.", body = ErrorBody),
    )
)]
async fn delete_credential(
    State(s): State<AdminState>,
    c: Caller,
    Path((id, akid)): Path<(String, String)>,
) -> Result<StatusCode> {
    let object = format!("store/{id}/credential/{akid}");
    s.change_no_content(
        &c.principal,
        "delete_credential",
        object,
        move |ops, who| {
            authorize_store(ops, who, &id, Permission::ManageCredentials)?;
            ops.delete_credential(&id, &akid)
        },
    )
    .await
}

//! A store's SigV4 credentials: list (never secrets), add (rotation; the credentials
//! file is shown once), delete.

use axum::{
    http::HeaderValue,
    response::{IntoResponse, Response},
};

use super::{
    params::{CredentialId, StoreId},
    prelude::*,
};
use crate::api::credentials::{Credential, CredentialsFile, EVICTED_HEADER};

pub(super) fn routes() -> OpenApiRouter<AdminState> {
    OpenApiRouter::new()
        .routes(routes!(list_credentials, add_credential))
        .routes(routes!(delete_credential))
}

/// Credentials of a store: access key ids and creation times only.
#[utoipa::path(get, path = "/api/v1/stores/{id}/credentials", params(StoreId), responses(
    (status = 200, description = "Credentials.", body = Vec<Credential>),
))]
async fn list_credentials(
    c: Caller,
    Path(StoreId { id }): Path<StoreId>,
) -> Result<Json<Vec<Credential>>> {
    let creds = c
        .read(move |ops, who| {
            authorize_store(ops, who, &id, Permission::View)?;
            ops.list_credentials(&id)
        })
        .await?;
    let creds = creds
        .into_iter()
        .map(|(akid, ns)| Credential::new(akid, ns));
    Ok(Json(creds.collect()))
}

/// Add a credential (rotation); evicts the oldest at max_credentials. Body: the
/// credentials file, shown once.
#[utoipa::path(post, path = "/api/v1/stores/{id}/credentials", params(StoreId), responses(
    (status = 201, description = "Credentials file (exactly what the AWS KMS console accepts); evicted access key ids in x-keyhold-evicted-credentials.", body = CredentialsFile),
    (status = 409, description = "Store blocked.", body = ErrorBody),
))]
async fn add_credential(c: Caller, Path(StoreId { id }): Path<StoreId>) -> Result<Response> {
    let (file, evicted) = c
        .change("add_credential", format!("store/{id}"), move |ops, who| {
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
#[utoipa::path(delete, path = "/api/v1/stores/{id}/credentials/{akid}", params(CredentialId), responses(
    (status = 204, description = "Deleted."),
    (status = 404, description = "No such credential.", body = ErrorBody),
))]
async fn delete_credential(
    c: Caller,
    Path(CredentialId { id, akid }): Path<CredentialId>,
) -> Result<StatusCode> {
    let object = format!("store/{id}/credential/{akid}");
    c.change_no_content("delete_credential", object, move |ops, who| {
        authorize_store(ops, who, &id, Permission::ManageCredentials)?;
        ops.delete_credential(&id, &akid)
    })
    .await
}

//! HYOK keys of a store: create (bound to a key of the store's source), list, read,
//! delete, block and unblock; each as the account's ACL allows.

use super::{
    params::{HyokKeyId, StoreId},
    prelude::*,
};
use crate::api::keys::{HyokKey, NewHyokKey};

pub(super) fn routes() -> OpenApiRouter<AdminState> {
    OpenApiRouter::new()
        .routes(routes!(list_keys, create_key))
        .routes(routes!(get_key, delete_key))
        .routes(routes!(block_key))
        .routes(routes!(unblock_key))
}

/// Create a HYOK key bound to a key of the store's source.
#[utoipa::path(post, path = "/api/v1/stores/{id}/keys", params(StoreId), request_body = NewHyokKey, responses(
    (status = 201, description = "The key.", body = HyokKey),
    (status = 409, description = "Exists or store blocked.", body = ErrorBody),
    (status = 422, description = "No such source key.", body = ErrorBody),
))]
async fn create_key(
    c: Caller,
    Path(StoreId { id }): Path<StoreId>,
    Body(body): Body<NewHyokKey>,
) -> Result<(StatusCode, Json<HyokKey>)> {
    let object = format!("store/{id}/key/{}", body.external_id);
    c.create("create_hyok_key", object, move |ops, who| {
        authorize_store(ops, who, &id, Permission::ManageKeys)?;
        let rec = ops.create_hyok_key(&id, &body.external_id, &body.source_key)?;
        let details = json!({"source_key": rec.source_key});
        Ok((rec, details))
    })
    .await
}

/// HYOK keys of a store.
#[utoipa::path(get, path = "/api/v1/stores/{id}/keys", params(StoreId), responses(
    (status = 200, description = "Keys.", body = Vec<HyokKey>),
))]
async fn list_keys(c: Caller, Path(StoreId { id }): Path<StoreId>) -> Result<Json<Vec<HyokKey>>> {
    let keys = c
        .read(move |ops, who| {
            authorize_store(ops, who, &id, Permission::View)?;
            ops.list_hyok_keys(&id)
        })
        .await?;
    Ok(Json(keys))
}

/// One HYOK key.
#[utoipa::path(get, path = "/api/v1/stores/{id}/keys/{ext}", params(HyokKeyId), responses(
    (status = 200, description = "The key.", body = HyokKey),
    (status = 404, description = "No such key.", body = ErrorBody),
))]
async fn get_key(c: Caller, Path(HyokKeyId { id, ext }): Path<HyokKeyId>) -> Result<Json<HyokKey>> {
    let key = c
        .read(move |ops, who| {
            authorize_store(ops, who, &id, Permission::View)?;
            ops.get_hyok_key(&id, &ext)
        })
        .await?;
    Ok(Json(key))
}

/// Delete a HYOK key.
#[utoipa::path(delete, path = "/api/v1/stores/{id}/keys/{ext}", params(HyokKeyId), responses(
    (status = 204, description = "Deleted."),
    (status = 404, description = "No such key.", body = ErrorBody),
))]
async fn delete_key(c: Caller, Path(HyokKeyId { id, ext }): Path<HyokKeyId>) -> Result<StatusCode> {
    let object = format!("store/{id}/key/{ext}");
    c.change_no_content("delete_hyok_key", object, move |ops, who| {
        authorize_store(ops, who, &id, Permission::ManageKeys)?;
        ops.delete_hyok_key(&id, &ext)
    })
    .await
}

async fn set_key_blocked(c: Caller, key: HyokKeyId, blocked: bool) -> Result<Json<HyokKey>> {
    let action = if blocked {
        "block_hyok_key"
    } else {
        "unblock_hyok_key"
    };
    let HyokKeyId { id, ext } = key;
    let object = format!("store/{id}/key/{ext}");
    let rec = c
        .change(action, object, move |ops, who| {
            authorize_store(ops, who, &id, Permission::Block)?;
            Ok((ops.set_hyok_key_blocked(&id, &ext, blocked)?, Value::Null))
        })
        .await?;
    Ok(Json(rec))
}

/// Block a HYOK key.
#[utoipa::path(post, path = "/api/v1/stores/{id}/keys/{ext}/block", params(HyokKeyId), responses(
    (status = 200, description = "The key.", body = HyokKey),
))]
async fn block_key(c: Caller, Path(key): Path<HyokKeyId>) -> Result<Json<HyokKey>> {
    set_key_blocked(c, key, true).await
}

/// Unblock a HYOK key.
#[utoipa::path(post, path = "/api/v1/stores/{id}/keys/{ext}/unblock", params(HyokKeyId), responses(
    (status = 200, description = "The key.", body = HyokKey),
))]
async fn unblock_key(c: Caller, Path(key): Path<HyokKeyId>) -> Result<Json<HyokKey>> {
    set_key_blocked(c, key, false).await
}

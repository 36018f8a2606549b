//! HYOK keys of a store: create (bound to a key of the store's source), list, read,
//! delete, block and unblock; each as the account's ACL allows.

use axum::{
    Json,
    extract::{Path, State},
    http::StatusCode,
};
use serde_json::{Value, json};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::{
    AdminState, Body, Caller,
    authz::authorize_store,
    reply::{Result, created},
};
use crate::{
    api::{
        error::ErrorBody,
        keys::{HyokKey, NewHyokKey},
    },
    identity::Permission,
};

pub(super) fn routes() -> OpenApiRouter<AdminState> {
    OpenApiRouter::new()
        .routes(routes!(list_keys, create_key))
        .routes(routes!(get_key, delete_key))
        .routes(routes!(block_key))
        .routes(routes!(unblock_key))
}

/// Create a HYOK key bound to a key of the store's source.
#[utoipa::path(
    post,
    path = "/api/v1/stores/{id}/keys",
    tag = "keys",
    params(("id" = String, Path, description = "Store id")),
    request_body = NewHyokKey,
    responses(
        (status = 201, description = "The key.", body = HyokKey),
        (status = 409, description = "Exists or store blocked.", body = ErrorBody),
        (status = 422, description = "No such source key.", body = ErrorBody),
    )
)]
async fn create_key(
    State(s): State<AdminState>,
    c: Caller,
    Path(id): Path<String>,
    Body(body): Body<NewHyokKey>,
) -> Result<(StatusCode, Json<HyokKey>)> {
    let object = format!("store/{id}/key/{}", body.external_id);
    let rec = s
        .change(&c.principal, "create_hyok_key", object, move |ops, who| {
            authorize_store(ops, who, &id, Permission::ManageKeys)?;
            let rec = ops.create_hyok_key(&id, &body.external_id, &body.source_key)?;
            let details = json!({"source_key": rec.source_key});
            Ok((rec, details))
        })
        .await?;
    Ok(created(rec))
}

/// HYOK keys of a store.
#[utoipa::path(
    get,
    path = "/api/v1/stores/{id}/keys",
    tag = "keys",
    params(("id" = String, Path, description = "Store id")),
    responses((status = 200, description = "Keys.", body = Vec<HyokKey>))
)]
async fn list_keys(
    State(s): State<AdminState>,
    c: Caller,
    Path(id): Path<String>,
) -> Result<Json<Vec<HyokKey>>> {
    let keys = s
        .read_as(&c.principal, move |ops, who| {
            authorize_store(ops, who, &id, Permission::View)?;
            ops.list_hyok_keys(&id)
        })
        .await?;
    Ok(Json(keys))
}

/// One HYOK key.
#[utoipa::path(
    get,
    path = "/api/v1/stores/{id}/keys/{ext}",
    tag = "keys",
    params(
        ("id" = String, Path, description = "Store id"),
        ("ext" = String, Path, description = "External key id"),
    ),
    responses(
        (status = 200, description = "The key.", body = HyokKey),
        (status = 404, description = "No such key.", body = ErrorBody),
    )
)]
async fn get_key(
    State(s): State<AdminState>,
    c: Caller,
    Path((id, ext)): Path<(String, String)>,
) -> Result<Json<HyokKey>> {
    let key = s
        .read_as(&c.principal, move |ops, who| {
            authorize_store(ops, who, &id, Permission::View)?;
            ops.get_hyok_key(&id, &ext)
        })
        .await?;
    Ok(Json(key))
}

/// Delete a HYOK key.
#[utoipa::path(
    delete,
    path = "/api/v1/stores/{id}/keys/{ext}",
    tag = "keys",
    params(
        ("id" = String, Path, description = "Store id"),
        ("ext" = String, Path, description = "External key id"),
    ),
    responses(
        (status = 204, description = "Deleted."),
        (status = 404, description = "No such key.", body = ErrorBody),
    )
)]
async fn delete_key(
    State(s): State<AdminState>,
    c: Caller,
    Path((id, ext)): Path<(String, String)>,
) -> Result<StatusCode> {
    let object = format!("store/{id}/key/{ext}");
    s.change_no_content(&c.principal, "delete_hyok_key", object, move |ops, who| {
        authorize_store(ops, who, &id, Permission::ManageKeys)?;
        ops.delete_hyok_key(&id, &ext)
    })
    .await
}

async fn set_key_blocked(
    s: AdminState,
    c: Caller,
    (id, ext): (String, String),
    blocked: bool,
) -> Result<Json<HyokKey>> {
    let action = if blocked {
        "block_hyok_key"
    } else {
        "unblock_hyok_key"
    };
    let object = format!("store/{id}/key/{ext}");
    let rec = s
        .change(&c.principal, action, object, move |ops, who| {
            authorize_store(ops, who, &id, Permission::Block)?;
            Ok((ops.set_hyok_key_blocked(&id, &ext, blocked)?, Value::Null))
        })
        .await?;
    Ok(Json(rec))
}

/// Block a HYOK key.
#[utoipa::path(
    post,
    path = "/api/v1/stores/{id}/keys/{ext}/block",
    tag = "keys",
    params(
        ("id" = String, Path, description = "Store id"),
        ("ext" = String, Path, description = "External key id"),
    ),
    responses((status = 200, description = "The key.", body = HyokKey))
)]
async fn block_key(
    State(s): State<AdminState>,
    c: Caller,
    Path(path): Path<(String, String)>,
) -> Result<Json<HyokKey>> {
    set_key_blocked(s, c, path, true).await
}

/// Unblock a HYOK key.
#[utoipa::path(
    post,
    path = "/api/v1/stores/{id}/keys/{ext}/unblock",
    tag = "keys",
    params(
        ("id" = String, Path, description = "Store id"),
        ("ext" = String, Path, description = "External key id"),
    ),
    responses((status = 200, description = "The key.", body = HyokKey))
)]
async fn unblock_key(
    State(s): State<AdminState>,
    c: Caller,
    Path(path): Path<(String, String)>,
) -> Result<Json<HyokKey>> {
    set_key_blocked(s, c, path, false).await
}

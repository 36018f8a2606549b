//! HYOK keys of a store: create (bound to a key of the store's source), list, read,
//! delete, block and unblock; each as the account's ACL allows.

use super::{
    params::{HyokKeyId, StoreId},
    prelude::*,
};
use crate::{
    api::keys::{HyokKey, NewHyokKey},
    ops::OpError,
};

pub(super) fn routes() -> OpenApiRouter<AdminState> {
    OpenApiRouter::new()
        .routes(routes!(list_keys, create_key))
        .routes(routes!(get_key, delete_key))
        .routes(routes!(block_key))
        .routes(routes!(unblock_key))
        .routes(routes!(link_key))
}

/// `DELETE /api/v1/stores/{id}/keys/{ext}` query.
#[derive(Debug, Default, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct DeleteKeyQuery {
    /// Waiting period (7..=30 days, default 30) of the AWS KMS key's scheduled
    /// deletion, for linked keys.
    pending_window_days: Option<i32>,
}

impl DeleteKeyQuery {
    /// Reads the query string; an unknown parameter or a value that is not a number is
    /// refused with a JSON error.
    fn parse(query: Option<&str>) -> std::result::Result<DeleteKeyQuery, super::ApiError> {
        let mut q = DeleteKeyQuery::default();
        for pair in query
            .unwrap_or_default()
            .split('&')
            .filter(|p| !p.is_empty())
        {
            match pair.split_once('=') {
                Some(("pending_window_days", v)) => {
                    let days = v.parse().map_err(|_| {
                        super::ApiError::new(
                            400,
                            "invalid_input",
                            format!("pending_window_days must be a number of days, got '{v}'"),
                        )
                    })?;
                    q.pending_window_days = Some(days);
                }
                _ => {
                    return Err(super::ApiError::new(
                        400,
                        "invalid_input",
                        format!("unknown query parameter '{pair}' (only pending_window_days)"),
                    ));
                }
            }
        }
        Ok(q)
    }
}

/// Create a HYOK key bound to a key of the store's source (one HYOK key per source key,
/// never a health-check key); in a linked store also its
/// AWS KMS key (the store must be `CONNECTED`; AWS KMS checks the key through the
/// proxy), unless `linked` is false.
#[utoipa::path(post, path = "/api/v1/stores/{id}/keys", params(StoreId), request_body = NewHyokKey, responses(
    (status = 201, description = "The key.", body = HyokKey),
    (status = 409, description = "Exists, store blocked or not connected, refused by AWS KMS (aws_error_code), the source key already backs a HYOK key (source_key_in_use, naming its store only to those who may view it), is a health-check key (source_key_is_health_check_key), or its label names several keys of the source (source_key_duplicate, naming the label and count).", body = ErrorBody),
    (status = 404, description = "Store not found, or no such source key in the store's source (source_key_not_found, naming the sources that hold a key of that name).", body = ErrorBody),
    (status = 422, description = "The source key breaks the HYOK key rules (invalid_key, naming each failing attribute; allow_weak_key accepts it).", body = ErrorBody),
))]
async fn create_key(
    c: Caller,
    Path(StoreId { id }): Path<StoreId>,
    Body(body): Body<NewHyokKey>,
) -> Result<(StatusCode, Json<HyokKey>)> {
    let object = format!("store/{id}/key/{}", body.external_id);
    c.create("create_hyok_key", object, move |ops, who| {
        authorize_store(ops, who, &id, Permission::ManageKeys)?;
        let rec = ops
            .create_hyok_key_with_link(
                &id,
                &body.external_id,
                &body.source_key,
                body.linked,
                body.allow_weak_key,
            )
            .map_err(|e| match e {
                // Name the store holding the source key only to those who may view it.
                OpError::SourceKeyInUse(mut held) => {
                    if authorize_store(ops, who, &held.holder_store_id, Permission::View).is_err() {
                        held.holder_name = None;
                    }
                    OpError::SourceKeyInUse(held)
                }
                other => other,
            })?;
        let mut details = json!({"source_key": rec.source_key, "aws": rec.aws});
        if rec.allow_weak_key {
            details["allow_weak_key"] = true.into();
        }
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

/// Delete a HYOK key; a linked key's AWS KMS key is scheduled for deletion first.
#[utoipa::path(delete, path = "/api/v1/stores/{id}/keys/{ext}", params(HyokKeyId, DeleteKeyQuery), responses(
    (status = 204, description = "Deleted."),
    (status = 400, description = "Waiting period outside 7..=30 days.", body = ErrorBody),
    (status = 404, description = "No such key.", body = ErrorBody),
))]
async fn delete_key(
    c: Caller,
    Path(HyokKeyId { id, ext }): Path<HyokKeyId>,
    axum::extract::RawQuery(query): axum::extract::RawQuery,
) -> Result<StatusCode> {
    let q = DeleteKeyQuery::parse(query.as_deref())?;
    let object = format!("store/{id}/key/{ext}");
    c.change_no_content("delete_hyok_key", object, move |ops, who| {
        authorize_store(ops, who, &id, Permission::ManageKeys)?;
        ops.delete_hyok_key_with_link(&id, &ext, q.pending_window_days)
    })
    .await
}

/// Link an unlinked HYOK key of a linked, `CONNECTED` store: create its AWS KMS key.
#[utoipa::path(post, path = "/api/v1/stores/{id}/keys/{ext}/link", params(HyokKeyId), responses(
    (status = 200, description = "The key with its AWS KMS key.", body = HyokKey),
    (status = 409, description = "Linked already, store not linked or not connected, or refused by AWS KMS (aws_error_code).", body = ErrorBody),
))]
async fn link_key(
    c: Caller,
    Path(HyokKeyId { id, ext }): Path<HyokKeyId>,
) -> Result<Json<HyokKey>> {
    let object = format!("store/{id}/key/{ext}");
    let rec = c
        .change("link_hyok_key", object, move |ops, who| {
            authorize_store(ops, who, &id, Permission::ManageKeys)?;
            let rec = ops.link_hyok_key(&id, &ext)?;
            let details = json!({"aws": rec.aws});
            Ok((rec, details))
        })
        .await?;
    Ok(Json(rec))
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

//! External key stores: create, list, read (with its version as `ETag`), change (with
//! `If-Match`), delete (confirmed), block and unblock; each as the account's ACL allows.

use axum::{extract::RawQuery, http::HeaderMap, response::Response};

use super::{
    ApiError,
    etag::{if_match, with_etag},
    params::StoreId,
    prelude::*,
    responses::InvalidInput,
};
use crate::{
    api::stores::{CreatedStore, LinkPlan, LinkRequest, NewStore, Store, StorePatch},
    model,
};

pub(super) fn routes() -> OpenApiRouter<AdminState> {
    OpenApiRouter::new()
        .routes(routes!(list_stores, create_store))
        .routes(routes!(get_store, update_store, delete_store))
        .routes(routes!(block_store))
        .routes(routes!(unblock_store))
        .routes(routes!(review_link))
        .routes(routes!(link_store))
        .routes(routes!(connect_store))
        .routes(routes!(disconnect_store))
}

/// Create a key store; returns the credentials file once. With `linked`, its external
/// key store is created on AWS KMS too (AWS KMS first checks that it reaches this proxy
/// with the given location; if not, nothing is left on either side) and starts
/// `DISCONNECTED`; with `rotation_schedule` (linked stores only) that schedule is
/// assigned and answered in `rotation` (schedule, next run).
#[utoipa::path(post, path = "/api/v1/stores", request_body = NewStore, responses(
    (status = 201, description = "Store, credentials file, health-check path (ETag: the store's version).", body = CreatedStore),
    InvalidInput,
    (status = 403, description = "Missing create_store.", body = ErrorBody),
    (status = 409, description = "Name or prefix taken; a region the account does not allow; the health-check key's label names several keys of the source (source_key_duplicate, naming the label and count); AWS KMS refused (aws_error with aws_error_code).", body = ErrorBody),
    (status = 404, description = "The health-check key is not in the store's source (source_key_not_found, naming the sources that hold a key of that name).", body = ErrorBody),
    (status = 422, description = "Health-check key refused (invalid_key, naming each failing attribute: e.g. a deletable key).", body = ErrorBody),
    (status = 502, description = "AWS KMS unreachable or refused the proxy (aws_* codes, aws_error_code).", body = ErrorBody),
))]
async fn create_store(c: Caller, Body(body): Body<NewStore>) -> Result<Response> {
    let object = format!("store/{}", body.name);
    let (store, file, rotation) = c
        .change("create_store", object, move |ops, who| {
            if let Some(a) = &body.account {
                ops.get_account(a)?;
            }
            authorize_account(ops, who, body.account.as_deref(), Permission::CreateStore)?;
            if body.rotation_schedule.is_some() {
                // Assigning a schedule is managing the store's credentials.
                let account = body.account.as_deref();
                authorize_account(ops, who, account, Permission::ManageCredentials)?;
            }
            let account = body.account.clone();
            let (current, file, rotation) = ops.create_store_with_link(body)?;
            let rec = &current.value;
            let details = json!({
                "store_id": rec.id,
                "account": account,
                "source": rec.source,
                "uri_path_prefix": rec.uri_path_prefix,
                "access_key_id": file.credential.access_key_id,
                "aws": rec.aws,
                "rotation_schedule": rec.rotation_schedule,
            });
            Ok(((Store::new(current, account), file, rotation), details))
        })
        .await?;
    let health_check_path = model::lb_health_path(&store.record.uri_path_prefix);
    let version = store.version;
    let created = CreatedStore {
        store,
        credentials_file: file,
        health_check_path,
        rotation,
    };
    Ok(with_etag(StatusCode::CREATED, version, created))
}

/// Key stores the caller may view.
#[utoipa::path(get, path = "/api/v1/stores", responses(
    (status = 200, description = "Stores.", body = Vec<Store>),
))]
async fn list_stores(c: Caller) -> Result<Json<Vec<Store>>> {
    let views = c
        .read(|ops, who| {
            let accounts = ops.store_accounts()?;
            let mut out = Vec::new();
            for st in ops.list_stores()? {
                let account = accounts.get(&st.value.id).cloned();
                if authorize_account(ops, who, account.as_deref(), Permission::View).is_ok() {
                    out.push(Store::new(st, account));
                }
            }
            Ok(out)
        })
        .await?;
    Ok(Json(views))
}

/// One key store (ETag: its version).
#[utoipa::path(get, path = "/api/v1/stores/{id}", params(StoreId), responses(
    (status = 200, description = "The store (ETag: its version).", body = Store),
    (status = 403, description = "Missing view.", body = ErrorBody),
    (status = 404, description = "No such store.", body = ErrorBody),
))]
async fn get_store(c: Caller, Path(StoreId { id }): Path<StoreId>) -> Result<Response> {
    let store = c
        .read(move |ops, who| {
            let st = authorize_store(ops, who, &id, Permission::View)?;
            Ok(Store::new(st, ops.store_account(&id)?))
        })
        .await?;
    Ok(with_etag(StatusCode::OK, store.version, store))
}

/// Change a key store; needs If-Match with its version. A patch that changes nothing
/// answers the store unchanged (same version and ETag) and writes no audit record.
#[utoipa::path(patch, path = "/api/v1/stores/{id}", request_body = StorePatch,
    params(StoreId, ("If-Match" = String, Header, description = "\"<version>\" from the ETag")),
    responses(
        (status = 200, description = "The store (ETag: its new version).", body = Store),
        (status = 409, description = "Store blocked; the new health-check key's label names several keys of the source (source_key_duplicate).", body = ErrorBody),
        (status = 412, description = "Stale If-Match.", body = ErrorBody),
        (status = 422, description = "Source is immutable.", body = ErrorBody),
        (status = 428, description = "If-Match missing.", body = ErrorBody),
    )
)]
async fn update_store(
    c: Caller,
    Path(StoreId { id }): Path<StoreId>,
    headers: HeaderMap,
    Body(body): Body<StorePatch>,
) -> Result<Response> {
    let expected = if_match(&headers)?;
    let result = c
        .change_if_any("update_store", format!("store/{id}"), move |ops, who| {
            authorize_store(ops, who, &id, Permission::UpdateStore)?;
            let details = json!({"fields": body.fields()});
            let v = ops.update_store(&id, body, Some(expected))?;
            // A patch that changes nothing keeps the version: no audit record.
            let details = (v.version != expected).then_some(details);
            Ok((Store::new(v, ops.store_account(&id)?), details))
        })
        .await;
    match result {
        Ok(store) => Ok(with_etag(StatusCode::OK, store.version, store)),
        Err(e) if e.code == "version_mismatch" => Err(ApiError {
            status: StatusCode::PRECONDITION_FAILED,
            ..e
        }),
        Err(e) => Err(e),
    }
}

fn confirmed(query: Option<String>) -> bool {
    query.unwrap_or_default().split('&').any(|pair| {
        matches!(
            pair.split_once('='),
            Some(("confirm", "true")) | Some(("confirm", "1")) | Some(("confirm", "yes"))
        )
    })
}

/// Delete a key store (irreversible; ?confirm=true; no HYOK keys left).
#[utoipa::path(delete, path = "/api/v1/stores/{id}",
    params(StoreId, ("confirm" = bool, Query, description = "Must be true (also 1 or yes)")),
    responses(
        (status = 204, description = "Deleted."),
        (status = 409, description = "Has keys, or not confirmed.", body = ErrorBody),
    )
)]
async fn delete_store(
    c: Caller,
    Path(StoreId { id }): Path<StoreId>,
    RawQuery(query): RawQuery,
) -> Result<StatusCode> {
    let confirm = confirmed(query);
    c.change("delete_store", format!("store/{id}"), move |ops, who| {
        let st = authorize_store(ops, who, &id, Permission::DeleteStore)?;
        ops.delete_store(&id, confirm)?;
        Ok(((), json!({"name": st.value.name})))
    })
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn set_blocked(c: Caller, id: String, blocked: bool) -> Result<Response> {
    let action = if blocked {
        "block_store"
    } else {
        "unblock_store"
    };
    let store = c
        .change(action, format!("store/{id}"), move |ops, who| {
            authorize_store(ops, who, &id, Permission::Block)?;
            let v = ops.set_store_blocked(&id, blocked)?;
            Ok((Store::new(v, ops.store_account(&id)?), Value::Null))
        })
        .await?;
    Ok(with_etag(StatusCode::OK, store.version, store))
}

/// Block a store: XKS requests fail with InvalidStateException.
#[utoipa::path(post, path = "/api/v1/stores/{id}/block", params(StoreId), responses(
    (status = 200, description = "The store.", body = Store),
))]
async fn block_store(c: Caller, Path(StoreId { id }): Path<StoreId>) -> Result<Response> {
    set_blocked(c, id, true).await
}

/// Unblock a store.
#[utoipa::path(post, path = "/api/v1/stores/{id}/unblock", params(StoreId), responses(
    (status = 200, description = "The store.", body = Store),
))]
async fn unblock_store(c: Caller, Path(StoreId { id }): Path<StoreId>) -> Result<Response> {
    set_blocked(c, id, false).await
}

/// What linking an unlinked store would create on AWS KMS, with the edits given:
/// review it, then link. Changes nothing.
#[utoipa::path(post, path = "/api/v1/stores/{id}/link/review", params(StoreId), request_body = LinkRequest, responses(
    (status = 200, description = "The networking details linking would send.", body = LinkPlan),
    (status = 409, description = "Linked already, or remote.", body = ErrorBody),
))]
async fn review_link(
    c: Caller,
    Path(StoreId { id }): Path<StoreId>,
    Body(body): Body<LinkRequest>,
) -> Result<Json<LinkPlan>> {
    let plan = c
        .read(move |ops, who| {
            authorize_store(ops, who, &id, Permission::UpdateStore)?;
            ops.link_preview(&id, &body)
        })
        .await?;
    Ok(Json(plan))
}

/// Link an unlinked local store: create its external key store on AWS KMS (with the
/// store's newest credential and the reviewed networking details); it starts
/// `DISCONNECTED`.
#[utoipa::path(post, path = "/api/v1/stores/{id}/link", params(StoreId), request_body = LinkRequest, responses(
    (status = 200, description = "The linked store.", body = Store),
    (status = 409, description = "Linked already, remote, blocked, or refused by AWS KMS (aws_error_code).", body = ErrorBody),
    (status = 502, description = "AWS KMS unreachable or could not reach the proxy.", body = ErrorBody),
))]
async fn link_store(
    c: Caller,
    Path(StoreId { id }): Path<StoreId>,
    Body(body): Body<LinkRequest>,
) -> Result<Response> {
    store_change(c, "link_store", id, move |ops, id| ops.link_store(id, body)).await
}

/// Connect a linked store on AWS KMS; answers once `CONNECTING` is over (or after
/// 30 s, still `CONNECTING`): `CONNECTED`, or `FAILED` with AWS's
/// `connection_error_code`.
#[utoipa::path(post, path = "/api/v1/stores/{id}/connect", params(StoreId), responses(
    (status = 200, description = "The store with its AWS connection state.", body = Store),
    (status = 409, description = "Not linked, remote, or refused by AWS KMS (aws_error_code).", body = ErrorBody),
))]
async fn connect_store(c: Caller, Path(StoreId { id }): Path<StoreId>) -> Result<Response> {
    store_change(c, "connect_store", id, |ops, id| {
        ops.set_store_connected(id, true)
    })
    .await
}

/// Disconnect a linked store on AWS KMS; answers once `DISCONNECTING` is over.
#[utoipa::path(post, path = "/api/v1/stores/{id}/disconnect", params(StoreId), responses(
    (status = 200, description = "The store with its AWS connection state.", body = Store),
    (status = 409, description = "Not linked, remote, or refused by AWS KMS (aws_error_code).", body = ErrorBody),
))]
async fn disconnect_store(c: Caller, Path(StoreId { id }): Path<StoreId>) -> Result<Response> {
    store_change(c, "disconnect_store", id, |ops, id| {
        ops.set_store_connected(id, false)
    })
    .await
}

/// An audited change of store `id` (needs `UpdateStore`), answered with the store and
/// its version as `ETag`; the audit details are the store's AWS link.
async fn store_change<F>(c: Caller, action: &'static str, id: String, f: F) -> Result<Response>
where
    F: FnOnce(
            &crate::ops::Operations,
            &str,
        ) -> std::result::Result<
            crate::ops::Versioned<model::StoreRecord>,
            crate::ops::OpError,
        > + Send
        + 'static,
{
    let store = c
        .change(action, format!("store/{id}"), move |ops, who| {
            authorize_store(ops, who, &id, Permission::UpdateStore)?;
            let v = f(ops, &id)?;
            let details = json!({"aws": v.value.aws});
            Ok((Store::new(v, ops.store_account(&id)?), details))
        })
        .await?;
    Ok(with_etag(StatusCode::OK, store.version, store))
}

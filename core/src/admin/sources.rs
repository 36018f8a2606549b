//! Key sources (listed by anyone signed in, created by admins from an HSM connection)
//! and their keys (seen by admins, and by users who may view an account with a store on
//! the source: see [`authorize_source`]).

use keyhold_sdk::{KeyUsage, NewKey};

use super::{
    authz::authorize_source,
    params::{SourceKeyName, SourceName},
    prelude::*,
    responses::AdminOnly,
};
use crate::{
    api::sources::{CheckedSourceKey, NewSource, NewSourceKey, Source, SourceKey},
    ops::OpError,
};

pub(super) fn routes() -> OpenApiRouter<AdminState> {
    OpenApiRouter::new()
        .routes(routes!(list_sources, create_source))
        .routes(routes!(get_source, delete_source))
        .routes(routes!(reopen_source))
        .routes(routes!(list_source_keys, create_source_key))
        .routes(routes!(get_source_key))
}

/// Configured key sources with their status (opened/failed and why).
#[utoipa::path(get, path = "/api/v1/sources", responses(
    (status = 200, description = "Sources.", body = Vec<Source>),
))]
async fn list_sources(c: Caller) -> Result<Json<Vec<Source>>> {
    Ok(Json(c.read(|ops, _| ops.list_sources()).await?))
}

/// Create a luna key source from an HSM connection and open it in the running server
/// (admins). Container = the token label; re-opened at start.
#[utoipa::path(post, path = "/api/v1/sources", request_body = NewSource, responses(
    (status = 201, description = "The source's status.", body = Source),
    (status = 400, description = "Invalid input (only plugin 'luna').", body = ErrorBody),
    AdminOnly,
    (status = 404, description = "No such HSM connection.", body = ErrorBody),
    (status = 409, description = "A source of that name exists.", body = ErrorBody),
    (status = 502, description = "The plugin did not open the key source.", body = ErrorBody),
))]
async fn create_source(
    Admin(c): Admin,
    Body(body): Body<NewSource>,
) -> Result<(StatusCode, Json<Option<Source>>)> {
    let object = format!("source/{}", body.name);
    c.create("create_source", object, move |ops, _| {
        let rec = ops.create_source(&body.name, &body.plugin, &body.hsm_connection)?;
        let details = json!({
            "plugin": rec.plugin,
            "container": rec.container,
            "hsm_connection": rec.hsm_connection,
        });
        let status = ops.list_sources()?.into_iter().find(|s| s.name == rec.name);
        Ok((status, details))
    })
    .await
}

/// One key source with its status (opened/failed and why).
#[utoipa::path(get, path = "/api/v1/sources/{name}", params(SourceName), responses(
    (status = 200, description = "The source.", body = Source),
    (status = 404, description = "No such source.", body = ErrorBody),
))]
async fn get_source(
    c: Caller,
    Path(SourceName { name }): Path<SourceName>,
) -> Result<Json<Source>> {
    Ok(Json(c.read(move |ops, _| ops.get_source(&name)).await?))
}

/// Close and reopen a key source (admins): re-login and re-read the slot list, with
/// its HSM connection as it is now (a source declared in the configuration file: its
/// declaration). Stores' bindings are untouched; every node of a cluster reopens its
/// copy. Answers the source's status: `failed` with the reason when it did not open
/// (then its stores answer as unavailable until a reopen succeeds). A PKCS#11 module
/// cannot be re-initialised in-process with another environment (SoftHSM2 reads its
/// configuration once per process): such a change needs a restart, and the reason
/// says so.
#[utoipa::path(post, path = "/api/v1/sources/{name}/reopen", params(SourceName), responses(
    (status = 200, description = "The source's status after the reopen.", body = Source),
    AdminOnly,
    (status = 404, description = "No such source (or its HSM connection is gone).", body = ErrorBody),
    (status = 409, description = "Changed meanwhile, or declared in another node's configuration file only.", body = ErrorBody),
))]
async fn reopen_source(
    Admin(c): Admin,
    Path(SourceName { name }): Path<SourceName>,
) -> Result<Json<Source>> {
    let object = format!("source/{name}");
    let source = c
        .change("reopen_source", object, move |ops, _| {
            let s = ops.reopen_source(&name)?;
            let details = json!({"status": s.status, "reason": s.reason});
            Ok((s, details))
        })
        .await?;
    Ok(Json(source))
}

/// Delete a key source created through the API (admins) and close it on every node.
/// Refused while a key store uses it (409 `source_in_use`, naming the stores), and for
/// a source declared in the configuration file (422 `source_declared_in_config`: edit
/// the file). Its keys stay in the key manager.
#[utoipa::path(delete, path = "/api/v1/sources/{name}", params(SourceName), responses(
    (status = 204, description = "Deleted."),
    AdminOnly,
    (status = 404, description = "No such source.", body = ErrorBody),
    (status = 409, description = "Used by key stores (source_in_use, naming them).", body = ErrorBody),
    (status = 422, description = "Declared in the configuration file (source_declared_in_config).", body = ErrorBody),
))]
async fn delete_source(
    Admin(c): Admin,
    Path(SourceName { name }): Path<SourceName>,
) -> Result<StatusCode> {
    let object = format!("source/{name}");
    c.change_no_content("delete_source", object, move |ops, _| {
        ops.delete_source(&name)
    })
    .await
}

/// Keys of a key source. Admins see every source's keys; another user only those of a
/// source that backs a store of an account on which the ACL grants them `view`
/// (otherwise 403 `forbidden`, before the source is asked).
#[utoipa::path(get, path = "/api/v1/sources/{name}/keys", params(SourceName), responses(
    (status = 200, description = "Keys.", body = Vec<SourceKey>),
    (status = 403, description = "Not an admin, and no viewable account has a store on this source.", body = ErrorBody),
    (status = 404, description = "No such source.", body = ErrorBody),
    (status = 502, description = "Source unavailable.", body = ErrorBody),
))]
async fn list_source_keys(
    c: Caller,
    Path(SourceName { name }): Path<SourceName>,
) -> Result<Json<Vec<SourceKey>>> {
    let keys = c
        .read(move |ops, who| {
            authorize_source(ops, who, &name)?;
            ops.list_source_keys(&name)
        })
        .await?;
    Ok(Json(keys.iter().map(SourceKey::from).collect()))
}

/// Create a key in a key source (admins).
#[utoipa::path(post, path = "/api/v1/sources/{name}/keys", params(SourceName), request_body = NewSourceKey, responses(
    (status = 201, description = "The key.", body = SourceKey),
    AdminOnly,
    (status = 409, description = "Name taken.", body = ErrorBody),
    (status = 422, description = "Unsupported.", body = ErrorBody),
))]
async fn create_source_key(
    Admin(c): Admin,
    Path(SourceName { name: source }): Path<SourceName>,
    Body(body): Body<NewSourceKey>,
) -> Result<(StatusCode, Json<SourceKey>)> {
    let object = format!("source/{source}/key/{}", body.name);
    let info = c
        .change("create_source_key", object, move |ops, _| {
            let usage = KeyUsage::parse_list(&body.usage).map_err(|bad| {
                OpError::Input(format!(
                    "unknown usage '{bad}' (use encrypt, decrypt, wrap, unwrap)"
                ))
            })?;
            let spec = NewKey {
                name: body.name.as_str().into(),
                usage,
                exportable: body.exportable,
                deletable: body.deletable,
            };
            let k = ops.create_source_key(&source, spec)?;
            let details = json!({
                "usage": k.usage.names(),
                "exportable": k.exportable,
                "deletable": k.deletable,
            });
            Ok((k, details))
        })
        .await?;
    Ok(created(SourceKey::from(&info)))
}

/// One source key, with valid_health_check_key and problems. The same access rule as
/// listing the source's keys: admins, or a user who may view an account with a store on
/// the source (otherwise 403 `forbidden`).
#[utoipa::path(get, path = "/api/v1/sources/{name}/keys/{key}", params(SourceKeyName), responses(
    (status = 200, description = "The key.", body = CheckedSourceKey),
    (status = 403, description = "Not an admin, and no viewable account has a store on this source.", body = ErrorBody),
    (status = 404, description = "No such key (source_key_not_found).", body = ErrorBody),
))]
async fn get_source_key(
    c: Caller,
    Path(SourceKeyName { name, key }): Path<SourceKeyName>,
) -> Result<Json<CheckedSourceKey>> {
    let (info, check) = c
        .read(move |ops, who| {
            authorize_source(ops, who, &name)?;
            ops.get_source_key(&name, &key)
        })
        .await?;
    Ok(Json(CheckedSourceKey {
        key: SourceKey::from(&info),
        valid_health_check_key: check.is_ok(),
        problems: check.err().unwrap_or_default(),
    }))
}

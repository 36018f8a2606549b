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

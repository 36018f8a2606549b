//! The admin API's handlers: parse, authorize, call [`Operations`], answer JSON.

use std::collections::BTreeSet;

use axum::{
    Json,
    extract::{Path, RawQuery, State},
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use keyhold_sdk::{KeyInfo, KeyUsage, NewKey};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{AdminState, ApiError, Body, Caller, OPENAPI, Table};
use crate::{
    auth::{self, AclEntry, AuthError, Permission, Principal, TokenRecord, UserRecord},
    model::{self, StoreRecord, XksLocation},
    ops::{
        AccountUpdate, NewAwsConnection, NewHsmConnection, NewStore, OpError, Operations,
        StoreUpdate, Versioned,
    },
};

type Result<T> = std::result::Result<T, ApiError>;

pub(super) fn table(t: Table) -> Table {
    t.add("GET", "/api/v1/openapi.json", openapi)
        .add("POST", "/api/v1/login", login)
        .add("POST", "/api/v1/logout", logout)
        .add("GET", "/api/v1/tokens", list_tokens)
        .add("POST", "/api/v1/tokens", create_token)
        .add("DELETE", "/api/v1/tokens/{id}", revoke_token)
        .add("GET", "/api/v1/users", list_users)
        .add("POST", "/api/v1/users", create_user)
        .add("GET", "/api/v1/users/{name}", get_user)
        .add("DELETE", "/api/v1/users/{name}", delete_user)
        .add("PUT", "/api/v1/users/{name}/password", set_password)
        .add("GET", "/api/v1/accounts", list_accounts)
        .add("POST", "/api/v1/accounts", create_account)
        .add("GET", "/api/v1/accounts/{id}", get_account)
        .add("PUT", "/api/v1/accounts/{id}", update_account)
        .add("DELETE", "/api/v1/accounts/{id}", delete_account)
        .add("GET", "/api/v1/sources", list_sources)
        .add("POST", "/api/v1/sources", create_source)
        .add("GET", "/api/v1/connections/aws", list_aws_connections)
        .add("POST", "/api/v1/connections/aws", create_aws_connection)
        .add("GET", "/api/v1/connections/aws/{name}", get_aws_connection)
        .add(
            "DELETE",
            "/api/v1/connections/aws/{name}",
            delete_aws_connection,
        )
        .add(
            "POST",
            "/api/v1/connections/aws/{name}/test",
            test_aws_connection,
        )
        .add("GET", "/api/v1/connections/hsm", list_hsm_connections)
        .add("POST", "/api/v1/connections/hsm", create_hsm_connection)
        .add("GET", "/api/v1/connections/hsm/{name}", get_hsm_connection)
        .add(
            "DELETE",
            "/api/v1/connections/hsm/{name}",
            delete_hsm_connection,
        )
        .add(
            "POST",
            "/api/v1/connections/hsm/{name}/test",
            test_hsm_connection,
        )
        .add("GET", "/api/v1/sources/{name}/keys", list_source_keys)
        .add("POST", "/api/v1/sources/{name}/keys", create_source_key)
        .add("GET", "/api/v1/sources/{name}/keys/{key}", get_source_key)
        .add("GET", "/api/v1/stores", list_stores)
        .add("POST", "/api/v1/stores", create_store)
        .add("GET", "/api/v1/stores/{id}", get_store)
        .add("PATCH", "/api/v1/stores/{id}", update_store)
        .add("DELETE", "/api/v1/stores/{id}", delete_store)
        .add("POST", "/api/v1/stores/{id}/block", block_store)
        .add("POST", "/api/v1/stores/{id}/unblock", unblock_store)
        .add("GET", "/api/v1/stores/{id}/credentials", list_credentials)
        .add("POST", "/api/v1/stores/{id}/credentials", add_credential)
        .add(
            "DELETE",
            "/api/v1/stores/{id}/credentials/{akid}",
            delete_credential,
        )
        .add("GET", "/api/v1/stores/{id}/keys", list_keys)
        .add("POST", "/api/v1/stores/{id}/keys", create_key)
        .add("GET", "/api/v1/stores/{id}/keys/{ext}", get_key)
        .add("DELETE", "/api/v1/stores/{id}/keys/{ext}", delete_key)
        .add("POST", "/api/v1/stores/{id}/keys/{ext}/block", block_key)
        .add(
            "POST",
            "/api/v1/stores/{id}/keys/{ext}/unblock",
            unblock_key,
        )
}

// ----- authorization helpers (run on the blocking pool) -----

/// Admins may do everything; others need `permission` from the account's ACL. A store
/// without an account is for admins only.
fn authorize_account(
    ops: &Operations,
    who: &Principal,
    account: Option<&str>,
    permission: Permission,
) -> std::result::Result<(), OpError> {
    if who.is_admin() {
        return Ok(());
    }
    match account {
        None => Err(AuthError::Forbidden {
            user: who.user.clone(),
            account: "(none: admins only)".into(),
            permission,
        }
        .into()),
        Some(id) => {
            let acc = ops.get_account(id)?;
            Ok(auth::authorize(who, id, &acc.acl, permission)?)
        }
    }
}

fn authorize_store(
    ops: &Operations,
    who: &Principal,
    store_id: &str,
    permission: Permission,
) -> std::result::Result<Versioned<StoreRecord>, OpError> {
    let store = ops.get_store(store_id)?;
    let account = ops.store_account(store_id)?;
    authorize_account(ops, who, account.as_deref(), permission)?;
    Ok(store)
}

fn admin_only(who: &Principal, action: &'static str) -> std::result::Result<(), OpError> {
    Ok(auth::require_admin(who, action)?)
}

// ----- views -----

fn store_view(v: &Versioned<StoreRecord>, account: Option<String>) -> Value {
    let mut out = serde_json::to_value(&v.value).unwrap_or_else(|_| json!({}));
    out["version"] = json!(v.version);
    out["account"] = json!(account);
    out["xks_uri_path"] = json!(v.value.xks_base_path());
    out["health_check_path"] = json!(model::lb_health_path(&v.value.uri_path_prefix));
    out
}

fn etag(version: u64) -> HeaderValue {
    HeaderValue::from_str(&format!("\"{version}\"")).unwrap_or(HeaderValue::from_static("\"0\""))
}

fn with_etag(status: StatusCode, version: u64, body: Value) -> Response {
    let mut resp = (status, Json(body)).into_response();
    resp.headers_mut().insert(header::ETAG, etag(version));
    resp
}

fn key_info_view(k: &KeyInfo) -> Value {
    let attributes: serde_json::Map<String, Value> = k
        .attributes
        .iter()
        .map(|a| (a.name.to_string(), json!(a.value.as_str())))
        .collect();
    json!({
        "name": k.name.as_str(),
        "bits": k.bits,
        "usage": k.usage.names(),
        "enabled": k.enabled,
        "exportable": k.exportable,
        "deletable": k.deletable,
        "attributes": attributes,
    })
}

fn user_view(u: &UserRecord) -> Value {
    json!({"name": u.name, "groups": u.groups, "created_at": u.created_at})
}

fn token_view(t: &TokenRecord) -> Value {
    json!({
        "id": t.id,
        "user": t.user,
        "kind": t.kind,
        "description": t.description,
        "created_at": t.created_at,
        "expires_at": t.expires_at,
    })
}

fn created(body: Value) -> Response {
    (StatusCode::CREATED, Json(body)).into_response()
}

// ----- OpenAPI, login, tokens -----

async fn openapi() -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        OPENAPI,
    )
        .into_response()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Login {
    user: String,
    password: String,
}

async fn login(State(s): State<AdminState>, Body(body): Body<Login>) -> Result<Response> {
    let ttl = s.session_ttl_seconds;
    let user = body.user.clone();
    let issued = s
        .change(&user, "login", format!("user/{user}"), move |ops| {
            let t = ops.login(&body.user, &body.password, ttl)?;
            Ok((t, Value::Null))
        })
        .await?;
    Ok(Json(json!({
        "token": issued.bearer.as_str(),
        "token_id": issued.record.id,
        "user": issued.record.user,
        "expires_at": issued.record.expires_at,
    }))
    .into_response())
}

async fn logout(State(s): State<AdminState>, c: Caller) -> Result<Response> {
    let (who, id) = (c.principal.clone(), c.token.id.clone());
    s.change(
        &who.user.clone(),
        "logout",
        format!("token/{id}"),
        move |ops| {
            ops.revoke_token(&id, &who)?;
            Ok(((), Value::Null))
        },
    )
    .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn list_tokens(State(s): State<AdminState>, c: Caller) -> Result<Json<Value>> {
    let user = c.principal.user.clone();
    let tokens = s.read(move |ops| ops.list_tokens(&user)).await?;
    Ok(Json(json!(
        tokens.iter().map(token_view).collect::<Vec<_>>()
    )))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewToken {
    #[serde(default)]
    description: String,
    expires_at: Option<i64>,
}

async fn create_token(
    State(s): State<AdminState>,
    c: Caller,
    Body(body): Body<NewToken>,
) -> Result<Response> {
    let user = c.principal.user.clone();
    let issued = s
        .change(
            &user.clone(),
            "create_api_token",
            format!("user/{user}"),
            move |ops| {
                let t = ops.issue_api_token(&user, body.expires_at, &body.description)?;
                let id = t.record.id.clone();
                Ok((t, json!({"token_id": id})))
            },
        )
        .await?;
    let mut view = token_view(&issued.record);
    view["token"] = json!(issued.bearer.as_str());
    Ok(created(view))
}

async fn revoke_token(
    State(s): State<AdminState>,
    c: Caller,
    Path(id): Path<String>,
) -> Result<Response> {
    let who = c.principal.clone();
    s.change(
        &who.user.clone(),
        "revoke_token",
        format!("token/{id}"),
        move |ops| {
            ops.revoke_token(&id, &who)?;
            Ok(((), Value::Null))
        },
    )
    .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

// ----- users -----

async fn list_users(State(s): State<AdminState>, c: Caller) -> Result<Json<Value>> {
    let who = c.principal;
    let users = s
        .read(move |ops| {
            admin_only(&who, "list users")?;
            ops.list_users()
        })
        .await?;
    Ok(Json(json!(users.iter().map(user_view).collect::<Vec<_>>())))
}

fn default_groups() -> BTreeSet<String> {
    [auth::USERS.to_string()].into_iter().collect()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewUser {
    name: String,
    password: String,
    #[serde(default = "default_groups")]
    groups: BTreeSet<String>,
}

async fn create_user(
    State(s): State<AdminState>,
    c: Caller,
    Body(body): Body<NewUser>,
) -> Result<Response> {
    let who = c.principal;
    let object = format!("user/{}", body.name);
    let user = s
        .change(&who.user.clone(), "create_user", object, move |ops| {
            admin_only(&who, "create users")?;
            let u = ops.create_user(&body.name, &body.password, body.groups)?;
            let groups = json!({"groups": u.groups});
            Ok((u, groups))
        })
        .await?;
    Ok(created(user_view(&user)))
}

async fn get_user(
    State(s): State<AdminState>,
    c: Caller,
    Path(name): Path<String>,
) -> Result<Json<Value>> {
    let who = c.principal;
    let user = s
        .read(move |ops| {
            if who.user != name {
                admin_only(&who, "see other users")?;
            }
            ops.get_user(&name)
        })
        .await?;
    Ok(Json(user_view(&user)))
}

async fn delete_user(
    State(s): State<AdminState>,
    c: Caller,
    Path(name): Path<String>,
) -> Result<Response> {
    let who = c.principal;
    s.change(
        &who.user.clone(),
        "delete_user",
        format!("user/{name}"),
        move |ops| {
            admin_only(&who, "delete users")?;
            ops.delete_user(&name)?;
            Ok(((), Value::Null))
        },
    )
    .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewPassword {
    password: String,
    current_password: Option<String>,
}

async fn set_password(
    State(s): State<AdminState>,
    c: Caller,
    Path(name): Path<String>,
    Body(body): Body<NewPassword>,
) -> Result<Response> {
    let who = c.principal;
    s.change(
        &who.user.clone(),
        "set_password",
        format!("user/{name}"),
        move |ops| {
            if !who.is_admin() {
                if who.user != name {
                    admin_only(&who, "change other users' passwords")?;
                }
                let current = body.current_password.unwrap_or_default();
                if !ops.check_password(&name, &current)? {
                    return Err(OpError::Auth(AuthError::Unauthenticated(
                        "current_password is missing or wrong",
                    )));
                }
            }
            ops.set_password(&name, &body.password)?;
            Ok(((), Value::Null))
        },
    )
    .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

// ----- accounts -----

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewAccount {
    id: String,
    name: String,
    #[serde(default)]
    regions: Vec<String>,
    #[serde(default)]
    acl: Vec<AclEntry>,
    #[serde(default)]
    aws_connection: Option<String>,
}

async fn create_account(
    State(s): State<AdminState>,
    c: Caller,
    Body(body): Body<NewAccount>,
) -> Result<Response> {
    let who = c.principal;
    let object = format!("account/{}", body.id);
    let acc = s
        .change(&who.user.clone(), "create_account", object, move |ops| {
            admin_only(&who, "create AWS accounts")?;
            let a = ops.create_account_with(
                &body.id,
                &body.name,
                body.regions,
                body.acl,
                body.aws_connection,
            )?;
            let acl = json!({"acl": a.acl, "aws_connection": a.aws_connection});
            Ok((a, acl))
        })
        .await?;
    Ok(created(json!(acc)))
}

async fn list_accounts(State(s): State<AdminState>, c: Caller) -> Result<Json<Value>> {
    let who = c.principal;
    let accounts = s
        .read(move |ops| {
            Ok(ops
                .list_accounts()?
                .into_iter()
                .filter(|a| {
                    who.is_admin() || auth::authorize(&who, &a.id, &a.acl, Permission::View).is_ok()
                })
                .collect::<Vec<_>>())
        })
        .await?;
    Ok(Json(json!(accounts)))
}

async fn get_account(
    State(s): State<AdminState>,
    c: Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>> {
    let who = c.principal;
    let acc = s
        .read(move |ops| {
            let a = ops.get_account(&id)?;
            auth::authorize(&who, &a.id, &a.acl, Permission::View)?;
            Ok(a)
        })
        .await?;
    Ok(Json(json!(acc)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AccountPatch {
    name: Option<String>,
    regions: Option<Vec<String>>,
    acl: Option<Vec<AclEntry>>,
    aws_connection: Option<String>,
}

async fn update_account(
    State(s): State<AdminState>,
    c: Caller,
    Path(id): Path<String>,
    Body(body): Body<AccountPatch>,
) -> Result<Json<Value>> {
    let who = c.principal;
    let acc = s
        .change(
            &who.user.clone(),
            "update_account",
            format!("account/{id}"),
            move |ops| {
                admin_only(&who, "change AWS accounts")?;
                let a = ops.update_account(
                    &id,
                    AccountUpdate {
                        name: body.name,
                        regions: body.regions,
                        acl: body.acl,
                        aws_connection: body.aws_connection,
                    },
                )?;
                let acl = json!({"acl": a.acl, "regions": a.regions});
                Ok((a, acl))
            },
        )
        .await?;
    Ok(Json(json!(acc)))
}

async fn delete_account(
    State(s): State<AdminState>,
    c: Caller,
    Path(id): Path<String>,
) -> Result<Response> {
    let who = c.principal;
    s.change(
        &who.user.clone(),
        "delete_account",
        format!("account/{id}"),
        move |ops| {
            admin_only(&who, "delete AWS accounts")?;
            ops.delete_account(&id)?;
            Ok(((), Value::Null))
        },
    )
    .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

// ----- key sources -----

async fn list_sources(State(s): State<AdminState>, _c: Caller) -> Result<Json<Value>> {
    let sources = s.read(|ops| ops.list_sources()).await?;
    Ok(Json(json!(sources)))
}

async fn list_source_keys(
    State(s): State<AdminState>,
    _c: Caller,
    Path(name): Path<String>,
) -> Result<Json<Value>> {
    let keys = s.read(move |ops| ops.list_source_keys(&name)).await?;
    Ok(Json(json!(
        keys.iter().map(key_info_view).collect::<Vec<_>>()
    )))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewSourceKey {
    name: String,
    usage: Vec<String>,
    #[serde(default)]
    exportable: bool,
    #[serde(default)]
    deletable: bool,
}

async fn create_source_key(
    State(s): State<AdminState>,
    c: Caller,
    Path(source): Path<String>,
    Body(body): Body<NewSourceKey>,
) -> Result<Response> {
    let who = c.principal;
    let object = format!("source/{source}/key/{}", body.name);
    let info = s
        .change(&who.user.clone(), "create_source_key", object, move |ops| {
            admin_only(&who, "create source keys")?;
            let usage = KeyUsage::parse_list(&body.usage).map_err(|bad| {
                OpError::Input(format!(
                    "unknown usage '{bad}' (use encrypt, decrypt, wrap, unwrap)"
                ))
            })?;
            let k = ops.create_source_key(
                &source,
                NewKey {
                    name: body.name.as_str().into(),
                    usage,
                    exportable: body.exportable,
                    deletable: body.deletable,
                },
            )?;
            let details = json!({
                "usage": k.usage.names(),
                "exportable": k.exportable,
                "deletable": k.deletable,
            });
            Ok((k, details))
        })
        .await?;
    Ok(created(key_info_view(&info)))
}

async fn get_source_key(
    State(s): State<AdminState>,
    _c: Caller,
    Path((source, key)): Path<(String, String)>,
) -> Result<Json<Value>> {
    let (info, check) = s.read(move |ops| ops.get_source_key(&source, &key)).await?;
    let mut view = key_info_view(&info);
    view["valid_health_check_key"] = json!(check.is_ok());
    view["problems"] = json!(check.err().unwrap_or_default());
    Ok(Json(view))
}

// ----- stores -----

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateStore {
    name: String,
    account: Option<String>,
    source: String,
    uri_path_prefix: Option<String>,
    health_check_key: String,
    max_credentials: Option<u32>,
    #[serde(default)]
    location: XksLocation,
    #[serde(default)]
    success_audit: bool,
    #[serde(default)]
    mtls: bool,
}

async fn create_store(
    State(s): State<AdminState>,
    c: Caller,
    Body(body): Body<CreateStore>,
) -> Result<Response> {
    let who = c.principal;
    let object = format!("store/{}", body.name);
    let (store, file, account) = s
        .change(&who.user.clone(), "create_store", object, move |ops| {
            if let Some(a) = &body.account {
                ops.get_account(a)?;
            }
            authorize_account(ops, &who, body.account.as_deref(), Permission::CreateStore)?;
            let account = body.account.clone();
            let (rec, file) = ops.create_store(NewStore {
                name: body.name,
                account: body.account,
                source: body.source,
                uri_path_prefix: body.uri_path_prefix,
                health_check_key: body.health_check_key,
                max_credentials: body.max_credentials,
                location: body.location,
                success_audit: body.success_audit,
                mtls: body.mtls,
            })?;
            let current = ops.get_store(&rec.id)?;
            let details = json!({
                "store_id": rec.id,
                "account": account,
                "source": rec.source,
                "uri_path_prefix": rec.uri_path_prefix,
                "access_key_id": file.credential.access_key_id,
            });
            Ok(((current, file, account), details))
        })
        .await?;
    let health_check_path = model::lb_health_path(&store.value.uri_path_prefix);
    Ok(with_etag(
        StatusCode::CREATED,
        store.version,
        json!({
            "store": store_view(&store, account),
            "credentials_file": file,
            "health_check_path": health_check_path,
        }),
    ))
}

async fn list_stores(State(s): State<AdminState>, c: Caller) -> Result<Json<Value>> {
    let who = c.principal;
    let views = s
        .read(move |ops| {
            let accounts = ops.store_accounts()?;
            let mut out = Vec::new();
            for st in ops.list_stores()? {
                let account = accounts.get(&st.value.id).cloned();
                if authorize_account(ops, &who, account.as_deref(), Permission::View).is_ok() {
                    out.push(store_view(&st, account));
                }
            }
            Ok(out)
        })
        .await?;
    Ok(Json(json!(views)))
}

async fn get_store(
    State(s): State<AdminState>,
    c: Caller,
    Path(id): Path<String>,
) -> Result<Response> {
    let who = c.principal;
    let (store, account) = s
        .read(move |ops| {
            let st = authorize_store(ops, &who, &id, Permission::View)?;
            Ok((st, ops.store_account(&id)?))
        })
        .await?;
    Ok(with_etag(
        StatusCode::OK,
        store.version,
        store_view(&store, account),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StorePatch {
    name: Option<String>,
    location: Option<XksLocation>,
    health_check_key: Option<String>,
    max_credentials: Option<u32>,
    success_audit: Option<bool>,
    mtls: Option<bool>,
    source: Option<String>,
    container: Option<String>,
}

fn if_match(headers: &HeaderMap) -> Result<u64> {
    let value = headers.get(header::IF_MATCH).ok_or_else(|| {
        ApiError::new(
            428,
            "precondition_required",
            "send If-Match: \"<version>\" with the ETag of the store you read",
        )
    })?;
    value
        .to_str()
        .ok()
        .map(|v| v.trim().trim_start_matches("W/").trim_matches('"'))
        .and_then(|v| v.parse::<u64>().ok())
        .ok_or_else(|| {
            ApiError::new(
                400,
                "invalid_if_match",
                "If-Match must be a store version in quotes, e.g. \"42\"",
            )
        })
}

async fn update_store(
    State(s): State<AdminState>,
    c: Caller,
    Path(id): Path<String>,
    headers: HeaderMap,
    Body(body): Body<StorePatch>,
) -> Result<Response> {
    let who = c.principal;
    let expected = if_match(&headers)?;
    let result = s
        .change(
            &who.user.clone(),
            "update_store",
            format!("store/{id}"),
            move |ops| {
                authorize_store(ops, &who, &id, Permission::UpdateStore)?;
                let changed: Vec<&str> = [
                    ("name", body.name.is_some()),
                    ("location", body.location.is_some()),
                    ("health_check_key", body.health_check_key.is_some()),
                    ("max_credentials", body.max_credentials.is_some()),
                    ("success_audit", body.success_audit.is_some()),
                    ("mtls", body.mtls.is_some()),
                    ("source", body.source.is_some()),
                    ("container", body.container.is_some()),
                ]
                .iter()
                .filter(|(_, set)| *set)
                .map(|(n, _)| *n)
                .collect();
                let details = json!({"fields": changed});
                let v = ops.update_store(
                    &id,
                    StoreUpdate {
                        name: body.name,
                        location: body.location,
                        health_check_key: body.health_check_key,
                        max_credentials: body.max_credentials,
                        success_audit: body.success_audit,
                        mtls: body.mtls,
                        source: body.source,
                        container: body.container,
                    },
                    Some(expected),
                )?;
                let account = ops.store_account(&id)?;
                Ok(((v, account), details))
            },
        )
        .await;
    match result {
        Ok((v, account)) => Ok(with_etag(
            StatusCode::OK,
            v.version,
            store_view(&v, account),
        )),
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

async fn delete_store(
    State(s): State<AdminState>,
    c: Caller,
    Path(id): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<Response> {
    let who = c.principal;
    let confirm = confirmed(query);
    s.change(
        &who.user.clone(),
        "delete_store",
        format!("store/{id}"),
        move |ops| {
            let st = authorize_store(ops, &who, &id, Permission::DeleteStore)?;
            ops.delete_store(&id, confirm)?;
            Ok(((), json!({"name": st.value.name})))
        },
    )
    .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn set_blocked(s: AdminState, c: Caller, id: String, blocked: bool) -> Result<Response> {
    let who = c.principal;
    let action = if blocked {
        "block_store"
    } else {
        "unblock_store"
    };
    let (v, account) = s
        .change(
            &who.user.clone(),
            action,
            format!("store/{id}"),
            move |ops| {
                authorize_store(ops, &who, &id, Permission::Block)?;
                let v = ops.set_store_blocked(&id, blocked)?;
                Ok(((v, ops.store_account(&id)?), Value::Null))
            },
        )
        .await?;
    Ok(with_etag(
        StatusCode::OK,
        v.version,
        store_view(&v, account),
    ))
}

async fn block_store(
    State(s): State<AdminState>,
    c: Caller,
    Path(id): Path<String>,
) -> Result<Response> {
    set_blocked(s, c, id, true).await
}

async fn unblock_store(
    State(s): State<AdminState>,
    c: Caller,
    Path(id): Path<String>,
) -> Result<Response> {
    set_blocked(s, c, id, false).await
}

// ----- credentials -----

async fn list_credentials(
    State(s): State<AdminState>,
    c: Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>> {
    let who = c.principal;
    let creds = s
        .read(move |ops| {
            authorize_store(ops, &who, &id, Permission::View)?;
            ops.list_credentials(&id)
        })
        .await?;
    Ok(Json(json!(
        creds
            .iter()
            .map(|(akid, ns)| json!({
                "access_key_id": akid,
                "created_at": i64::try_from(ns / 1_000_000_000).unwrap_or_default(),
            }))
            .collect::<Vec<_>>()
    )))
}

async fn add_credential(
    State(s): State<AdminState>,
    c: Caller,
    Path(id): Path<String>,
) -> Result<Response> {
    let who = c.principal;
    let (file, evicted) = s
        .change(
            &who.user.clone(),
            "add_credential",
            format!("store/{id}"),
            move |ops| {
                authorize_store(ops, &who, &id, Permission::ManageCredentials)?;
                let (file, evicted) = ops.add_credential(&id)?;
                let details = json!({
                    "access_key_id": file.credential.access_key_id,
                    "evicted": evicted,
                });
                Ok(((file, evicted), details))
            },
        )
        .await?;
    // The body is exactly the credentials file the AWS KMS console accepts.
    let mut resp = created(json!(file));
    if let Ok(v) = HeaderValue::from_str(&evicted.join(",")) {
        if !evicted.is_empty() {
            resp.headers_mut()
                .insert("x-keyhold-evicted-credentials", v);
        }
    }
    Ok(resp)
}

async fn delete_credential(
    State(s): State<AdminState>,
    c: Caller,
    Path((id, akid)): Path<(String, String)>,
) -> Result<Response> {
    let who = c.principal;
    let object = format!("store/{id}/credential/{akid}");
    s.change(&who.user.clone(), "delete_credential", object, move |ops| {
        authorize_store(ops, &who, &id, Permission::ManageCredentials)?;
        ops.delete_credential(&id, &akid)?;
        Ok(((), Value::Null))
    })
    .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

// ----- HYOK keys -----

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewHyokKey {
    external_id: String,
    source_key: String,
}

async fn create_key(
    State(s): State<AdminState>,
    c: Caller,
    Path(id): Path<String>,
    Body(body): Body<NewHyokKey>,
) -> Result<Response> {
    let who = c.principal;
    let object = format!("store/{id}/key/{}", body.external_id);
    let rec = s
        .change(&who.user.clone(), "create_hyok_key", object, move |ops| {
            authorize_store(ops, &who, &id, Permission::ManageKeys)?;
            let rec = ops.create_hyok_key(&id, &body.external_id, &body.source_key)?;
            let details = json!({"source_key": rec.source_key});
            Ok((rec, details))
        })
        .await?;
    Ok(created(json!(rec)))
}

async fn list_keys(
    State(s): State<AdminState>,
    c: Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>> {
    let who = c.principal;
    let keys = s
        .read(move |ops| {
            authorize_store(ops, &who, &id, Permission::View)?;
            ops.list_hyok_keys(&id)
        })
        .await?;
    Ok(Json(json!(keys)))
}

async fn get_key(
    State(s): State<AdminState>,
    c: Caller,
    Path((id, ext)): Path<(String, String)>,
) -> Result<Json<Value>> {
    let who = c.principal;
    let key = s
        .read(move |ops| {
            authorize_store(ops, &who, &id, Permission::View)?;
            ops.get_hyok_key(&id, &ext)
        })
        .await?;
    Ok(Json(json!(key)))
}

async fn delete_key(
    State(s): State<AdminState>,
    c: Caller,
    Path((id, ext)): Path<(String, String)>,
) -> Result<Response> {
    let who = c.principal;
    let object = format!("store/{id}/key/{ext}");
    s.change(&who.user.clone(), "delete_hyok_key", object, move |ops| {
        authorize_store(ops, &who, &id, Permission::ManageKeys)?;
        ops.delete_hyok_key(&id, &ext)?;
        Ok(((), Value::Null))
    })
    .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn set_key_blocked(
    s: AdminState,
    c: Caller,
    id: String,
    ext: String,
    blocked: bool,
) -> Result<Json<Value>> {
    let who = c.principal;
    let action = if blocked {
        "block_hyok_key"
    } else {
        "unblock_hyok_key"
    };
    let object = format!("store/{id}/key/{ext}");
    let rec = s
        .change(&who.user.clone(), action, object, move |ops| {
            authorize_store(ops, &who, &id, Permission::Block)?;
            Ok((ops.set_hyok_key_blocked(&id, &ext, blocked)?, Value::Null))
        })
        .await?;
    Ok(Json(json!(rec)))
}

async fn block_key(
    State(s): State<AdminState>,
    c: Caller,
    Path((id, ext)): Path<(String, String)>,
) -> Result<Json<Value>> {
    set_key_blocked(s, c, id, ext, true).await
}

async fn unblock_key(
    State(s): State<AdminState>,
    c: Caller,
    Path((id, ext)): Path<(String, String)>,
) -> Result<Json<Value>> {
    set_key_blocked(s, c, id, ext, false).await
}

// ----- connections and key sources made from them (admins only) -----

/// An AWS connection as the API shows it: never the secret, sealed or not.
fn aws_connection_view(c: &model::AwsConnectionRecord) -> Value {
    json!({
        "name": c.name,
        "access_key_id": c.access_key_id,
        "role_arn": c.role_arn,
        "endpoint_url": c.endpoint_url,
        "sts_regional_endpoints": c.sts_regional_endpoints,
        "created_at": c.created_at,
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewAwsConnectionBody {
    name: String,
    access_key_id: String,
    secret_access_key: String,
    role_arn: Option<String>,
    endpoint_url: Option<String>,
    #[serde(default)]
    sts_regional_endpoints: model::StsRegionalEndpoints,
}

async fn create_aws_connection(
    State(s): State<AdminState>,
    c: Caller,
    Body(body): Body<NewAwsConnectionBody>,
) -> Result<Response> {
    let who = c.principal;
    let object = format!("connection/aws/{}", body.name);
    let view = s
        .change(
            &who.user.clone(),
            "create_aws_connection",
            object,
            move |ops| {
                admin_only(&who, "create AWS connections")?;
                let rec = ops.create_aws_connection(NewAwsConnection {
                    name: body.name,
                    access_key_id: body.access_key_id,
                    secret_access_key: zeroize::Zeroizing::new(body.secret_access_key),
                    role_arn: body.role_arn,
                    endpoint_url: body.endpoint_url,
                    sts_regional_endpoints: body.sts_regional_endpoints,
                })?;
                let view = aws_connection_view(&rec);
                Ok((view.clone(), view))
            },
        )
        .await?;
    Ok(created(view))
}

async fn list_aws_connections(State(s): State<AdminState>, c: Caller) -> Result<Json<Value>> {
    let who = c.principal;
    let list = s
        .read(move |ops| {
            admin_only(&who, "view AWS connections")?;
            ops.list_aws_connections()
        })
        .await?;
    Ok(Json(json!(
        list.iter().map(aws_connection_view).collect::<Vec<_>>()
    )))
}

async fn get_aws_connection(
    State(s): State<AdminState>,
    c: Caller,
    Path(name): Path<String>,
) -> Result<Json<Value>> {
    let who = c.principal;
    let rec = s
        .read(move |ops| {
            admin_only(&who, "view AWS connections")?;
            ops.get_aws_connection(&name)
        })
        .await?;
    Ok(Json(aws_connection_view(&rec)))
}

async fn delete_aws_connection(
    State(s): State<AdminState>,
    c: Caller,
    Path(name): Path<String>,
) -> Result<Response> {
    let who = c.principal;
    s.change(
        &who.user.clone(),
        "delete_aws_connection",
        format!("connection/aws/{name}"),
        move |ops| {
            admin_only(&who, "delete AWS connections")?;
            ops.delete_aws_connection(&name)?;
            Ok(((), Value::Null))
        },
    )
    .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AwsTestBody {
    region: Option<String>,
}

async fn test_aws_connection(
    State(s): State<AdminState>,
    c: Caller,
    Path(name): Path<String>,
    Body(body): Body<AwsTestBody>,
) -> Result<Json<Value>> {
    let who = c.principal;
    let out = s
        .change(
            &who.user.clone(),
            "test_aws_connection",
            format!("connection/aws/{name}"),
            move |ops| {
                admin_only(&who, "test AWS connections")?;
                let t = ops.test_aws_connection(&name, body.region.as_deref())?;
                let details = json!(t);
                Ok((t, details))
            },
        )
        .await?;
    Ok(Json(json!(out)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewHsmConnectionBody {
    name: String,
    module: String,
    token_label: String,
    pin_env: Option<String>,
    pin_file: Option<String>,
    #[serde(default)]
    module_env: std::collections::BTreeMap<String, String>,
    pool_size: Option<u32>,
    op_timeout_ms: Option<u64>,
}

async fn create_hsm_connection(
    State(s): State<AdminState>,
    c: Caller,
    Body(body): Body<NewHsmConnectionBody>,
) -> Result<Response> {
    let who = c.principal;
    let object = format!("connection/hsm/{}", body.name);
    let rec = s
        .change(
            &who.user.clone(),
            "create_hsm_connection",
            object,
            move |ops| {
                admin_only(&who, "create HSM connections")?;
                let rec = ops.create_hsm_connection(NewHsmConnection {
                    name: body.name,
                    module: body.module,
                    token_label: body.token_label,
                    pin_env: body.pin_env,
                    pin_file: body.pin_file,
                    module_env: body.module_env,
                    pool_size: body.pool_size,
                    op_timeout_ms: body.op_timeout_ms,
                })?;
                let details = json!({"module": rec.module, "token_label": rec.token_label});
                Ok((rec, details))
            },
        )
        .await?;
    Ok(created(json!(rec)))
}

async fn list_hsm_connections(State(s): State<AdminState>, c: Caller) -> Result<Json<Value>> {
    let who = c.principal;
    let list = s
        .read(move |ops| {
            admin_only(&who, "view HSM connections")?;
            ops.list_hsm_connections()
        })
        .await?;
    Ok(Json(json!(list)))
}

async fn get_hsm_connection(
    State(s): State<AdminState>,
    c: Caller,
    Path(name): Path<String>,
) -> Result<Json<Value>> {
    let who = c.principal;
    let rec = s
        .read(move |ops| {
            admin_only(&who, "view HSM connections")?;
            ops.get_hsm_connection(&name)
        })
        .await?;
    Ok(Json(json!(rec)))
}

async fn delete_hsm_connection(
    State(s): State<AdminState>,
    c: Caller,
    Path(name): Path<String>,
) -> Result<Response> {
    let who = c.principal;
    s.change(
        &who.user.clone(),
        "delete_hsm_connection",
        format!("connection/hsm/{name}"),
        move |ops| {
            admin_only(&who, "delete HSM connections")?;
            ops.delete_hsm_connection(&name)?;
            Ok(((), Value::Null))
        },
    )
    .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn test_hsm_connection(
    State(s): State<AdminState>,
    c: Caller,
    Path(name): Path<String>,
) -> Result<Json<Value>> {
    let who = c.principal;
    let out = s
        .change(
            &who.user.clone(),
            "test_hsm_connection",
            format!("connection/hsm/{name}"),
            move |ops| {
                admin_only(&who, "test HSM connections")?;
                let t = ops.test_hsm_connection(&name)?;
                let details = json!(t);
                Ok((t, details))
            },
        )
        .await?;
    Ok(Json(json!(out)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewSourceBody {
    name: String,
    plugin: String,
    hsm_connection: String,
}

async fn create_source(
    State(s): State<AdminState>,
    c: Caller,
    Body(body): Body<NewSourceBody>,
) -> Result<Response> {
    let who = c.principal;
    let object = format!("source/{}", body.name);
    let status = s
        .change(&who.user.clone(), "create_source", object, move |ops| {
            admin_only(&who, "create key sources")?;
            let rec = ops.create_source(&body.name, &body.plugin, &body.hsm_connection)?;
            let details = json!({
                "plugin": rec.plugin,
                "container": rec.container,
                "hsm_connection": rec.hsm_connection,
            });
            let status = ops.list_sources()?.into_iter().find(|s| s.name == rec.name);
            Ok((json!(status), details))
        })
        .await?;
    Ok(created(status))
}

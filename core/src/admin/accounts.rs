//! AWS accounts with their ACLs: created, changed and deleted by admins, seen by whoever
//! the ACL lets view them.

use axum::{
    Json,
    extract::{Path, State},
    http::StatusCode,
};
use serde_json::json;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::{
    Admin, AdminState, Body, Caller,
    reply::{Result, created},
};
use crate::{
    api::{
        accounts::{Account, AccountPatch, NewAccount},
        error::ErrorBody,
    },
    identity::{self, Permission},
    ops::AccountUpdate,
};

pub(super) fn routes() -> OpenApiRouter<AdminState> {
    OpenApiRouter::new()
        .routes(routes!(list_accounts, create_account))
        .routes(routes!(get_account, update_account, delete_account))
}

/// Create an AWS account with its ACL (admins).
#[utoipa::path(
    post,
    path = "/api/v1/accounts",
    tag = "accounts",
    request_body = NewAccount,
    responses(
        (status = 201, description = "The account.", body = Account),
        (status = 400, description = "Invalid input.", body = ErrorBody),
        (status = 403, description = "Not an admin.", body = ErrorBody),
        (status = 409, description = "Exists.", body = ErrorBody),
    )
)]
async fn create_account(
    State(s): State<AdminState>,
    Admin(who): Admin,
    Body(body): Body<NewAccount>,
) -> Result<(StatusCode, Json<Account>)> {
    let object = format!("account/{}", body.id);
    let acc = s
        .change(&who, "create_account", object, move |ops, _| {
            let a = ops.create_account_with(
                &body.id,
                &body.name,
                body.regions,
                body.acl,
                body.aws_connection,
            )?;
            let details = json!({"acl": a.acl, "aws_connection": a.aws_connection});
            Ok((a, details))
        })
        .await?;
    Ok(created(acc))
}

/// AWS accounts the caller may view.
#[utoipa::path(
    get,
    path = "/api/v1/accounts",
    tag = "accounts",
    responses((status = 200, description = "Accounts.", body = Vec<Account>))
)]
async fn list_accounts(State(s): State<AdminState>, c: Caller) -> Result<Json<Vec<Account>>> {
    let accounts = s
        .read_as(&c.principal, |ops, who| {
            Ok(ops
                .list_accounts()?
                .into_iter()
                .filter(|a| identity::authorize(who, &a.id, &a.acl, Permission::View).is_ok())
                .collect())
        })
        .await?;
    Ok(Json(accounts))
}

/// One AWS account (needs view).
#[utoipa::path(
    get,
    path = "/api/v1/accounts/{id}",
    tag = "accounts",
    params(("id" = String, Path, description = "AWS account id")),
    responses(
        (status = 200, description = "The account.", body = Account),
        (status = 403, description = "No view permission.", body = ErrorBody),
        (status = 404, description = "No such account.", body = ErrorBody),
    )
)]
async fn get_account(
    State(s): State<AdminState>,
    c: Caller,
    Path(id): Path<String>,
) -> Result<Json<Account>> {
    let acc = s
        .read_as(&c.principal, move |ops, who| {
            let a = ops.get_account(&id)?;
            identity::authorize(who, &a.id, &a.acl, Permission::View)?;
            Ok(a)
        })
        .await?;
    Ok(Json(acc))
}

/// Change an account's name, regions, ACL or AWS connection (admins).
#[utoipa::path(
    put,
    path = "/api/v1/accounts/{id}",
    tag = "accounts",
    params(("id" = String, Path, description = "AWS account id")),
    request_body = AccountPatch,
    responses(
        (status = 200, description = "The account.", body = Account),
        (status = 403, description = "Not an admin.", body = ErrorBody),
        (status = 404, description = "No such account.", body = ErrorBody),
    )
)]
async fn update_account(
    State(s): State<AdminState>,
    Admin(who): Admin,
    Path(id): Path<String>,
    Body(body): Body<AccountPatch>,
) -> Result<Json<Account>> {
    let object = format!("account/{id}");
    let acc = s
        .change(&who, "update_account", object, move |ops, _| {
            let update = AccountUpdate {
                name: body.name,
                regions: body.regions,
                acl: body.acl,
                aws_connection: body.aws_connection,
            };
            let a = ops.update_account(&id, update)?;
            let details = json!({"acl": a.acl, "regions": a.regions});
            Ok((a, details))
        })
        .await?;
    Ok(Json(acc))
}

/// Delete an AWS account (admins); refused while it has stores.
#[utoipa::path(
    delete,
    path = "/api/v1/accounts/{id}",
    tag = "accounts",
    params(("id" = String, Path, description = "AWS account id")),
    responses(
        (status = 204, description = "Deleted."),
        (status = 403, description = "Not an admin.", body = ErrorBody),
        (status = 409, description = "Account in use.", body = ErrorBody),
    )
)]
async fn delete_account(
    State(s): State<AdminState>,
    Admin(who): Admin,
    Path(id): Path<String>,
) -> Result<StatusCode> {
    let object = format!("account/{id}");
    s.change_no_content(&who, "delete_account", object, move |ops, _| {
        ops.delete_account(&id)
    })
    .await
}

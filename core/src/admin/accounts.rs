//! AWS accounts with their ACLs: created, changed and deleted by admins, seen by whoever
//! the ACL lets view them.

use axum::{http::HeaderMap, response::Response};

use super::{
    ApiError,
    etag::{if_match, with_etag},
    params::AccountId,
    prelude::*,
    responses::{InvalidInput, NotAdmin},
};
use crate::{
    api::accounts::{Account, AccountPatch, NewAccount},
    identity,
};

pub(super) fn routes() -> OpenApiRouter<AdminState> {
    OpenApiRouter::new()
        .routes(routes!(list_accounts, create_account))
        .routes(routes!(get_account, update_account, delete_account))
}

/// Create an AWS account with its ACL (admins).
#[utoipa::path(post, path = "/api/v1/accounts", request_body = NewAccount, responses(
    (status = 201, description = "The account.", body = Account),
    InvalidInput,
    NotAdmin,
    (status = 409, description = "Exists.", body = ErrorBody),
))]
async fn create_account(
    Admin(c): Admin,
    Body(body): Body<NewAccount>,
) -> Result<(StatusCode, Json<Account>)> {
    let object = format!("account/{}", body.id);
    c.create("create_account", object, move |ops, _| {
        let (regions, acl, connection) = (body.regions, body.acl, body.aws_connection);
        let a = ops.create_account_with(&body.id, &body.name, regions, acl, connection)?;
        let details = json!({"acl": a.acl, "aws_connection": a.aws_connection});
        Ok((a, details))
    })
    .await
}

/// AWS accounts the caller may view.
#[utoipa::path(get, path = "/api/v1/accounts", responses(
    (status = 200, description = "Accounts.", body = Vec<Account>),
))]
async fn list_accounts(c: Caller) -> Result<Json<Vec<Account>>> {
    let mut accounts = c.read(|ops, _| ops.list_accounts()).await?;
    accounts.retain(|a| identity::authorize(&c.principal, &a.id, &a.acl, Permission::View).is_ok());
    Ok(Json(accounts))
}

/// One AWS account (needs view; ETag: its version).
#[utoipa::path(get, path = "/api/v1/accounts/{id}", params(AccountId), responses(
    (status = 200, description = "The account (ETag: its version).", body = Account),
    (status = 403, description = "No view permission.", body = ErrorBody),
    (status = 404, description = "No such account.", body = ErrorBody),
))]
async fn get_account(c: Caller, Path(AccountId { id }): Path<AccountId>) -> Result<Response> {
    let acc = c.read(move |ops, _| ops.get_account_versioned(&id)).await?;
    identity::authorize(
        &c.principal,
        &acc.value.id,
        &acc.value.acl,
        Permission::View,
    )?;
    Ok(with_etag(StatusCode::OK, acc.version, acc.value))
}

/// Change an account's name, regions, ACL or AWS connection (admins). A change that
/// changes nothing writes nothing and no audit record. With `If-Match` (the ETag of a
/// GET), the change is refused with 412 `version_mismatch` once the account changed
/// meanwhile.
#[utoipa::path(put, path = "/api/v1/accounts/{id}", params(AccountId,
    ("If-Match" = Option<String>, Header, description = "\"<version>\" from the ETag (optional)")),
    request_body = AccountPatch, responses(
    (status = 200, description = "The account (ETag: its version).", body = Account),
    NotAdmin,
    (status = 404, description = "No such account.", body = ErrorBody),
    (status = 412, description = "Changed since the If-Match version (version_mismatch).", body = ErrorBody),
))]
async fn update_account(
    Admin(c): Admin,
    Path(AccountId { id }): Path<AccountId>,
    headers: HeaderMap,
    Body(body): Body<AccountPatch>,
) -> Result<Response> {
    let expected = match headers.contains_key(axum::http::header::IF_MATCH) {
        true => Some(if_match(&headers)?),
        false => None,
    };
    let result = c
        .change_if_any("update_account", format!("account/{id}"), move |ops, _| {
            let (a, changed) = ops.update_account_at(&id, body, expected)?;
            let details = json!({"acl": a.value.acl, "regions": a.value.regions});
            Ok((a, changed.then_some(details)))
        })
        .await;
    match result {
        Ok(acc) => Ok(with_etag(StatusCode::OK, acc.version, acc.value)),
        Err(e) if e.code == "version_mismatch" => Err(ApiError {
            status: StatusCode::PRECONDITION_FAILED,
            ..e
        }),
        Err(e) => Err(e),
    }
}

/// Delete an AWS account (admins); refused while it has stores.
#[utoipa::path(delete, path = "/api/v1/accounts/{id}", params(AccountId), responses(
    (status = 204, description = "Deleted."),
    NotAdmin,
    (status = 409, description = "Account in use.", body = ErrorBody),
))]
async fn delete_account(
    Admin(c): Admin,
    Path(AccountId { id }): Path<AccountId>,
) -> Result<StatusCode> {
    c.change_no_content("delete_account", format!("account/{id}"), move |ops, _| {
        ops.delete_account(&id)
    })
    .await
}

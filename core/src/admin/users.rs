//! Admin users: list, create and delete (admins), read (admins or the user), set a
//! password (admins; users their own with the current one).

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
        error::ErrorBody,
        users::{NewPassword, NewUser, User},
    },
    identity::{self, AccessError},
    ops::OpError,
};

pub(super) fn routes() -> OpenApiRouter<AdminState> {
    OpenApiRouter::new()
        .routes(routes!(list_users, create_user))
        .routes(routes!(get_user, delete_user))
        .routes(routes!(set_password))
}

/// List users (admins).
#[utoipa::path(
    get,
    path = "/api/v1/users",
    tag = "users",
    responses(
        (status = 200, description = "Users.", body = Vec<User>),
        (status = 403, description = "Not an admin.", body = ErrorBody),
    )
)]
async fn list_users(State(s): State<AdminState>, _: Admin) -> Result<Json<Vec<User>>> {
    let users = s.read(|ops| ops.list_users()).await?;
    Ok(Json(users.iter().map(User::from).collect()))
}

/// Create a user (admins).
#[utoipa::path(
    post,
    path = "/api/v1/users",
    tag = "users",
    request_body = NewUser,
    responses(
        (status = 201, description = "The user.", body = User),
        (status = 400, description = "Invalid input.", body = ErrorBody),
        (status = 403, description = "Not an admin.", body = ErrorBody),
        (status = 409, description = "Name taken.", body = ErrorBody),
    )
)]
async fn create_user(
    State(s): State<AdminState>,
    Admin(who): Admin,
    Body(body): Body<NewUser>,
) -> Result<(StatusCode, Json<User>)> {
    let object = format!("user/{}", body.name);
    let user = s
        .change(&who, "create_user", object, move |ops, _| {
            let u = ops.create_user(&body.name, &body.password, body.groups)?;
            let groups = json!({"groups": u.groups});
            Ok((u, groups))
        })
        .await?;
    Ok(created(User::from(&user)))
}

/// One user (admins, or the user themself).
#[utoipa::path(
    get,
    path = "/api/v1/users/{name}",
    tag = "users",
    params(("name" = String, Path, description = "User name")),
    responses(
        (status = 200, description = "The user.", body = User),
        (status = 403, description = "Another user, and not an admin.", body = ErrorBody),
        (status = 404, description = "No such user.", body = ErrorBody),
    )
)]
async fn get_user(
    State(s): State<AdminState>,
    c: Caller,
    Path(name): Path<String>,
) -> Result<Json<User>> {
    let user = s
        .read_as(&c.principal, move |ops, who| {
            if who.user != name {
                identity::require_admin(who, "see other users")?;
            }
            ops.get_user(&name)
        })
        .await?;
    Ok(Json(User::from(&user)))
}

/// Delete a user and their tokens (admins); not the last admin.
#[utoipa::path(
    delete,
    path = "/api/v1/users/{name}",
    tag = "users",
    params(("name" = String, Path, description = "User name")),
    responses(
        (status = 204, description = "Deleted."),
        (status = 403, description = "Not an admin.", body = ErrorBody),
        (status = 409, description = "Last admin.", body = ErrorBody),
    )
)]
async fn delete_user(
    State(s): State<AdminState>,
    Admin(who): Admin,
    Path(name): Path<String>,
) -> Result<StatusCode> {
    let object = format!("user/{name}");
    s.change_no_content(&who, "delete_user", object, move |ops, _| {
        ops.delete_user(&name)
    })
    .await
}

/// Set a password (admins; users their own with current_password).
#[utoipa::path(
    put,
    path = "/api/v1/users/{name}/password",
    tag = "users",
    params(("name" = String, Path, description = "User name")),
    request_body = NewPassword,
    responses(
        (status = 204, description = "Changed."),
        (status = 400, description = "Weak password.", body = ErrorBody),
        (status = 403, description = "Another user, and not an admin.", body = ErrorBody),
    )
)]
async fn set_password(
    State(s): State<AdminState>,
    c: Caller,
    Path(name): Path<String>,
    Body(body): Body<NewPassword>,
) -> Result<StatusCode> {
    let object = format!("user/{name}");
    s.change_no_content(&c.principal, "set_password", object, move |ops, who| {
        if !who.is_admin() {
            if who.user != name {
                identity::require_admin(who, "change other users' passwords")?;
            }
            let current = body.current_password.unwrap_or_default();
            if !ops.check_password(&name, &current)? {
                return Err(OpError::Access(AccessError::Unauthenticated(
                    "current_password is missing or wrong",
                )));
            }
        }
        ops.set_password(&name, &body.password)
    })
    .await
}

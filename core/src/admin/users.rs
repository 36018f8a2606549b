//! Admin users: list, create and delete (admins), read (admins or the user), set a
//! password (admins; users their own with the current one).

use super::{
    params::UserName,
    prelude::*,
    responses::{InvalidInput, NotAdmin},
};
use crate::{
    api::users::{NewPassword, NewUser, User},
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
#[utoipa::path(get, path = "/api/v1/users", responses(
    (status = 200, description = "Users.", body = Vec<User>),
    NotAdmin,
))]
async fn list_users(Admin(c): Admin) -> Result<Json<Vec<User>>> {
    let users = c.read(|ops, _| ops.list_users()).await?;
    Ok(Json(users.iter().map(User::from).collect()))
}

/// Create a user (admins).
#[utoipa::path(post, path = "/api/v1/users", request_body = NewUser, responses(
    (status = 201, description = "The user.", body = User),
    InvalidInput,
    NotAdmin,
    (status = 409, description = "Name taken.", body = ErrorBody),
))]
async fn create_user(
    Admin(c): Admin,
    Body(body): Body<NewUser>,
) -> Result<(StatusCode, Json<User>)> {
    let object = format!("user/{}", identity::audit_user_name(&body.name));
    let user = c
        .change("create_user", object, move |ops, _| {
            let u = ops.create_user(&body.name, &body.password, body.groups)?;
            let groups = json!({"groups": u.groups});
            Ok((u, groups))
        })
        .await?;
    Ok(created(User::from(&user)))
}

/// One user (admins, or the user themself).
#[utoipa::path(get, path = "/api/v1/users/{name}", params(UserName), responses(
    (status = 200, description = "The user.", body = User),
    (status = 403, description = "Another user, and not an admin.", body = ErrorBody),
    (status = 404, description = "No such user.", body = ErrorBody),
))]
async fn get_user(c: Caller, Path(UserName { name }): Path<UserName>) -> Result<Json<User>> {
    let user = c
        .read(move |ops, who| {
            if who.user != name {
                identity::require_admin(who, "see other users")?;
            }
            ops.get_user(&name)
        })
        .await?;
    Ok(Json(User::from(&user)))
}

/// Delete a user and their tokens (admins); not the last admin.
///
/// A user created again under the same name never inherits a token of the deleted one.
#[utoipa::path(delete, path = "/api/v1/users/{name}", params(UserName), responses(
    (status = 204, description = "Deleted."),
    NotAdmin,
    (status = 409, description = "Last admin.", body = ErrorBody),
))]
async fn delete_user(
    Admin(c): Admin,
    Path(UserName { name }): Path<UserName>,
) -> Result<StatusCode> {
    let object = format!("user/{}", identity::audit_user_name(&name));
    c.change_no_content("delete_user", object, move |ops, _| ops.delete_user(&name))
        .await
}

/// Set a password (admins; users their own with current_password).
///
/// Every session and API token of the user is revoked, except the token of this
/// request when users change their own password (their current session survives, as
/// in the AWS console).
#[utoipa::path(put, path = "/api/v1/users/{name}/password", params(UserName), request_body = NewPassword, responses(
    (status = 204, description = "Changed."),
    (status = 400, description = "Weak password.", body = ErrorBody),
    (status = 403, description = "Another user, and not an admin.", body = ErrorBody),
))]
async fn set_password(
    c: Caller,
    Path(UserName { name }): Path<UserName>,
    Body(body): Body<NewPassword>,
) -> Result<StatusCode> {
    let object = format!("user/{}", identity::audit_user_name(&name));
    let current_token = c.token.id.clone();
    c.change_no_content("set_password", object, move |ops, who| {
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
        let keep = (who.user == name).then_some(current_token.as_str());
        ops.set_password(&name, &body.password, keep)
    })
    .await
}

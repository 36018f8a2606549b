//! AWS connections (credentials sealed at rest, never returned) and HSM connections
//! (a PKCS#11 module, a token and a reference to its PIN), with their connection
//! tests. Admins only.

use utoipa::IntoResponses;

use super::{params::ConnectionName, prelude::*, responses::AdminOnly};
use crate::{
    api::connections::{
        AwsConnection, AwsConnectionTest, ConnectionTest, HsmConnection, NewAwsConnection,
        NewHsmConnection,
    },
    ops::{OpError, Operations},
};

pub(super) fn routes() -> OpenApiRouter<AdminState> {
    OpenApiRouter::new()
        .routes(routes!(list_aws_connections, create_aws_connection))
        .routes(routes!(get_aws_connection, delete_aws_connection))
        .routes(routes!(test_aws_connection))
        .routes(routes!(list_hsm_connections, create_hsm_connection))
        .routes(routes!(get_hsm_connection, delete_hsm_connection))
        .routes(routes!(test_hsm_connection))
}

/// Create an AWS connection (admins). The secret access key is sealed at rest and
/// never returned.
#[utoipa::path(post, path = "/api/v1/connections/aws", request_body = NewAwsConnection, responses(
    (status = 201, description = "The connection.", body = AwsConnection),
    ConnectionCreateRefusals,
))]
async fn create_aws_connection(
    Admin(c): Admin,
    Body(body): Body<NewAwsConnection>,
) -> Result<(StatusCode, Json<AwsConnection>)> {
    let object = format!("connection/aws/{}", body.name);
    c.create("create_aws_connection", object, move |ops, _| {
        let view = AwsConnection::from(&ops.create_aws_connection(body)?);
        let details = json!(view);
        Ok((view, details))
    })
    .await
}

/// Every AWS connection (admins).
#[utoipa::path(get, path = "/api/v1/connections/aws", responses(
    (status = 200, description = "The connections.", body = Vec<AwsConnection>),
    AdminOnly,
))]
async fn list_aws_connections(Admin(c): Admin) -> Result<Json<Vec<AwsConnection>>> {
    let list = c.read(|ops, _| ops.list_aws_connections()).await?;
    Ok(Json(list.iter().map(AwsConnection::from).collect()))
}

/// One AWS connection (admins).
#[utoipa::path(get, path = "/api/v1/connections/aws/{name}", params(ConnectionName), responses(
    (status = 200, description = "The connection.", body = AwsConnection),
    ConnectionLookup,
))]
async fn get_aws_connection(
    Admin(c): Admin,
    Path(ConnectionName { name }): Path<ConnectionName>,
) -> Result<Json<AwsConnection>> {
    let rec = c.read(move |ops, _| ops.get_aws_connection(&name)).await?;
    Ok(Json(AwsConnection::from(&rec)))
}

/// Test the AWS connection: a SigV4-signed KMS ListKeys call to its endpoint
/// (override, else https://kms.<region>.amazonaws.com).
#[utoipa::path(post, path = "/api/v1/connections/aws/{name}/test", params(ConnectionName), request_body = AwsConnectionTest, responses(
    (status = 200, description = "Ready, or Failed with the reason.", body = ConnectionTest),
    ConnectionLookup,
))]
async fn test_aws_connection(
    Admin(c): Admin,
    Path(ConnectionName { name }): Path<ConnectionName>,
    Body(body): Body<AwsConnectionTest>,
) -> Result<Json<ConnectionTest>> {
    run_test(
        &c,
        "test_aws_connection",
        format!("connection/aws/{name}"),
        move |ops| ops.test_aws_connection(&name, body.region.as_deref()),
    )
    .await
}

/// Create an HSM connection (admins). The PIN is referenced (pin_env or pin_file),
/// never stored.
#[utoipa::path(post, path = "/api/v1/connections/hsm", request_body = NewHsmConnection, responses(
    (status = 201, description = "The connection.", body = HsmConnection),
    ConnectionCreateRefusals,
))]
async fn create_hsm_connection(
    Admin(c): Admin,
    Body(body): Body<NewHsmConnection>,
) -> Result<(StatusCode, Json<HsmConnection>)> {
    let object = format!("connection/hsm/{}", body.name);
    c.create("create_hsm_connection", object, move |ops, _| {
        let rec = ops.create_hsm_connection(body)?;
        let details = json!({"module": rec.module, "token_label": rec.token_label});
        Ok((rec, details))
    })
    .await
}

/// Every HSM connection (admins).
#[utoipa::path(get, path = "/api/v1/connections/hsm", responses(
    (status = 200, description = "The connections.", body = Vec<HsmConnection>),
    AdminOnly,
))]
async fn list_hsm_connections(Admin(c): Admin) -> Result<Json<Vec<HsmConnection>>> {
    Ok(Json(c.read(|ops, _| ops.list_hsm_connections()).await?))
}

/// One HSM connection (admins).
#[utoipa::path(get, path = "/api/v1/connections/hsm/{name}", params(ConnectionName), responses(
    (status = 200, description = "The connection.", body = HsmConnection),
    ConnectionLookup,
))]
async fn get_hsm_connection(
    Admin(c): Admin,
    Path(ConnectionName { name }): Path<ConnectionName>,
) -> Result<Json<HsmConnection>> {
    Ok(Json(
        c.read(move |ops, _| ops.get_hsm_connection(&name)).await?,
    ))
}

/// Test the HSM connection: open a luna key source with it and read the token's
/// health.
#[utoipa::path(post, path = "/api/v1/connections/hsm/{name}/test", params(ConnectionName), responses(
    (status = 200, description = "Ready, or Failed with the reason.", body = ConnectionTest),
    ConnectionLookup,
))]
async fn test_hsm_connection(
    Admin(c): Admin,
    Path(ConnectionName { name }): Path<ConnectionName>,
) -> Result<Json<ConnectionTest>> {
    run_test(
        &c,
        "test_hsm_connection",
        format!("connection/hsm/{name}"),
        move |ops| ops.test_hsm_connection(&name),
    )
    .await
}

/// Refusals of an operation on one named connection (admins).
#[derive(IntoResponses)]
#[allow(dead_code)] // documentation only: the refusals are `ApiError`s
enum ConnectionLookup {
    #[response(status = 403, description = "Admins only.")]
    AdminOnly(ErrorBody),
    #[response(status = 404, description = "No such connection.")]
    NoSuchConnection(ErrorBody),
}

/// Refusals of creating a connection (admins).
#[derive(IntoResponses)]
#[allow(dead_code)] // documentation only: the refusals are `ApiError`s
enum ConnectionCreateRefusals {
    #[response(status = 400, description = "Invalid input.")]
    InvalidInput(ErrorBody),
    #[response(status = 403, description = "Admins only.")]
    AdminOnly(ErrorBody),
    #[response(status = 409, description = "The name is taken.")]
    NameTaken(ErrorBody),
}

/// Refusals of deleting a connection (admins): [`ConnectionLookup`] and one in use.
#[derive(IntoResponses)]
#[allow(dead_code)] // documentation only: the refusals are `ApiError`s
enum ConnectionDeleteRefusals {
    #[response(status = 403, description = "Admins only.")]
    AdminOnly(ErrorBody),
    #[response(status = 404, description = "No such connection.")]
    NoSuchConnection(ErrorBody),
    #[response(
        status = 409,
        description = "Connection in use (code connection_in_use; the users are named)."
    )]
    InUse(ErrorBody),
}

/// Runs a connection test as an audited change (the outcome is the audit detail).
async fn run_test<F>(
    c: &Caller,
    action: &'static str,
    object: String,
    test: F,
) -> Result<Json<ConnectionTest>>
where
    F: FnOnce(&Operations) -> std::result::Result<ConnectionTest, OpError> + Send + 'static,
{
    let outcome = c
        .change(action, object, move |ops, _| {
            let t = test(ops)?;
            Ok((t.clone(), json!(t)))
        })
        .await?;
    Ok(Json(outcome))
}

/// Defines the handler deleting a connection of one kind (`aws`, `hsm`) through the
/// given `Operations` method, audited under the handler's name.
macro_rules! delete_connection {
    ($(#[doc = $doc:literal])* $handler:ident, $path:literal, $kind:literal, $delete:ident) => {
        $(#[doc = $doc])*
        #[utoipa::path(delete, path = $path, params(ConnectionName), responses(
            (status = 204, description = "Deleted."),
            ConnectionDeleteRefusals,
        ))]
        async fn $handler(
            Admin(c): Admin,
            Path(ConnectionName { name }): Path<ConnectionName>,
        ) -> Result<StatusCode> {
            let object = format!(concat!("connection/", $kind, "/{}"), name);
            c.change_no_content(stringify!($handler), object, move |ops, _| ops.$delete(&name))
                .await
        }
    };
}

delete_connection!(
    /// Delete an AWS connection (admins); refused while an AWS account uses it.
    delete_aws_connection, "/api/v1/connections/aws/{name}", "aws", delete_aws_connection
);
delete_connection!(
    /// Delete an HSM connection (admins); refused while a key source was made from it.
    delete_hsm_connection, "/api/v1/connections/hsm/{name}", "hsm", delete_hsm_connection
);

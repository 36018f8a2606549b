//! AWS connections (credentials sealed at rest, never returned) and HSM connections
//! (a PKCS#11 module, a token and a reference to its PIN), with their connection
//! tests. Admins only.

use super::{
    params::ConnectionName,
    prelude::*,
    responses::{AdminOnly, InvalidInput, NoSuchConnection},
};
use crate::api::connections::{
    AwsConnection, AwsConnectionTest, ConnectionTest, HsmConnection, NewAwsConnection,
    NewHsmConnection,
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
    InvalidInput,
    AdminOnly,
    (status = 409, description = "The name is taken.", body = ErrorBody),
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
    AdminOnly,
    NoSuchConnection,
))]
async fn get_aws_connection(
    Admin(c): Admin,
    Path(ConnectionName { name }): Path<ConnectionName>,
) -> Result<Json<AwsConnection>> {
    let rec = c.read(move |ops, _| ops.get_aws_connection(&name)).await?;
    Ok(Json(AwsConnection::from(&rec)))
}

/// Delete an AWS connection (admins); refused while an AWS account uses it.
#[utoipa::path(delete, path = "/api/v1/connections/aws/{name}", params(ConnectionName), responses(
    (status = 204, description = "Deleted."),
    AdminOnly,
    NoSuchConnection,
    (status = 409, description = "Connection in use (code connection_in_use; the users are named).", body = ErrorBody),
))]
async fn delete_aws_connection(
    Admin(c): Admin,
    Path(ConnectionName { name }): Path<ConnectionName>,
) -> Result<StatusCode> {
    let object = format!("connection/aws/{name}");
    c.change_no_content("delete_aws_connection", object, move |ops, _| {
        ops.delete_aws_connection(&name)
    })
    .await
}

/// Test the AWS connection: a SigV4-signed KMS ListKeys call to its endpoint
/// (override, else https://kms.<region>.amazonaws.com).
#[utoipa::path(post, path = "/api/v1/connections/aws/{name}/test", params(ConnectionName), request_body = AwsConnectionTest, responses(
    (status = 200, description = "Ready, or Failed with the reason.", body = ConnectionTest),
    AdminOnly,
    NoSuchConnection,
))]
async fn test_aws_connection(
    Admin(c): Admin,
    Path(ConnectionName { name }): Path<ConnectionName>,
    Body(body): Body<AwsConnectionTest>,
) -> Result<Json<ConnectionTest>> {
    let object = format!("connection/aws/{name}");
    let test = c
        .change("test_aws_connection", object, move |ops, _| {
            let t = ops.test_aws_connection(&name, body.region.as_deref())?;
            Ok((t.clone(), json!(t)))
        })
        .await?;
    Ok(Json(test))
}

/// Create an HSM connection (admins). The PIN is referenced (pin_env or pin_file),
/// never stored.
#[utoipa::path(post, path = "/api/v1/connections/hsm", request_body = NewHsmConnection, responses(
    (status = 201, description = "The connection.", body = HsmConnection),
    InvalidInput,
    AdminOnly,
    (status = 409, description = "The name is taken.", body = ErrorBody),
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
    AdminOnly,
    NoSuchConnection,
))]
async fn get_hsm_connection(
    Admin(c): Admin,
    Path(ConnectionName { name }): Path<ConnectionName>,
) -> Result<Json<HsmConnection>> {
    Ok(Json(
        c.read(move |ops, _| ops.get_hsm_connection(&name)).await?,
    ))
}

/// Delete an HSM connection (admins); refused while a key source was made from it.
#[utoipa::path(delete, path = "/api/v1/connections/hsm/{name}", params(ConnectionName), responses(
    (status = 204, description = "Deleted."),
    AdminOnly,
    NoSuchConnection,
    (status = 409, description = "Connection in use (code connection_in_use; the users are named).", body = ErrorBody),
))]
async fn delete_hsm_connection(
    Admin(c): Admin,
    Path(ConnectionName { name }): Path<ConnectionName>,
) -> Result<StatusCode> {
    let object = format!("connection/hsm/{name}");
    c.change_no_content("delete_hsm_connection", object, move |ops, _| {
        ops.delete_hsm_connection(&name)
    })
    .await
}

/// Test the HSM connection: open a luna key source with it and read the token's
/// health.
#[utoipa::path(post, path = "/api/v1/connections/hsm/{name}/test", params(ConnectionName), responses(
    (status = 200, description = "Ready, or Failed with the reason.", body = ConnectionTest),
    AdminOnly,
    NoSuchConnection,
))]
async fn test_hsm_connection(
    Admin(c): Admin,
    Path(ConnectionName { name }): Path<ConnectionName>,
) -> Result<Json<ConnectionTest>> {
    let object = format!("connection/hsm/{name}");
    let test = c
        .change("test_hsm_connection", object, move |ops, _| {
            let t = ops.test_hsm_connection(&name)?;
            Ok((t.clone(), json!(t)))
        })
        .await?;
    Ok(Json(test))
}

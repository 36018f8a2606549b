//! AWS connections (credentials sealed at rest, never returned) and HSM connections
//! (a PKCS#11 module, a token and a reference to its PIN), with their connection
//! tests. Admins only.

use utoipa::IntoResponses;

use super::{params::ConnectionName, prelude::*, responses::AdminOnly};
use crate::{
    api::connections::{
        AwsConnection, AwsConnectionTest, ConnectionTest, HsmConnection, HsmConnectionPatch,
        NewAwsConnection, NewHsmConnection,
    },
    ops::{OpError, Operations},
};

pub(super) fn routes() -> OpenApiRouter<AdminState> {
    OpenApiRouter::new()
        .routes(routes!(list_aws_connections, create_aws_connection))
        .routes(routes!(get_aws_connection, delete_aws_connection))
        .routes(routes!(test_aws_connection))
        .routes(routes!(list_hsm_connections, create_hsm_connection))
        .routes(routes!(
            get_hsm_connection,
            update_hsm_connection,
            delete_hsm_connection
        ))
        .routes(routes!(test_hsm_connection))
}

/// Defines the create, list, get and delete handlers of one kind of connection
/// (`aws`, `hsm`): each calls the `Operations` method of its own name (changes are
/// audited under it); `view` makes the answered form of a record, `details` the audit
/// details of a created one.
macro_rules! connection_kind {
    (
        kind: $kind:literal,
        paths: ($collection:literal, $item:literal),
        types: ($new:ty => $view_ty:ty),
        $(#[doc = $create_doc:literal])* $create:ident,
        $(#[doc = $list_doc:literal])* $list:ident,
        $(#[doc = $get_doc:literal])* $get:ident,
        $(#[doc = $delete_doc:literal])* $delete:ident,
        view: |$rec:ident| $view:expr,
        details: |$v:ident| $details:expr $(,)?
    ) => {
        $(#[doc = $create_doc])*
        #[utoipa::path(post, path = $collection, request_body = $new, responses(
            (status = 201, description = "The connection.", body = $view_ty),
            ConnectionCreateRefusals,
        ))]
        async fn $create(
            Admin(c): Admin,
            Body(body): Body<$new>,
        ) -> Result<(StatusCode, Json<$view_ty>)> {
            let object = format!(concat!("connection/", $kind, "/{}"), body.name);
            c.create(stringify!($create), object, move |ops, _| {
                let $v = {
                    let $rec = ops.$create(body)?;
                    $view
                };
                let details = $details;
                Ok(($v, details))
            })
            .await
        }

        $(#[doc = $list_doc])*
        #[utoipa::path(get, path = $collection, responses(
            (status = 200, description = "The connections.", body = Vec<$view_ty>),
            AdminOnly,
        ))]
        async fn $list(Admin(c): Admin) -> Result<Json<Vec<$view_ty>>> {
            let list = c.read(|ops, _| ops.$list()).await?;
            Ok(Json(list.into_iter().map(|$rec| $view).collect()))
        }

        $(#[doc = $get_doc])*
        #[utoipa::path(get, path = $item, params(ConnectionName), responses(
            (status = 200, description = "The connection.", body = $view_ty),
            ConnectionLookup,
        ))]
        async fn $get(
            Admin(c): Admin,
            Path(ConnectionName { name }): Path<ConnectionName>,
        ) -> Result<Json<$view_ty>> {
            let $rec = c.read(move |ops, _| ops.$get(&name)).await?;
            Ok(Json($view))
        }

        $(#[doc = $delete_doc])*
        #[utoipa::path(delete, path = $item, params(ConnectionName), responses(
            (status = 204, description = "Deleted."),
            ConnectionDeleteRefusals,
        ))]
        async fn $delete(
            Admin(c): Admin,
            Path(ConnectionName { name }): Path<ConnectionName>,
        ) -> Result<StatusCode> {
            let object = format!(concat!("connection/", $kind, "/{}"), name);
            c.change_no_content(stringify!($delete), object, move |ops, _| ops.$delete(&name))
                .await
        }
    };
}

connection_kind! {
    kind: "aws",
    paths: ("/api/v1/connections/aws", "/api/v1/connections/aws/{name}"),
    types: (NewAwsConnection => AwsConnection),
    /// Create an AWS connection (admins). The secret access key is sealed at rest and
    /// never returned. With `role_arn`, AWS calls use the role, assumed through STS
    /// (`sts_endpoint_url`, else the endpoint `sts_regional_endpoints` chooses) with
    /// these keys. `ca_file` (an absolute path on the server) is a PEM bundle of CA
    /// certificates trusted alone for the KMS and STS endpoints; it must be readable and
    /// hold at least one certificate.
    create_aws_connection,
    /// Every AWS connection (admins).
    list_aws_connections,
    /// One AWS connection (admins).
    get_aws_connection,
    /// Delete an AWS connection (admins); refused while an AWS account uses it.
    delete_aws_connection,
    view: |rec| AwsConnection::from(&rec),
    details: |view| json!(view),
}

connection_kind! {
    kind: "hsm",
    paths: ("/api/v1/connections/hsm", "/api/v1/connections/hsm/{name}"),
    types: (NewHsmConnection => HsmConnection),
    /// Create an HSM connection (admins). The PIN is referenced (pin_env or pin_file),
    /// never stored.
    create_hsm_connection,
    /// Every HSM connection (admins).
    list_hsm_connections,
    /// One HSM connection (admins).
    get_hsm_connection,
    /// Delete an HSM connection (admins); refused while a key source was made from it
    /// (delete the source first: `DELETE /api/v1/sources/{name}`).
    delete_hsm_connection,
    view: |rec| rec,
    details: |rec| json!({"module": rec.module, "token_label": rec.token_label}),
}

/// Change an HSM connection (admins): PIN reference (`pin_env` or `pin_file`; setting
/// one clears the other), `module`, `module_env` (replaces the map), `pool_size`,
/// `op_timeout_ms`. `token_label` cannot change (a key source's binding: 422
/// `token_label_immutable`). The changed connection is tested first (a key source
/// opened with it, as `POST .../test` does); a failed test refuses the change with 422
/// `connection_test_failed` and the reason, and nothing is saved. Key sources made from
/// it keep their session until reopened (`POST /api/v1/sources/{name}/reopen`). A
/// patch that changes nothing writes nothing and no audit record. A PKCS#11 module
/// reads its environment once per process (SoftHSM2: `SOFTHSM2_CONF`): the luna plugin
/// refuses a `module_env` that differs from the environment the module was loaded
/// with, and says so.
#[utoipa::path(patch, path = "/api/v1/connections/hsm/{name}", params(ConnectionName), request_body = HsmConnectionPatch, responses(
    (status = 200, description = "The connection.", body = HsmConnection),
    (status = 400, description = "Invalid input.", body = ErrorBody),
    ConnectionLookup,
    (status = 409, description = "Changed meanwhile (version_mismatch).", body = ErrorBody),
    (status = 422, description = "The changed connection failed its test (connection_test_failed, with the reason), or token_label changed (token_label_immutable).", body = ErrorBody),
))]
async fn update_hsm_connection(
    Admin(c): Admin,
    Path(ConnectionName { name }): Path<ConnectionName>,
    Body(body): Body<HsmConnectionPatch>,
) -> Result<Json<HsmConnection>> {
    let object = format!("connection/hsm/{name}");
    let rec = c
        .change_if_any("update_hsm_connection", object, move |ops, _| {
            let fields = body.fields();
            let (rec, changed) = ops.update_hsm_connection(&name, body)?;
            Ok((rec, changed.then(|| json!({"fields": fields}))))
        })
        .await?;
    Ok(Json(rec))
}

/// Test the AWS connection: a KMS ListKeys call (one key) through the AWS SDK with its
/// credentials (its role assumed, when it has one) to its endpoint (override, else
/// https://kms.<region>.amazonaws.com), bounded in time. `Failed` says why: the
/// operation, AWS's error code and message, and what to do.
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

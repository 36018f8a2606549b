//! The path parameters of the routes, each named and documented once (`params(...)`
//! in the OpenAPI operations, `Path<...>` in the handlers).

use serde::Deserialize;
use utoipa::IntoParams;

/// `/api/v1/tokens/{id}`.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub(super) struct TokenId {
    /// Token id.
    pub id: String,
}

/// `/api/v1/users/{name}`.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub(super) struct UserName {
    /// User name.
    pub name: String,
}

/// `/api/v1/accounts/{id}`.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub(super) struct AccountId {
    /// The 12-digit AWS account id.
    pub id: String,
}

/// `/api/v1/connections/{aws,hsm}/{name}`.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub(super) struct ConnectionName {
    /// Connection name.
    pub name: String,
}

/// `/api/v1/sources/{name}`.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub(super) struct SourceName {
    /// Key source name.
    pub name: String,
}

/// `/api/v1/sources/{name}/keys/{key}`.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub(super) struct SourceKeyName {
    /// Key source name.
    pub name: String,
    /// Key name.
    pub key: String,
}

/// `/api/v1/stores/{id}`.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub(super) struct StoreId {
    /// Store id, or the store's name.
    pub id: String,
}

/// `/api/v1/stores/{id}/keys/{ext}`.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub(super) struct HyokKeyId {
    /// Store id, or the store's name.
    pub id: String,
    /// External key id.
    pub ext: String,
}

/// `/api/v1/stores/{id}/credentials/{akid}`.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub(super) struct CredentialId {
    /// Store id, or the store's name.
    pub id: String,
    /// Access key id.
    pub akid: String,
}

/// `/api/v1/schedules/{name}`.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub(super) struct ScheduleName {
    /// Schedule name.
    pub name: String,
}

/// `/api/v1/jobs/{id}`.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub(super) struct JobId {
    /// Job id.
    pub id: String,
}

//! Refusal sets that several admin operations document alike, written once as
//! `IntoResponses` types that the handlers' `responses(...)` lists name.

use utoipa::IntoResponses;

use crate::api::error::ErrorBody;

/// 403 for an operation of the `admins` group.
#[derive(IntoResponses)]
#[response(status = 403, description = "Admins only.")]
pub(super) struct AdminOnly(#[allow(dead_code)] ErrorBody);

/// 403 for an operation of the `admins` group (worded for users and accounts).
#[derive(IntoResponses)]
#[response(status = 403, description = "Not an admin.")]
pub(super) struct NotAdmin(#[allow(dead_code)] ErrorBody);

/// 400 for a request body that fails validation.
#[derive(IntoResponses)]
#[response(status = 400, description = "Invalid input.")]
pub(super) struct InvalidInput(#[allow(dead_code)] ErrorBody);

/// 404 for a connection name that names none.
#[derive(IntoResponses)]
#[response(status = 404, description = "No such connection.")]
pub(super) struct NoSuchConnection(#[allow(dead_code)] ErrorBody);

//! Refusals that several admin operations document alike, written once as
//! `IntoResponses` types that the handlers' `responses(...)` lists name.

use utoipa::IntoResponses;

use crate::api::error::ErrorBody;

/// Defines a documented refusal: `status` with `description` and an [`ErrorBody`].
macro_rules! refusal {
    ($(#[doc = $doc:literal])* $name:ident, $status:literal, $description:literal) => {
        $(#[doc = $doc])*
        #[derive(IntoResponses)]
        #[response(status = $status, description = $description)]
        pub(super) struct $name(#[allow(dead_code)] ErrorBody);
    };
}

refusal!(
    /// 403 for an operation of the `admins` group.
    AdminOnly, 403, "Admins only."
);
refusal!(
    /// 403 for an operation of the `admins` group (worded for users and accounts).
    NotAdmin, 403, "Not an admin."
);
refusal!(
    /// 400 for a request body that fails validation.
    InvalidInput, 400, "Invalid input."
);

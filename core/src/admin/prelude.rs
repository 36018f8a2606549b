//! What every resource module of the admin API uses: the extractors, the reply
//! helpers, the router and the error body of the documented refusals.

pub(super) use axum::{Json, extract::Path, http::StatusCode};
pub(super) use serde_json::{Value, json};
pub(super) use utoipa_axum::{router::OpenApiRouter, routes};

pub(super) use super::{
    Admin, AdminState, Body, Caller,
    authz::{authorize_account, authorize_store},
    reply::{Result, created},
};
pub(super) use crate::{api::error::ErrorBody, identity::Permission};

//! The admin API's wire types: every request body and response body of `/api/v1/...`,
//! one module per resource. The server's handlers ([`crate::admin`]) and the CLI both
//! use these, so the two cannot drift; each type derives `utoipa::ToSchema`, so the
//! OpenAPI document describes exactly what is sent.
//!
//! Records that are answered as stored (accounts, HSM connections, HYOK keys, the
//! credentials file) are re-exported from [`crate::model`] under their API names.

pub mod accounts;
pub mod audit;
pub mod connections;
pub mod credentials;
pub mod error;
pub mod jobs;
pub mod keys;
pub mod metrics;
pub mod nodes;
pub mod schedules;
pub mod session;
pub mod sources;
pub mod stores;
pub mod tokens;
pub mod users;

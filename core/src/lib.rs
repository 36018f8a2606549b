//! keyhold: a hold-your-own-key server for AWS KMS external key stores.
//!
//! The library behind the `keyhold` binary, one module per concern (see
//! `architecture.md`): [`config`], [`model`] (domain rules), [`store`] (durable state),
//! [`secrets`] (at-rest encryption), [`plugin`] (key-source libraries), [`reconcile`]
//! (config-declared objects), [`xks`] (the data plane), [`tls`], [`server`], [`app`].
#![forbid(unsafe_code)]
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

pub mod admin;
pub mod app;
pub mod audit;
pub mod auth;
pub mod config;
pub mod metrics;
pub mod model;
pub mod ops;
pub mod plugin;
pub mod reconcile;
pub mod secrets;
pub mod server;
pub mod store;
pub mod tls;
pub mod xks;

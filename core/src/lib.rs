//! keyhold: a hold-your-own-key server for AWS KMS external key stores.
//!
//! The library behind the `keyhold` binary, one module per concern (see
//! `architecture.md`): [`config`], [`model`] (domain rules), [`store`] (durable state; [`transfer`]: its export and import),
//! [`secrets`] (at-rest encryption), [`identity`] (admin users and tokens), [`admin`]
//! (the management API) with its wire types in [`api`] and its web [`console`], [`plugin`] (key-source libraries), [`reconcile`]
//! (config-declared objects), [`xks`] (the data plane), [`tls`], [`server`], [`app`].
#![forbid(unsafe_code)]
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

pub mod admin;
pub mod api;
pub mod app;
pub mod audit;
pub mod aws;
pub mod clock;
pub mod cluster;
pub mod config;
pub mod console;
#[doc(hidden)]
pub mod fuzzing;
pub mod identity;
pub mod logsafe;
pub mod metrics;
pub mod model;
pub mod ops;
pub mod plugin;
pub mod reconcile;
pub mod schedule;
pub mod secrets;
pub mod server;
pub mod store;
pub mod tls;
pub mod transfer;
pub mod xks;

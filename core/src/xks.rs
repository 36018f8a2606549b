//! The XKS data plane: what AWS KMS calls. A request goes through [`service`] top-down:
//! [`path`] and [`routing`] find the store, [`auth`] checks the signature ([`sigv4`]),
//! [`wire`] parses and validates the body, one module of [`ops`] runs the operation
//! against the store's key source, and [`error`] answers every refusal.

pub mod auth;
pub mod error;
pub mod health;
pub mod mtls;
pub mod ops;
pub mod path;
pub mod quota;
pub mod routing;
pub mod service;
pub mod sigv4;
pub mod wire;

pub use error::{XksError, XksErrorKind};
pub use ops::XksOp;
pub use routing::{KeyRoute, Routing, RoutingContext, Sources, StoreRoute};
pub use service::{XksService, XksSettings};

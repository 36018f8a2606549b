//! The XKS data plane: what AWS KMS calls.

pub mod error;
pub mod health;
pub mod path;
pub mod quota;
pub mod routing;
pub mod service;
pub mod sigv4;
pub mod wire;

pub use error::{XksError, XksErrorKind};
pub use routing::{KeyRoute, Routing, RoutingContext, Sources, StoreRoute};
pub use service::{XksService, XksSettings};

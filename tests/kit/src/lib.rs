//! keyhold's one test kit, shared by the end-to-end tests (`keyhold-tests`), the
//! benchmarks and the load tool (`keyhold-benches`) and the plugins' own tests:
//!
//! - [`bodies`]: XKS request bodies as AWS KMS sends them, and the Encrypt result;
//! - [`browser`]: headless chromium over WebDriver (the console's browser tests);
//! - [`sign`]: SigV4 signing with AWS's own `aws-sigv4` crate;
//! - [`client`]: an XKS client (HTTP/1.1 or HTTP/2, plain TCP or TLS, tamperable
//!   requests) and [`admin`]: a JSON client of the admin API;
//! - [`fixture`]: the conformance store (credentials, keys) and swappable key sources;
//! - [`pki`]: a test PKI and rustls client configurations;
//! - [`paths`]: where the build put the `keyhold` binary and the plugin libraries, and
//!   [`plugins`]: loading a plugin library as the host does;
//! - [`process`]: the real `keyhold` binary as a child process;
//! - [`luna`]: SoftHSM2 tokens for the PKCS#11 `luna` plugin;
//! - [`etcd`]: a throw-away etcd, and [`tcp_proxy`]: a forwarder a test can cut (one
//!   node's network partition).
//!
//! It depends on neither `keyhold` (core) nor a plugin crate, so every crate of the
//! workspace can take it as a dev-dependency without a cycle.

pub mod admin;
pub mod bodies;
pub mod browser;
pub mod client;
pub mod etcd;
pub mod fixture;
pub mod luna;
pub mod paths;
pub mod pki;
pub mod plugins;
pub mod process;
pub mod raw_http1;
pub mod sign;
pub mod tcp_proxy;

pub use bodies::Sealed;
pub use client::{Proto, RawRequest, Reply, Transport, XksClient};
pub use fixture::{Credential, SourceFixture};

/// A boxed error for transport failures.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

//! End-to-end test harness for keyhold: an in-process server on a temporary data
//! directory ([`server::TestServer`]), a SigV4-signing HTTP/1.1 and HTTP/2 client over
//! plain TCP or TLS ([`client::XksClient`]), request bodies ([`bodies`]), a test PKI
//! ([`pki`]) and the locations of the build's binaries and plugins ([`paths`]).
//!
//! The key source behind the fixture store is a [`fixture::SourceFixture`]: the default
//! is the software `ctm` plugin; another suite (e.g. Luna) passes its own fixture, or sets
//! `KEYHOLD_TEST_SOURCE_TOML`, and every test runs unchanged.

pub mod admin;
pub mod bodies;
pub mod cli;
pub mod client;
pub mod fixture;
pub mod luna;
pub mod paths;
pub mod pki;
pub mod process;
pub mod server;
pub mod sign;
pub mod suite;

pub use bodies::Sealed;
pub use client::{Proto, RawRequest, Reply, Transport, XksClient};
pub use fixture::{Credential, SourceFixture};
pub use server::{ServerBuilder, TestServer};

/// A boxed error for transport failures.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

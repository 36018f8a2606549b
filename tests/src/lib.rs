//! End-to-end test harness for keyhold: an in-process server on a temporary data
//! directory ([`server::TestServer`]), the `keyhold` admin CLI as a child process
//! ([`cli`]), the XKS suite run against any key source ([`suite`]) and clusters of
//! nodes on a 3-member etcd ([`cluster`]).
//!
//! Everything that does not need keyhold's own types comes from the shared test kit
//! (`keyhold-testkit`) and is re-exported here under the same names: the XKS and admin
//! clients, bodies, signing, fixtures, the test PKI, SoftHSM2 tokens, the build's paths
//! and the `keyhold` server process.
//!
//! The key source behind the fixture store is a [`SourceFixture`]: the default is the
//! software `ctm` plugin; another suite (e.g. Luna) passes its own fixture, or sets
//! `KEYHOLD_TEST_SOURCE_TOML`, and every test runs unchanged.

pub mod aws;
pub mod cli;
pub mod cluster;
pub mod console;
pub mod logs;
pub mod server;
pub mod suite;

pub use keyhold_testkit::{
    BoxError, Credential, Proto, RawRequest, Reply, Sealed, SourceFixture, Transport, XksClient,
    admin, bodies, client, etcd, fixture, luna, paths, pki, process, raw_http1, sign, tcp_proxy,
};
pub use server::{ServerBuilder, TestServer};

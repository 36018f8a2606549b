//! The four operations' successful shapes: CDIV, health (XKS and load balancer),
//! metadata, credentials changed without restart, and concurrency; against the suite's
//! default key source (`ctm`, or `KEYHOLD_TEST_SOURCE_TOML`). The bodies are in
//! `keyhold_tests::suite`, shared with the luna suite (tests/tests/luna.rs).

keyhold_tests::xks_suite!(keyhold_tests::SourceFixture::suite_default(); operations);

//! The XKS error table, row by row, with exact HTTP status, JSON `errorName` and
//! content type; and the size limits at and one past each boundary; against the suite's
//! default key source. The bodies are in `keyhold_tests::suite`, shared with the luna
//! suite (tests/tests/luna.rs).

keyhold_tests::xks_suite!(keyhold_tests::SourceFixture::suite_default(); errors);

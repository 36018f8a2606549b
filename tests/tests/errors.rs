//! The XKS error table, row by row, with exact HTTP status, JSON `errorName` and
//! content type; and the size limits at and one past each boundary; against the suite's
//! default key source. The bodies are in `keyhold_tests::suite`, shared with the luna
//! suite (tests/tests/luna.rs).

keyhold_tests::xks_suite!(
    keyhold_tests::SourceFixture::suite_default();
    validation_exceptions,
    invalid_state_for_blocked_store_blocked_key_and_disabled_key,
    invalid_ciphertext_exceptions,
    invalid_key_usage_exceptions,
    not_found_paths_methods_and_authentication,
    unsupported_operation_exceptions,
    size_limits_at_and_one_past,
);

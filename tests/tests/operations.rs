//! The four operations' successful shapes: CDIV, health (XKS and load balancer),
//! metadata, credentials changed without restart, and concurrency; against the suite's
//! default key source (`ctm`, or `KEYHOLD_TEST_SOURCE_TOML`). The bodies are in
//! `keyhold_tests::suite`, shared with the luna suite (tests/tests/luna.rs).

keyhold_tests::xks_suite!(
    keyhold_tests::SourceFixture::suite_default();
    encrypt_decrypt_round_trips_with_fresh_ivs,
    cdiv_is_sha256_of_aad_iv_ciphertext_tag,
    health_status_and_load_balancer_health,
    key_metadata_per_key,
    credentials_change_without_restart,
    concurrent_round_trips_over_several_connections,
);

//! The per-key AES-GCM encryption counters of the key sources (keyhold_sdk::invocations)
//! reach `/metrics`: after one encryption through XKS, the ctm key's reserved count
//! (one block) is reported as `keyhold_source_key_gcm_encryptions`.

use std::time::Duration;

use keyhold_tests::{RawRequest, SourceFixture, TestServer, Transport, fixture::KEY_ALL};

#[tokio::test(flavor = "multi_thread")]
async fn key_encryption_counts_are_exposed_as_metrics() {
    let server = TestServer::builder()
        .source(SourceFixture::ctm())
        .metrics()
        .start()
        .await;
    let c = server.client();
    c.encrypt_ok(KEY_ALL, b"counted", None).await;

    let addr = server.running.metrics_addr.expect("metrics listener");
    let conn = Transport::plain(addr).connect().await.expect("connect");
    let reply = tokio::time::timeout(
        Duration::from_secs(10),
        conn.send(&RawRequest::new("GET", "/metrics", "")),
    )
    .await
    .expect("metrics answer")
    .expect("metrics transport");
    assert_eq!(reply.status.as_u16(), 200);
    let text = String::from_utf8(reply.body.to_vec()).expect("UTF-8");
    let series = format!(
        "keyhold_source_key_gcm_encryptions{{source=\"ctm\",key=\"{KEY_ALL}\"}} {}",
        keyhold_sdk::invocations::BLOCK
    );
    assert!(
        text.lines().any(|l| l == series),
        "{series}\n--- metrics ---\n{text}"
    );
    assert!(text.contains("# TYPE keyhold_source_key_gcm_encryptions gauge"));
}

//! Plaintext is never logged: the server's tracing output, captured in-process at the
//! most verbose level, holds request ids but never a plaintext (raw or base64).
//!
//! This file holds a single test because it installs the process-wide subscriber.

use base64::{Engine, engine::general_purpose::STANDARD as B64};
use keyhold_tests::{TestServer, fixture::KEY_ALL};

#[tokio::test(flavor = "multi_thread")]
async fn plaintext_never_appears_in_logs() {
    let buffer = keyhold_tests::logs::CapturedLogs::install("trace");

    let server = TestServer::start_default().await;
    let c = server.client();
    let plaintext = b"TOP-SECRET-PLAINTEXT-5d1c0e";
    let sealed = c.encrypt_ok(KEY_ALL, plaintext, Some(b"aad")).await;
    assert_eq!(
        c.decrypt_ok(KEY_ALL, &sealed, Some(b"aad")).await,
        plaintext
    );
    // Failures log too: a usage refusal and a bad tag with the same plaintext around.
    c.encrypt("demo-decrypt-only", plaintext, None, true).await;
    let mut bad = sealed.clone();
    bad.tag[0] ^= 1;
    c.decrypt(KEY_ALL, &bad, Some(b"aad")).await;
    server.stop().await;

    let logs = buffer.text();
    assert!(
        logs.contains("kmsRequestId"),
        "request log lines are captured: {logs}"
    );
    assert!(logs.contains("InvalidCiphertextException"));
    let b64 = B64.encode(plaintext);
    for needle in [
        std::str::from_utf8(plaintext).expect("ascii"),
        b64.as_str(),
        // The base64 of the plaintext without padding, in case of re-encoding.
        b64.trim_end_matches('='),
    ] {
        assert!(!logs.contains(needle), "plaintext {needle:?} was logged");
    }
    // Secrets are not logged either.
    assert!(!logs.contains(&keyhold_tests::Credential::a().secret));
    assert!(!logs.contains(&keyhold_tests::Credential::b().secret));
}

//! Failed connections and proxy transport failures.

use std::time::Duration;

use aws_sdk_kms::types::ConnectionStateType;
use keyhold_testkit::{Credential, admin::expect_status, fixture::BASE};

use super::harness::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_connections_report_aws_error_codes() {
    let keyhold = Keyhold::start().await;
    let emu = start_emulator(emulator_config(&keyhold.ca_pem)).await;
    let kms = kms(&emu, ALICE, None);
    let store = create_store(&kms, "primary", &keyhold.endpoint(), BASE, &Credential::a())
        .await
        .expect("create");

    // The credential is removed at keyhold: the connection fails with INVALID_CREDENTIALS.
    let root = keyhold.root().await;
    let store_path = keyhold.store_path().await;
    let r = root
        .delete(&format!(
            "{store_path}/credentials/{}",
            Credential::a().access_key_id
        ))
        .await;
    expect_status(&r, 204);
    let (state, error, _) = connect(&kms, &store).await;
    assert_eq!(
        (state.as_str(), error.as_deref()),
        ("FAILED", Some("INVALID_CREDENTIALS"))
    );
    // AWS: a FAILED store must be disconnected before connecting again.
    let r = kms
        .connect_custom_key_store()
        .custom_key_store_id(&store)
        .send()
        .await;
    assert_eq!(code(&r.unwrap_err()), "CustomKeyStoreInvalidStateException");
    let (state, error, _) = disconnect(&kms, &store).await;
    assert_eq!((state.as_str(), error), ("DISCONNECTED", None));

    // Fix the credential (DISCONNECTED), connect, then the proxy goes away.
    kms.update_custom_key_store()
        .custom_key_store_id(&store)
        .xks_proxy_authentication_credential(proxy_credential(&Credential::b()))
        .send()
        .await
        .expect("update credential");
    assert_eq!(connect(&kms, &store).await.0, "CONNECTED");
    assert_eq!(disconnect(&kms, &store).await.0, "DISCONNECTED");
    drop(keyhold);
    let (state, error, _) = connect(&kms, &store).await;
    assert_eq!(
        (state.as_str(), error.as_deref()),
        ("FAILED", Some("XKS_PROXY_NOT_REACHABLE"))
    );
    let d = kms
        .describe_custom_key_stores()
        .custom_key_store_id(&store)
        .send()
        .await
        .expect("describe");
    assert_eq!(
        d.custom_key_stores()[0].connection_state(),
        Some(&ConnectionStateType::Failed)
    );
    emu.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_deadline_and_tls_trust() {
    // A "proxy" that accepts TCP connections and never answers: the deadline ends the call.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let silent_port = silent.local_addr().expect("addr").port();
    let holder = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = silent.accept().await {
            held.push(s);
        }
    });
    // A TLS server whose CA the emulator does not trust: another emulator.
    let other_ca = keyhold_testkit::pki::TestCa::new("untrusted CA");
    let issued = other_ca.server_cert();
    let mut other = emulator_config("");
    other.tls = Some(kms_emulator::TlsIdentity {
        cert_pem: issued.chain_pem.clone().into_bytes(),
        key_pem: issued.key_pem.clone().into_bytes(),
    });
    let untrusted = start_emulator(other).await;
    let untrusted_port = untrusted
        .endpoint()
        .rsplit(':')
        .next()
        .and_then(|p| p.parse::<u16>().ok())
        .expect("port");

    let trusted_ca = keyhold_testkit::pki::TestCa::new("trusted CA");
    let mut config = emulator_config(&trusted_ca.pem());
    config.xks_timeout = Duration::from_millis(200);
    let emu = start_emulator(config).await;
    let kms = kms(&emu, ALICE, None);

    let r = create_store(
        &kms,
        "silent",
        &format!("https://localhost:{silent_port}"),
        BASE,
        &Credential::a(),
    )
    .await;
    assert_eq!(r.unwrap_err(), "XksProxyUriUnreachableException");
    let last = emu.xks_calls().pop().expect("call");
    assert_eq!(
        (last.status, last.error.as_deref()),
        (None, Some("timeout"))
    );

    let r = create_store(
        &kms,
        "untrusted",
        &format!("https://localhost:{untrusted_port}"),
        BASE,
        &Credential::a(),
    )
    .await;
    assert_eq!(r.unwrap_err(), "XksProxyUriUnreachableException");
    let last = emu.xks_calls().pop().expect("call");
    assert!(
        last.error
            .as_deref()
            .unwrap_or_default()
            .starts_with("tls:"),
        "{last:?}"
    );
    assert!(
        kms.describe_custom_key_stores()
            .send()
            .await
            .expect("describe")
            .custom_key_stores()
            .is_empty()
    );

    holder.abort();
    untrusted.shutdown().await;
    emu.shutdown().await;
}

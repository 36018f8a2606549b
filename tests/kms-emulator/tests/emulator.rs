//! The KMS emulator driven by the real `aws-sdk-kms` client, with the real keyhold
//! binary as the XKS proxy.

#[path = "emulator/harness.rs"]
mod harness;

use std::time::Duration;

use aws_sdk_kms::{
    primitives::Blob,
    types::{ConnectionStateType, DataKeySpec, KeyState, OriginType, XksProxyConnectivityType},
};
use harness::*;
use keyhold_testkit::{
    Credential,
    admin::expect_status,
    fixture::{BASE, KEY_ALL, KEY_ENCRYPT_ONLY},
};
use serde_json::Value;

const VPC_SERVICE: &str = "com.amazonaws.vpce.eu-west-1.vpce-svc-0123456789abcdef0";

async fn create_store(
    client: &aws_sdk_kms::Client,
    name: &str,
    endpoint: &str,
    path: &str,
    cred: &Credential,
) -> Result<String, String> {
    client
        .create_custom_key_store()
        .custom_key_store_name(name)
        .custom_key_store_type(aws_sdk_kms::types::CustomKeyStoreType::ExternalKeyStore)
        .xks_proxy_connectivity(XksProxyConnectivityType::PublicEndpoint)
        .xks_proxy_uri_endpoint(endpoint)
        .xks_proxy_uri_path(path)
        .xks_proxy_authentication_credential(proxy_credential(cred))
        .send()
        .await
        .map(|o| o.custom_key_store_id().unwrap_or_default().to_string())
        .map_err(|e| code(&e))
}

async fn connect(
    client: &aws_sdk_kms::Client,
    store: &str,
) -> (String, Option<String>, Vec<String>) {
    client
        .connect_custom_key_store()
        .custom_key_store_id(store)
        .send()
        .await
        .expect("connect");
    settle(client, store).await
}

async fn disconnect(
    client: &aws_sdk_kms::Client,
    store: &str,
) -> (String, Option<String>, Vec<String>) {
    client
        .disconnect_custom_key_store()
        .custom_key_store_id(store)
        .send()
        .await
        .expect("disconnect");
    settle(client, store).await
}

async fn create_key(
    client: &aws_sdk_kms::Client,
    store: &str,
    xks_key: &str,
) -> Result<String, String> {
    client
        .create_key()
        .origin(OriginType::ExternalKeyStore)
        .custom_key_store_id(store)
        .xks_key_id(xks_key)
        .description("test key")
        .send()
        .await
        .map(|o| {
            o.key_metadata()
                .map(|m| m.key_id().to_string())
                .unwrap_or_default()
        })
        .map_err(|e| code(&e))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn custom_key_store_lifecycle_follows_aws_rules() {
    let keyhold = Keyhold::start().await;
    let mut config = emulator_config(&keyhold.ca_pem);
    // Long enough that the first describe after connect/disconnect sees the transient state.
    config.transition_delay = Duration::from_millis(800);
    let emu = start_emulator(config).await;
    let kms = kms(&emu, ALICE, None);
    let endpoint = keyhold.endpoint();

    // Create: a health check with kmsOperation CreateCustomKeyStore, then DISCONNECTED.
    let store = create_store(&kms, "primary", &endpoint, BASE, &Credential::a())
        .await
        .expect("create");
    assert!(store.starts_with("cks-"), "{store}");
    let health = emu.xks_calls().pop().expect("a proxy call");
    assert_eq!(health.operation, "GetHealthStatus");
    assert_eq!(health.kms_operation, "CreateCustomKeyStore");
    assert_eq!(health.uri, format!("{endpoint}{BASE}/health"));
    assert_eq!(health.status, Some(200));
    assert!(!health.kms_request_id.is_empty());
    let (state, error, _) = settle(&kms, &store).await;
    assert_eq!((state.as_str(), error), ("DISCONNECTED", None));

    // AWS's uniqueness rules and proxy failures; nothing is left behind.
    let dup = create_store(
        &kms,
        "primary",
        &endpoint,
        "/other/kms/xks/v1",
        &Credential::a(),
    )
    .await;
    assert_eq!(dup.unwrap_err(), "CustomKeyStoreNameInUseException");
    let dup = create_store(&kms, "second", &endpoint, BASE, &Credential::a()).await;
    assert_eq!(dup.unwrap_err(), "XksProxyUriInUseException");
    let wrong = Credential::new(
        "AAAAAAAAAAAAAAAAAAAAAAAAAA",
        "R2waUCZNy/ulj/7eURO1g5oc8XXokuDrR53OzOURNaX=",
    );
    let bad = create_store(
        &kms,
        "bad-cred",
        &format!("https://127.0.0.1:{}", keyhold.xks.port()),
        BASE,
        &wrong,
    )
    .await;
    assert_eq!(
        bad.unwrap_err(),
        "XksProxyIncorrectAuthenticationCredentialException"
    );
    let dead = format!("https://localhost:{}", keyhold_testkit::paths::free_port());
    let bad = create_store(&kms, "dead", &dead, BASE, &Credential::a()).await;
    assert_eq!(bad.unwrap_err(), "XksProxyUriUnreachableException");
    let bad = create_store(
        &kms,
        "bad-path",
        &format!("https://127.0.0.1:{}", keyhold.xks.port()),
        "/nope/kms/xks/v1",
        &Credential::a(),
    )
    .await;
    assert_eq!(bad.unwrap_err(), "XksProxyInvalidConfigurationException");
    let bad = create_store(
        &kms,
        "bad-endpoint",
        "http://localhost:1",
        BASE,
        &Credential::a(),
    )
    .await;
    assert_eq!(bad.unwrap_err(), "ValidationException");
    let all = kms
        .describe_custom_key_stores()
        .send()
        .await
        .expect("describe all");
    assert_eq!(
        all.custom_key_stores().len(),
        1,
        "failed creations leave nothing"
    );

    // VPC connectivity needs its service name; a VPC store is reached at its endpoint.
    let vpc_endpoint = format!("https://127.0.0.1:{}", keyhold.xks.port());
    let no_name = kms
        .create_custom_key_store()
        .custom_key_store_name("vpc")
        .custom_key_store_type(aws_sdk_kms::types::CustomKeyStoreType::ExternalKeyStore)
        .xks_proxy_connectivity(XksProxyConnectivityType::VpcEndpointService)
        .xks_proxy_uri_endpoint(&vpc_endpoint)
        .xks_proxy_uri_path(BASE)
        .xks_proxy_authentication_credential(proxy_credential(&Credential::b()))
        .send()
        .await;
    assert_eq!(code(&no_name.unwrap_err()), "ValidationException");
    let vpc = kms
        .create_custom_key_store()
        .custom_key_store_name("vpc")
        .custom_key_store_type(aws_sdk_kms::types::CustomKeyStoreType::ExternalKeyStore)
        .xks_proxy_connectivity(XksProxyConnectivityType::VpcEndpointService)
        .xks_proxy_uri_endpoint(&vpc_endpoint)
        .xks_proxy_uri_path(BASE)
        .xks_proxy_vpc_endpoint_service_name(VPC_SERVICE)
        .xks_proxy_authentication_credential(proxy_credential(&Credential::b()))
        .send()
        .await
        .expect("VPC store")
        .custom_key_store_id()
        .unwrap_or_default()
        .to_string();

    // Describe by id, by name, and page through all.
    let by_name = kms
        .describe_custom_key_stores()
        .custom_key_store_name("vpc")
        .send()
        .await
        .expect("by name");
    let e = &by_name.custom_key_stores()[0];
    assert_eq!(e.custom_key_store_id(), Some(vpc.as_str()));
    let proxy = e.xks_proxy_configuration().expect("proxy configuration");
    assert_eq!(
        proxy.connectivity(),
        Some(&XksProxyConnectivityType::VpcEndpointService)
    );
    assert_eq!(proxy.vpc_endpoint_service_name(), Some(VPC_SERVICE));
    assert_eq!(
        proxy.access_key_id(),
        Some(Credential::b().access_key_id.as_str())
    );
    let page1 = kms
        .describe_custom_key_stores()
        .limit(1)
        .send()
        .await
        .expect("page 1");
    assert!(page1.truncated());
    let page2 = kms
        .describe_custom_key_stores()
        .limit(1)
        .marker(page1.next_marker().expect("marker"))
        .send()
        .await
        .expect("page 2");
    assert!(!page2.truncated());
    assert_eq!(
        page2.custom_key_stores()[0].custom_key_store_id(),
        Some(vpc.as_str())
    );
    let missing = kms
        .describe_custom_key_stores()
        .custom_key_store_id("cks-00000000000000000")
        .send()
        .await;
    assert_eq!(
        code(&missing.unwrap_err()),
        "CustomKeyStoreNotFoundException"
    );
    // A second VPC store cannot share the endpoint.
    let shared = kms
        .create_custom_key_store()
        .custom_key_store_name("vpc-2")
        .custom_key_store_type(aws_sdk_kms::types::CustomKeyStoreType::ExternalKeyStore)
        .xks_proxy_connectivity(XksProxyConnectivityType::VpcEndpointService)
        .xks_proxy_uri_endpoint(&vpc_endpoint)
        .xks_proxy_uri_path("/other/kms/xks/v1")
        .xks_proxy_vpc_endpoint_service_name(
            "com.amazonaws.vpce.eu-west-1.vpce-svc-0123456789abcdef1",
        )
        .xks_proxy_authentication_credential(proxy_credential(&Credential::b()))
        .send()
        .await;
    assert_eq!(
        code(&shared.unwrap_err()),
        "XksProxyUriEndpointInUseException"
    );

    // Keys only in CONNECTED stores; disconnect only what is connected.
    assert_eq!(
        create_key(&kms, &store, KEY_ALL).await.unwrap_err(),
        "CustomKeyStoreInvalidStateException"
    );
    let r = kms
        .disconnect_custom_key_store()
        .custom_key_store_id(&store)
        .send()
        .await;
    assert_eq!(code(&r.unwrap_err()), "CustomKeyStoreInvalidStateException");

    // Connect: CONNECTING, then a health check (kmsOperation ConnectCustomKeyStore), CONNECTED.
    let (state, error, seen) = connect(&kms, &store).await;
    assert_eq!((state.as_str(), error), ("CONNECTED", None));
    assert_eq!(seen, ["CONNECTING", "CONNECTED"]);
    let last = emu.xks_calls().pop().expect("call");
    assert_eq!(last.kms_operation, "ConnectCustomKeyStore");
    kms.connect_custom_key_store()
        .custom_key_store_id(&store)
        .send()
        .await
        .expect("connect is a no-op when connected");
    let (vpc_state, _, _) = connect(&kms, &vpc).await;
    assert_eq!(vpc_state, "CONNECTED");

    // While CONNECTED: name and credential change (the credential is checked first,
    // kmsOperation UpdateCustomKeyStore); the endpoint needs DISCONNECTED.
    kms.update_custom_key_store()
        .custom_key_store_id(&store)
        .new_custom_key_store_name("renamed")
        .xks_proxy_authentication_credential(proxy_credential(&Credential::b()))
        .send()
        .await
        .expect("update while connected");
    let last = emu.xks_calls().pop().expect("call");
    assert_eq!(
        (last.kms_operation.as_str(), last.access_key_id.as_str()),
        (
            "UpdateCustomKeyStore",
            Credential::b().access_key_id.as_str()
        )
    );
    let r = kms
        .update_custom_key_store()
        .custom_key_store_id(&store)
        .xks_proxy_uri_endpoint(&dead)
        .send()
        .await;
    assert_eq!(code(&r.unwrap_err()), "CustomKeyStoreInvalidStateException");
    let r = kms
        .update_custom_key_store()
        .custom_key_store_id(&store)
        .xks_proxy_authentication_credential(proxy_credential(&wrong))
        .send()
        .await;
    assert_eq!(
        code(&r.unwrap_err()),
        "XksProxyIncorrectAuthenticationCredentialException"
    );
    let d = kms
        .describe_custom_key_stores()
        .custom_key_store_name("renamed")
        .send()
        .await
        .expect("renamed");
    let proxy = d.custom_key_stores()[0]
        .xks_proxy_configuration()
        .expect("proxy");
    assert_eq!(
        proxy.access_key_id(),
        Some(Credential::b().access_key_id.as_str()),
        "a refused update changes nothing"
    );

    // Delete: only DISCONNECTED and without keys, pending deletion included.
    let key = create_key(&kms, &store, KEY_ALL).await.expect("key");
    let r = kms
        .delete_custom_key_store()
        .custom_key_store_id(&store)
        .send()
        .await;
    assert_eq!(code(&r.unwrap_err()), "CustomKeyStoreInvalidStateException");
    let (state, _, seen) = disconnect(&kms, &store).await;
    assert_eq!(state, "DISCONNECTED");
    assert_eq!(seen, ["DISCONNECTING", "DISCONNECTED"]);
    let r = kms
        .delete_custom_key_store()
        .custom_key_store_id(&store)
        .send()
        .await;
    assert_eq!(code(&r.unwrap_err()), "CustomKeyStoreHasCMKsException");
    kms.schedule_key_deletion()
        .key_id(&key)
        .pending_window_in_days(7)
        .send()
        .await
        .expect("schedule");
    let r = kms
        .delete_custom_key_store()
        .custom_key_store_id(&store)
        .send()
        .await;
    assert_eq!(code(&r.unwrap_err()), "CustomKeyStoreHasCMKsException");
    emu.purge_pending_deletions();
    kms.delete_custom_key_store()
        .custom_key_store_id(&store)
        .send()
        .await
        .expect("delete");
    let r = kms
        .describe_custom_key_stores()
        .custom_key_store_id(&store)
        .send()
        .await;
    assert_eq!(code(&r.unwrap_err()), "CustomKeyStoreNotFoundException");
    emu.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_and_double_encryption_through_keyhold() {
    let keyhold = Keyhold::start().await;
    let emu = start_emulator(emulator_config(&keyhold.ca_pem)).await;
    let kms = kms(&emu, ALICE, None);
    let store = create_store(&kms, "primary", &keyhold.endpoint(), BASE, &Credential::a())
        .await
        .expect("create");
    assert_eq!(connect(&kms, &store).await.0, "CONNECTED");

    // CreateKey checks the external key with GetKeyMetadata.
    let created = kms
        .create_key()
        .origin(OriginType::ExternalKeyStore)
        .custom_key_store_id(&store)
        .xks_key_id(KEY_ALL)
        .send()
        .await
        .expect("create key");
    let meta = created.key_metadata().expect("metadata");
    assert_eq!(meta.origin(), Some(&OriginType::ExternalKeyStore));
    assert_eq!(meta.key_state(), Some(&KeyState::Enabled));
    assert_eq!(meta.custom_key_store_id(), Some(store.as_str()));
    assert_eq!(
        meta.xks_key_configuration().and_then(|x| x.id()),
        Some(KEY_ALL)
    );
    let key = meta.key_id().to_string();
    let arn = meta.arn().unwrap_or_default().to_string();
    assert_eq!(arn, format!("arn:aws:kms:{REGION}:{ACCOUNT}:key/{key}"));
    let last = emu.xks_calls().pop().expect("call");
    assert_eq!(
        (last.operation.as_str(), last.kms_operation.as_str()),
        ("GetKeyMetadata", "CreateKey")
    );
    assert_eq!(
        last.aws_principal_arn,
        format!("arn:aws:iam::{ACCOUNT}:user/alice")
    );
    assert_eq!(
        create_key(&kms, &store, KEY_ALL).await.unwrap_err(),
        "XksKeyAlreadyInUseException"
    );
    assert_eq!(
        create_key(&kms, &store, KEY_ENCRYPT_ONLY)
            .await
            .unwrap_err(),
        "XksKeyInvalidConfigurationException"
    );
    assert_eq!(
        create_key(&kms, &store, KEY_DISABLED).await.unwrap_err(),
        "XksKeyInvalidConfigurationException"
    );
    assert_eq!(
        create_key(&kms, &store, "no-such-key").await.unwrap_err(),
        "XksKeyNotFoundException"
    );
    let key2 = create_key(&kms, &store, KEY_2).await.expect("second key");

    // GenerateDataKey + Decrypt, with an encryption context.
    let dk = kms
        .generate_data_key()
        .key_id(&key)
        .key_spec(DataKeySpec::Aes256)
        .encryption_context("purpose", "test")
        .send()
        .await
        .expect("generate data key");
    let plain = dk.plaintext().expect("plaintext").as_ref().to_vec();
    assert_eq!(plain.len(), 32);
    let blob = dk.ciphertext_blob().expect("blob").as_ref().to_vec();
    let back = kms
        .decrypt()
        .ciphertext_blob(Blob::new(blob.clone()))
        .encryption_context("purpose", "test")
        .send()
        .await
        .expect("decrypt");
    assert_eq!(
        back.plaintext().expect("plaintext").as_ref(),
        plain.as_slice()
    );
    assert_eq!(back.key_id(), Some(arn.as_str()));
    let r = kms
        .decrypt()
        .ciphertext_blob(Blob::new(blob.clone()))
        .send()
        .await;
    assert_eq!(
        code(&r.unwrap_err()),
        "KMSInvalidStateException",
        "the encryption context is bound"
    );
    let n = kms
        .generate_data_key()
        .key_id(&key)
        .number_of_bytes(7)
        .send()
        .await
        .expect("7 bytes");
    assert_eq!(n.plaintext().expect("plaintext").as_ref().len(), 7);
    let r = kms.generate_data_key().key_id(&key).send().await;
    assert_eq!(code(&r.unwrap_err()), "ValidationException");

    // Encrypt, ReEncrypt to the other key, Decrypt.
    let sealed = kms
        .encrypt()
        .key_id(&key)
        .plaintext(Blob::new(b"hello".to_vec()))
        .send()
        .await
        .expect("encrypt");
    let sealed = sealed.ciphertext_blob().expect("blob").as_ref().to_vec();
    let moved = kms
        .re_encrypt()
        .ciphertext_blob(Blob::new(sealed.clone()))
        .destination_key_id(&key2)
        .send()
        .await
        .expect("re-encrypt");
    assert_eq!(moved.source_key_id(), Some(arn.as_str()));
    let moved = moved.ciphertext_blob().expect("blob").as_ref().to_vec();
    let back = kms
        .decrypt()
        .ciphertext_blob(Blob::new(moved.clone()))
        .send()
        .await
        .expect("decrypt");
    assert_eq!(back.plaintext().expect("plaintext").as_ref(), b"hello");
    let r = kms
        .decrypt()
        .ciphertext_blob(Blob::new(moved))
        .key_id(&key)
        .send()
        .await;
    assert_eq!(code(&r.unwrap_err()), "IncorrectKeyException");

    // Each proxy call names the KMS operation, key and principal; CDIV was requested.
    let ops: Vec<(String, String)> = emu
        .xks_calls()
        .into_iter()
        .filter(|c| c.operation == "Encrypt" || c.operation == "Decrypt")
        .map(|c| (c.operation, c.kms_operation))
        .collect();
    let expect = |o: &str, k: &str| (o.to_string(), k.to_string());
    for pair in [
        expect("Encrypt", "GenerateDataKey"),
        expect("Decrypt", "Decrypt"),
        expect("Encrypt", "Encrypt"),
        expect("Decrypt", "ReEncrypt"),
        expect("Encrypt", "ReEncrypt"),
    ] {
        assert!(ops.contains(&pair), "{pair:?} in {ops:?}");
    }

    // Tampering: the proxy's ciphertext (last byte) or the blob's structure.
    let mut tampered = sealed.clone();
    let last = tampered.len() - 1;
    tampered[last] ^= 1;
    let r = kms
        .decrypt()
        .ciphertext_blob(Blob::new(tampered))
        .send()
        .await;
    assert_eq!(code(&r.unwrap_err()), "KMSInvalidStateException");
    let r = kms
        .decrypt()
        .ciphertext_blob(Blob::new(b"not a ciphertext".to_vec()))
        .send()
        .await;
    assert_eq!(code(&r.unwrap_err()), "InvalidCiphertextException");

    // Blocked at keyhold: KMSInvalidStateException (proxy InvalidStateException).
    let root = keyhold.root().await;
    let store_path = keyhold.store_path().await;
    let encrypt = || {
        kms.encrypt()
            .key_id(&key)
            .plaintext(Blob::new(b"x".to_vec()))
            .send()
    };
    expect_status(
        &root
            .post(&format!("{store_path}/keys/{KEY_ALL}/block"), &empty())
            .await,
        200,
    );
    assert_eq!(
        code(&encrypt().await.unwrap_err()),
        "KMSInvalidStateException"
    );
    expect_status(
        &root
            .post(&format!("{store_path}/keys/{KEY_ALL}/unblock"), &empty())
            .await,
        200,
    );
    encrypt().await.expect("unblocked key");
    expect_status(
        &root.post(&format!("{store_path}/block"), &empty()).await,
        200,
    );
    assert_eq!(
        code(&encrypt().await.unwrap_err()),
        "KMSInvalidStateException"
    );
    expect_status(
        &root.post(&format!("{store_path}/unblock"), &empty()).await,
        200,
    );
    let back = kms
        .decrypt()
        .ciphertext_blob(Blob::new(sealed.clone()))
        .send()
        .await
        .expect("decrypt after unblock");
    assert_eq!(back.plaintext().expect("plaintext").as_ref(), b"hello");

    // DescribeKey, ListKeys with paging.
    let d = kms
        .describe_key()
        .key_id(&arn)
        .send()
        .await
        .expect("describe by ARN");
    assert_eq!(d.key_metadata().map(|m| m.key_id()), Some(key.as_str()));
    let r = kms.describe_key().key_id("alias/nope").send().await;
    assert_eq!(code(&r.unwrap_err()), "NotFoundException");
    let p1 = kms.list_keys().limit(1).send().await.expect("page 1");
    assert!(p1.truncated());
    let p2 = kms
        .list_keys()
        .limit(1)
        .marker(p1.next_marker().expect("marker"))
        .send()
        .await
        .expect("page 2");
    let ids: Vec<&str> = p1
        .keys()
        .iter()
        .chain(p2.keys())
        .filter_map(|k| k.key_id())
        .collect();
    assert_eq!(ids, [key.as_str(), key2.as_str()]);

    // Deletion window 7..30; a key pending deletion cannot be used; cancel.
    let r = kms
        .schedule_key_deletion()
        .key_id(&key2)
        .pending_window_in_days(6)
        .send()
        .await;
    assert_eq!(code(&r.unwrap_err()), "ValidationException");
    let s = kms
        .schedule_key_deletion()
        .key_id(&key2)
        .send()
        .await
        .expect("schedule");
    assert_eq!(s.pending_window_in_days(), Some(30));
    assert_eq!(s.key_state(), Some(&KeyState::PendingDeletion));
    let r = kms
        .encrypt()
        .key_id(&key2)
        .plaintext(Blob::new(b"x".to_vec()))
        .send()
        .await;
    assert_eq!(code(&r.unwrap_err()), "KMSInvalidStateException");
    kms.cancel_key_deletion()
        .key_id(&key2)
        .send()
        .await
        .expect("cancel");

    // Disconnected store: keys Unavailable, crypto refused.
    assert_eq!(disconnect(&kms, &store).await.0, "DISCONNECTED");
    let d = kms
        .describe_key()
        .key_id(&key)
        .send()
        .await
        .expect("describe");
    assert_eq!(
        d.key_metadata().and_then(|m| m.key_state()),
        Some(&KeyState::Unavailable)
    );
    assert_eq!(
        code(&encrypt().await.unwrap_err()),
        "KMSInvalidStateException"
    );
    emu.shutdown().await;
}

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
async fn signatures_sts_and_throttling() {
    let emu = start_emulator(emulator_config("")).await;

    // Wrong secret, unknown key, no such operation, malformed JSON.
    let r = kms(&emu, (ALICE.0, "wrong-secret"), None)
        .list_keys()
        .send()
        .await;
    assert_eq!(code(&r.unwrap_err()), "InvalidSignatureException");
    let r = kms(&emu, ("AKIAUNKNOWN000000000", "x"), None)
        .list_keys()
        .send()
        .await;
    assert_eq!(code(&r.unwrap_err()), "UnrecognizedClientException");
    let r = kms_raw(&emu, ALICE, "Bogus", b"{}").await;
    assert_eq!(r.status.as_u16(), 400);
    assert_eq!(r.json()["__type"], "UnknownOperationException");
    let r = kms_raw(&emu, ALICE, "ListKeys", b"{not json").await;
    assert_eq!(r.json()["__type"], "ValidationException");
    let r = kms_raw(&emu, ALICE, "ListKeys", br#"{"Limit": 0}"#).await;
    let body: Value = r.json();
    assert_eq!(body["__type"], "ValidationException");
    assert!(
        body["message"]
            .as_str()
            .unwrap_or_default()
            .contains("limit"),
        "{body}"
    );

    // STS: the signing region is recorded; AssumeRole only for trusted users.
    let r = sts(
        &emu,
        ALICE,
        "us-east-1",
        "Action=GetCallerIdentity&Version=2011-06-15",
    )
    .await;
    assert_eq!(r.status.as_u16(), 200);
    let text = String::from_utf8_lossy(&r.body).to_string();
    assert_eq!(
        xml_text(&text, "Arn"),
        Some(format!("arn:aws:iam::{ACCOUNT}:user/alice").as_str())
    );
    let form = format!(
        "Action=AssumeRole&Version=2011-06-15&RoleArn={}&RoleSessionName=keyhold",
        ROLE.replace(':', "%3A").replace('/', "%2F")
    );
    let r = sts(&emu, BOB, REGION, &form).await;
    assert_eq!(r.status.as_u16(), 403);
    let text = String::from_utf8_lossy(&r.body).to_string();
    assert_eq!(xml_text(&text, "Code"), Some("AccessDenied"));
    let r = sts(&emu, ALICE, REGION, &form).await;
    assert_eq!(r.status.as_u16(), 200);
    let text = String::from_utf8_lossy(&r.body).to_string();
    let akid = xml_text(&text, "AccessKeyId")
        .expect("AccessKeyId")
        .to_string();
    let secret = xml_text(&text, "SecretAccessKey")
        .expect("secret")
        .to_string();
    let token = xml_text(&text, "SessionToken").expect("token").to_string();
    assert!(akid.starts_with("ASIA"), "{akid}");
    assert!(xml_text(&text, "Expiration").is_some());
    assert_eq!(
        xml_text(&text, "Arn"),
        Some(format!("arn:aws:sts::{ACCOUNT}:assumed-role/keyhold-manager/keyhold").as_str())
    );
    kms(&emu, (&akid, &secret), Some(&token))
        .list_keys()
        .send()
        .await
        .expect("temporary credentials work");
    let r = kms(&emu, (&akid, &secret), None).list_keys().send().await;
    assert!(r.is_err(), "temporary credentials need their session token");
    let sts_calls: Vec<(String, String, Option<String>)> = emu
        .calls()
        .into_iter()
        .filter(|c| c.service == "sts")
        .map(|c| (c.operation, c.signing_region, c.error_code))
        .collect();
    assert_eq!(
        sts_calls,
        [
            (
                "GetCallerIdentity".to_string(),
                "us-east-1".to_string(),
                None
            ),
            (
                "AssumeRole".to_string(),
                REGION.to_string(),
                Some("AccessDenied".to_string())
            ),
            ("AssumeRole".to_string(), REGION.to_string(), None),
        ]
    );

    // Throttling: the SDK retries; with too few attempts it reports ThrottlingException.
    emu.throttle_next(2);
    kms_with_retries(&emu, ALICE, None, 4)
        .list_keys()
        .send()
        .await
        .expect("retried");
    let tail: Vec<Option<String>> = emu
        .calls()
        .iter()
        .rev()
        .take(3)
        .map(|c| c.error_code.clone())
        .collect();
    assert_eq!(
        tail,
        [
            None,
            Some("ThrottlingException".into()),
            Some("ThrottlingException".into())
        ]
    );
    emu.throttle_next(5);
    let r = kms_with_retries(&emu, ALICE, None, 2)
        .list_keys()
        .send()
        .await;
    assert_eq!(code(&r.unwrap_err()), "ThrottlingException");
    emu.throttle_next(0);

    // After shutdown, connections are refused.
    let endpoint = emu.endpoint();
    emu.shutdown().await;
    let addr = endpoint.trim_start_matches("http://").to_string();
    assert!(std::net::TcpStream::connect(addr).is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serves_https_with_its_identity() {
    let ca = keyhold_testkit::pki::TestCa::new("emulator listener CA");
    let issued = ca.server_cert();
    let mut config = emulator_config("");
    config.tls = Some(kms_emulator::TlsIdentity {
        cert_pem: issued.chain_pem.clone().into_bytes(),
        key_pem: issued.key_pem.clone().into_bytes(),
    });
    let emu = start_emulator(config).await;
    let endpoint = emu.endpoint();
    assert!(endpoint.starts_with("https://127.0.0.1:"), "{endpoint}");
    let addr = endpoint
        .trim_start_matches("https://")
        .parse()
        .expect("addr");
    let transport = keyhold_testkit::Transport::https(addr, &ca.pem());
    let r = kms_raw_via(&transport, ALICE, "ListKeys", b"{}").await;
    assert_eq!(r.status.as_u16(), 200, "{:?}", r.body);
    assert_eq!(r.json()["Keys"], serde_json::json!([]));
    let r = kms_raw_via(&transport, (ALICE.0, "wrong"), "ListKeys", b"{}").await;
    assert_eq!(r.json()["__type"], "InvalidSignatureException");
    assert_eq!(
        r.headers
            .get("x-amzn-errortype")
            .and_then(|v| v.to_str().ok()),
        Some("InvalidSignatureException")
    );
    emu.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_prints_its_endpoint_and_serves() {
    use std::io::BufRead;
    let port = keyhold_testkit::paths::free_port();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_kms-emulator"))
        .args([
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--region",
            REGION,
            "--account",
            ACCOUNT,
        ])
        .args(["--user", &format!("alice:{}:{}", ALICE.0, ALICE.1)])
        .args(["--role", &format!("{ROLE}={}", ALICE.0)])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn kms-emulator");
    let stdout = child.stdout.take().expect("stdout");
    let mut line = String::new();
    std::io::BufReader::new(stdout)
        .read_line(&mut line)
        .expect("endpoint line");
    assert_eq!(line.trim(), format!("http://127.0.0.1:{port}"));
    let addr = format!("127.0.0.1:{port}").parse().expect("addr");
    let r = kms_raw_via(
        &keyhold_testkit::Transport::plain(addr),
        ALICE,
        "ListKeys",
        b"{}",
    )
    .await;
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(r.status.as_u16(), 200);

    let out = std::process::Command::new(env!("CARGO_BIN_EXE_kms-emulator"))
        .args(["--user", "no-colons"])
        .output()
        .expect("run kms-emulator");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("NAME:AKID:SECRET"));
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

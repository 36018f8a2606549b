//! Custom key stores: creation, AWS's rules, connection states, update, delete.

use std::time::Duration;

use aws_sdk_kms::types::XksProxyConnectivityType;
use keyhold_testkit::{
    Credential,
    fixture::{BASE, KEY_ALL},
};

use super::harness::*;

const VPC_SERVICE: &str = "com.amazonaws.vpce.eu-west-1.vpce-svc-0123456789abcdef0";

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

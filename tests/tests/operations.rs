//! The four operations' successful shapes: CDIV, health (XKS and load balancer),
//! metadata, credentials changed without restart, and concurrency.

use std::collections::HashSet;

use keyhold_tests::{
    Credential, Proto, RawRequest, Sealed, TestServer,
    client::Transport,
    fixture::{KEY_ALL, KEY_DECRYPT_ONLY, KEY_ENCRYPT_ONLY, KEY_NO_CRYPTO, LB_HEALTH},
};

#[tokio::test(flavor = "multi_thread")]
async fn encrypt_decrypt_round_trips_with_fresh_ivs() {
    let server = TestServer::start_default().await;
    let c = server.client();
    let a = c.encrypt_ok(KEY_ALL, b"same plaintext", Some(b"aad")).await;
    let b = c.encrypt_ok(KEY_ALL, b"same plaintext", Some(b"aad")).await;
    assert_eq!(a.iv.len(), 12);
    assert_eq!(a.tag.len(), 16);
    assert_eq!(a.ciphertext.len(), b"same plaintext".len());
    assert_ne!(a.iv, b.iv, "every encryption uses a fresh IV");
    assert_ne!(a.ciphertext, b.ciphertext);
    assert_ne!(a.ciphertext, b"same plaintext");
    assert_eq!(
        c.decrypt_ok(KEY_ALL, &a, Some(b"aad")).await,
        b"same plaintext"
    );
    assert_eq!(
        c.decrypt_ok(KEY_ALL, &b, Some(b"aad")).await,
        b"same plaintext"
    );
    // demo-decrypt-only cannot encrypt, but the encrypt-only key's output is not
    // decryptable by another key: keys are distinct.
    let e = c.encrypt_ok(KEY_ENCRYPT_ONLY, b"k", None).await;
    c.decrypt(KEY_ALL, &e, None)
        .await
        .assert_error(400, "InvalidCiphertextException");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn cdiv_is_sha256_of_aad_iv_ciphertext_tag() {
    let server = TestServer::start_default().await;
    let c = server.client();
    for aad in [None, Some(&b"project=nile,department=marketing"[..])] {
        let json = c.encrypt(KEY_ALL, b"integrity", aad, true).await.ok_json();
        let sealed = Sealed::from_json(&json);
        let cdiv = sealed.cdiv.clone().expect("CDIV present when asked for");
        assert_eq!(cdiv, sealed.expected_cdiv(aad.unwrap_or(b"")));
        assert_eq!(c.decrypt_ok(KEY_ALL, &sealed, aad).await, b"integrity");
    }
    let json = c
        .encrypt(KEY_ALL, b"integrity", None, false)
        .await
        .ok_json();
    assert!(
        json.get("ciphertextDataIntegrityValue").is_none(),
        "no CDIV unless asked: {json}"
    );
    assert!(json.get("ciphertextMetadata").is_none());
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn health_status_and_load_balancer_health() {
    let server = TestServer::start_default().await;
    let c = server.client();
    let h = c.health().await.ok_json();
    assert!(h["xksProxyFleetSize"].as_u64().expect("fleet size") > 0);
    assert!(!h["xksProxyVendor"].as_str().expect("vendor").is_empty());
    assert!(!h["xksProxyModel"].as_str().expect("model").is_empty());
    assert!(!h["ekmVendor"].as_str().expect("ekm vendor").is_empty());
    let fleet = h["ekmFleetDetails"].as_array().expect("fleet details");
    assert!((1..=10).contains(&fleet.len()), "{h}");
    for node in fleet {
        assert!(
            node["id"].is_string() && node["model"].is_string(),
            "{node}"
        );
        assert_eq!(node["healthStatus"], "ACTIVE", "{h}");
    }
    // Health tolerates a body without requestMetadata (never ValidationException).
    let req = c.sign(RawRequest::post_json(
        &c.op_path("/health"),
        &serde_json::json!({}),
    ));
    c.send(&req).await.ok_json();

    // The load balancer's plain GET.
    let lb = c.send(&RawRequest::new("GET", LB_HEALTH, "")).await;
    assert_eq!(lb.status.as_u16(), 200);
    assert_eq!(lb.json()["status"], "ACTIVE");

    server.set_store_blocked(true).await;
    c.health().await.assert_error(400, "InvalidStateException");
    let lb = c.send(&RawRequest::new("GET", LB_HEALTH, "")).await;
    assert_eq!(lb.status.as_u16(), 503);
    assert_ne!(lb.json()["status"], "ACTIVE");
    server.set_store_blocked(false).await;
    let lb = c.send(&RawRequest::new("GET", LB_HEALTH, "")).await;
    assert_eq!(lb.status.as_u16(), 200);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn key_metadata_per_key() {
    let server = TestServer::start_default().await;
    let c = server.client();
    let usage = |v: &serde_json::Value| -> HashSet<String> {
        v["keyUsage"]
            .as_array()
            .expect("keyUsage")
            .iter()
            .map(|u| u.as_str().expect("usage").to_string())
            .collect()
    };
    let set = |items: &[&str]| -> HashSet<String> { items.iter().map(|s| s.to_string()).collect() };
    for (key, expected) in [
        (KEY_ALL, set(&["ENCRYPT", "DECRYPT", "WRAP", "UNWRAP"])),
        (KEY_ENCRYPT_ONLY, set(&["ENCRYPT"])),
        (KEY_DECRYPT_ONLY, set(&["DECRYPT"])),
        (KEY_NO_CRYPTO, set(&["WRAP", "UNWRAP"])),
    ] {
        let md = c.metadata(key).await.ok_json();
        assert_eq!(md["keySpec"], "AES_256", "{key}");
        assert_eq!(md["keyStatus"], "ENABLED", "{key}");
        assert_eq!(usage(&md), expected, "{key}");
    }
    // Metadata does not need kmsKeyArn.
    let mut body = keyhold_tests::bodies::metadata();
    body["requestMetadata"]
        .as_object_mut()
        .expect("md")
        .remove("kmsKeyArn");
    c.call(&format!("/keys/{KEY_ALL}/metadata"), &body)
        .await
        .ok_json();
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn credentials_change_without_restart() {
    let server = TestServer::start_default().await;
    let c = server.client();
    let new = Credential::new(
        "NEWCREDENTIAL234567ABCDEFG",
        "bmV3IGNyZWRlbnRpYWwgc2VjcmV0IGZvciB0ZXN0cyE=",
    );
    let nc = c.with_cred(new.clone());
    nc.health()
        .await
        .assert_error(401, "AuthenticationFailedException");
    server.add_credential(&new).await;
    nc.health().await.ok_json();
    let sealed = nc.encrypt_ok(KEY_ALL, b"rotated", None).await;
    // The old credentials still work alongside.
    assert_eq!(c.decrypt_ok(KEY_ALL, &sealed, None).await, b"rotated");
    c.with_cred(Credential::b()).health().await.ok_json();

    // Deleting a credential refuses it at once.
    server
        .delete_credential(&Credential::a().access_key_id)
        .await;
    c.health()
        .await
        .assert_error(401, "AuthenticationFailedException");
    c.with_cred(Credential::b()).health().await.ok_json();
    nc.health().await.ok_json();
    server.delete_credential(&new.access_key_id).await;
    nc.health()
        .await
        .assert_error(401, "AuthenticationFailedException");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_round_trips_over_several_connections() {
    let server = TestServer::start_default().await;
    let c = server.client();
    // Four HTTP/2 (prior knowledge) connections shared by half the tasks; the other
    // half open their own HTTP/1.1 connections.
    let h2 = Transport::plain(server.running.xks_addr).with_proto(Proto::Http2);
    let mut conns = Vec::new();
    for _ in 0..4 {
        conns.push(h2.connect().await.expect("h2 connection"));
    }
    let mut tasks = Vec::new();
    for i in 0..64usize {
        let c = c.clone();
        let conn = conns[i % 4].clone();
        tasks.push(tokio::spawn(async move {
            let plaintext = format!("message number {i} ").repeat(i + 1).into_bytes();
            let aad = format!("task={i}").into_bytes();
            let (sealed, back) = if i % 2 == 0 {
                let req = c.sign(RawRequest::post_json(
                    &c.op_path(&format!("/keys/{KEY_ALL}/encrypt")),
                    &keyhold_tests::bodies::encrypt(&plaintext, Some(&aad), true),
                ));
                let json = conn.send(&req).await.expect("h2 encrypt").ok_json();
                let sealed = Sealed::from_json(&json);
                let req = c.sign(RawRequest::post_json(
                    &c.op_path(&format!("/keys/{KEY_ALL}/decrypt")),
                    &keyhold_tests::bodies::decrypt(&sealed, Some(&aad)),
                ));
                let json = conn.send(&req).await.expect("h2 decrypt").ok_json();
                let back = base64::Engine::decode(
                    &base64::engine::general_purpose::STANDARD,
                    json["plaintext"].as_str().expect("plaintext"),
                )
                .expect("base64");
                (sealed, back)
            } else {
                let sealed = c.encrypt_ok(KEY_ALL, &plaintext, Some(&aad)).await;
                let back = c.decrypt_ok(KEY_ALL, &sealed, Some(&aad)).await;
                (sealed, back)
            };
            assert_eq!(back, plaintext, "task {i}");
            if let Some(cdiv) = &sealed.cdiv {
                assert_eq!(cdiv, &sealed.expected_cdiv(&aad));
            }
            sealed.iv
        }));
    }
    let mut ivs = HashSet::new();
    for t in tasks {
        ivs.insert(t.await.expect("task"));
    }
    assert_eq!(ivs.len(), 64, "64 distinct IVs");
    drop(conns);
    server.stop().await;
}

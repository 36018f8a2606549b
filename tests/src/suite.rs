//! The XKS end-to-end suite as functions of the key source: every body starts its own
//! server on the given [`SourceFixture`], so the same suite runs against the software
//! `ctm` source (tests/tests/operations.rs, errors.rs) and the PKCS#11 `luna` source on
//! SoftHSM2 (tests/tests/luna.rs). [`xks_suite!`](crate::xks_suite) declares the tests.

use std::collections::HashSet;

use base64::{Engine, engine::general_purpose::STANDARD as B64};
use serde_json::{Value, json};

use crate::{
    Credential, Proto, RawRequest, Sealed, SourceFixture, TestServer, XksClient, bodies,
    client::Transport,
    fixture::{
        BASE, KEY_ALL, KEY_DECRYPT_ONLY, KEY_ENCRYPT_ONLY, KEY_NO_CRYPTO, KeyFixture, LB_HEALTH,
    },
};

/// Declares `#[tokio::test]`s that run suite functions against a source expression,
/// e.g. `xks_suite!(SourceFixture::luna(); encrypt_decrypt_round_trips_with_fresh_ivs);`,
/// or a whole group: `xks_suite!(source; operations)` (the four operations' successful
/// shapes) or `xks_suite!(source; errors)` (the error table and the size limits).
#[macro_export]
macro_rules! xks_suite {
    ($source:expr; operations) => {
        $crate::xks_suite!(
            $source;
            encrypt_decrypt_round_trips_with_fresh_ivs,
            cdiv_is_sha256_of_aad_iv_ciphertext_tag,
            health_status_and_load_balancer_health,
            key_metadata_per_key,
            credentials_change_without_restart,
            concurrent_round_trips_over_several_connections,
        );
    };
    ($source:expr; errors) => {
        $crate::xks_suite!(
            $source;
            validation_exceptions,
            invalid_state_for_blocked_store_blocked_key_and_disabled_key,
            invalid_ciphertext_exceptions,
            invalid_key_usage_exceptions,
            not_found_paths_methods_and_authentication,
            unsupported_operation_exceptions,
            size_limits_at_and_one_past,
        );
    };
    ($source:expr; $($name:ident),+ $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread")]
            async fn $name() {
                $crate::suite::$name($source).await
            }
        )+
    };
}

/// The conformance store on `source`, and a client of it.
async fn start(source: SourceFixture) -> (TestServer, XksClient) {
    let server = TestServer::builder().source(source).start().await;
    let c = server.client();
    (server, c)
}

/// An Encrypt body (plaintext `x`, no AAD) changed by `edit`.
fn encrypt_with(edit: impl FnOnce(&mut Value)) -> Value {
    let mut body = bodies::encrypt(b"x", None, false);
    edit(&mut body);
    body
}

/// `sealed` changed by `edit`.
fn sealed_with(sealed: &Sealed, edit: impl FnOnce(&mut Sealed)) -> Sealed {
    let mut t = sealed.clone();
    edit(&mut t);
    t
}

/// Removes `field` from a JSON object.
fn remove(body: &mut Value, field: &str) {
    body.as_object_mut().expect("object").remove(field);
}

pub async fn encrypt_decrypt_round_trips_with_fresh_ivs(source: SourceFixture) {
    let (server, c) = start(source).await;
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

pub async fn cdiv_is_sha256_of_aad_iv_ciphertext_tag(source: SourceFixture) {
    let (server, c) = start(source).await;
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

pub async fn health_status_and_load_balancer_health(source: SourceFixture) {
    let (server, c) = start(source).await;
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
    // As AWS's sample proxy and conformance tooling: health needs requestMetadata with
    // kmsRequestId and kmsOperation; any kmsOperation value is fine.
    for (body, says) in [
        (serde_json::json!({}), "'requestMetadata'"),
        (
            serde_json::json!({"requestMetadata": {}}),
            "'requestMetadata.kmsRequestId'",
        ),
        (
            serde_json::json!({"requestMetadata": {"kmsRequestId": "r-1"}}),
            "'requestMetadata.kmsOperation'",
        ),
        (serde_json::json!("a JSON string"), "JSON object"),
    ] {
        let req = c.sign(RawRequest::post_json(&c.op_path("/health"), &body));
        let message = c.send(&req).await.assert_error(400, "ValidationException");
        assert!(message.contains(says), "{body}: {message}");
    }
    let unknown_op = serde_json::json!({"requestMetadata":
        {"kmsRequestId": "r-2", "kmsOperation": "SomeFutureOperation"}});
    let req = c.sign(RawRequest::post_json(&c.op_path("/health"), &unknown_op));
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

pub async fn key_metadata_per_key(source: SourceFixture) {
    let (server, c) = start(source).await;
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
    let mut body = crate::bodies::metadata();
    body["requestMetadata"]
        .as_object_mut()
        .expect("md")
        .remove("kmsKeyArn");
    c.call(&format!("/keys/{KEY_ALL}/metadata"), &body)
        .await
        .ok_json();
    server.stop().await;
}

pub async fn credentials_change_without_restart(source: SourceFixture) {
    let (server, c) = start(source).await;
    let new = Credential::new(
        "NEWCREDENTIAL234567ABCDEFG",
        "bmV3IGNyZWRlbnRpYWwgc2VjcmV0IGZvciB0ZXN0cyE=",
    );
    let nc = c.with_cred(new.clone());
    nc.assert_unauthenticated().await;
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
    c.assert_unauthenticated().await;
    c.with_cred(Credential::b()).health().await.ok_json();
    nc.health().await.ok_json();
    server.delete_credential(&new.access_key_id).await;
    nc.assert_unauthenticated().await;
    server.stop().await;
}

pub async fn concurrent_round_trips_over_several_connections(source: SourceFixture) {
    let (server, c) = start(source).await;
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
                    &crate::bodies::encrypt(&plaintext, Some(&aad), true),
                ));
                let json = conn.send(&req).await.expect("h2 encrypt").ok_json();
                let sealed = Sealed::from_json(&json);
                let req = c.sign(RawRequest::post_json(
                    &c.op_path(&format!("/keys/{KEY_ALL}/decrypt")),
                    &crate::bodies::decrypt(&sealed, Some(&aad)),
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

pub async fn validation_exceptions(source: SourceFixture) {
    let (server, c) = start(source).await;
    let enc = format!("/keys/{KEY_ALL}/encrypt");
    let dec = format!("/keys/{KEY_ALL}/decrypt");
    let sealed = c.encrypt_ok(KEY_ALL, b"validation", None).await;

    // Malformed JSON.
    let req = c.sign(
        RawRequest::new("POST", &c.op_path(&enc), "{\"requestMetadata\": ")
            .with_header("content-type", "application/json"),
    );
    c.send(&req).await.assert_error(400, "ValidationException");
    // A field of the wrong type, missing plaintext, encryptionAlgorithm or
    // requestMetadata, bad base64: (body, what the message names).
    let refused = [
        (encrypt_with(|b| b["plaintext"] = json!(5)), ""),
        (encrypt_with(|b| remove(b, "plaintext")), "plaintext"),
        (encrypt_with(|b| remove(b, "encryptionAlgorithm")), ""),
        (encrypt_with(|b| remove(b, "requestMetadata")), ""),
        (
            encrypt_with(|b| b["plaintext"] = json!("not base64!")),
            "plaintext",
        ),
        (
            encrypt_with(|b| b["additionalAuthenticatedData"] = json!("%%%%")),
            "",
        ),
    ];
    for (body, named) in &refused {
        let msg = c
            .call(&enc, body)
            .await
            .assert_error(400, "ValidationException");
        assert!(msg.contains(named), "{named}: {msg}");
        assert!(
            !msg.contains("not base64!"),
            "the field is not echoed: {msg}"
        );
    }
    // Missing requestMetadata.kmsRequestId, on every key operation.
    for (op, mut body) in [
        (enc.clone(), bodies::encrypt(b"x", None, false)),
        (dec.clone(), bodies::decrypt(&sealed, None)),
        (format!("/keys/{KEY_ALL}/metadata"), bodies::metadata()),
    ] {
        body["requestMetadata"]
            .as_object_mut()
            .expect("metadata")
            .remove("kmsRequestId");
        let msg = c
            .call(&op, &body)
            .await
            .assert_error(400, "ValidationException");
        assert!(msg.contains("kmsRequestId"), "{op}: {msg}");
    }
    for field in ["ciphertext", "initializationVector", "authenticationTag"] {
        let mut body = bodies::decrypt(&sealed, None);
        body[field] = json!("***");
        let msg = c
            .call(&dec, &body)
            .await
            .assert_error(400, "ValidationException");
        assert!(msg.contains(field), "{field}: {msg}");
    }
    // IV of 8 bytes, tag of 15 bytes.
    let cases = [
        (
            sealed_with(&sealed, |t| t.iv.truncate(8)),
            "initializationVector",
        ),
        (
            sealed_with(&sealed, |t| t.tag.truncate(15)),
            "authenticationTag",
        ),
    ];
    for (t, named) in &cases {
        let msg = c
            .decrypt(KEY_ALL, t, None)
            .await
            .assert_error(400, "ValidationException");
        assert!(msg.contains(named), "{msg}");
    }
    // Unknown fields and an unknown kmsOperation are tolerated.
    let body = encrypt_with(|b| {
        b["someFutureField"] = json!({"a": 1});
        b["requestMetadata"]["kmsOperation"] = json!("SomeFutureKmsOperation");
        b["requestMetadata"]["futureMetadata"] = json!(true);
    });
    c.call(&enc, &body).await.ok_json();
    server.stop().await;
}

pub async fn invalid_state_for_blocked_store_blocked_key_and_disabled_key(source: SourceFixture) {
    let server = TestServer::builder()
        .source(source)
        .key(KeyFixture::new("demo-disabled", &["encrypt", "decrypt"]).disabled())
        .start()
        .await;
    let c = server.client();

    // A key declared disabled: metadata says DISABLED, crypto is refused.
    let md = c.metadata("demo-disabled").await.ok_json();
    assert_eq!(md["keyStatus"], "DISABLED");
    c.encrypt("demo-disabled", b"x", None, false)
        .await
        .assert_error(400, "InvalidStateException");
    let sealed = c.encrypt_ok(KEY_ALL, b"blocked key", None).await;
    c.decrypt("demo-disabled", &sealed, None)
        .await
        .assert_error(400, "InvalidStateException");

    // A blocked key.
    server.set_key_blocked(KEY_ALL, true).await;
    c.encrypt(KEY_ALL, b"x", None, false)
        .await
        .assert_error(400, "InvalidStateException");
    c.decrypt(KEY_ALL, &sealed, None)
        .await
        .assert_error(400, "InvalidStateException");
    assert_eq!(c.metadata(KEY_ALL).await.ok_json()["keyStatus"], "DISABLED");
    // Other keys are unaffected.
    c.encrypt_ok(KEY_ENCRYPT_ONLY, b"x", None).await;
    server.set_key_blocked(KEY_ALL, false).await;
    assert_eq!(c.decrypt_ok(KEY_ALL, &sealed, None).await, b"blocked key");

    // A blocked store: every operation, health included.
    server.set_store_blocked(true).await;
    c.assert_key_ops_fail(KEY_ALL, &sealed, 400, "InvalidStateException")
        .await;
    c.health().await.assert_error(400, "InvalidStateException");
    // Authentication still comes first.
    let bad = c.with_cred(crate::Credential::new(
        &crate::Credential::a().access_key_id,
        &"C".repeat(44),
    ));
    bad.assert_unauthenticated().await;
    server.set_store_blocked(false).await;
    assert_eq!(c.decrypt_ok(KEY_ALL, &sealed, None).await, b"blocked key");
    server.stop().await;
}

pub async fn invalid_ciphertext_exceptions(source: SourceFixture) {
    let (server, c) = start(source).await;
    let aad = b"context=tests";
    let sealed = c.encrypt_ok(KEY_ALL, b"authentic", Some(aad)).await;
    assert_eq!(
        c.decrypt_ok(KEY_ALL, &sealed, Some(aad)).await,
        b"authentic"
    );

    // Another AAD, none, a flipped bit in the tag, the IV or the ciphertext.
    let cases: [(Sealed, Option<&[u8]>); 5] = [
        (sealed.clone(), Some(b"context=other")),
        (sealed.clone(), None),
        (sealed_with(&sealed, |t| t.tag[0] ^= 1), Some(aad)),
        (sealed_with(&sealed, |t| t.iv[11] ^= 0x80), Some(aad)),
        (sealed_with(&sealed, |t| t.ciphertext[0] ^= 1), Some(aad)),
    ];
    for (t, aad) in &cases {
        c.decrypt(KEY_ALL, t, *aad)
            .await
            .assert_error(400, "InvalidCiphertextException");
    }
    // Another key does not decrypt it either.
    let other = c.decrypt(KEY_DECRYPT_ONLY, &sealed, Some(aad)).await;
    other.assert_error(400, "InvalidCiphertextException");
    // ciphertextMetadata added on decrypt changes the AES-GCM AAD.
    for meta in [&b""[..], b"key_version=1"] {
        let mut body = bodies::decrypt(&sealed, Some(aad));
        body["ciphertextMetadata"] = json!(B64.encode(meta));
        c.call(&format!("/keys/{KEY_ALL}/decrypt"), &body)
            .await
            .assert_error(400, "InvalidCiphertextException");
    }
    // ciphertextMetadata over 20 bytes is malformed input.
    let mut body = bodies::decrypt(&sealed, Some(aad));
    body["ciphertextMetadata"] = json!(B64.encode([7u8; 21]));
    c.call(&format!("/keys/{KEY_ALL}/decrypt"), &body)
        .await
        .assert_error(400, "ValidationException");
    server.stop().await;
}

pub async fn invalid_key_usage_exceptions(source: SourceFixture) {
    let (server, c) = start(source).await;
    let sealed = c.encrypt_ok(KEY_ENCRYPT_ONLY, b"one way", None).await;
    let replies = [
        c.decrypt(KEY_ENCRYPT_ONLY, &sealed, None).await,
        c.encrypt(KEY_DECRYPT_ONLY, b"x", None, false).await,
        c.encrypt(KEY_NO_CRYPTO, b"x", None, false).await,
        c.decrypt(KEY_NO_CRYPTO, &sealed, None).await,
    ];
    for reply in replies {
        reply.assert_error(400, "InvalidKeyUsageException");
    }
    server.stop().await;
}

pub async fn not_found_paths_methods_and_authentication(source: SourceFixture) {
    let (server, c) = start(source).await;
    let sealed = c.encrypt_ok(KEY_ALL, b"x", None).await;

    // Unknown key id.
    c.assert_key_ops_fail("no-such-key", &sealed, 404, "KeyNotFoundException")
        .await;

    // Unknown prefix, unknown operation, "/", and other non-XKS paths; signed or not.
    for path in [
        "/tenants/nobody/kms/xks/v1/health".to_string(),
        format!("/tenants/nobody/kms/xks/v1/keys/{KEY_ALL}/encrypt"),
        format!("{BASE}/keys/{KEY_ALL}/sign"),
        format!("{BASE}/keys/{KEY_ALL}"),
        format!("{BASE}/healthz"),
        "/kms/xks/v1/health".to_string(),
        "/".to_string(),
    ] {
        let unsigned = RawRequest::post_json(&path, &bodies::health());
        let signed = c.sign(unsigned.clone());
        let get = RawRequest::new("GET", &path, "");
        for req in [unsigned, signed, get] {
            c.send(&req)
                .await
                .assert_error(404, "InvalidUriPathException");
        }
    }

    // GET on each of the four operation URIs: 405, JSON, Allow: POST.
    let ops = [
        "/health".to_string(),
        format!("/keys/{KEY_ALL}/metadata"),
        format!("/keys/{KEY_ALL}/encrypt"),
        format!("/keys/{KEY_ALL}/decrypt"),
    ];
    for op in &ops {
        let req = c.sign(RawRequest::new("GET", &c.op_path(op), ""));
        let reply = c.send(&req).await;
        assert_eq!(reply.status.as_u16(), 405, "GET {op}");
        assert_eq!(reply.content_type(), Some("application/json"));
        assert!(
            reply.json()["errorName"].is_string(),
            "GET {op}: JSON error body"
        );
        assert_eq!(
            reply.headers.get("allow").and_then(|v| v.to_str().ok()),
            Some("POST"),
            "GET {op}"
        );
    }
    // PUT too.
    let req = RawRequest::new("PUT", &c.op_path("/health"), "{}");
    let reply = c.send(&req).await;
    assert_eq!(reply.status.as_u16(), 405);

    // 401 in the table: missing signature on each operation.
    for op in &ops {
        let req = RawRequest::post_json(&c.op_path(op), &bodies::health());
        c.send(&req)
            .await
            .assert_error(401, "AuthenticationFailedException");
    }
    server.stop().await;
}

pub async fn unsupported_operation_exceptions(source: SourceFixture) {
    let (server, c) = start(source).await;
    let enc = format!("/keys/{KEY_ALL}/encrypt");
    let dec = format!("/keys/{KEY_ALL}/decrypt");
    let sealed = c.encrypt_ok(KEY_ALL, b"x", None).await;

    let mut body = bodies::encrypt(b"x", None, false);
    body["encryptionAlgorithm"] = json!("AES_CBC");
    c.call(&enc, &body)
        .await
        .assert_error(501, "UnsupportedOperationException");
    let mut body = bodies::decrypt(&sealed, None);
    body["encryptionAlgorithm"] = json!("RSAES_OAEP_SHA_256");
    c.call(&dec, &body)
        .await
        .assert_error(501, "UnsupportedOperationException");
    let mut body = bodies::encrypt(b"x", None, false);
    body["ciphertextDataIntegrityValueAlgorithm"] = json!("SHA_512");
    c.call(&enc, &body)
        .await
        .assert_error(501, "UnsupportedOperationException");
    c.encrypt(KEY_ALL, &[1u8; 4301], None, false)
        .await
        .assert_error(501, "UnsupportedOperationException");
    c.encrypt(KEY_ALL, b"x", Some(&[2u8; 8193]), false)
        .await
        .assert_error(501, "UnsupportedOperationException");
    let big = Sealed {
        ciphertext: vec![3u8; 4301],
        ..sealed.clone()
    };
    c.decrypt(KEY_ALL, &big, None)
        .await
        .assert_error(501, "UnsupportedOperationException");

    // A body over xks.max_body_bytes (64 KiB) is refused before any JSON parsing: not
    // JSON at all, and still 501, not 400.
    let junk = vec![b'x'; 70 * 1024];
    let req = c.sign(
        RawRequest::new("POST", &c.op_path(&enc), junk)
            .with_header("content-type", "application/json"),
    );
    let reply = c.send(&req).await;
    reply.assert_error(501, "UnsupportedOperationException");
    server.stop().await;
}

pub async fn size_limits_at_and_one_past(source: SourceFixture) {
    let long_id = format!("k{}", "0123456789abcdef".repeat(8))[..128].to_string();
    assert_eq!(long_id.len(), 128);
    let server = TestServer::builder()
        .source(source)
        .key(KeyFixture::new(&long_id, &["encrypt", "decrypt"]))
        .start()
        .await;
    let c = server.client();

    // Plaintext 4300 bytes: accepted; its 4300-byte ciphertext decrypts.
    let pt = vec![0x5au8; 4300];
    let sealed = c.encrypt_ok(KEY_ALL, &pt, None).await;
    assert_eq!(
        sealed.ciphertext.len(),
        4300,
        "ciphertext length = plaintext length"
    );
    assert_eq!(c.decrypt_ok(KEY_ALL, &sealed, None).await, pt);
    c.encrypt(KEY_ALL, &[0u8; 4301], None, false)
        .await
        .assert_error(501, "UnsupportedOperationException");
    // An empty plaintext is fine too.
    let empty = c.encrypt_ok(KEY_ALL, b"", None).await;
    assert!(c.decrypt_ok(KEY_ALL, &empty, None).await.is_empty());

    // AAD 8192 bytes: accepted both ways; 8193: refused.
    let aad = vec![0xa5u8; 8192];
    let sealed_aad = c.encrypt_ok(KEY_ALL, b"aad at the limit", Some(&aad)).await;
    assert_eq!(
        c.decrypt_ok(KEY_ALL, &sealed_aad, Some(&aad)).await,
        b"aad at the limit"
    );
    c.encrypt(KEY_ALL, b"x", Some(&[0u8; 8193]), false)
        .await
        .assert_error(501, "UnsupportedOperationException");
    let mut with_big_aad = bodies::decrypt(&sealed_aad, None);
    with_big_aad["additionalAuthenticatedData"] = json!(B64.encode([0u8; 8193]));
    c.call(&format!("/keys/{KEY_ALL}/decrypt"), &with_big_aad)
        .await
        .assert_error(501, "UnsupportedOperationException");

    // Ciphertext 4301 bytes: refused.
    let mut past = sealed.clone();
    past.ciphertext.push(0);
    c.decrypt(KEY_ALL, &past, None)
        .await
        .assert_error(501, "UnsupportedOperationException");

    // Key id of 128 characters (declared): works; 129: ValidationException.
    let md = c.metadata(&long_id).await.ok_json();
    assert_eq!(md["keyStatus"], "ENABLED");
    let s = c.encrypt_ok(&long_id, b"long id", None).await;
    assert_eq!(c.decrypt_ok(&long_id, &s, None).await, b"long id");
    let too_long = format!("{long_id}x");
    c.metadata(&too_long)
        .await
        .assert_error(400, "ValidationException");
    c.encrypt(&too_long, b"x", None, false)
        .await
        .assert_error(400, "ValidationException");

    // IV: 12 ok (above), 16 is a valid length (so the ciphertext simply does not verify),
    // 8 is malformed. Tag: 16 ok, 15 malformed.
    let cases = [
        (
            sealed_with(&sealed, |t| t.iv.extend_from_slice(&[0u8; 4])),
            "InvalidCiphertextException",
        ),
        (
            sealed_with(&sealed, |t| t.iv.truncate(8)),
            "ValidationException",
        ),
        (
            sealed_with(&sealed, |t| t.iv.push(0)),
            "ValidationException",
        ),
        (
            sealed_with(&sealed, |t| t.tag.truncate(15)),
            "ValidationException",
        ),
        (
            sealed_with(&sealed, |t| t.tag.push(0)),
            "ValidationException",
        ),
    ];
    for (t, name) in &cases {
        c.decrypt(KEY_ALL, t, None).await.assert_error(400, name);
    }
    server.stop().await;
}

pub async fn aws_sigv4_signed_requests_verify_with_both_credentials(source: SourceFixture) {
    let server = TestServer::builder().source(source).start().await;
    let a = server.client();
    let b = a.with_cred(Credential::b());
    assert_eq!(Credential::a().secret.len(), 44);
    assert_eq!(Credential::b().secret.len(), 52);
    let sealed = a.encrypt_ok(KEY_ALL, b"both credentials", None).await;
    // The other credential, valid at the same time, decrypts what the first made.
    assert_eq!(
        b.decrypt_ok(KEY_ALL, &sealed, None).await,
        b"both credentials"
    );
    let sealed = b.encrypt_ok(KEY_ALL, b"and back", None).await;
    assert_eq!(a.decrypt_ok(KEY_ALL, &sealed, None).await, b"and back");
    server.stop().await;
}

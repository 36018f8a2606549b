//! AWS linkage end to end: keyhold manages external key stores on AWS KMS (the KMS
//! emulator, over TLS, with the real `aws-sdk-kms` client on keyhold's side) and AWS
//! KMS calls keyhold's XKS endpoint back; an application calls AWS KMS with the real
//! `aws-sdk-kms` client and gets its data keys back.

use aws_sdk_kms::{primitives::Blob, types::DataKeySpec};
use keyhold_tests::{
    TestServer,
    admin::{expect_error, expect_status},
    aws::{ACCOUNT, AwsWorld, CLOSED_ROLE_ARN, REGION, ROLE_ARN, aws_code, eventually, get_until},
    luna::{self, LunaToken},
};
use serde_json::json;

/// The application's round trips through AWS KMS with KMS key `arn`: a data key and
/// its decryption, and Encrypt/Decrypt of a message with an encryption context.
async fn round_trips(world: &AwsWorld, arn: &str) {
    let dk = world
        .app
        .generate_data_key()
        .key_id(arn)
        .key_spec(DataKeySpec::Aes256)
        .send()
        .await
        .expect("GenerateDataKey");
    let plaintext = dk.plaintext().expect("data key").as_ref().to_vec();
    assert_eq!(plaintext.len(), 32);
    let blob = dk.ciphertext_blob().expect("ciphertext").clone();
    assert!(
        !blob.as_ref().windows(32).any(|w| w == plaintext.as_slice()),
        "the data key is not in its ciphertext"
    );
    let back = world
        .app
        .decrypt()
        .ciphertext_blob(blob)
        .send()
        .await
        .expect("Decrypt");
    assert_eq!(back.plaintext().expect("plaintext").as_ref(), plaintext);
    assert_eq!(back.key_id(), Some(arn));

    let message = b"hold your own key".to_vec();
    let enc = world
        .app
        .encrypt()
        .key_id(arn)
        .plaintext(Blob::new(message.clone()))
        .encryption_context("purpose", "test")
        .send()
        .await
        .expect("Encrypt");
    let blob = enc.ciphertext_blob().expect("ciphertext").clone();
    let wrong_context = world
        .app
        .decrypt()
        .ciphertext_blob(blob.clone())
        .encryption_context("purpose", "other")
        .send()
        .await
        .expect_err("another encryption context");
    // The encryption context is bound into the AAD the proxy checks: the proxy's
    // InvalidCiphertextException reaches the caller as AWS KMS reports proxy
    // refusals of crypto operations (the specification's table).
    assert_eq!(aws_code(&wrong_context), "KMSInvalidStateException");
    let dec = world
        .app
        .decrypt()
        .ciphertext_blob(blob)
        .encryption_context("purpose", "test")
        .send()
        .await
        .expect("Decrypt");
    assert_eq!(dec.plaintext().expect("plaintext").as_ref(), message);
}

#[tokio::test(flavor = "multi_thread")]
async fn linked_ctm_store_from_creation_to_deletion() {
    let world = AwsWorld::start().await;
    let (path, created) = world.create_linked_store("acme", "ctm").await;
    let store = &created["store"];
    assert_eq!(
        store["aws"]["connection_state"], "DISCONNECTED",
        "{created}"
    );
    let cks = store["aws"]["custom_key_store_id"]
        .as_str()
        .expect("AWS store id")
        .to_string();
    let file = &created["credentials_file"];
    assert!(file["XksProxyAuthenticationCredential"]["RawSecretAccessKey"].is_string());
    // AWS KMS checked the proxy through the given endpoint before creating its store,
    // signing with the credential of the credentials file.
    let akid = file["XksProxyAuthenticationCredential"]["AccessKeyId"]
        .as_str()
        .expect("akid");
    let health = world.emulator.xks_calls();
    let create_check = health
        .iter()
        .find(|c| c.kms_operation == "CreateCustomKeyStore")
        .expect("health call on CreateCustomKeyStore");
    assert_eq!(create_check.operation, "GetHealthStatus");
    assert_eq!(create_check.access_key_id, akid);
    assert_eq!(create_check.status, Some(200));
    let aws = world.aws_stores().await;
    assert_eq!(aws.len(), 1);
    assert_eq!(aws[0].custom_key_store_id(), Some(cks.as_str()));
    assert_eq!(aws[0].custom_key_store_name(), Some("acme"));

    // Linked keys need a CONNECTED store.
    world.source_key("ctm", "early-src").await;
    let r = world
        .root
        .create_hyok_key(&path, "early", "early-src")
        .await;
    expect_error(&r, 409, "store_not_connected");

    let connected = world.connect(&path).await;
    assert_eq!(
        connected["aws"]["connection_state"], "CONNECTED",
        "{connected}"
    );
    assert!(
        world
            .emulator
            .xks_calls()
            .iter()
            .any(|c| c.kms_operation == "ConnectCustomKeyStore")
    );

    // A HYOK key creates its KMS key; AWS KMS checked it through GetKeyMetadata.
    let key = world.create_key(&path, "ctm", "payments").await;
    let arn = key["aws"]["key_arn"].as_str().expect("key ARN").to_string();
    let described = world
        .app
        .describe_key()
        .key_id(&arn)
        .send()
        .await
        .expect("DescribeKey");
    let meta = described.key_metadata().expect("metadata");
    assert_eq!(meta.custom_key_store_id(), Some(cks.as_str()));
    assert_eq!(
        meta.xks_key_configuration().and_then(|x| x.id()),
        Some("payments")
    );
    round_trips(&world, &arn).await;

    // Blocked at keyhold: AWS KMS's calls fail with KMSInvalidStateException.
    expect_status(
        &world.root.post(&format!("{path}/block"), &json!({})).await,
        200,
    );
    let e = world
        .app
        .generate_data_key()
        .key_id(&arn)
        .key_spec(DataKeySpec::Aes256)
        .send()
        .await
        .expect_err("blocked store");
    assert_eq!(aws_code(&e), "KMSInvalidStateException");
    expect_status(
        &world
            .root
            .post(&format!("{path}/unblock"), &json!({}))
            .await,
        200,
    );
    round_trips(&world, &arn).await;

    // Updates need a disconnected store; then the new name reaches AWS KMS.
    let etag = world.root.get(&path).await;
    let tag = keyhold_tests::admin::etag(&etag);
    let r = world
        .root
        .patch(&path, &json!({"name": "acme-renamed"}), Some(&tag))
        .await;
    expect_error(&r, 409, "store_not_disconnected");
    let disconnected = expect_status(
        &world
            .root
            .post(&format!("{path}/disconnect"), &json!({}))
            .await,
        200,
    );
    assert_eq!(disconnected["aws"]["connection_state"], "DISCONNECTED");
    let tag = keyhold_tests::admin::etag(&world.root.get(&path).await);
    let r = world
        .root
        .patch(&path, &json!({"name": "acme-renamed"}), Some(&tag))
        .await;
    expect_status(&r, 200);
    assert_eq!(
        world.aws_stores().await[0].custom_key_store_name(),
        Some("acme-renamed")
    );

    // Deleting: refused while keys exist here, then while the KMS key waits for its
    // deletion on AWS KMS; then the store goes on both sides.
    let r = world.root.delete(&format!("{path}?confirm=true")).await;
    expect_error(&r, 409, "store_has_keys");
    let r = world
        .root
        .delete(&format!("{path}/keys/payments?pending_window_days=7"))
        .await;
    expect_status(&r, 204);
    let pending = world
        .app
        .describe_key()
        .key_id(&arn)
        .send()
        .await
        .expect("DescribeKey");
    assert_eq!(
        pending
            .key_metadata()
            .and_then(|m| m.key_state())
            .map(|s| s.as_str()),
        Some("PendingDeletion")
    );
    let r = world.root.delete(&format!("{path}?confirm=true")).await;
    let message = expect_error(&r, 409, "aws_error");
    assert!(
        message.contains("CustomKeyStoreHasCMKsException"),
        "{message}"
    );
    assert_eq!(
        r.json()["error"]["aws_error_code"],
        "CustomKeyStoreHasCMKsException"
    );
    world.emulator.purge_pending_deletions();
    expect_status(
        &world.root.delete(&format!("{path}?confirm=true")).await,
        204,
    );
    assert!(world.aws_stores().await.is_empty());
    expect_error(&world.root.get(&path).await, 404, "not_found");
}

#[tokio::test(flavor = "multi_thread")]
async fn linked_luna_store_serves_data_keys_from_softhsm() {
    if !luna::available() {
        eprintln!("SoftHSM2 is not installed: skipped");
        return;
    }
    let token = LunaToken::new();
    let world =
        AwsWorld::start_with(TestServer::admin_only().extra_source(token.source_named("luna")))
            .await;
    let (path, created) = world.create_linked_store("hsm", "luna").await;
    assert_eq!(created["store"]["container"], token.label.as_str());
    assert_eq!(
        world.connect(&path).await["aws"]["connection_state"],
        "CONNECTED"
    );
    let key = world.create_key(&path, "luna", "hsm-key").await;
    let arn = key["aws"]["key_arn"].as_str().expect("key ARN").to_string();
    round_trips(&world, &arn).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unlinked_store_is_reviewed_then_linked_and_its_keys_linked() {
    let world = AwsWorld::start().await;
    world.source_key("ctm", "hc").await;
    let body = json!({
        "name": "later", "account": ACCOUNT, "source": "ctm", "health_check_key": "hc",
    });
    let created = expect_status(&world.root.create_store(&body).await, 201);
    let id = created["store"]["id"].as_str().expect("id");
    let path = format!("/api/v1/stores/{id}");
    assert!(created["store"]["aws"].is_null());
    assert!(world.aws_stores().await.is_empty(), "nothing on AWS KMS");
    let key = world
        .root
        .create_hyok_key(&path, "k1", {
            world.source_key("ctm", "k1-src").await;
            "k1-src"
        })
        .await;
    assert!(expect_status(&key, 201)["aws"].is_null());

    // The review shows (and changes nothing) what linking sends, with the edits.
    let edits = json!({
        "region": REGION,
        "location": {"type": "public", "endpoint": world.xks_endpoint()},
    });
    let plan = expect_status(
        &world
            .root
            .post(&format!("{path}/link/review"), &edits)
            .await,
        200,
    );
    assert_eq!(plan["uri_endpoint"], world.xks_endpoint());
    assert_eq!(plan["uri_path"], format!("/keystores/{id}/kms/xks/v1"));
    assert_eq!(
        plan["access_key_id"],
        created["credentials_file"]["XksProxyAuthenticationCredential"]["AccessKeyId"]
    );
    assert!(world.aws_stores().await.is_empty());
    assert!(world.store(&path).await["region"].is_null());

    let linked = expect_status(&world.root.post(&format!("{path}/link"), &edits).await, 200);
    assert_eq!(linked["aws"]["connection_state"], "DISCONNECTED");
    assert_eq!(linked["region"], REGION);
    let r = world.root.post(&format!("{path}/link"), &edits).await;
    expect_error(&r, 409, "store_already_linked");
    assert_eq!(world.aws_stores().await.len(), 1);

    world.connect(&path).await;
    let linked_key = expect_status(
        &world
            .root
            .post(&format!("{path}/keys/k1/link"), &json!({}))
            .await,
        200,
    );
    let arn = linked_key["aws"]["key_arn"]
        .as_str()
        .expect("ARN")
        .to_string();
    round_trips(&world, &arn).await;
    let again = world
        .root
        .post(&format!("{path}/keys/k1/link"), &json!({}))
        .await;
    expect_error(&again, 409, "key_already_linked");
}

#[tokio::test(flavor = "multi_thread")]
async fn failures_are_clear_errors_and_leave_nothing_half_made() {
    let world = AwsWorld::start().await;

    // The proxy unreachable from AWS KMS (a closed port): AWS KMS refuses, nothing is
    // left here or there.
    let mut body = world.linked_store_body("unreachable", "ctm", "hc-1").await;
    body["location"]["endpoint"] = json!("https://127.0.0.1:9");
    let r = world.root.create_store(&body).await;
    let message = expect_error(&r, 502, "aws_error");
    assert!(
        message.contains("XksProxyUriUnreachableException"),
        "{message}"
    );
    assert_eq!(
        r.json()["error"]["aws_error_code"],
        "XksProxyUriUnreachableException"
    );
    assert!(world.aws_stores().await.is_empty());
    let stores = expect_status(&world.root.get("/api/v1/stores").await, 200);
    assert_eq!(stores.as_array().map(Vec::len), Some(0), "{stores}");

    // Wrong AWS credentials: AWS's code is named, and what to check.
    world
        .add_connection("wrong", json!({"secret_access_key": "x".repeat(40)}))
        .await;
    let t = world.test_connection("wrong").await;
    assert_eq!(t["status"], "Failed", "{t}");
    let reason = t["reason"].as_str().expect("reason");
    assert!(reason.contains("InvalidSignatureException"), "{reason}");
    // The good connection is Ready.
    let t = world.test_connection("emulator").await;
    assert_eq!(t["status"], "Ready", "{t}");

    // An assumed role: allowed works (the STS call is signed for the store's region),
    // refused is named.
    world
        .add_connection("role", json!({"role_arn": ROLE_ARN}))
        .await;
    world
        .add_connection("closed-role", json!({"role_arn": CLOSED_ROLE_ARN}))
        .await;
    for (name, ready) in [("role", true), ("closed-role", false)] {
        let t = world.test_connection(name).await;
        assert_eq!(t["status"] == "Ready", ready, "{name}: {t}");
        if !ready {
            let reason = t["reason"].as_str().expect("reason");
            assert!(
                reason.contains(CLOSED_ROLE_ARN) && reason.contains("AccessDenied"),
                "{reason}"
            );
        }
    }
    let sts: Vec<_> = world
        .emulator
        .calls()
        .into_iter()
        .filter(|c| c.operation == "AssumeRole")
        .collect();
    assert!(!sts.is_empty());
    assert!(sts.iter().all(|c| c.signing_region == REGION), "{sts:?}");
    // The legacy STS setting signs for the global endpoint's region, us-east-1.
    world
        .add_connection(
            "role-legacy",
            json!({"role_arn": ROLE_ARN, "sts_regional_endpoints": "legacy"}),
        )
        .await;
    let t = world.test_connection("role-legacy").await;
    assert_eq!(t["status"], "Ready", "{t}");
    let last_sts = world
        .emulator
        .calls()
        .into_iter()
        .rfind(|c| c.operation == "AssumeRole")
        .expect("AssumeRole");
    assert_eq!(last_sts.signing_region, "us-east-1");

    // Throttling: retried, then it succeeds; throttled beyond the retries, reported.
    world.emulator.throttle_next(2);
    let (path, _) = world.create_linked_store("throttled", "ctm").await;
    assert_eq!(world.aws_stores().await.len(), 1);
    world.emulator.throttle_next(1000);
    let r = world
        .root
        .post(&format!("{path}/connect"), &json!({}))
        .await;
    let message = expect_error(&r, 503, "aws_throttled");
    assert!(message.contains("ThrottlingException"), "{message}");
    world.emulator.throttle_next(0);

    // AWS KMS down: a clear error, nothing made.
    let body = world.linked_store_body("down", "ctm", "hc-2").await;
    let endpoint = world.emulator.endpoint();
    let AwsWorld { emulator, root, .. } = world;
    emulator.shutdown().await;
    let r = root.create_store(&body).await;
    let message = expect_error(&r, 502, "aws_unreachable");
    assert!(
        message.contains(&endpoint) || message.contains("reach"),
        "{message}"
    );
    let stores = expect_status(&root.get("/api/v1/stores").await, 200);
    assert!(
        stores
            .as_array()
            .expect("stores")
            .iter()
            .all(|s| s["name"] != "down"),
        "{stores}"
    );
}

/// The store named `name` once `done` holds for it.
async fn store_until(
    root: &keyhold_tests::admin::AdminClient,
    name: &str,
    done: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let stores = get_until(root, "/api/v1/stores", |stores| {
        stores
            .as_array()
            .is_some_and(|a| a.iter().any(|s| s["name"] == name && done(s)))
    })
    .await;
    let found = stores
        .as_array()
        .and_then(|a| a.iter().find(|s| s["name"] == name));
    found.cloned().expect("store listed")
}

#[tokio::test(flavor = "multi_thread")]
async fn a_config_declared_store_is_linked_and_connected_once_across_restarts() {
    use keyhold_tests::{aws, paths::toml_str, pki::TestCa};
    let ca = TestCa::new("keyhold test CA");
    let emulator = aws::start_emulator(aws::emulator_config(&ca)).await;
    let app = aws::kms_client(
        &emulator.endpoint(),
        &ca.pem(),
        aws::APP_AKID,
        aws::APP_SECRET,
        3,
    );
    let dir = std::sync::Arc::new(tempfile::tempdir().expect("tempdir"));
    let ca_file = ca.write(dir.path(), "ca.pem");
    let (cert, key) = ca.server_cert().write(dir.path(), "xks");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let declared = format!(
        r#"
[aws.connections.main]
access_key_id = "{akid}"
secret_access_key = "{secret}"
endpoint_url = "{endpoint}"
ca_file = {ca}

[aws.accounts."{ACCOUNT}"]
name = "acme"
regions = ["{REGION}"]
connection = "main"

[[stores]]
name = "declared"
source = "ctm"
health_check_key = "declared-health"
uri_path_prefix = "declared"
account = "{ACCOUNT}"
region = "{REGION}"
location = {{ type = "public", endpoint = "https://127.0.0.1:{port}" }}
linked = true
connected = true
"#,
        akid = aws::KEYHOLD_AKID,
        secret = aws::KEYHOLD_SECRET,
        endpoint = emulator.endpoint(),
        ca = toml_str(ca_file.to_string_lossy()),
    );
    let builder = TestServer::admin_only()
        .in_dir(dir.clone())
        .xks_port(port)
        .tls(&[
            format!("cert_file = {}", toml_str(cert.to_string_lossy())),
            format!("key_file = {}", toml_str(key.to_string_lossy())),
        ])
        .toml_tail(&declared);
    let server = builder.clone().start().await;
    let root = server.root().await;
    let store = store_until(&root, "declared", |s| {
        s["aws"]["connection_state"] == "CONNECTED"
    })
    .await;
    let cks = store["aws"]["custom_key_store_id"].clone();
    let listed = app
        .describe_custom_key_stores()
        .send()
        .await
        .expect("Describe");
    assert_eq!(listed.custom_key_stores().len(), 1);
    assert_eq!(
        listed.custom_key_stores()[0]
            .connection_state()
            .map(|s| s.as_str()),
        Some("CONNECTED")
    );

    // A crash after AWS KMS created the store but before the link was recorded: the
    // next start finds the AWS store by endpoint and path instead of making another.
    let id = store["id"].as_str().expect("id").to_string();
    let mut record = server.store_record_of(&id);
    record.aws = None;
    server.put_store_record(&record);
    server.stop().await;
    let server = builder.in_dir(dir).start().await;
    let root = server.root().await;
    let again = store_until(&root, "declared", |s| {
        s["aws"]["connection_state"] == "CONNECTED"
    })
    .await;
    assert_eq!(again["aws"]["custom_key_store_id"], cks);
    let listed = app
        .describe_custom_key_stores()
        .send()
        .await
        .expect("Describe");
    assert_eq!(listed.custom_key_stores().len(), 1, "no second AWS store");
}

/// An application loop calling Encrypt and Decrypt with KMS key `arn` through AWS KMS
/// until stopped: (calls that succeeded, failures).
struct Load {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    ok: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    task: tokio::task::JoinHandle<Vec<String>>,
}

impl Load {
    fn start(app: aws_sdk_kms::Client, arn: String) -> Load {
        use std::sync::{
            Arc,
            atomic::{AtomicBool, AtomicUsize, Ordering},
        };
        let stop = Arc::new(AtomicBool::new(false));
        let ok = Arc::new(AtomicUsize::new(0));
        let (s, o) = (stop.clone(), ok.clone());
        let task = tokio::spawn(async move {
            let mut failures = Vec::new();
            while !s.load(Ordering::SeqCst) {
                let enc = app
                    .encrypt()
                    .key_id(&arn)
                    .plaintext(Blob::new(b"rotation".to_vec()))
                    .send()
                    .await;
                let outcome = match enc {
                    Ok(e) => {
                        let blob = e.ciphertext_blob().cloned().unwrap_or(Blob::new(vec![]));
                        app.decrypt()
                            .ciphertext_blob(blob)
                            .send()
                            .await
                            .map(|_| ())
                            .map_err(|e| format!("Decrypt: {}", aws_code(&e)))
                    }
                    Err(e) => Err(format!("Encrypt: {}", aws_code(&e))),
                };
                match outcome {
                    Ok(()) => {
                        o.fetch_add(1, Ordering::SeqCst);
                    }
                    Err(e) => failures.push(e),
                }
            }
            failures
        });
        Load { stop, ok, task }
    }

    /// Waits until `n` more round trips succeeded (or 30 s passed).
    async fn more(&self, n: usize) {
        use std::sync::atomic::Ordering;
        let target = self.ok.load(Ordering::SeqCst) + n;
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while self.ok.load(Ordering::SeqCst) < target && std::time::Instant::now() < deadline {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }

    async fn finish(self) -> (usize, Vec<String>) {
        use std::sync::atomic::Ordering;
        self.stop.store(true, Ordering::SeqCst);
        let failures = self.task.await.expect("load task");
        (self.ok.load(Ordering::SeqCst), failures)
    }
}

/// The access key ids of the store at `path`.
async fn local_access_keys(world: &AwsWorld, path: &str) -> Vec<String> {
    let listed = expect_status(&world.root.get(&format!("{path}/credentials")).await, 200);
    keyhold_tests::admin::access_key_ids(&listed)
        .into_iter()
        .map(str::to_string)
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn credentials_rotate_by_hand_and_on_schedule_while_aws_kms_keeps_calling() {
    let start = time::macros::datetime!(2026-01-05 00:00 UTC);
    let clock = keyhold::clock::ManualClock::new(start);
    let world =
        AwsWorld::start_with(TestServer::admin_only().clock(std::sync::Arc::new(clock.clone())))
            .await;
    let mut body = world
        .linked_store_body("rotating", "ctm", "rot-health")
        .await;
    body["max_credentials"] = json!(2);
    let created = expect_status(&world.root.create_store(&body).await, 201);
    let path = format!(
        "/api/v1/stores/{}",
        created["store"]["id"].as_str().expect("id")
    );
    let cks = created["store"]["aws"]["custom_key_store_id"]
        .as_str()
        .expect("cks")
        .to_string();
    world.connect(&path).await;
    let key = world.create_key(&path, "ctm", "rot-key").await;
    let arn = key["aws"]["key_arn"].as_str().expect("ARN").to_string();
    let load = Load::start(world.app.clone(), arn);
    load.more(5).await;

    // By hand: each new credential is pushed to AWS KMS; at max credentials (2) the
    // oldest goes, never the one AWS KMS signs with.
    for _ in 0..3 {
        let r = world
            .root
            .post(&format!("{path}/credentials"), &json!({}))
            .await;
        let file = expect_status(&r, 201);
        let akid = file["XksProxyAuthenticationCredential"]["AccessKeyId"]
            .as_str()
            .expect("akid")
            .to_string();
        assert_eq!(world.aws_access_key(&cks).await, akid);
        let local = local_access_keys(&world, &path).await;
        assert!(local.contains(&akid) && local.len() <= 2, "{local:?}");
        load.more(5).await;
    }

    // On schedule: daily at 03:00 UTC; the clock is moved past it.
    world
        .schedule_rotation(&path, "nightly", json!({"type": "daily", "at": "03:00"}))
        .await;
    let before = world.aws_access_key(&cks).await;
    clock.set(start + time::Duration::minutes(3 * 60 + 1));
    let state = get_until(&world.root, &format!("{path}/schedule"), |s| {
        !s["last_run_at"].is_null()
    })
    .await;
    let result = state["last_result"].as_str().expect("last result");
    assert!(result.starts_with("ok"), "{state}");
    let after = world.aws_access_key(&cks).await;
    assert_ne!(after, before);
    assert!(result.contains(&after), "{result} names {after}");
    let local = local_access_keys(&world, &path).await;
    assert!(local.contains(&after) && local.len() <= 2, "{local:?}");
    load.more(5).await;

    let (ok, failures) = load.finish().await;
    assert!(
        failures.is_empty(),
        "{} failed calls: {failures:?}",
        failures.len()
    );
    assert!(ok >= 25, "{ok} round trips");
}

/// Job `id` once it has ended.
async fn job_until_ended(root: &keyhold_tests::admin::AdminClient, id: &str) -> serde_json::Value {
    get_until(root, &format!("/api/v1/jobs/{id}"), |j| {
        j["state"] != "running"
    })
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn refresh_links_what_was_made_by_hand_shows_other_proxies_as_remote_and_can_be_cancelled() {
    use aws_sdk_kms::types::{
        ConnectionStateType, CustomKeyStoreType, OriginType, XksProxyAuthenticationCredentialType,
        XksProxyConnectivityType,
    };
    let world = AwsWorld::start().await;
    let admin = keyhold_tests::aws::kms_client(
        &world.emulator.endpoint(),
        &world.ca.pem(),
        keyhold_tests::aws::KEYHOLD_AKID,
        keyhold_tests::aws::KEYHOLD_SECRET,
        3,
    );
    // Two unlinked local stores with the location AWS KMS reaches them at.
    let mut made = Vec::new();
    for name in ["by-hand", "elsewhere"] {
        world.source_key("ctm", &format!("{name}-hc")).await;
        let body = json!({
            "name": name, "account": ACCOUNT, "region": REGION, "source": "ctm",
            "health_check_key": format!("{name}-hc"),
            "location": {"type": "public", "endpoint": world.xks_endpoint()},
        });
        made.push(expect_status(&world.root.create_store(&body).await, 201));
    }
    let path_of = |c: &serde_json::Value| {
        format!("/api/v1/stores/{}", c["store"]["id"].as_str().expect("id"))
    };
    let by_hand = path_of(&made[0]);
    world.create_key(&by_hand, "ctm", "hand-key").await;

    // As a user does in the AWS console from each credentials file.
    let mut aws_ids = Vec::new();
    for c in &made {
        let file = &c["credentials_file"];
        let cred = XksProxyAuthenticationCredentialType::builder()
            .access_key_id(
                file["XksProxyAuthenticationCredential"]["AccessKeyId"]
                    .as_str()
                    .expect("akid"),
            )
            .raw_secret_access_key(
                file["XksProxyAuthenticationCredential"]["RawSecretAccessKey"]
                    .as_str()
                    .expect("secret"),
            )
            .build()
            .expect("credential");
        let out = admin
            .create_custom_key_store()
            .custom_key_store_name(c["store"]["name"].as_str().expect("name"))
            .custom_key_store_type(CustomKeyStoreType::ExternalKeyStore)
            .xks_proxy_uri_endpoint(world.xks_endpoint())
            .xks_proxy_uri_path(file["XksProxyUriPath"].as_str().expect("path"))
            .xks_proxy_connectivity(XksProxyConnectivityType::PublicEndpoint)
            .xks_proxy_authentication_credential(cred)
            .send()
            .await
            .expect("CreateCustomKeyStore by hand");
        aws_ids.push(out.custom_key_store_id().expect("id").to_string());
    }
    admin
        .connect_custom_key_store()
        .custom_key_store_id(&aws_ids[0])
        .send()
        .await
        .expect("connect");
    eventually("connected by hand", || async {
        let stores = world.aws_stores().await;
        let state = stores
            .iter()
            .find(|s| s.custom_key_store_id() == Some(aws_ids[0].as_str()))
            .and_then(|s| s.connection_state().cloned());
        match state {
            Some(ConnectionStateType::Connected) => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    let key = admin
        .create_key()
        .origin(OriginType::ExternalKeyStore)
        .custom_key_store_id(&aws_ids[0])
        .xks_key_id("hand-key")
        .send()
        .await
        .expect("CreateKey by hand");
    let arn = key
        .key_metadata()
        .map(|m| m.arn().unwrap_or("").to_string())
        .expect("metadata");
    // "elsewhere" is served by another proxy from now on: keyhold forgets it.
    let r = world
        .root
        .delete(&format!("{}?confirm=true", path_of(&made[1])))
        .await;
    expect_status(&r, 204);

    let refresh = format!("/api/v1/accounts/{ACCOUNT}/refresh");
    let job = expect_status(&world.root.post(&refresh, &json!({})).await, 202);
    let job = job_until_ended(&world.root, job["id"].as_str().expect("job id")).await;
    assert_eq!(job["state"], "succeeded", "{job}");
    assert_eq!(job["done"], job["total"], "{job}");
    let linked = world.store(&by_hand).await;
    assert_eq!(
        linked["aws"]["custom_key_store_id"],
        aws_ids[0].as_str(),
        "{linked}"
    );
    assert_eq!(linked["aws"]["connection_state"], "CONNECTED");
    let hand_key = expect_status(
        &world.root.get(&format!("{by_hand}/keys/hand-key")).await,
        200,
    );
    assert_eq!(hand_key["aws"]["key_arn"], arn.as_str(), "{hand_key}");
    let stores = expect_status(&world.root.get("/api/v1/stores").await, 200);
    let remote = stores
        .as_array()
        .expect("stores")
        .iter()
        .find(|s| s["aws"]["custom_key_store_id"] == aws_ids[1].as_str())
        .unwrap_or_else(|| panic!("remote store listed: {stores}"));
    assert_eq!(remote["kind"], "remote", "{remote}");
    // Remote stores cannot be connected, linked or given keys here.
    let remote_path = format!("/api/v1/stores/{}", remote["id"].as_str().expect("id"));
    let r = world
        .root
        .post(&format!("{remote_path}/connect"), &json!({}))
        .await;
    expect_error(&r, 409, "remote_store");

    // Idempotent: a second refresh changes nothing.
    let again = expect_status(&world.root.post(&refresh, &json!({})).await, 202);
    let again = job_until_ended(&world.root, again["id"].as_str().expect("id")).await;
    assert_eq!(again["state"], "succeeded", "{again}");
    assert_eq!(again["summary"]["changed"], 0, "{again}");
    let after = expect_status(&world.root.get("/api/v1/stores").await, 200);
    assert_eq!(
        after.as_array().map(Vec::len),
        stores.as_array().map(Vec::len)
    );

    // A long refresh (many keys made by hand, AWS KMS answering slowly) is cancelled:
    // it stops with its partial progress kept.
    for i in 0..20 {
        let ext = format!("bulk-{i}");
        world.source_key("ctm", &ext).await;
        let r = world
            .root
            .post(
                &format!("{by_hand}/keys"),
                &json!({"external_id": ext, "source_key": ext, "linked": false}),
            )
            .await;
        expect_status(&r, 201);
        admin
            .create_key()
            .origin(OriginType::ExternalKeyStore)
            .custom_key_store_id(&aws_ids[0])
            .xks_key_id(&ext)
            .send()
            .await
            .expect("CreateKey by hand");
    }
    world
        .emulator
        .set_latency(std::time::Duration::from_millis(200));
    let job = expect_status(&world.root.post(&refresh, &json!({})).await, 202);
    let id = job["id"].as_str().expect("id").to_string();
    get_until(&world.root, &format!("/api/v1/jobs/{id}"), |j| {
        j["done"].as_u64().unwrap_or(0) >= 1
    })
    .await;
    let r = world
        .root
        .post(&format!("/api/v1/jobs/{id}/cancel"), &json!({}))
        .await;
    expect_status(&r, 200);
    let cancelled = job_until_ended(&world.root, &id).await;
    world.emulator.set_latency(std::time::Duration::ZERO);
    assert_eq!(cancelled["state"], "cancelled", "{cancelled}");
    let (done, total) = (cancelled["done"].as_u64(), cancelled["total"].as_u64());
    assert!(done >= Some(1) && done < total, "{cancelled}");
    // What it did before stays: the links are still there, some bulk keys linked,
    // not all.
    assert_eq!(
        world.store(&by_hand).await["aws"]["custom_key_store_id"],
        aws_ids[0].as_str()
    );
    let keys = expect_status(&world.root.get(&format!("{by_hand}/keys")).await, 200);
    let bulk_linked = keys
        .as_array()
        .expect("keys")
        .iter()
        .filter(|k| {
            k["external_id"]
                .as_str()
                .is_some_and(|e| e.starts_with("bulk-"))
        })
        .filter(|k| !k["aws"].is_null())
        .count();
    assert!(
        bulk_linked < 20,
        "{bulk_linked} bulk keys linked: {cancelled}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_store_created_with_a_schedule_is_linked_first_and_answers_its_next_rotation() {
    let world = AwsWorld::start().await;
    let schedule =
        json!({"name": "weekly", "recurrence": {"type": "weekly", "day": "sun", "at": "02:30"}});
    expect_status(&world.root.post("/api/v1/schedules", &schedule).await, 201);

    // Only linked stores rotate on schedule; an unknown schedule is named. Neither
    // leaves anything here or on AWS KMS.
    let mut body = world
        .linked_store_body("scheduled", "ctm", "sched-hc")
        .await;
    body["rotation_schedule"] = json!("weekly");
    let mut unlinked = body.clone();
    unlinked["linked"] = json!(false);
    expect_error(
        &world.root.create_store(&unlinked).await,
        409,
        "schedule_needs_linked_store",
    );
    let mut unknown = body.clone();
    unknown["rotation_schedule"] = json!("monthly");
    let message = expect_error(&world.root.create_store(&unknown).await, 404, "not_found");
    assert!(message.contains("monthly"), "{message}");
    let stores = expect_status(&world.root.get("/api/v1/stores").await, 200);
    assert_eq!(stores.as_array().map(Vec::len), Some(0), "{stores}");
    assert!(world.aws_stores().await.is_empty());

    let created = expect_status(&world.root.create_store(&body).await, 201);
    assert_eq!(created["rotation"]["schedule"], "weekly", "{created}");
    let next = created["rotation"]["next_run_at"]
        .as_i64()
        .expect("next run");
    let next = time::OffsetDateTime::from_unix_timestamp(next).expect("time");
    assert_eq!(next.weekday(), time::Weekday::Sunday);
    assert_eq!((next.hour(), next.minute()), (2, 30));
    assert_eq!(created["store"]["rotation_schedule"], "weekly");
    assert_eq!(created["store"]["aws"]["connection_state"], "DISCONNECTED");
    let path = format!(
        "/api/v1/stores/{}",
        created["store"]["id"].as_str().expect("id")
    );
    let shown = expect_status(&world.root.get(&format!("{path}/schedule")).await, 200);
    assert_eq!(shown["schedule"], "weekly");
    assert_eq!(shown["next_run_at"], created["rotation"]["next_run_at"]);
}

//! Refusals never echo request content: unique canary strings are sent through every
//! refusal path of the XKS endpoint (unsigned and signed: every body field, a
//! double-encoded body, bad base64, wrong types, oversized fields and bodies, broken
//! JSON, headers) and of the admin API (login, JSON bodies, tokens), and none of them
//! may appear in a response body, in the server's log output or in the audit log.
//!
//! Deliberate exceptions (identifiers the operator needs, escaped and capped at 128
//! characters): the external key id of the path, `kmsRequestId` and `kmsOperation` are
//! logged; a SigV4 region refused by an account's region list and an admin user name
//! are named in messages. Canaries are therefore not put there. Plaintext, ciphertext,
//! AAD, IV, tag, secrets and passwords never appear anywhere.
//!
//! This file holds a single test because it installs the process-wide subscriber.

use base64::{Engine, engine::general_purpose::STANDARD as B64};
use keyhold_tests::{RawRequest, TestServer, XksClient, bodies, fixture::KEY_ALL};
use serde_json::{Value, json};

/// Canaries handed out by [`Canaries::next`], and the response bodies seen.
#[derive(Default)]
struct Canaries {
    issued: Vec<(String, String)>,
    bodies: Vec<(String, String)>,
}

impl Canaries {
    /// A fresh canary for `what` (letters and digits only: valid in any field).
    fn next(&mut self, what: &str) -> String {
        let c = format!("CANARY{}x{}Z", self.issued.len(), std::process::id());
        self.issued.push((what.to_string(), c.clone()));
        c
    }

    /// Sends the request `make` builds around a fresh canary for `what`, and records
    /// the refusal.
    async fn probe(&mut self, c: &XksClient, what: &str, make: impl FnOnce(&str) -> RawRequest) {
        let canary = self.next(what);
        let reply = c.send(&make(&canary)).await;
        self.saw(what, &reply);
    }

    fn saw(&mut self, what: &str, reply: &keyhold_tests::Reply) {
        assert!(
            !reply.status.is_success(),
            "{what}: a refusal was expected, got {} {:?}",
            reply.status,
            reply.body
        );
        self.bodies.push((
            what.to_string(),
            String::from_utf8_lossy(&reply.body).into_owned(),
        ));
    }
}

fn signed(c: &XksClient, suffix: &str, body: impl Into<bytes::Bytes>) -> RawRequest {
    c.sign(
        RawRequest::new("POST", &c.op_path(suffix), body)
            .with_header("content-type", "application/json"),
    )
}

/// A kind of bad value for a body field, made around a canary.
type BadValue = (&'static str, fn(&str) -> Value);

/// What each Encrypt field is tried with.
const ENCRYPT_BAD: [BadValue; 3] = [
    ("not base64 / unsupported", |c| json!(format!("!{c}!"))),
    ("wrong type", |c| json!({ "x": c })),
    ("array", |c| json!([c])),
];

/// What each Decrypt field is tried with.
const DECRYPT_BAD: [BadValue; 3] = [
    ("not base64", |c| json!(format!("!{c}!"))),
    ("wrong length", |c| json!(B64.encode(c.repeat(3)))),
    ("wrong type", |c| json!({ "v": c })),
];

fn encrypt_with(field: &str, value: Value) -> Value {
    let mut body = bodies::encrypt(b"fine", None, false);
    body[field] = value;
    body
}

fn decrypt_with(field: &str, value: Value) -> Value {
    let mut body = json!({
        "requestMetadata": bodies::request_metadata("Decrypt"),
        "ciphertext": B64.encode([1u8; 32]),
        "initializationVector": B64.encode([2u8; 12]),
        "authenticationTag": B64.encode([3u8; 16]),
        "encryptionAlgorithm": "AES_GCM",
    });
    body[field] = value;
    body
}

#[tokio::test(flavor = "multi_thread")]
async fn refusals_never_echo_request_content() {
    let buffer = keyhold_tests::logs::CapturedLogs::install("info,keyhold=trace");

    let server = TestServer::builder()
        .admin()
        .xks_line("max_body_bytes = 32768")
        .start()
        .await;
    let c = server.client();
    let mut k = Canaries::default();

    // --- XKS, unsigned.
    let canary = k.next("unsigned double-encoded body");
    let body = serde_json::to_string(&json!({"plaintext": canary}).to_string()).unwrap();
    let r = c
        .send(&RawRequest::new(
            "POST",
            &c.op_path(&format!("/keys/{KEY_ALL}/encrypt")),
            body,
        ))
        .await;
    k.saw("unsigned double-encoded body", &r);
    let canary = k.next("authorization header");
    let auth = format!(
        "AWS4-HMAC-SHA256 Credential={canary}/20260101/us-east-1/{canary}/aws4_request, SignedHeaders=host;x-amz-date, Signature={canary}"
    );
    let r = c
        .send(
            &RawRequest::new("POST", &c.op_path("/health"), "{}")
                .with_header("authorization", &auth)
                .with_header("x-amz-date", &k.next("x-amz-date")),
        )
        .await;
    k.saw("authorization header", &r);
    let canary = k.next("credential scope service");
    let auth = format!(
        "AWS4-HMAC-SHA256 Credential={}/20260101/us-east-1/{canary}/aws4_request, SignedHeaders=host;x-amz-date, Signature={}",
        keyhold_tests::Credential::a().access_key_id,
        "0".repeat(64)
    );
    let r = c
        .send(
            &RawRequest::new("POST", &c.op_path("/health"), "{}")
                .with_header("authorization", &auth),
        )
        .await;
    k.saw("credential scope service", &r);
    let canary = k.next("path prefix");
    let r = c
        .send(&RawRequest::new(
            "POST",
            &format!("/{canary}/kms/xks/v1/health"),
            "{}",
        ))
        .await;
    k.saw("path prefix", &r);
    let canary = k.next("method");
    let r = c
        .send(&RawRequest::new(&canary, &c.op_path("/health"), "{}"))
        .await;
    k.saw("method", &r);
    let canary = k.next("load-balancer method");
    let r = c
        .send(&RawRequest::new(
            &canary,
            keyhold_tests::fixture::LB_HEALTH,
            "",
        ))
        .await;
    k.saw("load-balancer method", &r);
    // Two Authorization headers, the second carrying a canary.
    let canary = k.next("second authorization header");
    let req =
        signed(&c, "/health", bodies::health().to_string()).with_header("authorization", &canary);
    let r = c.send(&req).await;
    k.saw("second authorization header", &r);

    // --- XKS, signed: the body.
    let encrypt = format!("/keys/{KEY_ALL}/encrypt");
    let decrypt = format!("/keys/{KEY_ALL}/decrypt");
    let canary = k.next("signed double-encoded body");
    let inner = json!({"requestMetadata": bodies::request_metadata("Encrypt"), "plaintext": B64.encode(&canary), "note": canary});
    let body = serde_json::to_string(&inner.to_string()).unwrap();
    let r = c.send(&signed(&c, &encrypt, body)).await;
    k.saw("signed double-encoded body", &r);
    let canary = k.next("broken JSON");
    let r = c
        .send(&signed(
            &c,
            &encrypt,
            format!("{{\"plaintext\": \"{canary}"),
        ))
        .await;
    k.saw("broken JSON", &r);
    let canary = k.next("trailing garbage");
    let body = format!("{} {canary}", bodies::encrypt(b"x", None, false));
    let r = c.send(&signed(&c, &encrypt, body)).await;
    k.saw("trailing garbage", &r);
    for field in [
        "plaintext",
        "additionalAuthenticatedData",
        "encryptionAlgorithm",
        "ciphertextDataIntegrityValueAlgorithm",
    ] {
        for (kind, value) in ENCRYPT_BAD {
            let what = format!("encrypt {field}: {kind}");
            k.probe(&c, &what, |canary| {
                signed(&c, &encrypt, encrypt_with(field, value(canary)).to_string())
            })
            .await;
        }
    }
    for field in [
        "ciphertext",
        "initializationVector",
        "authenticationTag",
        "additionalAuthenticatedData",
        "ciphertextMetadata",
        "encryptionAlgorithm",
    ] {
        for (kind, value) in DECRYPT_BAD {
            // A well-formed ciphertext or AAD is refused by the key source instead (the
            // tag does not verify).
            let kind = match (kind, field) {
                ("wrong length", "ciphertext" | "additionalAuthenticatedData") => "does not verify",
                _ => kind,
            };
            let what = format!("decrypt {field}: {kind}");
            k.probe(&c, &what, |canary| {
                signed(&c, &decrypt, decrypt_with(field, value(canary)).to_string())
            })
            .await;
        }
    }
    // The plaintext and AAD of a refused decrypt (bad tag) never show.
    k.probe(&c, "aad of a failing decrypt", |canary| {
        let aad = json!(B64.encode(canary));
        signed(
            &c,
            &decrypt,
            decrypt_with("additionalAuthenticatedData", aad).to_string(),
        )
    })
    .await;
    // Oversized fields and bodies.
    let canary = k.next("oversized plaintext");
    let big = B64.encode(canary.repeat(4300 / canary.len() + 2));
    let r = c
        .send(&signed(
            &c,
            &encrypt,
            encrypt_with("plaintext", json!(big)).to_string(),
        ))
        .await;
    k.saw("oversized plaintext", &r);
    let canary = k.next("oversized body");
    let big = encrypt_with("padding", json!(canary.repeat(40000 / canary.len() + 2)));
    let r = c.send(&signed(&c, &encrypt, big.to_string())).await;
    k.saw("oversized body", &r);
    // Request metadata values (besides the logged ids) that are refused.
    for field in [
        "awsPrincipalArn",
        "kmsKeyArn",
        "kmsViaService",
        "awsSourceVpc",
    ] {
        let what = format!("requestMetadata.{field}: wrong type");
        let canary = k.next(&what);
        let mut body = bodies::encrypt(b"x", None, false);
        body["requestMetadata"][field] = json!({"v": canary});
        let r = c.send(&signed(&c, &encrypt, body.to_string())).await;
        k.saw(&what, &r);
    }
    let canary = k.next("metadata missing its request id");
    let mut body = bodies::encrypt(b"x", None, false);
    body["requestMetadata"] = json!({"awsPrincipalArn": canary});
    let r = c.send(&signed(&c, &encrypt, body.to_string())).await;
    k.saw("metadata missing its request id", &r);

    // --- The admin API.
    let admin = server.admin();
    let password = k.next("login password");
    let r = admin.try_login("root", &password).await;
    k.saw("login password", &r);
    for (what, body) in [
        (
            "login: password of the wrong type",
            json!({"user": "root", "password": {"v": "C"}}),
        ),
        ("login: body a JSON string", json!("C")),
        (
            "login: user of the wrong type",
            json!({"user": ["C"], "password": "x"}),
        ),
    ] {
        let canary = k.next(what);
        let body: Value =
            serde_json::from_str(&body.to_string().replace('C', &canary)).expect("json");
        let r = admin
            .try_send(&admin.raw("POST", "/api/v1/login", Some(&body)))
            .await
            .expect("admin answer");
        k.saw(what, &r);
    }
    let canary = k.next("login: broken JSON");
    let mut raw = admin.raw("POST", "/api/v1/login", None);
    raw.body = format!("{{\"user\": \"root\", \"password\": \"{canary}").into();
    let r = admin.try_send(&raw).await.expect("admin answer");
    k.saw("login: broken JSON", &r);
    let canary = k.next("bearer token");
    let r = admin.with_token(&canary).get("/api/v1/stores").await;
    k.saw("bearer token", &r);
    let root = server.root().await;
    let canary = k.next("path parameter: invalid UTF-8");
    let r = root.get(&format!("/api/v1/users/%FF{canary}")).await;
    k.saw("path parameter: invalid UTF-8", &r);
    let canary = k.next("create user: short password");
    let r = root
        .post(
            "/api/v1/users",
            &json!({"name": "someone", "password": &canary[..6], "groups": ["users"]}),
        )
        .await;
    k.saw("create user: short password", &r);
    let canary = k.next("create user: password of the wrong type");
    let r = root
        .post(
            "/api/v1/users",
            &json!({"name": "someone", "password": [canary], "groups": ["users"]}),
        )
        .await;
    k.saw("create user: password of the wrong type", &r);
    let canary = k.next("aws connection: unknown enum value");
    let r = root
        .post(
            "/api/v1/connections/aws",
            &json!({"name": "c1", "access_key_id": "AKIAEXAMPLEEXAMPLE12", "secret_access_key": "s",
                    "sts_regional_endpoints": canary}),
        )
        .await;
    k.saw("aws connection: unknown enum value", &r);
    let canary = k.next("aws connection: secret of the wrong type");
    let r = root
        .post(
            "/api/v1/connections/aws",
            &json!({"name": "c2", "access_key_id": "AKIAEXAMPLEEXAMPLE12", "secret_access_key": {"v": canary}}),
        )
        .await;
    k.saw("aws connection: secret of the wrong type", &r);

    let audit_dir = server.path().to_path_buf();
    let audit_keep = server.dir.clone();
    server.stop().await;
    let mut audit = String::new();
    for entry in std::fs::read_dir(&audit_dir).expect("data dir") {
        let p = entry.expect("entry").path();
        let name = p
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        if name.starts_with("audit.jsonl") {
            audit += &std::fs::read_to_string(&p).expect("audit segment");
        }
    }
    drop(audit_keep);
    let logs = buffer.text();
    assert!(logs.contains("xks request refused"), "logs are captured");
    assert!(audit.contains("\"kind\":\"xks\""), "refusals are audited");

    let mut found = Vec::new();
    for (what, canary) in &k.issued {
        for (reply_of, body) in &k.bodies {
            if body.contains(canary.as_str()) {
                found.push(format!("{what}: in the response to '{reply_of}': {body}"));
            }
        }
        if logs.contains(canary.as_str()) {
            let line = logs
                .lines()
                .find(|l| l.contains(canary.as_str()))
                .unwrap_or("");
            found.push(format!("{what}: in the log: {line}"));
        }
        if audit.contains(canary.as_str()) {
            found.push(format!("{what}: in the audit log"));
        }
    }
    assert!(
        found.is_empty(),
        "request content echoed:\n{}",
        found.join("\n")
    );
    println!(
        "{} canaries through {} refusals: none echoed",
        k.issued.len(),
        k.bodies.len()
    );
}

//! Connections through the running server: HSM connections (SoftHSM2 token) with their
//! test, luna key sources created from them at run time (serving XKS, re-opened after
//! a restart), and AWS connections (secret sealed at rest) tested against an in-test
//! KMS stub that verifies the SigV4 signature.

use std::{
    convert::Infallible,
    net::SocketAddr,
    time::{Duration, SystemTime},
};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Request, Response, body::Incoming, service::service_fn};
use hyper_util::rt::TokioIo;
use keyhold::model::keys;
use keyhold_tests::{
    Credential, TestServer, XksClient,
    admin::{
        AdminClient, credential_of, data_key, expect_each_error, expect_error, expect_status,
        health_check_key,
    },
    luna::{self, LunaToken},
    sign::Signer,
};
use serde_json::{Value, json};

async fn server() -> TestServer {
    TestServer::admin_only().start().await
}

fn hsm_body(name: &str, label: &str, pin_file: &std::path::Path) -> Value {
    let env = luna::env();
    json!({
        "name": name,
        "module": luna::plugin_module(),
        "token_label": label,
        "pin_file": pin_file.to_string_lossy(),
        "module_env": {"SOFTHSM2_CONF": env.conf.to_string_lossy()},
        "pool_size": 2,
    })
}

async fn test_connection(root: &AdminClient, kind: &str, name: &str, body: &Value) -> Value {
    let r = root
        .post(&format!("/api/v1/connections/{kind}/{name}/test"), body)
        .await;
    expect_status(&r, 200)
}

/// Creates HSM connection `body` (201) and tests it: it must fail; returns the reason.
async fn failed_connection(root: &AdminClient, body: &Value) -> String {
    let r = root.post("/api/v1/connections/hsm", body).await;
    expect_status(&r, 201);
    let name = body["name"].as_str().expect("name");
    let t = test_connection(root, "hsm", name, &json!({})).await;
    assert_eq!(t["status"], "Failed", "{t}");
    t["reason"].as_str().expect("reason").to_string()
}

/// Source `name` as `GET /api/v1/sources` lists it.
async fn listed_source(root: &AdminClient, name: &str) -> Value {
    let sources = expect_status(&root.get("/api/v1/sources").await, 200);
    sources
        .as_array()
        .expect("array")
        .iter()
        .find(|s| s["name"] == name)
        .unwrap_or_else(|| panic!("{name} listed: {sources}"))
        .clone()
}

/// A non-admin user's client.
async fn user(server: &TestServer, root: &AdminClient) -> AdminClient {
    let r = root
        .create_user("bob", "correct horse", Some(&json!(["users"])))
        .await;
    expect_status(&r, 201);
    server.admin().login("bob", "correct horse").await
}

#[tokio::test(flavor = "multi_thread")]
async fn hsm_connection_test_luna_source_store_and_restart() {
    if !luna::available() {
        eprintln!("SoftHSM2 is not installed: skipped");
        return;
    }
    let token = LunaToken::new();
    let env = luna::env();
    let server = server().await;
    let root = server.root().await;

    // A wrong PIN (tested first: once a source of this process is logged in to the
    // token, PKCS#11 login state is shared) fails, naming the token, never the PIN.
    let wrong_pin = "wrong-pin-000111";
    let wrong_file = server.path().join("wrong.pin");
    std::fs::write(&wrong_file, format!("{wrong_pin}\n")).expect("write PIN file");
    let body = hsm_body("bad-pin", &token.label, &wrong_file);
    let reason = failed_connection(&root, &body).await;
    assert!(reason.contains(&token.label), "{reason}");
    assert!(!reason.contains(wrong_pin) && !reason.contains(luna::USER_PIN));

    // An unknown label and a missing module fail with their reasons.
    let body = hsm_body("no-token", "no-such-token-label", &env.pin_file);
    let reason = failed_connection(&root, &body).await;
    assert!(reason.contains("no-such-token-label"), "{reason}");
    let mut missing = hsm_body("no-module", &token.label, &env.pin_file);
    missing["module"] = json!("/nonexistent/libpkcs11.so");
    let reason = failed_connection(&root, &missing).await;
    assert!(reason.contains("/nonexistent/libpkcs11.so"), "{reason}");

    // Input rules: a PIN reference is required, exactly one of them; unknown fields
    // (e.g. a PIN) are refused.
    for (name, field, value, code) in [
        ("both", "pin_env", "SOME_PIN", "invalid_input"),
        ("pin", "pin", "1234", "invalid_json"),
    ] {
        let mut body = hsm_body(name, &token.label, &env.pin_file);
        body[field] = json!(value);
        let r = root.post("/api/v1/connections/hsm", &body).await;
        expect_error(&r, 400, code);
    }

    // The good connection: Ready, with the token's model.
    let r = root
        .post(
            "/api/v1/connections/hsm",
            &hsm_body("hsm1", &token.label, &env.pin_file),
        )
        .await;
    let created = expect_status(&r, 201);
    assert_eq!(created["token_label"], token.label.as_str());
    expect_error(
        &root
            .post(
                "/api/v1/connections/hsm",
                &hsm_body("hsm1", &token.label, &env.pin_file),
            )
            .await,
        409,
        "already_exists",
    );
    let got = expect_status(&root.get("/api/v1/connections/hsm/hsm1").await, 200);
    assert_eq!(got["pin_file"], env.pin_file.to_string_lossy().as_ref());
    let listed = expect_status(&root.get("/api/v1/connections/hsm").await, 200);
    assert_eq!(listed.as_array().expect("array").len(), 4);
    let t = test_connection(&root, "hsm", "hsm1", &json!({})).await;
    assert_eq!(t["status"], "Ready", "{t}");
    let model = t["model"].as_str().expect("model");
    assert!(model.contains(&token.model()), "{model}");
    assert!(model.contains(&token.label), "{model}");

    // Non-admins may not see or use connections.
    let bob = user(&server, &root).await;
    let luna_source = json!({"name": "x", "plugin": "luna", "hsm_connection": "hsm1"});
    let refused = [
        ("GET", "/api/v1/connections/hsm", None),
        ("POST", "/api/v1/connections/hsm/hsm1/test", Some(json!({}))),
        ("POST", "/api/v1/sources", Some(luna_source)),
    ];
    expect_each_error(&bob, &refused, 403, "admin_only").await;

    // A luna source from the connection, opened in the running server.
    let r = root
        .post(
            "/api/v1/sources",
            &json!({"name": "hsm-src", "plugin": "luna", "hsm_connection": "hsm1"}),
        )
        .await;
    let src = expect_status(&r, 201);
    assert_eq!(src["status"], "opened", "{src}");
    assert_eq!(src["container"], token.label.as_str());
    assert_eq!(src["hsm_connection"], "hsm1");
    for (name, plugin, connection, status, code) in [
        ("hsm-src", "luna", "hsm1", 409, "already_exists"),
        ("ctm", "luna", "hsm1", 409, "already_exists"),
        ("other", "luna", "nope", 404, "not_found"),
        ("other", "ctm", "hsm1", 400, "invalid_input"),
    ] {
        let body = json!({"name": name, "plugin": plugin, "hsm_connection": connection});
        expect_error(&root.post("/api/v1/sources", &body).await, status, code);
    }
    let listed = listed_source(&root, "hsm-src").await;
    assert_eq!(listed["status"], "opened");
    assert_eq!(listed["plugin"], "luna");

    // A connection a source was made from cannot be deleted.
    let msg = expect_error(
        &root.delete("/api/v1/connections/hsm/hsm1").await,
        409,
        "connection_in_use",
    );
    assert!(msg.contains("hsm-src"), "{msg}");
    assert_eq!(
        root.delete("/api/v1/connections/hsm/no-module")
            .await
            .status
            .as_u16(),
        204
    );

    // Keys, a store on the new source, and XKS with the returned credentials.
    let r = root
        .create_source_key("hsm-src", &health_check_key("hc"))
        .await;
    expect_status(&r, 201);
    let r = root.create_source_key("hsm-src", &data_key("data-1")).await;
    expect_status(&r, 201);
    let r = root
        .create_store(&json!({"name": "hsm-store", "source": "hsm-src", "health_check_key": "hc"}))
        .await;
    let created = expect_status(&r, 201);
    assert_eq!(created["store"]["container"], token.label.as_str());
    let id = created["store"]["id"].as_str().expect("id").to_string();
    let file = &created["credentials_file"];
    let uri_path = file["XksProxyUriPath"]
        .as_str()
        .expect("uri path")
        .to_string();
    let cred = credential_of(file);
    let r = root
        .post(
            &format!("/api/v1/stores/{id}/keys"),
            &json!({"external_id": "k1", "source_key": "data-1"}),
        )
        .await;
    expect_status(&r, 201);
    let xks = XksClient::new(server.transport(), cred.clone(), &uri_path);
    xks.health().await.ok_json();
    let sealed = xks.encrypt_ok("k1", b"hello luna", None).await;
    assert_eq!(xks.decrypt_ok("k1", &sealed, None).await, b"hello luna");

    // Restart: the source is re-opened from its record and the store still serves.
    let builder = server.builder.clone();
    let dir = server.stop().await;
    let server = builder.in_dir(dir).start().await;
    assert!(
        server.running.failed_sources.is_empty(),
        "{:?}",
        server.running.failed_sources
    );
    let root = server.root().await;
    let listed = listed_source(&root, "hsm-src").await;
    assert_eq!(listed["status"], "opened", "{listed}");
    let xks = XksClient::new(server.transport(), cred, &uri_path);
    xks.health().await.ok_json();
    assert_eq!(xks.decrypt_ok("k1", &sealed, None).await, b"hello luna");
    let again = xks.encrypt_ok("k1", b"after restart", None).await;
    assert_eq!(xks.decrypt_ok("k1", &again, None).await, b"after restart");
    server.stop().await;
}

// ----- AWS connections against an in-test KMS stub -----

const AKID: &str = "AKIAKEYHOLDTEST00001";
const SECRET: &str = "kmsStubSecretKey/0123456789+abcdefghijKLMN";
const WRONG_SECRET: &str = "kmsStubSecretKey/0123456789+abcdefghijXXXX";

fn aws_error(status: u16, kind: &str, message: &str) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header("content-type", "application/x-amz-json-1.1")
        .body(Full::new(Bytes::from(
            json!({"__type": kind, "message": message}).to_string(),
        )))
        .expect("response")
}

/// Recomputes the SigV4 signature of `req` (service `kms`) with the stub's secret,
/// over the headers the client signed.
fn expected_authorization(
    parts: &http::request::Parts,
    body: &[u8],
    region: &str,
    at: SystemTime,
    signed: &[&str],
) -> Option<String> {
    let cred = Credential::new(AKID, SECRET);
    let signer = Signer {
        cred: &cred,
        service: "kms",
        region,
    };
    let headers: Vec<(&str, &str)> = signed
        .iter()
        .filter(|n| **n != "x-amz-date")
        .filter_map(|n| Some((*n, parts.headers.get(*n)?.to_str().ok()?)))
        .collect();
    let host = parts.headers.get("host")?.to_str().ok()?;
    signer
        .headers("POST", host, parts.uri.path(), headers, body, at)
        .ok()?
        .into_iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("authorization"))
        .map(|(_, v)| v)
}

async fn kms_stub(req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let (parts, body) = req.into_parts();
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let header = |n: &str| {
        parts
            .headers
            .get(n)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string()
    };
    if parts.method != http::Method::POST
        || header("x-amz-target") != "TrentService.ListKeys"
        || header("content-type") != "application/x-amz-json-1.1"
    {
        return Ok(aws_error(400, "UnknownOperationException", "not ListKeys"));
    }
    let auth = header("authorization");
    let Some(rest) = auth.strip_prefix("AWS4-HMAC-SHA256 Credential=") else {
        return Ok(aws_error(
            400,
            "MissingAuthenticationTokenException",
            "Request is missing Authentication Token",
        ));
    };
    // Credential=<akid>/<date>/<region>/kms/aws4_request, SignedHeaders=..., Signature=...
    let scope: Vec<&str> = rest.split(',').next().unwrap_or("").split('/').collect();
    if scope.len() != 5 || scope[3] != "kms" || scope[4] != "aws4_request" {
        return Ok(aws_error(400, "IncompleteSignatureException", "bad scope"));
    }
    if scope[0] != AKID {
        return Ok(aws_error(
            400,
            "UnrecognizedClientException",
            "The security token included in the request is invalid.",
        ));
    }
    let signed: Vec<&str> = auth
        .split("SignedHeaders=")
        .nth(1)
        .and_then(|s| s.split(',').next())
        .unwrap_or("")
        .split(';')
        .collect();
    let at = time::PrimitiveDateTime::parse(
        &header("x-amz-date"),
        time::macros::format_description!("[year][month][day]T[hour][minute][second]Z"),
    )
    .map(|t| SystemTime::from(t.assume_utc()));
    let expected = at
        .ok()
        .and_then(|at| expected_authorization(&parts, &body, scope[2], at, &signed));
    if expected.as_deref() != Some(auth.as_str()) {
        return Ok(aws_error(
            400,
            "UnrecognizedClientException",
            "The request signature we calculated does not match the signature you provided.",
        ));
    }
    Ok(Response::builder()
        .status(200)
        .header("content-type", "application/x-amz-json-1.1")
        .body(Full::new(Bytes::from(
            json!({"Keys": [{"KeyId": "1234abcd-12ab-34cd-56ef-1234567890ab",
                             "KeyArn": "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"}],
                   "Truncated": false})
            .to_string(),
        )))
        .expect("response"))
}

async fn start_kms_stub() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service_fn(kms_stub))
                    .await;
            });
        }
    });
    addr
}

fn aws_body(name: &str, secret: &str, endpoint: Option<String>) -> Value {
    let mut b = json!({
        "name": name,
        "access_key_id": AKID,
        "secret_access_key": secret,
        "sts_regional_endpoints": "regional",
    });
    if let Some(e) = endpoint {
        b["endpoint_url"] = json!(e);
    }
    b
}

#[tokio::test(flavor = "multi_thread")]
async fn aws_connections_sealed_tested_and_referenced() {
    let stub = start_kms_stub().await;
    let endpoint = format!("http://{stub}/");
    let server = server().await;
    let root = server.root().await;

    let r = root
        .post(
            "/api/v1/connections/aws",
            &aws_body("aws1", SECRET, Some(endpoint.clone())),
        )
        .await;
    let created = expect_status(&r, 201);
    assert!(!created.to_string().contains(SECRET), "{created}");
    assert!(created.get("sealed_secret_access_key").is_none());
    assert_eq!(created["endpoint_url"], endpoint.as_str());
    expect_error(
        &root
            .post("/api/v1/connections/aws", &aws_body("aws1", SECRET, None))
            .await,
        409,
        "already_exists",
    );
    let got = expect_status(&root.get("/api/v1/connections/aws/aws1").await, 200);
    assert_eq!(got["access_key_id"], AKID);
    assert_eq!(got["sts_regional_endpoints"], "regional");
    assert!(!got.to_string().contains(SECRET), "{got}");
    assert!(
        got.get("secret_access_key").is_none() && got.get("sealed_secret_access_key").is_none()
    );
    let listed = expect_status(&root.get("/api/v1/connections/aws").await, 200);
    assert!(!listed.to_string().contains(SECRET));
    assert!(!listed.to_string().contains("sealed"));

    // At rest: sealed under the master key with the record's key as context.
    let key = keys::aws_connection("aws1");
    let raw = server.store().get(&key).expect("get").expect("record");
    let text = String::from_utf8_lossy(&raw.value).to_string();
    assert!(!text.contains(SECRET), "{text}");
    let rec: keyhold::model::AwsConnectionRecord =
        serde_json::from_slice(&raw.value).expect("json");
    let opened = server
        .master_key()
        .open(&rec.sealed_secret_access_key, &key)
        .expect("unseals with its key as context");
    assert_eq!(opened.as_slice(), SECRET.as_bytes());
    assert!(
        server
            .master_key()
            .open(&rec.sealed_secret_access_key, "connections/aws/other")
            .is_err()
    );

    // Test against the stub: Ready; a wrong secret is refused by the stub with the AWS
    // error; an unknown endpoint fails with the connection error.
    let t = test_connection(&root, "aws", "aws1", &json!({"region": "eu-west-1"})).await;
    assert_eq!(t["status"], "Ready", "{t}");
    let t = test_connection(&root, "aws", "aws1", &json!({})).await;
    assert_eq!(t["status"], "Ready", "{t}");
    expect_status(
        &root
            .post(
                "/api/v1/connections/aws",
                &aws_body("aws-wrong", WRONG_SECRET, Some(endpoint.clone())),
            )
            .await,
        201,
    );
    let t = test_connection(&root, "aws", "aws-wrong", &json!({})).await;
    assert_eq!(t["status"], "Failed", "{t}");
    let reason = t["reason"].as_str().expect("reason");
    assert!(reason.contains("AWS KMS ListKeys"), "{reason}");
    assert!(reason.contains("UnrecognizedClientException"), "{reason}");
    assert!(
        reason.contains("signature we calculated does not match"),
        "AWS's message: {reason}"
    );
    assert!(
        reason.contains("check the AWS connection's"),
        "what to do: {reason}"
    );
    assert!(!reason.contains(WRONG_SECRET));
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr")
    };
    expect_status(
        &root
            .post(
                "/api/v1/connections/aws",
                &aws_body("aws-down", SECRET, Some(format!("http://{closed}"))),
            )
            .await,
        201,
    );
    let t = test_connection(&root, "aws", "aws-down", &json!({})).await;
    assert_eq!(t["status"], "Failed", "{t}");
    assert!(
        t["reason"]
            .as_str()
            .expect("reason")
            .contains("cannot reach the endpoint"),
        "{t}"
    );
    // Without an override the default endpoint is tried (no AWS here): Failed, bounded.
    expect_status(
        &root
            .post(
                "/api/v1/connections/aws",
                &aws_body("aws-default", SECRET, None),
            )
            .await,
        201,
    );
    let started = std::time::Instant::now();
    let t = test_connection(&root, "aws", "aws-default", &json!({"region": "eu-west-1"})).await;
    assert!(started.elapsed() < Duration::from_secs(20));
    assert_eq!(t["endpoint"], "https://kms.eu-west-1.amazonaws.com", "{t}");
    if t["status"] == "Failed" {
        assert!(
            t["reason"]
                .as_str()
                .expect("reason")
                .contains("kms.eu-west-1.amazonaws.com"),
            "{t}"
        );
    }

    // Input rules.
    expect_error(
        &root
            .post(
                "/api/v1/connections/aws",
                &aws_body("bad-url", SECRET, Some("ftp://x".into())),
            )
            .await,
        400,
        "invalid_input",
    );
    let mut bad = aws_body("bad-sts", SECRET, None);
    bad["sts_regional_endpoints"] = json!("sometimes");
    expect_error(
        &root.post("/api/v1/connections/aws", &bad).await,
        400,
        "invalid_json",
    );

    // Accounts reference connections; a referenced connection cannot be deleted.
    let r = root
        .post(
            "/api/v1/accounts",
            &json!({"id": "111122223333", "name": "prod", "regions": ["eu-west-1"],
                    "aws_connection": "aws1"}),
        )
        .await;
    let acc = expect_status(&r, 201);
    assert_eq!(acc["aws_connection"], "aws1");
    expect_error(
        &root
            .post(
                "/api/v1/accounts",
                &json!({"id": "444455556666", "name": "x", "aws_connection": "nope"}),
            )
            .await,
        404,
        "not_found",
    );
    let msg = expect_error(
        &root.delete("/api/v1/connections/aws/aws1").await,
        409,
        "connection_in_use",
    );
    assert!(msg.contains("111122223333"), "{msg}");
    // Unbinding the account frees it.
    let r = root
        .request(
            "PUT",
            "/api/v1/accounts/111122223333",
            Some(&json!({"aws_connection": ""})),
            &[],
        )
        .await;
    let acc = expect_status(&r, 200);
    assert!(acc.get("aws_connection").is_none() || acc["aws_connection"].is_null());
    assert_eq!(
        root.delete("/api/v1/connections/aws/aws1")
            .await
            .status
            .as_u16(),
        204
    );
    expect_error(
        &root.get("/api/v1/connections/aws/aws1").await,
        404,
        "not_found",
    );

    // Non-admins get 403 everywhere.
    let bob = user(&server, &root).await;
    let refused = [
        ("GET", "/api/v1/connections/aws", None),
        ("GET", "/api/v1/connections/aws/aws-wrong", None),
        (
            "POST",
            "/api/v1/connections/aws",
            Some(aws_body("b", SECRET, None)),
        ),
        (
            "POST",
            "/api/v1/connections/aws/aws-wrong/test",
            Some(json!({})),
        ),
        ("DELETE", "/api/v1/connections/aws/aws-wrong", None),
    ];
    expect_each_error(&bob, &refused, 403, "admin_only").await;

    // Every change is audited, never with the secret.
    server.running.audit.flush().expect("audit flush");
    let audit = std::fs::read_to_string(server.cfg.audit_path()).expect("audit log");
    assert!(audit.contains("create_aws_connection"));
    assert!(audit.contains("test_aws_connection"));
    assert!(!audit.contains(SECRET) && !audit.contains(WRONG_SECRET));
    server.stop().await;
}

//! SigV4 authentication through the real server: AWS's signer and curl's verify; every
//! kind of tampering and wrong credential is a 401 AuthenticationFailedException.

use std::time::{Duration, SystemTime};

use keyhold_tests::{
    Credential, RawRequest, TestServer, XksClient, bodies,
    fixture::{BASE, KEY_ALL},
};

fn encrypt_request(client: &XksClient) -> RawRequest {
    RawRequest::post_json(
        &client.op_path(&format!("/keys/{KEY_ALL}/encrypt")),
        &bodies::encrypt(b"sigv4 test", None, false),
    )
}

// Shared with the luna suite (keyhold_tests::suite).
keyhold_tests::xks_suite!(
    keyhold_tests::SourceFixture::suite_default();
    aws_sigv4_signed_requests_verify_with_both_credentials,
);

fn curl(args: &[String]) -> (u16, serde_json::Value) {
    let out = std::process::Command::new("curl")
        .args(args)
        .output()
        .expect("run curl (is it installed?)");
    assert!(out.status.success(), "curl failed: {:?}", out);
    let text = String::from_utf8(out.stdout).expect("utf-8");
    let (body, code) = text.rsplit_once('\n').expect("status line");
    (
        code.trim().parse().expect("status code"),
        serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}")),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn curl_aws_sigv4_requests_verify() {
    let server = TestServer::start_default().await;
    let addr = server.running.xks_addr;
    for cred in [Credential::a(), Credential::b()] {
        let url = format!("http://{addr}{BASE}/keys/{KEY_ALL}/encrypt");
        let body = bodies::encrypt(b"curl was here", Some(b"ctx"), false).to_string();
        let args = |user: String, url: String, body: String| {
            vec![
                "-s".to_string(),
                "-w".into(),
                "\n%{http_code}".into(),
                "--aws-sigv4".into(),
                "aws:amz:us-east-1:kms-xks-proxy".into(),
                "--user".into(),
                user,
                "-H".into(),
                "content-type: application/json".into(),
                "-d".into(),
                body,
                url,
            ]
        };
        let user = format!("{}:{}", cred.access_key_id, cred.secret);
        let (status, json) = tokio::task::spawn_blocking({
            let a = args(user.clone(), url, body);
            move || curl(&a)
        })
        .await
        .expect("curl task");
        assert_eq!(status, 200, "{json}");
        let sealed = keyhold_tests::Sealed::from_json(&json);
        // What curl encrypted decrypts through the aws-sigv4 client.
        let plain = server
            .client()
            .decrypt_ok(KEY_ALL, &sealed, Some(b"ctx"))
            .await;
        assert_eq!(plain, b"curl was here");

        // And curl with a wrong secret is refused.
        let url = format!("http://{addr}{BASE}/health");
        let wrong = format!("{}:{}", cred.access_key_id, "A".repeat(44));
        let (status, json) = tokio::task::spawn_blocking({
            let a = args(wrong, url.clone(), bodies::health().to_string());
            move || curl(&a)
        })
        .await
        .expect("curl task");
        assert_eq!(status, 401);
        assert_eq!(json["errorName"], "AuthenticationFailedException");
        let (status, json) = tokio::task::spawn_blocking({
            let a = args(user, url, bodies::health().to_string());
            move || curl(&a)
        })
        .await
        .expect("curl task");
        assert_eq!(status, 200, "{json}");
        assert!(json["xksProxyFleetSize"].as_u64().unwrap_or(0) > 0);
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn tampered_requests_are_refused() {
    let server = TestServer::start_default().await;
    let client = server.client();
    // The untampered request works.
    let good = client.sign(encrypt_request(&client).with_header("x-test-signed", "one"));
    assert!(
        good.header("authorization")
            .expect("signed")
            .contains("x-test-signed"),
        "the extra header is signed"
    );
    client.send(&good).await.ok_json();

    let tampered = |edit: &dyn Fn(&mut RawRequest)| {
        let mut req = good.clone();
        edit(&mut req);
        req
    };
    let d = good.header("x-amz-date").expect("date").to_string();
    // Same day, other second: the scope still matches, the signature does not.
    let last = d.as_bytes()[d.len() - 2];
    let other = if last == b'0' { '1' } else { '0' };
    let other_second = format!("{}{}Z", &d[..d.len() - 2], other);
    let other_service = good
        .header("authorization")
        .expect("auth")
        .replace("kms-xks-proxy", "kms");
    let with_header = |name: &str, value: &str| tampered(&|r| r.set_header(name, value));
    let other_body = bodies::encrypt(b"sigv4 tesT", None, false).to_string();
    let other_path = client.op_path("/keys/demo-encrypt-only/encrypt");
    let mut cases: Vec<(&str, RawRequest)> = vec![
        ("body", tampered(&|r| r.body = other_body.clone().into())),
        ("path", tampered(&|r| r.path = other_path.clone())),
        ("signed header", with_header("x-test-signed", "two")),
        (
            "content-type",
            with_header("content-type", "application/json; charset=utf-8"),
        ),
        ("date", with_header("x-amz-date", &other_second)),
        (
            "missing Authorization",
            tampered(&|r| r.remove_header("authorization")),
        ),
        (
            "malformed Authorization",
            with_header("authorization", "AWS4-HMAC-SHA256 this is not it"),
        ),
        (
            "other scheme",
            with_header("authorization", "Basic dXNlcjpwYXNz"),
        ),
        (
            "other service",
            with_header("authorization", &other_service),
        ),
    ];

    cases.push((
        "wrong secret",
        client
            .with_cred(Credential::new(
                &Credential::a().access_key_id,
                &"B".repeat(44),
            ))
            .sign(encrypt_request(&client)),
    ));
    cases.push((
        "secret of the other credential",
        client
            .with_cred(Credential::new(
                &Credential::a().access_key_id,
                &Credential::b().secret,
            ))
            .sign(encrypt_request(&client)),
    ));
    cases.push((
        "unknown access key id",
        client
            .with_cred(Credential::new(
                "ABCDEFGHIJKLMNOPQRSTUVWX",
                &Credential::a().secret,
            ))
            .sign(encrypt_request(&client)),
    ));
    cases.push((
        "stale (6 minutes old)",
        client.sign_at(
            encrypt_request(&client),
            SystemTime::now() - Duration::from_secs(360),
        ),
    ));
    cases.push((
        "future (6 minutes ahead)",
        client.sign_at(
            encrypt_request(&client),
            SystemTime::now() + Duration::from_secs(360),
        ),
    ));
    for (what, req) in cases {
        let reply = client.send(&req).await;
        let msg = reply.assert_error(401, "AuthenticationFailedException");
        println!("{what}: {msg}");
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn signing_within_the_clock_window_is_accepted() {
    let server = TestServer::start_default().await;
    let client = server.client();
    for offset in [-240i64, 240] {
        let at = if offset < 0 {
            SystemTime::now() - Duration::from_secs(offset.unsigned_abs())
        } else {
            SystemTime::now() + Duration::from_secs(offset as u64)
        };
        let req = client.sign_at(encrypt_request(&client), at);
        client.send(&req).await.ok_json();
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn credentials_of_one_store_do_not_open_another_path() {
    // Signed correctly, but for the wrong path prefix: the path is unknown (404), and a
    // request signed for one path cannot be replayed on another path of the store.
    let server = TestServer::start_default().await;
    let client = server.client();
    let req = client.sign(RawRequest::post_json(
        "/tenants/other/kms/xks/v1/health",
        &bodies::health(),
    ));
    client
        .send(&req)
        .await
        .assert_error(404, "InvalidUriPathException");
    let mut replay = client.sign(RawRequest::post_json(
        &client.op_path("/health"),
        &bodies::health(),
    ));
    client.send(&replay).await.ok_json();
    replay.path = client.op_path(&format!("/keys/{KEY_ALL}/metadata"));
    client
        .send(&replay)
        .await
        .assert_error(401, "AuthenticationFailedException");
    server.stop().await;
}

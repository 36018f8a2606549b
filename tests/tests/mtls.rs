//! Mutual TLS per key store, over the real TLS stack: a store with mutual TLS on
//! refuses requests without a client certificate from its CA with an accepted CN
//! (`AuthenticationFailedException` saying why), a store without it keeps serving
//! clients without certificates, and a certificate no store could accept is refused in
//! the handshake with a TLS alert that reaches the client (rustls and curl).

use std::{process::Command, sync::Arc};

use keyhold_tests::{
    Proto, RawRequest, TestServer, XksClient,
    admin::{
        AdminClient, created_store_id, credential_of, etag, expect_error, expect_status,
        health_check_key,
    },
    bodies,
    paths::toml_str,
    pki::{ClientTls, Issued, TestCa},
};
use serde_json::json;

const AWS_CN: &str = "cks.kms.us-east-1.amazonaws.com";

struct World {
    server: TestServer,
    root: AdminClient,
    server_ca: TestCa,
    /// The listener's default client CA (`xks.tls.client_ca_file`).
    listener_ca: TestCa,
    dir: Arc<tempfile::TempDir>,
}

/// An HTTPS XKS listener whose default client CA is `listener_ca` with AWS's CN, and the
/// admin API.
async fn world() -> World {
    let dir = Arc::new(tempfile::tempdir().expect("tempdir"));
    let server_ca = TestCa::new("keyhold test CA");
    let listener_ca = TestCa::new("listener client CA");
    let (cert, key) = server_ca.server_cert().write(dir.path(), "server");
    let ca_path = listener_ca.write(dir.path(), "client-ca.pem");
    let lines = vec![
        format!("cert_file = {}", toml_str(cert.to_string_lossy())),
        format!("key_file = {}", toml_str(key.to_string_lossy())),
        format!("client_ca_file = {}", toml_str(ca_path.to_string_lossy())),
        format!("client_cn = [{}]", toml_str(AWS_CN)),
    ];
    let mut server = TestServer::builder()
        .tls(&lines)
        .admin()
        .in_dir(dir.clone())
        .start()
        .await;
    server.ca_pem = Some(server_ca.pem());
    let root = server.root().await;
    World {
        server,
        root,
        server_ca,
        listener_ca,
        dir,
    }
}

impl World {
    /// Creates a store with `mtls` settings (and its own health-check key); returns its
    /// id and a client for it (no client certificate).
    async fn store(&self, name: &str, settings: serde_json::Value) -> (String, XksClient) {
        let hc = format!("hc-{name}");
        let r = self
            .root
            .create_source_key("ctm", &health_check_key(&hc))
            .await;
        expect_status(&r, 201);
        let mut body = json!({"name": name, "source": "ctm", "health_check_key": hc});
        if let (Some(b), Some(s)) = (body.as_object_mut(), settings.as_object()) {
            b.extend(s.clone());
        }
        let r = self.root.create_store(&body).await;
        let created = expect_status(&r, 201);
        let file = &created["credentials_file"];
        let path = file["XksProxyUriPath"].as_str().expect("uri path");
        let client = XksClient::new(self.server.transport(), credential_of(file), path);
        (created_store_id(&r), client)
    }

    /// `client` presenting `cert` (none: no certificate) over `proto`.
    fn with_cert(&self, client: &XksClient, cert: Option<&Issued>, proto: Proto) -> XksClient {
        let pem = self.server_ca.pem();
        let mut tls = ClientTls::trusting(&pem);
        tls.client_cert = cert;
        let t = self
            .server
            .transport()
            .with_tls(tls.build())
            .with_proto(proto);
        client.with_transport(t)
    }
}

/// PATCHes a store at its current version.
async fn patch_store(
    root: &AdminClient,
    path: &str,
    body: serde_json::Value,
) -> keyhold_tests::Reply {
    let tag = etag(&root.get(path).await);
    root.patch(path, &body, Some(&tag)).await
}

/// A signed health call: the HTTP status and the XKS error message (if any), or the
/// transport error.
async fn health(client: &XksClient) -> Result<(u16, String), String> {
    let req = client.sign(RawRequest::post_json(
        &client.op_path("/health"),
        &bodies::health(),
    ));
    let reply = client.try_send(&req).await.map_err(|e| format!("{e:?}"))?;
    let status = reply.status.as_u16();
    if status == 200 {
        return Ok((200, String::new()));
    }
    Ok((
        status,
        reply.assert_error(401, "AuthenticationFailedException"),
    ))
}

#[tokio::test(flavor = "multi_thread")]
async fn each_store_checks_its_own_ca_and_cns() {
    let w = world().await;
    let own_ca = TestCa::new("store's own client CA");
    let (_, fixture) = (w.server.store_id(), w.server.client());
    let (strict_id, strict) = w.store("strict", json!({"mtls": true})).await;
    let (_, own) = w
        .store(
            "own",
            json!({"mtls": true, "mtls_ca_pem": own_ca.pem(), "mtls_cns": ["own-client"]}),
        )
        .await;
    let aws = w.listener_ca.client_cert(AWS_CN);
    let aws_wrong_cn = w.listener_ca.client_cert("cks.kms.us-west-2.example.com");
    let own_good = own_ca.client_cert("own-client");
    let own_with_aws_cn = own_ca.client_cert(AWS_CN);

    for proto in [Proto::Http1, Proto::Http2] {
        // A store without mutual TLS: no certificate needed, and one is ignored.
        for cert in [None, Some(&aws), Some(&own_good)] {
            let c = w.with_cert(&fixture, cert, proto);
            assert_eq!(health(&c).await, Ok((200, String::new())), "{proto:?}");
        }
        // The store on the listener's defaults.
        let ok = health(&w.with_cert(&strict, Some(&aws), proto)).await;
        assert_eq!(ok, Ok((200, String::new())), "{proto:?}");
        for (cert, why) in [
            (None, "requires a client certificate and none was presented"),
            (Some(&aws_wrong_cn), "is not accepted by this key store"),
            (
                Some(&own_with_aws_cn),
                "does not chain to this key store's client CA",
            ),
        ] {
            let (status, message) = health(&w.with_cert(&strict, cert, proto))
                .await
                .expect("an XKS answer");
            assert_eq!(status, 401);
            assert!(message.starts_with("mutual TLS: "), "{message}");
            assert!(message.contains(why), "{why}: {message}");
        }
        // The store with its own CA and CN list.
        let ok = health(&w.with_cert(&own, Some(&own_good), proto)).await;
        assert_eq!(ok, Ok((200, String::new())));
        let (_, message) = health(&w.with_cert(&own, Some(&aws), proto))
            .await
            .expect("an XKS answer");
        assert!(message.contains("does not chain"), "{message}");
    }

    // Crypto works over the accepted certificate too (a key in the strict store).
    let r = w
        .root
        .create_source_key("ctm", &keyhold_tests::admin::data_key("k1"))
        .await;
    expect_status(&r, 201);
    let path = format!("/api/v1/stores/{strict_id}");
    let r = w.root.create_hyok_key(&path, "ext-1", "k1").await;
    expect_status(&r, 201);
    let c = w.with_cert(&strict, Some(&aws), Proto::Http2);
    let sealed = c.encrypt_ok("ext-1", b"behind mutual TLS", None).await;
    assert_eq!(
        c.decrypt_ok("ext-1", &sealed, None).await,
        b"behind mutual TLS"
    );
    let bare = w.with_cert(&strict, None, Proto::Http2);
    bare.encrypt("ext-1", b"no certificate", None, false)
        .await
        .assert_error(401, "AuthenticationFailedException");

    // Turning mutual TLS off lets clients without certificates in.
    let r = patch_store(&w.root, &path, json!({"mtls": false})).await;
    expect_status(&r, 200);
    assert_eq!(health(&bare).await, Ok((200, String::new())));
    w.server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_mtls_settings_are_refused_by_the_admin_api() {
    let w = world().await;
    let r = w
        .root
        .create_source_key("ctm", &health_check_key("hc-bad"))
        .await;
    expect_status(&r, 201);
    for (settings, code, says) in [
        (
            json!({"mtls_ca_pem": "not a certificate"}),
            "invalid_input",
            "mtls_ca_pem",
        ),
        (json!({"mtls_cns": [""]}), "invalid_input", "mtls_cns[0]"),
        (
            json!({"mtls_cns": ["a", "a"]}),
            "invalid_input",
            "listed twice",
        ),
    ] {
        let mut body = json!({"name": "bad", "source": "ctm", "health_check_key": "hc-bad",
                              "mtls": true});
        if let (Some(b), Some(s)) = (body.as_object_mut(), settings.as_object()) {
            b.extend(s.clone());
        }
        let r = w.root.create_store(&body).await;
        let message = expect_error(&r, 400, code);
        assert!(message.contains(says), "{message}");
    }
    w.server.stop().await;
    drop(w.dir);
}

#[tokio::test(flavor = "multi_thread")]
async fn mtls_without_any_ca_is_refused_when_enabled() {
    // A plain HTTP listener: mutual TLS is impossible there.
    let server = TestServer::builder().admin().start().await;
    let root = server.root().await;
    let id = server.store_id();
    let r = patch_store(
        &root,
        &format!("/api/v1/stores/{id}"),
        json!({"mtls": true}),
    )
    .await;
    let message = expect_error(&r, 409, "mtls_unavailable");
    assert!(message.contains("HTTPS"), "{message}");
    server.stop().await;

    // HTTPS without a listener CA: the store must bring its own.
    let dir = Arc::new(tempfile::tempdir().expect("tempdir"));
    let ca = TestCa::new("server CA");
    let (cert, key) = ca.server_cert().write(dir.path(), "server");
    let lines = vec![
        format!("cert_file = {}", toml_str(cert.to_string_lossy())),
        format!("key_file = {}", toml_str(key.to_string_lossy())),
    ];
    let server = TestServer::builder()
        .tls(&lines)
        .admin()
        .in_dir(dir)
        .start()
        .await;
    let root = server.root().await;
    let path = format!("/api/v1/stores/{}", server.store_id());
    let r = patch_store(&root, &path, json!({"mtls": true})).await;
    expect_error(&r, 409, "mtls_ca_required");
    let own = TestCa::new("own");
    let r = patch_store(
        &root,
        &path,
        json!({"mtls": true, "mtls_ca_pem": own.pem()}),
    )
    .await;
    let message = expect_error(&r, 409, "mtls_cn_required");
    assert!(message.contains("mtls_cns"), "{message}");
    let body = json!({"mtls": true, "mtls_ca_pem": own.pem(), "mtls_cns": ["c"]});
    let r = patch_store(&root, &path, body).await;
    let store = expect_status(&r, 200);
    assert_eq!(store["mtls_cns"], json!(["c"]));
    server.stop().await;
}

/// curl's result for a signed health call presenting `cert`/`key`, TLS version `tls`.
fn curl(
    w: &World,
    client: &XksClient,
    cert: &std::path::Path,
    key: &std::path::Path,
    tls: &[&str],
) -> (bool, String) {
    let ca = w.dir.path().join("server-ca.pem");
    std::fs::write(&ca, w.server_ca.pem()).expect("write CA");
    let req = client.sign(RawRequest::post_json(
        &client.op_path("/health"),
        &bodies::health(),
    ));
    let addr = w.server.running.xks_addr;
    let mut cmd = Command::new("curl");
    cmd.args(["-sS", "--max-time", "10", "--cacert"])
        .arg(&ca)
        .arg("--cert")
        .arg(cert)
        .arg("--key")
        .arg(key)
        .args(tls)
        .args(["-o", "/dev/null", "-w", "%{http_code}"]);
    for (name, value) in &req.headers {
        cmd.arg("-H").arg(format!("{name}: {value}"));
    }
    cmd.arg("--data-binary")
        .arg(String::from_utf8_lossy(&req.body).into_owned())
        .arg(format!("https://localhost:{}{}", addr.port(), req.path));
    let out = cmd.output().expect("run curl");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn a_refused_client_certificate_reaches_the_client_as_a_tls_alert() {
    let w = world().await;
    // Some store needs a certificate: the listener asks for one.
    let (_, strict) = w.store("strict", json!({"mtls": true})).await;
    let stranger = TestCa::new("nobody's CA").client_cert(AWS_CN);
    let (cert, key) = stranger.write(w.dir.path(), "stranger");
    let (good_cert, good_key) = w
        .listener_ca
        .client_cert(AWS_CN)
        .write(w.dir.path(), "good");

    // curl (OpenSSL), TLS 1.3 and 1.2, many times: always the alert, never a broken
    // pipe or a reset.
    for tls in [&["--tlsv1.3"][..], &["--tlsv1.2", "--tls-max", "1.2"]] {
        for i in 0..25 {
            let (ok, stderr) = curl(&w, &strict, &cert, &key, tls);
            assert!(
                !ok,
                "{tls:?} try {i}: a stranger's certificate was accepted"
            );
            assert!(
                stderr.contains("alert unknown ca"),
                "{tls:?} try {i}: curl did not see the TLS alert: {stderr}"
            );
        }
        let (ok, stderr) = curl(&w, &strict, &good_cert, &good_key, tls);
        assert!(
            ok,
            "{tls:?}: the accepted certificate works with curl: {stderr}"
        );
    }

    // rustls: TLS 1.3 finishes the client's handshake before the server has seen the
    // certificate, so the alert arrives on the first read after a request is written;
    // TLS 1.2 fails the handshake itself. Both must report the alert, not a reset.
    for tls12 in [false, true] {
        for i in 0..25 {
            let err = rustls_attempt(&w, &stranger, tls12).await;
            assert!(
                err.contains("received fatal alert: UnknownCA"),
                "TLS 1.2 only: {tls12}, try {i}: {err}"
            );
        }
    }
    w.server.stop().await;
}

/// Connects with rustls presenting `cert`, writes a request and reads: the error.
async fn rustls_attempt(w: &World, cert: &Issued, tls12: bool) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let pem = w.server_ca.pem();
    let mut tls = ClientTls::trusting(&pem);
    tls.client_cert = Some(cert);
    tls.tls12_only = tls12;
    let connector = tokio_rustls::TlsConnector::from(tls.build());
    let tcp = tokio::net::TcpStream::connect(w.server.running.xks_addr)
        .await
        .expect("TCP connect");
    let name = rustls::pki_types::ServerName::try_from("localhost").expect("name");
    let mut stream = match connector.connect(name, tcp).await {
        Ok(s) => s,
        Err(e) => return e.to_string(),
    };
    let request =
        b"POST /kms/xks/v1/health HTTP/1.1\r\nhost: localhost\r\ncontent-length: 2\r\n\r\n{}";
    if let Err(e) = stream.write_all(request).await {
        return e.to_string();
    }
    let _ = stream.flush().await;
    let mut buf = Vec::new();
    match stream.read_to_end(&mut buf).await {
        Ok(_) => format!("the server answered: {}", String::from_utf8_lossy(&buf)),
        Err(e) => e.to_string(),
    }
}

//! HTTPS: a test PKI, HTTP/1.1 and HTTP/2 by ALPN, a TLS 1.2-only client, mutual TLS
//! with the CN check, and the generated development certificate.

use std::sync::Arc;

use keyhold_tests::{
    Proto, TestServer, XksClient,
    client::Transport,
    fixture::{self, BASE, KEY_ALL},
    paths::toml_str,
    pki::{ClientTls, TestCa},
};
use rustls::{CipherSuite, ProtocolVersion, crypto::aws_lc_rs::cipher_suite as cs};

const AWS_CN: &str = "cks.kms.us-east-1.amazonaws.com";

struct Pki {
    ca: TestCa,
    client_ca: TestCa,
}

/// Starts a TLS server with a certificate from a fresh test CA; with `mtls`, client
/// certificates from a second CA with the AWS CN are required of every client.
async fn tls_server(mtls: bool) -> (TestServer, Pki) {
    let dir = Arc::new(tempfile::tempdir().expect("tempdir"));
    let ca = TestCa::new("keyhold test CA");
    let client_ca = TestCa::new("keyhold test client CA");
    let (cert, key) = ca.server_cert().write(dir.path(), "server");
    let mut lines = vec![
        format!("cert_file = {}", toml_str(cert.to_string_lossy())),
        format!("key_file = {}", toml_str(key.to_string_lossy())),
    ];
    if mtls {
        let path = client_ca.write(dir.path(), "client-ca.pem");
        lines.push(format!(
            "client_ca_file = {}",
            toml_str(path.to_string_lossy())
        ));
        lines.push(format!("client_cn = [{}]", toml_str(AWS_CN)));
        // Every client, at the handshake (the default asks per key store: tests/mtls.rs).
        lines.push("client_auth = \"required\"".into());
    }
    let mut server = TestServer::builder().tls(&lines).in_dir(dir).start().await;
    assert!(server.running.tls);
    server.ca_pem = Some(ca.pem());
    (server, Pki { ca, client_ca })
}

async fn round_trip(client: &XksClient) {
    let s = client.encrypt_ok(KEY_ALL, b"over TLS", Some(b"tls")).await;
    assert_eq!(
        client.decrypt_ok(KEY_ALL, &s, Some(b"tls")).await,
        b"over TLS"
    );
    client.health().await.ok_json();
}

#[tokio::test(flavor = "multi_thread")]
async fn https_over_http1_and_http2() {
    let (server, _pki) = tls_server(false).await;
    let c = server.client();
    for (proto, alpn) in [(Proto::Http1, &b"http/1.1"[..]), (Proto::Http2, b"h2")] {
        let t = c.transport.with_proto(proto);
        let conn = t.connect().await.expect("TLS connection");
        let info = conn.tls.clone().expect("TLS info");
        assert_eq!(info.alpn.as_deref(), Some(alpn));
        assert_eq!(info.version, Some(ProtocolVersion::TLSv1_3));
        round_trip(&c.with_transport(t)).await;
    }
    // Plain HTTP on the TLS port gets no XKS answer.
    let plain = c.with_transport(Transport::plain(server.running.xks_addr));
    let result = plain
        .try_send(&keyhold_tests::RawRequest::new(
            "GET",
            fixture::LB_HEALTH,
            "",
        ))
        .await;
    assert!(
        result.map(|r| !r.status.is_success()).unwrap_or(true),
        "plain HTTP must not be served on the TLS listener"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn tls12_only_client_negotiates_ecdhe_aes256_gcm() {
    let (server, pki) = tls_server(false).await;
    let pem = pki.ca.pem();
    let mut tls = ClientTls::trusting(&pem);
    tls.tls12_only = true;
    tls.suites = Some(vec![
        cs::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
        cs::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
    ]);
    let t = server.transport().with_tls(tls.build());
    let conn = t.connect().await.expect("TLS 1.2 connection");
    let info = conn.tls.clone().expect("info");
    assert_eq!(info.version, Some(ProtocolVersion::TLSv1_2));
    assert!(
        matches!(
            info.suite,
            Some(CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384)
                | Some(CipherSuite::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384)
        ),
        "{:?}",
        info.suite
    );
    round_trip(&server.client().with_transport(t)).await;

    // A TLS 1.2 client offering only a non-forward-secret or weak suite is refused.
    let mut weak = ClientTls::trusting(&pem);
    weak.tls12_only = true;
    weak.suites = Some(vec![cs::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256]);
    let t = server.transport().with_tls(weak.build());
    assert!(t.connect().await.is_err(), "AES-128 only is not offered");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_client_that_does_not_trust_the_ca_fails() {
    let (server, _pki) = tls_server(false).await;
    let stranger = TestCa::new("someone else");
    let pem = stranger.pem();
    let t = server
        .transport()
        .with_tls(ClientTls::trusting(&pem).build());
    assert!(t.connect().await.is_err());
    server.stop().await;
}

/// Connect and send one request: the error when the server refuses the client.
async fn mtls_attempt(
    server: &TestServer,
    ca_pem: &str,
    cert: Option<&keyhold_tests::pki::Issued>,
) -> Result<u16, String> {
    let mut tls = ClientTls::trusting(ca_pem);
    tls.client_cert = cert;
    let t = server.transport().with_tls(tls.build());
    let client = server.client().with_transport(t);
    let req = client.sign(keyhold_tests::RawRequest::post_json(
        &format!("{BASE}/health"),
        &keyhold_tests::bodies::health(),
    ));
    client
        .try_send(&req)
        .await
        .map(|r| r.status.as_u16())
        .map_err(|e| e.to_string())
}

#[tokio::test(flavor = "multi_thread")]
async fn mutual_tls_requires_the_ca_and_the_cn() {
    let (server, pki) = tls_server(true).await;
    let pem = pki.ca.pem();
    let good = pki.client_ca.client_cert(AWS_CN);
    assert_eq!(mtls_attempt(&server, &pem, Some(&good)).await, Ok(200));
    // The right cert also works over HTTP/2, with crypto.
    let mut tls = ClientTls::trusting(&pem);
    tls.client_cert = Some(&good);
    let t = server
        .transport()
        .with_tls(tls.build())
        .with_proto(Proto::Http2);
    round_trip(&server.client().with_transport(t)).await;

    let other_ca = TestCa::new("another CA");
    let foreign = other_ca.client_cert(AWS_CN);
    let wrong_cn = pki.client_ca.client_cert("cks.kms.us-west-2.example.com");
    // A certificate from the server's own CA is not a client CA certificate either.
    let server_ca_client = pki.ca.client_cert(AWS_CN);
    for (what, cert) in [
        ("no client certificate", None),
        ("certificate from another CA", Some(&foreign)),
        ("certificate with the wrong CN", Some(&wrong_cn)),
        ("certificate from the server CA", Some(&server_ca_client)),
    ] {
        let result = mtls_attempt(&server, &pem, cert).await;
        assert!(result.is_err(), "{what}: got an HTTP response {result:?}");
        println!("{what}: {}", result.unwrap_err());
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn embedded_default_dev_certificate() {
    let mut server = TestServer::builder().tls(&[]).start().await;
    assert!(server.running.tls);
    let ca = server.path().join("tls/ca.pem");
    assert!(ca.is_file(), "the dev CA is written to data_dir/tls/ca.pem");
    server.ca_pem = Some(std::fs::read_to_string(&ca).expect("read CA"));
    let c = server.client();
    round_trip(&c).await;
    // 127.0.0.1 is in the certificate too.
    let mut t = c.transport.clone();
    t.host = "127.0.0.1".into();
    round_trip(&c.with_transport(t)).await;
    let builder = server.builder.clone();
    let dir = server.stop().await;
    // A restart keeps the same certificate.
    let before = std::fs::read(dir.path().join("tls/server.pem")).expect("cert");
    let server = builder.in_dir(dir).start().await;
    let after = std::fs::read(server.path().join("tls/server.pem")).expect("cert");
    assert_eq!(before, after);
    server.stop().await;
}

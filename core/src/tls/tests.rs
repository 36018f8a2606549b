//! Session resumption of the listeners' TLS configuration, on real rustls connections
//! (in memory: the handshake bytes are passed between client and server directly).

use std::sync::Arc;

use keyhold_testkit::pki::{ClientTls, TestCa};
use rustls::{ClientConfig, ClientConnection, HandshakeKind, ServerConnection};

use super::*;

/// Moves TLS records between the two ends until neither has anything to send.
fn pump(client: &mut ClientConnection, server: &mut ServerConnection) {
    loop {
        let mut moved = false;
        let mut buf = Vec::new();
        while client.wants_write() {
            client.write_tls(&mut buf).unwrap();
        }
        if !buf.is_empty() {
            moved = true;
            server.read_tls(&mut buf.as_slice()).unwrap();
            server.process_new_packets().unwrap();
        }
        let mut buf = Vec::new();
        while server.wants_write() {
            server.write_tls(&mut buf).unwrap();
        }
        if !buf.is_empty() {
            moved = true;
            client.read_tls(&mut buf.as_slice()).unwrap();
            client.process_new_packets().unwrap();
        }
        if !moved {
            return;
        }
    }
}

/// One connection: handshake, then the session tickets the server sends after it.
/// Returns how the handshake went, as the client and the server saw it, and the client
/// certificate the server holds for the connection.
fn connect(
    client_cfg: &Arc<ClientConfig>,
    server_cfg: &Arc<ServerConfig>,
) -> (HandshakeKind, HandshakeKind, Option<Vec<u8>>) {
    let name = "localhost".try_into().unwrap();
    let mut client = ClientConnection::new(client_cfg.clone(), name).unwrap();
    let mut server = ServerConnection::new(server_cfg.clone()).unwrap();
    pump(&mut client, &mut server);
    assert!(!client.is_handshaking() && !server.is_handshaking());
    let peer = server
        .peer_certificates()
        .and_then(|c| c.first())
        .map(|c| c.to_vec());
    (
        client.handshake_kind().unwrap(),
        server.handshake_kind().unwrap(),
        peer,
    )
}

/// A listener configuration serving a certificate of `ca`, with `client_ca_file`
/// (required client certificates) when given.
fn server(ca: &TestCa, dir: &Path, client_ca: Option<&TestCa>) -> Arc<ServerConfig> {
    let (cert_file, key_file) = ca.server_cert().write(dir, "server");
    let cfg = TlsConfig {
        cert_file: Some(cert_file),
        key_file: Some(key_file),
        client_ca_file: client_ca.map(|c| c.write(dir, "client-ca.pem")),
        client_cn: vec!["cks.kms.eu-west-1.amazonaws.com".into()],
        ..TlsConfig::default()
    };
    server_config(&cfg, dir).unwrap()
}

#[test]
fn a_second_connection_resumes_the_first_ones_session_tls13_and_tls12() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new("test CA");
    let server_cfg = server(&ca, dir.path(), None);
    let ca_pem = ca.pem();
    for tls12_only in [false, true] {
        let mut opts = ClientTls::trusting(&ca_pem);
        opts.tls12_only = tls12_only;
        // One client configuration: its session store carries the session over.
        let client_cfg = opts.build();
        let first = connect(&client_cfg, &server_cfg);
        assert_eq!(
            (first.0, first.1),
            (HandshakeKind::Full, HandshakeKind::Full)
        );
        for _ in 0..3 {
            let again = connect(&client_cfg, &server_cfg);
            assert_eq!(
                (again.0, again.1),
                (HandshakeKind::Resumed, HandshakeKind::Resumed),
                "tls12_only = {tls12_only}"
            );
        }
        // A client that keeps no sessions makes full handshakes.
        let mut forgetful = (*client_cfg).clone();
        forgetful.resumption = rustls::client::Resumption::disabled();
        let forgetful = Arc::new(forgetful);
        assert_eq!(connect(&forgetful, &server_cfg).1, HandshakeKind::Full);
    }
}

#[test]
fn a_resumed_session_keeps_the_client_certificate_and_another_server_refuses_the_ticket() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new("test CA");
    let clients = TestCa::new("client CA");
    let server_cfg = server(&ca, dir.path(), Some(&clients));
    let client = clients.client_cert("cks.kms.eu-west-1.amazonaws.com");
    let ca_pem = ca.pem();
    let mut opts = ClientTls::trusting(&ca_pem);
    opts.client_cert = Some(&client);
    let client_cfg = opts.build();
    let first = connect(&client_cfg, &server_cfg);
    assert_eq!(first.1, HandshakeKind::Full);
    assert_eq!(first.2.as_deref(), Some(client.cert_der.as_ref()));
    let again = connect(&client_cfg, &server_cfg);
    assert_eq!(again.1, HandshakeKind::Resumed);
    // The client identity the per-store mutual TLS check reads is the same.
    assert_eq!(again.2.as_deref(), Some(client.cert_der.as_ref()));
    // Another server (another process, other ticket keys and cache) cannot resume it:
    // a full handshake, the client certificate verified again.
    let other_dir = tempfile::tempdir().unwrap();
    let other = server(&ca, other_dir.path(), Some(&clients));
    let elsewhere = connect(&client_cfg, &other);
    assert_eq!(elsewhere.1, HandshakeKind::Full);
    assert_eq!(elsewhere.2.as_deref(), Some(client.cert_der.as_ref()));
}

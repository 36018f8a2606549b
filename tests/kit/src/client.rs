//! A hyper 1 client for the XKS endpoint: HTTP/1.1 or HTTP/2, plain TCP or TLS, with
//! requests signed by `aws-sigv4` (and tamperable after signing) or sent raw.

use std::{
    net::SocketAddr,
    sync::Arc,
    time::{Duration, SystemTime},
};

use base64::{Engine, engine::general_purpose::STANDARD as B64};
use bytes::Bytes;
use http::{HeaderMap, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::ClientConfig;
use rustls_pki_types::ServerName;
use serde_json::Value;
use tokio::{
    io::{AsyncRead, AsyncWrite},
    net::TcpStream,
    sync::Mutex,
};
use tokio_rustls::TlsConnector;

use crate::{BoxError, bodies, bodies::Sealed, fixture::Credential, sign::Signer};

/// The HTTP version to speak.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proto {
    /// HTTP/1.1.
    Http1,
    /// HTTP/2 (ALPN `h2` over TLS, prior knowledge over plain TCP).
    Http2,
}

/// How to reach the server.
#[derive(Clone)]
pub struct Transport {
    /// The server's address.
    pub addr: SocketAddr,
    /// TLS client configuration (ALPN is set per connection), or plain TCP.
    pub tls: Option<Arc<ClientConfig>>,
    /// The TLS server name and the host of the authority.
    pub host: String,
    /// HTTP version.
    pub proto: Proto,
}

/// What the TLS handshake negotiated.
#[derive(Debug, Clone)]
pub struct TlsInfo {
    /// Protocol version.
    pub version: Option<rustls::ProtocolVersion>,
    /// Cipher suite.
    pub suite: Option<rustls::CipherSuite>,
    /// ALPN protocol.
    pub alpn: Option<Vec<u8>>,
}

enum Sender {
    H1(Arc<Mutex<http1::SendRequest<Full<Bytes>>>>),
    H2(http2::SendRequest<Full<Bytes>>),
}

/// One open connection; clones share it (HTTP/2 multiplexes, HTTP/1.1 queues).
#[derive(Clone)]
pub struct Conn {
    sender: Arc<Sender>,
    authority: String,
    scheme: &'static str,
    /// The TLS handshake's outcome (None over plain TCP).
    pub tls: Option<TlsInfo>,
}

impl Transport {
    /// Plain HTTP/1.1 to `addr`.
    pub fn plain(addr: SocketAddr) -> Transport {
        Transport {
            addr,
            tls: None,
            host: addr.ip().to_string(),
            proto: Proto::Http1,
        }
    }

    /// HTTPS (HTTP/1.1) to `addr` as `localhost`, trusting the CA certificate(s) in
    /// `ca_pem`.
    pub fn https(addr: SocketAddr, ca_pem: &str) -> Transport {
        Transport {
            addr,
            tls: Some(crate::pki::ClientTls::trusting(ca_pem).build()),
            host: "localhost".into(),
            proto: Proto::Http1,
        }
    }

    /// The same transport with another HTTP version.
    pub fn with_proto(&self, proto: Proto) -> Transport {
        Transport {
            proto,
            ..self.clone()
        }
    }

    /// The same transport with another TLS configuration.
    pub fn with_tls(&self, tls: Arc<ClientConfig>) -> Transport {
        Transport {
            tls: Some(tls),
            ..self.clone()
        }
    }

    /// `host:port`, as signed and sent.
    pub fn authority(&self) -> String {
        format!("{}:{}", self.host, self.addr.port())
    }

    /// Opens a connection (TCP, TLS handshake, HTTP handshake).
    pub async fn connect(&self) -> Result<Conn, BoxError> {
        let tcp = TcpStream::connect(self.addr).await?;
        tcp.set_nodelay(true)?;
        match &self.tls {
            None => self.handshake(tcp, None, "http").await,
            Some(cfg) => {
                let mut cfg = (**cfg).clone();
                cfg.alpn_protocols = match self.proto {
                    Proto::Http1 => vec![b"http/1.1".to_vec()],
                    Proto::Http2 => vec![b"h2".to_vec()],
                };
                let name = ServerName::try_from(self.host.clone())?;
                let stream = TlsConnector::from(Arc::new(cfg)).connect(name, tcp).await?;
                let (_, session) = stream.get_ref();
                let info = TlsInfo {
                    version: session.protocol_version(),
                    suite: session.negotiated_cipher_suite().map(|s| s.suite()),
                    alpn: session.alpn_protocol().map(<[u8]>::to_vec),
                };
                self.handshake(stream, Some(info), "https").await
            }
        }
    }

    async fn handshake<S>(
        &self,
        io: S,
        tls: Option<TlsInfo>,
        scheme: &'static str,
    ) -> Result<Conn, BoxError>
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let io = TokioIo::new(io);
        let sender = match self.proto {
            Proto::Http1 => {
                let (sender, conn) = http1::handshake(io).await?;
                tokio::spawn(async move {
                    let _ = conn.await;
                });
                Sender::H1(Arc::new(Mutex::new(sender)))
            }
            Proto::Http2 => {
                let (sender, conn) = http2::handshake(TokioExecutor::new(), io).await?;
                tokio::spawn(async move {
                    let _ = conn.await;
                });
                Sender::H2(sender)
            }
        };
        Ok(Conn {
            sender: Arc::new(sender),
            authority: self.authority(),
            scheme,
            tls,
        })
    }
}

/// A request as it goes on the wire (after signing, so it can be tampered with).
#[derive(Debug, Clone)]
pub struct RawRequest {
    /// Method.
    pub method: String,
    /// Path (and query).
    pub path: String,
    /// Headers in order (a `host` header is added at send time when missing).
    pub headers: Vec<(String, String)>,
    /// Body.
    pub body: Bytes,
}

impl RawRequest {
    /// A request without headers.
    pub fn new(method: &str, path: &str, body: impl Into<Bytes>) -> RawRequest {
        RawRequest {
            method: method.into(),
            path: path.into(),
            headers: Vec::new(),
            body: body.into(),
        }
    }

    /// A JSON POST (`content-type: application/json`).
    pub fn post_json(path: &str, body: &Value) -> RawRequest {
        RawRequest::new("POST", path, body.to_string())
            .with_header("content-type", "application/json")
    }

    /// Adds a header.
    pub fn with_header(mut self, name: &str, value: &str) -> RawRequest {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Replaces (or adds) a header.
    pub fn set_header(&mut self, name: &str, value: &str) {
        self.remove_header(name);
        self.headers.push((name.into(), value.into()));
    }

    /// Removes a header.
    pub fn remove_header(&mut self, name: &str) {
        self.headers.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
    }

    /// A header's value.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Signs for `authority` at `at` (adds host, x-amz-date, authorization).
    pub fn signed_at(mut self, cred: &Credential, authority: &str, at: SystemTime) -> RawRequest {
        self.remove_header("authorization");
        self.remove_header("x-amz-date");
        self.set_header("host", authority);
        let headers = self.headers.iter().map(|(n, v)| (n.as_str(), v.as_str()));
        let added = Signer::xks(cred)
            .headers(&self.method, authority, &self.path, headers, &self.body, at)
            .unwrap_or_else(|e| panic!("{} {}: {e}", self.method, self.path));
        self.headers.extend(added);
        self
    }
}

/// A response, fully read.
#[derive(Debug, Clone)]
pub struct Reply {
    /// Status.
    pub status: StatusCode,
    /// Headers.
    pub headers: HeaderMap,
    /// Body.
    pub body: Bytes,
}

impl Reply {
    /// The body as JSON (panics with the body when it is not JSON).
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "response body is not JSON ({e}): status {} body {:?}",
                self.status,
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    /// The content type.
    pub fn content_type(&self) -> Option<&str> {
        self.headers
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
    }

    /// Asserts the status; `expected` describes what was expected, for the message.
    #[track_caller]
    pub fn assert_status(&self, status: u16, expected: &str) {
        assert_eq!(
            self.status.as_u16(),
            status,
            "expected {expected}, got {} {:?}",
            self.status,
            String::from_utf8_lossy(&self.body)
        );
    }

    /// Asserts an XKS error: status, `application/json`, JSON `errorName`, and an
    /// `errorMessage` (if any) of printable ASCII under 512 characters. Returns the
    /// message.
    #[track_caller]
    pub fn assert_error(&self, status: u16, name: &str) -> String {
        self.assert_status(status, &format!("{status} {name}"));
        assert_eq!(
            self.content_type(),
            Some("application/json"),
            "error responses are JSON"
        );
        let json = self.json();
        assert_eq!(json["errorName"], name, "body: {json}");
        let message = json["errorMessage"].as_str().unwrap_or("").to_string();
        assert!(message.len() < 512, "errorMessage too long");
        assert!(
            message.chars().all(|c| (' '..='~').contains(&c)),
            "errorMessage not printable ASCII: {message:?}"
        );
        message
    }

    /// Asserts 200 with a JSON body and returns it.
    #[track_caller]
    pub fn ok_json(&self) -> Value {
        self.assert_status(200, "200");
        assert_eq!(self.content_type(), Some("application/json"));
        self.json()
    }
}

impl Conn {
    /// Sends one request and reads the whole response.
    pub async fn send(&self, req: &RawRequest) -> Result<Reply, BoxError> {
        let h2 = matches!(*self.sender, Sender::H2(_));
        let uri = if h2 {
            format!("{}://{}{}", self.scheme, self.authority, req.path)
        } else {
            req.path.clone()
        };
        let mut builder = http::Request::builder()
            .method(req.method.as_str())
            .uri(uri);
        let mut has_host = false;
        for (n, v) in &req.headers {
            if n.eq_ignore_ascii_case("host") {
                if h2 {
                    // HTTP/2 carries the host as :authority.
                    continue;
                }
                has_host = true;
            }
            builder = builder.header(n.as_str(), v.as_str());
        }
        if !h2 && !has_host {
            builder = builder.header("host", self.authority.as_str());
        }
        let request = builder.body(Full::new(req.body.clone()))?;
        let response = match &*self.sender {
            Sender::H1(s) => {
                let mut s = s.lock().await;
                s.ready().await?;
                s.send_request(request).await?
            }
            Sender::H2(s) => {
                let mut s = s.clone();
                s.ready().await?;
                s.send_request(request).await?
            }
        };
        let (parts, body) = response.into_parts();
        let body = body.collect().await?.to_bytes();
        Ok(Reply {
            status: parts.status,
            headers: parts.headers,
            body,
        })
    }
}

/// A SigV4 client of one key store.
#[derive(Clone)]
pub struct XksClient {
    /// How to reach the server.
    pub transport: Transport,
    /// The credential it signs with.
    pub cred: Credential,
    /// The store's `XksProxyUriPath`.
    pub base: String,
}

const TIMEOUT: Duration = Duration::from_secs(60);

impl XksClient {
    /// A client.
    pub fn new(transport: Transport, cred: Credential, base: &str) -> XksClient {
        XksClient {
            transport,
            cred,
            base: base.into(),
        }
    }

    /// The same client signing with another credential.
    pub fn with_cred(&self, cred: Credential) -> XksClient {
        XksClient {
            cred,
            ..self.clone()
        }
    }

    /// The same client over another transport.
    pub fn with_transport(&self, transport: Transport) -> XksClient {
        XksClient {
            transport,
            ..self.clone()
        }
    }

    /// `base + suffix`, e.g. `op_path("/health")`.
    pub fn op_path(&self, suffix: &str) -> String {
        format!("{}{}", self.base, suffix)
    }

    /// Signs `req` now with this client's credential.
    pub fn sign(&self, req: RawRequest) -> RawRequest {
        self.sign_at(req, SystemTime::now())
    }

    /// Signs `req` at `at`.
    pub fn sign_at(&self, req: RawRequest, at: SystemTime) -> RawRequest {
        req.signed_at(&self.cred, &self.transport.authority(), at)
    }

    /// Sends a request on a fresh connection.
    pub async fn try_send(&self, req: &RawRequest) -> Result<Reply, BoxError> {
        let fut = async {
            let conn = self.transport.connect().await?;
            conn.send(req).await
        };
        tokio::time::timeout(TIMEOUT, fut)
            .await
            .map_err(|_| "request timed out")?
    }

    /// Sends a request on a fresh connection (panics on transport errors).
    pub async fn send(&self, req: &RawRequest) -> Reply {
        self.try_send(req)
            .await
            .unwrap_or_else(|e| panic!("{} {}: transport error: {e}", req.method, req.path))
    }

    /// A signed JSON POST to `base + suffix`.
    pub async fn call(&self, suffix: &str, body: &Value) -> Reply {
        let req = self.sign(RawRequest::post_json(&self.op_path(suffix), body));
        self.send(&req).await
    }

    /// Encrypt.
    pub async fn encrypt(
        &self,
        key: &str,
        plaintext: &[u8],
        aad: Option<&[u8]>,
        cdiv: bool,
    ) -> Reply {
        self.call(
            &format!("/keys/{key}/encrypt"),
            &bodies::encrypt(plaintext, aad, cdiv),
        )
        .await
    }

    /// Encrypt that must succeed.
    pub async fn encrypt_ok(&self, key: &str, plaintext: &[u8], aad: Option<&[u8]>) -> Sealed {
        Sealed::from_json(&self.encrypt(key, plaintext, aad, false).await.ok_json())
    }

    /// Decrypt.
    pub async fn decrypt(&self, key: &str, sealed: &Sealed, aad: Option<&[u8]>) -> Reply {
        self.call(
            &format!("/keys/{key}/decrypt"),
            &bodies::decrypt(sealed, aad),
        )
        .await
    }

    /// Decrypt that must succeed: the plaintext.
    pub async fn decrypt_ok(&self, key: &str, sealed: &Sealed, aad: Option<&[u8]>) -> Vec<u8> {
        let json = self.decrypt(key, sealed, aad).await.ok_json();
        B64.decode(json["plaintext"].as_str().expect("plaintext field"))
            .expect("plaintext is base64")
    }

    /// GetKeyMetadata.
    pub async fn metadata(&self, key: &str) -> Reply {
        self.call(&format!("/keys/{key}/metadata"), &bodies::metadata())
            .await
    }

    /// GetHealthStatus.
    pub async fn health(&self) -> Reply {
        self.call("/health", &bodies::health()).await
    }

    /// Asserts that GetHealthStatus is refused with 401 AuthenticationFailedException
    /// (this client's credential is not, or no longer, valid).
    pub async fn assert_unauthenticated(&self) {
        self.health()
            .await
            .assert_error(401, "AuthenticationFailedException");
    }

    /// Asserts that Encrypt, Decrypt (of `sealed`) and GetKeyMetadata of `key` are each
    /// refused with `status` and XKS error `name`.
    pub async fn assert_key_ops_fail(&self, key: &str, sealed: &Sealed, status: u16, name: &str) {
        let replies = [
            self.encrypt(key, b"x", None, false).await,
            self.decrypt(key, sealed, None).await,
            self.metadata(key).await,
        ];
        for reply in replies {
            reply.assert_error(status, name);
        }
    }
}

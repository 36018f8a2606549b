//! The admin API client of the CLI: one HTTP/1.1 request per connection, plain or
//! TLS (rustls, aws-lc-rs), JSON bodies, `{"error": {"code", "message"}}` refusals
//! turned into [`CliError`]s.

use std::{path::Path, sync::Arc, time::Duration};

use bytes::Bytes;
use http::{HeaderMap, Method, Request, header};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use rustls_pki_types::{CertificateDer, ServerName, pem::PemObject};
use serde_json::Value;
use tokio::io::{AsyncRead, AsyncWrite};

use super::CliError;

/// How long connecting (TCP + TLS) and each request may take.
const TIMEOUT: Duration = Duration::from_secs(30);

/// A client of one admin API server.
pub struct Client {
    https: bool,
    host: String,
    port: u16,
    authority: String,
    prefix: String,
    tls: Option<Arc<rustls::ClientConfig>>,
    token: Option<String>,
}

/// A successful answer (status < 400).
pub struct Reply {
    /// Response headers.
    pub headers: HeaderMap,
    /// The body (`Value::Null` when empty).
    pub json: Value,
}

impl Reply {
    /// A header's value, as text.
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    }
}

impl Client {
    /// A client of `server` (`http(s)://host[:port][/prefix]`), trusting `cacert` for
    /// HTTPS.
    pub fn new(
        server: &str,
        cacert: Option<&Path>,
        token: Option<String>,
    ) -> Result<Client, CliError> {
        let uri: http::Uri = server
            .parse()
            .map_err(|e| CliError::Usage(format!("invalid --server URL '{server}': {e}")))?;
        let https = match uri.scheme_str() {
            Some("https") => true,
            Some("http") => false,
            _ => {
                return Err(CliError::Usage(format!(
                    "--server must start with https:// or http://, not '{server}'"
                )));
            }
        };
        let host = uri
            .host()
            .ok_or_else(|| CliError::Usage(format!("--server '{server}' names no host")))?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
        let authority = uri
            .authority()
            .map(|a| a.as_str().to_string())
            .unwrap_or_else(|| host.clone());
        let prefix = uri.path().trim_end_matches('/').to_string();
        let tls = if https {
            let Some(ca) = cacert else {
                return Err(CliError::Usage(format!(
                    "{server} is HTTPS: pass --cacert FILE (or set KEYHOLD_CACERT) with the CA that signed its certificate \
                     (the embedded defaults write keyhold-data/tls/ca.pem)"
                )));
            };
            Some(tls_config(ca)?)
        } else {
            None
        };
        Ok(Client {
            https,
            host,
            port,
            authority,
            prefix,
            tls,
            token,
        })
    }

    /// Sends `method path` (a path under `/api/v1`) with an optional JSON body.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        headers: &[(&str, String)],
    ) -> Result<Reply, CliError> {
        let url = format!("{}/api/v1{path}", self.prefix);
        let mut req = Request::builder()
            .method(method.clone())
            .uri(&url)
            .header(header::HOST, &self.authority)
            .header(header::ACCEPT, "application/json");
        if let Some(t) = &self.token {
            req = req.header(header::AUTHORIZATION, format!("Bearer {t}"));
        }
        let bytes = match body {
            Some(b) => {
                req = req.header(header::CONTENT_TYPE, "application/json");
                Bytes::from(b.to_string())
            }
            None => Bytes::new(),
        };
        for (n, v) in headers {
            req = req.header(*n, v);
        }
        let req = req
            .body(Full::new(bytes))
            .map_err(|e| CliError::Usage(format!("cannot build the request: {e}")))?;
        let what = format!("{method} {url}");
        let exchange = async {
            let tcp = tokio::net::TcpStream::connect((self.host.as_str(), self.port))
                .await
                .map_err(|e| {
                    CliError::Server(format!(
                        "cannot connect to {}:{}: {e} (is `keyhold serve` running? see --server)",
                        self.host, self.port
                    ))
                })?;
            let _ = tcp.set_nodelay(true);
            match &self.tls {
                None => exchange(tcp, req).await,
                Some(cfg) => {
                    let name = ServerName::try_from(self.host.clone()).map_err(|e| {
                        CliError::Usage(format!("invalid server name '{}': {e}", self.host))
                    })?;
                    let tls = tokio_rustls::TlsConnector::from(cfg.clone())
                        .connect(name, tcp)
                        .await
                        .map_err(|e| {
                            CliError::Server(format!(
                                "TLS handshake with {}:{} failed: {e} (check --cacert)",
                                self.host, self.port
                            ))
                        })?;
                    exchange(tls, req).await
                }
            }
        };
        let (status, headers, body) = tokio::time::timeout(TIMEOUT, exchange)
            .await
            .map_err(|_| CliError::Server(format!("{what}: no answer within {TIMEOUT:?}")))??;
        let json = if body.iter().all(u8::is_ascii_whitespace) {
            Value::Null
        } else {
            serde_json::from_slice(&body).unwrap_or_else(|_| {
                Value::String(String::from_utf8_lossy(&body).trim().to_string())
            })
        };
        if status < 400 {
            return Ok(Reply { headers, json });
        }
        let code = json["error"]["code"]
            .as_str()
            .unwrap_or("http_error")
            .to_string();
        let mut message = match json["error"]["message"].as_str() {
            Some(m) => m.to_string(),
            None => format!("{what} answered HTTP {status}: {}", compact(&json)),
        };
        if status == 401 && self.token.is_none() {
            message += " (not logged in: run `keyhold login`)";
        } else if status == 401 {
            message += " (the token may have expired: run `keyhold login` again)";
        }
        if status >= 500 {
            Err(CliError::Server(format!("{message} ({code})")))
        } else {
            Err(CliError::Refused {
                status,
                code,
                message,
            })
        }
    }

    /// Whether the server is reached over HTTPS.
    pub fn is_https(&self) -> bool {
        self.https
    }
}

fn compact(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "(empty body)".into(),
        other => other.to_string(),
    }
}

async fn exchange<S>(io: S, req: Request<Full<Bytes>>) -> Result<(u16, HeaderMap, Bytes), CliError>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io))
        .await
        .map_err(|e| CliError::Server(format!("HTTP handshake failed: {e}")))?;
    let driver = tokio::spawn(async move {
        let _ = conn.await;
    });
    let resp = sender
        .send_request(req)
        .await
        .map_err(|e| CliError::Server(format!("request failed: {e}")))?;
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let body = resp
        .into_body()
        .collect()
        .await
        .map_err(|e| CliError::Server(format!("reading the answer failed: {e}")))?
        .to_bytes();
    drop(sender);
    driver.abort();
    Ok((status, headers, body))
}

fn tls_config(ca: &Path) -> Result<Arc<rustls::ClientConfig>, CliError> {
    let mut roots = rustls::RootCertStore::empty();
    let certs = CertificateDer::pem_file_iter(ca)
        .map_err(|e| CliError::Usage(format!("cannot read --cacert {}: {e}", ca.display())))?;
    for cert in certs {
        let cert =
            cert.map_err(|e| CliError::Usage(format!("invalid PEM in {}: {e}", ca.display())))?;
        roots.add(cert).map_err(|e| {
            CliError::Usage(format!("invalid certificate in {}: {e}", ca.display()))
        })?;
    }
    if roots.is_empty() {
        return Err(CliError::Usage(format!(
            "{} holds no PEM certificate",
            ca.display()
        )));
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| CliError::Usage(format!("TLS configuration: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(cfg))
}

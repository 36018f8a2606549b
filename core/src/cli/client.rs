//! The admin API client of the CLI: hyper-util's client over HTTP/1.1, plain or TLS
//! (hyper-rustls on the binary's aws-lc-rs provider, trusting only `--cacert`), JSON
//! bodies, `{"error": {"code", "message"}}` refusals turned into [`CliError`]s.

use std::{error::Error as StdError, path::Path, sync::Arc, time::Duration};

use bytes::Bytes;
use http::{HeaderMap, Method, Request, Uri, header};
use http_body_util::{BodyExt, Full};
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::{
    client::legacy::{self, connect::HttpConnector},
    rt::TokioExecutor,
};
use keyhold::api::error::ErrorBody;
use rustls_pki_types::{CertificateDer, pem::PemObject};
use serde::{Deserialize, Serialize, de::DeserializeOwned};
use serde_json::Value;

use super::{CliError, Result};

/// How long connecting (TCP + TLS) and each request may take.
const TIMEOUT: Duration = Duration::from_secs(30);

/// Percent-encodes one path segment (an id or a name) for a request path.
pub use keyhold::api::seg;

/// A client of one admin API server.
pub struct Client {
    https: bool,
    /// `host:port` as error messages name it.
    endpoint: String,
    /// `scheme://authority`.
    origin: String,
    /// `[/prefix]/api/v1`: request paths are appended.
    api: String,
    http: legacy::Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
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

    /// The body as the API type `T`; a server error when it is not one.
    pub fn parse<T: DeserializeOwned>(&self) -> Result<T> {
        serde_json::from_value(self.json.clone()).map_err(|e| {
            CliError::Server(format!("unexpected answer: {e}: {}", compact(&self.json)))
        })
    }
}

impl Client {
    /// A client of `server` (`http(s)://host[:port][/prefix]`), trusting `cacert` for
    /// HTTPS.
    pub fn new(server: &str, cacert: Option<&Path>, token: Option<String>) -> Result<Client> {
        let uri: Uri = server
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
            .trim_end_matches(']');
        let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
        let endpoint = format!("{host}:{port}");
        let authority = uri.authority().map_or(host, |a| a.as_str());
        let origin = format!("{}://{authority}", if https { "https" } else { "http" });
        let api = format!("{}/api/v1", uri.path().trim_end_matches('/'));
        let tls = if https {
            let Some(ca) = cacert else {
                return Err(CliError::Usage(format!(
                    "{server} is HTTPS: pass --cacert FILE (or set KEYHOLD_CACERT) with the CA that signed its certificate \
                     (the embedded defaults write keyhold-data/tls/ca.pem)"
                )));
            };
            tls_config(roots(ca)?)?
        } else {
            // Never used: every request of a plain-HTTP client has an http:// URI.
            tls_config(rustls::RootCertStore::empty())?
        };
        let mut tcp = HttpConnector::new();
        tcp.enforce_http(false);
        tcp.set_nodelay(true);
        let connector = HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .wrap_connector(tcp);
        let http = legacy::Client::builder(TokioExecutor::new()).build(connector);
        Ok(Client {
            https,
            endpoint,
            origin,
            api,
            http,
            token,
        })
    }

    /// Sends `method path` (a path under `/api/v1`, segments encoded with [`seg`]) with
    /// an optional JSON body and extra headers.
    pub async fn send<B: Serialize + ?Sized>(
        &self,
        method: Method,
        path: &str,
        body: Option<&B>,
        headers: &[(&str, String)],
    ) -> Result<Reply> {
        let url = format!("{}{path}", self.api);
        let mut req = Request::builder()
            .method(method.clone())
            .uri(format!("{}{url}", self.origin))
            .header(header::ACCEPT, "application/json");
        if let Some(t) = &self.token {
            req = req.header(header::AUTHORIZATION, format!("Bearer {t}"));
        }
        let bytes = match body {
            Some(b) => {
                req = req.header(header::CONTENT_TYPE, "application/json");
                serde_json::to_vec(b)
                    .map_err(|e| CliError::Usage(format!("cannot encode the request: {e}")))?
            }
            None => Vec::new(),
        };
        for (n, v) in headers {
            req = req.header(*n, v);
        }
        let req = req
            .body(Full::new(Bytes::from(bytes)))
            .map_err(|e| CliError::Usage(format!("cannot build the request: {e}")))?;
        let what = format!("{method} {url}");
        let exchange = async {
            let resp = self
                .http
                .request(req)
                .await
                .map_err(|e| self.request_error(&e))?;
            let status = resp.status().as_u16();
            let headers = resp.headers().clone();
            let body = resp
                .into_body()
                .collect()
                .await
                .map_err(|e| CliError::Server(format!("reading the answer failed: {e}")))?
                .to_bytes();
            Ok::<_, CliError>((status, headers, body))
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
        Err(self.refusal(status, &json, &what))
    }

    /// Whether the server is reached over HTTPS.
    pub fn is_https(&self) -> bool {
        self.https
    }

    /// A failed exchange: no TCP connection, a failed TLS handshake, or a broken one.
    fn request_error(&self, e: &legacy::Error) -> CliError {
        let causes = causes(e);
        if let Some(tls) = causes
            .iter()
            .find_map(|c| c.downcast_ref::<rustls::Error>())
        {
            return CliError::Server(format!(
                "TLS handshake with {} failed: {tls} (check --cacert)",
                self.endpoint
            ));
        }
        let root = causes
            .last()
            .map_or_else(|| e.to_string(), |c| c.to_string());
        if e.is_connect() {
            CliError::Server(format!(
                "cannot connect to {}: {root} (is `keyhold serve` running? see --server)",
                self.endpoint
            ))
        } else {
            CliError::Server(format!("request failed: {root}"))
        }
    }

    /// An HTTP error answer (4xx refused, 5xx server error) with the API's code and
    /// message when the body has them.
    fn refusal(&self, status: u16, json: &Value, what: &str) -> CliError {
        let (code, mut message) = match ErrorBody::deserialize(json) {
            Ok(ErrorBody { error }) => (error.code, error.message),
            Err(_) => (
                "http_error".to_string(),
                format!("{what} answered HTTP {status}: {}", compact(json)),
            ),
        };
        if status == 401 && self.token.is_none() {
            message += " (not logged in: run `keyhold login`)";
        } else if status == 401 {
            message += " (the token may have expired: run `keyhold login` again)";
        }
        if status >= 500 {
            CliError::Server(format!("{message} ({code})"))
        } else {
            CliError::Refused {
                status,
                code,
                message,
            }
        }
    }
}

/// An error and its causes, outermost first; looks inside `io::Error`s too (their
/// `source()` skips the error they wrap, e.g. the rustls error of a handshake).
fn causes<'a>(e: &'a (dyn StdError + 'static)) -> Vec<&'a (dyn StdError + 'static)> {
    let mut all = Vec::new();
    let mut next = Some(e);
    while let Some(err) = next {
        all.push(err);
        next = match err.downcast_ref::<std::io::Error>() {
            Some(io) => io.get_ref().map(|inner| inner as &(dyn StdError + 'static)),
            None => err.source(),
        };
    }
    all
}

fn compact(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "(empty body)".into(),
        other => other.to_string(),
    }
}

/// The certificates of a PEM file, as trust anchors.
fn roots(ca: &Path) -> Result<rustls::RootCertStore> {
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
    Ok(roots)
}

/// A client TLS configuration on the aws-lc-rs provider trusting `roots` only.
fn tls_config(roots: rustls::RootCertStore) -> Result<rustls::ClientConfig> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| CliError::Usage(format!("TLS configuration: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

#[cfg(test)]
mod tests;

//! The XKS proxy client: HTTPS (HTTP/1.1) trusting only the configured CA, requests
//! SigV4-signed with AWS's `aws-sigv4` (service `kms-xks-proxy`) and the key store's
//! current credential, one deadline per call, every call recorded.

use std::{
    sync::{Arc, Mutex},
    time::{Duration, SystemTime},
};

use aws_credential_types::Credentials;
use aws_sigv4::{
    http_request::{SignableBody, SignableRequest, SigningSettings, sign},
    sign::v4::SigningParams,
};
use aws_smithy_runtime_api::client::identity::Identity;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use rustls::{ClientConfig, RootCertStore, crypto::aws_lc_rs};
use rustls_pki_types::{CertificateDer, ServerName, pem::PemObject};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use crate::error::EmulatorError;

pub mod mapping;

pub use mapping::{Family, XksFailure};

/// The SigV4 service name of XKS requests.
pub const SERVICE: &str = "kms-xks-proxy";
/// The largest proxy answer read.
const MAX_ANSWER: usize = 64 * 1024;

/// One call made to an XKS proxy, as recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct XksCall {
    /// The full URI called.
    pub uri: String,
    /// The XKS operation: `GetHealthStatus`, `GetKeyMetadata`, `Encrypt`, `Decrypt`.
    pub operation: String,
    /// `requestMetadata.kmsOperation`.
    pub kms_operation: String,
    /// `requestMetadata.kmsRequestId`.
    pub kms_request_id: String,
    /// `requestMetadata.awsPrincipalArn` (empty on health checks).
    pub aws_principal_arn: String,
    /// The access key id the request was signed with.
    pub access_key_id: String,
    /// The HTTP status of the answer (none when no answer came).
    pub status: Option<u16>,
    /// The failure, if any (`errorName`, or a transport failure).
    pub error: Option<String>,
}

/// Where and how to call a key store's proxy.
#[derive(Debug, Clone)]
pub struct Target {
    /// `https://host[:port]`.
    pub endpoint: String,
    /// `[/prefix]/kms/xks/v1`.
    pub path: String,
    /// The credential's access key id.
    pub access_key_id: String,
    /// The credential's secret.
    pub secret: String,
}

/// The XKS client.
#[derive(Clone)]
pub struct XksClient {
    tls: TlsConnector,
    region: String,
    timeout: Duration,
    log: Arc<Mutex<Vec<XksCall>>>,
}

impl XksClient {
    /// A client trusting only `ca_pem` (an empty PEM trusts nothing).
    pub fn new(ca_pem: &[u8], region: &str, timeout: Duration) -> Result<XksClient, EmulatorError> {
        let mut roots = RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(ca_pem) {
            let cert = cert.map_err(|e| EmulatorError::XksCa(e.to_string()))?;
            roots
                .add(cert)
                .map_err(|e| EmulatorError::XksCa(e.to_string()))?;
        }
        let mut config =
            ClientConfig::builder_with_provider(Arc::new(aws_lc_rs::default_provider()))
                .with_safe_default_protocol_versions()
                .map_err(|e| EmulatorError::XksCa(e.to_string()))?
                .with_root_certificates(roots)
                .with_no_client_auth();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(XksClient {
            tls: TlsConnector::from(Arc::new(config)),
            region: region.to_string(),
            timeout,
            log: Arc::new(Mutex::new(Vec::new())),
        })
    }

    /// Every call made so far.
    pub fn calls(&self) -> Vec<XksCall> {
        self.log.lock().map(|l| l.clone()).unwrap_or_default()
    }

    /// Calls `operation` at `suffix` (after the base path) with `body`; returns the JSON
    /// answer of a 200.
    pub async fn call(
        &self,
        target: &Target,
        operation: &str,
        suffix: &str,
        body: Value,
    ) -> Result<Value, XksFailure> {
        let meta = body.get("requestMetadata");
        let field = |n: &str| {
            meta.and_then(|m| m.get(n))
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string()
        };
        let uri = format!("{}{}{}", target.endpoint, target.path, suffix);
        let result = tokio::time::timeout(self.timeout, self.exchange(target, &uri, &body)).await;
        let outcome = match result {
            Ok(r) => r,
            Err(_) => Err((None, XksFailure::Timeout)),
        };
        let (status, answer) = match outcome {
            Ok((status, bytes)) => (Some(status), interpret(status, &bytes)),
            Err((status, f)) => (status, Err(f)),
        };
        let record = XksCall {
            uri,
            operation: operation.to_string(),
            kms_operation: field("kmsOperation"),
            kms_request_id: field("kmsRequestId"),
            aws_principal_arn: field("awsPrincipalArn"),
            access_key_id: target.access_key_id.clone(),
            status,
            error: answer.as_ref().err().map(describe),
        };
        if let Ok(mut log) = self.log.lock() {
            log.push(record);
        }
        answer
    }

    async fn exchange(
        &self,
        target: &Target,
        uri: &str,
        body: &Value,
    ) -> Result<(u16, Bytes), (Option<u16>, XksFailure)> {
        let fail = |f| (None, f);
        let authority = target
            .endpoint
            .strip_prefix("https://")
            .ok_or_else(|| fail(XksFailure::Unreachable("the endpoint is not https".into())))?;
        let (host, port) = split_authority(authority);
        let body = serde_json::to_vec(body).unwrap_or_default();
        let signed = sign_request(target, &self.region, authority, uri, &body)
            .map_err(|e| fail(XksFailure::Unreachable(format!("signing: {e}"))))?;
        let tcp = TcpStream::connect((host.as_str(), port))
            .await
            .map_err(|e| fail(XksFailure::Unreachable(e.to_string())))?;
        let name =
            ServerName::try_from(host.clone()).map_err(|e| fail(XksFailure::Tls(e.to_string())))?;
        let tls = self
            .tls
            .connect(name, tcp)
            .await
            .map_err(|e| fail(XksFailure::Tls(e.to_string())))?;
        let io = hyper_util::rt::TokioIo::new(tls);
        let (mut sender, conn) = hyper::client::conn::http1::handshake(io)
            .await
            .map_err(|e| fail(XksFailure::Unreachable(e.to_string())))?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        let path = uri
            .strip_prefix(&target.endpoint)
            .unwrap_or(uri)
            .to_string();
        let mut req = http::Request::builder()
            .method("POST")
            .uri(path)
            .header("host", authority)
            .header("content-type", "application/json");
        for (n, v) in signed {
            req = req.header(n, v);
        }
        let req = req
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| fail(XksFailure::Unreachable(e.to_string())))?;
        let resp = sender
            .send_request(req)
            .await
            .map_err(|e| fail(XksFailure::Unreachable(e.to_string())))?;
        let status = resp.status().as_u16();
        let bytes = http_body_util::Limited::new(resp.into_body(), MAX_ANSWER)
            .collect()
            .await
            .map_err(|e| (Some(status), XksFailure::Malformed(e.to_string())))?
            .to_bytes();
        Ok((status, bytes))
    }
}

/// `host[:port]` -> (host, port), port 443 by default.
pub fn split_authority(authority: &str) -> (String, u16) {
    match authority.rsplit_once(':') {
        Some((h, p)) => match p.parse() {
            Ok(port) => (h.to_string(), port),
            Err(_) => (authority.to_string(), 443),
        },
        None => (authority.to_string(), 443),
    }
}

/// Interprets a proxy answer: a 200 with a JSON object, else the JSON `errorName`.
pub fn interpret(status: u16, body: &[u8]) -> Result<Value, XksFailure> {
    let parsed: Option<Value> = serde_json::from_slice(body).ok();
    if status == 200 {
        return match parsed {
            Some(v @ Value::Object(_)) => Ok(v),
            _ => Err(XksFailure::Malformed(
                "the answer is not a JSON object".into(),
            )),
        };
    }
    match parsed
        .as_ref()
        .and_then(|v| v.get("errorName"))
        .and_then(Value::as_str)
    {
        Some(name) => Err(XksFailure::Proxy {
            status,
            name: name.to_string(),
        }),
        None => Err(XksFailure::Malformed(format!(
            "HTTP {status} without a JSON errorName"
        ))),
    }
}

fn describe(f: &XksFailure) -> String {
    match f {
        XksFailure::Unreachable(d) => format!("unreachable: {d}"),
        XksFailure::Tls(d) => format!("tls: {d}"),
        XksFailure::Timeout => "timeout".into(),
        XksFailure::Proxy { name, .. } => name.clone(),
        XksFailure::Malformed(d) => format!("malformed: {d}"),
        XksFailure::InvalidCiphertext => "invalid ciphertext".into(),
    }
}

fn sign_request(
    target: &Target,
    region: &str,
    authority: &str,
    uri: &str,
    body: &[u8],
) -> Result<Vec<(String, String)>, String> {
    let identity: Identity = Credentials::new(
        target.access_key_id.clone(),
        target.secret.clone(),
        None,
        None,
        "kms-emulator",
    )
    .into();
    let params = SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name(SERVICE)
        .time(SystemTime::now())
        .settings(SigningSettings::default())
        .build()
        .map_err(|e| e.to_string())?
        .into();
    let headers = [("host", authority), ("content-type", "application/json")];
    let signable =
        SignableRequest::new("POST", uri, headers.into_iter(), SignableBody::Bytes(body))
            .map_err(|e| e.to_string())?;
    let (instructions, _) = sign(signable, &params)
        .map_err(|e| e.to_string())?
        .into_parts();
    Ok(instructions
        .headers()
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect())
}

/// The `requestMetadata` of a health request.
pub fn health_body(kms_operation: &str, request_id: &str) -> Value {
    json!({"requestMetadata": {"kmsRequestId": request_id, "kmsOperation": kms_operation}})
}

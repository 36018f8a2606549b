//! `xks-load baseline-server`: answers canned XKS responses of keyhold's shapes and
//! sizes without any work, on the same hyper/rustls stack as keyhold.

use std::{sync::Arc, time::Duration};

use base64::{Engine, engine::general_purpose::STANDARD as B64};
use bytes::Bytes;
use http::{HeaderValue, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::{body::Incoming, service::service_fn};
use hyper_util::{
    rt::{TokioExecutor, TokioIo},
    server::conn::auto,
};
use keyhold_benches::plaintext;
use serde_json::json;
use tokio::{
    io::{AsyncRead, AsyncWrite},
    net::TcpListener,
};

use crate::{BaselineArgs, BoxError, MAX_SECONDS};

/// Canned response bodies, shaped and sized like keyhold's.
struct Canned {
    health: Bytes,
    metadata: Bytes,
    encrypt_small: Bytes,
    encrypt_large: Bytes,
    decrypt_small: Bytes,
    decrypt_large: Bytes,
    not_found: Bytes,
}

impl Canned {
    fn new() -> Canned {
        let enc = |n: usize| {
            Bytes::from(
                json!({
                    "ciphertext": B64.encode(plaintext(n)),
                    "initializationVector": B64.encode([1u8; 12]),
                    "authenticationTag": B64.encode([2u8; 16]),
                })
                .to_string(),
            )
        };
        let dec =
            |n: usize| Bytes::from(json!({"plaintext": B64.encode(plaintext(n))}).to_string());
        Canned {
            health: json!({
                "xksProxyFleetSize": 1,
                "xksProxyVendor": "keyhold",
                "xksProxyModel": "keyhold 0.1.0",
                "ekmVendor": "keyhold",
                "ekmFleetDetails": [{"id": "ctm", "model": "keyhold ctm software keystore 0.1.0", "healthStatus": "ACTIVE"}],
            })
            .to_string()
            .into(),
            metadata: json!({"keySpec": "AES_256", "keyUsage": ["ENCRYPT", "DECRYPT", "WRAP", "UNWRAP"], "keyStatus": "ENABLED"})
                .to_string()
                .into(),
            encrypt_small: enc(32),
            encrypt_large: enc(4300),
            decrypt_small: dec(32),
            decrypt_large: dec(4300),
            not_found: json!({"errorName": "InvalidUriPathException", "errorMessage": "no XKS operation at this path"})
                .to_string()
                .into(),
        }
    }

    /// Picks the answer by path suffix (and, for encrypt/decrypt, by request size: a
    /// body over 2 KiB carries the 4300-byte payload).
    fn answer(&self, path: &str, body_len: usize) -> (StatusCode, Bytes) {
        let large = body_len > 2048;
        let pick = |small: &Bytes, big: &Bytes| if large { big.clone() } else { small.clone() };
        if path.ends_with("/health") {
            (StatusCode::OK, self.health.clone())
        } else if path.ends_with("/metadata") {
            (StatusCode::OK, self.metadata.clone())
        } else if path.ends_with("/encrypt") {
            (
                StatusCode::OK,
                pick(&self.encrypt_small, &self.encrypt_large),
            )
        } else if path.ends_with("/decrypt") {
            (
                StatusCode::OK,
                pick(&self.decrypt_small, &self.decrypt_large),
            )
        } else {
            (StatusCode::NOT_FOUND, self.not_found.clone())
        }
    }
}

pub async fn baseline(args: BaselineArgs) -> Result<(), BoxError> {
    if !args.listen.ip().is_loopback() {
        return Err("baseline-server only listens on loopback addresses".into());
    }
    let tls = if args.tls {
        // keyhold's own TLS configuration (provider, versions, ALPN, certificate).
        let cfg =
            keyhold::tls::server_config(&keyhold::config::TlsConfig::default(), &args.data_dir)?;
        eprintln!(
            "baseline TLS: trust {}",
            args.data_dir.join("tls").join("ca.pem").display()
        );
        Some(tokio_rustls::TlsAcceptor::from(cfg))
    } else {
        None
    };
    let listener = TcpListener::bind(args.listen).await?;
    eprintln!(
        "baseline-server listening on {}://{} (stops after {} s)",
        if tls.is_some() { "https" } else { "http" },
        listener.local_addr()?,
        args.max_seconds.min(MAX_SECONDS)
    );
    let canned = Arc::new(Canned::new());
    let deadline = tokio::time::sleep(Duration::from_secs(args.max_seconds.min(MAX_SECONDS)));
    tokio::pin!(deadline);
    loop {
        let (stream, _) = tokio::select! {
            a = listener.accept() => match a {
                Ok(c) => c,
                Err(_) => { tokio::time::sleep(Duration::from_millis(50)).await; continue; }
            },
            _ = &mut deadline => break,
        };
        let _ = stream.set_nodelay(true);
        let canned = canned.clone();
        let tls = tls.clone();
        tokio::spawn(async move {
            match tls {
                None => serve_baseline(stream, canned).await,
                Some(acceptor) => {
                    if let Ok(Ok(s)) =
                        tokio::time::timeout(Duration::from_secs(10), acceptor.accept(stream)).await
                    {
                        serve_baseline(s, canned).await
                    }
                }
            }
        });
    }
    eprintln!("baseline-server: time limit reached, exiting");
    Ok(())
}

async fn serve_baseline<S>(stream: S, canned: Arc<Canned>)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let svc = service_fn(move |req: Request<Incoming>| {
        let canned = canned.clone();
        async move {
            let path = req.uri().path().to_owned();
            // Read the body, as keyhold must, then answer without any work.
            let body = req.into_body().collect().await?.to_bytes();
            let (status, bytes) = canned.answer(&path, body.len());
            let mut resp = Response::new(Full::new(bytes));
            *resp.status_mut() = status;
            resp.headers_mut().insert(
                http::header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            Ok::<_, hyper::Error>(resp)
        }
    });
    let _ = auto::Builder::new(TokioExecutor::new())
        .serve_connection(TokioIo::new(stream), svc)
        .await;
}

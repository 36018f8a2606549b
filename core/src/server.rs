//! The listener: accepts TCP connections, optionally terminates TLS, and serves
//! HTTP/1.1 and HTTP/2 on each: the XKS service, the admin API and the metrics endpoint.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use http::{Request, Response};
use hyper::{body::Incoming, service::service_fn};
use hyper_util::{
    rt::{TokioExecutor, TokioIo},
    server::conn::auto,
};
use tokio::{net::TcpListener, sync::watch};
use tokio_rustls::TlsAcceptor;

use crate::xks::{XksService, mtls::PeerCertificates};

/// How long a client may take to finish the TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Serves the XKS `service` on `listener` until `shutdown` turns true.
pub async fn serve(
    listener: TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
    service: XksService,
    shutdown: watch::Receiver<bool>,
) {
    let svc = service_fn(move |req| {
        let service = service.clone();
        async move { Ok::<_, std::convert::Infallible>(service.handle(req).await) }
    });
    serve_http(listener, tls, svc, shutdown, "xks").await;
}

/// Serves any hyper `service` on `listener` (TLS when configured, HTTP/1.1 and HTTP/2)
/// until `shutdown` turns true; connections in flight finish their current requests.
/// `name` labels log lines.
pub async fn serve_http<S, B>(
    listener: TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
    service: S,
    mut shutdown: watch::Receiver<bool>,
    name: &'static str,
) where
    S: hyper::service::Service<Request<Incoming>, Response = Response<B>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    B: hyper::body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let acceptor = tls.map(TlsAcceptor::from);
    // Connection tasks hold the service (and through it the store): keep them so that
    // shutdown can wait for them to finish.
    let mut connections = tokio::task::JoinSet::new();
    loop {
        while connections.try_join_next().is_some() {}
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(conn) => conn,
                Err(e) => {
                    tracing::warn!(listener = name, "accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = shutdown.changed() => break,
        };
        let _ = stream.set_nodelay(true);
        let service = service.clone();
        let acceptor = acceptor.clone();
        let mut shutdown = shutdown.clone();
        connections.spawn(async move {
            match acceptor {
                None => serve_connection(stream, peer, None, service, shutdown, name).await,
                Some(acceptor) => {
                    let handshake = tokio::time::timeout(
                        HANDSHAKE_TIMEOUT,
                        acceptor.accept(stream).into_fallible(),
                    );
                    let accepted = tokio::select! {
                        accepted = handshake => accepted,
                        _ = shutdown.changed() => return,
                    };
                    match accepted {
                        Ok(Ok(tls)) => {
                            let certs = tls.get_ref().1.peer_certificates().map(|c| {
                                PeerCertificates(c.iter().map(|c| c.clone().into_owned()).collect())
                            });
                            serve_connection(tls, peer, certs, service, shutdown, name).await
                        }
                        Ok(Err((e, io))) => {
                            tracing::info!(listener = name, %peer, "TLS handshake refused: {e}");
                            // The alert is written: let it reach the client.
                            linger_close(io).await;
                        }
                        Err(_) => tracing::info!(listener = name, %peer, "TLS handshake timed out"),
                    }
                }
            }
        });
    }
    // Let in-flight requests finish (each connection saw the shutdown and is closing).
    drop(listener);
    while connections.join_next().await.is_some() {}
}

/// How long a refused TLS client's input is read and discarded before the socket
/// closes, and how much of it at most.
const LINGER: Duration = Duration::from_secs(2);
const LINGER_BYTES: usize = 256 * 1024;

/// Closes a connection whose last words (a TLS alert) are written, so that they reach
/// the client: the write side is shut down (FIN after the alert), and what the client
/// still sends is read and discarded for a bounded time. Closing a socket with unread
/// input sends a TCP reset, which can destroy the alert before the client reads it
/// (TLS 1.3 clients send their certificate, then at once their request).
async fn linger_close(mut io: tokio::net::TcpStream) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let _ = io.flush().await;
    let _ = io.shutdown().await;
    let drain = async {
        let mut buf = [0u8; 4096];
        let mut total = 0;
        while total < LINGER_BYTES {
            match io.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => total += n,
            }
        }
    };
    let _ = tokio::time::timeout(LINGER, drain).await;
}

async fn serve_connection<I, S, B>(
    stream: I,
    peer: SocketAddr,
    certs: Option<PeerCertificates>,
    service: S,
    mut shutdown: watch::Receiver<bool>,
    name: &'static str,
) where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    S: hyper::service::Service<Request<Incoming>, Response = Response<B>> + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    B: hyper::body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    // Every request carries its client's address (axum's `ConnectInfo`, read by the
    // admin API's login throttle).
    let service = service_fn(move |mut req: Request<Incoming>| {
        req.extensions_mut()
            .insert(axum::extract::ConnectInfo(peer));
        if let Some(certs) = &certs {
            req.extensions_mut().insert(certs.clone());
        }
        hyper::service::Service::call(&service, req)
    });
    let builder = auto::Builder::new(TokioExecutor::new());
    let conn = builder.serve_connection(TokioIo::new(stream), service);
    tokio::pin!(conn);
    tokio::select! {
        res = conn.as_mut() => {
            if let Err(e) = res {
                tracing::debug!(listener = name, %peer, "connection ended: {e}");
            }
        }
        _ = shutdown.changed() => {
            conn.as_mut().graceful_shutdown();
            let _ = conn.await;
        }
    }
}

/// Binds a TCP listener, describing a failure.
pub async fn bind(addr: SocketAddr) -> Result<TcpListener, String> {
    TcpListener::bind(addr).await.map_err(|e| e.to_string())
}

/// Serves `GET /metrics` (Prometheus text format) over plain HTTP until `shutdown`.
pub async fn serve_metrics(
    listener: TcpListener,
    service: XksService,
    sources: Arc<crate::xks::Sources>,
    shutdown: watch::Receiver<bool>,
) {
    use bytes::Bytes;
    use http::{StatusCode, header};
    use http_body_util::Full;
    let svc = service_fn(move |req: Request<Incoming>| {
        let (service, sources) = (service.clone(), sources.clone());
        async move {
            let resp = if req.uri().path() == "/metrics" {
                let mut r = Response::new(Full::new(Bytes::from(service.render_metrics(&sources))));
                r.headers_mut().insert(
                    header::CONTENT_TYPE,
                    http::HeaderValue::from_static("text/plain; version=0.0.4"),
                );
                r
            } else {
                let mut r = Response::new(Full::new(Bytes::from_static(b"not found\n")));
                *r.status_mut() = StatusCode::NOT_FOUND;
                r
            };
            Ok::<_, std::convert::Infallible>(resp)
        }
    });
    serve_http(listener, None, svc, shutdown, "metrics").await;
}

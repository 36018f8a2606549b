//! The listener: accepts TCP connections, optionally terminates TLS, and serves
//! HTTP/1.1 and HTTP/2 on each with the XKS service.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use hyper::service::service_fn;
use hyper_util::{
    rt::{TokioExecutor, TokioIo},
    server::conn::auto,
};
use tokio::{net::TcpListener, sync::watch};
use tokio_rustls::TlsAcceptor;

use crate::xks::XksService;

/// How long a client may take to finish the TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Serves `service` on `listener` until `shutdown` turns true. Connections in flight
/// finish their current requests.
pub async fn serve(
    listener: TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
    service: XksService,
    mut shutdown: watch::Receiver<bool>,
) {
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
                    tracing::warn!("accept failed: {e}");
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
                None => serve_connection(stream, peer, service, shutdown).await,
                Some(acceptor) => {
                    let handshake =
                        tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream));
                    let accepted = tokio::select! {
                        accepted = handshake => accepted,
                        _ = shutdown.changed() => return,
                    };
                    match accepted {
                        Ok(Ok(tls)) => serve_connection(tls, peer, service, shutdown).await,
                        Ok(Err(e)) => tracing::info!(%peer, "TLS handshake refused: {e}"),
                        Err(_) => tracing::info!(%peer, "TLS handshake timed out"),
                    }
                }
            }
        });
    }
    // Let in-flight requests finish (each connection saw the shutdown and is closing).
    drop(listener);
    while connections.join_next().await.is_some() {}
}

async fn serve_connection<S>(
    stream: S,
    peer: SocketAddr,
    service: XksService,
    mut shutdown: watch::Receiver<bool>,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let svc = service_fn(move |req| {
        let service = service.clone();
        async move { Ok::<_, std::convert::Infallible>(service.handle(req).await) }
    });
    let builder = auto::Builder::new(TokioExecutor::new());
    let conn = builder.serve_connection(TokioIo::new(stream), svc);
    tokio::pin!(conn);
    tokio::select! {
        res = conn.as_mut() => {
            if let Err(e) = res {
                tracing::debug!(%peer, "connection ended: {e}");
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
    mut shutdown: watch::Receiver<bool>,
) {
    use bytes::Bytes;
    use http::{Response, StatusCode, header};
    use http_body_util::Full;
    loop {
        let (stream, _) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(conn) => conn,
                Err(_) => continue,
            },
            _ = shutdown.changed() => break,
        };
        let (service, sources) = (service.clone(), sources.clone());
        tokio::spawn(async move {
            let svc = service_fn(move |req: http::Request<hyper::body::Incoming>| {
                let (service, sources) = (service.clone(), sources.clone());
                async move {
                    let mut resp = if req.uri().path() == "/metrics" {
                        let mut r =
                            Response::new(Full::new(Bytes::from(service.render_metrics(&sources))));
                        r.headers_mut().insert(
                            header::CONTENT_TYPE,
                            http::HeaderValue::from_static("text/plain; version=0.0.4"),
                        );
                        r
                    } else {
                        Response::new(Full::new(Bytes::from_static(b"not found\n")))
                    };
                    if req.uri().path() != "/metrics" {
                        *resp.status_mut() = StatusCode::NOT_FOUND;
                    }
                    Ok::<_, std::convert::Infallible>(resp)
                }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), svc)
                .await;
        });
    }
}

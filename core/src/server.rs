//! The listener: accepts TCP connections, optionally terminates TLS, and serves
//! HTTP/1.1 and HTTP/2 on each: the XKS service, the admin API and the metrics endpoint.
//!
//! Every listener enforces its [`ListenerLimits`]: at most `max_connections` open
//! (further ones are closed as they are accepted), a deadline for each request's
//! headers and body, an idle timeout, HTTP/2 keep-alive pings and a stream limit; and
//! closes connections so that answers already sent reach the client ([`io`],
//! [`body`]).

use std::{net::SocketAddr, sync::Arc, time::Duration};

use http::{Request, Response};
use hyper::{body::Incoming, service::service_fn};
use hyper_util::{
    rt::{TokioExecutor, TokioIo, TokioTimer},
    server::conn::auto,
};
use tokio::{net::TcpListener, sync::watch};
use tokio_rustls::TlsAcceptor;

use crate::xks::{XksService, mtls::PeerCertificates};

use self::{
    activity::Activity,
    io::{ConnIo, Slot},
    stats::TimeoutKind,
};

mod activity;
pub mod body;
mod io;
pub mod limits;
pub mod refusal;
pub mod stats;

pub use body::{BodyTimeout, RequestBody, ResponseBody};
pub use limits::{ConnectionBudget, ListenerLimits, Listeners};
pub use refusal::Refusals;
pub use stats::{ListenerMetrics, ListenerStats};

/// How long a client may take to finish the TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a connection closed for a header or idle timeout may take to finish
/// closing (a request's body timeout adds the body timeout).
const CLOSE_GRACE: Duration = Duration::from_secs(1);

/// What a listener enforces and counts.
#[derive(Clone)]
pub struct ListenerContext {
    /// Its limits.
    pub limits: ListenerLimits,
    /// Its counters.
    pub stats: Arc<ListenerStats>,
    /// How it answers requests refused at the HTTP layer.
    pub refusals: Refusals,
}

/// Serves the XKS `service` on `listener` until `shutdown` turns true.
pub async fn serve(
    listener: TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
    service: XksService,
    shutdown: watch::Receiver<bool>,
    limits: ListenerLimits,
) {
    let ctx = ListenerContext {
        limits,
        stats: service.listener_metrics().xks.clone(),
        refusals: Refusals::Xks,
    };
    // One reference count per request (cloning the service itself would touch each of
    // its shared parts).
    let service = Arc::new(service);
    let svc = service_fn(move |req: Request<RequestBody>| {
        let service = service.clone();
        async move { Ok::<_, std::convert::Infallible>(service.handle(req).await) }
    });
    serve_http(listener, tls, svc, shutdown, "xks", ctx).await;
}

/// Serves any hyper `service` on `listener` (TLS when configured, HTTP/1.1 and HTTP/2)
/// until `shutdown` turns true; connections in flight finish their current requests.
/// `name` labels log lines; `ctx` holds the limits enforced and the counters.
pub async fn serve_http<S, B>(
    listener: TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
    service: S,
    mut shutdown: watch::Receiver<bool>,
    name: &'static str,
    ctx: ListenerContext,
) where
    S: hyper::service::Service<Request<RequestBody>, Response = Response<B>>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    B: hyper::body::Body<Data = bytes::Bytes> + Send + Unpin + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let acceptor = tls.map(TlsAcceptor::from);
    let cap = Arc::new(tokio::sync::Semaphore::new(ctx.limits.max_connections));
    ctx.stats.set_max(ctx.limits.max_connections);
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
        // At the cap: closed at once, before any work (or file descriptor) is spent on it.
        let Some(slot) = Slot::take(&cap, &ctx.stats) else {
            ctx.stats.count_refused();
            tracing::debug!(listener = name, %peer, "connection refused: at max_connections");
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let service = service.clone();
        let acceptor = acceptor.clone();
        let mut shutdown = shutdown.clone();
        let ctx = ctx.clone();
        connections.spawn(async move {
            let conn = Conn {
                peer,
                name,
                ctx,
                slot,
                certs: None,
            };
            match acceptor {
                None => serve_connection(stream, conn, service, shutdown).await,
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
                            let conn = Conn { certs, ..conn };
                            serve_connection(tls, conn, service, shutdown).await
                        }
                        Ok(Err((e, tcp))) => {
                            tracing::info!(listener = name, %peer, "TLS handshake refused: {e}");
                            // The alert is written: let it reach the client. Closing
                            // with unread input would send a TCP reset, which can destroy
                            // the alert before the client reads it (TLS 1.3 clients send
                            // their certificate, then at once their request).
                            io::linger_at_most(tcp, Vec::new(), REFUSED_HANDSHAKE_LINGER_BYTES)
                                .await;
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

/// Most bytes of a refused TLS client's input read and discarded before the socket
/// closes.
const REFUSED_HANDSHAKE_LINGER_BYTES: usize = 256 * 1024;

/// A service's failure, as hyper receives it (a named type: with a boxed error,
/// rustc cannot prove the connection's future `Send` for every lifetime).
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
struct ServiceError(Box<dyn std::error::Error + Send + Sync>);

fn boxed<E: Into<Box<dyn std::error::Error + Send + Sync>>>(e: E) -> ServiceError {
    ServiceError(e.into())
}

/// One accepted connection: who, on which listener, its slot under the cap, and the
/// certificate chain its client presented in the TLS handshake.
struct Conn {
    peer: SocketAddr,
    name: &'static str,
    ctx: ListenerContext,
    slot: Slot,
    certs: Option<PeerCertificates>,
}

/// The HTTP/1.1 and HTTP/2 settings of a listener's connections.
fn builder(limits: &ListenerLimits) -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    // The header deadline is the connection's watchdog's ([`Activity`]): hyper's own
    // also runs between keep-alive requests, which would make the idle timeout the
    // header timeout. hyper's header limits are set above the listener's, which
    // answer with its JSON errors ([`refused`]); what hyper still refuses itself is
    // rewritten by [`ConnIo`], which needs each write in one piece (`writev(false)`).
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(None)
        .writev(false)
        .max_headers(limits.max_headers.saturating_mul(2));
    let list_size = (limits.max_header_bytes + limits.max_uri_bytes + 32 * limits.max_headers)
        .saturating_mul(2);
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(limits.h2_keepalive_interval)
        .keep_alive_timeout(limits.h2_keepalive_timeout)
        .max_concurrent_streams(limits.h2_max_concurrent_streams)
        .max_header_list_size(u32::try_from(list_size).unwrap_or(u32::MAX));
    builder
}

/// Whether a request's head is beyond the listener's limits: the status to refuse
/// it with (414, 431).
fn refused(parts: &http::request::Parts, limits: &ListenerLimits) -> Option<http::StatusCode> {
    let target = parts.uri.path_and_query().map_or(0, |p| p.as_str().len());
    if target > limits.max_uri_bytes {
        return Some(http::StatusCode::URI_TOO_LONG);
    }
    let bytes: usize = parts
        .headers
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len())
        .sum();
    (parts.headers.len() > limits.max_headers || bytes > limits.max_header_bytes)
        .then_some(http::StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE)
}

async fn serve_connection<I, S, B>(
    stream: I,
    conn: Conn,
    service: S,
    mut shutdown: watch::Receiver<bool>,
) where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    S: hyper::service::Service<Request<RequestBody>, Response = Response<B>> + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    B: hyper::body::Body<Data = bytes::Bytes> + Send + Unpin + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let Conn {
        peer,
        name,
        ctx,
        slot,
        certs,
    } = conn;
    let activity = Arc::new(Activity::new());
    let io = ConnIo::new(stream, activity.clone(), slot, ctx.refusals);
    // Every request carries its client's address (axum's `ConnectInfo`, read by the
    // admin API's login throttle), a body with its deadline, and counts as activity
    // until answered; its response keeps the request body until sent.
    let service = {
        let (activity, ctx) = (activity.clone(), ctx.clone());
        service_fn(move |req: Request<Incoming>| {
            let (mut parts, incoming) = req.into_parts();
            parts.extensions.insert(axum::extract::ConnectInfo(peer));
            if let Some(certs) = &certs {
                parts.extensions.insert(certs.clone());
            }
            let in_flight = activity.request();
            let drain = parts.version < http::Version::HTTP_2;
            let (body, keeper) = RequestBody::new(
                incoming,
                ctx.limits.body_timeout,
                drain,
                activity.clone(),
                ctx.stats.clone(),
            );
            // A head beyond the listener's limits is refused here (`Err`).
            let call = match refused(&parts, &ctx.limits) {
                Some(status) => Err(ctx.refusals.response(status)),
                None => Ok(hyper::service::Service::call(
                    &service,
                    Request::from_parts(parts, body),
                )),
            };
            async move {
                let answered = match call {
                    Ok(call) => call.await.map_err(boxed).map(Ok),
                    Err(refusal) => Ok(Err(refusal)),
                };
                let mut keeper = keeper;
                keeper.finish_request().await;
                drop(in_flight);
                answered.map(|resp| match resp {
                    Ok(resp) => resp.map(|b| ResponseBody::service(b, keeper)),
                    Err(refusal) => refusal.map(|b| ResponseBody::refusal(b, keeper)),
                })
            }
        })
    };
    let builder = builder(&ctx.limits);
    let conn = builder.serve_connection(TokioIo::new(io), service);
    tokio::pin!(conn);
    let (mut closing, mut hard_deadline) = (false, None);
    loop {
        let watchdog = activity.expired(&ctx.limits);
        let hard = async {
            match hard_deadline {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            res = conn.as_mut() => {
                if let Err(e) = res {
                    tracing::debug!(listener = name, %peer, "connection ended: {e}");
                }
                break;
            }
            _ = shutdown.changed(), if !closing => {
                closing = true;
                conn.as_mut().graceful_shutdown();
            }
            why = watchdog, if hard_deadline.is_none() => {
                if why != TimeoutKind::Body {
                    ctx.stats.count_timeout(why);
                }
                tracing::debug!(listener = name, %peer, timeout = why.label(), "closing connection");
                closing = true;
                conn.as_mut().graceful_shutdown();
                let grace = match why {
                    TimeoutKind::Body => ctx.limits.body_timeout + CLOSE_GRACE,
                    _ => CLOSE_GRACE,
                };
                hard_deadline = Some(tokio::time::Instant::now() + grace);
            }
            _ = hard => {
                tracing::debug!(listener = name, %peer, "connection closed: did not finish closing in time");
                break;
            }
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
    limits: ListenerLimits,
) {
    use bytes::Bytes;
    use http::{StatusCode, header};
    use http_body_util::Full;
    let ctx = ListenerContext {
        limits,
        stats: service.listener_metrics().metrics.clone(),
        refusals: Refusals::Bare,
    };
    let svc = service_fn(move |req: Request<RequestBody>| {
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
    serve_http(listener, None, svc, shutdown, "metrics", ctx).await;
}

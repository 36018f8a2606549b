//! The listener: HTTP/1.1 (plain or TLS), SigV4 verification, throttling, the KMS and
//! STS dispatch and the AWS-shaped answers, each call recorded.

use std::{convert::Infallible, sync::atomic::Ordering, time::SystemTime};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use serde_json::json;
use tokio::{net::TcpListener, sync::oneshot, task::JoinSet};
use tokio_rustls::TlsAcceptor;

use crate::{
    error::ApiError,
    kms::{self, Ctx},
    principals::Principal,
    sigv4::{self, AuthFailure, Received},
    state::{ApiCall, SharedRef, uuid},
    sts,
};

/// The largest request body read.
const MAX_BODY: usize = 1024 * 1024;

/// Accepts connections until `stop` fires; then every connection is dropped.
pub async fn serve(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    shared: SharedRef,
    mut stop: oneshot::Receiver<()>,
) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            _ = &mut stop => break,
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                let shared = shared.clone();
                let tls = tls.clone();
                connections.spawn(async move {
                    match tls {
                        Some(acceptor) => {
                            if let Ok(s) = acceptor.accept(stream).await {
                                serve_connection(s, shared).await;
                            }
                        }
                        None => serve_connection(stream, shared).await,
                    }
                });
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    drop(listener);
    connections.abort_all();
}

async fn serve_connection<S>(stream: S, shared: SharedRef)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |req| {
        let shared = shared.clone();
        async move { Ok::<_, Infallible>(handle(&shared, req).await) }
    });
    let _ = hyper::server::conn::http1::Builder::new()
        .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
        .await;
}

/// The protocol a request speaks.
enum Protocol {
    Kms(String),
    Sts(Vec<(String, String)>),
}

fn json_answer(status: u16, body: serde_json::Value, error: Option<&str>) -> Response<Full<Bytes>> {
    let mut r = Response::builder()
        .status(StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST))
        .header("content-type", "application/x-amz-json-1.1")
        .header("x-amzn-requestid", uuid());
    if let Some(code) = error {
        r = r.header("x-amzn-errortype", code);
    }
    r.body(Full::new(Bytes::from(body.to_string())))
        .unwrap_or_else(|_| Response::new(Full::new(Bytes::new())))
}

fn kms_error(e: &ApiError) -> Response<Full<Bytes>> {
    json_answer(
        e.status,
        json!({"__type": e.code, "message": e.message}),
        Some(e.code),
    )
}

fn xml_answer(a: &sts::StsAnswer) -> Response<Full<Bytes>> {
    Response::builder()
        .status(StatusCode::from_u16(a.status).unwrap_or(StatusCode::BAD_REQUEST))
        .header("content-type", "text/xml")
        .header("x-amzn-requestid", uuid())
        .body(Full::new(Bytes::from(a.body.clone())))
        .unwrap_or_else(|_| Response::new(Full::new(Bytes::new())))
}

/// Authentication failures in each protocol's words.
fn auth_error(
    protocol: &Protocol,
    f: &AuthFailure,
    unknown_key: bool,
) -> (u16, &'static str, String) {
    let sts = matches!(protocol, Protocol::Sts(_));
    match (f, unknown_key, sts) {
        (_, true, false) => (400, "UnrecognizedClientException", "The security token included in the request is invalid.".into()),
        (_, true, true) => (403, "InvalidClientTokenId", "The security token included in the request is invalid.".into()),
        (AuthFailure::Missing, _, false) => (400, "MissingAuthenticationTokenException", "Missing Authentication Token".into()),
        (AuthFailure::Missing, _, true) => (403, "MissingAuthenticationToken", "Request is missing Authentication Token".into()),
        (AuthFailure::Malformed(m), _, false) => (400, "IncompleteSignatureException", m.clone()),
        (AuthFailure::Malformed(m), _, true) => (400, "IncompleteSignature", m.clone()),
        (AuthFailure::Expired, _, false) => (400, "InvalidSignatureException", "Signature expired: the request time is more than 5 minutes away from the server's time.".into()),
        (AuthFailure::Expired, _, true) => (403, "SignatureDoesNotMatch", "Signature expired: the request time is more than 5 minutes away from the server's time.".into()),
        (AuthFailure::Mismatch, _, false) => (400, "InvalidSignatureException", "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method.".into()),
        (AuthFailure::Mismatch, _, true) => (403, "SignatureDoesNotMatch", "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method.".into()),
    }
}

async fn handle(shared: &SharedRef, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let (parts, body) = req.into_parts();
    let body = match http_body_util::Limited::new(body, MAX_BODY).collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => {
            return kms_error(&ApiError::new(
                "ValidationException",
                "The request body is too large or incomplete",
            ));
        }
    };
    let headers: Vec<(String, String)> = parts
        .headers
        .iter()
        .map(|(n, v)| {
            (
                n.as_str().to_string(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let path_and_query = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "/".into());
    let received = Received {
        method: parts.method.as_str(),
        path_and_query: &path_and_query,
        headers: &headers,
        body: &body,
    };
    let protocol = if let Some(target) = received.header("x-amz-target") {
        Protocol::Kms(
            target
                .strip_prefix("TrentService.")
                .unwrap_or(target)
                .to_string(),
        )
    } else if received
        .header("content-type")
        .is_some_and(|c| c.starts_with("application/x-www-form-urlencoded"))
    {
        Protocol::Sts(sts::parse_form(&body))
    } else {
        Protocol::Kms(String::new())
    };
    let (service, operation) = match &protocol {
        Protocol::Kms(op) => ("kms", op.clone()),
        Protocol::Sts(form) => ("sts", sts::action(form).unwrap_or_default().to_string()),
    };
    let mut call = ApiCall {
        service: service.into(),
        operation,
        access_key_id: String::new(),
        signing_region: String::new(),
        error_code: None,
    };
    let latency = shared.latency_ms.load(std::sync::atomic::Ordering::SeqCst);
    if latency > 0 {
        tokio::time::sleep(std::time::Duration::from_millis(latency)).await;
    }
    let (response, error) = answer(shared, &protocol, &received, &mut call).await;
    call.error_code = error;
    shared.record(call);
    response
}

async fn answer(
    shared: &SharedRef,
    protocol: &Protocol,
    received: &Received<'_>,
    call: &mut ApiCall,
) -> (Response<Full<Bytes>>, Option<String>) {
    let fail = |status: u16, code: &'static str, message: String| {
        let r = match protocol {
            Protocol::Kms(_) => kms_error(&ApiError {
                code,
                message,
                status,
            }),
            Protocol::Sts(_) => xml_answer(&sts::error(status, code, &message)),
        };
        (r, Some(code.to_string()))
    };
    let principal = match authenticate(shared, protocol, received, call) {
        Ok(p) => p,
        Err((status, code, message)) => return fail(status, code, message),
    };
    if shared
        .throttle
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok()
    {
        return match protocol {
            Protocol::Kms(_) => fail(400, "ThrottlingException", "Rate exceeded".into()),
            Protocol::Sts(_) => fail(400, "Throttling", "Rate exceeded".into()),
        };
    }
    match protocol {
        Protocol::Kms(op) => {
            if received.method != "POST" {
                return fail(
                    400,
                    "UnknownOperationException",
                    "KMS requests are POSTs".into(),
                );
            }
            let ctx = Ctx {
                shared,
                principal: &principal,
            };
            match kms::dispatch(&ctx, op, received.body).await {
                Ok(v) => (json_answer(200, v, None), None),
                Err(e) => {
                    let code = e.code.to_string();
                    (kms_error(&e), Some(code))
                }
            }
        }
        Protocol::Sts(form) => {
            let a = sts::handle(shared, &principal, form);
            (xml_answer(&a), a.error_code.map(str::to_string))
        }
    }
}

fn authenticate(
    shared: &SharedRef,
    protocol: &Protocol,
    received: &Received<'_>,
    call: &mut ApiCall,
) -> Result<Principal, (u16, &'static str, String)> {
    let header = received
        .header("authorization")
        .ok_or_else(|| auth_error(protocol, &AuthFailure::Missing, false))?;
    let auth = sigv4::parse_authorization(header).map_err(|f| auth_error(protocol, &f, false))?;
    call.access_key_id = auth.access_key_id.clone();
    call.signing_region = auth.region.clone();
    let now = SystemTime::now();
    let lookup = shared
        .directory
        .lookup(&auth.access_key_id, now)
        .ok_or_else(|| auth_error(protocol, &AuthFailure::Mismatch, true))?;
    let expected_service = match protocol {
        Protocol::Kms(_) => "kms",
        Protocol::Sts(_) => "sts",
    };
    if auth.service != expected_service {
        return Err(auth_error(
            protocol,
            &AuthFailure::Malformed(format!(
                "Credential should be scoped to correct service: '{expected_service}'."
            )),
            false,
        ));
    }
    if matches!(protocol, Protocol::Kms(_)) && auth.region != shared.config.region {
        return Err(auth_error(
            protocol,
            &AuthFailure::Malformed(format!(
                "Credential should be scoped to a valid region, not '{}'. ",
                auth.region
            )),
            false,
        ));
    }
    sigv4::verify(
        received,
        &auth,
        &lookup.secret,
        lookup.session_token.as_deref(),
        now,
    )
    .map_err(|f| auth_error(protocol, &f, false))?;
    Ok(lookup.principal)
}

//! keyhold's AWS client (`keyhold::aws::connect`, the `aws-sdk-kms` client) against a
//! tiny local HTTPS server speaking AWS JSON 1.1 (KMS) and the AWS query protocol
//! (STS), with a private test CA: the CA is trusted (alone), throttling is retried
//! `max_attempts` times then reported, refused credentials, timeouts and unreachable
//! endpoints get their kinds, assumed-role credentials are obtained, used and cached,
//! and paged operations read every page.

use std::{
    convert::Infallible,
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::Duration,
};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Request, Response, body::Incoming, service::service_fn};
use hyper_util::rt::TokioIo;
use keyhold::{
    aws::{self, AwsErrorKind, AwsKeyStore, AwsLimits, AwsSettings, XksConnectivity},
    model::{ConnectionState, StsRegionalEndpoints},
};
use keyhold_tests::pki::TestCa;
use serde_json::json;

/// How the stub answers KMS calls.
#[derive(Debug, Clone, Copy)]
enum Mode {
    /// `ListKeys` answers one key.
    Ok,
    /// Every KMS call is throttled.
    Throttle,
    /// Every KMS call is refused: unknown access key.
    Unrecognized,
    /// Never answers.
    Hang,
    /// STS refuses `AssumeRole`.
    RoleRefused,
    /// `ListKeys` and `DescribeCustomKeyStores` answer in two pages.
    Paged,
}

/// One request the stub saw: KMS target or STS action, the access key id it was
/// signed with, and its session token.
#[derive(Debug, Clone)]
struct Seen {
    call: String,
    access_key_id: String,
    session_token: Option<String>,
}

#[derive(Clone)]
struct Stub {
    mode: Mode,
    seen: Arc<Mutex<Vec<Seen>>>,
}

const AKID: &str = "AKIAKEYHOLDTEST00001";
const SECRET: &str = "awsClientTestSecret/0123456789+abcdefghij";
const ROLE: &str = "arn:aws:iam::111122223333:role/keyhold-admin";
const SESSION_AKID: &str = "ASIAKEYHOLDSESSION01";
const SESSION_TOKEN: &str = "session-token-from-the-stub";

fn answer(status: u16, content_type: &str, body: String) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header("content-type", content_type)
        .body(Full::new(Bytes::from(body)))
        .expect("response")
}

fn kms_error(status: u16, code: &str, message: &str) -> Response<Full<Bytes>> {
    answer(
        status,
        "application/x-amz-json-1.1",
        json!({"__type": code, "message": message}).to_string(),
    )
}

impl Stub {
    async fn handle(self, req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
        let (parts, body) = req.into_parts();
        let body = body
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        let header = |n: &str| {
            parts
                .headers
                .get(n)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        let auth = header("authorization").unwrap_or_default();
        let access_key_id = auth
            .strip_prefix("AWS4-HMAC-SHA256 Credential=")
            .and_then(|r| r.split('/').next())
            .unwrap_or("")
            .to_string();
        let body_text = String::from_utf8_lossy(&body).to_string();
        let sts = body_text.contains("Action=AssumeRole");
        let call = match header("x-amz-target") {
            Some(t) => t,
            None if sts => "AssumeRole".to_string(),
            None => "unknown".to_string(),
        };
        self.seen.lock().expect("seen").push(Seen {
            call: call.clone(),
            access_key_id,
            session_token: header("x-amz-security-token"),
        });
        if sts {
            return Ok(self.assume_role(&body_text));
        }
        match self.mode {
            Mode::Hang => {
                std::future::pending::<()>().await;
                unreachable!()
            }
            Mode::Throttle => Ok(kms_error(400, "ThrottlingException", "Rate exceeded")),
            Mode::Unrecognized => Ok(kms_error(
                400,
                "UnrecognizedClientException",
                "The security token included in the request is invalid.",
            )),
            Mode::Ok | Mode::RoleRefused if call == "TrentService.ListKeys" => Ok(answer(
                200,
                "application/x-amz-json-1.1",
                json!({"Keys": [{"KeyId": "1234abcd-12ab-34cd-56ef-1234567890ab",
                                 "KeyArn": "arn:aws:kms:eu-west-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"}],
                       "Truncated": false})
                .to_string(),
            )),
            Mode::Paged => Ok(paged(&call, &body_text)),
            _ => Ok(kms_error(400, "UnknownOperationException", "not served")),
        }
    }

    fn assume_role(&self, body: &str) -> Response<Full<Bytes>> {
        if matches!(self.mode, Mode::RoleRefused) {
            return answer(
                403,
                "text/xml",
                "<ErrorResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\"><Error>\
                 <Type>Sender</Type><Code>AccessDenied</Code><Message>User is not authorized \
                 to perform: sts:AssumeRole</Message></Error><RequestId>r1</RequestId>\
                 </ErrorResponse>"
                    .to_string(),
            );
        }
        assert!(body.contains("RoleSessionName=keyhold-conn1"), "{body}");
        answer(
            200,
            "text/xml",
            format!(
                "<AssumeRoleResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\">\
                 <AssumeRoleResult><Credentials><AccessKeyId>{SESSION_AKID}</AccessKeyId>\
                 <SecretAccessKey>sessionSecret</SecretAccessKey>\
                 <SessionToken>{SESSION_TOKEN}</SessionToken>\
                 <Expiration>2099-01-01T00:00:00Z</Expiration></Credentials>\
                 <AssumedRoleUser><AssumedRoleId>AROA1:keyhold-conn1</AssumedRoleId>\
                 <Arn>arn:aws:sts::111122223333:assumed-role/keyhold-admin/keyhold-conn1</Arn>\
                 </AssumedRoleUser></AssumeRoleResult><ResponseMetadata><RequestId>r2\
                 </RequestId></ResponseMetadata></AssumeRoleResponse>"
            ),
        )
    }

    fn calls(&self) -> Vec<Seen> {
        self.seen.lock().expect("seen").clone()
    }
}

/// Two pages of `ListKeys` and `DescribeCustomKeyStores` (the second asked for with
/// the first's marker); the stores are one of each type.
fn paged(call: &str, body: &str) -> Response<Full<Bytes>> {
    let request: serde_json::Value = serde_json::from_str(body).unwrap_or_default();
    let second = request["Marker"] == "page-2";
    let page = match (call, second) {
        ("TrentService.ListKeys", false) => json!({
            "Keys": [{"KeyId": "k1"}, {"KeyId": "k2"}],
            "Truncated": true, "NextMarker": "page-2"}),
        ("TrentService.ListKeys", true) => json!({"Keys": [{"KeyId": "k3"}], "Truncated": false}),
        ("TrentService.DescribeCustomKeyStores", false) => json!({
            "CustomKeyStores": [{
                "CustomKeyStoreId": "cks-1", "CustomKeyStoreName": "hsm",
                "CustomKeyStoreType": "AWS_CLOUDHSM", "ConnectionState": "CONNECTED"}],
            "Truncated": true, "NextMarker": "page-2"}),
        ("TrentService.DescribeCustomKeyStores", true) => json!({
            "CustomKeyStores": [{
                "CustomKeyStoreId": "cks-2", "CustomKeyStoreName": "xks",
                "CustomKeyStoreType": "EXTERNAL_KEY_STORE", "ConnectionState": "FAILED",
                "ConnectionErrorCode": "XKS_PROXY_TIMED_OUT",
                "XksProxyConfiguration": {
                    "Connectivity": "VPC_ENDPOINT_SERVICE", "AccessKeyId": "XKSACCESSKEYID0001",
                    "UriEndpoint": "https://xks.example.test", "UriPath": "/p/kms/xks/v1",
                    "VpcEndpointServiceName": "com.amazonaws.vpce.eu-west-1.vpce-svc-1"}}],
            "Truncated": false}),
        _ => return kms_error(400, "UnknownOperationException", "not served"),
    };
    answer(200, "application/x-amz-json-1.1", page.to_string())
}

/// Starts the stub on HTTPS with a certificate of `ca` for 127.0.0.1.
async fn start(ca: &TestCa, mode: Mode) -> (SocketAddr, Stub) {
    let issued = ca.server_cert();
    let (chain, key) = issued.client_auth();
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("TLS versions")
    .with_no_client_auth()
    .with_single_cert(chain, key)
    .expect("server certificate");
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let stub = Stub {
        mode,
        seen: Arc::default(),
    };
    let serving = stub.clone();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let (acceptor, stub) = (acceptor.clone(), serving.clone());
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(
                        TokioIo::new(tls),
                        service_fn(move |req| stub.clone().handle(req)),
                    )
                    .await;
            });
        }
    });
    (addr, stub)
}

fn settings(endpoint: String, ca: &TestCa, limits: AwsLimits) -> AwsSettings {
    AwsSettings {
        connection: "conn1".into(),
        region: "eu-west-1".into(),
        access_key_id: AKID.into(),
        secret_access_key: SECRET.to_string().into(),
        role_arn: None,
        endpoint_url: Some(endpoint),
        sts_endpoint_url: None,
        sts_regional_endpoints: StsRegionalEndpoints::Regional,
        ca_pem: Some(ca.pem().into_bytes()),
        limits,
    }
}

fn limits(max_attempts: u32) -> AwsLimits {
    AwsLimits {
        max_attempts,
        ..AwsLimits::default()
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_connection_ca_is_trusted_alone() {
    let ca = TestCa::new("aws-client test CA");
    let (addr, stub) = start(&ca, Mode::Ok).await;
    let endpoint = format!("https://127.0.0.1:{}", addr.port());
    let kms = aws::connect(&settings(endpoint.clone(), &ca, limits(1))).expect("client");
    kms.probe().await.expect("ListKeys through the private CA");
    let calls = stub.calls();
    assert_eq!(calls.len(), 1, "{calls:?}");
    assert_eq!(calls[0].call, "TrentService.ListKeys");
    assert_eq!(calls[0].access_key_id, AKID);
    assert_eq!(calls[0].session_token, None);
    // Another CA is not trusted: the TLS handshake fails, reported as unreachable.
    let other = TestCa::new("another CA");
    let kms = aws::connect(&settings(endpoint, &other, limits(1))).expect("client");
    let e = kms.probe().await.expect_err("untrusted certificate");
    assert_eq!(e.kind, AwsErrorKind::Unreachable, "{e}");
    assert!(e.message.contains("ListKeys"), "{e}");
    assert_eq!(
        stub.calls().len(),
        1,
        "no request over an untrusted connection"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn throttling_is_retried_max_attempts_times_then_reported() {
    let ca = TestCa::new("aws-client test CA");
    let (addr, stub) = start(&ca, Mode::Throttle).await;
    let kms = aws::connect(&settings(
        format!("https://127.0.0.1:{}", addr.port()),
        &ca,
        limits(3),
    ))
    .expect("client");
    let e = kms.probe().await.expect_err("throttled");
    assert_eq!(e.kind, AwsErrorKind::Throttled, "{e}");
    assert!(e.is("ThrottlingException"), "{e:?}");
    assert_eq!((e.api_code(), e.http_status()), ("aws_throttled", 503));
    assert!(
        e.message.contains("Rate exceeded") && e.message.contains("retry later"),
        "{e}"
    );
    assert_eq!(stub.calls().len(), 3, "one call, three attempts");
}

#[tokio::test(flavor = "multi_thread")]
async fn refused_keys_are_a_credentials_error() {
    let ca = TestCa::new("aws-client test CA");
    let (addr, stub) = start(&ca, Mode::Unrecognized).await;
    let kms = aws::connect(&settings(
        format!("https://127.0.0.1:{}", addr.port()),
        &ca,
        limits(3),
    ))
    .expect("client");
    let e = kms.probe().await.expect_err("refused");
    assert_eq!(e.kind, AwsErrorKind::Credentials, "{e}");
    assert!(e.is("UnrecognizedClientException"), "{e:?}");
    assert!(e.message.contains("access key id and secret"), "{e}");
    assert!(!e.message.contains(SECRET), "{e}");
    assert_eq!(stub.calls().len(), 1, "refused credentials are not retried");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_silent_endpoint_times_out() {
    let ca = TestCa::new("aws-client test CA");
    let (addr, _stub) = start(&ca, Mode::Hang).await;
    let limits = AwsLimits {
        connect_timeout: Duration::from_secs(2),
        attempt_timeout: Duration::from_millis(200),
        operation_timeout: Duration::from_millis(500),
        max_attempts: 1,
    };
    let kms = aws::connect(&settings(
        format!("https://127.0.0.1:{}", addr.port()),
        &ca,
        limits,
    ))
    .expect("client");
    let e = kms.probe().await.expect_err("no answer");
    assert_eq!(e.kind, AwsErrorKind::Timeout, "{e}");
    assert_eq!(e.http_status(), 504);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_closed_port_is_unreachable() {
    let ca = TestCa::new("aws-client test CA");
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr");
    let kms = aws::connect(&settings(
        format!("https://127.0.0.1:{}", closed.port()),
        &ca,
        limits(1),
    ))
    .expect("client");
    let e = kms.probe().await.expect_err("closed");
    assert_eq!(e.kind, AwsErrorKind::Unreachable, "{e}");
    assert!(e.message.contains("cannot reach the endpoint"), "{e}");
}

#[tokio::test(flavor = "multi_thread")]
async fn assumed_role_credentials_are_used_and_cached() {
    let ca = TestCa::new("aws-client test CA");
    let (addr, stub) = start(&ca, Mode::Ok).await;
    let endpoint = format!("https://127.0.0.1:{}", addr.port());
    let mut s = settings(endpoint.clone(), &ca, limits(1));
    s.role_arn = Some(ROLE.into());
    s.sts_endpoint_url = Some(endpoint);
    let kms = aws::connect(&s).expect("client");
    kms.probe().await.expect("probe with the role");
    kms.probe().await.expect("again");
    let calls = stub.calls();
    let sts: Vec<_> = calls.iter().filter(|c| c.call == "AssumeRole").collect();
    assert_eq!(sts.len(), 1, "assumed once, then cached: {calls:?}");
    assert_eq!(sts[0].access_key_id, AKID);
    let kms_calls: Vec<_> = calls.iter().filter(|c| c.call != "AssumeRole").collect();
    assert_eq!(kms_calls.len(), 2, "{calls:?}");
    for c in kms_calls {
        assert_eq!(c.access_key_id, SESSION_AKID);
        assert_eq!(c.session_token.as_deref(), Some(SESSION_TOKEN));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_refused_role_is_a_credentials_error_naming_the_role() {
    let ca = TestCa::new("aws-client test CA");
    let (addr, stub) = start(&ca, Mode::RoleRefused).await;
    let endpoint = format!("https://127.0.0.1:{}", addr.port());
    let mut s = settings(endpoint.clone(), &ca, limits(1));
    s.role_arn = Some(ROLE.into());
    s.sts_endpoint_url = Some(endpoint);
    let e = aws::connect(&s)
        .expect("client")
        .probe()
        .await
        .expect_err("role refused");
    assert_eq!(e.kind, AwsErrorKind::Credentials, "{e}");
    assert!(e.is("AccessDenied"), "{e:?}");
    assert!(
        e.message.contains(ROLE) && e.message.contains("assume the role"),
        "{e}"
    );
    assert!(
        stub.calls().iter().all(|c| c.call == "AssumeRole"),
        "no KMS call"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn paged_operations_read_every_page() {
    let ca = TestCa::new("aws-client test CA");
    let (addr, stub) = start(&ca, Mode::Paged).await;
    let kms = aws::connect(&settings(
        format!("https://127.0.0.1:{}", addr.port()),
        &ca,
        limits(1),
    ))
    .expect("client");
    assert_eq!(
        kms.list_key_ids().await.expect("ListKeys"),
        ["k1", "k2", "k3"]
    );
    let stores = kms
        .list_xks_stores()
        .await
        .expect("DescribeCustomKeyStores");
    assert_eq!(
        stores,
        [AwsKeyStore {
            id: "cks-2".into(),
            name: "xks".into(),
            connection_state: ConnectionState::Failed,
            connection_error_code: Some("XKS_PROXY_TIMED_OUT".into()),
            uri_endpoint: "https://xks.example.test".into(),
            uri_path: "/p/kms/xks/v1".into(),
            connectivity: XksConnectivity::Vpc {
                service_name: "com.amazonaws.vpce.eu-west-1.vpce-svc-1".into()
            },
            access_key_id: Some("XKSACCESSKEYID0001".into()),
        }],
        "only the external key store, from the second page"
    );
    assert_eq!(stub.calls().len(), 4, "two pages each");
}

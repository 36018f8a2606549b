//! Property tests of keyhold's SigV4 verifier (`keyhold::xks::sigv4`) against AWS's own
//! signer (`aws-sigv4`): on generated methods, paths, queries, headers and bodies, a
//! request signed by aws-sigv4 verifies, and the same request with one signed part
//! changed (method, path, query, a header value, the body) does not. Case counts stay
//! moderate (256 per property) so that the suite runs in seconds.

use std::time::{Duration, UNIX_EPOCH};

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4::SigningParams;
use aws_smithy_runtime_api::client::identity::Identity;
use http::{HeaderMap, HeaderName, HeaderValue};
use keyhold::xks::sigv4::{RequestParts, SERVICE, parse_authorization, verify};
use proptest::prelude::*;

const AKID: &str = "AKIAXKSPROXYTEST2345";
const SECRET: &str = "R2waUCZNy/ulj/7eURO1g5oc8XXokuDrR53OzOURNaM=";
const HOST: &str = "xks.example.com";
/// 2023-11-14T22:13:20Z
const SIGNED_AT: u64 = 1_700_000_000;

/// A request as generated, before signing.
#[derive(Debug, Clone)]
struct Generated {
    method: &'static str,
    path: String,
    query: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

/// The request as the proxy receives it.
struct Received {
    method: String,
    path: String,
    query: String,
    headers: HeaderMap,
    body: Vec<u8>,
}

impl Received {
    fn verify(&self) -> Result<(), String> {
        let header = self
            .headers
            .get("authorization")
            .ok_or("unsigned")?
            .to_str()
            .map_err(|e| e.to_string())?
            .to_owned();
        let auth = parse_authorization(&header).map_err(|e| e.to_string())?;
        let parts = RequestParts {
            method: &self.method,
            path: &self.path,
            query: &self.query,
            headers: &self.headers,
            authority: None,
            body: &self.body,
        };
        let now = time::OffsetDateTime::from_unix_timestamp(SIGNED_AT as i64)
            .map_err(|e| e.to_string())?;
        verify(&parts, &auth, SECRET.as_bytes(), now).map_err(|e| e.to_string())
    }
}

/// Signs `g` with aws-sigv4 (default settings: double URI encoding, as every service but
/// S3) and returns the request as received.
fn aws_sign(g: &Generated) -> Received {
    let identity: Identity = Credentials::new(AKID, SECRET, None, None, "test").into();
    let params = SigningParams::builder()
        .identity(&identity)
        .region("eu-west-1")
        .name(SERVICE)
        .time(UNIX_EPOCH + Duration::from_secs(SIGNED_AT))
        .settings(SigningSettings::default())
        .build()
        .expect("signing params")
        .into();
    let mut headers: Vec<(&str, &str)> = g
        .headers
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect();
    headers.push(("host", HOST));
    let uri = if g.query.is_empty() {
        format!("https://{HOST}{}", g.path)
    } else {
        format!("https://{HOST}{}?{}", g.path, g.query)
    };
    let signable = SignableRequest::new(
        g.method,
        uri,
        headers.iter().copied(),
        SignableBody::Bytes(&g.body),
    )
    .expect("signable request");
    let (instructions, _) = sign(signable, &params).expect("sign").into_parts();
    let mut map = HeaderMap::new();
    for (name, value) in headers.iter().copied().chain(instructions.headers()) {
        map.append(
            HeaderName::from_bytes(name.as_bytes()).expect("header name"),
            HeaderValue::from_str(value).expect("header value"),
        );
    }
    Received {
        method: g.method.to_owned(),
        path: g.path.clone(),
        query: g.query.clone(),
        headers: map,
        body: g.body.clone(),
    }
}

/// A path segment: unreserved and sub-delimiter characters, `:`/`@`, and
/// percent-encoded bytes (never `.` or `..`, which aws-sigv4 normalizes away and AWS
/// KMS never sends).
fn segment() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        4 => "[A-Za-z0-9_~-]{1,6}",
        1 => "[!$&'()*+,;=:@]{1,2}",
        1 => "%[0-9A-F]{2}",
    ];
    prop::collection::vec(piece, 1..4)
        .prop_map(|p| p.concat())
        .prop_filter("no dot segments", |s| s != "." && s != "..")
}

fn path() -> impl Strategy<Value = String> {
    prop::collection::vec(segment(), 0..6).prop_map(|s| format!("/{}", s.join("/")))
}

/// A query: `name=value` pairs (names may repeat; values may be empty), with `+`,
/// percent-encoded bytes and characters that need encoding.
fn query() -> impl Strategy<Value = String> {
    let component = prop_oneof![
        4 => "[A-Za-z0-9_.~-]{0,6}",
        1 => "%[0-9A-F]{2}",
        1 => "[+!$'()*,;:@/?]{1,2}",
    ];
    let pair = (
        prop::collection::vec(component.clone(), 1..3),
        prop::collection::vec(component, 0..3),
    )
        .prop_map(|(n, v)| format!("{}={}", n.concat(), v.concat()))
        .prop_filter("non-empty name", |p| !p.starts_with('='));
    prop::collection::vec(pair, 0..5).prop_map(|p| p.join("&"))
}

/// Extra headers: lowercase names (never ones the signer skips or sets itself), values
/// of printable ASCII with inner runs of spaces; a name may repeat.
fn headers() -> impl Strategy<Value = Vec<(String, String)>> {
    let name = "x-[a-z0-9]{1,8}|content-type|x-amz-meta-[a-z]{1,4}";
    let value = "[!-~]([ -~]{0,20}[!-~])?";
    prop::collection::vec((name, value), 0..5)
}

fn generated() -> impl Strategy<Value = Generated> {
    (
        prop_oneof![Just("POST"), Just("GET"), Just("PUT")],
        path(),
        query(),
        headers(),
        prop::collection::vec(any::<u8>(), 0..64),
    )
        .prop_map(|(method, path, query, headers, body)| Generated {
            method,
            path,
            query,
            headers,
            body,
        })
}

/// One change to a signed part of the request.
#[derive(Debug, Clone, Copy)]
enum Mutation {
    Method,
    Path,
    Query,
    Header,
    Body,
}

fn mutate(r: &mut Received, m: Mutation) {
    match m {
        Mutation::Method => r.method = if r.method == "POST" { "GET" } else { "POST" }.into(),
        Mutation::Path => r.path.push('z'),
        Mutation::Query => {
            if r.query.is_empty() {
                r.query = "zz=1".into();
            } else {
                r.query.push_str("&zz=1");
            }
        }
        Mutation::Header => {
            // x-amz-date is always signed; change another signed header when there is
            // one (host), else the date's seconds stay valid but differ.
            let host = r.headers.get("host").cloned();
            let value = host.map_or_else(String::new, |v| {
                format!("{}z", v.to_str().unwrap_or_default())
            });
            r.headers
                .insert("host", HeaderValue::from_str(&value).expect("host value"));
        }
        Mutation::Body => match r.body.first_mut() {
            Some(b) => *b ^= 0x20,
            None => r.body.push(b'x'),
        },
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Whatever aws-sigv4 signs, keyhold accepts.
    #[test]
    fn requests_signed_by_aws_sigv4_verify(g in generated()) {
        let received = aws_sign(&g);
        prop_assert_eq!(received.verify(), Ok(()), "{:?}", g);
    }

    /// One signed part changed: refused.
    #[test]
    fn a_changed_signed_part_is_refused(
        g in generated(),
        m in prop_oneof![
            Just(Mutation::Method),
            Just(Mutation::Path),
            Just(Mutation::Query),
            Just(Mutation::Header),
            Just(Mutation::Body),
        ],
    ) {
        let mut received = aws_sign(&g);
        mutate(&mut received, m);
        prop_assert!(received.verify().is_err(), "{:?} after {:?}", g, m);
    }

    /// A signed header's value changed: refused (the generated headers themselves).
    #[test]
    fn a_changed_generated_header_is_refused(g in generated(), which in any::<prop::sample::Index>()) {
        prop_assume!(!g.headers.is_empty());
        let mut received = aws_sign(&g);
        let (name, _) = &g.headers[which.index(g.headers.len())];
        let name = HeaderName::from_bytes(name.as_bytes()).expect("name");
        let values: Vec<HeaderValue> = received.headers.get_all(&name).iter().cloned().collect();
        received.headers.remove(&name);
        for (i, v) in values.iter().enumerate() {
            let changed = if i == 0 {
                HeaderValue::from_str(&format!("{}Q", v.to_str().expect("ascii"))).expect("value")
            } else {
                v.clone()
            };
            received.headers.append(name.clone(), changed);
        }
        prop_assert!(received.verify().is_err(), "{:?}", g);
    }
}

//! Tests of SigV4 verification: AWS's own signer and test-suite vectors, a reference
//! signer, and every refusal.

use super::*;
use aws_credential_types::Credentials;
use aws_sigv4::http_request::{
    PayloadChecksumKind, SignableBody, SignableRequest, SigningSettings, sign,
};
use aws_sigv4::sign::v4::SigningParams;
use aws_smithy_runtime_api::client::identity::Identity;
use http::{HeaderMap, HeaderName, HeaderValue};
use std::time::{Duration as StdDuration, UNIX_EPOCH};
use time::OffsetDateTime;

const AKID: &str = "AKIAXKSPROXYTEST2345";
const SECRET_44: &str = "R2waUCZNy/ulj/7eURO1g5oc8XXokuDrR53OzOURNaM=";
const SECRET_52: &str = "UGsVhs7lY4k7WboReepYN22iuC4VZMQPO8Laxcey7H/ny27974Yu";
/// 2023-11-14T22:13:20Z
const SIGNED_AT: i64 = 1_700_000_000;
const HOST_NAME: &str = "xks.example.com";
const XKS_PATH: &str = "/tenants/acme/kms/xks/v1/keys/key-1/encrypt";
const BODY: &[u8] = br#"{"requestMetadata":{"awsPrincipalArn":"arn:aws:iam::123456789012:user/Alice","kmsOperation":"Encrypt","kmsRequestId":"4112f4d6-db54-4af4-ae30-c55a22a8dfae"},"plaintext":"SGVsbG8gV29ybGQ=","encryptionAlgorithm":"AES_GCM"}"#;

fn at(secs: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(secs).expect("valid timestamp")
}

/// A request as the proxy would receive it.
#[derive(Clone)]
struct Req {
    method: String,
    path: String,
    query: String,
    headers: HeaderMap,
    authority: Option<String>,
    body: Vec<u8>,
}

impl Req {
    fn parts(&self) -> RequestParts<'_> {
        RequestParts {
            method: &self.method,
            path: &self.path,
            query: &self.query,
            headers: &self.headers,
            authority: self.authority.as_deref(),
            body: &self.body,
        }
    }

    fn authorization(&self) -> String {
        self.headers
            .get("authorization")
            .expect("signed")
            .to_str()
            .expect("ascii")
            .to_owned()
    }

    fn set_authorization(&mut self, value: &str) {
        self.headers.insert(
            "authorization",
            HeaderValue::from_str(value).expect("header value"),
        );
    }

    fn set(&mut self, name: &'static str, value: &str) {
        self.headers.insert(
            HeaderName::from_static(name),
            HeaderValue::from_str(value).expect("header value"),
        );
    }

    /// Parses the Authorization header and verifies with `secret` at `now`.
    fn check_at(&self, secret: &str, now: OffsetDateTime) -> Result<(), AuthError> {
        let header = self.authorization();
        let auth = parse_authorization(&header)?;
        verify(&self.parts(), &auth, secret.as_bytes(), now)
    }

    fn check(&self, secret: &str) -> Result<(), AuthError> {
        self.check_at(secret, at(SIGNED_AT))
    }
}

struct AwsSign<'a> {
    method: &'a str,
    path_and_query: &'a str,
    headers: Vec<(&'a str, &'a str)>,
    body: &'a [u8],
    secret: &'a str,
    checksum_header: bool,
    /// Send a Host header; otherwise only the URI authority carries the host (HTTP/2).
    host_header: bool,
    time: i64,
    region: &'a str,
}

impl Default for AwsSign<'_> {
    fn default() -> Self {
        AwsSign {
            method: "POST",
            path_and_query: XKS_PATH,
            headers: vec![],
            body: BODY,
            secret: SECRET_44,
            checksum_header: false,
            host_header: true,
            time: SIGNED_AT,
            region: "us-east-1",
        }
    }
}

/// Signs with AWS's own `aws-sigv4` and returns the request as received by the proxy.
fn aws_sign(s: AwsSign<'_>) -> Req {
    let identity: Identity = Credentials::new(AKID, s.secret, None, None, "test").into();
    let mut settings = SigningSettings::default();
    if s.checksum_header {
        settings.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
    }
    let params = SigningParams::builder()
        .identity(&identity)
        .region(s.region)
        .name(SERVICE)
        .time(UNIX_EPOCH + StdDuration::from_secs(u64::try_from(s.time).expect("time")))
        .settings(settings)
        .build()
        .expect("signing params")
        .into();
    let mut headers = s.headers.clone();
    if s.host_header {
        headers.push(("host", HOST_NAME));
    }
    let uri = format!("https://{HOST_NAME}{}", s.path_and_query);
    let signable = SignableRequest::new(
        s.method,
        uri,
        headers.iter().copied(),
        SignableBody::Bytes(s.body),
    )
    .expect("signable request");
    let (instructions, _signature) = sign(signable, &params).expect("sign").into_parts();

    let mut map = HeaderMap::new();
    for (name, value) in headers.iter().copied().chain(instructions.headers()) {
        map.append(
            HeaderName::from_bytes(name.as_bytes()).expect("name"),
            HeaderValue::from_str(value).expect("value"),
        );
    }
    let (path, query) = s
        .path_and_query
        .split_once('?')
        .unwrap_or((s.path_and_query, ""));
    Req {
        method: s.method.to_owned(),
        path: path.to_owned(),
        query: query.to_owned(),
        headers: map,
        authority: (!s.host_header).then(|| HOST_NAME.to_owned()),
        body: s.body.to_vec(),
    }
}

fn aws_default() -> Req {
    aws_sign(AwsSign::default())
}

fn aws_with_content_type() -> Req {
    aws_sign(AwsSign {
        headers: vec![("content-type", "application/json")],
        ..Default::default()
    })
}

// ----- accepted requests -------------------------------------------------------------

#[test]
fn aws_signed_post_verifies_with_both_secrets() {
    for secret in [SECRET_44, SECRET_52] {
        let req = aws_sign(AwsSign {
            secret,
            ..Default::default()
        });
        let header = req.authorization();
        let auth = parse_authorization(&header).expect("parse");
        assert_eq!(auth.access_key_id, AKID);
        assert_eq!(auth.date, "20231114");
        assert_eq!(auth.region, "us-east-1");
        assert_eq!(auth.service, SERVICE);
        assert_eq!(auth.signed_headers, vec!["host", "x-amz-date"]);
        assert_eq!(req.check(secret), Ok(()));
        // Each secret rejects the other's signature.
        let other = if secret == SECRET_44 {
            SECRET_52
        } else {
            SECRET_44
        };
        assert_eq!(req.check(other), Err(AuthError::SignatureMismatch));
    }
}

#[test]
fn aws_signed_other_region_and_odd_path_verify() {
    for req in [
        aws_sign(AwsSign {
            region: "ap-southeast-2",
            ..Default::default()
        }),
        // '%', ':', '@', '=' and '+' in the wire path are encoded once more.
        aws_sign(AwsSign {
            path_and_query: "/tenants/ac%20me/kms/xks/v1/keys/a:b@c=d+e%2Bf/encrypt",
            ..Default::default()
        }),
    ] {
        assert_eq!(req.check(SECRET_44), Ok(()), "{}", req.path);
    }
}

#[test]
fn aws_signed_host_from_authority_verifies() {
    let req = aws_sign(AwsSign {
        host_header: false,
        ..Default::default()
    });
    assert!(!req.headers.contains_key("host"));
    assert_eq!(req.check(SECRET_44), Ok(()));
    let mut other = req.clone();
    other.authority = Some("evil.example.com".to_owned());
    assert_eq!(other.check(SECRET_44), Err(AuthError::SignatureMismatch));
    let mut none = req;
    none.authority = None;
    assert_eq!(
        none.check(SECRET_44),
        Err(AuthError::MissingSignedHeader {
            name: "host".to_owned()
        })
    );
}

#[test]
fn aws_signed_with_content_headers_verifies() {
    let cases: [(&str, bool, &[&str]); 2] = [
        (
            "application/json",
            false,
            &["content-type", "host", "x-amz-date"],
        ),
        (
            "application/x-amz-json-1.1",
            true,
            &["content-type", "host", "x-amz-content-sha256", "x-amz-date"],
        ),
    ];
    for (content_type, checksum_header, signed) in cases {
        for secret in [SECRET_44, SECRET_52] {
            let req = aws_sign(AwsSign {
                secret,
                headers: vec![("content-type", content_type)],
                checksum_header,
                ..Default::default()
            });
            let header = req.authorization();
            let auth = parse_authorization(&header).expect("parse");
            assert_eq!(auth.signed_headers, signed);
            assert_eq!(req.check(secret), Ok(()));
        }
    }
}

#[test]
fn aws_signed_get_empty_body_and_query_verifies() {
    let req = aws_sign(AwsSign {
        method: "GET",
        path_and_query: "/tenants/acme/kms/xks/v1/health?b=2&a=1&c=x%20y&a=0&flag&plus=a+b&enc=%2F%3D",
        body: b"",
        ..Default::default()
    });
    assert_eq!(req.query, "b=2&a=1&c=x%20y&a=0&flag&plus=a+b&enc=%2F%3D");
    assert_eq!(req.check(SECRET_44), Ok(()));
    let mut tampered = req;
    tampered.query = "b=2&a=1&c=x%20y&a=9&flag&plus=a+b&enc=%2F%3D".to_owned();
    assert_eq!(tampered.check(SECRET_44), Err(AuthError::SignatureMismatch));
}

#[test]
fn aws_signed_extra_headers_with_spaces_and_repeats_verify() {
    let req = aws_sign(AwsSign {
        headers: vec![
            ("content-type", "application/json"),
            ("x-custom", "  a   b    c  "),
            ("x-multi", "one"),
            ("x-multi", " two  three "),
        ],
        ..Default::default()
    });
    let header = req.authorization();
    let auth = parse_authorization(&header).expect("parse");
    assert_eq!(
        auth.signed_headers,
        vec!["content-type", "host", "x-amz-date", "x-custom", "x-multi"]
    );
    assert_eq!(req.check(SECRET_44), Ok(()));
    // The order of repeated values is significant.
    let mut reordered = req.clone();
    reordered.headers.remove("x-multi");
    reordered
        .headers
        .append("x-multi", HeaderValue::from_static(" two  three "));
    reordered
        .headers
        .append("x-multi", HeaderValue::from_static("one"));
    assert_eq!(
        reordered.check(SECRET_44),
        Err(AuthError::SignatureMismatch)
    );
}

#[test]
fn unsigned_headers_may_change() {
    let mut req = aws_default();
    req.set("content-type", "text/plain");
    req.set("user-agent", "whatever");
    assert_eq!(req.check(SECRET_44), Ok(()));
}

#[test]
fn components_in_any_order_with_any_whitespace_verify() {
    let req = aws_with_content_type();
    let header = req.authorization();
    let auth = parse_authorization(&header).expect("parse");
    let rest = header.strip_prefix("AWS4-HMAC-SHA256 ").expect("prefix");
    let parts: Vec<&str> = rest.split(", ").collect();
    assert_eq!(parts.len(), 3);
    for value in [
        format!("AWS4-HMAC-SHA256 {},{},{}", parts[0], parts[1], parts[2]),
        format!(
            "AWS4-HMAC-SHA256   {},\t {} ,  {}",
            parts[2], parts[0], parts[1]
        ),
        format!("AWS4-HMAC-SHA256 {}, {}, {}", parts[1], parts[2], parts[0]),
    ] {
        let reordered = parse_authorization(&value).expect("parse reordered");
        assert_eq!(reordered, auth);
        let mut r = req.clone();
        r.set_authorization(&value);
        assert_eq!(r.check(SECRET_44), Ok(()));
    }
}

#[test]
fn upper_case_hex_signature_is_accepted() {
    let mut req = aws_default();
    let header = req.authorization();
    let (head, sig) = header.split_once("Signature=").expect("sig");
    req.set_authorization(&format!("{head}Signature={}", sig.to_ascii_uppercase()));
    assert_eq!(req.check(SECRET_44), Ok(()));
}

#[test]
fn signing_key_with_verify_with_key_equals_verify() {
    let ok = aws_with_content_type();
    let mut bad = ok.clone();
    bad.body.push(b' ');
    let mut stale = ok.clone();
    stale.set("x-amz-date", "20231114T220000Z");
    for (req, expected) in [
        (&ok, Ok(())),
        (&bad, Err(AuthError::SignatureMismatch)),
        (
            &stale,
            Err(AuthError::DateOutOfWindow {
                skew_seconds: 13 * 60 + 20,
            }),
        ),
    ] {
        let header = req.authorization();
        let auth = parse_authorization(&header).expect("parse");
        let key = signing_key(SECRET_44.as_bytes(), auth.date, auth.region, auth.service);
        let now = at(SIGNED_AT);
        let with_key = verify_with_key(&req.parts(), &auth, &key, now);
        let plain = verify(&req.parts(), &auth, SECRET_44.as_bytes(), now);
        assert_eq!(with_key, plain);
        assert_eq!(with_key, expected);
    }
}

#[test]
fn signing_key_matches_aws_sigv4_for_all_secret_lengths() {
    let charset = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=";
    let time = UNIX_EPOCH + StdDuration::from_secs(1_700_000_000);
    for len in [0usize, 1, 43, 44, 52, 59, 60, 61, 64, 65, 100, 200] {
        let secret: String = (0..len)
            .map(|i| char::from(charset[(i * 7 + len) % charset.len()]))
            .collect();
        let expected =
            aws_sigv4::sign::v4::generate_signing_key(&secret, time, "eu-west-1", SERVICE);
        let ours = signing_key(secret.as_bytes(), "20231114", "eu-west-1", SERVICE);
        assert_eq!(&ours[..], expected.as_ref(), "secret length {len}");
    }
}

#[test]
fn signing_key_aws_documentation_example() {
    // "Examples of how to derive a signing key for Signature Version 4" (AWS docs).
    let key = signing_key(
        b"wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
        "20120215",
        "us-east-1",
        "iam",
    );
    assert_eq!(
        hex::encode(key),
        "f4780e2d9f65fa895f9c67b32ce1baf0b0d8a43505a000a1a9e090d414db404d"
    );
}

/// An independent, straightforward SigV4 signer (strings, format!, `new_from_slice`), as
/// curl --aws-sigv4 does it: returns the Authorization header value.
fn reference_authorization(
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    amz_date: &str,
    secret: &str,
    region: &str,
) -> String {
    fn mac(key: &[u8], data: &str) -> Vec<u8> {
        let mut m = <HmacSha256 as Mac>::new_from_slice(key).expect("any key length");
        m.update(data.as_bytes());
        m.finalize().into_bytes().to_vec()
    }
    let mut encoded_path = String::new();
    for b in path.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~/".contains(&b) {
            encoded_path.push(char::from(b));
        } else {
            encoded_path.push_str(&format!("%{b:02X}"));
        }
    }
    let mut sorted: Vec<(String, String)> = headers
        .iter()
        .map(|(n, v)| {
            (
                n.to_ascii_lowercase(),
                v.split(' ')
                    .filter(|s| !s.is_empty())
                    .collect::<Vec<_>>()
                    .join(" "),
            )
        })
        .collect();
    sorted.sort();
    let canonical_headers: String = sorted.iter().map(|(n, v)| format!("{n}:{v}\n")).collect();
    let signed: Vec<&str> = sorted.iter().map(|(n, _)| n.as_str()).collect();
    let signed = signed.join(";");
    let canonical = format!(
        "{method}\n{encoded_path}\n\n{canonical_headers}\n{signed}\n{}",
        hex::encode(Sha256::digest(body))
    );
    let date = &amz_date[..8];
    let scope = format!("{date}/{region}/{SERVICE}/aws4_request");
    let string_to_sign = format!(
        "AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{}",
        hex::encode(Sha256::digest(canonical.as_bytes()))
    );
    let k = mac(format!("AWS4{secret}").as_bytes(), date);
    let k = mac(&k, region);
    let k = mac(&k, SERVICE);
    let k = mac(&k, "aws4_request");
    let signature = hex::encode(mac(&k, &string_to_sign));
    format!(
        "AWS4-HMAC-SHA256 Credential={AKID}/{scope}, SignedHeaders={signed}, Signature={signature}"
    )
}

fn curl_style() -> Req {
    let amz_date = "20231114T221320Z";
    let headers = [
        ("Host", HOST_NAME),
        ("Content-Type", "application/json"),
        ("X-Amz-Date", amz_date),
    ];
    let authorization = reference_authorization(
        "POST",
        XKS_PATH,
        &headers,
        BODY,
        amz_date,
        SECRET_52,
        "us-west-2",
    );
    let mut map = HeaderMap::new();
    for (n, v) in headers {
        map.append(
            HeaderName::from_bytes(n.to_ascii_lowercase().as_bytes()).expect("name"),
            HeaderValue::from_str(v).expect("value"),
        );
    }
    map.insert(
        "authorization",
        HeaderValue::from_str(&authorization).expect("value"),
    );
    map.insert("accept", HeaderValue::from_static("*/*"));
    map.insert("user-agent", HeaderValue::from_static("curl/8.5.0"));
    Req {
        method: "POST".to_owned(),
        path: XKS_PATH.to_owned(),
        query: String::new(),
        headers: map,
        authority: None,
        body: BODY.to_vec(),
    }
}

#[test]
fn curl_style_request_verifies() {
    let req = curl_style();
    let header = req.authorization();
    assert!(header.contains("SignedHeaders=content-type;host;x-amz-date,"));
    let auth = parse_authorization(&header).expect("parse");
    assert_eq!(auth.region, "us-west-2");
    assert_eq!(req.check(SECRET_52), Ok(()));
    assert_eq!(req.check(SECRET_44), Err(AuthError::SignatureMismatch));
    let mut tampered = req;
    tampered.set("content-type", "application/xml");
    assert_eq!(tampered.check(SECRET_52), Err(AuthError::SignatureMismatch));
}

#[test]
fn reference_signer_agrees_with_aws_sigv4() {
    // Cross-checks the reference above: same request, same signature as aws-sigv4.
    let req = aws_with_content_type();
    let expected = reference_authorization(
        "POST",
        XKS_PATH,
        &[
            ("content-type", "application/json"),
            ("host", HOST_NAME),
            ("x-amz-date", "20231114T221320Z"),
        ],
        BODY,
        "20231114T221320Z",
        SECRET_44,
        "us-east-1",
    );
    assert_eq!(req.authorization(), expected);
}

// ----- AWS SigV4 test suite vectors (service "service", hence compute_signature) -------

struct Vector {
    name: &'static str,
    method: &'static str,
    path: &'static str,
    query: &'static str,
    headers: Vec<(&'static str, &'static str)>,
    body: &'static [u8],
    signed: Vec<&'static str>,
    signature: &'static str,
}

/// The vectors, one a line: name, method, path, query, headers (`name:value`, separated
/// by `;`), body, signed headers, signature; fields separated by ` | `, `-` for empty.
/// Every vector also sends `x-amz-date: 20150830T123600Z`.
const VECTORS: &str = "\
get-vanilla | GET | / | - | host:example.amazonaws.com | - | host;x-amz-date | 5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31
get-header-value-trim | GET | / | - | host:example.amazonaws.com;my-header1:value1;my-header2:\"a   b   c\" | - | host;my-header1;my-header2;x-amz-date | acc3ed3afb60bb290fc8d2dd0098b9911fcaa05412b367055dee359757a9c736
get-header-key-duplicate | GET | / | - | host:example.amazonaws.com;my-header1:value2;my-header1:value2;my-header1:value1 | - | host;my-header1;x-amz-date | c9d5ea9f3f72853aea855b47ea873832890dbdd183b4468f858259531a5138ea
get-vanilla-query-order-key-case | GET | / | Param2=value2&Param1=value1 | host:example.amazonaws.com | - | host;x-amz-date | b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500
get-vanilla-query-order-encoded | GET | / | Param-3=Value3&Param=Value2&%E1%88%B4=Value1 | host:example.amazonaws.com | - | host;x-amz-date | 371d3713e185cc334048618a97f809c9ffe339c62934c032af5a0e595648fcac
get-vanilla-utf8-query | GET | / | \u{1234}=bar | host:example.amazonaws.com | - | host;x-amz-date | 2cdec8eed098649ff3a119c94853b13c643bcf08f8b0a1d91e12c9027818dd04
get-unreserved | GET | /-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz | - | host:example.amazonaws.com | - | host;x-amz-date | 07ef7494c76fa4850883e2b006601f940f8a34d404d0cfa977f52a65bbf5f24f
get-utf8 | GET | /\u{1234} | - | host:example.amazonaws.com | - | host;x-amz-date | 8318018e0b0f223aa2bbf98705b62bb787dc9c0e678f255a891fd03141be5d85
post-vanilla-query | POST | / | Param1=value1 | host:example.amazonaws.com | - | host;x-amz-date | 28038455d6de14eafc1f9222cf5aa6f1a96197d7deb8263271d420d138af7f11
post-x-www-form-urlencoded | POST | / | - | content-type:application/x-www-form-urlencoded;host:example.amazonaws.com;content-length:13;x-amz-content-sha256:9095672bbd1f56dfc5b65f3e153adc8731a4a654192329106275f4c7b24d0b6e | Param1=value1 | content-length;content-type;host;x-amz-content-sha256;x-amz-date | d3875051da38690788ef43de4db0d8f280229d82040bfac253562e56c3f20e0b
";

/// The vectors of [`VECTORS`].
fn vectors() -> Vec<Vector> {
    VECTORS.lines().map(vector).collect()
}

/// One line of [`VECTORS`].
fn vector(line: &'static str) -> Vector {
    let field = |f: &'static str| if f == "-" { "" } else { f };
    let f: Vec<&'static str> = line.split(" | ").map(field).collect();
    let [name, method, path, query, headers, body, signed, signature] = f[..] else {
        panic!("vector line: {line}");
    };
    Vector {
        name,
        method,
        path,
        query,
        headers: headers
            .split(';')
            .map(|h| h.split_once(':').expect("name:value"))
            .collect(),
        body: body.as_bytes(),
        signed: signed.split(';').collect(),
        signature,
    }
}

fn vector_request(v: &Vector, amz_date: &str) -> Req {
    let mut headers = HeaderMap::new();
    for (n, val) in &v.headers {
        headers.append(
            HeaderName::from_static(n),
            HeaderValue::from_str(val).expect("value"),
        );
    }
    headers.insert("x-amz-date", HeaderValue::from_str(amz_date).expect("date"));
    Req {
        method: v.method.to_owned(),
        path: v.path.to_owned(),
        query: v.query.to_owned(),
        headers,
        authority: None,
        body: v.body.to_vec(),
    }
}

#[test]
fn aws_test_suite_vectors() {
    let secret = b"wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
    let now = time::macros::datetime!(2015-08-30 12:36:00 UTC);
    let key = signing_key(secret, "20150830", "us-east-1", "service");
    let vectors = vectors();
    assert_eq!(vectors.len(), 10);
    for v in &vectors {
        let req = vector_request(v, "20150830T123600Z");
        let auth = test_suite_authorization(&v.signed);
        let sig = compute_signature(&req.parts(), &auth, &key, now)
            .unwrap_or_else(|e| panic!("{}: {e}", v.name));
        assert_eq!(hex::encode(sig), v.signature, "{}", v.name);
        // Only the service check stands between these and `verify`.
        let mut auth = auth;
        auth.signature = sig;
        assert_eq!(
            verify(&req.parts(), &auth, secret, now),
            Err(AuthError::WrongService {
                service: "service".to_owned()
            })
        );
    }
}

/// The test suite's credential scope, with `signed` headers and no signature.
fn test_suite_authorization<'a>(signed: &[&'a str]) -> Authorization<'a> {
    Authorization {
        access_key_id: "AKIDEXAMPLE",
        date: "20150830",
        region: "us-east-1",
        service: "service",
        signed_headers: signed.to_vec(),
        signature: [0; 32],
    }
}

fn canonical_request_text(req: &Req, signed: &[&str]) -> String {
    let auth = test_suite_authorization(signed);
    let body_hash: [u8; 32] = Sha256::digest(&req.body).into();
    let mut hex_hash = [0u8; 64];
    hex_lower(&body_hash, &mut hex_hash);
    let query = canonical_query(&req.query).expect("query");
    let mut out = Vec::new();
    write_canonical_request(&req.parts(), &auth, &query, &hex_hash, &mut out);
    String::from_utf8(out).expect("utf8")
}

#[test]
fn canonical_request_matches_test_suite_text() {
    let vectors = vectors();
    let v = &vectors[1];
    assert_eq!(v.name, "get-header-value-trim");
    let req = vector_request(v, "20150830T123600Z");
    assert_eq!(
        canonical_request_text(&req, &v.signed),
        "GET\n/\n\nhost:example.amazonaws.com\nmy-header1:value1\nmy-header2:\"a b c\"\n\
         x-amz-date:20150830T123600Z\n\nhost;my-header1;my-header2;x-amz-date\n\
         e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    );
    // double-encode-path: the wire path is encoded again.
    let v = vector(
        "double-encode-path | POST | /test/@connections/JBDvjfGEIAMCERw%3D | - | \
         host:tj9n5r0m12.execute-api.us-east-1.amazonaws.com | - | host;x-amz-date | -",
    );
    let req = vector_request(&v, "20210511T154045Z");
    assert_eq!(
        canonical_request_text(&req, &v.signed),
        "POST\n/test/%40connections/JBDvjfGEIAMCERw%253D\n\n\
         host:tj9n5r0m12.execute-api.us-east-1.amazonaws.com\nx-amz-date:20210511T154045Z\n\n\
         host;x-amz-date\n\
         e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    );
    // Empty path is "/", query is decoded then encoded and sorted.
    let mut req = vector_request(&vectors[0], "20150830T123600Z");
    req.path = String::new();
    req.query = "b=%7e+x&a=&a==&%zz=1&c".to_owned();
    assert_eq!(
        canonical_request_text(&req, &["host", "x-amz-date"]),
        "GET\n/\n%25zz=1&a=&a=%3D&b=~%20x&c=\nhost:example.amazonaws.com\n\
         x-amz-date:20150830T123600Z\n\nhost;x-amz-date\n\
         e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    );
}

#[test]
fn trim_all_header_values() {
    let mut out = Vec::new();
    for (input, expected) in [
        ("", ""),
        ("   ", ""),
        ("a", "a"),
        ("  a  ", "a"),
        ("a  b   c", "a b c"),
        (" a b ", "a b"),
        ("a\t\tb", "a\t\tb"),
    ] {
        out.clear();
        write_trimmed(input.as_bytes(), &mut out);
        assert_eq!(out, expected.as_bytes(), "{input:?}");
    }
}

// ----- rejected requests ---------------------------------------------------------------

#[test]
fn tampered_body_is_rejected() {
    let mut req = aws_with_content_type();
    req.body = BODY.to_vec();
    req.body[10] ^= 1;
    assert_eq!(req.check(SECRET_44), Err(AuthError::SignatureMismatch));
    req.body = Vec::new();
    assert_eq!(req.check(SECRET_44), Err(AuthError::SignatureMismatch));
}

#[test]
fn tampered_path_is_rejected() {
    let mut req = aws_with_content_type();
    req.path = XKS_PATH.replace("key-1", "key-2");
    assert_eq!(req.check(SECRET_44), Err(AuthError::SignatureMismatch));
    req.path = format!("{XKS_PATH}/");
    assert_eq!(req.check(SECRET_44), Err(AuthError::SignatureMismatch));
    req.path = XKS_PATH.to_owned();
    req.query = "x=1".to_owned();
    assert_eq!(req.check(SECRET_44), Err(AuthError::SignatureMismatch));
    req.query = String::new();
    req.method = "PUT".to_owned();
    assert_eq!(req.check(SECRET_44), Err(AuthError::SignatureMismatch));
}

#[test]
fn tampered_signed_header_or_date_is_rejected() {
    let cases: [(&str, &str, bool); 5] = [
        ("content-type", "application/jsonx", false),
        ("host", "other.example.com", false),
        // A second value for a signed header changes its canonical value.
        ("content-type", "text/plain", true),
        ("x-amz-date", "20231114T221321Z", false),
        ("x-amz-date", "20231114T221319Z", false),
    ];
    for (name, value, append) in cases {
        let mut req = aws_with_content_type();
        if append {
            req.headers
                .append(name, HeaderValue::from_str(value).expect("value"));
        } else {
            req.set(name, value);
        }
        assert_eq!(
            req.check(SECRET_44),
            Err(AuthError::SignatureMismatch),
            "{name}: {value}"
        );
    }
}

#[test]
fn wrong_secret_is_rejected() {
    let req = aws_with_content_type();
    assert_eq!(req.check(SECRET_52), Err(AuthError::SignatureMismatch));
    assert_eq!(req.check(""), Err(AuthError::SignatureMismatch));
    let almost = SECRET_44.replace('R', "S");
    assert_eq!(req.check(&almost), Err(AuthError::SignatureMismatch));
}

#[test]
fn clock_skew_window() {
    let req = aws_with_content_type();
    let five_min = 5 * 60;
    assert_eq!(req.check_at(SECRET_44, at(SIGNED_AT + five_min)), Ok(()));
    assert_eq!(req.check_at(SECRET_44, at(SIGNED_AT - five_min)), Ok(()));
    assert_eq!(
        req.check_at(SECRET_44, at(SIGNED_AT + five_min + 1)),
        Err(AuthError::DateOutOfWindow {
            skew_seconds: five_min + 1
        })
    );
    assert_eq!(
        req.check_at(SECRET_44, at(SIGNED_AT - five_min - 1)),
        Err(AuthError::DateOutOfWindow {
            skew_seconds: -five_min - 1
        })
    );
    // Sub-second precision: 5 min + 0.5 s is already out.
    let now = at(SIGNED_AT + five_min) + time::Duration::milliseconds(500);
    assert_eq!(
        req.check_at(SECRET_44, now),
        Err(AuthError::DateOutOfWindow {
            skew_seconds: five_min
        })
    );
    // Signed a day ago (the key derivation uses that day's date).
    let old = aws_sign(AwsSign {
        headers: vec![("content-type", "application/json")],
        time: SIGNED_AT - 86_400,
        ..Default::default()
    });
    assert_eq!(
        old.check(SECRET_44),
        Err(AuthError::DateOutOfWindow {
            skew_seconds: 86_400
        })
    );
    assert_eq!(old.check_at(SECRET_44, at(SIGNED_AT - 86_400)), Ok(()));
}

fn replace_in_authorization(req: &Req, from: &str, to: &str) -> Req {
    let header = req.authorization();
    assert!(header.contains(from), "{header} lacks {from}");
    let mut r = req.clone();
    r.set_authorization(&header.replacen(from, to, 1));
    r
}

fn signature_of(req: &Req) -> String {
    let header = req.authorization();
    header
        .split_once("Signature=")
        .expect("signature")
        .1
        .to_owned()
}

#[test]
fn malformed_authorization_is_rejected() {
    let req = aws_with_content_type();
    let header = req.authorization();
    let sig = signature_of(&req);
    let m = |reason| Err(AuthError::Malformed { reason });
    let with = |from: &str, to: &str| header.replacen(from, to, 1);
    let cred = header
        .split(", ")
        .next()
        .and_then(|s| s.strip_prefix("AWS4-HMAC-SHA256 "))
        .expect("credential")
        .to_owned();
    let hex_digits = m("Signature must be 64 hex digits");
    let credential_shape =
        m("Credential must be <key id>/<yyyymmdd>/<region>/<service>/aws4_request");
    let cases = [
        // Components: missing Signature= (and the comma before it), ...
        (
            with(&format!(", Signature={sig}"), ""),
            m("missing Signature"),
        ),
        (with("Credential=", "Credentials="), m("unknown component")),
        (
            with("SignedHeaders=content-type;host;x-amz-date, ", ""),
            m("missing SignedHeaders"),
        ),
        (with(&format!("{cred}, "), ""), m("missing Credential")),
        (
            format!("{header}, Signature={sig}"),
            m("duplicate component"),
        ),
        (format!("{header},"), m("empty component")),
        (format!("{header}, Foo"), m("component without '='")),
        // Bad signatures.
        (with(&sig, &format!("{}g", &sig[..63])), hex_digits.clone()),
        (with(&sig, &sig[..63]), hex_digits.clone()),
        (with(&sig, &format!("{sig}0")), hex_digits.clone()),
        (with(&sig, ""), hex_digits),
        // Algorithm.
        (
            with("AWS4-HMAC-SHA256", "AWS4-HMAC-SHA1"),
            Err(AuthError::UnsupportedAlgorithm),
        ),
        (
            with("AWS4-HMAC-SHA256", "aws4-hmac-sha256"),
            Err(AuthError::UnsupportedAlgorithm),
        ),
        (
            "Basic dXNlcjpwYXNz".to_owned(),
            Err(AuthError::UnsupportedAlgorithm),
        ),
        (String::new(), m("empty header")),
        ("AWS4-HMAC-SHA256".to_owned(), m("empty component")),
        // Credential scope.
        (
            with("/kms-xks-proxy/", "/kms/"),
            Err(AuthError::WrongService {
                service: "kms".to_owned(),
            }),
        ),
        (
            with("/aws4_request", "/aws4_request2"),
            Err(AuthError::WrongTerminator),
        ),
        (with("/us-east-1/", "/"), credential_shape.clone()),
        (with("/us-east-1/", "/us/east-1/"), credential_shape),
        (
            with("/20231114/", "/2023-11-14/"),
            m("credential scope date must be yyyymmdd"),
        ),
        (with("/us-east-1/", "//"), m("empty region")),
        (with(&format!("={AKID}/"), "=/"), m("empty access key id")),
        (
            format!("{header}{}", " ".repeat(MAX_AUTHORIZATION_LEN)),
            m("header too long"),
        ),
    ];
    for (value, expected) in cases {
        assert_eq!(parse_authorization(&value).map(drop), expected, "{value}");
    }
}

#[test]
fn scope_date_must_match_x_amz_date() {
    let req = aws_with_content_type();
    let other_day = replace_in_authorization(&req, "/20231114/", "/20231115/");
    assert_eq!(
        other_day.check(SECRET_44),
        Err(AuthError::ScopeDateMismatch)
    );
    // Even if x-amz-date is moved to that day (then it is out of the window instead).
    let mut moved = other_day.clone();
    moved.set("x-amz-date", "20231115T221320Z");
    assert_eq!(
        moved.check(SECRET_44),
        Err(AuthError::DateOutOfWindow {
            skew_seconds: -86_400
        })
    );
}

#[test]
fn signed_headers_rules() {
    let req = aws_with_content_type();
    let list = "SignedHeaders=content-type;host;x-amz-date";
    let check = |new_list: &str| {
        replace_in_authorization(&req, list, &format!("SignedHeaders={new_list}")).check(SECRET_44)
    };
    let m = |reason| Err(AuthError::Malformed { reason });
    let lowercase = m("SignedHeaders must be lowercase header names separated by ';'");
    let long_name = "a".repeat(MAX_HEADER_NAME_LEN + 1);
    let many: Vec<String> = (0..MAX_SIGNED_HEADERS)
        .map(|i| format!("a{i:02}"))
        .collect();
    let cases = [
        (
            "content-type;x-amz-date".to_owned(),
            Err(AuthError::HostNotSigned),
        ),
        (
            "content-type;host".to_owned(),
            Err(AuthError::DateNotSigned),
        ),
        ("x-amz-date".to_owned(), Err(AuthError::HostNotSigned)),
        (
            "host;content-type;x-amz-date".to_owned(),
            m("SignedHeaders must be sorted"),
        ),
        (
            "content-type;host;host;x-amz-date".to_owned(),
            m("duplicate name in SignedHeaders"),
        ),
        ("Content-Type;host;x-amz-date".to_owned(), lowercase.clone()),
        ("content-type; host;x-amz-date".to_owned(), lowercase),
        (
            "content-type;;host;x-amz-date".to_owned(),
            m("empty name in SignedHeaders"),
        ),
        (String::new(), m("empty name in SignedHeaders")),
        (
            format!("{long_name};host;x-amz-date"),
            m("name in SignedHeaders too long"),
        ),
        (
            format!("{};host;x-amz-date", many.join(";")),
            m("too many SignedHeaders"),
        ),
    ];
    for (new_list, expected) in cases {
        assert_eq!(check(&new_list), expected, "{new_list}");
    }
    // Dropping content-type from the list is a different canonical request.
    assert_eq!(check("host;x-amz-date"), Err(AuthError::SignatureMismatch));
    // Listing an extra header that is present.
    let mut extra = replace_in_authorization(
        &req,
        list,
        "SignedHeaders=content-type;host;user-agent;x-amz-date",
    );
    extra.set("user-agent", "test");
    assert_eq!(extra.check(SECRET_44), Err(AuthError::SignatureMismatch));
}

#[test]
fn signed_header_rules_also_apply_to_hand_built_authorization() {
    let req = aws_with_content_type();
    let header = req.authorization();
    let mut auth = parse_authorization(&header).expect("parse");
    auth.signed_headers = vec!["x-amz-date", "host"];
    assert_eq!(
        verify(&req.parts(), &auth, SECRET_44.as_bytes(), at(SIGNED_AT)),
        Err(AuthError::Malformed {
            reason: "SignedHeaders must be sorted"
        })
    );
    auth.signed_headers = vec!["host"];
    assert_eq!(
        verify(&req.parts(), &auth, SECRET_44.as_bytes(), at(SIGNED_AT)),
        Err(AuthError::DateNotSigned)
    );
    auth.signed_headers = vec!["content-type", "host", "x-amz-date"];
    auth.service = "s3";
    assert_eq!(
        verify(&req.parts(), &auth, SECRET_44.as_bytes(), at(SIGNED_AT)),
        Err(AuthError::WrongService {
            service: "s3".to_owned()
        })
    );
}

#[test]
fn listed_header_missing_from_request_is_rejected() {
    for name in ["content-type", "host"] {
        let mut req = aws_with_content_type();
        req.headers.remove(name);
        assert_eq!(
            req.check(SECRET_44),
            Err(AuthError::MissingSignedHeader {
                name: name.to_owned()
            })
        );
        if name == "host" {
            // With the Host header gone, the authority stands in for it.
            req.authority = Some(HOST_NAME.to_owned());
            assert_eq!(req.check(SECRET_44), Ok(()));
        }
    }
}

#[test]
fn x_amz_date_header_problems() {
    let req = aws_with_content_type();
    let mut missing = req.clone();
    missing.headers.remove("x-amz-date");
    assert_eq!(missing.check(SECRET_44), Err(AuthError::MissingDate));
    for bad in [
        "20231114T221320",
        "20231114 221320Z",
        "2023-11-14T22:13:20Z",
        "20231314T221320Z",
        "20231131T221320Z",
        "20231114T251320Z",
        "20231114T226020Z",
        "2023111xT221320Z",
        "+0231114T221320Z",
        "",
    ] {
        let mut r = req.clone();
        r.set("x-amz-date", bad);
        assert_eq!(r.check(SECRET_44), Err(AuthError::MalformedDate), "{bad}");
    }
    let mut twice = req.clone();
    twice
        .headers
        .append("x-amz-date", HeaderValue::from_static("20231114T221320Z"));
    assert_eq!(twice.check(SECRET_44), Err(AuthError::MalformedDate));
    let mut non_utf8 = req;
    non_utf8.headers.insert(
        "x-amz-date",
        HeaderValue::from_bytes(b"20231114T22132\xffZ").expect("obs-text"),
    );
    assert_eq!(non_utf8.check(SECRET_44), Err(AuthError::MalformedDate));
}

#[test]
fn content_sha256_mismatch_is_rejected() {
    let req = aws_sign(AwsSign {
        checksum_header: true,
        ..Default::default()
    });
    // Body changed, header kept: the header no longer matches the body.
    let mut body = req.clone();
    body.body.push(b'\n');
    assert_eq!(body.check(SECRET_44), Err(AuthError::ContentHashMismatch));
    // Header changed to the hash of the changed body: signature no longer matches.
    let new_hash = hex::encode(Sha256::digest(&body.body));
    body.set("x-amz-content-sha256", &new_hash);
    assert_eq!(body.check(SECRET_44), Err(AuthError::SignatureMismatch));
    // Header that is not a hash at all.
    let mut unsigned = req.clone();
    unsigned.set("x-amz-content-sha256", "UNSIGNED-PAYLOAD");
    assert_eq!(
        unsigned.check(SECRET_44),
        Err(AuthError::ContentHashMismatch)
    );
    // Unsigned but present header is still checked against the body.
    let mut plain = aws_default();
    plain.set("x-amz-content-sha256", &new_hash);
    assert_eq!(plain.check(SECRET_44), Err(AuthError::ContentHashMismatch));
    let right = hex::encode(Sha256::digest(BODY));
    plain.set("x-amz-content-sha256", &right);
    assert_eq!(plain.check(SECRET_44), Ok(()));
    plain.set("x-amz-content-sha256", &right.to_ascii_uppercase());
    assert_eq!(plain.check(SECRET_44), Ok(()));
}

#[test]
fn oversized_query_is_rejected() {
    let mut req = aws_default();
    req.query = "a=".to_owned() + &"x".repeat(MAX_QUERY_LEN);
    assert_eq!(
        req.check(SECRET_44),
        Err(AuthError::TooLarge {
            what: "query string"
        })
    );
    req.query = vec!["a=1"; MAX_QUERY_PARAMS + 1].join("&");
    assert_eq!(
        req.check(SECRET_44),
        Err(AuthError::TooLarge {
            what: "query string"
        })
    );
}

#[test]
fn error_messages_are_safe() {
    let req = aws_with_content_type();
    let mut bad = req.clone();
    bad.body.push(b'x');
    let expected_sig = {
        let header = bad.authorization();
        let auth = parse_authorization(&header).expect("parse");
        let key = signing_key(SECRET_44.as_bytes(), auth.date, auth.region, auth.service);
        hex::encode(compute_signature(&bad.parts(), &auth, &key, at(SIGNED_AT)).expect("sig"))
    };
    let mismatch = bad.check(SECRET_44).expect_err("mismatch");
    assert_eq!(mismatch, AuthError::SignatureMismatch);
    let weird_service = format!("k\u{7f}\u{e9}\n{}", "s".repeat(300));
    let errors = vec![
        mismatch,
        AuthError::MissingHeader,
        AuthError::Malformed {
            reason: "Credential must be <key id>/<yyyymmdd>/<region>/<service>/aws4_request",
        },
        AuthError::UnsupportedAlgorithm,
        wrong_service(&weird_service),
        AuthError::WrongTerminator,
        AuthError::MissingDate,
        AuthError::MalformedDate,
        AuthError::ScopeDateMismatch,
        AuthError::DateOutOfWindow {
            skew_seconds: i64::MIN,
        },
        AuthError::MissingSignedHeader {
            name: "x".repeat(MAX_HEADER_NAME_LEN),
        },
        AuthError::HostNotSigned,
        AuthError::DateNotSigned,
        AuthError::ContentHashMismatch,
        AuthError::TooLarge {
            what: "query string",
        },
    ];
    for e in errors {
        let msg = e.to_string();
        assert!(!msg.is_empty() && msg.len() < 200, "{msg}");
        assert!(msg.bytes().all(|b| (0x20..0x7f).contains(&b)), "{msg}");
        assert!(
            !msg.contains(SECRET_44) && !msg.contains(&expected_sig),
            "{msg}"
        );
    }
}

#[test]
fn junk_input_never_panics() {
    let req = aws_with_content_type();
    let header = req.authorization();
    let now = at(SIGNED_AT);
    let try_one = |value: &str| {
        if let Ok(auth) = parse_authorization(value) {
            let _ = verify(&req.parts(), &auth, SECRET_44.as_bytes(), now);
        }
    };
    for i in 0..=header.len() {
        if header.is_char_boundary(i) {
            try_one(&header[..i]);
            try_one(&header[i..]);
        }
    }
    let bytes = header.as_bytes();
    for i in 0..bytes.len() {
        for b in [b' ', b',', b'=', b'/', b';', b'\t', b'0', b'Z', 0xc3] {
            let mut v = bytes.to_vec();
            v[i] = b;
            try_one(&String::from_utf8_lossy(&v));
        }
    }
    for junk in [
        "AWS4-HMAC-SHA256 ,,,",
        "AWS4-HMAC-SHA256 ===",
        "AWS4-HMAC-SHA256 Credential=////, SignedHeaders=;, Signature=",
        "AWS4-HMAC-SHA256 Credential=\u{e9}/\u{e9}/\u{e9}/kms-xks-proxy/aws4_request",
        "\u{1F600}",
        " ",
    ] {
        try_one(junk);
    }
    // Odd request parts.
    let auth = parse_authorization(&header).expect("parse");
    let mut odd = req.clone();
    for (path, query) in [
        ("", ""),
        ("*", "%"),
        ("%", "%%%=%&&=&"),
        ("/\u{0}\u{ff}", "+=+&%e9=%E9%"),
        ("//./../", "a=%ff%fe"),
    ] {
        odd.path = path.to_owned();
        odd.query = query.to_owned();
        assert_eq!(
            verify(&odd.parts(), &auth, SECRET_44.as_bytes(), now),
            Err(AuthError::SignatureMismatch)
        );
    }
    assert_eq!(
        verify(&req.parts(), &auth, &[0xff; 1000], now),
        Err(AuthError::SignatureMismatch)
    );
    let far = OffsetDateTime::from_unix_timestamp(253_402_300_799).expect("year 9999");
    assert!(matches!(
        verify(&req.parts(), &auth, SECRET_44.as_bytes(), far),
        Err(AuthError::DateOutOfWindow { .. })
    ));
}

#[test]
fn a_repeated_authorization_header_is_refused() {
    let mut headers = HeaderMap::new();
    assert_eq!(refuse_repeated_authorization(&headers), Ok(()));
    headers.append(http::header::AUTHORIZATION, HeaderValue::from_static("a"));
    assert_eq!(refuse_repeated_authorization(&headers), Ok(()));
    headers.append(http::header::AUTHORIZATION, HeaderValue::from_static("a"));
    assert_eq!(
        refuse_repeated_authorization(&headers),
        Err(AuthError::RepeatedHeader)
    );
    assert!(
        AuthError::RepeatedHeader
            .to_string()
            .contains("more than one")
    );
}

//! Pure-CPU pieces of the request path: SigV4 verification (cold: the signing key
//! derived from the secret on every request, as `XksService` does today; warm: with a
//! cached signing key), the CDIV, and the Encrypt request's JSON parse + base64 decode.

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use http::{HeaderMap, HeaderName, HeaderValue};
use keyhold::xks::{
    sigv4::{self, RequestParts},
    wire::{self, EncryptRequest},
};
use keyhold_benches::{Credential, KEY_ID, Op, PREFIX, REGION, encrypt_body, plaintext, sign_post};

/// Payload sizes: a data key (32 bytes) and the largest plaintext XKS must accept.
const SIZES: [usize; 2] = [32, 4300];
const AUTHORITY: &str = "127.0.0.1:8080";

struct Signed {
    path: String,
    headers: HeaderMap,
    body: Vec<u8>,
}

fn signed_encrypt(size: usize) -> Signed {
    let path = Op::Encrypt.path(PREFIX, KEY_ID);
    let body = encrypt_body(&plaintext(size));
    let added = sign_post(&Credential::a(), AUTHORITY, &path, &body);
    let mut headers = HeaderMap::new();
    headers.insert(http::header::HOST, HeaderValue::from_static(AUTHORITY));
    headers.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    for (name, value) in added {
        headers.insert(
            HeaderName::from_bytes(name.as_bytes()).expect("header name"),
            HeaderValue::from_str(&value).expect("header value"),
        );
    }
    Signed {
        path,
        headers,
        body,
    }
}

fn bench_sigv4(c: &mut Criterion) {
    let secret = Credential::a().secret;
    let mut group = c.benchmark_group("sigv4");
    for size in SIZES {
        let s = signed_encrypt(size);
        let parts = RequestParts {
            method: "POST",
            path: &s.path,
            query: "",
            headers: &s.headers,
            authority: None,
            body: &s.body,
        };
        let auth_value = s
            .headers
            .get(http::header::AUTHORIZATION)
            .expect("signed")
            .to_str()
            .expect("ascii")
            .to_owned();
        let now = time::OffsetDateTime::now_utc();
        // Sanity: both paths accept the request.
        let auth = sigv4::parse_authorization(&auth_value).expect("parses");
        sigv4::verify(&parts, &auth, secret.as_bytes(), now).expect("verifies");
        let key = sigv4::signing_key(secret.as_bytes(), auth.date, REGION, sigv4::SERVICE);
        sigv4::verify_with_key(&parts, &auth, &key, now).expect("verifies with key");

        group.throughput(Throughput::Bytes(s.body.len() as u64));
        group.bench_with_input(
            BenchmarkId::new("verify_cold", format!("{size}B")),
            &parts,
            |b, parts| {
                b.iter(|| {
                    let auth = sigv4::parse_authorization(black_box(&auth_value)).unwrap();
                    sigv4::verify(parts, &auth, black_box(secret.as_bytes()), now).unwrap();
                })
            },
        );
        group.bench_with_input(
            BenchmarkId::new("verify_cached_key", format!("{size}B")),
            &parts,
            |b, parts| {
                b.iter(|| {
                    let auth = sigv4::parse_authorization(black_box(&auth_value)).unwrap();
                    sigv4::verify_with_key(parts, &auth, black_box(&key), now).unwrap();
                })
            },
        );
    }
    group.throughput(Throughput::Elements(1));
    group.bench_function("signing_key", |b| {
        b.iter(|| {
            sigv4::signing_key(
                black_box(secret.as_bytes()),
                "20260101",
                REGION,
                sigv4::SERVICE,
            )
        })
    });
    let s = signed_encrypt(32);
    let auth_value = s.headers[http::header::AUTHORIZATION]
        .to_str()
        .expect("ascii")
        .to_owned();
    group.bench_function("parse_authorization", |b| {
        b.iter(|| sigv4::parse_authorization(black_box(&auth_value)).unwrap())
    });
    group.finish();
}

fn bench_cdiv(c: &mut Criterion) {
    let mut group = c.benchmark_group("cdiv");
    let iv = [7u8; 12];
    let tag = [9u8; 16];
    for size in SIZES {
        let ciphertext = plaintext(size);
        group.throughput(Throughput::Bytes(size as u64));
        group.bench_with_input(
            BenchmarkId::from_parameter(format!("{size}B")),
            &ciphertext,
            |b, ct| {
                b.iter(|| {
                    wire::cdiv(
                        black_box(keyhold_benches::AAD),
                        &[],
                        black_box(&iv),
                        black_box(ct),
                        black_box(&tag),
                    )
                })
            },
        );
    }
    group.finish();
}

fn bench_parse(c: &mut Criterion) {
    let mut group = c.benchmark_group("encrypt_request_parse");
    for size in SIZES {
        let body = encrypt_body(&plaintext(size));
        group.throughput(Throughput::Bytes(body.len() as u64));
        group.bench_with_input(
            BenchmarkId::new("json+b64", format!("{size}B")),
            &body,
            |b, body| {
                b.iter(|| {
                    let req: EncryptRequest = serde_json::from_slice(black_box(body)).unwrap();
                    let pt = wire::decode_b64(
                        req.plaintext.as_deref().unwrap(),
                        "plaintext",
                        wire::MAX_DATA_BYTES,
                    )
                    .unwrap();
                    let aad = wire::decode_b64(
                        req.additional_authenticated_data.as_deref().unwrap(),
                        "additionalAuthenticatedData",
                        wire::MAX_AAD_BYTES,
                    )
                    .unwrap();
                    (pt.len(), aad.len())
                })
            },
        );
    }
    group.finish();
}

criterion_group!(benches, bench_sigv4, bench_cdiv, bench_parse);
criterion_main!(benches);

//! The whole in-process XKS request path, bytes in and bytes out, without a socket:
//! keyhold started with `keyhold::app::start` on the conformance store (in a temporary
//! directory, ctm loaded from `libplugin_ctm.so`), requests signed with `aws-sigv4` once
//! per measured batch (well inside SigV4's 5-minute window), and answered by
//! `running.service.handle(request)`: routing, body collection, SigV4 verification, JSON,
//! base64, the plugin call through keyhold's blocking pool, the response body.
//!
//! No `tracing` subscriber is installed, so the per-request log line costs next to
//! nothing here; `xks-load` against `keyhold serve` measures logging (see BENCHMARKS.md).

use std::{
    hint::black_box,
    time::{Duration, Instant},
};

use bytes::Bytes;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use http::Request;
use http_body_util::{BodyExt, Full};
use keyhold::{app::Running, xks::XksService};
use keyhold_benches::{
    Credential, KEY_ID, Op, PREFIX, conformance_config, decrypt_body_from_encrypt_response,
    encrypt_body, health_body, metadata_body, plaintext, plugin_library, sign_post,
};

const AUTHORITY: &str = "127.0.0.1:8080";

/// One request, signed once; cloned per call.
#[derive(Clone)]
struct Template {
    path: String,
    headers: Vec<(String, String)>,
    body: Bytes,
}

impl Template {
    fn new(op: Op, body: Vec<u8>) -> Template {
        let path = op.path(PREFIX, KEY_ID);
        let mut t = Template {
            path,
            headers: Vec::new(),
            body: body.into(),
        };
        t.sign();
        t
    }

    /// (Re-)signs at the current time.
    fn sign(&mut self) {
        let mut headers = vec![
            ("host".to_string(), AUTHORITY.to_string()),
            ("content-type".to_string(), "application/json".to_string()),
        ];
        headers.extend(sign_post(
            &Credential::a(),
            AUTHORITY,
            &self.path,
            &self.body,
        ));
        self.headers = headers;
    }

    fn request(&self) -> Request<Full<Bytes>> {
        let mut b = Request::post(self.path.as_str());
        for (n, v) in &self.headers {
            b = b.header(n.as_str(), v.as_str());
        }
        b.header("content-length", self.body.len())
            .body(Full::new(self.body.clone()))
            .expect("request builds")
    }
}

async fn call(service: &XksService, t: &Template) -> Bytes {
    let resp = service.handle(t.request()).await;
    let status = resp.status();
    let body = resp.into_body().collect().await.expect("body").to_bytes();
    assert!(
        status.is_success(),
        "{} -> {status}: {}",
        t.path,
        String::from_utf8_lossy(&body)
    );
    body
}

fn bench_service(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let dir = tempfile::tempdir().expect("tempdir");
    let lib = plugin_library("ctm").unwrap_or_else(|e| panic!("{e}"));
    let plugin_dir = lib.parent().expect("library dir");
    eprintln!("keyhold in-process, ctm from {}", lib.display());
    let text = conformance_config(dir.path(), plugin_dir, "127.0.0.1:0");
    let cfg = keyhold::config::Config::from_toml(&text).expect("conformance config");
    let running: Running = rt
        .block_on(keyhold::app::start(cfg))
        .expect("keyhold starts");
    assert!(
        running.failed_sources.is_empty(),
        "sources failed: {:?}",
        running.failed_sources
    );
    let service = running.service.clone();

    let mut cases: Vec<(String, Option<usize>, Template)> = vec![
        (
            "health".into(),
            None,
            Template::new(Op::Health, health_body()),
        ),
        (
            "metadata".into(),
            None,
            Template::new(Op::Metadata, metadata_body()),
        ),
    ];
    for size in [32usize, 4300] {
        let enc = Template::new(Op::Encrypt, encrypt_body(&plaintext(size)));
        let sealed = rt.block_on(call(&service, &enc));
        let dec = Template::new(
            Op::Decrypt,
            decrypt_body_from_encrypt_response(&sealed).expect("encrypt response"),
        );
        cases.push(("encrypt".into(), Some(size), enc));
        cases.push(("decrypt".into(), Some(size), dec));
    }

    let mut group = c.benchmark_group("xks_in_process");
    group.measurement_time(Duration::from_secs(5));
    for (name, size, template) in &mut cases {
        let id = match size {
            Some(s) => BenchmarkId::new(name.as_str(), format!("{s}B")),
            None => BenchmarkId::from_parameter(name.as_str()),
        };
        // Requests per second is what matters here; the size is in the id.
        group.throughput(Throughput::Elements(1));
        group.bench_function(id, |b| {
            b.iter_custom(|iters| {
                // Sign once per batch: each batch lasts well under SigV4's 5 minutes.
                template.sign();
                let requests: Vec<_> = (0..iters).map(|_| template.request()).collect();
                let service = &service;
                rt.block_on(async move {
                    let started = Instant::now();
                    for req in requests {
                        let resp = service.handle(req).await;
                        assert!(resp.status().is_success(), "{}", resp.status());
                        black_box(resp.into_body().collect().await.unwrap().to_bytes());
                    }
                    started.elapsed()
                })
            })
        });
    }
    // The hop every plugin call takes (core/src/plugin/source.rs: `spawn_blocking`),
    // alone: a no-op closure on tokio's blocking pool and back, awaited in sequence.
    group.bench_function("tokio_spawn_blocking_roundtrip", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async move {
                let started = Instant::now();
                for i in 0..iters {
                    black_box(tokio::task::spawn_blocking(move || i).await.unwrap());
                }
                started.elapsed()
            })
        })
    });
    group.finish();
    rt.block_on(running.shutdown());
}

criterion_group!(benches, bench_service);
criterion_main!(benches);

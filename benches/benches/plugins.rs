//! Key-source operations through the loaded plugin libraries, next to the same AES-GCM
//! work done directly, so that the plugin boundary's cost is visible:
//! - `aes_gcm_direct`: what ctm does per call (fresh OS-random IV, AES-256 key schedule,
//!   seal/open) with `aes-gcm`, in this binary;
//! - `ctm_rlib`: ctm's key source linked in (its key lookup, copies, no FFI);
//! - `ctm_cdylib`: ctm loaded from `libplugin_ctm.so` through the stable ABI, as keyhold
//!   calls it (minus keyhold's blocking-pool hop, see the `service` bench);
//! - `luna_softhsm2`: the PKCS#11 plugin on a fresh SoftHSM2 token (skipped, with a
//!   message, when SoftHSM2 is not installed).

use std::{hint::black_box, path::Path};

use aes_gcm::{
    AeadInPlace, Aes256Gcm, KeyInit,
    aead::{OsRng, generic_array::GenericArray, rand_core::RngCore},
};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use keyhold_benches::{AAD, plaintext};
use keyhold_sdk::{
    DecryptInput, Encrypted, KeySourceBox, KeyUsage, NewKey, Plugin, testing::MemoryHost,
};
use keyhold_testkit::{
    luna::{self, LunaToken},
    plugins,
};

const SIZES: [usize; 2] = [32, 4300];
const KEY: &str = "bench-key";

/// Opens a key source from plugin `name`'s library, as keyhold loads it.
fn open(name: &str, config: &str) -> KeySourceBox {
    eprintln!(
        "loading {}",
        keyhold_benches::plugin_library(name)
            .unwrap_or_else(|e| panic!("{e}"))
            .display()
    );
    plugins::open(name, config, &MemoryHost::new())
        .unwrap_or_else(|e| panic!("open {name} (cdylib): {e}"))
}

fn ctm_config(dir: &Path) -> String {
    serde_json::json!({
        "master_key_file": dir.join("ctm-master.key"),
        "generate_master_key": true,
    })
    .to_string()
}

fn with_key(source: KeySourceBox) -> KeySourceBox {
    source
        .create_key(NewKey::new(KEY, KeyUsage::ALL))
        .into_result()
        .expect("create the bench key");
    source
}

/// Benches `seal` (encrypt) and `open` (decrypt what `seal` made) at every size in
/// group `group_name`.
fn bench_round_trip<S, R>(
    c: &mut Criterion,
    group_name: &str,
    seal: impl Fn(&[u8]) -> S,
    open: impl Fn(&S) -> R,
) {
    let mut group = c.benchmark_group(group_name);
    for size in SIZES {
        let pt = plaintext(size);
        group.throughput(Throughput::Bytes(size as u64));
        group.bench_with_input(
            BenchmarkId::new("encrypt", format!("{size}B")),
            &pt,
            |b, pt| b.iter(|| seal(black_box(pt.as_slice()))),
        );
        let sealed = seal(&pt);
        group.bench_with_input(
            BenchmarkId::new("decrypt", format!("{size}B")),
            &sealed,
            |b, sealed| b.iter(|| open(black_box(sealed))),
        );
    }
    group.finish();
}

fn bench_source(c: &mut Criterion, group_name: &str, source: &KeySourceBox) {
    bench_round_trip(
        c,
        group_name,
        |pt| -> Encrypted {
            source
                .encrypt(KEY.into(), pt.into(), AAD.into())
                .into_result()
                .unwrap()
        },
        |sealed| {
            source
                .decrypt(
                    KEY.into(),
                    DecryptInput {
                        iv: sealed.iv.as_slice().into(),
                        ciphertext: sealed.ciphertext.as_slice().into(),
                        tag: sealed.tag.as_slice().into(),
                        aad: AAD.into(),
                    },
                )
                .into_result()
                .unwrap()
        },
    );
}

/// What ctm does per call, with `aes-gcm` in this binary: a fresh OS-random IV and the
/// AES-256 key schedule on every encryption, the key schedule on every decryption.
fn bench_aes_gcm(c: &mut Criterion) {
    let mut key = [0u8; 32];
    OsRng.fill_bytes(&mut key);
    bench_round_trip(
        c,
        "aes_gcm_direct",
        |pt| {
            let mut iv = [0u8; 12];
            OsRng.fill_bytes(&mut iv);
            let mut buf = pt.to_vec();
            let tag = Aes256Gcm::new(GenericArray::from_slice(&key))
                .encrypt_in_place_detached(GenericArray::from_slice(&iv), AAD, &mut buf)
                .unwrap();
            (iv, buf, tag)
        },
        |(iv, ct, tag)| {
            let mut buf = ct.clone();
            Aes256Gcm::new(GenericArray::from_slice(&key))
                .decrypt_in_place_detached(GenericArray::from_slice(iv), AAD, &mut buf, tag)
                .unwrap();
            buf
        },
    );
}

fn bench_ctm(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = ctm_config(dir.path());

    let linked = keyhold_sdk::guard(
        plugin_ctm::CtmPlugin::open(&config, MemoryHost::new().boxed()).expect("open ctm (rlib)"),
    );
    bench_source(c, "ctm_rlib", &with_key(linked));

    let loaded = open("ctm", &config);
    bench_source(c, "ctm_cdylib", &with_key(loaded));
}

fn bench_luna(c: &mut Criterion) {
    if !luna::available() {
        eprintln!(
            "luna_softhsm2: SKIPPED: SoftHSM2 is not installed ({} missing; `apt-get install softhsm2`)",
            luna::MODULE
        );
        return;
    }
    // A fresh token, as the luna tests prepare it.
    let token = LunaToken::labelled("keyhold-bench");
    let source = open("luna", &token.config(serde_json::json!({})));
    bench_source(c, "luna_softhsm2", &with_key(source));
}

criterion_group!(benches, bench_aes_gcm, bench_ctm, bench_luna);
criterion_main!(benches);

//! Key-source operations through the loaded plugin libraries, next to the same AES-GCM
//! work done directly, so that the plugin boundary's cost is visible:
//! - `aes_gcm_direct`: what ctm does per call (fresh OS-random IV, AES-256 key schedule,
//!   seal/open) with `aes-gcm`, in this binary;
//! - `ctm_rlib`: ctm's key source linked in (its key lookup, copies, no FFI);
//! - `ctm_cdylib`: ctm loaded from `libplugin_ctm.so` through the stable ABI, as keyhold
//!   calls it (minus keyhold's blocking-pool hop, see the `service` bench);
//! - `luna_softhsm2`: the PKCS#11 plugin on a fresh SoftHSM2 token (skipped, with a
//!   message, when SoftHSM2 is not installed).

use std::{hint::black_box, path::Path, process::Command};

use abi_stable::library::lib_header_from_path;
use aes_gcm::{
    AeadInPlace, Aes256Gcm, KeyInit,
    aead::{OsRng, generic_array::GenericArray, rand_core::RngCore},
};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use keyhold_benches::{AAD, plaintext, plugin_library};
use keyhold_sdk::{
    DecryptInput, Encrypted, KeySourceBox, KeyUsage, NewKey, Plugin, PluginModRef,
    testing::MemoryHost,
};

const SIZES: [usize; 2] = [32, 4300];
const KEY: &str = "bench-key";
const SOFTHSM_MODULE: &str = "/usr/lib/softhsm/libsofthsm2.so";

fn load(name: &str) -> PluginModRef {
    let path = plugin_library(name).unwrap_or_else(|e| panic!("{e}"));
    eprintln!("loading {}", path.display());
    lib_header_from_path(&path)
        .and_then(|h| h.init_root_module::<PluginModRef>())
        .unwrap_or_else(|e| panic!("cannot load {}: {e}", path.display()))
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

fn bench_source(c: &mut Criterion, group_name: &str, source: &KeySourceBox) {
    let mut group = c.benchmark_group(group_name);
    for size in SIZES {
        let pt = plaintext(size);
        group.throughput(Throughput::Bytes(size as u64));
        group.bench_with_input(
            BenchmarkId::new("encrypt", format!("{size}B")),
            &pt,
            |b, pt| {
                b.iter(|| {
                    source
                        .encrypt(KEY.into(), black_box(pt.as_slice()).into(), AAD.into())
                        .into_result()
                        .unwrap()
                })
            },
        );
        let sealed: Encrypted = source
            .encrypt(KEY.into(), pt.as_slice().into(), AAD.into())
            .into_result()
            .unwrap();
        group.bench_with_input(
            BenchmarkId::new("decrypt", format!("{size}B")),
            &sealed,
            |b, sealed| {
                b.iter(|| {
                    source
                        .decrypt(
                            KEY.into(),
                            DecryptInput {
                                iv: sealed.iv.as_slice().into(),
                                ciphertext: black_box(sealed.ciphertext.as_slice()).into(),
                                tag: sealed.tag.as_slice().into(),
                                aad: AAD.into(),
                            },
                        )
                        .into_result()
                        .unwrap()
                })
            },
        );
    }
    group.finish();
}

fn bench_aes_gcm(c: &mut Criterion) {
    let mut group = c.benchmark_group("aes_gcm_direct");
    let mut key = [0u8; 32];
    OsRng.fill_bytes(&mut key);
    for size in SIZES {
        let pt = plaintext(size);
        group.throughput(Throughput::Bytes(size as u64));
        group.bench_with_input(
            BenchmarkId::new("encrypt", format!("{size}B")),
            &pt,
            |b, pt| {
                b.iter(|| {
                    let mut iv = [0u8; 12];
                    OsRng.fill_bytes(&mut iv);
                    let mut buf = black_box(pt).to_vec();
                    let tag = Aes256Gcm::new(GenericArray::from_slice(&key))
                        .encrypt_in_place_detached(GenericArray::from_slice(&iv), AAD, &mut buf)
                        .unwrap();
                    (iv, buf, tag)
                })
            },
        );
        let mut iv = [0u8; 12];
        OsRng.fill_bytes(&mut iv);
        let mut ct = pt.clone();
        let tag = Aes256Gcm::new(GenericArray::from_slice(&key))
            .encrypt_in_place_detached(GenericArray::from_slice(&iv), AAD, &mut ct)
            .unwrap();
        group.bench_with_input(
            BenchmarkId::new("decrypt", format!("{size}B")),
            &ct,
            |b, ct| {
                b.iter(|| {
                    let mut buf = black_box(ct).to_vec();
                    Aes256Gcm::new(GenericArray::from_slice(&key))
                        .decrypt_in_place_detached(
                            GenericArray::from_slice(&iv),
                            AAD,
                            &mut buf,
                            &tag,
                        )
                        .unwrap();
                    buf
                })
            },
        );
    }
    group.finish();
}

fn bench_ctm(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = ctm_config(dir.path());

    let linked = keyhold_sdk::guard(
        plugin_ctm::CtmPlugin::open(&config, MemoryHost::new().boxed()).expect("open ctm (rlib)"),
    );
    bench_source(c, "ctm_rlib", &with_key(linked));

    let module = load("ctm");
    let loaded = module.open()(config.as_str().into(), MemoryHost::new().boxed())
        .into_result()
        .expect("open ctm (cdylib)");
    bench_source(c, "ctm_cdylib", &with_key(loaded));
}

fn bench_luna(c: &mut Criterion) {
    let util = Command::new("softhsm2-util").arg("--version").output();
    if !Path::new(SOFTHSM_MODULE).is_file() || util.is_err() {
        eprintln!(
            "luna_softhsm2: SKIPPED: SoftHSM2 is not installed ({SOFTHSM_MODULE} or softhsm2-util missing; \
             `apt-get install softhsm2`)"
        );
        return;
    }
    // A fresh token in a temporary directory, as plugins/luna's tests and
    // scripts/softhsm-demo.sh prepare it.
    let dir = tempfile::tempdir().expect("tempdir");
    let tokens = dir.path().join("tokens");
    std::fs::create_dir_all(&tokens).expect("token dir");
    let conf = dir.path().join("softhsm2.conf");
    std::fs::write(
        &conf,
        format!(
            "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n",
            tokens.display()
        ),
    )
    .expect("softhsm2.conf");
    let pin = "bench-user-pin-5678";
    let pin_file = dir.path().join("user.pin");
    std::fs::write(&pin_file, format!("{pin}\n")).expect("pin file");
    let label = "keyhold-bench";
    let out = Command::new("softhsm2-util")
        .env("SOFTHSM2_CONF", &conf)
        .args([
            "--init-token",
            "--free",
            "--label",
            label,
            "--so-pin",
            "bench-so-pin-1234",
            "--pin",
            pin,
        ])
        .output()
        .expect("run softhsm2-util");
    assert!(
        out.status.success(),
        "softhsm2-util --init-token failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let config = serde_json::json!({
        "module": SOFTHSM_MODULE,
        "token_label": label,
        "pin_file": pin_file,
        "module_env": { "SOFTHSM2_CONF": conf },
    })
    .to_string();
    let module = load("luna");
    let source = module.open()(config.as_str().into(), MemoryHost::new().boxed())
        .into_result()
        .expect("open luna (cdylib) on SoftHSM2");
    bench_source(c, "luna_softhsm2", &with_key(source));
}

criterion_group!(benches, bench_aes_gcm, bench_ctm, bench_luna);
criterion_main!(benches);

//! `xks-load pkcs11`: the fastest the PKCS#11 token itself goes on this machine, the
//! way `baseline-server` is for HTTP. Each of `-c N` OS threads opens one logged-in
//! session on the token and runs `C_EncryptInit`/`C_Encrypt` (or `C_DecryptInit`/
//! `C_Decrypt`) with AES-GCM on the same key, plaintext size and AAD as `xks-load run`,
//! back to back, for `-d` seconds after `--warmup`. No HTTP, no SigV4, no JSON, no
//! plugin: keyhold's luna store is quoted as a percentage of this. The output has the
//! format of `xks-load run` (and the same `--json` line).
//!
//! The calls go through `cryptoki`, as the luna plugin's do (its `encrypt`/`decrypt` ask
//! the module for the output length first, then for the output). The IV is a per-thread
//! counter (unique per call under the key), so the figure holds no `getrandom`.
//! The module reads its environment in `C_Initialize` (SoftHSM2: `SOFTHSM2_CONF`).

use std::{
    path::PathBuf,
    sync::Arc,
    time::{Duration, Instant},
};

use bytes::Bytes;
use cryptoki::{
    context::{CInitializeArgs, CInitializeFlags, Pkcs11},
    error::{Error, RvError},
    mechanism::{Mechanism, aead::GcmParams},
    object::{Attribute, ObjectClass, ObjectHandle},
    session::{Session, UserType},
    types::AuthPin,
};
use keyhold_benches::{AAD, KEY_ID, Op, plaintext};

use crate::{BoxError, MAX_CONNECTIONS, MAX_SECONDS, Outcome, Report, Stats};

/// GCM tag length, bits.
const TAG_BITS: u64 = 128;

#[derive(clap::Args, Clone)]
pub struct Args {
    /// The PKCS#11 module.
    #[arg(long, default_value = "/usr/lib/softhsm/libsofthsm2.so")]
    module: PathBuf,
    /// The token's label.
    #[arg(long)]
    token_label: String,
    /// File holding the user PIN.
    #[arg(long)]
    pin_file: PathBuf,
    /// CKA_LABEL of the AES key (the luna store's source key of `xks-load run --key`).
    #[arg(long, default_value = KEY_ID)]
    key: String,
    /// encrypt and/or decrypt (comma-separated).
    #[arg(long, value_enum, value_delimiter = ',', default_value = "encrypt")]
    op: Vec<Op>,
    /// Plaintext sizes in bytes (comma-separated).
    #[arg(long, value_delimiter = ',', default_value = "32")]
    size: Vec<usize>,
    /// Worker threads, one session each.
    #[arg(long, short = 'c', default_value_t = 32)]
    connections: usize,
    /// Measured seconds per operation and size.
    #[arg(long, short = 'd', default_value_t = 10)]
    duration: u64,
    /// Unmeasured warm-up seconds before each measurement.
    #[arg(long, default_value_t = 2)]
    warmup: u64,
    /// Also print one JSON line per result.
    #[arg(long)]
    json: bool,
}

fn find_token(ctx: &Pkcs11, label: &str) -> Result<cryptoki::slot::Slot, BoxError> {
    for slot in ctx.get_slots_with_token()? {
        if ctx
            .get_token_info(slot)
            .is_ok_and(|i| i.label().trim_end() == label)
        {
            return Ok(slot);
        }
    }
    Err(format!("no token labelled '{label}' (is SOFTHSM2_CONF set?)").into())
}

/// A logged-in session and the key's handle.
fn session(
    ctx: &Pkcs11,
    slot: cryptoki::slot::Slot,
    pin: &str,
    key: &str,
) -> Result<(Session, ObjectHandle), BoxError> {
    let s = ctx.open_rw_session(slot)?;
    match s.login(UserType::User, Some(&AuthPin::new(pin.into()))) {
        Ok(()) | Err(Error::Pkcs11(RvError::UserAlreadyLoggedIn, _)) => {}
        Err(e) => return Err(format!("login: {e}").into()),
    }
    let found = s.find_objects(&[
        Attribute::Class(ObjectClass::SECRET_KEY),
        Attribute::Label(key.as_bytes().to_vec()),
    ])?;
    match found.as_slice() {
        [h] => Ok((s, *h)),
        other => Err(format!("{} secret keys labelled '{key}'", other.len()).into()),
    }
}

fn encrypt(s: &Session, key: ObjectHandle, iv: &mut [u8; 12], pt: &[u8]) -> Result<Vec<u8>, Error> {
    let params = GcmParams::new(iv, AAD, TAG_BITS.into())?;
    s.encrypt(&Mechanism::AesGcm(params), key, pt)
}

fn decrypt(s: &Session, key: ObjectHandle, iv: &[u8; 12], ct_tag: &[u8]) -> Result<Vec<u8>, Error> {
    let mut iv = *iv;
    let params = GcmParams::new(&mut iv, AAD, TAG_BITS.into())?;
    s.decrypt(&Mechanism::AesGcm(params), key, ct_tag)
}

/// What one worker does.
struct Job {
    ctx: Pkcs11,
    slot: cryptoki::slot::Slot,
    pin: Arc<String>,
    key: Arc<String>,
    op: Op,
    size: usize,
    thread: u32,
    /// Operations started before this are warm-up; none is started after the end.
    measure_from: Instant,
    end: Instant,
}

/// One worker: its session, then operations until the end; records those started in
/// the measured window.
fn worker(job: Job) -> Result<Stats, String> {
    let (s, handle) = session(&job.ctx, job.slot, &job.pin, &job.key).map_err(|e| e.to_string())?;
    let pt = plaintext(job.size);
    // Per-thread unique IVs: the thread number, then a counter.
    let mut counter = 0u64;
    let mut next_iv = || {
        counter += 1;
        let mut iv = [0u8; 12];
        iv[..4].copy_from_slice(&job.thread.to_be_bytes());
        iv[4..].copy_from_slice(&counter.to_be_bytes());
        iv
    };
    let sealed = {
        let mut iv = next_iv();
        let ct = encrypt(&s, handle, &mut iv, &pt).map_err(|e| format!("set-up encrypt: {e}"))?;
        (iv, ct)
    };
    let mut stats = Stats::new();
    loop {
        let t0 = Instant::now();
        if t0 >= job.end {
            break;
        }
        let r = match job.op {
            Op::Decrypt => decrypt(&s, handle, &sealed.0, &sealed.1).map(|p| p.len() == pt.len()),
            _ => {
                let mut iv = next_iv();
                encrypt(&s, handle, &mut iv, &pt).map(|c| c.len() == pt.len() + 16)
            }
        };
        let outcome = match r {
            Ok(true) => Outcome::Ok(Bytes::new()),
            Ok(false) => Outcome::Refused("wrong output length".into()),
            Err(e) => Outcome::Refused(e.to_string()),
        };
        if t0 >= job.measure_from {
            let d = t0.elapsed();
            stats.record(&outcome, d, d);
        }
    }
    Ok(stats)
}

pub fn run(args: Args) -> Result<(), BoxError> {
    if args.connections == 0 || args.connections > MAX_CONNECTIONS {
        return Err(format!("--connections must be 1..={MAX_CONNECTIONS}").into());
    }
    if args.duration == 0 || args.duration + args.warmup > MAX_SECONDS {
        return Err(format!("--duration + --warmup must be 1..={MAX_SECONDS} seconds").into());
    }
    let ctx = Pkcs11::new(&args.module)?;
    ctx.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK))?;
    let slot = find_token(&ctx, &args.token_label)?;
    let pin = std::fs::read_to_string(&args.pin_file)?;
    let pin = Arc::new(pin.trim_end_matches(['\r', '\n']).to_string());
    let key = Arc::new(args.key.clone());
    // One session stays logged in for the whole run (a login is per token and ends
    // with the last session).
    let _anchor = session(&ctx, slot, &pin, &key)?;
    for &op in &args.op {
        if !matches!(op, Op::Encrypt | Op::Decrypt) {
            return Err("xks-load pkcs11 runs --op encrypt and/or decrypt".into());
        }
        for &size in &args.size {
            let start = Instant::now();
            let measure_from = start + Duration::from_secs(args.warmup);
            let end = measure_from + Duration::from_secs(args.duration);
            let handles: Vec<_> = (0..args.connections)
                .map(|t| {
                    let job = Job {
                        ctx: ctx.clone(),
                        slot,
                        pin: pin.clone(),
                        key: key.clone(),
                        op,
                        size,
                        thread: t as u32,
                        measure_from,
                        end,
                    };
                    std::thread::spawn(move || worker(job))
                })
                .collect();
            let mut stats = Stats::new();
            let mut failures = Vec::new();
            for h in handles {
                match h.join() {
                    Ok(Ok(s)) => stats.merge(s),
                    Ok(Err(e)) => failures.push(e),
                    Err(_) => failures.push("worker panicked".into()),
                }
            }
            if let Some(e) = failures.first() {
                return Err(format!(
                    "{} of {} workers failed: {e}",
                    failures.len(),
                    args.connections
                )
                .into());
            }
            let secs = Instant::now()
                .min(end)
                .saturating_duration_since(measure_from)
                .as_secs_f64()
                .max(1e-9);
            Report {
                target: format!("pkcs11:{}", args.token_label),
                op: op.name(),
                size: Some(size),
                mode: "closed".into(),
                connections: args.connections,
                sign: "-".into(),
                open_loop: false,
                json: args.json,
                extra: None,
            }
            .print(&stats, secs, None);
        }
    }
    Ok(())
}

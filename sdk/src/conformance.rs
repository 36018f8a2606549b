//! The plugin conformance test kit.
//!
//! Run it on a built library, loaded exactly as the host loads it (the same checks, the
//! same refusals), with the configuration a key source of yours would have:
//!
//! ```no_run
//! let report = keyhold_sdk::conformance::run_library(
//!     "target/debug/libplugin_template.so".as_ref(),
//!     "{}",
//! )
//! .unwrap_or_else(|failure| panic!("{failure}"));
//! println!("{} checks passed", report.passed.len());
//! ```
//!
//! or on a key source you opened yourself (a unit test, without building the library):
//!
//! ```
//! use keyhold_sdk::{conformance, guard, testing::MemoryHost};
//! # use keyhold_sdk::*;
//! # struct MySource;
//! # impl KeySourceImpl for MySource {
//! #     fn info(&self) -> SourceInfo { SourceInfo { vendor: "v".into(), model: "m".into() } }
//! #     fn health(&self) -> Vec<EkmNode> { Vec::new() }
//! #     fn list_keys(&self) -> Result<Vec<KeyInfo>, KeySourceError> { Ok(Vec::new()) }
//! #     fn get_key(&self, n: &str) -> Result<KeyInfo, KeySourceError> { Err(KeySourceError::not_found(n)) }
//! #     fn create_key(&self, s: NewKey) -> Result<KeyInfo, KeySourceError> { Err(KeySourceError::not_found(&s.name)) }
//! #     fn delete_key(&self, n: &str) -> Result<(), KeySourceError> { Err(KeySourceError::not_found(n)) }
//! #     fn set_enabled(&self, n: &str, _: bool) -> Result<KeyInfo, KeySourceError> { Err(KeySourceError::not_found(n)) }
//! #     fn validate_health_check_key(&self, n: &str) -> Result<(), KeySourceError> { Err(KeySourceError::not_found(n)) }
//! #     fn encrypt(&self, n: &str, _: &[u8], _: &[u8]) -> Result<Encrypted, KeySourceError> { Err(KeySourceError::not_found(n)) }
//! #     fn decrypt(&self, n: &str, _: DecryptInput<'_>) -> Result<Vec<u8>, KeySourceError> { Err(KeySourceError::not_found(n)) }
//! # }
//! # impl MySource { fn open(_: &str, _: HostBox) -> Result<MySource, KeySourceError> { Ok(MySource) } }
//! let source = guard(MySource::open("{}", MemoryHost::new().boxed()).unwrap());
//! // This stand-in has no health, so the kit stops at its second check.
//! let failure = conformance::run(&source).unwrap_err();
//! assert_eq!(failure.check, "health");
//! ```
//!
//! The kit creates its own keys, named `conformance-<unique run id>-<purpose>`, and
//! never reads, changes or deletes any other key. Keys are created deletable and deleted
//! at the end of the run (also when a check fails), except the few that a check needs
//! to be non-deletable; those are left in the source, disabled when possible, and named
//! in [`Report::leftover_keys`] (or in [`Failure::detail`]).
//!
//! Checks run in a fixed order and stop at the first failure; [`CHECKS`] lists them
//! ([`run_library`] adds `load` and `open` before them).

use std::{
    fmt,
    sync::{
        Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::{SystemTime, UNIX_EPOCH},
};

use abi_stable::std_types::{RResult, RSlice, RStr};

use crate::{
    DecryptInput, Encrypted, KeyInfo, KeySourceBox, KeySourceError, KeyUsage, NewKey, Operation,
    library, testing::MemoryHost,
};

/// The names of every check [`run`] performs, in the order it performs them.
pub const CHECKS: &[&str] = &[
    "info",
    "health",
    "create_key",
    "unknown_key",
    "round_trip",
    "iv_uniqueness",
    "tampering",
    "invalid_lengths",
    "foreign_iv",
    "key_usage",
    "enable_disable",
    "health_check_key",
    "delete_key",
    "concurrency",
];

/// What a successful [`run`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// The names of the checks that passed, in order (every entry of [`CHECKS`]).
    pub passed: Vec<&'static str>,
    /// The unique prefix of every key this run created, e.g. `conformance-1732-1-`.
    pub key_prefix: String,
    /// Non-deletable keys the run had to create and could not remove.
    pub leftover_keys: Vec<String>,
}

/// The first check that failed, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// The name of the failing check (an entry of [`CHECKS`]).
    pub check: &'static str,
    /// What was expected and what happened instead (and which keys the run could not
    /// remove, if any).
    pub detail: String,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "conformance check '{}' failed: {}",
            self.check, self.detail
        )
    }
}

impl std::error::Error for Failure {}

/// Runs every conformance check against `source`, stopping at the first failure.
///
/// Cleans up the keys it created (see the module documentation) whatever the outcome.
pub fn run(source: &KeySourceBox) -> Result<Report, Failure> {
    let ctx = Ctx::new(source);
    let mut passed = Vec::new();
    let mut failure = None;
    for (name, check) in all_checks() {
        match check(&ctx) {
            Ok(()) => passed.push(name),
            Err(detail) => {
                failure = Some((name, detail));
                break;
            }
        }
    }
    let leftover_keys = ctx.cleanup();
    match failure {
        None => Ok(Report {
            passed,
            key_prefix: ctx.prefix.clone(),
            leftover_keys,
        }),
        Some((check, mut detail)) => {
            if !leftover_keys.is_empty() {
                detail.push_str(&format!(
                    " (keys left in the source: {})",
                    leftover_keys.join(", ")
                ));
            }
            Err(Failure { check, detail })
        }
    }
}

/// Loads the plugin library at `path` exactly as the host does ([`library::load`]: the
/// same version, layout and ABI checks), opens a key source from it with `config` (the
/// key source's configuration as JSON text, `{}` for none) on a fresh in-memory host
/// ([`MemoryHost`]), and runs every check on it.
///
/// A refused library fails check `load` (with the one-line reason, then `abi_stable`'s
/// layout report if there is one); a refused configuration fails check `open`.
pub fn run_library(path: &std::path::Path, config: &str) -> Result<Report, Failure> {
    let loaded = library::load(path).map_err(|e| Failure {
        check: "load",
        detail: match &e {
            library::LoadError::Refused {
                detail: Some(detail),
                ..
            } => format!("{e}\n{detail}"),
            _ => e.to_string(),
        },
    })?;
    let source = loaded.module.open()(RStr::from(config), MemoryHost::new().boxed())
        .into_result()
        .map_err(|e| Failure {
            check: "open",
            detail: format!("open({config}) failed: {e:?} ({e})"),
        })?;
    run(&source)
}

type Check = fn(&Ctx<'_>) -> Result<(), String>;

fn all_checks() -> [(&'static str, Check); 14] {
    let checks: [(&'static str, Check); 14] = [
        ("info", check_info),
        ("health", check_health),
        ("create_key", check_create_key),
        ("unknown_key", check_unknown_key),
        ("round_trip", check_round_trip),
        ("iv_uniqueness", check_iv_uniqueness),
        ("tampering", check_tampering),
        ("invalid_lengths", check_invalid_lengths),
        ("foreign_iv", check_foreign_iv),
        ("key_usage", check_key_usage),
        ("enable_disable", check_enable_disable),
        ("health_check_key", check_health_check_key),
        ("delete_key", check_delete_key),
        ("concurrency", check_concurrency),
    ];
    debug_assert!(checks.iter().map(|c| c.0).eq(CHECKS.iter().copied()));
    checks
}

/// One run's state: the source, the unique key-name prefix and the keys created.
struct Ctx<'a> {
    source: &'a KeySourceBox,
    prefix: String,
    /// (name, deletable) of every key this run created.
    created: Mutex<Vec<(String, bool)>>,
    rng: Mutex<u64>,
}

static RUN_COUNTER: AtomicU64 = AtomicU64::new(0);

fn res<T>(r: RResult<T, KeySourceError>) -> Result<T, KeySourceError> {
    r.into_result()
}

impl<'a> Ctx<'a> {
    fn new(source: &'a KeySourceBox) -> Ctx<'a> {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let count = RUN_COUNTER.fetch_add(1, Ordering::Relaxed);
        let seed = (nanos as u64) ^ (count.wrapping_mul(0x9E37_79B9_7F4A_7C15)) ^ 0x5DEE_CE66;
        Ctx {
            source,
            prefix: format!("conformance-{nanos}-{count}-{}-", std::process::id()),
            created: Mutex::new(Vec::new()),
            rng: Mutex::new(seed | 1),
        }
    }

    fn name(&self, purpose: &str) -> String {
        format!("{}{purpose}", self.prefix)
    }

    /// Non-cryptographic pseudo-random bytes (xorshift64*), for test inputs only.
    fn random_bytes(&self, len: usize) -> Vec<u8> {
        let mut state = self.rng.lock().unwrap_or_else(|p| p.into_inner());
        let mut out = Vec::with_capacity(len + 8);
        while out.len() < len {
            *state ^= *state >> 12;
            *state ^= *state << 25;
            *state ^= *state >> 27;
            out.extend_from_slice(&state.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes());
        }
        out.truncate(len);
        out
    }

    /// Creates a key, remembering it for clean-up.
    fn create(
        &self,
        purpose: &str,
        usage: KeyUsage,
        deletable: bool,
    ) -> Result<KeyInfo, KeySourceError> {
        let name = self.name(purpose);
        let spec = NewKey {
            name: name.as_str().into(),
            usage,
            exportable: false,
            deletable,
        };
        self.create_spec(spec)
    }

    fn create_spec(&self, spec: NewKey) -> Result<KeyInfo, KeySourceError> {
        let name = spec.name.to_string();
        let deletable = spec.deletable;
        let info = res(self.source.create_key(spec))?;
        self.created
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((name, deletable));
        Ok(info)
    }

    /// Creates a deletable key or fails the check with a message.
    fn key(&self, purpose: &str, usage: KeyUsage) -> Result<String, String> {
        self.create(purpose, usage, true)
            .map(|info| info.name.to_string())
            .map_err(|e| {
                format!(
                    "create_key('{}', {usage:?}) failed: {e}",
                    self.name(purpose)
                )
            })
    }

    fn encrypt(&self, name: &str, pt: &[u8], aad: &[u8]) -> Result<Encrypted, KeySourceError> {
        res(self
            .source
            .encrypt(RStr::from(name), RSlice::from(pt), RSlice::from(aad)))
    }

    fn decrypt(
        &self,
        name: &str,
        iv: &[u8],
        ct: &[u8],
        tag: &[u8],
        aad: &[u8],
    ) -> Result<Vec<u8>, KeySourceError> {
        let input = DecryptInput {
            iv: iv.into(),
            ciphertext: ct.into(),
            tag: tag.into(),
            aad: aad.into(),
        };
        res(self.source.decrypt(RStr::from(name), input)).map(|v| v.into_vec())
    }

    fn get(&self, name: &str) -> Result<KeyInfo, KeySourceError> {
        res(self.source.get_key(RStr::from(name)))
    }

    /// Deletes every deletable key this run created; disables the others. Returns
    /// the keys left in the source.
    fn cleanup(&self) -> Vec<String> {
        let created = std::mem::take(&mut *self.created.lock().unwrap_or_else(|p| p.into_inner()));
        let mut left = Vec::new();
        for (name, deletable) in created {
            if deletable {
                match res(self.source.delete_key(RStr::from(name.as_str()))) {
                    Ok(()) | Err(KeySourceError::NotFound { .. }) => continue,
                    Err(_) => {}
                }
            }
            let _ = res(self.source.set_enabled(RStr::from(name.as_str()), false));
            left.push(name);
        }
        left
    }
}

/// Formats an unexpected outcome.
fn unexpected<T: fmt::Debug>(
    what: &str,
    expected: &str,
    got: &Result<T, KeySourceError>,
) -> String {
    match got {
        Ok(v) => format!("{what}: expected {expected}, but it succeeded ({v:?})"),
        Err(e) => format!("{what}: expected {expected}, got {e:?} ({e})"),
    }
}

/// Checks that `got` is an error matching `pred`.
fn expect_err<T: fmt::Debug>(
    what: &str,
    expected: &str,
    got: Result<T, KeySourceError>,
    pred: impl Fn(&KeySourceError) -> bool,
) -> Result<(), String> {
    match &got {
        Err(e) if pred(e) => Ok(()),
        _ => Err(unexpected(what, expected, &got)),
    }
}

fn ok<T>(what: &str, r: Result<T, KeySourceError>) -> Result<T, String> {
    r.map_err(|e| format!("{what} failed: {e:?} ({e})"))
}

fn ensure(cond: bool, msg: impl FnOnce() -> String) -> Result<(), String> {
    if cond { Ok(()) } else { Err(msg()) }
}

fn is_invalid_ciphertext(e: &KeySourceError) -> bool {
    matches!(e, KeySourceError::InvalidCiphertext)
}

fn is_invalid_input(e: &KeySourceError) -> bool {
    matches!(e, KeySourceError::InvalidInput { .. })
}

fn is_not_found(e: &KeySourceError) -> bool {
    matches!(e, KeySourceError::NotFound { .. })
}

fn check_info(ctx: &Ctx<'_>) -> Result<(), String> {
    let info = ctx.source.info();
    ensure(!info.vendor.trim().is_empty(), || {
        "info().vendor is empty".into()
    })?;
    ensure(!info.model.trim().is_empty(), || {
        "info().model is empty".into()
    })
}

fn check_health(ctx: &Ctx<'_>) -> Result<(), String> {
    let nodes = ctx.source.health();
    ensure((1..=10).contains(&nodes.len()), || {
        format!(
            "health() must report 1..=10 key managers, got {}",
            nodes.len()
        )
    })?;
    for (i, node) in nodes.iter().enumerate() {
        ensure(!node.id.trim().is_empty(), || {
            format!("health()[{i}].id is empty")
        })?;
    }
    Ok(())
}

fn check_create_key(ctx: &Ctx<'_>) -> Result<(), String> {
    let name = ctx.name("create");
    let created = ok(
        &format!("create_key('{name}', ALL)"),
        ctx.create("create", KeyUsage::ALL, true),
    )?;
    ensure(created.name.as_str() == name, || {
        format!(
            "create_key returned name '{}', expected '{name}'",
            created.name
        )
    })?;
    let info = ok(&format!("get_key('{name}')"), ctx.get(&name))?;
    ensure(info.name.as_str() == name, || {
        format!("get_key returned name '{}', expected '{name}'", info.name)
    })?;
    ensure(info.bits == 256, || {
        format!("get_key: bits {} != 256", info.bits)
    })?;
    ensure(info.usage == KeyUsage::ALL, || {
        format!("get_key: usage {:?} != {:?}", info.usage, KeyUsage::ALL)
    })?;
    ensure(info.enabled, || "get_key: new key is not enabled".into())?;
    ensure(info.deletable, || {
        "get_key: key created deletable=true is not deletable".into()
    })?;
    ensure(!info.exportable, || {
        "get_key: key created exportable=false is exportable".into()
    })?;
    let list = ok("list_keys()", res(ctx.source.list_keys()))?;
    ensure(list.iter().any(|k| k.name.as_str() == name), || {
        format!("list_keys() does not contain the new key '{name}'")
    })?;
    let again = res(ctx.source.create_key(NewKey {
        name: name.as_str().into(),
        usage: KeyUsage::ALL,
        exportable: false,
        deletable: true,
    }));
    expect_err(
        &format!("create_key('{name}') a second time"),
        "AlreadyExists",
        again,
        |e| matches!(e, KeySourceError::AlreadyExists { .. }),
    )?;
    // The failed creation must not have changed the key.
    let after = ok(&format!("get_key('{name}')"), ctx.get(&name))?;
    ensure(without_counts(&after) == without_counts(&info), || {
        format!("a refused duplicate create_key changed the key: {info:?} -> {after:?}")
    })
}

fn check_unknown_key(ctx: &Ctx<'_>) -> Result<(), String> {
    let name = ctx.name("does-not-exist");
    expect_err("get_key(unknown)", "NotFound", ctx.get(&name), is_not_found)?;
    expect_err(
        "encrypt(unknown)",
        "NotFound",
        ctx.encrypt(&name, b"hello", b""),
        is_not_found,
    )?;
    expect_err(
        "decrypt(unknown)",
        "NotFound",
        ctx.decrypt(&name, &[0; 12], &[0; 5], &[0; 16], b""),
        is_not_found,
    )
}

fn check_encrypted_shape(what: &str, pt: &[u8], enc: &Encrypted) -> Result<(), String> {
    ensure(enc.ciphertext.len() == pt.len(), || {
        format!(
            "{what}: ciphertext length {} != plaintext length {}",
            enc.ciphertext.len(),
            pt.len()
        )
    })?;
    ensure(enc.tag.len() == 16, || {
        format!("{what}: tag length {} != 16", enc.tag.len())
    })?;
    ensure(enc.iv.len() == 12 || enc.iv.len() == 16, || {
        format!("{what}: IV length {} is neither 12 nor 16", enc.iv.len())
    })?;
    // Short ciphertexts may equal their plaintext by chance (1 in 256 for one byte).
    ensure(pt.len() < 16 || enc.ciphertext.as_slice() != pt, || {
        format!("{what}: ciphertext equals the plaintext")
    })
}

fn check_round_trip(ctx: &Ctx<'_>) -> Result<(), String> {
    let key = ctx.key("roundtrip", KeyUsage::ALL)?;
    let big_aad = ctx.random_bytes(8192);
    for aad in [&[][..], &big_aad[..]] {
        for size in [0usize, 1, 32, 4300] {
            let what = format!("encrypt({size}-byte plaintext, {}-byte AAD)", aad.len());
            let pt = ctx.random_bytes(size);
            let enc = ok(&what, ctx.encrypt(&key, &pt, aad))?;
            check_encrypted_shape(&what, &pt, &enc)?;
            let what = format!("decrypt({size}-byte ciphertext, {}-byte AAD)", aad.len());
            let back = ok(
                &what,
                ctx.decrypt(&key, &enc.iv, &enc.ciphertext, &enc.tag, aad),
            )?;
            ensure(back == pt, || {
                format!("{what}: plaintext does not round-trip")
            })?;
        }
    }
    Ok(())
}

fn check_iv_uniqueness(ctx: &Ctx<'_>) -> Result<(), String> {
    let key = ctx.key("ivs", KeyUsage::ALL)?;
    let mut ivs = Vec::with_capacity(50);
    for i in 0..50 {
        let enc = ok(
            &format!("encrypt #{i}"),
            ctx.encrypt(&key, b"same plaintext", b"aad"),
        )?;
        ensure(!ivs.contains(&enc.iv), || {
            format!(
                "encrypt #{i} reused an IV of an earlier encryption: {:02x?}",
                enc.iv
            )
        })?;
        ivs.push(enc.iv);
    }
    Ok(())
}

fn flip(bytes: &[u8], index: usize) -> Vec<u8> {
    let mut v = bytes.to_vec();
    if let Some(b) = v.get_mut(index) {
        *b ^= 0x01;
    }
    v
}

/// (description, IV, ciphertext, tag, AAD) of one tampered decryption.
type TamperCase = (&'static str, Vec<u8>, Vec<u8>, Vec<u8>, Vec<u8>);

fn check_tampering(ctx: &Ctx<'_>) -> Result<(), String> {
    let key = ctx.key("tamper", KeyUsage::ALL)?;
    let pt = ctx.random_bytes(32);
    let aad = b"conformance aad".to_vec();
    let enc = ok("encrypt", ctx.encrypt(&key, &pt, &aad))?;
    let (iv, ct, tag) = (
        enc.iv.as_slice(),
        enc.ciphertext.as_slice(),
        enc.tag.as_slice(),
    );
    let cases: [TamperCase; 6] = [
        (
            "wrong AAD",
            iv.to_vec(),
            ct.to_vec(),
            tag.to_vec(),
            b"other aad".to_vec(),
        ),
        (
            "empty instead of AAD",
            iv.to_vec(),
            ct.to_vec(),
            tag.to_vec(),
            Vec::new(),
        ),
        (
            "flipped ciphertext bit",
            iv.to_vec(),
            flip(ct, 7),
            tag.to_vec(),
            aad.clone(),
        ),
        (
            "flipped tag bit",
            iv.to_vec(),
            ct.to_vec(),
            flip(tag, 15),
            aad.clone(),
        ),
        (
            "flipped IV bit",
            flip(iv, 0),
            ct.to_vec(),
            tag.to_vec(),
            aad.clone(),
        ),
        (
            "truncated ciphertext",
            iv.to_vec(),
            ct[..31].to_vec(),
            tag.to_vec(),
            aad.clone(),
        ),
    ];
    for (what, iv, ct, tag, aad) in cases {
        expect_err(
            &format!("decrypt with {what}"),
            "InvalidCiphertext",
            ctx.decrypt(&key, &iv, &ct, &tag, &aad),
            is_invalid_ciphertext,
        )?;
    }
    // The untouched ciphertext still decrypts.
    let back = ok("decrypt", ctx.decrypt(&key, iv, ct, tag, &aad))?;
    ensure(back == pt, || {
        "decrypt after tampering attempts: wrong plaintext".into()
    })
}

fn check_invalid_lengths(ctx: &Ctx<'_>) -> Result<(), String> {
    let key = ctx.key("lengths", KeyUsage::ALL)?;
    let enc = ok("encrypt", ctx.encrypt(&key, b"length checks", b""))?;
    let (iv, ct, tag) = (
        enc.iv.as_slice(),
        enc.ciphertext.as_slice(),
        enc.tag.as_slice(),
    );
    let cases: [(&str, Vec<u8>, Vec<u8>); 5] = [
        ("an 8-byte IV", iv[..8].to_vec(), tag.to_vec()),
        ("an empty IV", Vec::new(), tag.to_vec()),
        ("a 15-byte tag", iv.to_vec(), tag[..15].to_vec()),
        ("an empty tag", iv.to_vec(), Vec::new()),
        ("a 17-byte tag", iv.to_vec(), [tag, &[0][..]].concat()),
    ];
    for (what, iv, tag) in cases {
        expect_err(
            &format!("decrypt with {what}"),
            "InvalidInput",
            ctx.decrypt(&key, &iv, ct, &tag, b""),
            is_invalid_input,
        )?;
    }
    Ok(())
}

fn check_foreign_iv(ctx: &Ctx<'_>) -> Result<(), String> {
    let key = ctx.key("foreign-iv", KeyUsage::ALL)?;
    let enc = ok("encrypt", ctx.encrypt(&key, b"foreign iv check", b""))?;
    let iv16 = ctx.random_bytes(16);
    expect_err(
        "decrypt with a random 16-byte IV and another encryption's tag",
        "InvalidCiphertext",
        ctx.decrypt(&key, &iv16, &enc.ciphertext, &enc.tag, b""),
        is_invalid_ciphertext,
    )?;
    let iv12 = ctx.random_bytes(12);
    expect_err(
        "decrypt with a random 12-byte IV and another encryption's tag",
        "InvalidCiphertext",
        ctx.decrypt(&key, &iv12, &enc.ciphertext, &enc.tag, b""),
        is_invalid_ciphertext,
    )
}

fn is_usage(op: Operation) -> impl Fn(&KeySourceError) -> bool {
    move |e| matches!(e, KeySourceError::KeyUsage { operation, .. } if *operation == op)
}

fn check_key_usage(ctx: &Ctx<'_>) -> Result<(), String> {
    let all = ctx.key("usage-all", KeyUsage::ALL)?;
    let enc_all = ok("encrypt with an ALL key", ctx.encrypt(&all, b"usage", b""))?;

    let enc_only = ctx.key("usage-encrypt", KeyUsage::ENCRYPT)?;
    let enc = ok(
        "encrypt with an ENCRYPT-only key",
        ctx.encrypt(&enc_only, b"usage", b""),
    )?;
    expect_err(
        "decrypt with an ENCRYPT-only key",
        "KeyUsage { operation: Decrypt }",
        ctx.decrypt(&enc_only, &enc.iv, &enc.ciphertext, &enc.tag, b""),
        is_usage(Operation::Decrypt),
    )?;

    let dec_only = ctx.key("usage-decrypt", KeyUsage::DECRYPT)?;
    expect_err(
        "encrypt with a DECRYPT-only key",
        "KeyUsage { operation: Encrypt }",
        ctx.encrypt(&dec_only, b"usage", b""),
        is_usage(Operation::Encrypt),
    )?;
    // A DECRYPT-only key decrypting a foreign ciphertext gets past the usage check.
    expect_err(
        "decrypt with a DECRYPT-only key (ciphertext of another key)",
        "InvalidCiphertext",
        ctx.decrypt(
            &dec_only,
            &enc_all.iv,
            &enc_all.ciphertext,
            &enc_all.tag,
            b"",
        ),
        is_invalid_ciphertext,
    )?;

    let wrap_only = ctx.key("usage-wrap", KeyUsage::WRAP.union(KeyUsage::UNWRAP))?;
    expect_err(
        "encrypt with a WRAP|UNWRAP-only key",
        "KeyUsage { operation: Encrypt }",
        ctx.encrypt(&wrap_only, b"usage", b""),
        is_usage(Operation::Encrypt),
    )?;
    expect_err(
        "decrypt with a WRAP|UNWRAP-only key",
        "KeyUsage { operation: Decrypt }",
        ctx.decrypt(
            &wrap_only,
            &enc_all.iv,
            &enc_all.ciphertext,
            &enc_all.tag,
            b"",
        ),
        is_usage(Operation::Decrypt),
    )?;
    for (name, usage) in [
        (&enc_only, KeyUsage::ENCRYPT),
        (&dec_only, KeyUsage::DECRYPT),
        (&wrap_only, KeyUsage::WRAP.union(KeyUsage::UNWRAP)),
    ] {
        let info = ok(&format!("get_key('{name}')"), ctx.get(name))?;
        ensure(info.usage == usage, || {
            format!(
                "get_key('{name}'): usage {:?}, created with {usage:?}",
                info.usage
            )
        })?;
    }
    Ok(())
}

fn check_enable_disable(ctx: &Ctx<'_>) -> Result<(), String> {
    let key = ctx.key("disable", KeyUsage::ALL)?;
    let before = ok("get_key", ctx.get(&key))?;
    let pt = b"made before disabling".to_vec();
    let enc = ok("encrypt", ctx.encrypt(&key, &pt, b"aad"))?;

    let disabled = ok(
        "set_enabled(false)",
        res(ctx.source.set_enabled(RStr::from(key.as_str()), false)),
    )?;
    ensure(!disabled.enabled, || {
        "set_enabled(false) returned enabled=true".into()
    })?;
    let info = ok("get_key after disabling", ctx.get(&key))?;
    ensure(!info.enabled, || {
        "get_key after set_enabled(false): enabled=true".into()
    })?;
    ensure(info.usage == before.usage, || {
        format!(
            "disabling changed the usage: {:?} -> {:?}",
            before.usage, info.usage
        )
    })?;
    let is_disabled = |e: &KeySourceError| matches!(e, KeySourceError::Disabled { .. });
    expect_err(
        "encrypt with a disabled key",
        "Disabled",
        ctx.encrypt(&key, &pt, b"aad"),
        is_disabled,
    )?;
    expect_err(
        "decrypt with a disabled key",
        "Disabled",
        ctx.decrypt(&key, &enc.iv, &enc.ciphertext, &enc.tag, b"aad"),
        is_disabled,
    )?;

    let enabled = ok(
        "set_enabled(true)",
        res(ctx.source.set_enabled(RStr::from(key.as_str()), true)),
    )?;
    ensure(enabled.enabled, || {
        "set_enabled(true) returned enabled=false".into()
    })?;
    let after = ok("get_key after re-enabling", ctx.get(&key))?;
    ensure(without_counts(&after) == without_counts(&before), || {
        format!("disable + enable did not restore the key exactly: {before:?} -> {after:?}")
    })?;
    let back = ok(
        "decrypt (ciphertext made before disabling) after re-enabling",
        ctx.decrypt(&key, &enc.iv, &enc.ciphertext, &enc.tag, b"aad"),
    )?;
    ensure(back == pt, || {
        "decrypt after re-enabling: wrong plaintext".into()
    })?;
    let enc2 = ok("encrypt after re-enabling", ctx.encrypt(&key, &pt, b""))?;
    let back2 = ok(
        "decrypt after re-enabling",
        ctx.decrypt(&key, &enc2.iv, &enc2.ciphertext, &enc2.tag, b""),
    )?;
    ensure(back2 == pt, || {
        "round trip after re-enabling: wrong plaintext".into()
    })
}

fn check_health_check_key(ctx: &Ctx<'_>) -> Result<(), String> {
    let good = ctx.name("hc-good");
    ok(
        &format!("create_key(NewKey::new('{good}', ALL))"),
        ctx.create_spec(NewKey::new(&good, KeyUsage::ALL)),
    )?;
    ok(
        &format!("validate_health_check_key('{good}') (non-exportable, non-deletable, ALL)"),
        res(ctx
            .source
            .validate_health_check_key(RStr::from(good.as_str()))),
    )?;

    let bad = ctx.name("hc-no-wrap");
    ok(
        &format!("create_key(NewKey::new('{bad}', ENCRYPT|DECRYPT))"),
        ctx.create_spec(NewKey::new(
            &bad,
            KeyUsage::ENCRYPT.union(KeyUsage::DECRYPT),
        )),
    )?;
    let got = res(ctx
        .source
        .validate_health_check_key(RStr::from(bad.as_str())));
    match &got {
        Err(KeySourceError::InvalidKey { problems, .. }) => {
            ensure(
                problems
                    .iter()
                    .any(|p| p.to_ascii_lowercase().contains("wrap")),
                || {
                    format!(
                        "validate_health_check_key(ENCRYPT|DECRYPT key): InvalidKey problems \
                         {problems:?} do not mention the missing wrap usage"
                    )
                },
            )?;
        }
        _ => {
            return Err(unexpected(
                "validate_health_check_key(ENCRYPT|DECRYPT key)",
                "InvalidKey naming the missing wrap usage",
                &got,
            ));
        }
    }

    let unknown = ctx.name("hc-does-not-exist");
    expect_err(
        "validate_health_check_key(unknown)",
        "NotFound",
        res(ctx
            .source
            .validate_health_check_key(RStr::from(unknown.as_str()))),
        is_not_found,
    )
}

fn check_delete_key(ctx: &Ctx<'_>) -> Result<(), String> {
    let key = ctx.key("delete", KeyUsage::ALL)?;
    ok(
        &format!("delete_key('{key}') (deletable)"),
        res(ctx.source.delete_key(RStr::from(key.as_str()))),
    )?;
    expect_err(
        "get_key after delete_key",
        "NotFound",
        ctx.get(&key),
        is_not_found,
    )?;
    let list = ok("list_keys()", res(ctx.source.list_keys()))?;
    ensure(!list.iter().any(|k| k.name.as_str() == key), || {
        format!("list_keys() still lists the deleted key '{key}'")
    })?;

    let keep = ctx.name("non-deletable");
    ok(
        &format!("create_key('{keep}', deletable=false)"),
        ctx.create("non-deletable", KeyUsage::ALL, false),
    )?;
    expect_err(
        "delete_key(non-deletable key)",
        "InvalidKey",
        res(ctx.source.delete_key(RStr::from(keep.as_str()))),
        |e| matches!(e, KeySourceError::InvalidKey { .. }),
    )?;
    let info = ok("get_key after a refused delete_key", ctx.get(&keep))?;
    ensure(info.enabled && !info.deletable, || {
        format!("a refused delete_key changed the key: {info:?}")
    })
}

fn check_concurrency(ctx: &Ctx<'_>) -> Result<(), String> {
    let key = ctx.key("concurrency", KeyUsage::ALL)?;
    let key = key.as_str();
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..8u8)
            .map(|t| {
                scope.spawn(move || -> Result<(), String> {
                    for i in 0..50u32 {
                        let mut pt = vec![t; 1 + (i as usize % 64)];
                        pt.extend_from_slice(&i.to_le_bytes());
                        let aad = [t, i as u8];
                        let what = format!("thread {t}, round {i}");
                        let enc = ok(&format!("{what}: encrypt"), ctx.encrypt(key, &pt, &aad))?;
                        let back = ok(
                            &format!("{what}: decrypt"),
                            ctx.decrypt(key, &enc.iv, &enc.ciphertext, &enc.tag, &aad),
                        )?;
                        ensure(back == pt, || format!("{what}: wrong plaintext"))?;
                    }
                    Ok(())
                })
            })
            .collect();
        handles.into_iter().try_for_each(|h| {
            h.join()
                .unwrap_or_else(|_| Err("a worker thread panicked".to_string()))
        })
    })
}

/// `info` without the attributes that count use (the AES-GCM encryption count,
/// [`crate::invocations::COUNT_ATTRIBUTE`]): they change with every encryption, so
/// comparisons of a key before and after a change ignore them.
fn without_counts(info: &KeyInfo) -> KeyInfo {
    let mut info = info.clone();
    info.attributes
        .retain(|a| a.name.as_str() != crate::invocations::COUNT_ATTRIBUTE);
    info
}

//! keyhold-pkcs11: prepares the PKCS#11 token of a luna key source, without a Rust
//! toolchain: `cargo build --release` builds it next to `keyhold`.
//!
//! ```text
//! keyhold-pkcs11 --module <lib.so> --token <label> <command>
//!   init-token --so-pin-file <file> --pin-file <file>
//!   set-pin --pin-file <old> --new-pin-file <new>
//!   create <name> <usage>[,<usage>...] [--deletable] --pin-file <file>
//!   list --pin-file <file>
//! ```
//!
//! `create` and `list` go through the luna plugin itself, so keys get exactly the
//! template keyhold's key source gives them. `init-token` and `set-pin` call the module
//! directly (`C_InitToken` + `C_InitPIN`, `C_SetPIN`). PINs are read from files (trailing
//! whitespace ignored), never from the command line, and wiped after use. The module's
//! environment (e.g. SoftHSM2's `SOFTHSM2_CONF`) comes from this process's environment.

use std::{path::PathBuf, process::ExitCode};

use cryptoki::{
    context::{CInitializeArgs, CInitializeFlags, Pkcs11},
    error::{Error, RvError},
    session::UserType,
    slot::Slot,
    types::AuthPin,
};
use keyhold_sdk::{KeySourceImpl, KeyUsage, NewKey, testing::MemoryHost};
use plugin_luna::LunaSource;
use zeroize::Zeroizing;

const HELP: &str = "\
keyhold-pkcs11: prepares the PKCS#11 token (partition) of a keyhold luna key source

Usage: keyhold-pkcs11 --module <LIB> --token <LABEL> <COMMAND> [ARGS]

Commands:
  init-token --so-pin-file <FILE> --pin-file <FILE>
      Initialises the token LABEL on a free slot (C_InitToken) with the security
      officer PIN, then sets its user PIN (C_InitPIN). Refused when a token of that
      label exists. (SoftHSM2 offers one free slot; a Luna partition is created with
      Luna's own tools instead.)
  set-pin --pin-file <OLD> --new-pin-file <NEW>
      Changes the user PIN (C_SetPIN: logs in with OLD, sets NEW). Then point keyhold at
      the new PIN (keyhold connection hsm update NAME --pin-file NEW) and reopen its
      sources (keyhold source reopen SOURCE). SoftHSM2 keeps a token's PIN in memory
      per process: a keyhold already running sees a PIN changed here only after a
      restart (an HSM such as Luna checks the PIN itself: no restart).
  create <NAME> <USAGE>[,<USAGE>...] [--deletable] --pin-file <FILE>
      Creates an AES-256 key through the luna plugin (the template keyhold uses: not
      extractable, sensitive, private). USAGE: encrypt, decrypt, wrap, unwrap, or all
      (a store's health-check key needs all four). --deletable lets keyhold delete it.
  list --pin-file <FILE>
      Lists the token's keys: name, usages, bits.

Options:
  --module <LIB>   Path of the PKCS#11 library, e.g. /usr/lib/softhsm/libsofthsm2.so
  --token <LABEL>  Label of the token (1 to 32 characters)
  -h, --help       Prints this help

PIN files hold the PIN alone (trailing whitespace and newlines are ignored); PINs are
never taken from the command line. The module reads its own environment from this
process (SoftHSM2: SOFTHSM2_CONF=/path/to/softhsm2.conf keyhold-pkcs11 ...).

Exit codes: 0 success, 1 the module or the plugin refused (the reason is printed),
2 usage error.";

/// Why the tool failed: the exit code.
enum Failure {
    /// Bad command line (exit 2).
    Usage(String),
    /// The module or the plugin refused (exit 1).
    Refused(String),
}

fn main() -> ExitCode {
    match run(std::env::args().skip(1).collect()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Usage(m)) => {
            eprintln!("keyhold-pkcs11: {m}\n(keyhold-pkcs11 --help shows the usage)");
            ExitCode::from(2)
        }
        Err(Failure::Refused(m)) => {
            eprintln!("keyhold-pkcs11: {m}");
            ExitCode::from(1)
        }
    }
}

/// The parsed command line.
#[derive(Default)]
struct Args {
    module: Option<String>,
    token: Option<String>,
    pin_file: Option<PathBuf>,
    new_pin_file: Option<PathBuf>,
    so_pin_file: Option<PathBuf>,
    deletable: bool,
    help: bool,
    words: Vec<String>,
}

fn parse(args: Vec<String>) -> Result<Args, Failure> {
    let mut a = Args::default();
    let mut it = args.into_iter();
    while let Some(arg) = it.next() {
        let mut value = |flag: &str| {
            it.next()
                .ok_or_else(|| Failure::Usage(format!("{flag} needs a value")))
        };
        match arg.as_str() {
            "--module" => a.module = Some(value("--module")?),
            "--token" => a.token = Some(value("--token")?),
            "--pin-file" => a.pin_file = Some(value("--pin-file")?.into()),
            "--new-pin-file" => a.new_pin_file = Some(value("--new-pin-file")?.into()),
            "--so-pin-file" => a.so_pin_file = Some(value("--so-pin-file")?.into()),
            "--deletable" => a.deletable = true,
            "-h" | "--help" => a.help = true,
            flag if flag.starts_with("--") => {
                return Err(Failure::Usage(format!("unknown option {flag}")));
            }
            _ => a.words.push(arg),
        }
    }
    Ok(a)
}

fn required<'a, T>(v: &'a Option<T>, flag: &str, command: &str) -> Result<&'a T, Failure> {
    v.as_ref()
        .ok_or_else(|| Failure::Usage(format!("{command} needs {flag}")))
}

fn run(args: Vec<String>) -> Result<(), Failure> {
    let a = parse(args)?;
    if a.help || a.words.is_empty() {
        println!("{HELP}");
        return if a.help {
            Ok(())
        } else {
            Err(Failure::Usage("no command given".into()))
        };
    }
    let command = a.words[0].clone();
    let module = required(&a.module, "--module", &command)?;
    let token = required(&a.token, "--token", &command)?;
    let words: Vec<&str> = a.words.iter().map(String::as_str).collect();
    match words.as_slice() {
        ["init-token"] => {
            let so_pin = read_pin(required(&a.so_pin_file, "--so-pin-file", &command)?)?;
            let pin = read_pin(required(&a.pin_file, "--pin-file", &command)?)?;
            init_token(module, token, &so_pin, &pin)?;
            println!("initialised token '{token}' and set its user PIN");
            Ok(())
        }
        ["set-pin"] => {
            let old = read_pin(required(&a.pin_file, "--pin-file", &command)?)?;
            let new = read_pin(required(&a.new_pin_file, "--new-pin-file", &command)?)?;
            if old.as_str() == new.as_str() {
                return Err(Failure::Usage(
                    "the new PIN is the same as the old one".into(),
                ));
            }
            set_pin(module, token, &old, &new)?;
            println!("changed the user PIN of token '{token}'");
            Ok(())
        }
        ["create", name, usages] => {
            let names: Vec<&str> = usages.split(',').map(str::trim).collect();
            let usage = if names == ["all"] {
                KeyUsage::ALL
            } else {
                KeyUsage::parse_list(&names)
                    .map_err(|u| Failure::Usage(format!("unknown usage '{u}'")))?
            };
            let source = open_source(module, token, &a, &command)?;
            let key = source
                .create_key(NewKey {
                    deletable: a.deletable,
                    ..NewKey::new(name, usage)
                })
                .map_err(|e| Failure::Refused(e.to_string()))?;
            println!("created {} ({}, {} bits)", key.name, key.usage, key.bits);
            Ok(())
        }
        ["list"] => {
            let source = open_source(module, token, &a, &command)?;
            let keys = source
                .list_keys()
                .map_err(|e| Failure::Refused(e.to_string()))?;
            for key in keys {
                println!("{}\t{}\t{} bits", key.name, key.usage, key.bits);
            }
            Ok(())
        }
        _ => Err(Failure::Usage(format!(
            "unknown command or wrong arguments: {}",
            a.words.join(" ")
        ))),
    }
}

/// Opens the token as keyhold's luna key source does (PIN from `--pin-file`).
fn open_source(module: &str, token: &str, a: &Args, command: &str) -> Result<LunaSource, Failure> {
    let pin_file = required(&a.pin_file, "--pin-file", command)?;
    let pin_file = std::path::absolute(pin_file)
        .map_err(|e| Failure::Usage(format!("{}: {e}", pin_file.display())))?;
    let config = serde_json::json!({
        "module": module,
        "token_label": token,
        "pin_file": pin_file,
        "pool_size": 1,
    });
    LunaSource::open(&config.to_string(), MemoryHost::new().boxed())
        .map_err(|e| Failure::Refused(e.to_string()))
}

/// A PIN file's content without trailing whitespace (wiped on drop).
fn read_pin(file: &PathBuf) -> Result<Zeroizing<String>, Failure> {
    let text =
        Zeroizing::new(std::fs::read_to_string(file).map_err(|e| {
            Failure::Usage(format!("cannot read PIN file {}: {e}", file.display()))
        })?);
    let pin = Zeroizing::new(text.trim_end().to_string());
    if pin.is_empty() {
        return Err(Failure::Usage(format!(
            "PIN file {} is empty",
            file.display()
        )));
    }
    Ok(pin)
}

fn auth(pin: &Zeroizing<String>) -> AuthPin {
    AuthPin::from(pin.as_str().to_string())
}

/// Loads and initialises the module.
fn module_context(module: &str) -> Result<Pkcs11, Failure> {
    let ctx = Pkcs11::new(module)
        .map_err(|e| Failure::Refused(format!("cannot load PKCS#11 module {module}: {e}")))?;
    match ctx.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)) {
        Ok(()) | Err(Error::Pkcs11(RvError::CryptokiAlreadyInitialized, _)) => Ok(ctx),
        Err(e) => Err(Failure::Refused(format!(
            "C_Initialize of {module} failed: {e}"
        ))),
    }
}

/// The slot of the token labelled `label`, or `None`; the labels seen, for errors.
fn find_token(ctx: &Pkcs11, label: &str) -> Result<(Option<Slot>, Vec<String>), Failure> {
    let slots = ctx
        .get_slots_with_token()
        .map_err(|e| Failure::Refused(format!("C_GetSlotList failed: {e}")))?;
    let mut seen = Vec::new();
    for slot in slots {
        if let Ok(info) = ctx.get_token_info(slot) {
            if !info.token_initialized() {
                continue;
            }
            let found = info.label().trim_end();
            if found == label {
                return Ok((Some(slot), seen));
            }
            seen.push(found.to_string());
        }
    }
    Ok((None, seen))
}

/// A readable explanation of a module error (the PIN itself never appears).
fn explain(step: &str, e: Error) -> Failure {
    let hint = match &e {
        Error::Pkcs11(RvError::PinIncorrect, _) => " (the PIN is wrong)",
        Error::Pkcs11(RvError::PinLocked, _) => " (the PIN is locked: too many wrong tries)",
        Error::Pkcs11(RvError::PinLenRange, _) => {
            " (the new PIN is too short or too long for this token)"
        }
        Error::Pkcs11(RvError::PinInvalid, _) => " (the new PIN has characters the token refuses)",
        _ => "",
    };
    Failure::Refused(format!("{step} failed: {e}{hint}"))
}

fn init_token(
    module: &str,
    label: &str,
    so_pin: &Zeroizing<String>,
    pin: &Zeroizing<String>,
) -> Result<(), Failure> {
    if label.is_empty() || label.len() > 32 {
        return Err(Failure::Usage(
            "--token must be 1 to 32 characters (a PKCS#11 token label)".into(),
        ));
    }
    let ctx = module_context(module)?;
    if let (Some(_), _) = find_token(&ctx, label)? {
        return Err(Failure::Refused(format!(
            "a token labelled '{label}' exists already (init-token would wipe its keys: \
             choose another label)"
        )));
    }
    let free = ctx
        .get_all_slots()
        .map_err(|e| Failure::Refused(format!("C_GetSlotList failed: {e}")))?
        .into_iter()
        .find(|s| {
            ctx.get_token_info(*s)
                .map(|i| !i.token_initialized())
                .unwrap_or(false)
        })
        .ok_or_else(|| {
            Failure::Refused(format!(
                "{module} offers no slot with an uninitialised token (create the partition \
                 with the HSM vendor's tools)"
            ))
        })?;
    ctx.init_token(free, &auth(so_pin), label)
        .map_err(|e| explain("C_InitToken", e))?;
    let (slot, _) = find_token(&ctx, label)?;
    let slot = slot.ok_or_else(|| {
        Failure::Refused(format!(
            "token '{label}' was initialised but the module does not list it"
        ))
    })?;
    let session = ctx
        .open_rw_session(slot)
        .map_err(|e| explain("C_OpenSession", e))?;
    session
        .login(UserType::So, Some(&auth(so_pin)))
        .map_err(|e| explain("security officer C_Login", e))?;
    session
        .init_pin(&auth(pin))
        .map_err(|e| explain("C_InitPIN", e))?;
    session.logout().map_err(|e| explain("C_Logout", e))?;
    Ok(())
}

fn set_pin(
    module: &str,
    label: &str,
    old: &Zeroizing<String>,
    new: &Zeroizing<String>,
) -> Result<(), Failure> {
    let ctx = module_context(module)?;
    let (slot, seen) = find_token(&ctx, label)?;
    let slot = slot.ok_or_else(|| {
        Failure::Refused(format!(
            "no token labelled '{label}' (tokens present: {seen:?}; for SoftHSM2, is \
             SOFTHSM2_CONF set?)"
        ))
    })?;
    let session = ctx
        .open_rw_session(slot)
        .map_err(|e| explain("C_OpenSession", e))?;
    session
        .login(UserType::User, Some(&auth(old)))
        .map_err(|e| explain("user C_Login with the old PIN", e))?;
    session
        .set_pin(&auth(old), &auth(new))
        .map_err(|e| explain("C_SetPIN", e))?;
    session.logout().map_err(|e| explain("C_Logout", e))?;
    Ok(())
}

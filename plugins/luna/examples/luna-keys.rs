//! luna-keys: creates and lists keys of a PKCS#11 token through the plugin itself
//! (used by scripts/softhsm-demo.sh).
//!
//! ```text
//! luna-keys --module <lib.so> --token <label> --pin-file <file> [--env NAME=VALUE]...
//!           create <name> <usage>[,<usage>...] [--deletable]
//! luna-keys ... list
//! ```
//! Usages: encrypt, decrypt, wrap, unwrap, all.

use std::process::ExitCode;

use keyhold_sdk::{KeySourceImpl, KeyUsage, NewKey, testing::MemoryHost};
use plugin_luna::LunaSource;

const USAGE: &str = "usage: luna-keys --module <lib.so> --token <label> --pin-file <file> \
                     [--env NAME=VALUE]... (create <name> <usage,...> [--deletable] | list)";

fn main() -> ExitCode {
    match run(std::env::args().skip(1).collect()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("luna-keys: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: Vec<String>) -> Result<(), String> {
    let mut config = serde_json::Map::new();
    let mut env = serde_json::Map::new();
    let mut rest = Vec::new();
    let mut deletable = false;
    let mut it = args.into_iter();
    while let Some(arg) = it.next() {
        let mut value = |flag: &str| {
            it.next()
                .ok_or_else(|| format!("{flag} needs a value\n{USAGE}"))
        };
        match arg.as_str() {
            "--module" => {
                config.insert("module".into(), value("--module")?.into());
            }
            "--token" => {
                config.insert("token_label".into(), value("--token")?.into());
            }
            "--pin-file" => {
                config.insert("pin_file".into(), value("--pin-file")?.into());
            }
            "--env" => {
                let kv = value("--env")?;
                let (k, v) = kv
                    .split_once('=')
                    .ok_or_else(|| format!("--env wants NAME=VALUE, got '{kv}'"))?;
                env.insert(k.into(), v.into());
            }
            "--deletable" => deletable = true,
            "-h" | "--help" => return Err(USAGE.into()),
            _ => rest.push(arg),
        }
    }
    config.insert("module_env".into(), env.into());
    config.insert("pool_size".into(), 1.into());
    let source = LunaSource::open(
        &serde_json::Value::Object(config).to_string(),
        MemoryHost::new().boxed(),
    )
    .map_err(|e| e.to_string())?;
    match rest
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["create", name, usages] => {
            let names: Vec<&str> = usages.split(',').map(str::trim).collect();
            let usage = if names == ["all"] {
                KeyUsage::ALL
            } else {
                KeyUsage::parse_list(&names).map_err(|u| format!("unknown usage '{u}'"))?
            };
            let key = source
                .create_key(NewKey {
                    deletable,
                    ..NewKey::new(name, usage)
                })
                .map_err(|e| e.to_string())?;
            println!("created {} ({}, {} bits)", key.name, key.usage, key.bits);
            Ok(())
        }
        ["list"] => {
            for key in source.list_keys().map_err(|e| e.to_string())? {
                println!("{}\t{}\t{} bits", key.name, key.usage, key.bits);
            }
            Ok(())
        }
        _ => Err(USAGE.into()),
    }
}

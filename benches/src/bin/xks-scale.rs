//! `xks-scale`: measures keyhold at scale (issue: 10,000 key stores and 1,000,000 HYOK
//! keys): start-up time, resident memory, how long one change (block a store, add a
//! credential) takes to reach the data plane, and then serves the populated data so
//! `xks-load` can measure encrypt throughput at that size.
//!
//! ```text
//! xks-scale populate --data-dir /tmp/scale --stores 10000 --keys-per-store 100
//! xks-scale measure  --data-dir /tmp/scale --plugins-dir target/release [--hold-secs 60]
//! ```
//! Every populated store serves prefix `scale/<n>`, has the two conformance
//! credentials, and keys `k0..k<m>` bound to the ctm source key `scale-key`.

use std::{
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use clap::{Parser, Subcommand};
use keyhold::{
    config::Config,
    model::{self, CredentialRecord, HyokKeyRecord, StoreRecord, keys},
    secrets::{MasterKey, MasterKeySource},
    store::{EmbeddedStore, Store, Write},
};
use keyhold_benches::Credential;

#[derive(Parser)]
#[command(about = "keyhold scale measurements")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Writes N stores with M keys each straight into a fresh data directory.
    Populate {
        #[arg(long)]
        data_dir: PathBuf,
        #[arg(long, default_value_t = 10_000)]
        stores: usize,
        #[arg(long, default_value_t = 100)]
        keys_per_store: usize,
    },
    /// Starts keyhold on the data directory and measures; then serves for a while.
    Measure {
        #[arg(long)]
        data_dir: PathBuf,
        /// Directory holding libplugin_ctm.so.
        #[arg(long)]
        plugins_dir: PathBuf,
        /// Listener address for the hold phase.
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: String,
        /// Seconds to keep serving after measuring (for xks-load).
        #[arg(long, default_value_t = 0)]
        hold_secs: u64,
    },
}

fn config(data_dir: &Path, plugins_dir: &Path, listen: &str) -> String {
    let cred = Credential::a();
    format!(
        r#"
data_dir = "{d}"
[plugins]
dir = "{p}"
[xks]
listen = "{listen}"
plain_http = true
[sources.ctm]
plugin = "ctm"
config = {{ master_key_file = "{d}/ctm.key", generate_master_key = true }}
[[stores]]
name = "acme"
source = "ctm"
uri_path_prefix = "tenants/acme"
health_check_key = "acme-health"
[[stores.credentials]]
access_key_id = "{akid}"
secret = "{secret}"
[[stores.keys]]
id = "scale-key"
usage = ["encrypt", "decrypt", "wrap", "unwrap"]
"#,
        d = data_dir.display(),
        p = plugins_dir.display(),
        akid = cred.access_key_id,
        secret = cred.secret,
    )
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1).map(str::to_string))
        })
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// Serializes one of keyhold's own record types (cannot fail).
macro_rules! json {
    ($v:expr) => {
        serde_json::to_vec($v).expect("records serialize")
    };
}

fn populate(data_dir: &Path, stores: usize, keys_per_store: usize) -> Result<(), String> {
    std::fs::create_dir_all(data_dir).map_err(|e| e.to_string())?;
    let store = EmbeddedStore::open(&data_dir.join("keyhold.redb")).map_err(|e| e.to_string())?;
    let master = MasterKey::load(&MasterKeySource::GeneratedFile(data_dir.join("master.key")))
        .map_err(|e| e.to_string())?;
    let started = Instant::now();
    for n in 0..stores {
        let id = format!("scale{n:06}");
        let prefix = format!("scale/{n}");
        let rec = StoreRecord {
            id: id.clone(),
            name: format!("scale-{n}"),
            source: "ctm".into(),
            plugin: "ctm".into(),
            container: None,
            kind: model::StoreKind::Local,
            uri_path_prefix: prefix.clone(),
            health_check_key: "acme-health".into(),
            max_credentials: 20,
            blocked: false,
            success_audit: false,
            mtls: false,
            mtls_ca_pem: None,
            mtls_cns: Vec::new(),
            location: model::XksLocation::Unset,
            quota: None,
            aws: None,
            region: None,
            rotation_schedule: None,
            created_at: model::now_unix(),
        };
        let mut writes = vec![
            Write::Put(keys::store(&id), json!(&rec)),
            Write::Put(keys::store_name_index(&rec.name), id.clone().into_bytes()),
            Write::Put(keys::prefix_index(&prefix), id.clone().into_bytes()),
        ];
        for Credential {
            access_key_id,
            secret,
        } in [Credential::a(), Credential::b()]
        {
            let key = keys::credential(&id, &access_key_id);
            let cred = CredentialRecord {
                access_key_id,
                sealed_secret: master.seal(secret.as_bytes(), &key),
                created_at_ns: 0,
                origin: "scale".into(),
            };
            writes.push(Write::Put(key, json!(&cred)));
        }
        for k in 0..keys_per_store {
            let ext = format!("k{k}");
            let hyok = HyokKeyRecord {
                external_id: ext.clone(),
                source_key: "scale-key".into(),
                blocked: false,
                aws: None,
                created_at: 0,
                allow_weak_key: false,
            };
            writes.push(Write::Put(keys::hyok_key(&id, &ext), json!(&hyok)));
        }
        store.commit(&[], writes).map_err(|e| e.to_string())?;
        if n % 1000 == 999 {
            eprintln!("{} stores written ({:.1?})", n + 1, started.elapsed());
        }
    }
    println!(
        "populated {stores} stores x {keys_per_store} keys = {} HYOK keys in {:.1?}",
        stores * keys_per_store,
        started.elapsed()
    );
    Ok(())
}

async fn measure(
    data_dir: &Path,
    plugins_dir: &Path,
    listen: &str,
    hold: u64,
) -> Result<(), String> {
    let cfg =
        Config::from_toml(&config(data_dir, plugins_dir, listen)).map_err(|e| e.to_string())?;
    let rss_before = rss_kib();
    let started = Instant::now();
    let running = keyhold::app::start(cfg).await.map_err(|e| e.to_string())?;
    let startup = started.elapsed();
    let rss_after = rss_kib();
    let routing = running.service.routing();
    let key_count: usize = routing.stores().map(|r| r.keys.len()).sum();
    println!(
        "start-up: {startup:.2?} for {} stores / {key_count} HYOK keys; RSS {} MiB (before start {} MiB)",
        routing.len(),
        rss_after / 1024,
        rss_before / 1024
    );
    // One change -> data plane: block a store, then add a credential.
    let store = running.store.clone();
    let target = routing
        .stores()
        .find(|r| r.record.name.starts_with("scale-"))
        .map(|r| r.record.clone())
        .ok_or("no populated store")?;
    let mut blocked = target.clone();
    blocked.blocked = true;
    let t = Instant::now();
    let rev = store
        .put(&keys::store(&target.id), json!(&blocked))
        .map_err(|e| e.to_string())?;
    let committed = t.elapsed();
    while running.service.routing().revision < rev {
        tokio::time::sleep(Duration::from_micros(50)).await;
    }
    let visible = t.elapsed();
    let r = running.service.routing();
    let now_blocked = r
        .by_id(&target.id)
        .map(|r| r.record.blocked)
        .unwrap_or(false);
    println!(
        "block a store: commit {committed:.2?}, visible to the data plane after {visible:.2?} (blocked={now_blocked})"
    );
    let master = MasterKey::load(&MasterKeySource::GeneratedFile(data_dir.join("master.key")))
        .map_err(|e| e.to_string())?;
    let akid = model::generate_access_key_id();
    let key = keys::credential(&target.id, &akid);
    let cred = CredentialRecord {
        access_key_id: akid.clone(),
        sealed_secret: master.seal(model::generate_secret().as_bytes(), &key),
        created_at_ns: 0,
        origin: "scale".into(),
    };
    let t = Instant::now();
    let rev = store.put(&key, json!(&cred)).map_err(|e| e.to_string())?;
    let committed = t.elapsed();
    while running.service.routing().revision < rev {
        tokio::time::sleep(Duration::from_micros(50)).await;
    }
    let visible = t.elapsed();
    let has = running
        .service
        .routing()
        .by_id(&target.id)
        .map(|r| r.credentials.contains_key(&akid))
        .unwrap_or(false);
    println!(
        "add a credential: commit {committed:.2?}, visible to the data plane after {visible:.2?} (present={has})"
    );
    // Restore the store so the hold phase can serve it.
    store
        .put(&keys::store(&target.id), json!(&target))
        .map_err(|e| e.to_string())?;
    if hold > 0 {
        println!(
            "serving on http://{} for {hold} s: e.g. xks-load closed --url http://{}/scale/0/kms/xks/v1 --key k0",
            running.xks_addr, running.xks_addr
        );
        tokio::time::sleep(Duration::from_secs(hold)).await;
    }
    let t = Instant::now();
    running.shutdown().await;
    println!("shutdown: {:.2?}", t.elapsed());
    Ok(())
}

fn main() {
    let cli = Cli::parse();
    let result = match cli.command {
        Cmd::Populate {
            data_dir,
            stores,
            keys_per_store,
        } => populate(&data_dir, stores, keys_per_store),
        Cmd::Measure {
            data_dir,
            plugins_dir,
            listen,
            hold_secs,
        } => tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .map_err(|e| e.to_string())
            .and_then(|rt| rt.block_on(measure(&data_dir, &plugins_dir, &listen, hold_secs))),
    };
    if let Err(e) = result {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

//! Config-file driven setup: creates or reconciles the key sources, key stores,
//! credentials and keys a config file declares, at start.
//!
//! Reconciling is additive and never destructive: objects the file does not mention
//! are left alone. It refuses (and keyhold does not start) when the file contradicts
//! an immutable fact: a store's key source, a source's plugin or container, a store's
//! URI path prefix, a key's usage or source key.

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
};

use keyhold_sdk::{KeySourceError, KeyUsage, NewKey};
use zeroize::Zeroizing;

use crate::{
    config::{Config, CredentialDecl, StoreDecl},
    model::{self, CredentialRecord, HyokKeyRecord, SourceRecord, StoreRecord, keys},
    secrets::MasterKey,
    store::{Condition, Store, StoreError, Write},
    xks::Sources,
};

/// Why the declared configuration cannot be applied.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReconcileError {
    /// A source's plugin (or container) differs from what existing stores are bound to.
    #[error(
        "key source '{source_name}' was created with {what} '{recorded}'; the config now says '{configured}': \
         a key source's binding is immutable (declare a new source under another name instead)"
    )]
    SourceChanged {
        /// The source.
        source_name: String,
        /// `plugin` or `container`.
        what: &'static str,
        /// What the store holds.
        recorded: String,
        /// What the config says.
        configured: String,
    },
    /// A store exists with another source than the config names.
    #[error(
        "key store '{store}' is bound to key source '{bound}' forever; the config names '{configured}': \
         the source binding is immutable"
    )]
    StoreSourceChanged {
        /// The store.
        store: String,
        /// Its source.
        bound: String,
        /// The config's.
        configured: String,
    },
    /// A store's URI path prefix would change.
    #[error(
        "key store '{store}' is served at prefix '{current}'; the config says '{configured}': the URI path prefix cannot change"
    )]
    PrefixChanged {
        /// The store.
        store: String,
        /// Current prefix.
        current: String,
        /// The config's.
        configured: String,
    },
    /// Another store already uses the prefix.
    #[error("URI path prefix '{prefix}' of key store '{store}' is already used by another store")]
    PrefixTaken {
        /// The store.
        store: String,
        /// The prefix.
        prefix: String,
    },
    /// A source key exists with another usage than declared.
    #[error(
        "key '{key}' of store '{store}': source key '{source_key}' has usage {actual}, the config declares {declared}; \
         a key's usage cannot change"
    )]
    KeyUsageMismatch {
        /// The store.
        store: String,
        /// The external key id.
        key: String,
        /// The source key.
        source_key: String,
        /// Its usage.
        actual: String,
        /// Declared usage.
        declared: String,
    },
    /// An external key is bound to another source key than declared.
    #[error(
        "key '{key}' of store '{store}' is bound to source key '{bound}'; the config says '{configured}'"
    )]
    KeyBindingChanged {
        /// The store.
        store: String,
        /// The external key id.
        key: String,
        /// Its source key.
        bound: String,
        /// The config's.
        configured: String,
    },
    /// A source key would back two HYOK keys, or a health-check key a HYOK key.
    #[error(
        "source key '{source_key}' of source '{source_name}' backs one HYOK key at most (never a health-check key): {reason}"
    )]
    SourceKeyBinding {
        /// The key source.
        source_name: String,
        /// The source key.
        source_key: String,
        /// Who declares or holds it (names both stores).
        reason: String,
    },
    /// The health-check key is not acceptable.
    #[error("key store '{store}': health-check key '{key}' is refused: {reason}")]
    HealthCheckKey {
        /// The store.
        store: String,
        /// The key.
        key: String,
        /// The plugin's reason (names each failing attribute).
        reason: KeySourceError,
    },
    /// A key source call failed.
    #[error("key store '{store}': key source '{source_name}': {reason}")]
    Source {
        /// The store.
        store: String,
        /// The source.
        source_name: String,
        /// What failed.
        reason: String,
    },
    /// A declared secret could not be read.
    #[error("{key}: {reason}")]
    Secret {
        /// The config key.
        key: String,
        /// Why.
        reason: String,
    },
    /// The durable store failed.
    #[error("store: {0}")]
    Store(#[from] StoreError),
    /// A declared AWS connection, account or store link cannot be made.
    #[error("{what}: {reason}")]
    Declared {
        /// The declaration (e.g. `aws.accounts.111122223333`).
        what: String,
        /// Why.
        reason: String,
    },
    /// A file could not be written.
    #[error("{path}: {reason}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
}

/// What reconciling did that an operator must see.
#[derive(Debug, Default)]
pub struct Outcome {
    /// Credentials generated for stores that had none: (store name, credentials file).
    pub generated_credentials: Vec<(String, PathBuf)>,
    /// Stores skipped because their key source is not available: (store, reason).
    pub skipped: Vec<(String, String)>,
}

fn json<T: serde::Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).unwrap_or_default()
}

fn load<T: serde::de::DeserializeOwned>(
    store: &dyn Store,
    key: &str,
) -> Result<Option<T>, StoreError> {
    match store.get(key)? {
        None => Ok(None),
        Some(entry) => {
            serde_json::from_slice(&entry.value)
                .map(Some)
                .map_err(|e| StoreError::Corrupt {
                    key: key.to_string(),
                    message: e.to_string(),
                })
        }
    }
}

/// Applies the declarations of `cfg`. Call it from a blocking thread.
pub fn reconcile(
    cfg: &Config,
    store: &dyn Store,
    master: &MasterKey,
    sources: &Sources,
) -> Result<Outcome, ReconcileError> {
    let mut outcome = Outcome::default();
    bindings::check_declared(&cfg.stores)?;
    bindings::backfill(store)?;
    for (name, decl) in &cfg.sources {
        let container = decl
            .config
            .get("token_label")
            .and_then(|v| v.as_str())
            .map(str::to_string);
        let key = keys::source(name);
        match load::<SourceRecord>(store, &key)? {
            Some(rec) => {
                if rec.plugin != decl.plugin {
                    return Err(ReconcileError::SourceChanged {
                        source_name: name.clone(),
                        what: "plugin",
                        recorded: rec.plugin,
                        configured: decl.plugin.clone(),
                    });
                }
                if rec.container != container {
                    return Err(ReconcileError::SourceChanged {
                        source_name: name.clone(),
                        what: "container",
                        recorded: rec.container.unwrap_or_default(),
                        configured: container.unwrap_or_default(),
                    });
                }
            }
            None => {
                let rec = SourceRecord {
                    name: name.clone(),
                    plugin: decl.plugin.clone(),
                    container,
                    created_at: model::now_unix(),
                    hsm_connection: None,
                    config: None,
                    generation: 0,
                };
                store.commit(
                    &[Condition::Absent(key.clone())],
                    vec![Write::Put(key, json(&rec))],
                )?;
            }
        }
    }
    for decl in &cfg.stores {
        let source = match sources.get(&decl.source) {
            Ok(s) => s,
            Err(reason) => {
                // The store may still exist: its source binding must still match.
                if let Some(id) = find_store_id(store, &decl.name)? {
                    check_binding(store, &id, decl)?;
                }
                tracing::error!(store = %decl.name, source = %decl.source, "not reconciling key store: {reason}");
                outcome.skipped.push((decl.name.clone(), reason));
                continue;
            }
        };
        let src = source.source();
        let record = reconcile_store(cfg, store, decl, src)?;
        reconcile_keys(store, decl, &record, src)?;
        if let Some(path) = reconcile_credentials(cfg, store, master, decl, &record)? {
            outcome
                .generated_credentials
                .push((decl.name.clone(), path));
        }
    }
    Ok(outcome)
}

impl ReconcileError {
    /// Whether the error may come from another node applying the same declarations at
    /// the same time (nodes of a cluster starting together on an empty store): a
    /// condition that failed, an object or a path prefix found taken. Applying the
    /// declarations again then finds what the other node made.
    pub fn may_be_a_race(&self) -> bool {
        matches!(
            self,
            ReconcileError::Store(StoreError::Conflict { .. })
                | ReconcileError::PrefixTaken { .. }
                | ReconcileError::Declared { .. }
                | ReconcileError::Source { .. }
        )
    }
}

/// How many times the declarations are applied before an error that
/// [`ReconcileError::may_be_a_race`] is believed.
pub const DECLARE_ATTEMPTS: u32 = 3;

pub mod aws;
pub mod bindings;

fn find_store_id(store: &dyn Store, name: &str) -> Result<Option<String>, StoreError> {
    Ok(store
        .get(&keys::store_name_index(name))?
        .map(|e| String::from_utf8_lossy(&e.value).into_owned()))
}

fn check_binding(
    store: &dyn Store,
    id: &str,
    decl: &StoreDecl,
) -> Result<Option<StoreRecord>, ReconcileError> {
    let Some(rec) = load::<StoreRecord>(store, &keys::store(id))? else {
        return Ok(None);
    };
    if rec.source != decl.source {
        return Err(ReconcileError::StoreSourceChanged {
            store: decl.name.clone(),
            bound: rec.source,
            configured: decl.source.clone(),
        });
    }
    Ok(Some(rec))
}

fn source_err(decl: &StoreDecl, e: impl std::fmt::Display) -> ReconcileError {
    ReconcileError::Source {
        store: decl.name.clone(),
        source_name: decl.source.clone(),
        reason: e.to_string(),
    }
}

/// Makes sure the health-check key exists (creating it with the usage a health-check
/// key needs) and that the plugin accepts it.
fn ensure_health_check_key(
    decl: &StoreDecl,
    src: &keyhold_sdk::KeySourceBox,
) -> Result<(), ReconcileError> {
    let name = decl.health_check_key.as_str();
    match src.get_key(name.into()).into_result() {
        Ok(_) => {}
        Err(KeySourceError::NotFound { .. }) => {
            match src
                .create_key(NewKey::new(name, KeyUsage::ALL))
                .into_result()
            {
                Ok(_) => {
                    tracing::info!(store = %decl.name, key = name, "created health-check key");
                }
                // Another node of a cluster starting at the same time made it.
                Err(KeySourceError::AlreadyExists { .. }) => {}
                Err(e) => {
                    return Err(source_err(
                        decl,
                        format!("creating health-check key '{name}': {e}"),
                    ));
                }
            }
        }
        Err(e) => return Err(source_err(decl, e)),
    }
    src.validate_health_check_key(name.into())
        .into_result()
        .map_err(|reason| ReconcileError::HealthCheckKey {
            store: decl.name.clone(),
            key: name.to_string(),
            reason,
        })
}

fn reconcile_store(
    cfg: &Config,
    store: &dyn Store,
    decl: &StoreDecl,
    src: &keyhold_sdk::KeySourceBox,
) -> Result<StoreRecord, ReconcileError> {
    let plugin = cfg
        .sources
        .get(&decl.source)
        .map(|s| s.plugin.clone())
        .unwrap_or_default();
    let wanted_prefix = decl
        .uri_path_prefix
        .as_deref()
        .map(model::normalize_uri_path_prefix)
        .transpose()
        .map_err(|e| source_err(decl, e))?;
    let existing = match find_store_id(store, &decl.name)? {
        Some(id) => check_binding(store, &id, decl)?,
        None => None,
    };
    ensure_health_check_key(decl, src)?;
    if let Some(mut rec) = existing {
        if let Some(p) = wanted_prefix {
            if p != rec.uri_path_prefix {
                return Err(ReconcileError::PrefixChanged {
                    store: decl.name.clone(),
                    current: rec.uri_path_prefix,
                    configured: p,
                });
            }
        }
        let max = decl.max_credentials.unwrap_or(rec.max_credentials);
        // The AWS side is declared additively: an unlinked store takes the declared
        // region and location; a linked one keeps what AWS KMS knows.
        let (region, location) = match &rec.aws {
            None => (
                decl.region.clone().or(rec.region.clone()),
                decl.location.clone().unwrap_or(rec.location.clone()),
            ),
            Some(_) => (rec.region.clone(), rec.location.clone()),
        };
        if rec.health_check_key != decl.health_check_key
            || rec.max_credentials != max
            || rec.quota != decl.quota
            || rec.region != region
            || rec.location != location
        {
            rec.health_check_key = decl.health_check_key.clone();
            rec.max_credentials = max;
            rec.quota = decl.quota;
            rec.region = region;
            rec.location = location;
            store.put(&keys::store(&rec.id), json(&rec))?;
        }
        if let Some(account) = &decl.account {
            if store.get(&keys::store_account(&rec.id))?.is_none() {
                store.put(&keys::store_account(&rec.id), account.clone().into_bytes())?;
            }
        }
        return Ok(rec);
    }
    let id = model::generate_id();
    let prefix = wanted_prefix.unwrap_or_else(|| format!("keystores/{id}"));
    let container = cfg
        .sources
        .get(&decl.source)
        .and_then(|s| s.config.get("token_label"))
        .and_then(|v| v.as_str())
        .map(str::to_string);
    let rec = StoreRecord {
        id: id.clone(),
        name: decl.name.clone(),
        source: decl.source.clone(),
        plugin,
        container,
        kind: model::StoreKind::Local,
        uri_path_prefix: prefix.clone(),
        health_check_key: decl.health_check_key.clone(),
        max_credentials: decl.max_credentials.unwrap_or(model::MAX_CREDENTIALS),
        blocked: false,
        success_audit: false,
        mtls: false,
        mtls_ca_pem: None,
        mtls_cns: Vec::new(),
        location: decl.location.clone().unwrap_or_default(),
        quota: decl.quota,
        aws: None,
        region: decl.region.clone(),
        rotation_schedule: None,
        created_at: model::now_unix(),
    };
    let conditions = [
        Condition::Absent(keys::store(&id)),
        Condition::Absent(keys::store_name_index(&decl.name)),
        Condition::Absent(keys::prefix_index(&prefix)),
    ];
    let mut writes = vec![
        Write::Put(keys::store(&id), json(&rec)),
        Write::Put(keys::store_name_index(&decl.name), id.clone().into_bytes()),
        Write::Put(keys::prefix_index(&prefix), id.clone().into_bytes()),
    ];
    if let Some(account) = &decl.account {
        writes.push(Write::Put(
            keys::store_account(&id),
            account.clone().into_bytes(),
        ));
    }
    match store.commit(&conditions, writes) {
        Ok(_) => {}
        Err(StoreError::Conflict { key }) if key.starts_with("index/prefix/") => {
            return Err(ReconcileError::PrefixTaken {
                store: decl.name.clone(),
                prefix,
            });
        }
        Err(e) => return Err(e.into()),
    }
    tracing::info!(store = %rec.name, prefix = %rec.uri_path_prefix, "created key store");
    Ok(rec)
}

fn reconcile_keys(
    store: &dyn Store,
    decl: &StoreDecl,
    rec: &StoreRecord,
    src: &keyhold_sdk::KeySourceBox,
) -> Result<(), ReconcileError> {
    for k in &decl.keys {
        let usage = KeyUsage::parse_list(&k.usage)
            .map_err(|bad| source_err(decl, format!("unknown usage {bad}")))?;
        let source_key = k.source_key.clone().unwrap_or_else(|| k.id.clone());
        let info = match src.get_key(source_key.as_str().into()).into_result() {
            Ok(info) => info,
            Err(KeySourceError::NotFound { .. }) => src
                .create_key(NewKey::new(&source_key, usage))
                .into_result()
                .map_err(|e| source_err(decl, format!("creating key '{source_key}': {e}")))?,
            Err(e) => return Err(source_err(decl, e)),
        };
        if info.usage != usage {
            return Err(ReconcileError::KeyUsageMismatch {
                store: decl.name.clone(),
                key: k.id.clone(),
                source_key,
                actual: info.usage.to_string(),
                declared: usage.to_string(),
            });
        }
        if info.enabled != k.enabled {
            src.set_enabled(source_key.as_str().into(), k.enabled)
                .into_result()
                .map_err(|e| source_err(decl, e))?;
        }
        let key = keys::hyok_key(&rec.id, &k.id);
        match load::<HyokKeyRecord>(store, &key)? {
            Some(existing) if existing.source_key != source_key => {
                return Err(ReconcileError::KeyBindingChanged {
                    store: decl.name.clone(),
                    key: k.id.clone(),
                    bound: existing.source_key,
                    configured: source_key,
                });
            }
            Some(_) => bindings::bind(store, rec, &k.id, &source_key)?,
            None => {
                bindings::bind(store, rec, &k.id, &source_key)?;
                let hyok = HyokKeyRecord {
                    external_id: k.id.clone(),
                    source_key,
                    blocked: false,
                    aws: None,
                    created_at: model::now_unix(),
                    allow_weak_key: false,
                };
                store.commit(
                    &[Condition::Absent(key.clone())],
                    vec![Write::Put(key, json(&hyok))],
                )?;
            }
        }
    }
    Ok(())
}

fn resolve_secret(decl: &CredentialDecl, key: &str) -> Result<Zeroizing<String>, ReconcileError> {
    let err = |reason: String| ReconcileError::Secret {
        key: key.to_string(),
        reason,
    };
    let secret = if let Some(s) = &decl.secret {
        Zeroizing::new(s.clone())
    } else if let Some(var) = &decl.secret_env {
        Zeroizing::new(
            std::env::var(var)
                .map_err(|_| err(format!("environment variable {var} is not set")))?,
        )
    } else if let Some(path) = &decl.secret_file {
        let text = Zeroizing::new(
            std::fs::read_to_string(path).map_err(|e| err(format!("{}: {e}", path.display())))?,
        );
        Zeroizing::new(text.trim().to_string())
    } else {
        return Err(err("no secret given".into()));
    };
    model::validate_secret(&secret).map_err(|e| err(e.to_string()))?;
    Ok(secret)
}

fn now_ns() -> i128 {
    time::OffsetDateTime::now_utc().unix_timestamp_nanos()
}

fn reconcile_credentials(
    cfg: &Config,
    store: &dyn Store,
    master: &MasterKey,
    decl: &StoreDecl,
    rec: &StoreRecord,
) -> Result<Option<PathBuf>, ReconcileError> {
    let idx = cfg
        .stores
        .iter()
        .position(|s| s.name == decl.name)
        .unwrap_or(0);
    let mut existing: HashMap<String, (CredentialRecord, u64)> = HashMap::new();
    for entry in store.scan(&keys::credentials_of(&rec.id))? {
        if let Ok(c) = serde_json::from_slice::<CredentialRecord>(&entry.value) {
            existing.insert(c.access_key_id.clone(), (c, entry.revision));
        }
    }
    for (j, c) in decl.credentials.iter().enumerate() {
        let secret = resolve_secret(c, &format!("stores[{idx}].credentials[{j}].secret"))?;
        let key = keys::credential(&rec.id, &c.access_key_id);
        if let Some((old, _)) = existing.get(&c.access_key_id) {
            let same = master
                .open(&old.sealed_secret, &key)
                .map(|s| s.as_slice() == secret.as_bytes())
                .unwrap_or(false);
            if same {
                continue;
            }
        }
        // Keep within max credentials: evict the oldest credentials the config does not declare.
        if !existing.contains_key(&c.access_key_id) {
            let undeclared: Vec<(String, i128)> = existing
                .values()
                .filter(|(e, _)| {
                    !decl
                        .credentials
                        .iter()
                        .any(|d| d.access_key_id == e.access_key_id)
                })
                .map(|(e, _)| (e.access_key_id.clone(), e.created_at_ns))
                .collect();
            let room = rec.max_credentials as usize;
            if existing.len() >= room {
                let excess = existing.len() + 1 - room;
                let mut victims = undeclared;
                victims.sort_by_key(|v| v.1);
                for (akid, _) in victims.into_iter().take(excess) {
                    store.delete(&keys::credential(&rec.id, &akid))?;
                    existing.remove(&akid);
                    tracing::info!(store = %rec.name, access_key_id = %akid, "removed oldest credential (max credentials reached)");
                }
            }
        }
        let cred = CredentialRecord {
            access_key_id: c.access_key_id.clone(),
            sealed_secret: master.seal(secret.as_bytes(), &key),
            created_at_ns: now_ns(),
            origin: "config".into(),
        };
        store.put(&key, json(&cred))?;
        tracing::info!(store = %rec.name, access_key_id = %c.access_key_id, "installed declared credential");
        existing.insert(c.access_key_id.clone(), (cred, 0));
    }
    if !existing.is_empty() {
        return Ok(None);
    }
    // A store without any credential cannot be used: generate one, shown once (file).
    let akid = model::generate_access_key_id();
    let secret = model::generate_secret();
    let key = keys::credential(&rec.id, &akid);
    let cred = CredentialRecord {
        access_key_id: akid.clone(),
        sealed_secret: master.seal(secret.as_bytes(), &key),
        created_at_ns: now_ns(),
        origin: "generated".into(),
    };
    let file = model::CredentialsFile {
        uri_path: rec.xks_base_path(),
        credential: model::CredentialsFileCredential {
            access_key_id: akid.clone(),
            raw_secret_access_key: secret.to_string(),
        },
    };
    let path = write_credentials_file(&cfg.data_dir, &rec.name, &file)?;
    store.commit(
        &[Condition::Absent(key.clone())],
        vec![Write::Put(key, json(&cred))],
    )?;
    tracing::warn!(
        store = %rec.name, access_key_id = %akid, file = %path.display(),
        "generated a credential for a key store that had none; its secret is only in that file"
    );
    Ok(Some(path))
}

/// Writes a credentials file (the AWS console's format) and a shell-sourceable `.env`
/// beside it, both mode 0600, under `<data_dir>/credentials/`.
pub fn write_credentials_file(
    data_dir: &Path,
    store_name: &str,
    file: &model::CredentialsFile,
) -> Result<PathBuf, ReconcileError> {
    let dir = data_dir.join("credentials");
    let io = |path: &Path, e: std::io::Error| ReconcileError::Io {
        path: path.to_path_buf(),
        reason: e.to_string(),
    };
    std::fs::create_dir_all(&dir).map_err(|e| io(&dir, e))?;
    let path = dir.join(format!("{store_name}.json"));
    let text = Zeroizing::new(serde_json::to_string_pretty(file).unwrap_or_default() + "\n");
    crate::secrets::write_private_file(&path, text.as_bytes()).map_err(|e| io(&path, e))?;
    let env_path = dir.join(format!("{store_name}.env"));
    let env = Zeroizing::new(format!(
        "XKS_URI_PATH='{}'\nXKS_ACCESS_KEY_ID='{}'\nXKS_SECRET_ACCESS_KEY='{}'\n",
        file.uri_path, file.credential.access_key_id, file.credential.raw_secret_access_key
    ));
    crate::secrets::write_private_file(&env_path, env.as_bytes()).map_err(|e| io(&env_path, e))?;
    Ok(path)
}

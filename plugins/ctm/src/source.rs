//! The ctm key source: keys wrapped under a master key in the host KV, cached
//! unwrapped (in zeroizing memory) for the hot path.

use std::{
    collections::HashMap,
    sync::{Arc, PoisonError, RwLock},
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use abi_stable::std_types::{ROption, RSlice, RString};
use keyhold_sdk::{
    DecryptInput, EkmNode, Encrypted, HealthStatus, HostBox, KeyAttribute, KeyInfo, KeySourceError,
    KeySourceImpl, KeyUsage, LogLevel, NewKey, Operation, SourceInfo,
    invocations::{self, InvocationCounter},
};

use crate::{
    MODEL, VENDOR,
    config::Config,
    crypto::{self, KeyMaterial},
    record::{self, FORMAT_VERSION, KEY_PREFIX, KeyAttrs, KeyRecord},
};

/// One loaded key: its attributes, its unwrapped material, and the stored record it
/// came from (to notice changes made by other nodes).
struct LoadedKey {
    name: String,
    attrs: KeyAttrs,
    material: KeyMaterial,
    stored: Vec<u8>,
    /// When the record was last compared with the KV.
    checked_at: Instant,
}

impl LoadedKey {
    fn info(&self) -> KeyInfo {
        key_info(&self.name, &self.attrs)
    }
}

fn key_info(name: &str, attrs: &KeyAttrs) -> KeyInfo {
    KeyInfo {
        name: name.into(),
        bits: 256,
        usage: attrs.usage,
        enabled: attrs.enabled,
        exportable: attrs.exportable,
        deletable: attrs.deletable,
        attributes: vec![
            KeyAttribute {
                name: "created_at".into(),
                value: attrs.created_at.to_string().into(),
            },
            KeyAttribute {
                name: "record_version".into(),
                value: FORMAT_VERSION.to_string().into(),
            },
        ]
        .into(),
    }
}

/// How long the hot path trusts a cached key before re-reading its record (to see
/// another node disabling, changing or deleting it).
pub const REVALIDATE_AFTER: Duration = Duration::from_secs(2);

/// How often a change to a key's record is retried when another writer changed the record
/// between the read and the compare-and-swap.
const UPDATE_ATTEMPTS: usize = 8;

/// The software keystore key source.
pub struct CtmSource {
    host: HostBox,
    master: KeyMaterial,
    node_id: String,
    cache: RwLock<HashMap<String, Arc<LoadedKey>>>,
    /// Encryptions per key, against the AES-GCM limit for random IVs (persisted in the
    /// host KV at `gcm-invocations/<name>`, see [`keyhold_sdk::invocations`]).
    invocations: InvocationCounter,
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Key names: 1 to 256 bytes, no control characters.
fn check_name(name: &str) -> Result<(), KeySourceError> {
    KeySourceError::check_name(name, 256)
}

impl CtmSource {
    /// Opens the key source: parses `config`, loads the master key and every stored
    /// key. Refuses to open when any stored record cannot be unwrapped with the master
    /// key, rather than letting those keys silently disappear.
    pub fn open(config: &str, host: HostBox) -> Result<CtmSource, KeySourceError> {
        let config = Config::parse(config)?;
        let master = config.load_master_key(&host)?;
        let kcv = crypto::key_check_value(&master);
        let node_id = format!(
            "ctm-{:02x}{:02x}{:02x}{:02x}",
            kcv[0], kcv[1], kcv[2], kcv[3]
        );
        let source = CtmSource {
            host,
            master,
            node_id,
            cache: RwLock::new(HashMap::new()),
            invocations: InvocationCounter::new(),
        };
        let entries = source.host.kv_list(KEY_PREFIX.into()).into_result()?;
        let mut unreadable = Vec::new();
        let mut cache = HashMap::new();
        for entry in entries.iter() {
            let kv_name = entry
                .key
                .as_str()
                .strip_prefix(KEY_PREFIX)
                .unwrap_or(entry.key.as_str());
            match source.load(kv_name, entry.value.as_slice()) {
                Ok(key) => {
                    cache.insert(key.name.clone(), Arc::new(key));
                }
                Err(e) => unreadable.push(format!("'{kv_name}' ({e})")),
            }
        }
        if !unreadable.is_empty() {
            let shown: Vec<_> = unreadable.iter().take(5).cloned().collect();
            return Err(KeySourceError::invalid_input(format!(
                "ctm: {} of {} key records cannot be unwrapped with this master key (is it the \
                 right master key?): {}{}",
                unreadable.len(),
                entries.len(),
                shown.join(", "),
                if unreadable.len() > shown.len() {
                    ", ..."
                } else {
                    ""
                }
            )));
        }
        let count = cache.len();
        *source.cache.write().unwrap_or_else(PoisonError::into_inner) = cache;
        source.host.log(
            LogLevel::Info,
            format!(
                "ctm: opened software keystore {} with {count} keys",
                source.node_id
            )
            .as_str()
            .into(),
        );
        Ok(source)
    }

    /// Parses and unwraps one stored record found at `keys/<kv_name>`.
    fn load(&self, kv_name: &str, stored: &[u8]) -> Result<LoadedKey, KeySourceError> {
        let record = KeyRecord::from_bytes(stored)?;
        if record.name != kv_name {
            return Err(KeySourceError::internal(format!(
                "record names key '{}' but is stored as '{kv_name}'",
                record.name
            )));
        }
        let attrs = record.attrs()?;
        let material = record.unwrap_material(&self.master).map_err(|e| match e {
            KeySourceError::InvalidCiphertext => {
                KeySourceError::internal("wrapped key material does not unwrap")
            }
            other => other,
        })?;
        Ok(LoadedKey {
            name: record.name,
            attrs,
            material,
            stored: stored.to_vec(),
            checked_at: Instant::now(),
        })
    }

    fn cached(&self, name: &str) -> Option<Arc<LoadedKey>> {
        self.cache
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(name)
            .cloned()
    }

    fn cache_put(&self, key: LoadedKey) -> Arc<LoadedKey> {
        let key = Arc::new(key);
        self.cache
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(key.name.clone(), key.clone());
        key
    }

    fn cache_remove(&self, name: &str) {
        self.cache
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(name);
    }

    /// Brings the cache entry of `name` in line with `stored` (the KV's current
    /// record, or `None` when there is none).
    fn refresh(&self, name: &str, stored: Option<&[u8]>) -> Result<Arc<LoadedKey>, KeySourceError> {
        let Some(stored) = stored else {
            self.cache_remove(name);
            return Err(KeySourceError::not_found(name));
        };
        if let Some(key) = self.cached(name) {
            if key.stored == stored {
                if key.checked_at.elapsed() < REVALIDATE_AFTER {
                    return Ok(key);
                }
                // Same record: keep the unwrapped material, note the check.
                return Ok(self.cache_put(LoadedKey {
                    name: key.name.clone(),
                    attrs: key.attrs,
                    material: key.material.clone(),
                    stored: key.stored.clone(),
                    checked_at: Instant::now(),
                }));
            }
        }
        let key = self
            .load(name, stored)
            .map_err(|e| KeySourceError::internal(format!("key '{name}': {e}")))?;
        Ok(self.cache_put(key))
    }

    /// The KV's current record of `name`, loaded.
    fn read_through(&self, name: &str) -> Result<Arc<LoadedKey>, KeySourceError> {
        let stored = self
            .host
            .kv_get(record::kv_key(name).as_str().into())
            .into_result()?;
        let stored = match &stored {
            ROption::RSome(v) => Some(v.as_slice()),
            ROption::RNone => None,
        };
        self.refresh(name, stored)
    }

    /// The hot path: the cached key (read lock only), or the KV on a miss or when the
    /// cached entry is older than [`REVALIDATE_AFTER`]. When the KV cannot be read, a
    /// cached key stays usable.
    fn key_for_use(&self, name: &str, op: Operation) -> Result<Arc<LoadedKey>, KeySourceError> {
        let key = match self.cached(name) {
            Some(key) if key.checked_at.elapsed() < REVALIDATE_AFTER => key,
            Some(key) => match self.read_through(name) {
                Ok(fresh) => fresh,
                Err(e @ KeySourceError::NotFound { .. }) => return Err(e),
                Err(_) => key,
            },
            None => self.read_through(name)?,
        };
        KeySourceError::check_use(name, key.attrs.enabled, key.attrs.usage, op)?;
        Ok(key)
    }

    /// `info` with the key's encryption count ([`invocations::COUNT_ATTRIBUTE`]).
    fn with_count(&self, mut info: KeyInfo) -> KeyInfo {
        let count = self.invocations.count(&self.host, info.name.as_str());
        info.attributes.push(KeyAttribute {
            name: invocations::COUNT_ATTRIBUTE.into(),
            value: count.to_string().into(),
        });
        info
    }

    /// Replaces the record of `name` with `record` only if it still is `old` (the bytes
    /// it was read as): `Ok(None)` when another writer (another node) changed it first.
    fn swap_record(
        &self,
        name: &str,
        old: &[u8],
        record: Option<&KeyRecord>,
    ) -> Result<Option<Vec<u8>>, KeySourceError> {
        let bytes = record.map(KeyRecord::to_bytes).transpose()?;
        let swapped = self
            .host
            .kv_compare_and_swap(
                record::kv_key(name).as_str().into(),
                ROption::RSome(RSlice::from(old)),
                bytes.as_deref().map(RSlice::from).into(),
            )
            .into_result()?;
        Ok(swapped.then(|| bytes.unwrap_or_default()))
    }

    /// The KV's current record of `name` and the bytes it was read as.
    fn stored_record(&self, name: &str) -> Result<(KeyRecord, Vec<u8>), KeySourceError> {
        match self
            .host
            .kv_get(record::kv_key(name).as_str().into())
            .into_result()?
        {
            ROption::RSome(bytes) => Ok((KeyRecord::from_bytes(&bytes)?, bytes.into_vec())),
            ROption::RNone => {
                self.cache_remove(name);
                Err(KeySourceError::not_found(name))
            }
        }
    }

    /// Applies `change` to the current record of `name` as a compare-and-swap, re-reading
    /// and retrying when another writer got there first, so that two nodes changing the
    /// same key never lose either change. `change` returns the new record (`None`:
    /// delete it) and a value for the caller, or refuses.
    fn update_record<T>(
        &self,
        name: &str,
        change: impl Fn(&KeyRecord) -> Result<(Option<KeyRecord>, T), KeySourceError>,
    ) -> Result<(Option<Vec<u8>>, T), KeySourceError> {
        for _ in 0..UPDATE_ATTEMPTS {
            let (record, old) = self.stored_record(name)?;
            let (new, out) = change(&record)?;
            if new.as_ref() == Some(&record) {
                return Ok((Some(old), out));
            }
            if let Some(bytes) = self.swap_record(name, &old, new.as_ref())? {
                return Ok((new.map(|_| bytes), out));
            }
        }
        Err(KeySourceError::unavailable(format!(
            "key '{name}' kept changing underneath ({UPDATE_ATTEMPTS} attempts)"
        )))
    }
}

/// The ctm health-check key rules, one problem per violated rule.
pub fn health_check_problems(attrs: &KeyAttrs) -> Vec<RString> {
    let mut problems = Vec::new();
    if attrs.exportable {
        problems.push("exportable must be false".into());
    }
    if attrs.deletable {
        problems.push("deletable must be false".into());
    }
    for name in attrs.usage.missing(KeyUsage::ALL) {
        problems.push(format!("usage must include {name}").into());
    }
    problems
}

impl KeySourceImpl for CtmSource {
    fn info(&self) -> SourceInfo {
        SourceInfo {
            vendor: VENDOR.into(),
            model: MODEL.into(),
        }
    }

    /// `ACTIVE` while the host store answers; `DEGRADED` while it does not (etcd
    /// down): the cached keys still encrypt and decrypt (encryption for a bounded
    /// while, see [`keyhold_sdk::invocations`]), but no key can be created or changed
    /// and another node's changes are not seen.
    fn health(&self) -> Vec<EkmNode> {
        let status = match self.host.kv_get("health/probe".into()).into_result() {
            Ok(_) => HealthStatus::Active,
            Err(_) => HealthStatus::Degraded,
        };
        vec![EkmNode {
            id: self.node_id.as_str().into(),
            model: MODEL.into(),
            status,
        }]
    }

    fn list_keys(&self) -> Result<Vec<KeyInfo>, KeySourceError> {
        let entries = self.host.kv_list(KEY_PREFIX.into()).into_result()?;
        let mut seen = HashMap::new();
        let mut infos = Vec::with_capacity(entries.len());
        for entry in entries.iter() {
            let Some(name) = entry.key.as_str().strip_prefix(KEY_PREFIX) else {
                continue;
            };
            let key = self.refresh(name, Some(entry.value.as_slice()))?;
            infos.push(self.with_count(key.info()));
            seen.insert(name.to_string(), ());
        }
        // Forget keys another node deleted.
        self.cache
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .retain(|name, _| seen.contains_key(name));
        Ok(infos)
    }

    fn get_key(&self, name: &str) -> Result<KeyInfo, KeySourceError> {
        Ok(self.with_count(self.read_through(name)?.info()))
    }

    fn create_key(&self, spec: NewKey) -> Result<KeyInfo, KeySourceError> {
        let name = spec.name.as_str();
        check_name(name)?;
        if spec.usage.0 & !KeyUsage::ALL.0 != 0 {
            return Err(KeySourceError::invalid_input(format!(
                "unknown key usage bits {:#x}",
                spec.usage.0 & !KeyUsage::ALL.0
            )));
        }
        let attrs = KeyAttrs {
            usage: spec.usage,
            exportable: spec.exportable,
            deletable: spec.deletable,
            enabled: true,
            created_at: now_secs(),
        };
        let material = crypto::generate_key()?;
        let record = record::build_record(&self.master, name, &material, attrs)?;
        let bytes = record.to_bytes()?;
        let created = self
            .host
            .kv_create(
                record::kv_key(name).as_str().into(),
                RSlice::from(bytes.as_slice()),
            )
            .into_result()?;
        if !created {
            return Err(KeySourceError::AlreadyExists { key: name.into() });
        }
        let key = self.cache_put(LoadedKey {
            name: name.to_string(),
            attrs,
            material,
            stored: bytes,
            checked_at: Instant::now(),
        });
        self.host.log(
            LogLevel::Info,
            format!(
                "ctm: created key '{name}' (usage {}, exportable {}, deletable {})",
                attrs.usage, attrs.exportable, attrs.deletable
            )
            .as_str()
            .into(),
        );
        Ok(self.with_count(key.info()))
    }

    fn delete_key(&self, name: &str) -> Result<(), KeySourceError> {
        self.update_record(name, |record| {
            if !record.attrs()?.deletable {
                return Err(KeySourceError::InvalidKey {
                    key: name.into(),
                    problems: vec!["the key is not deletable (deletable is false)".into()].into(),
                });
            }
            Ok((None, ()))
        })?;
        self.cache_remove(name);
        // A key created later under this name has new material: its count starts anew.
        self.invocations.forget(&self.host, name)?;
        self.host.log(
            LogLevel::Info,
            format!("ctm: deleted key '{name}'").as_str().into(),
        );
        Ok(())
    }

    fn set_enabled(&self, name: &str, enabled: bool) -> Result<KeyInfo, KeySourceError> {
        let (stored, (attrs, changed)) = self.update_record(name, |record| {
            let mut attrs = record.attrs()?;
            if attrs.enabled == enabled {
                return Ok((Some(record.clone()), (attrs, false)));
            }
            attrs.enabled = enabled;
            let mut record = record.clone();
            record.set_attrs(attrs);
            Ok((Some(record), (attrs, true)))
        })?;
        if changed {
            self.refresh(name, stored.as_deref())?;
            self.host.log(
                LogLevel::Info,
                format!(
                    "ctm: {} key '{name}'",
                    if enabled { "enabled" } else { "disabled" }
                )
                .as_str()
                .into(),
            );
        }
        Ok(self.with_count(key_info(name, &attrs)))
    }

    fn validate_health_check_key(&self, name: &str) -> Result<(), KeySourceError> {
        let key = self.read_through(name)?;
        let problems = health_check_problems(&key.attrs);
        KeySourceError::check_key(name, problems)
    }

    fn encrypt(
        &self,
        name: &str,
        plaintext: &[u8],
        aad: &[u8],
    ) -> Result<Encrypted, KeySourceError> {
        let key = self.key_for_use(name, Operation::Encrypt)?;
        // Counted before the IV is drawn: refused at the limit for random IVs.
        self.invocations.take(&self.host, name)?;
        let iv = crypto::random_iv()?;
        let (ciphertext, tag) = crypto::seal(&key.material, &iv, plaintext, aad)?;
        Ok(Encrypted {
            iv: iv.to_vec().into(),
            ciphertext: ciphertext.into(),
            tag: tag.to_vec().into(),
        })
    }

    fn decrypt(&self, name: &str, input: DecryptInput<'_>) -> Result<Vec<u8>, KeySourceError> {
        let key = self.key_for_use(name, Operation::Decrypt)?;
        let plaintext = crypto::open(
            &key.material,
            input.iv.as_slice(),
            input.ciphertext.as_slice(),
            input.tag.as_slice(),
            input.aad.as_slice(),
        )?;
        // The host zeroizes the returned buffer; hand it over without a copy.
        let mut plaintext = plaintext;
        Ok(std::mem::take(&mut *plaintext))
    }
}

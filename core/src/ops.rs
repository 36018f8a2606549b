//! Management operations on key stores, credentials and HYOK keys: every rule of the
//! product enforced in one place, every change one atomic, version-checked store
//! transaction. The admin API and CLI sit on top of this; the data plane sees each
//! change through the store's watch feed.

use std::sync::Arc;

use keyhold_sdk::KeySourceError;

use crate::{
    model::{
        self, CredentialsFile, ModelError, StoreKind, StoreRecord, keys,
        rules::{self, RuleViolation},
    },
    secrets::MasterKey,
    store::{Condition, Entry, Store, StoreError, Write},
    xks::Sources,
};

/// Why a management operation was refused. Each variant has a stable code and an
/// HTTP status that fits.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OpError {
    /// The object does not exist.
    #[error("{what} '{id}' not found")]
    NotFound {
        /// Kind of object.
        what: &'static str,
        /// Its id or name.
        id: String,
    },
    /// The object exists already (name, prefix or id taken).
    #[error("{what} '{id}' already exists")]
    AlreadyExists {
        /// Kind of object.
        what: &'static str,
        /// Its id or name.
        id: String,
    },
    /// The object changed since the caller read it (optimistic concurrency).
    #[error(
        "{what} '{id}' was changed by someone else (expected version {expected}, now {actual}): read it again"
    )]
    VersionMismatch {
        /// Kind of object.
        what: &'static str,
        /// Its id.
        id: String,
        /// The version the caller had.
        expected: u64,
        /// The current version.
        actual: u64,
    },
    /// A state rule refuses the operation.
    #[error(transparent)]
    Rule(#[from] RuleViolation),
    /// Input breaks a validation rule.
    #[error(transparent)]
    Invalid(#[from] ModelError),
    /// The key source refused (e.g. a health-check key without the required attributes).
    #[error("key source '{source_name}': {reason}")]
    Source {
        /// The key source.
        source_name: String,
        /// Its error.
        reason: KeySourceError,
    },
    /// The store's source has no key of that name (`elsewhere` names the sources that
    /// do, if any: a store's keys come from its own source).
    #[error("key source '{source_name}' has no key '{key}'{elsewhere}")]
    SourceKeyNotFound {
        /// The store's source.
        source_name: String,
        /// The key asked for.
        key: String,
        /// A sentence naming the other sources that hold a key of that name, or "".
        elsewhere: String,
    },
    /// The key source is not available.
    #[error("key source '{source_name}' is not available: {reason}")]
    SourceUnavailable {
        /// The key source.
        source_name: String,
        /// Why.
        reason: String,
    },
    /// The source key already backs a HYOK key (of this or another store): a source key
    /// is bound to one HYOK key at most, so one store's key material never serves
    /// another's requests.
    #[error("{0}")]
    SourceKeyInUse(Box<SourceKeyInUse>),
    /// The durable store failed; [`StoreError::Backend`] (e.g. etcd unreachable) is
    /// 503 `store_unavailable`, [`StoreError::TooLarge`] 422.
    #[error("{}", store_message(.0))]
    Store(StoreError),
    /// Input breaks a rule that has no model error of its own (e.g. a weak password).
    #[error("{0}")]
    Input(String),
    /// Authentication or authorization refused.
    #[error(transparent)]
    Access(#[from] crate::identity::AccessError),
    /// An AWS call failed: the message names the service, operation, AWS's error code
    /// (also in [`crate::aws::AwsError::code`]) and what to do.
    #[error("{0}")]
    Aws(#[from] crate::aws::AwsError),
}

/// A refused second binding of a source key: which key, and who holds it.
#[derive(Debug, Clone, thiserror::Error)]
#[error(
    "source key '{source_key}' of source '{source_name}' is already bound to a HYOK key of {}: a source key backs one HYOK key at most",
    holder_name.as_deref().map_or("another key store".to_string(), |n| format!("key store '{n}'"))
)]
pub struct SourceKeyInUse {
    /// The key source.
    pub source_name: String,
    /// The source key.
    pub source_key: String,
    /// Id of the store whose HYOK key holds it (never shown, see `holder_name`).
    pub holder_store_id: String,
    /// That store's name, when the caller may see it (`None`: a neutral message).
    pub holder_name: Option<String>,
}

/// The message of [`OpError::Store`].
fn store_message(e: &StoreError) -> String {
    match e {
        StoreError::Backend { backend, message } => {
            format!("the {backend} store is unavailable: {message}")
        }
        StoreError::TooLarge { backend, message } => format!(
            "the change is too large for the {backend} store: {message}; nothing was changed"
        ),
        other => format!("store: {other}"),
    }
}

impl From<StoreError> for OpError {
    fn from(e: StoreError) -> Self {
        OpError::Store(e)
    }
}

impl OpError {
    /// Stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            OpError::NotFound { .. } => "not_found",
            OpError::AlreadyExists { .. } => "already_exists",
            OpError::VersionMismatch { .. } => "version_mismatch",
            OpError::Rule(r) => r.code,
            OpError::Invalid(_) => "invalid_input",
            OpError::SourceKeyNotFound { .. } => "source_key_not_found",
            OpError::Source { reason, .. } => match reason {
                KeySourceError::InvalidKey { .. } => "invalid_key",
                KeySourceError::NotFound { .. } => "source_key_not_found",
                KeySourceError::AlreadyExists { .. } => "already_exists",
                KeySourceError::InvalidInput { .. } => "invalid_input",
                KeySourceError::Unsupported { .. } => "unsupported",
                _ => "source_error",
            },
            OpError::SourceUnavailable { .. } => "source_unavailable",
            OpError::SourceKeyInUse(_) => "source_key_in_use",
            OpError::Store(StoreError::Backend { .. }) => "store_unavailable",
            OpError::Store(StoreError::TooLarge { .. }) => "store_transaction_too_large",
            OpError::Store(_) => "store_error",
            OpError::Input(_) => "invalid_input",
            OpError::Access(e) => e.code(),
            OpError::Aws(e) => e.api_code(),
        }
    }

    /// The HTTP status that fits.
    pub fn http_status(&self) -> u16 {
        match self {
            OpError::NotFound { .. } => 404,
            OpError::AlreadyExists { .. }
            | OpError::VersionMismatch { .. }
            | OpError::SourceKeyInUse(_) => 409,
            OpError::Rule(r) if UNPROCESSABLE_RULES.contains(&r.code) => 422,
            OpError::Rule(_) => 409,
            OpError::Invalid(_) => 400,
            // A source key that does not exist, looked up by path or named in a body.
            OpError::SourceKeyNotFound { .. } => 404,
            OpError::Source { reason, .. } => match reason {
                KeySourceError::NotFound { .. } => 404,
                KeySourceError::InvalidKey { .. } | KeySourceError::Unsupported { .. } => 422,
                KeySourceError::AlreadyExists { .. } => 409,
                KeySourceError::InvalidInput { .. } => 400,
                _ => 502,
            },
            OpError::SourceUnavailable { .. } => 502,
            OpError::Store(StoreError::Backend { .. }) => 503,
            OpError::Store(StoreError::TooLarge { .. }) => 422,
            OpError::Store(_) => 500,
            OpError::Input(_) => 400,
            OpError::Access(e) => e.http_status(),
            OpError::Aws(e) => e.http_status(),
        }
    }
}

/// Rules whose refusal is 422 (the request can never succeed as sent) rather than 409
/// (the current state refuses it).
const UNPROCESSABLE_RULES: &[&str] = &[
    "source_immutable",
    "token_label_immutable",
    "connection_test_failed",
    "source_declared_in_config",
];

/// A record with the store revision that last changed it (its version for
/// `If-Match`-style concurrency control).
#[derive(Debug, Clone, PartialEq)]
pub struct Versioned<T> {
    /// The record.
    pub value: T,
    /// Its version.
    pub version: u64,
}

/// Prefix of the source key uniqueness index (`keys::source_key_index`).
const SOURCE_KEY_INDEX: &str = "index/source-key/";

/// Management operations over the durable store and the key sources.
pub struct Operations {
    store: Arc<dyn Store>,
    master: Arc<MasterKey>,
    sources: Arc<Sources>,
    plugins: Option<connections::PluginSettings>,
    applied: std::sync::OnceLock<linkage::AppliedWaiter>,
    clock: Arc<dyn crate::clock::Clock>,
    mtls: Option<MtlsListener>,
    node: Option<String>,
}

fn to_json<T: serde::Serialize>(v: &T) -> Vec<u8> {
    // Our own record types always serialize.
    serde_json::to_vec(v).unwrap_or_default()
}

fn decode<T: serde::de::DeserializeOwned>(entry: &Entry) -> Result<T, OpError> {
    serde_json::from_slice(&entry.value).map_err(|e| {
        OpError::Store(StoreError::Corrupt {
            key: entry.key.clone(),
            message: e.to_string(),
        })
    })
}

fn now_ns() -> i128 {
    time::OffsetDateTime::now_utc().unix_timestamp_nanos()
}

impl Operations {
    /// Operations on `store`, sealing secrets with `master`, using `sources`.
    pub fn new(store: Arc<dyn Store>, master: Arc<MasterKey>, sources: Arc<Sources>) -> Self {
        Operations {
            store,
            master,
            sources,
            plugins: None,
            applied: std::sync::OnceLock::new(),
            clock: Arc::new(crate::clock::SystemClock),
            mtls: None,
            node: None,
        }
    }

    /// The node these operations run on: the jobs it starts are its own (see
    /// [`interrupt_running_jobs`]).
    pub fn with_node(mut self, node: &str) -> Self {
        self.node = Some(node.to_string());
        self
    }

    /// What the XKS listener offers for mutual TLS: turning a store's mutual TLS on is
    /// refused when it could never be met (without this, only the data plane checks).
    pub fn with_mtls_listener(mut self, listener: MtlsListener) -> Self {
        self.mtls = Some(listener);
        self
    }

    /// Checks a store's mutual TLS settings after a create or update.
    fn check_mtls(&self, record: &StoreRecord) -> Result<(), OpError> {
        model::mtls::validate_settings(record.mtls_ca_pem.as_deref(), &record.mtls_cns)?;
        if let Some(listener) = &self.mtls {
            model::mtls::ensure_possible(record, listener)?;
        }
        Ok(())
    }

    /// One store by id, with its version.
    pub fn get_store(&self, id: &str) -> Result<Versioned<StoreRecord>, OpError> {
        let entry = self.entry(&keys::store(id), "key store", id)?;
        Ok(Versioned {
            value: decode(&entry)?,
            version: entry.revision,
        })
    }

    /// Every store.
    pub fn list_stores(&self) -> Result<Vec<Versioned<StoreRecord>>, OpError> {
        self.store
            .scan(keys::STORES)?
            .iter()
            .map(|e| {
                Ok(Versioned {
                    value: decode(e)?,
                    version: e.revision,
                })
            })
            .collect()
    }

    fn check_version(
        &self,
        current: &Versioned<StoreRecord>,
        expected: Option<u64>,
    ) -> Result<(), OpError> {
        match expected {
            Some(v) if v != current.version => Err(OpError::VersionMismatch {
                what: "key store",
                id: current.value.id.clone(),
                expected: v,
                actual: current.version,
            }),
            _ => Ok(()),
        }
    }

    /// Creates an unlinked key store and its first credential. Returns the store and the
    /// credentials file (the only time its secret is shown).
    pub fn create_store(&self, new: NewStore) -> Result<(StoreRecord, CredentialsFile), OpError> {
        model::validate_name("store", &new.name)?;
        let max = new.max_credentials.unwrap_or(model::MAX_CREDENTIALS);
        model::validate_max_credentials(max)?;
        let source_entry = self.entry(&keys::source(&new.source), "key source", &new.source)?;
        let plugin: model::SourceRecord = decode(&source_entry)?;
        if let Some(account) = &new.account {
            let account = self.get_account(account)?;
            if let Some(region) = &new.region {
                ensure_account_region(&account, region)?;
            }
        }
        if let Some(region) = &new.region {
            model::validate_region(region)?;
        }
        // The health-check key must exist before the store, in the store's own source.
        self.validate_health_check_key(&new.source, &new.health_check_key)?;
        let id = model::generate_id();
        let prefix = match &new.uri_path_prefix {
            Some(p) => model::normalize_uri_path_prefix(p)?,
            None => format!("keystores/{id}"),
        };
        let record = StoreRecord {
            id: id.clone(),
            name: new.name.clone(),
            source: new.source.clone(),
            plugin: plugin.plugin,
            container: plugin.container,
            kind: StoreKind::Local,
            uri_path_prefix: prefix.clone(),
            health_check_key: new.health_check_key,
            max_credentials: max,
            blocked: false,
            success_audit: new.success_audit,
            mtls: new.mtls,
            mtls_ca_pem: new.mtls_ca_pem.clone(),
            mtls_cns: new.mtls_cns.clone(),
            location: new.location,
            quota: None,
            aws: None,
            region: new.region.clone(),
            rotation_schedule: None,
            created_at: model::now_unix(),
        };
        self.check_mtls(&record)?;
        let (cred_key, cred, file) = self.new_credential(&record);
        let mut conditions = vec![
            Condition::Absent(keys::store_name_index(&record.name)),
            Condition::Absent(keys::prefix_index(&prefix)),
            Condition::Absent(keys::store(&id)),
            // The source must still exist; its guard is rewritten below, so that a
            // concurrent delete of the source fails.
            Condition::Exists(source_entry.key.clone()),
            // A source key that backs a HYOK key is no health-check key.
            Condition::Absent(keys::source_key_index(
                &record.source,
                &record.health_check_key,
            )),
        ];
        let mut writes = Vec::new();
        if let Some(account) = &new.account {
            conditions.push(Condition::Exists(keys::account(account)));
            writes.push(Write::Put(
                keys::store_account(&id),
                account.clone().into_bytes(),
            ));
        }
        writes.extend([
            Write::Put(
                source_lifecycle::stores_guard(&record.source),
                id.clone().into_bytes(),
            ),
            Write::Put(keys::store(&id), to_json(&record)),
            Write::Put(
                keys::store_name_index(&record.name),
                id.clone().into_bytes(),
            ),
            Write::Put(keys::prefix_index(&prefix), id.into_bytes()),
            Write::Put(cred_key, to_json(&cred)),
        ]);
        match self.store.commit(&conditions, writes) {
            Ok(_) => Ok((record, file)),
            Err(StoreError::Conflict { key }) if key.starts_with(keys::ACCOUNTS) => {
                Err(OpError::NotFound {
                    what: "AWS account",
                    id: new.account.unwrap_or_default(),
                })
            }
            Err(StoreError::Conflict { key }) if key == source_entry.key => {
                Err(OpError::NotFound {
                    what: "key source",
                    id: record.source,
                })
            }
            Err(StoreError::Conflict { key }) if key.starts_with("index/prefix/") => {
                Err(OpError::AlreadyExists {
                    what: "URI path prefix",
                    id: prefix,
                })
            }
            Err(StoreError::Conflict { key }) if key.starts_with(SOURCE_KEY_INDEX) => Err(
                rules::health_check_key_backs_a_hyok_key(&record.source, &record.health_check_key)
                    .into(),
            ),
            Err(StoreError::Conflict { .. }) => Err(OpError::AlreadyExists {
                what: "key store",
                id: record.name,
            }),
            Err(e) => Err(e.into()),
        }
    }

    /// Every object under `prefix`, decoded.
    fn decode_all<T: serde::de::DeserializeOwned>(&self, prefix: &str) -> Result<Vec<T>, OpError> {
        self.store.scan(prefix)?.iter().map(decode).collect()
    }

    /// Commits `writes` if `conditions` hold; a failed condition means the object
    /// (`what` `id`, read at `revision`) changed meanwhile: `VersionMismatch`.
    fn commit_read(
        &self,
        conditions: &[Condition],
        writes: Vec<Write>,
        what: &'static str,
        id: &str,
        revision: u64,
    ) -> Result<(), OpError> {
        match self.store.commit(conditions, writes) {
            Ok(_) => Ok(()),
            Err(StoreError::Conflict { .. }) => Err(OpError::VersionMismatch {
                what,
                id: id.to_string(),
                expected: revision,
                actual: 0,
            }),
            Err(e) => Err(e.into()),
        }
    }

    /// Writes a new object; `AlreadyExists` when its key is taken.
    fn create_entry(
        &self,
        key: String,
        value: Vec<u8>,
        what: &'static str,
        name: &str,
    ) -> Result<(), OpError> {
        match self.store.commit(
            &[Condition::Absent(key.clone())],
            vec![Write::Put(key, value)],
        ) {
            Ok(_) => Ok(()),
            Err(StoreError::Conflict { .. }) => Err(OpError::AlreadyExists {
                what,
                id: name.to_string(),
            }),
            Err(e) => Err(e.into()),
        }
    }

    /// The entry at `key`; `NotFound` (naming `what` `name`) when there is none.
    fn entry(&self, key: &str, what: &'static str, name: &str) -> Result<Entry, OpError> {
        self.store.get(key)?.ok_or_else(|| OpError::NotFound {
            what,
            id: name.to_string(),
        })
    }

    /// Changes a store. `expected_version` (when given) must be the current version.
    pub fn update_store(
        &self,
        id: &str,
        update: StoreUpdate,
        expected_version: Option<u64>,
    ) -> Result<Versioned<StoreRecord>, OpError> {
        let current = self.get_store(id)?;
        self.check_version(&current, expected_version)?;
        let old = &current.value;
        rules::ensure_same_source(old, update.source.as_deref(), update.container.as_deref())?;
        rules::ensure_updatable(old)?;
        let mut next = old.clone();
        let mut conditions = vec![Condition::Revision(keys::store(id), current.version)];
        let mut writes = Vec::new();
        if let Some(name) = update.name.filter(|n| *n != old.name) {
            model::validate_name("store", &name)?;
            conditions.push(Condition::Absent(keys::store_name_index(&name)));
            writes.push(Write::Delete(keys::store_name_index(&old.name)));
            writes.push(Write::Put(
                keys::store_name_index(&name),
                id.as_bytes().to_vec(),
            ));
            next.name = name;
        }
        if let Some(location) = update.location {
            next.location = location;
        }
        if let Some(key) = update.health_check_key {
            rules::ensure_local(old, "health check key")?;
            self.validate_health_check_key(&old.source, &key)?;
            if key != old.health_check_key {
                conditions.push(Condition::Absent(keys::source_key_index(&old.source, &key)));
            }
            next.health_check_key = key;
        }
        if let Some(max) = update.max_credentials {
            rules::ensure_local(old, "max credentials")?;
            model::validate_max_credentials(max)?;
            next.max_credentials = max;
        }
        if let Some(v) = update.success_audit {
            rules::ensure_local(old, "success audit setting")?;
            next.success_audit = v;
        }
        if let Some(v) = update.mtls {
            rules::ensure_local(old, "mTLS setting")?;
            next.mtls = v;
        }
        if let Some(pem) = update.mtls_ca_pem {
            rules::ensure_local(old, "mTLS CA bundle")?;
            next.mtls_ca_pem = Some(pem).filter(|p| !p.is_empty());
        }
        if let Some(cns) = update.mtls_cns {
            rules::ensure_local(old, "mTLS CN list")?;
            next.mtls_cns = cns;
        }
        if let Some(region) = update.region {
            model::validate_region(&region)?;
            if old.aws.is_some() && old.region.as_deref() != Some(region.as_str()) {
                return Err(OpError::Rule(RuleViolation {
                    code: "region_immutable",
                    message: format!(
                        "key store '{}' is linked in region {}: its region cannot change",
                        old.name,
                        old.region.as_deref().unwrap_or("?")
                    ),
                }));
            }
            if let Some(account) = self.store_account(id)? {
                ensure_account_region(&self.get_account(&account)?, &region)?;
            }
            next.region = Some(region);
        }
        if next.mtls != old.mtls
            || next.mtls_ca_pem != old.mtls_ca_pem
            || next.mtls_cns != old.mtls_cns
        {
            self.check_mtls(&next)?;
        }
        if next == *old {
            // Nothing changes: nothing is written, the version stays.
            return Ok(current);
        }
        writes.push(Write::Put(keys::store(id), to_json(&next)));
        // A linked store's name and location are AWS's too: pushed first, so that a
        // refusal there changes nothing here.
        self.push_update(old, &next)?;
        let version = self.commit_store_change(id, &conditions, writes)?;
        Ok(Versioned {
            value: next,
            version,
        })
    }

    fn commit_store_change(
        &self,
        id: &str,
        conditions: &[Condition],
        writes: Vec<Write>,
    ) -> Result<u64, OpError> {
        match self.store.commit(conditions, writes) {
            Ok(rev) => Ok(rev),
            Err(StoreError::Conflict { key }) if key.starts_with(SOURCE_KEY_INDEX) => {
                let (source, name) = key
                    .trim_start_matches(SOURCE_KEY_INDEX)
                    .split_once('/')
                    .unwrap_or(("", ""));
                Err(rules::health_check_key_backs_a_hyok_key(source, name).into())
            }
            Err(StoreError::Conflict { key }) if key.starts_with("index/store-name/") => {
                Err(OpError::AlreadyExists {
                    what: "key store",
                    id: key.trim_start_matches("index/store-name/").to_string(),
                })
            }
            Err(StoreError::Conflict { .. }) => {
                let now = self.get_store(id)?;
                Err(OpError::VersionMismatch {
                    what: "key store",
                    id: id.to_string(),
                    expected: 0,
                    actual: now.version,
                })
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Blocks or unblocks a store (AWS KMS's access to it and its keys).
    pub fn set_store_blocked(
        &self,
        id: &str,
        blocked: bool,
    ) -> Result<Versioned<StoreRecord>, OpError> {
        self.change_store(id, |next| {
            next.blocked = blocked;
            Ok(())
        })
    }

    /// Deletes a store (irreversible): refused while it has HYOK keys; needs
    /// `confirmed`. Its credentials and indexes go in the same transaction.
    pub fn delete_store(&self, id: &str, confirmed: bool) -> Result<(), OpError> {
        let current = self.get_store(id)?;
        let hyok = self.store.scan(&keys::hyok_keys_of(id))?;
        rules::ensure_deletable(&current.value, hyok.len(), confirmed)?;
        self.delete_aws_side(&current.value)?;
        self.remove_store(&current)
    }

    /// Removes a just-created store whose AWS side could not be made (no rules: it was
    /// never shown to anyone but its creator's failed request).
    fn purge_store(&self, id: &str) -> Result<(), OpError> {
        let current = self.get_store(id)?;
        self.remove_store(&current)
    }

    /// Deletes a store record, its indexes, credentials and account binding.
    fn remove_store(&self, current: &Versioned<StoreRecord>) -> Result<(), OpError> {
        let id = current.value.id.as_str();
        let mut writes = vec![
            Write::Delete(keys::store(id)),
            Write::Delete(keys::store_name_index(&current.value.name)),
            Write::Delete(keys::store_account(id)),
            Write::Delete(keys::rotation_state(id)),
        ];
        // Remote stores have no prefix index entry: a local store may hold that prefix.
        if current.value.kind == StoreKind::Local {
            writes.push(Write::Delete(keys::prefix_index(
                &current.value.uri_path_prefix,
            )));
        }
        for cred in self.store.scan(&keys::credentials_of(id))? {
            writes.push(Write::Delete(cred.key));
        }
        // Creating a HYOK key bumps the store's version, so a key created meanwhile
        // makes this fail instead of being orphaned.
        let conditions = [Condition::Revision(keys::store(id), current.version)];
        self.commit_store_change(id, &conditions, writes)?;
        Ok(())
    }
}

mod connections;
mod credentials;
mod hyok_keys;
mod identity;
mod jobs;
mod linkage;
mod refresh;
mod schedules;
mod source_lifecycle;
mod sources;

pub use crate::model::mtls::MtlsListener;
pub use connections::{CONNECTION_TEST_TIMEOUT, DeclaredSource, PluginSettings, open_source};
pub(crate) use identity::validate_user_name;
pub use identity::{RootBootstrap, generate_root_password};
pub use jobs::{interrupt_jobs_where, interrupt_running_jobs, orphaned_job};
pub use linkage::{AppliedWaiter, TRANSITION_WAIT, block_on_aws};
pub use refresh::{KmsFor, Stopping};
pub use schedules::{RotationFailure, RotationOutcome};
pub use source_lifecycle::{SourceFollower, open_stored_source};

// The changes the admin API asks for are its request types (one definition).
pub use crate::api::{
    accounts::AccountPatch as AccountUpdate,
    connections::{NewAwsConnection, NewHsmConnection},
    stores::{NewStore, StorePatch as StoreUpdate},
};

/// A store's region must be one of its account's regions.
fn ensure_account_region(account: &model::AccountRecord, region: &str) -> Result<(), OpError> {
    if account.regions.iter().any(|r| r == region) {
        return Ok(());
    }
    Err(OpError::Rule(RuleViolation {
        code: "region_not_allowed",
        message: format!(
            "region '{region}' is not among AWS account {}'s regions ({}): add it to the account first",
            account.id,
            account.regions.join(", ")
        ),
    }))
}

#[cfg(test)]
mod tests;

//! The data plane's immutable snapshot of everything it needs: base path -> store,
//! with credentials (secrets unsealed), keys, flags, and per-store state (health cache,
//! metrics, quota bucket). Requests read it without touching the durable store.
//!
//! It is built once at start ([`Routing::build`]) and then updated per committed
//! change ([`Routing::apply`]): only the stores a change touches are rebuilt, so the
//! cost of a change is proportional to what changed, not to the number of stores.

use std::{
    collections::{HashMap, HashSet},
    sync::Arc,
};

use arc_swap::ArcSwap;
use zeroize::Zeroizing;

use crate::{
    metrics::StoreMetrics,
    model::{self, AccountRecord, CredentialRecord, HyokKeyRecord, StoreRecord},
    plugin::KeySourceHandle,
    secrets::MasterKey,
    store::{Change, Store, StoreError, WatchEvent},
};

use super::{auth::SigningKeyCache, health::HealthCache, quota::TokenBucket};
use crate::model::Quota;

type SourceMap = HashMap<String, Result<Arc<KeySourceHandle>, String>>;

/// The opened key sources, by name; a source that failed to load keeps its reason.
///
/// Shared (as `Arc<Sources>`) by the routing context, the management operations and
/// the metrics endpoint. The map itself sits behind an [`ArcSwap`]: readers take a
/// lock-free snapshot, and sources created at run time (from HSM connections, through
/// the admin API) are added copy-on-write without stopping anyone.
#[derive(Default)]
pub struct Sources {
    by_name: ArcSwap<SourceMap>,
    /// The generation of its source record each run-time (re)opened source was opened
    /// from (absent: 0). Locked while a source is (re)opened or closed at run time, so
    /// that a reopen through the admin API and the follower of other nodes' changes
    /// never race.
    generations: std::sync::Mutex<HashMap<String, u64>>,
}

impl Sources {
    /// Records an opened source.
    pub fn insert(&mut self, name: &str, source: Arc<KeySourceHandle>) {
        self.set(name, Ok(source));
    }

    /// Records a source that could not be opened, and why.
    pub fn insert_failed(&mut self, name: &str, reason: String) {
        self.set(name, Err(reason));
    }

    /// Records a source (opened or failed) at run time, replacing any entry of that
    /// name.
    pub fn set(&self, name: &str, source: Result<Arc<KeySourceHandle>, String>) {
        self.by_name.rcu(|map| {
            let mut next = SourceMap::clone(map);
            next.insert(name.to_string(), source.clone());
            next
        });
    }

    /// Adds an opened source at run time unless one of that name exists already
    /// (atomically). Returns whether it was added.
    pub fn add(&self, name: &str, source: Arc<KeySourceHandle>) -> bool {
        let mut added = false;
        self.by_name.rcu(|map| {
            if map.contains_key(name) {
                added = false;
                return Arc::clone(map);
            }
            added = true;
            let mut next = SourceMap::clone(map);
            next.insert(name.to_string(), Ok(source.clone()));
            Arc::new(next)
        });
        added
    }

    /// Forgets a source (undoing [`Sources::add`] when its record could not be
    /// committed).
    pub fn remove(&self, name: &str) {
        self.by_name.rcu(|map| {
            let mut next = SourceMap::clone(map);
            next.remove(name);
            next
        });
    }

    /// Locks run-time (re)opening and closing of sources: the guard holds each source's
    /// generation (see [`crate::model::SourceRecord::generation`]).
    pub fn lifecycle(&self) -> std::sync::MutexGuard<'_, HashMap<String, u64>> {
        self.generations
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Whether a source of this name is known (opened or failed).
    pub fn contains(&self, name: &str) -> bool {
        self.by_name.load().contains_key(name)
    }

    /// A source by name, or why it is not available.
    pub fn get(&self, name: &str) -> Result<Arc<KeySourceHandle>, String> {
        match self.by_name.load().get(name) {
            Some(Ok(s)) => Ok(s.clone()),
            Some(Err(reason)) => Err(reason.clone()),
            None => Err(format!("key source '{name}' is not configured")),
        }
    }

    /// Every known source by name (sorted), opened or with the reason it failed.
    pub fn all(&self) -> Vec<(String, Result<Arc<KeySourceHandle>, String>)> {
        let mut out: Vec<_> = self
            .by_name
            .load()
            .iter()
            .map(|(name, s)| (name.clone(), s.clone()))
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    /// Every opened source.
    pub fn opened(&self) -> Vec<Arc<KeySourceHandle>> {
        self.by_name
            .load()
            .values()
            .filter_map(|s| s.as_ref().ok().cloned())
            .collect()
    }
}

/// A HYOK key as the data plane needs it (its external id is the map key).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyRoute {
    /// The key's name in the store's source (shared between the keys of a store
    /// that use the same source key).
    pub source_key: Arc<str>,
    /// Whether AWS KMS's use of the key is suspended.
    pub blocked: bool,
}

/// Builds key routes, sharing equal source-key names within one store.
#[derive(Default)]
struct KeyInterner(HashMap<String, Arc<str>>);

impl KeyInterner {
    fn route(&mut self, rec: &HyokKeyRecord) -> KeyRoute {
        let source_key = match self.0.get(&rec.source_key) {
            Some(s) => s.clone(),
            None => {
                let s: Arc<str> = Arc::from(rec.source_key.as_str());
                self.0.insert(rec.source_key.clone(), s.clone());
                s
            }
        };
        KeyRoute {
            source_key,
            blocked: rec.blocked,
        }
    }

    /// A key record as a map entry: external id -> route.
    fn entry(&mut self, rec: HyokKeyRecord) -> (String, KeyRoute) {
        let route = self.route(&rec);
        (rec.external_id, route)
    }
}

/// Everything the data plane knows about one key store.
pub struct StoreRoute {
    /// The store's record.
    pub record: StoreRecord,
    /// Its `XksProxyUriPath`.
    pub base_path: String,
    /// Its key source, or why it is unavailable.
    pub source: Result<Arc<KeySourceHandle>, String>,
    /// Access key id -> secret access key bytes.
    pub credentials: Arc<HashMap<String, Zeroizing<Vec<u8>>>>,
    /// External key id -> key.
    pub keys: Arc<HashMap<String, KeyRoute>>,
    /// Deep health-check cache (kept across updates).
    pub health: Arc<HealthCache>,
    /// Request counters (kept across updates).
    pub metrics: Arc<StoreMetrics>,
    /// Request quota, when one applies.
    pub quota: Option<Arc<TokenBucket>>,
    /// SigV4 signing keys of requests that verified (dropped with the route, i.e.
    /// whenever the store's credentials change).
    pub signing_keys: SigningKeyCache,
    /// The AWS account the store belongs to (`None`: none).
    pub account: Option<String>,
    /// The regions requests may be signed for: the account's regions (`None`: any,
    /// for a store without an account or an account that lists no region).
    pub allowed_regions: Option<Arc<[String]>>,
    /// Its mutual TLS requirement (`None`: off).
    pub mtls: super::mtls::StoreMtlsRule,
}

/// A store's account binding and the account's allowed regions, as routing needs them.
#[derive(Clone, Default)]
struct AccountRoute {
    account: Option<String>,
    regions: Option<Arc<[String]>>,
}

impl AccountRoute {
    fn of(account: Option<String>, record: Option<AccountRecord>) -> AccountRoute {
        let regions = record
            .filter(|r| !r.regions.is_empty())
            .map(|r| Arc::from(r.regions));
        AccountRoute { account, regions }
    }

    /// Reads store `id`'s account binding and that account's regions.
    fn load(store: &dyn Store, id: &str) -> Result<AccountRoute, StoreError> {
        let Some(entry) = store.get(&model::keys::store_account(id))? else {
            return Ok(AccountRoute::default());
        };
        let account = String::from_utf8_lossy(&entry.value).into_owned();
        let record = store
            .get(&model::keys::account(&account))?
            .and_then(|e| parse::<AccountRecord>(&e.key, &e.value));
        Ok(AccountRoute::of(Some(account), record))
    }
}

/// What building or updating the snapshot needs besides the store.
pub struct RoutingContext {
    /// Unseals credential secrets.
    pub master: Arc<MasterKey>,
    /// The opened key sources.
    pub sources: Arc<Sources>,
    /// The quota for stores that do not set their own (`None`: unlimited).
    pub default_quota: Option<Quota>,
    /// The listener's client CA and CNs, defaults of stores with mutual TLS on.
    pub client_trust: Arc<super::mtls::ClientTrustDefaults>,
}

/// The snapshot. Its indexes are persistent (structurally shared) maps, so deriving
/// the next snapshot from this one copies only what a change touches.
#[derive(Default, Clone)]
pub struct Routing {
    /// Store revision this snapshot reflects.
    pub revision: u64,
    by_id: imbl::HashMap<String, Arc<StoreRoute>>,
    by_base: imbl::HashMap<String, Arc<StoreRoute>>,
    by_lb_path: imbl::HashMap<String, Arc<StoreRoute>>,
    /// The handshake's client-certificate verifier (`None`: no store needs one).
    client_trust: Option<Arc<dyn rustls::server::danger::ClientCertVerifier>>,
}

fn parse<T: serde::de::DeserializeOwned>(key: &str, value: &[u8]) -> Option<T> {
    match serde_json::from_slice(value) {
        Ok(v) => Some(v),
        Err(e) => {
            tracing::error!(key, "skipping unreadable record: {e}");
            None
        }
    }
}

/// Unseals a credential record; failures are logged and skipped, never fatal.
fn unseal(master: &MasterKey, key: &str, value: &[u8]) -> Option<(String, Zeroizing<Vec<u8>>)> {
    let rec = parse::<CredentialRecord>(key, value)?;
    match master.open(&rec.sealed_secret, key) {
        Ok(secret) => Some((rec.access_key_id, secret)),
        Err(e) => {
            tracing::error!(key, "skipping credential: {e}");
            None
        }
    }
}

/// The store id and object name of `credentials/<id>/<name>` or `keys/<id>/<name>`.
fn split_child<'a>(key: &'a str, prefix: &str) -> Option<(&'a str, &'a str)> {
    key.strip_prefix(prefix)?.split_once('/')
}

impl Routing {
    /// The store served at this base path.
    pub fn by_base(&self, base: &str) -> Option<&Arc<StoreRoute>> {
        self.by_base.get(base)
    }

    /// The store whose load-balancer health path this is.
    pub fn by_lb_path(&self, path: &str) -> Option<&Arc<StoreRoute>> {
        self.by_lb_path.get(path)
    }

    /// A store by id.
    pub fn by_id(&self, id: &str) -> Option<&Arc<StoreRoute>> {
        self.by_id.get(id)
    }

    /// Every store.
    pub fn stores(&self) -> impl Iterator<Item = &Arc<StoreRoute>> {
        self.by_id.values()
    }

    /// The verifier of client certificates at the handshake: chains to a CA of some
    /// store with mutual TLS on (`None`: no store asks for a certificate).
    pub fn client_trust(&self) -> Option<&Arc<dyn rustls::server::danger::ClientCertVerifier>> {
        self.client_trust.as_ref()
    }

    fn with_client_trust(mut self) -> Routing {
        self.client_trust = super::mtls::handshake_verifier(self.by_id.values().map(|r| &r.mtls));
        self
    }

    /// Number of stores served.
    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    /// Whether no store is served.
    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }

    /// Builds a snapshot from the whole durable store, carrying per-store state
    /// (health cache, metrics, quota bucket) over from `previous`. Records that do not
    /// parse and secrets that do not unseal are skipped and logged: one bad object must
    /// not take every store down.
    pub fn build(
        store: &dyn Store,
        ctx: &RoutingContext,
        previous: Option<&Routing>,
    ) -> Result<Routing, StoreError> {
        let revision = store.revision()?;
        let mut credentials: HashMap<String, HashMap<String, Zeroizing<Vec<u8>>>> = HashMap::new();
        for entry in store.scan(model::keys::CREDENTIALS)? {
            let Some((store_id, _)) = split_child(&entry.key, model::keys::CREDENTIALS) else {
                continue;
            };
            if let Some((akid, secret)) = unseal(&ctx.master, &entry.key, &entry.value) {
                credentials
                    .entry(store_id.to_string())
                    .or_default()
                    .insert(akid, secret);
            }
        }
        let mut keys: HashMap<String, HashMap<String, KeyRoute>> = HashMap::new();
        let mut interner = KeyInterner::default();
        for entry in store.scan(model::keys::HYOK_KEYS)? {
            let Some((store_id, _)) = split_child(&entry.key, model::keys::HYOK_KEYS) else {
                continue;
            };
            if let Some(rec) = parse::<HyokKeyRecord>(&entry.key, &entry.value) {
                let (external_id, route) = interner.entry(rec);
                keys.entry(store_id.to_string())
                    .or_default()
                    .insert(external_id, route);
            }
        }
        let mut accounts: HashMap<String, AccountRecord> = HashMap::new();
        for entry in store.scan(model::keys::ACCOUNTS)? {
            if let Some(rec) = parse::<AccountRecord>(&entry.key, &entry.value) {
                accounts.insert(rec.id.clone(), rec);
            }
        }
        let mut bindings: HashMap<String, AccountRoute> = HashMap::new();
        for entry in store.scan(model::keys::STORE_ACCOUNTS)? {
            let Some(id) = entry.key.strip_prefix(model::keys::STORE_ACCOUNTS) else {
                continue;
            };
            let account = String::from_utf8_lossy(&entry.value).into_owned();
            let record = accounts.get(&account).cloned();
            bindings.insert(id.to_string(), AccountRoute::of(Some(account), record));
        }
        let mut routing = Routing {
            revision,
            ..Routing::default()
        };
        for entry in store.scan(model::keys::STORES)? {
            let Some(record) = parse::<StoreRecord>(&entry.key, &entry.value) else {
                continue;
            };
            let old = previous.and_then(|p| p.by_id.get(&record.id));
            let creds = credentials.remove(&record.id).unwrap_or_default();
            let ks = keys.remove(&record.id).unwrap_or_default();
            let account = bindings.remove(&record.id).unwrap_or_default();
            routing.insert(make_route(
                record,
                Arc::new(creds),
                Arc::new(ks),
                account,
                old,
                ctx,
            ));
        }
        Ok(routing.with_client_trust())
    }

    fn insert(&mut self, route: Option<StoreRoute>) {
        let Some(route) = route else { return };
        let route = Arc::new(route);
        self.by_lb_path.insert(
            model::lb_health_path(&route.record.uri_path_prefix),
            route.clone(),
        );
        self.by_base.insert(route.base_path.clone(), route.clone());
        self.by_id.insert(route.record.id.clone(), route);
    }

    fn remove(&mut self, id: &str) -> Option<Arc<StoreRoute>> {
        let old = self.by_id.remove(id)?;
        if self
            .by_base
            .get(&old.base_path)
            .is_some_and(|r| r.record.id == id)
        {
            self.by_base.remove(&old.base_path);
        }
        let lb = model::lb_health_path(&old.record.uri_path_prefix);
        if self.by_lb_path.get(&lb).is_some_and(|r| r.record.id == id) {
            self.by_lb_path.remove(&lb);
        }
        Some(old)
    }

    /// The snapshot to serve after `event`: `None` when there is nothing to do (an
    /// event already reflected). Applied incrementally, or rebuilt whole when there is
    /// no event (the feed lagged), when the previous update failed (`stale`: events
    /// after a failed one cannot be applied on top of it), or when applying fails. An
    /// error means the current snapshot is stale: the caller retries with `stale`.
    pub fn next(
        &self,
        event: Option<&WatchEvent>,
        stale: bool,
        store: &dyn Store,
        ctx: &RoutingContext,
    ) -> Result<Option<Routing>, StoreError> {
        match event {
            Some(e) if !stale && e.revision <= self.revision => Ok(None),
            Some(e) if !stale => match self.apply(e, store, ctx) {
                Ok(next) => Ok(Some(next)),
                Err(err) => {
                    tracing::warn!("routing update failed ({err}); rebuilding it whole");
                    Routing::build(store, ctx, Some(self)).map(Some)
                }
            },
            _ => Routing::build(store, ctx, Some(self)).map(Some),
        }
    }

    /// The snapshot after one committed transaction. Only the stores it touches are
    /// rebuilt; a store that appears is loaded with its own credentials and keys.
    pub fn apply(
        &self,
        event: &WatchEvent,
        store: &dyn Store,
        ctx: &RoutingContext,
    ) -> Result<Routing, StoreError> {
        let mut touched: Vec<String> = Vec::new();
        let mut seen = HashSet::new();
        for change in &event.changes {
            // A key source record written at run time (a source opened from an HSM
            // connection): re-resolve the source of the stores bound to that name.
            if let Some(source) = change.key.strip_prefix(model::keys::SOURCES) {
                for route in self.by_id.values() {
                    if route.record.source == source && seen.insert(route.record.id.clone()) {
                        touched.push(route.record.id.clone());
                    }
                }
                continue;
            }
            // An account changed (e.g. its regions): re-read the stores bound to it.
            if let Some(account) = change.key.strip_prefix(model::keys::ACCOUNTS) {
                for route in self.by_id.values() {
                    if route.account.as_deref() == Some(account)
                        && seen.insert(route.record.id.clone())
                    {
                        touched.push(route.record.id.clone());
                    }
                }
                continue;
            }
            let id = if let Some(id) = change.key.strip_prefix(model::keys::STORES) {
                Some(id)
            } else if let Some(id) = change.key.strip_prefix(model::keys::STORE_ACCOUNTS) {
                Some(id)
            } else {
                split_child(&change.key, model::keys::CREDENTIALS)
                    .or_else(|| split_child(&change.key, model::keys::HYOK_KEYS))
                    .map(|(id, _)| id)
            };
            if let Some(id) = id {
                if seen.insert(id.to_string()) {
                    touched.push(id.to_string());
                }
            }
        }
        let mut next = self.clone();
        next.revision = event.revision;
        for id in touched {
            let old = next.remove(&id);
            let Some(record) = store
                .get(&model::keys::store(&id))?
                .and_then(|e| parse::<StoreRecord>(&e.key, &e.value))
            else {
                continue; // deleted (or unreadable): no longer served
            };
            // Credentials and keys: reuse the old maps when this event does not touch
            // them, patch a copy when it does (cost proportional to the store's own
            // size at most), read them whole for a store that just appeared.
            let (creds, keys) = match &old {
                None => (
                    Arc::new(self.load_credentials(store, ctx, &id)?),
                    Arc::new(self.load_keys(store, &id)?),
                ),
                Some(o) => {
                    let mut interner = KeyInterner::default();
                    (
                        patch(
                            &o.credentials,
                            event,
                            model::keys::CREDENTIALS,
                            &id,
                            |c, v| unseal(&ctx.master, &c.key, v),
                        ),
                        patch(&o.keys, event, model::keys::HYOK_KEYS, &id, |c, v| {
                            parse::<HyokKeyRecord>(&c.key, v).map(|rec| interner.entry(rec))
                        }),
                    )
                }
            };
            let account = AccountRoute::load(store, &id)?;
            next.insert(make_route(record, creds, keys, account, old.as_ref(), ctx));
        }
        Ok(next.with_client_trust())
    }

    fn load_credentials(
        &self,
        store: &dyn Store,
        ctx: &RoutingContext,
        id: &str,
    ) -> Result<HashMap<String, Zeroizing<Vec<u8>>>, StoreError> {
        Ok(store
            .scan(&model::keys::credentials_of(id))?
            .into_iter()
            .filter_map(|e| unseal(&ctx.master, &e.key, &e.value))
            .collect())
    }

    fn load_keys(
        &self,
        store: &dyn Store,
        id: &str,
    ) -> Result<HashMap<String, KeyRoute>, StoreError> {
        let mut interner = KeyInterner::default();
        Ok(store
            .scan(&model::keys::hyok_keys_of(id))?
            .into_iter()
            .filter_map(|e| parse::<HyokKeyRecord>(&e.key, &e.value))
            .map(|r| interner.entry(r))
            .collect())
    }
}

/// `map` after `event`'s changes to the children `<prefix><id>/<name>` of store `id`:
/// each changed name removed, then added back from its new value when `read` makes an
/// entry of it. `map` itself (shared) when the event does not touch it.
fn patch<V: Clone>(
    map: &Arc<HashMap<String, V>>,
    event: &WatchEvent,
    prefix: &str,
    id: &str,
    mut read: impl FnMut(&Change, &[u8]) -> Option<(String, V)>,
) -> Arc<HashMap<String, V>> {
    let changes: Vec<(&str, &Change)> = event
        .changes
        .iter()
        .filter_map(|c| {
            split_child(&c.key, prefix)
                .filter(|(sid, _)| *sid == id)
                .map(|(_, name)| (name, c))
        })
        .collect();
    if changes.is_empty() {
        return map.clone();
    }
    let mut next = HashMap::clone(map);
    for (name, change) in changes {
        next.remove(name);
        if let Some((name, value)) = change.value.as_deref().and_then(|v| read(change, v)) {
            next.insert(name, value);
        }
    }
    Arc::new(next)
}

/// A route for a local store (remote stores are not served), carrying per-store state
/// over from `old`.
fn make_route(
    record: StoreRecord,
    credentials: Arc<HashMap<String, Zeroizing<Vec<u8>>>>,
    keys: Arc<HashMap<String, KeyRoute>>,
    account: AccountRoute,
    old: Option<&Arc<StoreRoute>>,
    ctx: &RoutingContext,
) -> Option<StoreRoute> {
    if record.kind != model::StoreKind::Local {
        return None;
    }
    let quota = record.quota.or(ctx.default_quota);
    let bucket = match (quota, old.and_then(|o| o.quota.clone())) {
        (Some(q), Some(b)) if b.quota() == q => Some(b),
        (Some(q), _) => Some(Arc::new(TokenBucket::new(q))),
        (None, _) => None,
    };
    let health = match old {
        Some(o) if o.record.health_check_key == record.health_check_key => o.health.clone(),
        _ => Arc::new(HealthCache::default()),
    };
    Some(StoreRoute {
        base_path: record.xks_base_path(),
        source: ctx.sources.get(&record.source),
        credentials,
        keys,
        health,
        metrics: old.map(|o| o.metrics.clone()).unwrap_or_default(),
        quota: bucket,
        signing_keys: SigningKeyCache::default(),
        account: account.account,
        allowed_regions: account.regions,
        mtls: super::mtls::store_rule(&record, &ctx.client_trust),
        record,
    })
}

#[cfg(test)]
mod tests;

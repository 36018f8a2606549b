//! "Refresh all" as pure rules: given the local key stores and HYOK keys and what AWS
//! KMS lists for one account and region, what to link, import, update or report.
//!
//! - An AWS external key store already linked to a store (by its id) updates that
//!   store's connection state (and, for a remote store, its location and path).
//! - Else one whose (UriEndpoint, UriPath) equals a local store's (location endpoint,
//!   XKS base path) links that store, when it belongs to the account and the region
//!   (or has none yet) and is unlinked; a store linked to another AWS store is a
//!   conflict; a store of another account or region is reported. Nothing changes then.
//! - Else it becomes a `remote` store record (name from AWS, made unique).
//! - KMS keys in those stores (by `XksKeyConfiguration.Id`): a local store's unlinked
//!   HYOK key with that external id is linked; an unknown external id in a local store
//!   is reported, never invented; keys of remote stores are imported (or follow AWS).
//!   Keys pending deletion are reported and skipped.
//! - Linked stores and keys that AWS no longer lists are reported; nothing is deleted.
//!
//! Applying a plan and planning again yields only `Unchanged` (idempotence).

use std::collections::{BTreeMap, HashMap, HashSet};

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{
    AwsLink, HyokKeyRecord, KmsKeyLink, StoreKind, StoreRecord, XKS_PATH_SUFFIX, XksLocation,
    validate_external_key_id,
};
use crate::aws::{AwsKey, AwsKeyStore, XksConnectivity};

/// A local store as the planner sees it: its record, its account and its HYOK keys.
#[derive(Debug, Clone, PartialEq)]
pub struct LocalStore {
    /// The store.
    pub record: StoreRecord,
    /// The AWS account it belongs to.
    pub account: Option<String>,
    /// Its HYOK keys.
    pub keys: Vec<HyokKeyRecord>,
}

/// The account and region a refresh looks at.
#[derive(Debug, Clone, Copy)]
pub struct Scope<'a> {
    /// The AWS account id.
    pub account: &'a str,
    /// The region.
    pub region: &'a str,
}

/// What to do about one AWS external key store.
#[derive(Debug, Clone, PartialEq)]
pub enum StoreAction {
    /// Link the unlinked local store `store_id` (and set its region).
    Link {
        /// The local store.
        store_id: String,
        /// Its name.
        name: String,
        /// The link.
        link: AwsLink,
        /// The region.
        region: String,
    },
    /// A linked local store's connection state or error code changed on AWS.
    UpdateLink {
        /// The local store.
        store_id: String,
        /// Its name.
        name: String,
        /// The link as AWS describes it now.
        link: AwsLink,
    },
    /// Create this remote store record (bound to the account).
    ImportRemote {
        /// The new record (boxed: far larger than the other actions).
        record: Box<StoreRecord>,
    },
    /// A remote store changed on AWS: its link, location and path follow AWS.
    UpdateRemote {
        /// The remote store.
        store_id: String,
        /// Its name.
        name: String,
        /// The link as AWS describes it now.
        link: AwsLink,
        /// Its location on AWS.
        location: XksLocation,
        /// Its URI path prefix on AWS.
        uri_path_prefix: String,
    },
    /// Already as AWS describes it.
    Unchanged {
        /// The local store.
        store_id: String,
        /// Its name.
        name: String,
    },
    /// Nothing done; reported.
    Skip(Finding),
}

/// What to do about one KMS key.
#[derive(Debug, Clone, PartialEq)]
pub enum KeyAction {
    /// Link the local store's unlinked HYOK key.
    Link {
        /// The store.
        store_id: String,
        /// The HYOK key.
        external_id: String,
        /// The link.
        link: KmsKeyLink,
    },
    /// Create a HYOK key record of a remote store (no source key).
    Import {
        /// The remote store.
        store_id: String,
        /// The external key id.
        external_id: String,
        /// The link.
        link: KmsKeyLink,
    },
    /// A remote store's key now corresponds to another KMS key: follow AWS.
    UpdateLink {
        /// The remote store.
        store_id: String,
        /// The HYOK key.
        external_id: String,
        /// The link.
        link: KmsKeyLink,
    },
    /// Already linked to this KMS key.
    Unchanged,
    /// Not a key of an external key store this refresh handles.
    Ignored,
    /// Nothing done; reported.
    Skip(Finding),
}

/// What a refresh reports without changing anything.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum FindingKind {
    /// The matching local store is linked to another AWS store.
    StoreLinkConflict,
    /// The matching local store belongs to another account or region, or to none.
    StoreOtherScope,
    /// A linked store's AWS store is gone from AWS.
    StoreMissingOnAws,
    /// A KMS key's external key id is not a HYOK key of its (local) store.
    KeyUnknown,
    /// The HYOK key is linked to another KMS key.
    KeyLinkConflict,
    /// The KMS key is pending deletion: skipped.
    KeyPendingDeletion,
    /// A linked HYOK key's KMS key is gone from AWS.
    KeyMissingOnAws,
    /// AWS's external key id breaks keyhold's rules: not imported.
    KeyInvalidId,
    /// The object changed while the refresh ran: run it again.
    ChangedMeanwhile,
}

/// One thing a refresh reports.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Finding {
    /// What kind of finding.
    pub kind: FindingKind,
    /// The AWS object (`cks-...` or a KMS key id).
    pub aws_id: String,
    /// The local store concerned (its name), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub store: Option<String>,
    /// The external key id concerned, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_id: Option<String>,
    /// What was found and what to do.
    pub message: String,
}

/// What a refresh changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ChangeKind {
    /// A local store was linked.
    StoreLinked,
    /// A linked store's connection state was updated.
    StoreStateUpdated,
    /// A remote store was imported.
    RemoteStoreImported,
    /// A remote store was updated from AWS.
    RemoteStoreUpdated,
    /// A HYOK key was linked.
    KeyLinked,
    /// A remote store's key was imported.
    KeyImported,
    /// A remote store's key link was updated from AWS.
    KeyLinkUpdated,
}

/// One change a refresh made.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Change {
    /// What changed.
    pub kind: ChangeKind,
    /// The local store (its name).
    pub store: String,
    /// The AWS object (`cks-...` or a KMS key id).
    pub aws_id: String,
    /// The HYOK key, for key changes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_id: Option<String>,
}

/// Most changes and findings a summary lists (the counts go on).
pub const MAX_LISTED: usize = 200;

/// What a refresh did: counts, the changes and findings (at most [`MAX_LISTED`] each).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RefreshSummary {
    /// Regions completely listed and handled.
    #[serde(default)]
    pub regions: Vec<String>,
    /// Changes made.
    #[serde(default)]
    pub changed: u64,
    /// Stores and keys found already up to date.
    #[serde(default)]
    pub unchanged: u64,
    /// Findings reported.
    #[serde(default)]
    pub reported: u64,
    /// The changes (the first [`MAX_LISTED`]).
    #[serde(default)]
    pub changes: Vec<Change>,
    /// The findings (the first [`MAX_LISTED`]).
    #[serde(default)]
    pub findings: Vec<Finding>,
}

impl RefreshSummary {
    /// Records a change.
    pub fn change(&mut self, change: Change) {
        self.changed += 1;
        if self.changes.len() < MAX_LISTED {
            self.changes.push(change);
        }
    }

    /// Records a finding.
    pub fn report(&mut self, finding: Finding) {
        self.reported += 1;
        if self.findings.len() < MAX_LISTED {
            self.findings.push(finding);
        }
    }

    /// One line: what changed, or that nothing did.
    pub fn text(&self) -> String {
        let changes = if self.changed == 0 {
            "nothing changed".to_string()
        } else {
            format!("{} changed", self.changed)
        };
        format!(
            "{changes}, {} up to date, {} reported",
            self.unchanged, self.reported
        )
    }
}

/// The plan for one region's AWS external key stores.
#[derive(Debug, Clone, PartialEq)]
pub struct StorePlan {
    /// One action per AWS store, in AWS's order: (AWS store id, action).
    pub actions: Vec<(String, StoreAction)>,
    /// Linked stores of the scope whose AWS store is gone.
    pub missing: Vec<Finding>,
}

/// An endpoint compared case-insensitively, without a trailing slash or `:443`.
fn endpoint_key(endpoint: &str) -> String {
    let e = endpoint.trim().trim_end_matches('/').to_ascii_lowercase();
    e.strip_suffix(":443").map(str::to_string).unwrap_or(e)
}

/// The endpoint AWS KMS reaches a store at, if its location is set.
fn location_endpoint(location: &XksLocation) -> Option<&str> {
    match location {
        XksLocation::Unset => None,
        XksLocation::Public { endpoint } | XksLocation::Vpc { endpoint, .. } => Some(endpoint),
    }
}

/// The location of an AWS store.
pub fn aws_location(store: &AwsKeyStore) -> XksLocation {
    match &store.connectivity {
        XksConnectivity::Public => XksLocation::Public {
            endpoint: store.uri_endpoint.clone(),
        },
        XksConnectivity::Vpc { service_name } => XksLocation::Vpc {
            service_name: service_name.clone(),
            endpoint: store.uri_endpoint.clone(),
        },
    }
}

/// The URI path prefix of an AWS `XksProxyUriPath` (`/<prefix>/kms/xks/v1`).
pub fn prefix_of_path(path: &str) -> String {
    let p = path.strip_suffix(XKS_PATH_SUFFIX).unwrap_or(path);
    p.trim_matches('/').to_string()
}

/// The link an AWS store describes.
fn link_of(store: &AwsKeyStore) -> AwsLink {
    AwsLink {
        custom_key_store_id: store.id.clone(),
        connection_state: store.connection_state,
        connection_error_code: store.connection_error_code.clone(),
    }
}

/// A store name keyhold accepts made from AWS's `name` (1..=64 characters, no `/` or
/// control characters), unique among `taken` (else suffixed with the AWS id).
pub fn remote_store_name(name: &str, aws_id: &str, taken: &HashSet<String>) -> String {
    let clean: String = name
        .chars()
        .map(|c| if c.is_control() || c == '/' { '-' } else { c })
        .collect();
    let clean = clean.trim();
    let base: String = if clean.is_empty() {
        aws_id.to_string()
    } else {
        clean.chars().take(64).collect()
    };
    if !taken.contains(&base) {
        return base;
    }
    let id: String = aws_id.chars().take(40).collect();
    let room = 64 - id.chars().count() - 1;
    let head: String = base.chars().take(room).collect();
    let mut candidate = format!("{head}-{id}");
    let mut n = 2;
    while taken.contains(&candidate) {
        let suffix = format!("-{id}-{n}");
        let head: String = base.chars().take(64 - suffix.chars().count()).collect();
        candidate = format!("{head}{suffix}");
        n += 1;
    }
    candidate
}

fn store_finding(kind: FindingKind, aws: &AwsKeyStore, store: &str, message: String) -> Finding {
    Finding {
        kind,
        aws_id: aws.id.clone(),
        store: Some(store.to_string()),
        external_id: None,
        message,
    }
}

/// Plans what to do about the AWS external key stores `aws` of `scope`, given every
/// local store (`local`: all of them, for names and matches outside the scope).
/// `new_id` names new remote store records; `now` is their creation time.
pub fn plan_stores(
    scope: Scope<'_>,
    local: &[LocalStore],
    aws: &[AwsKeyStore],
    new_id: &mut dyn FnMut() -> String,
    now: i64,
) -> StorePlan {
    let mut taken: HashSet<String> = local.iter().map(|s| s.record.name.clone()).collect();
    // AWS store ids already claimed by a link (existing or planned).
    let mut claimed: HashMap<String, usize> = HashMap::new();
    for (i, s) in local.iter().enumerate() {
        if let Some(link) = &s.record.aws {
            claimed.insert(link.custom_key_store_id.clone(), i);
        }
    }
    let mut planned_links: HashSet<usize> = HashSet::new();
    let mut actions = Vec::new();
    for store in aws {
        let action = match claimed.get(&store.id) {
            Some(&i) => follow_linked(&local[i], store),
            None => match match_local(scope, local, store, &planned_links) {
                Matched::Link(i) => {
                    planned_links.insert(i);
                    let s = &local[i].record;
                    StoreAction::Link {
                        store_id: s.id.clone(),
                        name: s.name.clone(),
                        link: link_of(store),
                        region: scope.region.to_string(),
                    }
                }
                Matched::Refused(finding) => StoreAction::Skip(finding),
                Matched::None => {
                    let name = remote_store_name(&store.name, &store.id, &taken);
                    taken.insert(name.clone());
                    StoreAction::ImportRemote {
                        record: Box::new(remote_record(new_id(), name, store, scope.region, now)),
                    }
                }
            },
        };
        actions.push((store.id.clone(), action));
    }
    let listed: HashSet<&str> = aws.iter().map(|s| s.id.as_str()).collect();
    let missing = local
        .iter()
        .filter(|s| s.account.as_deref() == Some(scope.account))
        .filter(|s| s.record.region.as_deref() == Some(scope.region))
        .filter_map(|s| {
            let link = s.record.aws.as_ref()?;
            (!listed.contains(link.custom_key_store_id.as_str())).then(|| Finding {
                kind: FindingKind::StoreMissingOnAws,
                aws_id: link.custom_key_store_id.clone(),
                store: Some(s.record.name.clone()),
                external_id: None,
                message: format!(
                    "key store '{}' is linked to {}, which AWS KMS no longer lists in {}: unlink or delete it",
                    s.record.name, link.custom_key_store_id, scope.region
                ),
            })
        })
        .collect();
    StorePlan { actions, missing }
}

/// The action for an AWS store already linked to local record `s`.
fn follow_linked(s: &LocalStore, store: &AwsKeyStore) -> StoreAction {
    let r = &s.record;
    let link = link_of(store);
    match r.kind {
        StoreKind::Local => {
            if r.aws.as_ref() == Some(&link) {
                StoreAction::Unchanged {
                    store_id: r.id.clone(),
                    name: r.name.clone(),
                }
            } else {
                StoreAction::UpdateLink {
                    store_id: r.id.clone(),
                    name: r.name.clone(),
                    link,
                }
            }
        }
        StoreKind::Remote => {
            let location = aws_location(store);
            let prefix = prefix_of_path(&store.uri_path);
            if r.aws.as_ref() == Some(&link)
                && r.location == location
                && r.uri_path_prefix == prefix
            {
                StoreAction::Unchanged {
                    store_id: r.id.clone(),
                    name: r.name.clone(),
                }
            } else {
                StoreAction::UpdateRemote {
                    store_id: r.id.clone(),
                    name: r.name.clone(),
                    link,
                    location,
                    uri_path_prefix: prefix,
                }
            }
        }
    }
}

enum Matched {
    Link(usize),
    Refused(Finding),
    None,
}

/// The local store an unclaimed AWS store matches by endpoint and path, and whether
/// it may be linked.
fn match_local(
    scope: Scope<'_>,
    local: &[LocalStore],
    store: &AwsKeyStore,
    planned: &HashSet<usize>,
) -> Matched {
    let endpoint = endpoint_key(&store.uri_endpoint);
    let found = local.iter().enumerate().find(|(_, s)| {
        s.record.kind == StoreKind::Local
            && location_endpoint(&s.record.location).is_some_and(|e| endpoint_key(e) == endpoint)
            && s.record.xks_base_path() == store.uri_path
    });
    let Some((i, s)) = found else {
        return Matched::None;
    };
    let r = &s.record;
    if let Some(link) = &r.aws {
        return Matched::Refused(store_finding(
            FindingKind::StoreLinkConflict,
            store,
            &r.name,
            format!(
                "AWS store {} ('{}') has the endpoint and path of key store '{}', which is linked to {}: not linked",
                store.id, store.name, r.name, link.custom_key_store_id
            ),
        ));
    }
    if planned.contains(&i) {
        return Matched::Refused(store_finding(
            FindingKind::StoreLinkConflict,
            store,
            &r.name,
            format!(
                "AWS store {} ('{}') has the endpoint and path of key store '{}', which another AWS store links in this refresh: not linked",
                store.id, store.name, r.name
            ),
        ));
    }
    let account_ok = s.account.as_deref() == Some(scope.account);
    let region_ok = r.region.as_deref().is_none_or(|x| x == scope.region);
    if !account_ok || !region_ok {
        let whose = match (&s.account, &r.region) {
            (None, _) => "belongs to no AWS account".to_string(),
            (Some(a), _) if a != scope.account => format!("belongs to AWS account {a}"),
            (_, Some(region)) => format!("is in region {region}"),
            _ => "is out of scope".to_string(),
        };
        return Matched::Refused(store_finding(
            FindingKind::StoreOtherScope,
            store,
            &r.name,
            format!(
                "AWS store {} ('{}') of account {} in {} has the endpoint and path of key store '{}', which {whose}: not linked (set the store's account and region, then refresh again)",
                store.id, store.name, scope.account, scope.region, r.name
            ),
        ));
    }
    Matched::Link(i)
}

/// A remote store record for AWS store `store`.
fn remote_record(
    id: String,
    name: String,
    store: &AwsKeyStore,
    region: &str,
    now: i64,
) -> StoreRecord {
    StoreRecord {
        id,
        name,
        source: String::new(),
        plugin: String::new(),
        container: None,
        kind: StoreKind::Remote,
        uri_path_prefix: prefix_of_path(&store.uri_path),
        health_check_key: String::new(),
        max_credentials: super::MAX_CREDENTIALS,
        blocked: false,
        success_audit: false,
        mtls: false,
        mtls_ca_pem: None,
        mtls_cns: Vec::new(),
        location: aws_location(store),
        quota: None,
        aws: Some(link_of(store)),
        region: Some(region.to_string()),
        rotation_schedule: None,
        created_at: now,
    }
}

/// Where the keys of an AWS store go.
#[derive(Debug, Clone, PartialEq)]
struct Target {
    store_id: String,
    name: String,
    kind: StoreKind,
    /// external id -> its link.
    keys: BTreeMap<String, Option<KmsKeyLink>>,
}

/// The stores whose KMS keys a refresh handles (by AWS store id), with their HYOK
/// keys as planned so far: [`KeyTargets::plan_key`] plans one key at a time.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct KeyTargets {
    targets: HashMap<String, Target>,
    /// KMS key ids AWS listed in those stores.
    seen: HashSet<String>,
}

impl KeyTargets {
    /// The targets after `plan`'s store actions (those that were carried out: leave
    /// the others out with [`KeyTargets::forget`]).
    pub fn new(local: &[LocalStore], plan: &StorePlan) -> KeyTargets {
        let by_id: HashMap<&str, &LocalStore> =
            local.iter().map(|s| (s.record.id.as_str(), s)).collect();
        let mut targets = HashMap::new();
        for (aws_id, action) in &plan.actions {
            let (store_id, kind) = match action {
                StoreAction::Link { store_id, .. }
                | StoreAction::UpdateLink { store_id, .. }
                | StoreAction::UpdateRemote { store_id, .. }
                | StoreAction::Unchanged { store_id, .. } => match by_id.get(store_id.as_str()) {
                    Some(s) => (store_id.clone(), s.record.kind),
                    None => continue,
                },
                StoreAction::ImportRemote { record } => (record.id.clone(), StoreKind::Remote),
                StoreAction::Skip(_) => continue,
            };
            let (name, keys) = match action {
                StoreAction::ImportRemote { record } => (record.name.clone(), BTreeMap::new()),
                _ => match by_id.get(store_id.as_str()) {
                    Some(s) => (
                        s.record.name.clone(),
                        s.keys
                            .iter()
                            .map(|k| (k.external_id.clone(), k.aws.clone()))
                            .collect(),
                    ),
                    None => continue,
                },
            };
            targets.insert(
                aws_id.clone(),
                Target {
                    store_id,
                    name,
                    kind,
                    keys,
                },
            );
        }
        KeyTargets {
            targets,
            seen: HashSet::new(),
        }
    }

    /// Leaves AWS store `aws_id`'s keys alone (its store action was not carried out).
    pub fn forget(&mut self, aws_id: &str) {
        self.targets.remove(aws_id);
    }

    /// The store id and name the keys of AWS store `aws_id` go to.
    pub fn store_of(&self, aws_id: &str) -> Option<(&str, &str)> {
        self.targets
            .get(aws_id)
            .map(|t| (t.store_id.as_str(), t.name.as_str()))
    }

    /// Plans what to do about KMS key `key` (as `DescribeKey` answers it), and takes
    /// the result as done for the keys planned after it.
    pub fn plan_key(&mut self, key: &AwsKey) -> KeyAction {
        let (Some(aws_store), Some(ext)) = (&key.custom_key_store_id, &key.xks_key_id) else {
            return KeyAction::Ignored;
        };
        let Some(target) = self.targets.get_mut(aws_store) else {
            return KeyAction::Ignored;
        };
        self.seen.insert(key.key_id.clone());
        let finding = |kind, message: String| Finding {
            kind,
            aws_id: key.key_id.clone(),
            store: Some(target.name.clone()),
            external_id: Some(ext.clone()),
            message,
        };
        if key.key_state == "PendingDeletion" || key.key_state == "PendingReplicaDeletion" {
            return KeyAction::Skip(finding(
                FindingKind::KeyPendingDeletion,
                format!(
                    "KMS key {} (external key '{ext}' of key store '{}') is pending deletion on AWS: skipped",
                    key.key_id, target.name
                ),
            ));
        }
        let link = KmsKeyLink {
            key_id: key.key_id.clone(),
            key_arn: key.arn.clone(),
        };
        let store_id = target.store_id.clone();
        match (target.kind, target.keys.get(ext)) {
            (_, Some(Some(current))) if current.key_id == key.key_id => KeyAction::Unchanged,
            (StoreKind::Local, None) => KeyAction::Skip(finding(
                FindingKind::KeyUnknown,
                format!(
                    "KMS key {} uses external key '{ext}', which key store '{}' does not have: create that HYOK key (bound to its source key), then refresh again",
                    key.key_id, target.name
                ),
            )),
            (StoreKind::Local, Some(Some(current))) => KeyAction::Skip(finding(
                FindingKind::KeyLinkConflict,
                format!(
                    "KMS key {} uses external key '{ext}' of key store '{}', which is linked to KMS key {}: not linked",
                    key.key_id, target.name, current.key_id
                ),
            )),
            (StoreKind::Local, Some(None)) => {
                target.keys.insert(ext.clone(), Some(link.clone()));
                KeyAction::Link {
                    store_id,
                    external_id: ext.clone(),
                    link,
                }
            }
            (StoreKind::Remote, found) => {
                if let Err(e) = validate_external_key_id(ext) {
                    return KeyAction::Skip(finding(
                        FindingKind::KeyInvalidId,
                        format!("KMS key {}: {e}: not imported", key.key_id),
                    ));
                }
                let known = found.is_some();
                target.keys.insert(ext.clone(), Some(link.clone()));
                if known {
                    KeyAction::UpdateLink {
                        store_id,
                        external_id: ext.clone(),
                        link,
                    }
                } else {
                    KeyAction::Import {
                        store_id,
                        external_id: ext.clone(),
                        link,
                    }
                }
            }
        }
    }

    /// Linked HYOK keys of the handled stores whose KMS key AWS did not list (call
    /// once every key has been planned).
    pub fn missing(&self) -> Vec<Finding> {
        let mut out = Vec::new();
        let mut targets: Vec<&Target> = self.targets.values().collect();
        targets.sort_by(|a, b| a.name.cmp(&b.name));
        for t in targets {
            for (ext, link) in &t.keys {
                let Some(link) = link else { continue };
                if self.seen.contains(&link.key_id) {
                    continue;
                }
                out.push(Finding {
                    kind: FindingKind::KeyMissingOnAws,
                    aws_id: link.key_id.clone(),
                    store: Some(t.name.clone()),
                    external_id: Some(ext.clone()),
                    message: format!(
                        "HYOK key '{ext}' of key store '{}' is linked to KMS key {}, which AWS KMS no longer lists: unlink or delete it",
                        t.name, link.key_id
                    ),
                });
            }
        }
        out
    }
}

#[cfg(test)]
mod tests;

//! Linked key stores: the AWS side of a store driven through [`crate::aws::Kms`].
//! Every operation checks the product's rules locally first, then calls AWS KMS, then
//! commits locally, so that a refusal on either side leaves nothing half-made.

use std::{sync::Arc, time::Duration};

use zeroize::Zeroizing;

use super::{OpError, Operations, StoreUpdate, Versioned, decode, to_json};
use crate::{
    api::stores::{LinkPlan, LinkRequest, NewStore},
    aws::{
        AwsKeyStore, AwsSettings, Kms, XksConnectivity, XksCredential, XksStoreSpec, XksStoreUpdate,
    },
    model::{
        AwsLink, ConnectionState, CredentialsFile, HyokKeyRecord, KmsKeyLink, StoreKind,
        StoreRecord, XksLocation, keys,
        rules::{self, RuleViolation},
    },
    store::{Condition, Write},
};

/// Waits until this node's data plane serves store revision `n` (set by the server so
/// that AWS KMS's calls back to the proxy, made while an operation runs, find what
/// the operation just committed).
pub type AppliedWaiter = Arc<dyn Fn(u64) + Send + Sync>;

/// How long a connect or disconnect is followed through its transient state before the
/// operation answers (the periodic state sync follows it further).
pub const TRANSITION_WAIT: Duration = Duration::from_secs(30);

fn rule(code: &'static str, message: String) -> OpError {
    OpError::Rule(RuleViolation { code, message })
}

impl Operations {
    /// Waits for the data plane with `waiter` after each commit an AWS call depends on
    /// (set once, when the data plane exists).
    pub fn set_applied_waiter(&self, waiter: AppliedWaiter) {
        let _ = self.applied.set(waiter);
    }

    /// Blocks until the data plane serves everything committed so far.
    pub(crate) fn wait_applied(&self) -> Result<(), OpError> {
        if let Some(waiter) = self.applied.get() {
            waiter(self.revision()?);
        }
        Ok(())
    }

    /// The AWS KMS client of `account` in `region` (through the account's AWS
    /// connection).
    pub fn kms_for_account(&self, account: &str, region: &str) -> Result<Arc<dyn Kms>, OpError> {
        let rec = self.get_account(account)?;
        if !rec.regions.iter().any(|r| r == region) {
            return Err(rule(
                "region_not_allowed",
                format!(
                    "region '{region}' is not among AWS account {account}'s regions ({}): add it to the account first",
                    rec.regions.join(", ")
                ),
            ));
        }
        let Some(connection) = rec.aws_connection else {
            return Err(rule(
                "account_without_connection",
                format!(
                    "AWS account {account} has no AWS connection: set its aws_connection first"
                ),
            ));
        };
        let settings: AwsSettings = self.aws_settings(&connection, region)?;
        Ok(crate::aws::connect(&settings)?)
    }

    /// The AWS KMS client of a store (its account's connection, its region).
    pub fn kms_for_store(&self, store: &StoreRecord) -> Result<Arc<dyn Kms>, OpError> {
        let account = self.store_account(&store.id)?.ok_or_else(|| {
            rule(
                "store_without_account",
                format!(
                    "key store '{}' belongs to no AWS account: it cannot be linked",
                    store.name
                ),
            )
        })?;
        let region = store.region.as_deref().ok_or_else(|| {
            rule(
                "store_without_region",
                format!(
                    "key store '{}' has no AWS region: set its region first",
                    store.name
                ),
            )
        })?;
        self.kms_for_account(&account, region)
    }

    /// The id of the store named `name`.
    pub fn store_id_by_name(&self, name: &str) -> Result<String, OpError> {
        let entry = self.entry(&keys::store_name_index(name), "key store", name)?;
        Ok(String::from_utf8_lossy(&entry.value).into_owned())
    }

    /// Sets (or clears) a store's AWS link as one version-checked change.
    pub fn set_store_link(
        &self,
        id: &str,
        link: Option<AwsLink>,
    ) -> Result<Versioned<StoreRecord>, OpError> {
        self.change_store(id, |next| {
            next.aws = link;
            Ok(())
        })
    }

    /// Applies `f` to store `id` and commits it if nothing changed meanwhile.
    pub fn change_store(
        &self,
        id: &str,
        f: impl FnOnce(&mut StoreRecord) -> Result<(), OpError>,
    ) -> Result<Versioned<StoreRecord>, OpError> {
        let current = self.get_store(id)?;
        let mut next = current.value.clone();
        f(&mut next)?;
        let version = self.commit_store_change(
            id,
            &[Condition::Revision(keys::store(id), current.version)],
            vec![Write::Put(keys::store(id), to_json(&next))],
        )?;
        Ok(Versioned {
            value: next,
            version,
        })
    }

    /// Sets (or clears) a HYOK key's AWS KMS key link.
    pub fn set_hyok_key_link(
        &self,
        store_id: &str,
        external_id: &str,
        link: Option<KmsKeyLink>,
    ) -> Result<HyokKeyRecord, OpError> {
        let key = keys::hyok_key(store_id, external_id);
        let entry = self.entry(&key, "HYOK key", external_id)?;
        let mut record: HyokKeyRecord = decode(&entry)?;
        record.aws = link;
        self.commit_read(
            &[Condition::Revision(key.clone(), entry.revision)],
            vec![Write::Put(key, to_json(&record))],
            "HYOK key",
            external_id,
            entry.revision,
        )?;
        Ok(record)
    }

    /// Adds a credential to linked store `current` (see [`Operations::add_credential`]):
    /// the new credential is pushed to AWS KMS before the oldest ones beyond max
    /// credentials are deleted (never the one AWS KMS signs with), so that requests
    /// signed with the old and the new credential both succeed during the switch. A
    /// refused push removes the new credential again.
    pub(super) fn add_linked_credential(
        &self,
        current: &Versioned<StoreRecord>,
        link: &AwsLink,
    ) -> Result<(CredentialsFile, Vec<String>), OpError> {
        let store_id = current.value.id.as_str();
        // Checked before AWS KMS is called, and again with the state AWS KMS reports.
        rules::ensure_credential_addable(&current.value)?;
        let kms = self.kms_for_store(&current.value)?;
        let remote = block_on_aws(kms.describe_xks_store(&link.custom_key_store_id))?;
        let current = self.record_aws_state(store_id, &remote)?;
        rules::ensure_credential_addable(&current.value)?;
        let (file, new_key) = self.insert_credential(store_id)?;
        self.wait_applied()?;
        let update = XksStoreUpdate {
            credential: Some(XksCredential {
                access_key_id: file.credential.access_key_id.clone(),
                secret: Zeroizing::new(file.credential.raw_secret_access_key.clone()),
            }),
            ..XksStoreUpdate::default()
        };
        if let Err(e) = block_on_aws(kms.update_xks_store(&link.custom_key_store_id, &update)) {
            let _ = self.store.delete(&new_key);
            return Err(e);
        }
        let evicted = self.evict_credentials(store_id, &[&file.credential.access_key_id])?;
        Ok((file, evicted))
    }

    /// Records what AWS KMS says of a linked store (connection state and error code).
    pub(super) fn record_aws_state(
        &self,
        store_id: &str,
        remote: &AwsKeyStore,
    ) -> Result<Versioned<StoreRecord>, OpError> {
        let current = self.get_store(store_id)?;
        let seen = AwsLink {
            custom_key_store_id: remote.id.clone(),
            connection_state: remote.connection_state,
            connection_error_code: remote.connection_error_code.clone(),
        };
        if current.value.aws.as_ref() == Some(&seen) {
            return Ok(current);
        }
        self.set_store_link(store_id, Some(seen))
    }

    /// Reads a linked store's connection state from AWS KMS and records it.
    pub fn sync_store_state(&self, store_id: &str) -> Result<Versioned<StoreRecord>, OpError> {
        let current = self.get_store(store_id)?;
        let link = linked(&current.value)?;
        let kms = self.kms_for_store(&current.value)?;
        let remote = block_on_aws(kms.describe_xks_store(&link.custom_key_store_id))?;
        self.record_aws_state(store_id, &remote)
    }

    /// Syncs the connection state of every linked local store; failures are logged
    /// and skipped (the periodic state sync).
    pub fn sync_linked_stores(&self) -> Result<usize, OpError> {
        let mut synced = 0;
        for st in self.list_stores()? {
            if st.value.kind != StoreKind::Local || st.value.aws.is_none() {
                continue;
            }
            match self.sync_store_state(&st.value.id) {
                Ok(_) => synced += 1,
                Err(e) => tracing::warn!(store = %st.value.name, "AWS state sync failed: {e}"),
            }
        }
        Ok(synced)
    }

    /// Creates a key store; a linked one (`new.linked`) also on AWS KMS, where AWS KMS
    /// first checks that it reaches the proxy with the given network settings (a
    /// health call back to this server): if it does not, nothing is left on either
    /// side. The AWS store starts `DISCONNECTED`.
    pub fn create_store_with_link(&self, new: NewStore) -> Result<CreatedWithLink, OpError> {
        if let Some(schedule) = &new.rotation_schedule {
            if !new.linked {
                return Err(rule(
                    "schedule_needs_linked_store",
                    "a rotation schedule pushes each new credential to AWS KMS: create the store linked (linked = true) to give it one"
                        .into(),
                ));
            }
            self.get_schedule(schedule)?;
        }
        if !new.linked {
            let (rec, file) = self.create_store(new)?;
            return Ok((self.get_store(&rec.id)?, file, None));
        }
        let schedule = new.rotation_schedule.clone();
        let account = new.account.clone().ok_or_else(|| {
            rule(
                "store_without_account",
                "a linked key store needs an AWS account: set account".into(),
            )
        })?;
        let region = new.region.clone().ok_or_else(|| {
            rule(
                "store_without_region",
                "a linked key store needs an AWS region: set region".into(),
            )
        })?;
        let connectivity = connectivity_of(&new.location)?;
        let kms = self.kms_for_account(&account, &region)?;
        let (rec, file) = self.create_store(new)?;
        let created = self.wait_applied().and_then(|()| {
            let spec = XksStoreSpec {
                name: rec.name.clone(),
                uri_endpoint: endpoint_of(&rec.location)?,
                uri_path: rec.xks_base_path(),
                connectivity,
                credential: XksCredential {
                    access_key_id: file.credential.access_key_id.clone(),
                    secret: Zeroizing::new(file.credential.raw_secret_access_key.clone()),
                },
            };
            block_on_aws(kms.create_xks_store(&spec))
        });
        let linked = created.and_then(|cks| {
            let link = AwsLink::new(cks, ConnectionState::Disconnected);
            self.set_store_link(&rec.id, Some(link))
        });
        let linked = match linked {
            Ok(linked) => linked,
            Err(e) => {
                self.purge_store(&rec.id)?;
                return Err(e);
            }
        };
        let Some(schedule) = schedule else {
            return Ok((linked, file, None));
        };
        match self.assign_schedule(&rec.id, &schedule) {
            Ok(state) => Ok((self.get_store(&rec.id)?, file, Some(state))),
            Err(e) => {
                // The schedule went away meanwhile: undo both sides.
                self.delete_aws_side(&linked.value)?;
                self.purge_store(&rec.id)?;
                Err(e)
            }
        }
    }

    /// What linking an unlinked store would create on AWS KMS, for review.
    pub fn link_preview(&self, store_id: &str, edits: &LinkRequest) -> Result<LinkPlan, OpError> {
        let current = self.get_store(store_id)?.value;
        rules::ensure_local(&current, "AWS link")?;
        if current.aws.is_some() {
            return Err(rule(
                "store_already_linked",
                format!("key store '{}' is linked already", current.name),
            ));
        }
        let location = edits.location.clone().unwrap_or(current.location.clone());
        let region = edits.region.clone().or(current.region.clone());
        let access_key_id = self
            .list_credentials(store_id)?
            .last()
            .map(|(akid, _)| akid.clone())
            .ok_or_else(|| {
                rule(
                    "store_without_credentials",
                    format!(
                        "key store '{}' has no credential: add one first",
                        current.name
                    ),
                )
            })?;
        Ok(LinkPlan {
            name: edits.name.clone().unwrap_or(current.name.clone()),
            account: self.store_account(store_id)?,
            region,
            uri_endpoint: endpoint_of(&location).ok(),
            uri_path: current.xks_base_path(),
            location,
            access_key_id,
        })
    }

    /// Links an unlinked local store: creates its AWS external key store (with the
    /// store's newest credential and the reviewed, possibly edited, networking
    /// details), then records the link and the edits. A refusal leaves the store as
    /// it was.
    pub fn link_store(
        &self,
        store_id: &str,
        edits: LinkRequest,
    ) -> Result<Versioned<StoreRecord>, OpError> {
        let plan = self.link_preview(store_id, &edits)?;
        let current = self.get_store(store_id)?;
        rules::ensure_unblocked(&current.value)?;
        let account = plan.account.clone().ok_or_else(|| {
            rule(
                "store_without_account",
                format!(
                    "key store '{}' belongs to no AWS account: it cannot be linked",
                    current.value.name
                ),
            )
        })?;
        let region = plan.region.clone().ok_or_else(|| {
            rule(
                "store_without_region",
                format!(
                    "key store '{}' has no AWS region: give one (region)",
                    current.value.name
                ),
            )
        })?;
        crate::model::validate_region(&region)?;
        if let Some(name) = &edits.name {
            crate::model::validate_name("store", name)?;
        }
        let connectivity = connectivity_of(&plan.location)?;
        let kms = self.kms_for_account(&account, &region)?;
        let secret = self.credential_secret(store_id, &plan.access_key_id)?;
        let spec = XksStoreSpec {
            name: plan.name.clone(),
            uri_endpoint: endpoint_of(&plan.location)?,
            uri_path: plan.uri_path.clone(),
            connectivity,
            credential: XksCredential {
                access_key_id: plan.access_key_id.clone(),
                secret,
            },
        };
        let cks = block_on_aws(kms.create_xks_store(&spec))?;
        let link = AwsLink::new(cks, ConnectionState::Disconnected);
        if plan.name != current.value.name {
            // A rename goes through the name index.
            self.update_store(
                store_id,
                StoreUpdate {
                    name: Some(plan.name.clone()),
                    ..StoreUpdate::default()
                },
                None,
            )?;
        }
        self.change_store(store_id, move |next| {
            next.location = plan.location;
            next.region = Some(region);
            next.aws = Some(link);
            Ok(())
        })
    }

    /// Connects (`connect`) or disconnects a linked store on AWS KMS and follows it
    /// through the transient state (at most [`TRANSITION_WAIT`]), recording each state
    /// seen; the answer is the last one (`FAILED` with AWS's `ConnectionErrorCode`).
    pub fn set_store_connected(
        &self,
        store_id: &str,
        connect: bool,
    ) -> Result<Versioned<StoreRecord>, OpError> {
        let current = self.get_store(store_id)?;
        let link = linked(&current.value)?;
        let kms = self.kms_for_store(&current.value)?;
        let cks = link.custom_key_store_id.clone();
        let (call, transient) = if connect {
            (kms.connect_store(&cks), ConnectionState::Connecting)
        } else {
            (kms.disconnect_store(&cks), ConnectionState::Disconnecting)
        };
        block_on_aws(call)?;
        self.change_store(store_id, |next| {
            next.aws = Some(AwsLink::new(cks.clone(), transient));
            Ok(())
        })?;
        let deadline = std::time::Instant::now() + TRANSITION_WAIT;
        loop {
            let remote = block_on_aws(kms.describe_xks_store(&cks))?;
            let seen = self.record_aws_state(store_id, &remote)?;
            let settled = !matches!(
                remote.connection_state,
                ConnectionState::Connecting | ConnectionState::Disconnecting
            );
            if settled || std::time::Instant::now() >= deadline {
                return Ok(seen);
            }
            std::thread::sleep(POLL_INTERVAL);
        }
    }

    /// Pushes a store update to AWS KMS when the store is linked (name and location);
    /// called by `update_store` after the local rules passed and before committing.
    pub(super) fn push_update(&self, old: &StoreRecord, next: &StoreRecord) -> Result<(), OpError> {
        let (Some(link), StoreKind::Local) = (&old.aws, old.kind) else {
            return Ok(());
        };
        let mut update = XksStoreUpdate::default();
        if next.name != old.name {
            update.name = Some(next.name.clone());
        }
        if next.location != old.location {
            update.uri_endpoint = Some(endpoint_of(&next.location)?);
            update.connectivity = Some(connectivity_of(&next.location)?);
        }
        if update.name.is_none() && update.uri_endpoint.is_none() {
            return Ok(());
        }
        let kms = self.kms_for_store(old)?;
        block_on_aws(kms.update_xks_store(&link.custom_key_store_id, &update))
    }

    /// Deletes a linked store's AWS external key store (refused by AWS KMS unless it is
    /// disconnected and holds no KMS keys); one already gone on AWS is fine.
    pub(super) fn delete_aws_side(&self, store: &StoreRecord) -> Result<(), OpError> {
        let (Some(link), StoreKind::Local) = (&store.aws, store.kind) else {
            return Ok(());
        };
        let kms = self.kms_for_store(store)?;
        match block_on_aws(kms.delete_store(&link.custom_key_store_id)) {
            Err(OpError::Aws(e)) if e.is("CustomKeyStoreNotFoundException") => Ok(()),
            other => other,
        }
    }

    /// Creates a HYOK key; in a linked store (unless `linked` is `Some(false)`) also its
    /// AWS KMS key (`CreateKey` with `XksKeyId`), for which the store must be
    /// `CONNECTED`. A refusal on AWS removes the local key again.
    pub fn create_hyok_key_with_link(
        &self,
        store_id: &str,
        external_id: &str,
        source_key: &str,
        linked: Option<bool>,
        allow_weak_key: bool,
    ) -> Result<HyokKeyRecord, OpError> {
        let store = self.get_store(store_id)?.value;
        let want_link = linked.unwrap_or(store.aws.is_some());
        if want_link {
            ensure_connected(&store)?;
        }
        let record =
            self.create_hyok_key_allowing(store_id, external_id, source_key, allow_weak_key)?;
        if !want_link {
            return Ok(record);
        }
        match self
            .wait_applied()
            .and_then(|()| self.create_kms_key(&store, external_id))
        {
            Ok(link) => self.set_hyok_key_link(store_id, external_id, Some(link)),
            Err(e) => {
                let _ = self.delete_hyok_key(store_id, external_id);
                Err(e)
            }
        }
    }

    /// Links an unlinked HYOK key of a linked, connected store: creates its AWS KMS key.
    pub fn link_hyok_key(
        &self,
        store_id: &str,
        external_id: &str,
    ) -> Result<HyokKeyRecord, OpError> {
        let store = self.get_store(store_id)?.value;
        ensure_connected(&store)?;
        let key = self.get_hyok_key(store_id, external_id)?;
        if key.aws.is_some() {
            return Err(rule(
                "key_already_linked",
                format!("HYOK key '{external_id}' is linked already"),
            ));
        }
        // The HYOK key rules hold when AWS KMS starts using the key (a key made before
        // them, or through the configuration file, is checked here), unless the key was
        // created with the explicit relaxation.
        if !key.source_key.is_empty() {
            self.check_hyok_source_key(&store.source, &key.source_key, key.allow_weak_key)?;
        }
        let link = self.create_kms_key(&store, external_id)?;
        self.set_hyok_key_link(store_id, external_id, Some(link))
    }

    fn create_kms_key(
        &self,
        store: &StoreRecord,
        external_id: &str,
    ) -> Result<KmsKeyLink, OpError> {
        let link = linked(store)?;
        let kms = self.kms_for_store(store)?;
        let description = format!("keyhold HYOK key {external_id} of key store {}", store.name);
        let key =
            block_on_aws(kms.create_xks_key(&link.custom_key_store_id, external_id, &description))?;
        Ok(KmsKeyLink {
            key_id: key.key_id,
            key_arn: key.arn,
        })
    }

    /// Deletes a HYOK key; a linked one first has its AWS KMS key scheduled for
    /// deletion after `pending_days` (7..=30, default 30).
    pub fn delete_hyok_key_with_link(
        &self,
        store_id: &str,
        external_id: &str,
        pending_days: Option<i32>,
    ) -> Result<(), OpError> {
        let days = pending_days.unwrap_or(30);
        if !(7..=30).contains(&days) {
            return Err(OpError::Input(format!(
                "pending_window_days must be 7 to 30 (AWS KMS's waiting period), got {days}"
            )));
        }
        let store = self.get_store(store_id)?.value;
        let key = self.get_hyok_key(store_id, external_id)?;
        if let (Some(link), StoreKind::Local) = (&key.aws, store.kind) {
            let kms = self.kms_for_store(&store)?;
            match block_on_aws(kms.schedule_key_deletion(&link.key_id, days)) {
                Err(OpError::Aws(e))
                    if e.is("NotFoundException") || e.is("KMSInvalidStateException") =>
                {
                    // Gone or already pending deletion on AWS.
                }
                other => other?,
            }
        }
        self.delete_hyok_key(store_id, external_id)
    }
}

/// A created store (with its version), its credentials file (shown once) and, when a
/// schedule was set, its rotation state.
pub type CreatedWithLink = (
    Versioned<StoreRecord>,
    CredentialsFile,
    Option<crate::model::RotationState>,
);

/// How often a transient connection state is polled.
const POLL_INTERVAL: Duration = Duration::from_millis(200);

/// The link of a linked store, or why it has none.
fn linked(store: &StoreRecord) -> Result<&AwsLink, OpError> {
    if store.kind == StoreKind::Remote {
        return Err(rule(
            "remote_store",
            format!(
                "key store '{}' is a remote store (served elsewhere): manage it where it is served",
                store.name
            ),
        ));
    }
    store.aws.as_ref().ok_or_else(|| {
        rule(
            "store_not_linked",
            format!(
                "key store '{}' is not linked to AWS KMS: link it first",
                store.name
            ),
        )
    })
}

/// Linked keys exist only in linked, connected stores.
fn ensure_connected(store: &StoreRecord) -> Result<(), OpError> {
    let link = linked(store)?;
    rules::ensure_unblocked(store)?;
    if link.connection_state != ConnectionState::Connected {
        return Err(rule(
            "store_not_connected",
            format!(
                "key store '{}' is {} on AWS KMS: connect it first (linked keys need a CONNECTED store)",
                store.name,
                link.connection_state.as_str()
            ),
        ));
    }
    Ok(())
}

/// `XksProxyUriEndpoint` of a location.
fn endpoint_of(location: &XksLocation) -> Result<String, OpError> {
    match location {
        XksLocation::Public { endpoint } | XksLocation::Vpc { endpoint, .. } => {
            Ok(endpoint.clone())
        }
        XksLocation::Unset => Err(rule(
            "location_required",
            "AWS KMS needs the XKS location: set location (public endpoint or VPC endpoint service)"
                .into(),
        )),
    }
}

/// `XksProxyConnectivity` of a location.
fn connectivity_of(location: &XksLocation) -> Result<XksConnectivity, OpError> {
    endpoint_of(location)?;
    Ok(match location {
        XksLocation::Vpc { service_name, .. } => XksConnectivity::Vpc {
            service_name: service_name.clone(),
        },
        _ => XksConnectivity::Public,
    })
}

/// Runs an AWS call from synchronous code (see `run_async`); its failure is an
/// [`OpError::Aws`].
pub fn block_on_aws<T>(
    call: impl std::future::Future<Output = Result<T, crate::aws::AwsError>>,
) -> Result<T, OpError> {
    super::connections::run_async(call).map_err(OpError::Aws)
}

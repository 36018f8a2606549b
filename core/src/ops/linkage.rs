//! Linked key stores: the AWS side of a store driven through [`crate::aws::Kms`].
//! Every operation checks the product's rules locally first, then calls AWS KMS, then
//! commits locally, so that a refusal on either side leaves nothing half-made.

use std::{sync::Arc, time::Duration};

use super::{OpError, Operations, Versioned, decode, to_json};
use crate::{
    aws::{AwsSettings, Kms},
    model::{
        AwsLink, CredentialsFile, HyokKeyRecord, KmsKeyLink, StoreRecord, keys,
        rules::RuleViolation,
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
    /// Waits for the data plane with `waiter` after each commit an AWS call depends on.
    pub fn with_applied_waiter(mut self, waiter: AppliedWaiter) -> Self {
        self.applied = Some(waiter);
        self
    }

    /// Blocks until the data plane serves everything committed so far.
    pub(super) fn wait_applied(&self) -> Result<(), OpError> {
        if let Some(waiter) = &self.applied {
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

    /// Rotates a store's credential: adds one (evicting the oldest at max credentials,
    /// never the one AWS KMS signs with) and, when the store is linked, pushes it to
    /// AWS KMS. Returns the credentials file (shown once) and the evicted access key ids.
    pub fn rotate_credential(
        &self,
        store_id: &str,
    ) -> Result<(CredentialsFile, Vec<String>), OpError> {
        self.add_credential(store_id)
    }
}

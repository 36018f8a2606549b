//! A scheduled rotation of a linked store, run once in a cluster even when the node
//! running it dies mid-way.
//!
//! The rotation has steps no transaction can span (a credential added here, then pushed
//! to AWS KMS, then the oldest ones evicted), so it is claimed: the new credential is
//! added in ONE transaction with the store's rotation state naming it as the run in
//! progress (`pending`), conditioned on the state read. A leader that finds a pending
//! run (its predecessor died after the claim) finishes that run with that credential
//! (pushing it to AWS KMS again is harmless: AWS KMS keeps the same credential), instead
//! of starting another. The run's record clears `pending`; a claim or a record that
//! loses its condition (another node got there first) is dropped.

use zeroize::Zeroizing;

use super::super::{OpError, Operations, decode, to_json};
use crate::{
    aws::{XksCredential, XksStoreUpdate},
    model::{CredentialRecord, RotationState, keys, rules},
    ops::linkage::block_on_aws,
    store::{Condition, Entry, StoreError, Write},
};

/// What a claimed run did: the new access key id and the evicted ones, or why it
/// failed; and the revision of the rotation state its record must hold on.
pub(in crate::ops) type ClaimedRun = (Result<(String, Vec<String>), OpError>, u64);

/// The store's AWS link; a store unlinked meanwhile is refused saying so.
fn still_linked(store: &crate::model::StoreRecord) -> Result<crate::model::AwsLink, OpError> {
    store.aws.clone().ok_or_else(|| {
        OpError::Rule(rules::RuleViolation {
            code: "schedule_needs_linked_store",
            message: format!("key store '{}' is no longer linked to AWS KMS", store.name),
        })
    })
}

impl Operations {
    /// Runs (or finishes) the scheduled rotation of linked store `store_id`, whose
    /// rotation state was read as `entry` (`state`). `None`: another node changed the
    /// state meanwhile (its run wins; nothing was done here).
    pub(in crate::ops) fn run_claimed_rotation(
        &self,
        store_id: &str,
        entry: &Entry,
        state: &RotationState,
    ) -> Option<ClaimedRun> {
        let resumed = match &state.pending {
            Some(akid) => self.pending_credential(store_id, akid),
            None => Ok(None),
        };
        let claimed = match resumed {
            Ok(Some(credential)) => {
                tracing::info!(store = %store_id, access_key_id = %credential.access_key_id,
                    "finishing the scheduled rotation a node left mid-way");
                Ok((credential, entry.revision))
            }
            Ok(None) => match self.claim(store_id, entry, state) {
                Err(OpError::Store(StoreError::Conflict { key })) if key == entry.key => {
                    return None;
                }
                other => other,
            },
            Err(e) => Err(e),
        };
        let (credential, revision) = match claimed {
            Ok(c) => c,
            Err(e) => return Some((Err(e), entry.revision)),
        };
        Some((self.push_and_evict(store_id, credential), revision))
    }

    /// The credential of a pending run, when it still exists.
    fn pending_credential(
        &self,
        store_id: &str,
        akid: &str,
    ) -> Result<Option<XksCredential>, OpError> {
        let key = keys::credential(store_id, akid);
        let Some(entry) = self.store.get(&key)? else {
            return Ok(None);
        };
        let record: CredentialRecord = decode(&entry)?;
        let secret = self.master.open(&record.sealed_secret, &key).map_err(|e| {
            OpError::Store(StoreError::Corrupt {
                key: key.clone(),
                message: e.to_string(),
            })
        })?;
        let secret = String::from_utf8(secret.to_vec()).map_err(|_| {
            OpError::Store(StoreError::Corrupt {
                key: key.clone(),
                message: "the sealed secret is not UTF-8".into(),
            })
        })?;
        Ok(Some(XksCredential {
            access_key_id: record.access_key_id,
            secret: Zeroizing::new(secret),
        }))
    }

    /// Adds the run's credential, claiming the run in the same transaction. Returns
    /// the credential and the state's revision after the claim.
    fn claim(
        &self,
        store_id: &str,
        entry: &Entry,
        state: &RotationState,
    ) -> Result<(XksCredential, u64), OpError> {
        let current = self.get_store(store_id)?;
        rules::ensure_credential_addable(&current.value)?;
        let link = still_linked(&current.value)?;
        // Checked again with the state AWS KMS reports.
        let kms = self.kms_for_store(&current.value)?;
        let remote = block_on_aws(kms.describe_xks_store(&link.custom_key_store_id))?;
        let current = self.record_aws_state(store_id, &remote)?;
        rules::ensure_credential_addable(&current.value)?;
        let (key, record, file) = self.new_credential(&current.value);
        let claimed = RotationState {
            pending: Some(file.credential.access_key_id.clone()),
            ..state.clone()
        };
        let revision = self.store.commit(
            &[
                Condition::Revision(keys::store(store_id), current.version),
                Condition::Absent(key.clone()),
                Condition::Revision(entry.key.clone(), entry.revision),
            ],
            vec![
                Write::Put(key, to_json(&record)),
                Write::Put(entry.key.clone(), to_json(&claimed)),
            ],
        )?;
        Ok((
            XksCredential {
                access_key_id: file.credential.access_key_id,
                secret: Zeroizing::new(file.credential.raw_secret_access_key),
            },
            revision,
        ))
    }

    /// Pushes the claimed credential to AWS KMS (once this node serves it), then evicts
    /// the oldest credentials beyond the store's maximum. A refusal by AWS KMS deletes
    /// the credential.
    fn push_and_evict(
        &self,
        store_id: &str,
        credential: XksCredential,
    ) -> Result<(String, Vec<String>), OpError> {
        let current = self.get_store(store_id)?;
        let link = still_linked(&current.value)?;
        let kms = self.kms_for_store(&current.value)?;
        self.wait_applied()?;
        let akid = credential.access_key_id.clone();
        let update = XksStoreUpdate {
            credential: Some(credential),
            ..XksStoreUpdate::default()
        };
        if let Err(e) = block_on_aws(kms.update_xks_store(&link.custom_key_store_id, &update)) {
            let _ = self.store.delete(&keys::credential(store_id, &akid));
            return Err(e);
        }
        let evicted = self.evict_credentials(store_id, &[&akid])?;
        Ok((akid, evicted))
    }
}

//! A store's SigV4 credentials: listing (never secrets), adding (rotation, with eviction
//! at max credentials; linked stores push the new credential to AWS KMS first, see
//! `linkage`), and deleting.

use zeroize::Zeroizing;

use super::{OpError, Operations, decode, now_ns, to_json};
use crate::{
    model::{
        self, CredentialRecord, CredentialsFile, CredentialsFileCredential, StoreKind, StoreRecord,
        keys, rules,
    },
    store::{Condition, StoreError, Write},
};

impl Operations {
    pub(super) fn new_credential(
        &self,
        store: &StoreRecord,
    ) -> (String, CredentialRecord, CredentialsFile) {
        let akid = model::generate_access_key_id();
        let secret: Zeroizing<String> = model::generate_secret();
        let key = keys::credential(&store.id, &akid);
        let record = CredentialRecord {
            access_key_id: akid.clone(),
            sealed_secret: self.master.seal(secret.as_bytes(), &key),
            created_at_ns: now_ns(),
            origin: "admin".into(),
        };
        let file = CredentialsFile {
            uri_path: store.xks_base_path(),
            credential: CredentialsFileCredential {
                access_key_id: akid,
                raw_secret_access_key: secret.to_string(),
            },
        };
        (key, record, file)
    }

    /// Credentials of a store: (access key id, created at ns), oldest first. Secrets
    /// are never returned.
    pub fn list_credentials(&self, store_id: &str) -> Result<Vec<(String, i128)>, OpError> {
        self.get_store(store_id)?;
        let mut out: Vec<(String, i128)> = self
            .store
            .scan(&keys::credentials_of(store_id))?
            .iter()
            .map(|e| decode::<CredentialRecord>(e).map(|c| (c.access_key_id, c.created_at_ns)))
            .collect::<Result<_, _>>()?;
        out.sort_by_key(|c| c.1);
        Ok(out)
    }

    /// Adds a credential (rotation). At max credentials the oldest ones are deleted, in
    /// the same transaction for an unlinked store; a linked store's new credential is
    /// pushed to AWS KMS first (`add_linked_credential`). Returns the credentials file
    /// (shown once) and the evicted access key ids.
    pub fn add_credential(
        &self,
        store_id: &str,
    ) -> Result<(CredentialsFile, Vec<String>), OpError> {
        let current = self.get_store(store_id)?;
        if let (Some(link), StoreKind::Local) = (&current.value.aws, current.value.kind) {
            return self.add_linked_credential(&current, link);
        }
        rules::ensure_credential_addable(&current.value)?;
        let existing = self.list_credentials(store_id)?;
        let evicted = model::credentials_to_evict(&existing, current.value.max_credentials);
        let (key, record, file) = self.new_credential(&current.value);
        let mut writes: Vec<Write> = evicted
            .iter()
            .map(|akid| Write::Delete(keys::credential(store_id, akid)))
            .collect();
        writes.push(Write::Put(key.clone(), to_json(&record)));
        let mut conditions = vec![
            Condition::Revision(keys::store(store_id), current.version),
            Condition::Absent(key),
        ];
        conditions.extend(
            evicted
                .iter()
                .map(|akid| Condition::Exists(keys::credential(store_id, akid))),
        );
        self.commit_store_change(store_id, &conditions, writes)?;
        Ok((file, evicted))
    }

    /// Adds a credential without evicting any (the first step of a linked rotation).
    /// Returns the credentials file and the new credential's store key.
    pub(super) fn insert_credential(
        &self,
        store_id: &str,
    ) -> Result<(CredentialsFile, String), OpError> {
        let current = self.get_store(store_id)?;
        let (key, record, file) = self.new_credential(&current.value);
        self.commit_store_change(
            store_id,
            &[
                Condition::Revision(keys::store(store_id), current.version),
                Condition::Absent(key.clone()),
            ],
            vec![Write::Put(key.clone(), to_json(&record))],
        )?;
        Ok((file, key))
    }

    /// Deletes the oldest credentials beyond the store's max credentials, never one of
    /// `keep`. Returns the evicted access key ids.
    pub(super) fn evict_credentials(
        &self,
        store_id: &str,
        keep: &[&str],
    ) -> Result<Vec<String>, OpError> {
        let current = self.get_store(store_id)?;
        let existing = self.list_credentials(store_id)?;
        let max = current.value.max_credentials as usize;
        let mut evicted = Vec::new();
        let mut over = existing.len().saturating_sub(max);
        for (akid, _) in &existing {
            if over == 0 {
                break;
            }
            if keep.contains(&akid.as_str()) {
                continue;
            }
            if self.store.delete(&keys::credential(store_id, akid))? {
                evicted.push(akid.clone());
            }
            over -= 1;
        }
        Ok(evicted)
    }

    /// The secret of one credential of a store, opened.
    pub(super) fn credential_secret(
        &self,
        store_id: &str,
        access_key_id: &str,
    ) -> Result<Zeroizing<String>, OpError> {
        let key = keys::credential(store_id, access_key_id);
        let record: CredentialRecord = decode(&self.entry(&key, "credential", access_key_id)?)?;
        let secret = self.master.open(&record.sealed_secret, &key).map_err(|e| {
            OpError::Store(StoreError::Corrupt {
                key: key.clone(),
                message: format!("credential secret cannot be opened: {e}"),
            })
        })?;
        Ok(Zeroizing::new(
            String::from_utf8_lossy(&secret).into_owned(),
        ))
    }

    /// Deletes a credential: requests signed with it fail from then on.
    pub fn delete_credential(&self, store_id: &str, access_key_id: &str) -> Result<(), OpError> {
        self.get_store(store_id)?;
        if !self
            .store
            .delete(&keys::credential(store_id, access_key_id))?
        {
            return Err(OpError::NotFound {
                what: "credential",
                id: access_key_id.to_string(),
            });
        }
        Ok(())
    }
}

//! The "refresh all" runner: for each region of the account, lists AWS KMS's external
//! key stores and keys, plans with [`crate::model::refresh`] and carries the plan out
//! one unit at a time (a region's listing, a store, a key described), writing the
//! job's progress after each unit and stopping before the next one when cancelled.
//! Every change is a version-checked transaction that re-checks the planned
//! precondition, so a store or key changed meanwhile is reported, never overwritten.

use std::sync::Arc;

use super::{OpError, Operations, connections::run_async, decode, to_json};
use crate::{
    aws::{AwsKey, Kms},
    model::{
        self, HyokKeyRecord, KmsKeyLink, StoreKind, StoreRecord,
        jobs::{JobError, JobRecord, JobState},
        keys,
        refresh::{
            Change, ChangeKind, Finding, FindingKind, KeyAction, KeyTargets, LocalStore,
            RefreshSummary, Scope, StoreAction, plan_stores,
        },
    },
    store::{Condition, StoreError, Write},
};

/// The AWS KMS client of the job's account in a region.
pub type KmsFor<'a> = &'a dyn Fn(&str) -> Result<Arc<dyn Kms>, OpError>;

/// Whether the server is stopping (then a running job stops before its next unit and
/// ends `interrupted`).
pub type Stopping<'a> = &'a dyn Fn() -> bool;

/// Why a run stopped before its end.
enum Stop {
    /// Cancel requested (or the job was ended elsewhere).
    Cancelled,
    /// The server is stopping.
    Interrupted,
    /// An error, with what the job was doing.
    Failed(String, OpError),
}

impl From<OpError> for Stop {
    fn from(e: OpError) -> Self {
        Stop::Failed("saving progress".into(), e)
    }
}

/// What one unit did.
enum Outcome {
    Changed(Change),
    Unchanged,
    Reported(Finding),
    Nothing,
}

/// A running refresh: its progress as the runner knows it.
struct Run<'a> {
    ops: &'a Operations,
    stopping: Stopping<'a>,
    id: String,
    done: u64,
    total: u64,
    summary: RefreshSummary,
}

/// The job's error for `e` while `doing`: the admin API's code, and a message that
/// names AWS's error code when AWS answered.
fn job_error(doing: &str, e: &OpError) -> JobError {
    let message = match e {
        OpError::Aws(aws) => match &aws.code {
            Some(code) => format!("{doing}: AWS KMS answered {code}: {}", aws.message),
            None => format!("{doing}: {}", aws.message),
        },
        other => format!("{doing}: {other}"),
    };
    JobError {
        code: e.code().to_string(),
        message,
    }
}

impl Run<'_> {
    /// Writes the progress; `Cancelled` when the job should stop.
    fn save(&mut self) -> Result<(), Stop> {
        let (done, total, summary) = (self.done, self.total, self.summary.clone());
        let job = self.ops.update_job(&self.id, Vec::new, |job| {
            job.done = done;
            job.total = total;
            job.summary = summary.clone();
            Ok(())
        })?;
        if job.cancel_requested || job.state != JobState::Running {
            return Err(Stop::Cancelled);
        }
        if (self.stopping)() {
            return Err(Stop::Interrupted);
        }
        Ok(())
    }

    /// Counts one unit's outcome and writes the progress.
    fn unit(&mut self, outcome: Outcome) -> Result<(), Stop> {
        match outcome {
            Outcome::Changed(c) => self.summary.change(c),
            Outcome::Unchanged => self.summary.unchanged += 1,
            Outcome::Reported(f) => self.summary.report(f),
            Outcome::Nothing => {}
        }
        self.done += 1;
        self.save()
    }

    fn region(&mut self, account: &str, region: &str, kms: KmsFor<'_>) -> Result<(), Stop> {
        let doing = |what: &str| format!("{what} in {region}");
        let fail = |what: &str| {
            let doing = doing(what);
            move |e: OpError| Stop::Failed(doing, e)
        };
        let client = kms(region).map_err(fail("connecting to AWS KMS"))?;
        let (stores, key_ids) = run_async(async {
            let stores = client.list_xks_stores().await?;
            let key_ids = client.list_key_ids().await?;
            Ok::<_, crate::aws::AwsError>((stores, key_ids))
        })
        .map_err(|e| Stop::Failed(doing("listing external key stores and keys"), e.into()))?;
        self.total += (stores.len() + key_ids.len()) as u64;
        self.unit(Outcome::Nothing)?;

        let local = self
            .ops
            .local_stores()
            .map_err(fail("reading the key stores"))?;
        let scope = Scope { account, region };
        let plan = plan_stores(
            scope,
            &local,
            &stores,
            &mut model::generate_id,
            model::now_unix(),
        );
        let mut targets = KeyTargets::new(&local, &plan);
        for (aws_id, action) in &plan.actions {
            let outcome = self
                .ops
                .apply_store_action(account, aws_id, action)
                .map_err(fail(&format!("applying AWS store {aws_id}")))?;
            if matches!(outcome, Outcome::Reported(_)) {
                targets.forget(aws_id);
            }
            self.unit(outcome)?;
        }
        for key_id in &key_ids {
            let described = run_async(client.describe_key(key_id));
            let key: AwsKey = match described {
                Ok(k) => k,
                // Deleted between the listing and now: nothing to do.
                Err(e) if e.is("NotFoundException") => {
                    self.unit(Outcome::Nothing)?;
                    continue;
                }
                Err(e) => {
                    return Err(Stop::Failed(
                        doing(&format!("describing KMS key {key_id}")),
                        e.into(),
                    ));
                }
            };
            let action = targets.plan_key(&key);
            let outcome = self
                .ops
                .apply_key_action(&targets, &key, action)
                .map_err(fail(&format!("applying KMS key {key_id}")))?;
            self.unit(outcome)?;
        }
        for f in plan.missing.into_iter().chain(targets.missing()) {
            self.summary.report(f);
        }
        self.summary.regions.push(region.to_string());
        self.save()
    }
}

fn changed_meanwhile(aws_id: &str, store: &str, external_id: Option<&str>) -> Outcome {
    let what = match external_id {
        Some(ext) => format!("HYOK key '{ext}' of key store '{store}'"),
        None => format!("key store '{store}'"),
    };
    Outcome::Reported(Finding {
        kind: FindingKind::ChangedMeanwhile,
        aws_id: aws_id.to_string(),
        store: Some(store.to_string()),
        external_id: external_id.map(str::to_string),
        message: format!("{what} changed while the refresh ran: left as it is, refresh again"),
    })
}

fn change(kind: ChangeKind, store: &str, aws_id: &str, external_id: Option<&str>) -> Outcome {
    Outcome::Changed(Change {
        kind,
        store: store.to_string(),
        aws_id: aws_id.to_string(),
        external_id: external_id.map(str::to_string),
    })
}

impl Operations {
    /// Runs refresh job `id` (recorded by [`Operations::start_refresh`]) to its end
    /// through the account's AWS connection; returns the job as it ended (`succeeded`,
    /// `failed`, `cancelled`, or `interrupted` once `stopping` says so). Blocking: run
    /// it on the blocking pool.
    pub fn run_refresh(&self, id: &str, stopping: Stopping<'_>) -> Result<JobRecord, OpError> {
        let account = self.get_job(id)?.account;
        let kms = |region: &str| self.kms_for_account(&account, region);
        self.run_refresh_with(id, &kms, stopping)
    }

    /// [`Operations::run_refresh`] with the AWS KMS client of each region from `kms`.
    pub fn run_refresh_with(
        &self,
        id: &str,
        kms: KmsFor<'_>,
        stopping: Stopping<'_>,
    ) -> Result<JobRecord, OpError> {
        let job = self.get_job(id)?;
        let regions = self.get_account(&job.account).map(|a| a.regions);
        let mut run = Run {
            ops: self,
            stopping,
            id: id.to_string(),
            done: job.done,
            total: job.total,
            summary: job.summary,
        };
        let result = regions
            .map_err(|e| Stop::Failed("reading the AWS account".into(), e))
            .and_then(|regions| {
                run.total += regions.len() as u64;
                run.save()?;
                regions
                    .iter()
                    .try_for_each(|region| run.region(&job.account, region, kms))
            });
        let (state, error) = match result {
            Ok(()) => (JobState::Succeeded, None),
            Err(Stop::Cancelled) => (JobState::Cancelled, None),
            Err(Stop::Interrupted) => (JobState::Interrupted, None),
            Err(Stop::Failed(doing, e)) => (JobState::Failed, Some(job_error(&doing, &e))),
        };
        let (done, total, summary) = (run.done, run.total, run.summary);
        let ended = self.finish_job(id, state, error, |job| {
            job.done = done;
            job.total = total;
            job.summary = summary.clone();
        })?;
        tracing::info!(
            job = %ended.id,
            account = %ended.account,
            state = ended.state.as_str(),
            summary = %ended.summary.text(),
            "refresh ended"
        );
        Ok(ended)
    }

    /// Every store with its account and HYOK keys: what the planner compares with AWS.
    fn local_stores(&self) -> Result<Vec<LocalStore>, OpError> {
        let accounts = self.store_accounts()?;
        self.list_stores()?
            .into_iter()
            .map(|s| {
                let record = s.value;
                Ok(LocalStore {
                    account: accounts.get(&record.id).cloned(),
                    keys: self.decode_all(&keys::hyok_keys_of(&record.id))?,
                    record,
                })
            })
            .collect()
    }

    /// Changes store `id` with `f` if `check` still holds; `false` when the store
    /// changed (or went) meanwhile.
    fn change_store_if(
        &self,
        id: &str,
        check: impl Fn(&StoreRecord) -> bool,
        f: impl FnOnce(&mut StoreRecord),
    ) -> Result<bool, OpError> {
        let current = match self.get_store(id) {
            Ok(c) => c,
            Err(OpError::NotFound { .. }) => return Ok(false),
            Err(e) => return Err(e),
        };
        if !check(&current.value) {
            return Ok(false);
        }
        let mut next = current.value.clone();
        f(&mut next);
        match self.commit_store_change(
            id,
            &[Condition::Revision(keys::store(id), current.version)],
            vec![Write::Put(keys::store(id), to_json(&next))],
        ) {
            Ok(_) => Ok(true),
            Err(OpError::VersionMismatch { .. } | OpError::NotFound { .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    fn apply_store_action(
        &self,
        account: &str,
        aws_id: &str,
        action: &StoreAction,
    ) -> Result<Outcome, OpError> {
        let same_link = |s: &StoreRecord| {
            s.aws
                .as_ref()
                .is_some_and(|l| l.custom_key_store_id == aws_id)
        };
        Ok(match action.clone() {
            StoreAction::Link {
                store_id,
                name,
                link,
                region,
            } => {
                let unlinked = |s: &StoreRecord| s.aws.is_none() && s.kind == StoreKind::Local;
                let done = self.change_store_if(&store_id, unlinked, |s| {
                    s.aws = Some(link);
                    s.region = Some(region);
                })?;
                if done {
                    change(ChangeKind::StoreLinked, &name, aws_id, None)
                } else {
                    changed_meanwhile(aws_id, &name, None)
                }
            }
            StoreAction::UpdateLink {
                store_id,
                name,
                link,
            } => {
                if self.change_store_if(&store_id, same_link, |s| s.aws = Some(link))? {
                    change(ChangeKind::StoreStateUpdated, &name, aws_id, None)
                } else {
                    changed_meanwhile(aws_id, &name, None)
                }
            }
            StoreAction::UpdateRemote {
                store_id,
                name,
                link,
                location,
                uri_path_prefix,
            } => {
                let done = self.change_store_if(&store_id, same_link, |s| {
                    s.aws = Some(link);
                    s.location = location;
                    s.uri_path_prefix = uri_path_prefix;
                })?;
                if done {
                    change(ChangeKind::RemoteStoreUpdated, &name, aws_id, None)
                } else {
                    changed_meanwhile(aws_id, &name, None)
                }
            }
            StoreAction::ImportRemote { record } => self.import_remote_store(account, *record)?,
            StoreAction::Unchanged { .. } => Outcome::Unchanged,
            StoreAction::Skip(f) => Outcome::Reported(f),
        })
    }

    /// Creates a remote store record bound to `account` (no prefix index entry: the
    /// data plane does not serve it).
    fn import_remote_store(&self, account: &str, record: StoreRecord) -> Result<Outcome, OpError> {
        let aws_id = record
            .aws
            .as_ref()
            .map(|l| l.custom_key_store_id.clone())
            .unwrap_or_default();
        let conditions = [
            Condition::Absent(keys::store(&record.id)),
            Condition::Absent(keys::store_name_index(&record.name)),
            Condition::Exists(keys::account(account)),
        ];
        let writes = vec![
            Write::Put(keys::store(&record.id), to_json(&record)),
            Write::Put(
                keys::store_name_index(&record.name),
                record.id.clone().into_bytes(),
            ),
            Write::Put(
                keys::store_account(&record.id),
                account.to_string().into_bytes(),
            ),
        ];
        match self.store.commit(&conditions, writes) {
            Ok(_) => Ok(change(
                ChangeKind::RemoteStoreImported,
                &record.name,
                &aws_id,
                None,
            )),
            Err(StoreError::Conflict { .. }) => Ok(changed_meanwhile(&aws_id, &record.name, None)),
            Err(e) => Err(e.into()),
        }
    }

    fn apply_key_action(
        &self,
        targets: &KeyTargets,
        key: &AwsKey,
        action: KeyAction,
    ) -> Result<Outcome, OpError> {
        let store_name = |store_id: &str| {
            key.custom_key_store_id
                .as_deref()
                .and_then(|aws| targets.store_of(aws))
                .map(|(_, name)| name.to_string())
                .unwrap_or_else(|| store_id.to_string())
        };
        Ok(match action {
            KeyAction::Link {
                store_id,
                external_id,
                link,
            } => {
                let name = store_name(&store_id);
                if self.link_key_if(&store_id, &external_id, link, |k| k.aws.is_none())? {
                    change(
                        ChangeKind::KeyLinked,
                        &name,
                        &key.key_id,
                        Some(&external_id),
                    )
                } else {
                    changed_meanwhile(&key.key_id, &name, Some(&external_id))
                }
            }
            KeyAction::UpdateLink {
                store_id,
                external_id,
                link,
            } => {
                let name = store_name(&store_id);
                if self.link_key_if(&store_id, &external_id, link, |_| true)? {
                    change(
                        ChangeKind::KeyLinkUpdated,
                        &name,
                        &key.key_id,
                        Some(&external_id),
                    )
                } else {
                    changed_meanwhile(&key.key_id, &name, Some(&external_id))
                }
            }
            KeyAction::Import {
                store_id,
                external_id,
                link,
            } => {
                let name = store_name(&store_id);
                if self.import_remote_key(&store_id, &external_id, link)? {
                    change(
                        ChangeKind::KeyImported,
                        &name,
                        &key.key_id,
                        Some(&external_id),
                    )
                } else {
                    changed_meanwhile(&key.key_id, &name, Some(&external_id))
                }
            }
            KeyAction::Unchanged => Outcome::Unchanged,
            KeyAction::Ignored => Outcome::Nothing,
            KeyAction::Skip(f) => Outcome::Reported(f),
        })
    }

    /// Sets a HYOK key's link if `check` still holds; `false` when it changed or went.
    fn link_key_if(
        &self,
        store_id: &str,
        external_id: &str,
        link: KmsKeyLink,
        check: impl Fn(&HyokKeyRecord) -> bool,
    ) -> Result<bool, OpError> {
        let key = keys::hyok_key(store_id, external_id);
        let Some(entry) = self.store.get(&key)? else {
            return Ok(false);
        };
        let mut record: HyokKeyRecord = decode(&entry)?;
        if !check(&record) {
            return Ok(false);
        }
        record.aws = Some(link);
        match self.store.commit(
            &[Condition::Revision(key.clone(), entry.revision)],
            vec![Write::Put(key, to_json(&record))],
        ) {
            Ok(_) => Ok(true),
            Err(StoreError::Conflict { .. }) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// Creates a remote store's HYOK key (no source key) with its link; `false` when
    /// it exists or the store changed meanwhile.
    fn import_remote_key(
        &self,
        store_id: &str,
        external_id: &str,
        link: KmsKeyLink,
    ) -> Result<bool, OpError> {
        let Some(store) = self.store.get(&keys::store(store_id))? else {
            return Ok(false);
        };
        let record = HyokKeyRecord {
            external_id: external_id.to_string(),
            source_key: String::new(),
            blocked: false,
            aws: Some(link),
            created_at: model::now_unix(),
            allow_weak_key: false,
        };
        let key = keys::hyok_key(store_id, external_id);
        // Rewriting the store record bumps its version (see `delete_store`).
        match self.store.commit(
            &[
                Condition::Absent(key.clone()),
                Condition::Revision(store.key.clone(), store.revision),
            ],
            vec![
                Write::Put(key, to_json(&record)),
                Write::Put(store.key, store.value),
            ],
        ) {
            Ok(_) => Ok(true),
            Err(StoreError::Conflict { .. }) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }
}

#[cfg(test)]
mod tests;

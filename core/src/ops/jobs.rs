//! Long-running jobs in the durable store: start (one refresh per account at a time),
//! progress, cancellation, reading, and the start-up step that marks jobs a stopped
//! server left `running` as `interrupted`. The refresh runner is [`super::refresh`].

use super::{OpError, Operations, decode, to_json};
use crate::{
    model::{
        self,
        jobs::{
            JobError, JobRecord, JobState, MAX_FINISHED_JOBS, RUNNING_REFRESHES, jobs_to_prune,
            running_refresh_key,
        },
        keys,
        rules::RuleViolation,
    },
    store::{Condition, Store, StoreError, Write},
};

/// How often a job change is retried when it races with another (e.g. a cancel
/// request during a progress write).
const JOB_WRITE_ATTEMPTS: usize = 16;

fn rule(code: &'static str, message: String) -> OpError {
    OpError::Rule(RuleViolation { code, message })
}

/// Marks every job left `running` (by a server that stopped while it ran) as
/// `interrupted` and frees its account for a new refresh. Run once at server start,
/// before anything can start a job. Returns the ids of the jobs so marked.
pub fn interrupt_running_jobs(store: &dyn Store) -> Result<Vec<String>, OpError> {
    interrupt_jobs_where(store, |_| true)
}

/// Which running jobs a node may declare interrupted: at its start, its own (and those
/// of earlier versions, which name no node); as the leader, those of nodes that are no
/// longer alive (`live`). A job of another live node is never touched.
pub fn orphaned_job(job: &JobRecord, node: &str, live: Option<&[String]>) -> bool {
    match (&job.node, live) {
        (None, None) => true,
        (Some(n), None) => n == node,
        (None, Some(_)) => false,
        (Some(n), Some(live)) => !live.contains(n),
    }
}

/// [`interrupt_running_jobs`] for the running jobs `orphaned` selects (see
/// [`orphaned_job`]).
pub fn interrupt_jobs_where(
    store: &dyn Store,
    orphaned: impl Fn(&JobRecord) -> bool,
) -> Result<Vec<String>, OpError> {
    let mut marked = Vec::new();
    for entry in store.scan(keys::JOBS)? {
        let mut job: JobRecord = decode(&entry)?;
        if job.state != JobState::Running || !orphaned(&job) {
            continue;
        }
        job.state = JobState::Interrupted;
        job.finished_at = Some(model::now_unix());
        let lock = running_refresh_key(&job.account);
        let mut writes = vec![Write::Put(entry.key.clone(), to_json(&job))];
        if store
            .get(&lock)?
            .is_some_and(|l| l.value == job.id.as_bytes())
        {
            writes.push(Write::Delete(lock));
        }
        store.commit(
            &[Condition::Revision(entry.key.clone(), entry.revision)],
            writes,
        )?;
        tracing::warn!(job = %job.id, account = %job.account, "job was running when its node stopped: marked interrupted");
        marked.push(job.id);
    }
    // Markers whose job is gone or finished (none normally) would block the account.
    for entry in store.scan(RUNNING_REFRESHES)? {
        let id = String::from_utf8_lossy(&entry.value).into_owned();
        let running = match store.get(&keys::job(&id))? {
            Some(e) => decode::<JobRecord>(&e)?.state == JobState::Running,
            None => false,
        };
        if !running {
            store.commit(
                &[Condition::Revision(entry.key.clone(), entry.revision)],
                vec![Write::Delete(entry.key)],
            )?;
        }
    }
    Ok(marked)
}

impl Operations {
    /// One job.
    pub fn get_job(&self, id: &str) -> Result<JobRecord, OpError> {
        decode(&self.entry(&keys::job(id), "job", id)?)
    }

    /// Every job kept, newest first.
    pub fn list_jobs(&self) -> Result<Vec<JobRecord>, OpError> {
        let mut jobs: Vec<JobRecord> = self.decode_all(keys::JOBS)?;
        jobs.sort_by(|a, b| b.started_at.cmp(&a.started_at).then(b.id.cmp(&a.id)));
        Ok(jobs)
    }

    /// Asks a running job to stop: it stops before its next unit of work, keeping
    /// what it did. Refused (`job_finished`) once the job has ended.
    pub fn cancel_job(&self, id: &str) -> Result<JobRecord, OpError> {
        self.update_job(id, Vec::new, |job| {
            if job.state.is_finished() {
                return Err(rule(
                    "job_finished",
                    format!(
                        "job {} has already ended ({}): nothing to cancel",
                        job.id,
                        job.state.as_str()
                    ),
                ));
            }
            job.cancel_requested = true;
            Ok(())
        })
    }

    /// Records a new running refresh job of `account` started by `user`; refused
    /// (`refresh_running`) while another refresh of the account runs. Checks that the
    /// account can reach AWS (an AWS connection, at least one region) first. The job
    /// does nothing until [`Operations::run_refresh`] runs it.
    pub fn start_refresh(&self, account: &str, user: &str) -> Result<JobRecord, OpError> {
        let acc = self.get_account(account)?;
        if acc.aws_connection.is_none() {
            return Err(rule(
                "account_without_connection",
                format!(
                    "AWS account {account} has no AWS connection: set its aws_connection first"
                ),
            ));
        }
        if acc.regions.is_empty() {
            return Err(rule(
                "account_without_regions",
                format!("AWS account {account} has no regions: add the regions to refresh"),
            ));
        }
        self.prune_jobs()?;
        let job = JobRecord {
            node: self.node.clone(),
            ..JobRecord::refresh(model::generate_id(), account, user, model::now_unix())
        };
        let lock = running_refresh_key(account);
        let writes = || {
            vec![
                Write::Put(keys::job(&job.id), to_json(&job)),
                Write::Put(lock.clone(), job.id.clone().into_bytes()),
            ]
        };
        let absent = [
            Condition::Absent(lock.clone()),
            Condition::Absent(keys::job(&job.id)),
        ];
        match self.store.commit(&absent, writes()) {
            Ok(_) => return Ok(job),
            Err(StoreError::Conflict { key }) if key == lock => {}
            Err(e) => return Err(e.into()),
        }
        // The account's marker names another job: refused while that job runs; a
        // stale marker (its job ended without removing it) is taken over.
        let Some(marker) = self.store.get(&lock)? else {
            return Err(rule(
                "refresh_running",
                format!("a refresh of AWS account {account} has just ended: try again"),
            ));
        };
        let other = String::from_utf8_lossy(&marker.value).into_owned();
        if let Ok(running) = self.get_job(&other) {
            if running.state == JobState::Running {
                return Err(rule(
                    "refresh_running",
                    format!(
                        "a refresh of AWS account {account} is already running (job {other}, {}/{} done): wait for it or cancel it",
                        running.done, running.total
                    ),
                ));
            }
        }
        let taken_over = [
            Condition::Revision(lock.clone(), marker.revision),
            Condition::Absent(keys::job(&job.id)),
        ];
        match self.store.commit(&taken_over, writes()) {
            Ok(_) => Ok(job),
            Err(StoreError::Conflict { .. }) => Err(rule(
                "refresh_running",
                format!("another refresh of AWS account {account} has just started"),
            )),
            Err(e) => Err(e.into()),
        }
    }

    /// Removes the oldest finished jobs beyond [`MAX_FINISHED_JOBS`].
    fn prune_jobs(&self) -> Result<(), OpError> {
        let jobs = self.list_jobs()?;
        let all: Vec<_> = jobs
            .iter()
            .map(|j| (j.id.clone(), j.state, j.started_at))
            .collect();
        let writes: Vec<Write> = jobs_to_prune(&all, MAX_FINISHED_JOBS - 1)
            .iter()
            .map(|id| Write::Delete(keys::job(id)))
            .collect();
        if !writes.is_empty() {
            self.store.commit(&[], writes)?;
        }
        Ok(())
    }

    /// Applies `f` to job `id` and commits it with `extra` writes, retrying when the
    /// job changed meanwhile (a progress write racing a cancel request).
    pub(super) fn update_job(
        &self,
        id: &str,
        extra: impl Fn() -> Vec<Write>,
        mut f: impl FnMut(&mut JobRecord) -> Result<(), OpError>,
    ) -> Result<JobRecord, OpError> {
        let key = keys::job(id);
        for _ in 0..JOB_WRITE_ATTEMPTS {
            let entry = self.entry(&key, "job", id)?;
            let mut job: JobRecord = decode(&entry)?;
            f(&mut job)?;
            let mut writes = vec![Write::Put(key.clone(), to_json(&job))];
            writes.extend(extra());
            match self
                .store
                .commit(&[Condition::Revision(key.clone(), entry.revision)], writes)
            {
                Ok(_) => return Ok(job),
                Err(StoreError::Conflict { .. }) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(OpError::VersionMismatch {
            what: "job",
            id: id.to_string(),
            expected: 0,
            actual: 0,
        })
    }

    /// Ends job `id` in `state` (with `error` when it failed), freeing its account.
    pub(super) fn finish_job(
        &self,
        id: &str,
        state: JobState,
        error: Option<JobError>,
        progress: impl Fn(&mut JobRecord),
    ) -> Result<JobRecord, OpError> {
        let job = self.get_job(id)?;
        let lock = running_refresh_key(&job.account);
        let own_lock = self
            .store
            .get(&lock)?
            .is_some_and(|l| l.value == id.as_bytes());
        let extra = || {
            if own_lock {
                vec![Write::Delete(lock.clone())]
            } else {
                Vec::new()
            }
        };
        self.update_job(id, extra, |job| {
            progress(job);
            job.state = state;
            job.error = error.clone();
            job.finished_at = Some(model::now_unix());
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests;

//! Long-running jobs: "refresh all" of an AWS account (started here, run in the
//! background on the blocking pool), and reading and cancelling jobs. Starting and
//! cancelling a refresh needs the account's `create_store`, `update_store` and
//! `manage_keys` permissions (it imports stores, links stores and links keys); seeing a
//! job needs `view`.

use super::{
    params::{AccountId, JobId},
    prelude::*,
};
use crate::{
    api::jobs::Job,
    identity::Principal,
    ops::{OpError, Operations},
};

/// What a refresh does, as permissions: import (create) stores, link stores, link keys.
const REFRESH_PERMISSIONS: [Permission; 3] = [
    Permission::CreateStore,
    Permission::UpdateStore,
    Permission::ManageKeys,
];

pub(super) fn routes() -> OpenApiRouter<AdminState> {
    OpenApiRouter::new()
        .routes(routes!(refresh_account))
        .routes(routes!(list_jobs))
        .routes(routes!(get_job))
        .routes(routes!(cancel_job))
}

/// Whether `who` may start or cancel a refresh of `account`.
fn authorize_refresh(
    ops: &Operations,
    who: &Principal,
    account: &str,
) -> std::result::Result<(), OpError> {
    REFRESH_PERMISSIONS
        .into_iter()
        .try_for_each(|p| authorize_account(ops, who, Some(account), p))
}

/// Refresh all: start a job importing the account's key stores and keys from AWS KMS.
///
/// Every region of the account is listed. Local stores matched by endpoint and path
/// are linked, unknown ones become `remote` stores; keys are linked or imported the
/// same way. Follow the job with `GET /api/v1/jobs/{id}`.
#[utoipa::path(post, path = "/api/v1/accounts/{id}/refresh", params(AccountId), responses(
    (status = 202, description = "The job, running.", body = Job),
    (status = 403, description = "Lacks create_store, update_store or manage_keys on the account.", body = ErrorBody),
    (status = 404, description = "No such account.", body = ErrorBody),
    (status = 409, description = "A refresh of the account is running (refresh_running), or the account has no AWS connection or regions.", body = ErrorBody),
))]
async fn refresh_account(
    c: Caller,
    Path(AccountId { id }): Path<AccountId>,
) -> Result<(StatusCode, Json<Job>)> {
    let job = c
        .change(
            "refresh_account",
            format!("account/{id}"),
            move |ops, who| {
                authorize_refresh(ops, who, &id)?;
                let job = ops.start_refresh(&id, &who.user)?;
                let details = json!({"job": job.id});
                Ok((job, details))
            },
        )
        .await?;
    let id = job.id.clone();
    c.spawn_job(
        "refresh_account_ended",
        format!("job/{id}"),
        move |ops, stopping| {
            let ended = ops.run_refresh(&id, stopping)?;
            let details = json!({
                "account": ended.account,
                "summary": ended.summary.text(),
                "error": ended.error,
            });
            Ok((ended.state.as_str().to_string(), details))
        },
    );
    Ok((StatusCode::ACCEPTED, Json(job)))
}

/// Jobs the caller may see (of accounts it has `view` on), newest first.
#[utoipa::path(get, path = "/api/v1/jobs", responses(
    (status = 200, description = "Jobs.", body = Vec<Job>),
))]
async fn list_jobs(c: Caller) -> Result<Json<Vec<Job>>> {
    let jobs = c
        .read(|ops, who| {
            let mut jobs = ops.list_jobs()?;
            jobs.retain(|j| {
                authorize_account(ops, who, Some(&j.account), Permission::View).is_ok()
            });
            Ok(jobs)
        })
        .await?;
    Ok(Json(jobs))
}

/// One job with its progress (`done`/`total`) and summary (needs view on its account).
#[utoipa::path(get, path = "/api/v1/jobs/{id}", params(JobId), responses(
    (status = 200, description = "The job.", body = Job),
    (status = 403, description = "No view permission.", body = ErrorBody),
    (status = 404, description = "No such job.", body = ErrorBody),
))]
async fn get_job(c: Caller, Path(JobId { id }): Path<JobId>) -> Result<Json<Job>> {
    let job = c
        .read(move |ops, who| {
            let job = ops.get_job(&id)?;
            authorize_account(ops, who, Some(&job.account), Permission::View)?;
            Ok(job)
        })
        .await?;
    Ok(Json(job))
}

/// Cancel a running job.
///
/// It stops before its next unit of work, keeping what it did (then state `cancelled`).
#[utoipa::path(post, path = "/api/v1/jobs/{id}/cancel", params(JobId), responses(
    (status = 200, description = "The job, cancel requested.", body = Job),
    (status = 403, description = "Lacks the permissions of a refresh on the account.", body = ErrorBody),
    (status = 404, description = "No such job.", body = ErrorBody),
    (status = 409, description = "The job has ended (job_finished).", body = ErrorBody),
))]
async fn cancel_job(c: Caller, Path(JobId { id }): Path<JobId>) -> Result<Json<Job>> {
    let job = c
        .change("cancel_job", format!("job/{id}"), move |ops, who| {
            let job = ops.get_job(&id)?;
            authorize_refresh(ops, who, &job.account)?;
            Ok((ops.cancel_job(&id)?, Value::Null))
        })
        .await?;
    Ok(Json(job))
}

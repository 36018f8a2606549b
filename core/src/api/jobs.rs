//! Long-running jobs ("refresh all" of an AWS account): `POST
//! /api/v1/accounts/{id}/refresh` starts one, `/api/v1/jobs` shows and cancels them.

pub use crate::model::{
    jobs::{JobError, JobKind, JobRecord as Job, JobState},
    refresh::{Change, ChangeKind, Finding, FindingKind, RefreshSummary},
};

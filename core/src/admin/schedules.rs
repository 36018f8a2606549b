//! Credential rotation schedules: admins create and delete them, every caller may read
//! them; a store's schedule is assigned and unassigned with the store's
//! `manage_credentials` permission and shown (with its last and next run) with `view`.

use super::{
    params::{ScheduleName, StoreId},
    prelude::*,
    responses::{AdminOnly, InvalidInput},
};
use crate::{
    api::schedules::{NewSchedule, Schedule, ScheduleAssignment, StoreSchedule},
    ops::OpError,
    schedule::Recurrence,
};

pub(super) fn routes() -> OpenApiRouter<AdminState> {
    OpenApiRouter::new()
        .routes(routes!(list_schedules, create_schedule))
        .routes(routes!(get_schedule, delete_schedule))
        .routes(routes!(
            get_store_schedule,
            assign_store_schedule,
            unassign_store_schedule
        ))
}

/// Create a rotation schedule (admins): daily, weekly or monthly at a time, or a
/// 5-field cron expression; UTC.
#[utoipa::path(post, path = "/api/v1/schedules", request_body = NewSchedule, responses(
    (status = 201, description = "The schedule.", body = Schedule),
    InvalidInput,
    AdminOnly,
    (status = 409, description = "The name is taken.", body = ErrorBody),
))]
async fn create_schedule(
    Admin(c): Admin,
    Body(body): Body<NewSchedule>,
) -> Result<(StatusCode, Json<Schedule>)> {
    let object = format!("schedule/{}", body.name);
    c.create("create_schedule", object, move |ops, _| {
        let recurrence =
            Recurrence::try_from(body.recurrence).map_err(|e| OpError::Input(e.to_string()))?;
        let rec = ops.create_schedule(&body.name, recurrence)?;
        let details = json!({"recurrence": rec.recurrence.spec()});
        Ok((Schedule::new(&rec, ops.now()), details))
    })
    .await
}

/// Every rotation schedule, with its next tick.
#[utoipa::path(get, path = "/api/v1/schedules", responses(
    (status = 200, description = "The schedules.", body = Vec<Schedule>),
))]
async fn list_schedules(c: Caller) -> Result<Json<Vec<Schedule>>> {
    let list = c
        .read(|ops, _| {
            let now = ops.now();
            Ok(ops
                .list_schedules()?
                .iter()
                .map(|s| Schedule::new(s, now))
                .collect())
        })
        .await?;
    Ok(Json(list))
}

/// One rotation schedule, with its next tick.
#[utoipa::path(get, path = "/api/v1/schedules/{name}", params(ScheduleName), responses(
    (status = 200, description = "The schedule.", body = Schedule),
    (status = 404, description = "No such schedule.", body = ErrorBody),
))]
async fn get_schedule(
    c: Caller,
    Path(ScheduleName { name }): Path<ScheduleName>,
) -> Result<Json<Schedule>> {
    let view = c
        .read(move |ops, _| Ok(Schedule::new(&ops.get_schedule(&name)?, ops.now())))
        .await?;
    Ok(Json(view))
}

/// Delete a rotation schedule (admins); refused while assigned to a store.
#[utoipa::path(delete, path = "/api/v1/schedules/{name}", params(ScheduleName), responses(
    (status = 204, description = "Deleted."),
    AdminOnly,
    (status = 404, description = "No such schedule.", body = ErrorBody),
    (status = 409, description = "Assigned to stores (code schedule_in_use; the stores are named).", body = ErrorBody),
))]
async fn delete_schedule(
    Admin(c): Admin,
    Path(ScheduleName { name }): Path<ScheduleName>,
) -> Result<StatusCode> {
    let object = format!("schedule/{name}");
    c.change_no_content("delete_schedule", object, move |ops, _| {
        ops.delete_schedule(&name)
    })
    .await
}

/// A store's rotation schedule: the assignment, the last run and its result, the next
/// run.
#[utoipa::path(get, path = "/api/v1/stores/{id}/schedule", params(StoreId), responses(
    (status = 200, description = "The store's scheduled rotation.", body = StoreSchedule),
    (status = 403, description = "Missing view.", body = ErrorBody),
    (status = 404, description = "No such store, or it has no schedule.", body = ErrorBody),
))]
async fn get_store_schedule(
    c: Caller,
    Path(StoreId { id }): Path<StoreId>,
) -> Result<Json<StoreSchedule>> {
    let view = c
        .read(move |ops, who| {
            authorize_store(ops, who, &id, Permission::View)?;
            let (schedule, state) = ops.store_schedule(&id)?;
            Ok(StoreSchedule::new(&id, &schedule, state))
        })
        .await?;
    Ok(Json(view))
}

/// Assign a rotation schedule to a local, linked store (each run adds a credential,
/// pushes it to AWS KMS and evicts the oldest over max_credentials).
#[utoipa::path(put, path = "/api/v1/stores/{id}/schedule", params(StoreId), request_body = ScheduleAssignment, responses(
    (status = 200, description = "The store's scheduled rotation.", body = StoreSchedule),
    (status = 403, description = "Missing manage_credentials.", body = ErrorBody),
    (status = 404, description = "No such store or schedule.", body = ErrorBody),
    (status = 409, description = "Not a local, linked store (codes schedule_needs_linked_store, remote_store).", body = ErrorBody),
))]
async fn assign_store_schedule(
    c: Caller,
    Path(StoreId { id }): Path<StoreId>,
    Body(body): Body<ScheduleAssignment>,
) -> Result<Json<StoreSchedule>> {
    let object = format!("store/{id}");
    let view = c
        .change("assign_schedule", object, move |ops, who| {
            authorize_store(ops, who, &id, Permission::ManageCredentials)?;
            let state = ops.assign_schedule(&id, &body.schedule)?;
            let schedule = ops.get_schedule(&body.schedule)?;
            let details = json!({"schedule": body.schedule, "next_run_at": state.next_run_at});
            Ok((StoreSchedule::new(&id, &schedule, state), details))
        })
        .await?;
    Ok(Json(view))
}

/// Unassign a store's rotation schedule.
#[utoipa::path(delete, path = "/api/v1/stores/{id}/schedule", params(StoreId), responses(
    (status = 204, description = "Unassigned."),
    (status = 403, description = "Missing manage_credentials.", body = ErrorBody),
    (status = 404, description = "No such store, or it has no schedule.", body = ErrorBody),
))]
async fn unassign_store_schedule(
    c: Caller,
    Path(StoreId { id }): Path<StoreId>,
) -> Result<StatusCode> {
    let object = format!("store/{id}");
    c.change_no_content("unassign_schedule", object, move |ops, who| {
        authorize_store(ops, who, &id, Permission::ManageCredentials)?;
        ops.unassign_schedule(&id)
    })
    .await
}

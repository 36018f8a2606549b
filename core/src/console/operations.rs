//! Operations: credential rotation schedules (list, create, delete), long-running jobs
//! (list, a job's page with its progress and summary, cancel) and the cluster's nodes.
//! Each section shows what the API lets the user see (a refusal in its place).

use std::collections::HashMap;

use axum::{
    Router,
    extract::{Path, Query},
    http::StatusCode,
    response::{IntoResponse, Response},
    routing::{get, post},
};
use maud::{Markup, html};
use serde_json::{Value, json};

use super::{
    ApiFailure, ConsoleState, Field, FormData, Post, Session, Style, button_form, details,
    error_banner, notice, page, page_with_status, post_form, redirect, seg, table, when,
};
use crate::api::{
    jobs::{Job, JobState},
    nodes::Nodes,
    schedules::Schedule,
};

pub(super) fn routes() -> Router<ConsoleState> {
    Router::new()
        .route("/console/operations", get(overview))
        .route("/console/operations/schedules", post(create_schedule))
        .route(
            "/console/operations/schedules/{name}/delete",
            post(delete_schedule),
        )
        .route("/console/operations/jobs/{id}", get(show_job))
        .route("/console/operations/jobs/{id}/cancel", post(cancel_job))
}

const DONE: &[(&str, &str)] = &[
    ("created", "Schedule created."),
    ("deleted", "Schedule deleted."),
    ("started", "Refresh started."),
    (
        "cancelled",
        "Cancel requested: the job stops before its next step.",
    ),
];

/// The API body of the schedule form: the recurrence from `type` and its fields.
pub fn schedule_body(form: &FormData) -> Result<Value, String> {
    let at = form.text("at");
    let recurrence = match form.text("type") {
        "daily" => json!({"type": "daily", "at": at}),
        "weekly" => json!({"type": "weekly", "day": form.text("day"), "at": at}),
        "monthly" => {
            let day: u32 = form
                .text("day")
                .parse()
                .map_err(|_| "a monthly schedule needs a day of the month, 1 to 28".to_string())?;
            json!({"type": "monthly", "day": day, "at": at})
        }
        "cron" => json!({"type": "cron", "expression": form.text("expression")}),
        other => return Err(format!("unknown recurrence type '{other}'")),
    };
    Ok(json!({"name": form.text("name"), "recurrence": recurrence}))
}

fn schedule_form(sess: &Session, v: &FormData) -> Markup {
    let types = [
        ("daily", "Daily"),
        ("weekly", "Weekly"),
        ("monthly", "Monthly"),
        ("cron", "Cron expression"),
    ]
    .map(|(a, b)| (a.to_string(), b.to_string()))
    .to_vec();
    post_form(
        sess,
        "create-schedule",
        "/console/operations/schedules",
        html! {
            (Field::text("name", "Name").value(v.text("name")).required())
            (Field::select("type", "Recurrence", types).value(v.text("type")))
            (Field::text("at", "At (HH:MM, UTC)").value(v.text("at")).attr("placeholder", "03:00")
                .help("Daily, weekly and monthly."))
            (Field::text("day", "Day").value(v.text("day"))
                .help("Weekly: mon..sun; monthly: 1 to 28."))
            (Field::text("expression", "Cron expression").value(v.text("expression"))
                .attr("placeholder", "0 3 * * 1-5").help("Cron: 5 fields, UTC."))
        },
        "Create schedule",
    )
}

fn jobs_table(sess: &Session, jobs: &[Job]) -> Markup {
    let rows = html! {
        @for j in jobs {
            tr data-name=(j.id) {
                td { a href={ "/console/operations/jobs/" (seg(&j.id)) } { code { (j.id) } } }
                td { (j.account) }
                td { (j.state.as_str()) }
                td { (j.done) "/" (j.total) }
                td { (j.started_by) }
                td { (when(j.started_at)) }
                td {
                    @if j.state == JobState::Running {
                        (button_form(sess, &format!("cancel-job-{}", j.id),
                            &format!("/console/operations/jobs/{}/cancel", seg(&j.id)), "Cancel", Style::Danger))
                    }
                }
            }
        }
    };
    table(
        "jobs",
        "Jobs, newest first",
        &[
            "ID",
            "Account",
            "State",
            "Progress",
            "Started by",
            "Started",
            "",
        ],
        rows,
    )
}

fn nodes_table(n: &Nodes) -> Markup {
    let rows = html! {
        @for node in &n.nodes {
            tr data-name=(node.id) {
                td { (node.id) @if node.id == n.this_node { " (this node)" } }
                td { (node.version) }
                td { code { (node.xks_addr) } }
                td { (node.admin_addr.as_deref().unwrap_or("—")) }
                td { @if node.leader { "yes" } @else { "no" } }
                td { (when(node.heartbeat_at)) }
            }
        }
    };
    html! {
        p { "Store backend " strong { (n.backend) } "; registry "
            @if n.registry_reachable { "reachable" } @else { strong { "unreachable" } " (the last nodes seen)" } "." }
        (table("nodes", "Cluster nodes", &["ID", "Version", "XKS address", "Admin address", "Leader", "Heartbeat"], rows))
    }
}

async fn overview_page(
    sess: &Session,
    status: StatusCode,
    q: &HashMap<String, String>,
    banner: Option<Markup>,
    values: &FormData,
) -> Response {
    let schedules = sess.api.get::<Vec<Schedule>>("/api/v1/schedules").await;
    let jobs = sess.api.get::<Vec<Job>>("/api/v1/jobs").await;
    let nodes = sess.api.get::<Nodes>("/api/v1/nodes").await;
    let schedule_rows = |list: &[Schedule]| {
        html! {
            @for s in list {
                tr data-name=(s.name) {
                    td { (s.name) }
                    td { (s.description) }
                    td { (when(s.next_run_at)) }
                    td {
                        (button_form(sess, &format!("delete-schedule-{}", s.name),
                            &format!("/console/operations/schedules/{}/delete", seg(&s.name)), "Delete", Style::Danger))
                    }
                }
            }
        }
    };
    let body = html! {
        h1 { "Operations" }
        (notice(q, DONE))
        @if let Some(b) = banner { (b) }
        section aria-labelledby="schedules-title" {
            h2 id="schedules-title" { "Rotation schedules" }
            @match &schedules {
                Err(e) => (error_banner(e)),
                Ok(list) => (table("schedules", "Rotation schedules",
                    &["Name", "Recurrence", "Next run", ""], schedule_rows(list))),
            }
            h3 { "Create a schedule" }
            (schedule_form(sess, values))
        }
        section aria-labelledby="jobs-title" {
            h2 id="jobs-title" { "Jobs" }
            @match &jobs {
                Err(e) => (error_banner(e)),
                Ok(list) if list.is_empty() => p { "No jobs." },
                Ok(list) => (jobs_table(sess, list)),
            }
        }
        section aria-labelledby="nodes-title" {
            h2 id="nodes-title" { "Cluster nodes" }
            @match &nodes {
                Err(e) => (error_banner(e)),
                Ok(n) => (nodes_table(n)),
            }
        }
    };
    page_with_status(sess, status, "operations", "Operations", body)
}

async fn overview(sess: Session, Query(q): Query<HashMap<String, String>>) -> Response {
    overview_page(&sess, StatusCode::OK, &q, None, &FormData::default()).await
}

async fn create_schedule(Post { sess, form }: Post) -> Response {
    let result = match schedule_body(&form) {
        Ok(body) => sess
            .api
            .post::<_, Schedule>("/api/v1/schedules", &body)
            .await
            .map(drop),
        Err(m) => Err(ApiFailure::new(StatusCode::BAD_REQUEST, "invalid_input", m)),
    };
    match result {
        Ok(()) => redirect("/console/operations?done=created"),
        Err(e) => {
            let q = HashMap::new();
            overview_page(&sess, e.status, &q, Some(error_banner(&e)), &form).await
        }
    }
}

async fn delete_schedule(Path(name): Path<String>, Post { sess, .. }: Post) -> Response {
    let path = format!("/api/v1/schedules/{}", seg(&name));
    match sess.api.delete(&path).await {
        Ok(()) => redirect("/console/operations?done=deleted"),
        Err(e) => {
            let (q, empty) = (HashMap::new(), FormData::default());
            overview_page(&sess, e.status, &q, Some(error_banner(&e)), &empty).await
        }
    }
}

fn job_page(
    sess: &Session,
    job: &Job,
    q: &HashMap<String, String>,
    banner: Option<Markup>,
) -> Markup {
    let s = &job.summary;
    html! {
        p { a href="/console/operations" { "← Operations" } }
        h1 { "Job " (job.id) }
        (notice(q, DONE))
        @if let Some(b) = banner { (b) }
        (details(&[
            ("Account", html! { a href={ "/console/accounts/" (seg(&job.account)) } { (job.account) } }),
            ("State", html! { span id="job-state" { (job.state.as_str()) } }),
            ("Progress", html! { (job.done) "/" (job.total) }),
            ("Started", html! { (when(job.started_at)) " by " (job.started_by) }),
            ("Finished", html! { (job.finished_at.map_or("—".to_string(), when)) }),
            ("Summary", html! { (s.changed) " changed, " (s.unchanged) " up to date, " (s.reported) " reported" }),
        ]))
        @if let Some(e) = &job.error {
            div role="alert" class="error" data-code=(e.code) { (e.message) }
        }
        @if job.state == JobState::Running {
            (button_form(sess, "cancel-job", &format!("/console/operations/jobs/{}/cancel", seg(&job.id)), "Cancel job", Style::Danger))
        }
        @if !s.changes.is_empty() {
            h2 { "Changes" }
            ul { @for c in &s.changes {
                li { (format!("{:?}", c.kind)) " store " (c.store)
                    @if let Some(k) = &c.external_id { " key " (k) } " (" code { (c.aws_id) } ")" }
            } }
        }
        @if !s.findings.is_empty() {
            h2 { "Reported" }
            ul { @for f in &s.findings { li { (f.message) } } }
        }
    }
}

async fn show_job(
    sess: Session,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    match sess
        .api
        .get::<Job>(&format!("/api/v1/jobs/{}", seg(&id)))
        .await
    {
        Ok(job) => {
            let body = job_page(&sess, &job, &q, None);
            page(&sess, "operations", &format!("Job {id}"), body)
        }
        Err(e) => e.into_response(),
    }
}

async fn cancel_job(Path(id): Path<String>, Post { sess, .. }: Post) -> Response {
    let path = format!("/api/v1/jobs/{}/cancel", seg(&id));
    match sess.api.post_empty::<Job>(&path).await {
        Ok(_) => redirect(&format!(
            "/console/operations/jobs/{}?done=cancelled",
            seg(&id)
        )),
        Err(e) => match sess
            .api
            .get::<Job>(&format!("/api/v1/jobs/{}", seg(&id)))
            .await
        {
            Ok(job) => {
                let body = job_page(&sess, &job, &HashMap::new(), Some(error_banner(&e)));
                page_with_status(&sess, e.status, "operations", &format!("Job {id}"), body)
            }
            Err(_) => e.into_response(),
        },
    }
}

#[cfg(test)]
mod tests;

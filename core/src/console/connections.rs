//! Connections (admins only, as the API says): AWS connections (KMS and STS
//! credentials; the secret access key is sent once and never shown) and HSM connections
//! (a PKCS#11 module, a token and a reference to its PIN). Lists with create forms, the
//! Test button with its result, delete, and the HSM connection's edit form (the only
//! kind the API lets change).

use std::collections::{BTreeMap, HashMap};

use axum::{
    Router,
    extract::{Path, Query},
    http::StatusCode,
    response::{IntoResponse, Response},
    routing::{get, post},
};
use maud::{Markup, html};
use zeroize::Zeroizing;

use super::{
    ApiFailure, ConsoleState, Field, FormData, Post, Session, Style, button_form, details,
    error_banner, notice, ok_banner, page_with_status, post_form, redirect, seg, table, when,
};
use crate::api::connections::{
    AwsConnection, AwsConnectionTest, ConnectionTest, HsmConnection, HsmConnectionPatch,
    NewAwsConnection, NewHsmConnection, TestStatus,
};

pub(super) fn routes() -> Router<ConsoleState> {
    Router::new()
        .route("/console/connections", get(list))
        .route("/console/connections/aws", post(create_aws))
        .route("/console/connections/hsm", post(create_hsm))
        .route(
            "/console/connections/hsm/{name}",
            get(show_hsm).post(update_hsm),
        )
        .route("/console/connections/{kind}/{name}/test", post(test))
        .route("/console/connections/{kind}/{name}/delete", post(delete))
}

const DONE: &[(&str, &str)] = &[
    ("created", "Connection created."),
    ("updated", "Connection saved."),
    ("deleted", "Connection deleted."),
];

/// `aws` or `hsm`, as the API's paths name them.
fn kind_of(kind: &str) -> Result<&'static str, ApiFailure> {
    match kind {
        "aws" => Ok("aws"),
        "hsm" => Ok("hsm"),
        _ => Err(ApiFailure::new(
            StatusCode::NOT_FOUND,
            "not_found",
            "connections are aws or hsm",
        )),
    }
}

/// The result of a connection's test: Ready, or Failed with the reason.
fn test_banner(kind: &str, name: &str, t: &ConnectionTest) -> Markup {
    match t.status {
        TestStatus::Ready => ok_banner(&format!(
            "Connection {kind}/{name}: Ready{}",
            t.model
                .as_ref()
                .map(|m| format!(" ({m})"))
                .unwrap_or_default()
        )),
        TestStatus::Failed => html! {
            div role="alert" class="error" data-code="connection_test_failed" id="test-result" {
                strong { "Connection " (kind) "/" (name) ": Failed. " }
                (t.reason.as_deref().unwrap_or("no reason given"))
            }
        },
    }
}

fn aws_fields(v: &FormData) -> Markup {
    html! {
        (Field::text("name", "Name").value(v.text("name")).required().id_prefix("aws"))
        (Field::text("access_key_id", "Access key id").value(v.text("access_key_id")).required())
        (Field::password("secret_access_key", "Secret access key").required().autocomplete("off")
            .help("Sealed at rest; never shown again."))
        (Field::text("role_arn", "Role ARN").value(v.text("role_arn")).help("Optional: a role to assume through STS."))
        (Field::text("endpoint_url", "KMS endpoint URL").value(v.text("endpoint_url"))
            .help("Optional: instead of https://kms.<region>.amazonaws.com."))
    }
}

fn hsm_fields(v: &FormData, with_name: bool) -> Markup {
    html! {
        @if with_name {
            (Field::text("name", "Name").value(v.text("name")).required().id_prefix("hsm"))
        }
        (Field::text("module", "PKCS#11 module").value(v.text("module")).required()
            .help("Path of the module library."))
        (Field::text("token_label", "Token label").value(v.text("token_label")).required()
            .help("The partition's label (fixed once created)."))
        (Field::text("pin_env", "PIN environment variable").value(v.text("pin_env"))
            .help("The variable holding the PIN; or a file below."))
        (Field::text("pin_file", "PIN file").value(v.text("pin_file")))
        (Field::number("pool_size", "Sessions").value(v.text("pool_size")).attr("min", "1"))
        (Field::number("op_timeout_ms", "Operation timeout (ms)").value(v.text("op_timeout_ms")).attr("min", "1"))
    }
}

/// The list again with the API's refusal `e`, the refused form keeping its values.
async fn refused(
    sess: &Session,
    e: &ApiFailure,
    aws_values: &FormData,
    hsm_values: &FormData,
) -> Response {
    let banner = Some(error_banner(e));
    list_page(
        sess,
        e.status,
        &HashMap::new(),
        banner,
        aws_values,
        hsm_values,
    )
    .await
}

async fn list_page(
    sess: &Session,
    status: StatusCode,
    q: &HashMap<String, String>,
    banner: Option<Markup>,
    aws_values: &FormData,
    hsm_values: &FormData,
) -> Response {
    let aws = sess
        .api
        .get::<Vec<AwsConnection>>("/api/v1/connections/aws")
        .await;
    let hsm = sess
        .api
        .get::<Vec<HsmConnection>>("/api/v1/connections/hsm")
        .await;
    let actions = |kind: &str, name: &str| {
        let base = format!("/console/connections/{kind}/{}", seg(name));
        html! {
            (button_form(sess, &format!("test-{kind}-{name}"), &format!("{base}/test"), "Test", Style::Plain))
            " "
            (button_form(sess, &format!("delete-{kind}-{name}"), &format!("{base}/delete"), "Delete", Style::Danger))
        }
    };
    let body = html! {
        h1 { "Connections" }
        (notice(q, DONE))
        @if let Some(b) = banner { (b) }
        h2 { "AWS" }
        @match &aws {
            Err(e) => (error_banner(e)),
            Ok(list) => (table("aws-connections", "AWS connections",
                &["Name", "Access key id", "Role", "Endpoint", "Created", ""], html! {
                @for c in list {
                    tr data-name=(c.name) {
                        td { (c.name) }
                        td { code { (c.access_key_id) } }
                        td { (c.role_arn.as_deref().unwrap_or("—")) }
                        td { (c.endpoint_url.as_deref().unwrap_or("AWS")) }
                        td { (when(c.created_at)) }
                        td { (actions("aws", &c.name)) }
                    }
                }
            })),
        }
        h3 { "Create an AWS connection" }
        (post_form(sess, "create-aws-connection", "/console/connections/aws", aws_fields(aws_values), "Create AWS connection"))
        h2 { "HSM" }
        @match &hsm {
            Err(e) => (error_banner(e)),
            Ok(list) => (table("hsm-connections", "HSM connections",
                &["Name", "Module", "Token", "PIN from", "Sessions", ""], html! {
                @for c in list {
                    tr data-name=(c.name) {
                        td { a href={ "/console/connections/hsm/" (seg(&c.name)) } { (c.name) } }
                        td { code { (c.module) } }
                        td { (c.token_label) }
                        td {
                            @if let Some(v) = &c.pin_env { "env " code { (v) } }
                            @else if let Some(f) = &c.pin_file { "file " code { (f) } }
                            @else { "—" }
                        }
                        td { (c.pool_size.map_or("default".to_string(), |n| n.to_string())) }
                        td { (actions("hsm", &c.name)) }
                    }
                }
            })),
        }
        h3 { "Create an HSM connection" }
        (post_form(sess, "create-hsm-connection", "/console/connections/hsm", hsm_fields(hsm_values, true), "Create HSM connection"))
    };
    page_with_status(sess, status, "connections", "Connections", body)
}

async fn list(sess: Session, Query(q): Query<HashMap<String, String>>) -> Response {
    let empty = FormData::default();
    list_page(&sess, StatusCode::OK, &q, None, &empty, &empty).await
}

async fn create_aws(Post { sess, form }: Post) -> Response {
    let body = NewAwsConnection {
        name: form.text("name").to_string(),
        access_key_id: form.text("access_key_id").to_string(),
        secret_access_key: Zeroizing::new(
            form.raw("secret_access_key")
                .unwrap_or_default()
                .to_string(),
        ),
        role_arn: form.opt("role_arn"),
        endpoint_url: form.opt("endpoint_url"),
        sts_regional_endpoints: Default::default(),
        sts_endpoint_url: None,
        ca_file: None,
    };
    let done = sess
        .api
        .post::<_, AwsConnection>("/api/v1/connections/aws", &body)
        .await;
    match done {
        Ok(_) => redirect("/console/connections?done=created"),
        Err(e) => refused(&sess, &e, &form, &FormData::default()).await,
    }
}

/// The numbers of an HSM form: `Err` names the field.
fn hsm_numbers(form: &FormData) -> Result<(Option<u32>, Option<u64>), ApiFailure> {
    let bad = |m: String| ApiFailure::new(StatusCode::BAD_REQUEST, "invalid_input", m);
    Ok((
        form.number("pool_size").map_err(bad)?,
        form.number("op_timeout_ms").map_err(bad)?,
    ))
}

async fn create_hsm(Post { sess, form }: Post) -> Response {
    let result = match hsm_numbers(&form) {
        Ok((pool_size, op_timeout_ms)) => {
            let body = NewHsmConnection {
                name: form.text("name").to_string(),
                module: form.text("module").to_string(),
                token_label: form.text("token_label").to_string(),
                pin_env: form.opt("pin_env"),
                pin_file: form.opt("pin_file"),
                module_env: BTreeMap::new(),
                pool_size,
                op_timeout_ms,
            };
            sess.api
                .post::<_, HsmConnection>("/api/v1/connections/hsm", &body)
                .await
                .map(drop)
        }
        Err(e) => Err(e),
    };
    match result {
        Ok(()) => redirect("/console/connections?done=created"),
        Err(e) => refused(&sess, &e, &FormData::default(), &form).await,
    }
}

async fn test(Path((kind, name)): Path<(String, String)>, Post { sess, .. }: Post) -> Response {
    let kind = match kind_of(&kind) {
        Ok(k) => k,
        Err(e) => return e.into_response(),
    };
    let path = format!("/api/v1/connections/{kind}/{}/test", seg(&name));
    let tested = if kind == "aws" {
        sess.api
            .post::<_, ConnectionTest>(&path, &AwsConnectionTest::default())
            .await
    } else {
        sess.api.post_empty::<ConnectionTest>(&path).await
    };
    let (status, banner) = match tested {
        Ok(t) => (StatusCode::OK, test_banner(kind, &name, &t)),
        Err(e) => (e.status, error_banner(&e)),
    };
    let empty = FormData::default();
    list_page(&sess, status, &HashMap::new(), Some(banner), &empty, &empty).await
}

async fn delete(Path((kind, name)): Path<(String, String)>, Post { sess, .. }: Post) -> Response {
    let kind = match kind_of(&kind) {
        Ok(k) => k,
        Err(e) => return e.into_response(),
    };
    let path = format!("/api/v1/connections/{kind}/{}", seg(&name));
    match sess.api.delete(&path).await {
        Ok(()) => redirect("/console/connections?done=deleted"),
        Err(e) => refused(&sess, &e, &FormData::default(), &FormData::default()).await,
    }
}

fn hsm_values(c: &HsmConnection) -> FormData {
    let pool = c.pool_size.map(|n| n.to_string()).unwrap_or_default();
    let timeout = c.op_timeout_ms.map(|n| n.to_string()).unwrap_or_default();
    FormData::from_pairs([
        ("module", c.module.as_str()),
        ("token_label", c.token_label.as_str()),
        ("pin_env", c.pin_env.as_deref().unwrap_or("")),
        ("pin_file", c.pin_file.as_deref().unwrap_or("")),
        ("pool_size", pool.as_str()),
        ("op_timeout_ms", timeout.as_str()),
    ])
}

fn hsm_page(
    sess: &Session,
    status: StatusCode,
    c: &HsmConnection,
    values: &FormData,
    banner: Option<Markup>,
    q: &HashMap<String, String>,
) -> Response {
    let base = format!("/console/connections/hsm/{}", seg(&c.name));
    let body = html! {
        p { a href="/console/connections" { "← Connections" } }
        h1 { "HSM connection " (c.name) }
        (notice(q, DONE))
        @if let Some(b) = banner { (b) }
        (details(&[
            ("Module", html! { code { (c.module) } }),
            ("Token", html! { (c.token_label) }),
        ]))
        h2 { "Edit" }
        p class="help" { "A change is tested against the HSM before it is saved." }
        (post_form(sess, "update-hsm-connection", &base, hsm_fields(values, false), "Save"))
        (button_form(sess, "test-hsm-connection", &format!("{base}/test"), "Test", Style::Plain))
    };
    page_with_status(
        sess,
        status,
        "connections",
        &format!("HSM connection {}", c.name),
        body,
    )
}

async fn show_hsm(
    sess: Session,
    Path(name): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let path = format!("/api/v1/connections/hsm/{}", seg(&name));
    match sess.api.get::<HsmConnection>(&path).await {
        Ok(c) => hsm_page(&sess, StatusCode::OK, &c, &hsm_values(&c), None, &q),
        Err(e) => e.into_response(),
    }
}

/// `Some(value)` when the form changes `current` (the API's patch leaves absent
/// fields as they are).
fn changed(form: &FormData, field: &str, current: Option<&str>) -> Option<String> {
    let v = form.text(field);
    (v != current.unwrap_or("")).then(|| v.to_string())
}

async fn update_hsm(Path(name): Path<String>, Post { sess, form }: Post) -> Response {
    let path = format!("/api/v1/connections/hsm/{}", seg(&name));
    let current = match sess.api.get::<HsmConnection>(&path).await {
        Ok(c) => c,
        Err(e) => return e.into_response(),
    };
    let result = match hsm_numbers(&form) {
        Ok((pool_size, op_timeout_ms)) => {
            let patch = HsmConnectionPatch {
                module: changed(&form, "module", Some(&current.module)),
                token_label: changed(&form, "token_label", Some(&current.token_label)),
                pin_env: changed(&form, "pin_env", current.pin_env.as_deref()),
                pin_file: changed(&form, "pin_file", current.pin_file.as_deref()),
                module_env: None,
                pool_size: pool_size.filter(|n| Some(*n) != current.pool_size),
                op_timeout_ms: op_timeout_ms.filter(|n| Some(*n) != current.op_timeout_ms),
            };
            sess.api
                .call(
                    axum::http::Method::PATCH,
                    &path,
                    serde_json::to_vec(&patch).ok(),
                    None,
                )
                .await
                .map(drop)
        }
        Err(e) => Err(e),
    };
    match result {
        Ok(()) => redirect(&format!(
            "/console/connections/hsm/{}?done=updated",
            seg(&name)
        )),
        Err(e) => {
            let q = HashMap::new();
            hsm_page(&sess, e.status, &current, &form, Some(error_banner(&e)), &q)
        }
    }
}

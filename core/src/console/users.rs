//! Users and their groups (`admins`, `users`: the groups the API knows, a user's
//! `groups` set): the list with the create form and a delete button per user (admins
//! only, as the API says), and a user's page with the password change (a user's own,
//! with the current password, or anyone's for admins).

use std::collections::HashMap;

use axum::{
    Router,
    extract::{Path, Query},
    http::StatusCode,
    response::{IntoResponse, Response},
    routing::{get, post},
};
use maud::{Markup, html};

use super::{
    ApiFailure, ConsoleState, Field, FormData, Post, Session, Style, button_form, details,
    error_banner, notice, page_with_status, post_form, redirect, seg, table, when,
};
use crate::{
    api::users::{NewPassword, NewUser, User},
    identity::{ADMINS, USERS},
};

pub(super) fn routes() -> Router<ConsoleState> {
    Router::new()
        .route("/console/users", get(list).post(create))
        .route("/console/users/{name}", get(show))
        .route("/console/users/{name}/password", post(password))
        .route("/console/users/{name}/delete", post(delete))
}

const DONE: &[(&str, &str)] = &[
    ("created", "User created."),
    ("deleted", "User deleted."),
    ("password", "Password changed."),
];

/// The groups a user may be put in, with what they mean.
const GROUPS: &[(&str, &str)] = &[
    (ADMINS, "admins: may do everything"),
    (USERS, "users: what the accounts' ACLs grant"),
];

/// The group checkboxes (`name="groups"`, one per group).
fn group_boxes(checked: &[String]) -> Markup {
    html! {
        fieldset class="field" {
            legend { "Groups" }
            @for (g, label) in GROUPS {
                div {
                    input type="checkbox" id={ "groups-" (g) } name="groups" value=(g)
                        checked[checked.iter().any(|c| c == g)];
                    label for={ "groups-" (g) } { (label) }
                }
            }
        }
    }
}

async fn list_page(
    sess: &Session,
    status: StatusCode,
    q: &HashMap<String, String>,
    values: &FormData,
    refusal: Option<&ApiFailure>,
) -> Response {
    let users = sess.api.get::<Vec<User>>("/api/v1/users").await;
    let rows = match &users {
        Ok(list) => html! {
            @for u in list {
                tr data-name=(u.name) {
                    td { a href={ "/console/users/" (seg(&u.name)) } { (u.name) } }
                    td { (u.groups.iter().cloned().collect::<Vec<_>>().join(", ")) }
                    td { (when(u.created_at)) }
                    td {
                        (button_form(sess, &format!("delete-user-{}", u.name),
                            &format!("/console/users/{}/delete", seg(&u.name)), "Delete", Style::Danger))
                    }
                }
            }
        },
        Err(_) => html! {},
    };
    let groups = match values.all("groups") {
        g if g.is_empty() && values.raw("name").is_none() => vec![USERS.to_string()],
        g => g,
    };
    let body = html! {
        h1 { "Users" }
        (notice(q, DONE))
        @if let Some(e) = refusal { (error_banner(e)) }
        @match &users {
            Err(e) => {
                (error_banner(e))
                p { a href={ "/console/users/" (seg(&sess.user)) } { "Change your password" } }
            }
            Ok(list) => {
                (table("users", "Users", &["Name", "Groups", "Created", ""], rows))
                @if list.is_empty() { p { "No users." } }
            }
        }
        h2 { "Create a user" }
        (post_form(sess, "create-user", "/console/users", html! {
            (Field::text("name", "Name").value(values.text("name")).required().autocomplete("off"))
            (Field::password("password", "Initial password").required().autocomplete("new-password")
                .help("8 to 1024 characters; the user may change it later."))
            (group_boxes(&groups))
        }, "Create user"))
    };
    page_with_status(sess, status, "users", "Users", body)
}

async fn list(sess: Session, Query(q): Query<HashMap<String, String>>) -> Response {
    list_page(&sess, StatusCode::OK, &q, &FormData::default(), None).await
}

async fn create(Post { sess, form }: Post) -> Response {
    let body = NewUser {
        name: form.text("name").to_string(),
        password: form.raw("password").unwrap_or_default().to_string(),
        groups: form.all("groups").into_iter().collect(),
    };
    match sess.api.post::<_, User>("/api/v1/users", &body).await {
        Ok(_) => redirect("/console/users?done=created"),
        Err(e) => list_page(&sess, e.status, &HashMap::new(), &form, Some(&e)).await,
    }
}

fn user_page(
    sess: &Session,
    status: StatusCode,
    name: &str,
    user: Option<&User>,
    banner: Option<Markup>,
    q: &HashMap<String, String>,
) -> Response {
    let own = name == sess.user;
    let body = html! {
        p { a href="/console/users" { "← Users" } }
        h1 { "User " (name) }
        (notice(q, DONE))
        @if let Some(b) = banner { (b) }
        @if let Some(u) = user {
            (details(&[
                ("Groups", html! { (u.groups.iter().cloned().collect::<Vec<_>>().join(", ")) }),
                ("Created", html! { (when(u.created_at)) }),
            ]))
        }
        h2 { "Change the password" }
        (post_form(sess, "change-password", &format!("/console/users/{}/password", seg(name)), html! {
            @if own {
                (Field::password("current_password", "Current password").autocomplete("current-password")
                    .help("Needed to change your own password (admins changing another user's do not need it)."))
            }
            (Field::password("password", "New password").required().autocomplete("new-password"))
        }, "Change password"))
    };
    page_with_status(sess, status, "users", &format!("User {name}"), body)
}

async fn show(
    sess: Session,
    Path(name): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    match sess
        .api
        .get::<User>(&format!("/api/v1/users/{}", seg(&name)))
        .await
    {
        Ok(u) => user_page(&sess, StatusCode::OK, &name, Some(&u), None, &q),
        Err(e) => e.into_response(),
    }
}

async fn password(Path(name): Path<String>, Post { sess, form }: Post) -> Response {
    let body = NewPassword {
        password: form.raw("password").unwrap_or_default().to_string(),
        current_password: form
            .raw("current_password")
            .filter(|p| !p.is_empty())
            .map(str::to_string),
    };
    let path = format!("/api/v1/users/{}/password", seg(&name));
    match sess.api.put::<_, ()>(&path, &body).await {
        Ok(()) => redirect(&format!("/console/users/{}?done=password", seg(&name))),
        Err(e) => {
            let user = sess
                .api
                .get::<User>(&format!("/api/v1/users/{}", seg(&name)))
                .await
                .ok();
            let q = HashMap::new();
            user_page(
                &sess,
                e.status,
                &name,
                user.as_ref(),
                Some(error_banner(&e)),
                &q,
            )
        }
    }
}

async fn delete(Path(name): Path<String>, Post { sess, .. }: Post) -> Response {
    match sess
        .api
        .delete(&format!("/api/v1/users/{}", seg(&name)))
        .await
    {
        Ok(()) => redirect("/console/users?done=deleted"),
        Err(e) => {
            list_page(
                &sess,
                e.status,
                &HashMap::new(),
                &FormData::default(),
                Some(&e),
            )
            .await
        }
    }
}

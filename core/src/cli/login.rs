//! `keyhold login` and `keyhold logout`: a session token saved for later commands.

use http::Method;
use serde::Serialize;
use serde_json::{Value, json};

use super::{
    CliError, Global, Result,
    context::Ctx,
    output::{self, outln, print_json},
    password::PasswordSource,
    session::Session,
};

/// `POST /login` body.
#[derive(Serialize)]
struct LoginRequest<'a> {
    user: &'a str,
    password: &'a str,
}

/// Logs in as `user` and saves the session.
pub async fn login(global: &Global, user: &str, password: &PasswordSource) -> Result<()> {
    let password = password.read()?;
    let ctx = Ctx::new(global, false)?;
    let body = LoginRequest {
        user,
        password: &password,
    };
    let r = ctx.call_with(Method::POST, "/login", &body).await?;
    let cacert = ctx
        .cacert
        .as_ref()
        .filter(|_| ctx.client.is_https())
        .map(|p| std::path::absolute(p).unwrap_or_else(|_| p.clone()));
    let session = Session {
        cacert,
        expires_at: r.json["expires_at"].clone(),
        server: Some(ctx.server.clone()),
        token: r.json["token"].as_str().map(str::to_string),
        user: r.json["user"].clone(),
    };
    let path = session.save()?;
    if ctx.json() {
        let mut view = r.json.clone();
        view["token"] = json!("(saved)");
        view["saved_to"] = json!(path);
        print_json(&view);
    } else {
        outln!(
            "Logged in to {} as {} (session until {}); token saved to {}",
            ctx.server,
            output::cell("", &r.json["user"]),
            output::cell("expires_at", &r.json["expires_at"]),
            path.display()
        );
    }
    Ok(())
}

/// Revokes the session's token and forgets the saved session.
pub async fn logout(global: &Global) -> Result<()> {
    let ctx = Ctx::new(global, true)?;
    let result = ctx.call(Method::POST, "/logout").await;
    let from_session =
        global.token.is_none() && Session::load().is_some_and(|s| s.is_for(&ctx.server));
    if from_session {
        Session::remove();
    }
    match result {
        Ok(_) => {
            ctx.done("Logged out.", &Value::Null);
            Ok(())
        }
        // An expired or revoked session: it is forgotten either way.
        Err(CliError::Refused { status: 401, .. }) if from_session => {
            ctx.done("Logged out (the session had already ended).", &Value::Null);
            Ok(())
        }
        Err(e) => Err(e),
    }
}

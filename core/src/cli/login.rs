//! `keyhold login` and `keyhold logout`: a session token saved for later commands.

use http::Method;
use keyhold::api::session::{Login, Session as Issued};
use serde_json::{Value, json};

use super::{
    CliError, Global, Result,
    context::Ctx,
    output::{self, outln, print_json},
    password::PasswordSource,
    session::Session,
};

/// Logs in as `user` and saves the session.
pub async fn login(global: &Global, user: &str, password: &PasswordSource) -> Result<()> {
    let body = Login {
        user: user.to_string(),
        password: password.read()?,
    };
    let ctx = Ctx::new(global, false)?;
    let r = ctx.call_with(Method::POST, "/login", &body).await?;
    let issued: Issued = r.parse()?;
    let cacert = ctx
        .cacert
        .as_ref()
        .filter(|_| ctx.client.is_https())
        .map(|p| std::path::absolute(p).unwrap_or_else(|_| p.clone()));
    let session = Session {
        cacert,
        expires_at: json!(issued.expires_at),
        server: Some(ctx.server.clone()),
        token: Some(issued.token),
        user: json!(issued.user),
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

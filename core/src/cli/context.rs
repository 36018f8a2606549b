//! What every command works with: the client of the chosen server (flags, then the
//! saved session, then the defaults) and the output mode.

use std::path::PathBuf;

use http::Method;
use serde::Serialize;
use serde_json::Value;

use super::{
    DEFAULT_CACERT, DEFAULT_SERVER, Global, Output, Result,
    client::{Client, Reply},
    output::{self, out, outln, print_json},
    session::Session,
};

/// A command's context: the server, its client, and how to print.
pub struct Ctx {
    /// The admin API client.
    pub client: Client,
    /// Tables or JSON.
    pub output: Output,
    /// The admin API URL.
    pub server: String,
    /// The CA trusted for HTTPS, if any.
    pub cacert: Option<PathBuf>,
}

impl Ctx {
    /// The context of a command: `--server`, `--cacert` and `--token` win over the
    /// saved session, whose CA and token are used only for the server it was saved for;
    /// `with_token` false sends no token (login).
    pub fn new(global: &Global, with_token: bool) -> Result<Ctx> {
        let session = Session::load().unwrap_or_default();
        let server = global
            .server
            .clone()
            .or_else(|| session.server.clone())
            .unwrap_or_else(|| DEFAULT_SERVER.to_string());
        let same_server = session.is_for(&server);
        let cacert = global
            .cacert
            .clone()
            .or_else(|| session.cacert.filter(|p| same_server && p.is_file()))
            .or_else(|| {
                let p = PathBuf::from(DEFAULT_CACERT);
                p.is_file().then_some(p)
            });
        let token = if with_token {
            global
                .token
                .clone()
                .or_else(|| session.token.filter(|_| same_server))
        } else {
            None
        };
        let client = Client::new(&server, cacert.as_deref(), token)?;
        Ok(Ctx {
            client,
            output: global.output,
            server,
            cacert,
        })
    }

    /// Sends a request without a body.
    pub async fn call(&self, method: Method, path: &str) -> Result<Reply> {
        self.client.send::<()>(method, path, None, &[]).await
    }

    /// Sends a request with a JSON body.
    pub async fn call_with<B: Serialize + ?Sized>(
        &self,
        method: Method,
        path: &str,
        body: &B,
    ) -> Result<Reply> {
        self.client.send(method, path, Some(body), &[]).await
    }

    /// GETs `path`; returns the JSON body.
    pub async fn get(&self, path: &str) -> Result<Value> {
        Ok(self.call(Method::GET, path).await?.json)
    }

    /// GETs `path` and prints the object.
    pub async fn show(&self, path: &str) -> Result<()> {
        let v = self.get(path).await?;
        self.object(&v);
        Ok(())
    }

    /// GETs `path` and prints the list as a table of `columns`.
    pub async fn show_list(&self, path: &str, columns: &[&str]) -> Result<()> {
        let v = self.get(path).await?;
        self.list(&v, columns);
        Ok(())
    }

    /// Sends `method path` without a body and confirms with `message` (JSON output: the
    /// answer's body, none for a `204 No Content`).
    pub async fn act(&self, method: Method, path: &str, message: &str) -> Result<()> {
        let r = self.call(method, path).await?;
        self.done(message, &r.json);
        Ok(())
    }

    /// Whether the output is JSON.
    pub fn json(&self) -> bool {
        self.output == Output::Json
    }

    /// Prints a list: the API's JSON, or a table of `columns`.
    pub fn list(&self, items: &Value, columns: &[&str]) {
        if self.json() {
            print_json(items);
        } else {
            out!("{}", output::list(items, columns));
        }
    }

    /// Prints one object: the API's JSON, or `field  value` lines.
    pub fn object(&self, item: &Value) {
        if self.json() {
            print_json(item);
        } else {
            out!("{}", output::object(item, &[]));
        }
    }

    /// Prints a confirmation (table mode) or the JSON body (if any).
    pub fn done(&self, message: &str, body: &Value) {
        if self.json() {
            if !body.is_null() {
                print_json(body);
            }
        } else {
            outln!("{message}");
        }
    }
}

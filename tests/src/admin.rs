//! A JSON client of the admin REST API (`/api/v1/...`) with a bearer token.

use serde_json::Value;

use crate::client::{RawRequest, Reply, Transport};

/// An admin API client; `token` is sent as `Authorization: Bearer ...` when set.
#[derive(Clone)]
pub struct AdminClient {
    /// How to reach the admin listener.
    pub transport: Transport,
    /// The bearer token.
    pub token: Option<String>,
}

impl AdminClient {
    /// An unauthenticated client.
    pub fn new(transport: Transport) -> AdminClient {
        AdminClient {
            transport,
            token: None,
        }
    }

    /// The same client with another token.
    pub fn with_token(&self, token: &str) -> AdminClient {
        AdminClient {
            token: Some(token.into()),
            ..self.clone()
        }
    }

    /// Sends `method path` with an optional JSON body and extra headers.
    pub async fn request(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
        headers: &[(&str, &str)],
    ) -> Reply {
        let mut req = RawRequest::new(
            method,
            path,
            body.map(|b| b.to_string()).unwrap_or_default(),
        );
        if body.is_some() {
            req = req.with_header("content-type", "application/json");
        }
        if let Some(t) = &self.token {
            req = req.with_header("authorization", &format!("Bearer {t}"));
        }
        for (n, v) in headers {
            req = req.with_header(n, v);
        }
        let conn = self.transport.connect().await.expect("admin connect");
        conn.send(&req)
            .await
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"))
    }

    /// Sends `method path` with an optional JSON body; transport failures (refused
    /// connection, reset, a server killed mid-request) and a 30 s timeout are errors
    /// instead of panics.
    pub async fn try_request(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Reply, crate::BoxError> {
        let mut req = RawRequest::new(
            method,
            path,
            body.map(|b| b.to_string()).unwrap_or_default(),
        );
        if body.is_some() {
            req = req.with_header("content-type", "application/json");
        }
        if let Some(t) = &self.token {
            req = req.with_header("authorization", &format!("Bearer {t}"));
        }
        let fut = async {
            let conn = self.transport.connect().await?;
            conn.send(&req).await
        };
        tokio::time::timeout(std::time::Duration::from_secs(30), fut)
            .await
            .map_err(|_| format!("{method} {path}: no answer within 30 s"))?
    }

    /// GET.
    pub async fn get(&self, path: &str) -> Reply {
        self.request("GET", path, None, &[]).await
    }

    /// POST with a JSON body.
    pub async fn post(&self, path: &str, body: &Value) -> Reply {
        self.request("POST", path, Some(body), &[]).await
    }

    /// DELETE.
    pub async fn delete(&self, path: &str) -> Reply {
        self.request("DELETE", path, None, &[]).await
    }

    /// Logs in; panics unless it succeeds. Returns a client with the session token.
    pub async fn login(&self, user: &str, password: &str) -> AdminClient {
        let r = self
            .post(
                "/api/v1/login",
                &serde_json::json!({"user": user, "password": password}),
            )
            .await;
        let json = expect_status(&r, 200);
        self.with_token(json["token"].as_str().expect("token"))
    }
}

/// Asserts the status and returns the JSON body (`null` for an empty body).
#[track_caller]
pub fn expect_status(r: &Reply, status: u16) -> Value {
    assert_eq!(
        r.status.as_u16(),
        status,
        "expected {status}, got {}: {}",
        r.status,
        String::from_utf8_lossy(&r.body)
    );
    if r.body.is_empty() {
        Value::Null
    } else {
        r.json()
    }
}

/// Asserts an admin API refusal: status, JSON `{"error": {"code", "message"}}` with
/// this code. Returns the message.
#[track_caller]
pub fn expect_error(r: &Reply, status: u16, code: &str) -> String {
    let json = expect_status(r, status);
    assert_eq!(
        r.content_type(),
        Some("application/json"),
        "refusals are JSON"
    );
    assert_eq!(json["error"]["code"], code, "body: {json}");
    json["error"]["message"]
        .as_str()
        .expect("error.message")
        .to_string()
}

/// The credential of a credentials file (`POST /stores` `credentials_file`, or the body
/// of `POST /stores/{id}/credentials`).
#[track_caller]
pub fn credential_of(file: &Value) -> crate::Credential {
    crate::Credential::new(
        file["XksProxyAuthenticationCredential"]["AccessKeyId"]
            .as_str()
            .expect("AccessKeyId"),
        file["XksProxyAuthenticationCredential"]["RawSecretAccessKey"]
            .as_str()
            .expect("RawSecretAccessKey"),
    )
}

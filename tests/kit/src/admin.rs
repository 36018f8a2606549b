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

    /// The request `method path` with an optional JSON body and the bearer token.
    pub fn raw(&self, method: &str, path: &str, body: Option<&Value>) -> RawRequest {
        let mut req = RawRequest::new(
            method,
            path,
            body.map(|b| b.to_string()).unwrap_or_default(),
        );
        if body.is_some() {
            req = req.with_header("content-type", "application/json");
        }
        match &self.token {
            Some(t) => req.with_header("authorization", &format!("Bearer {t}")),
            None => req,
        }
    }

    /// Sends `req` on a fresh connection; transport failures (refused connection, reset,
    /// a server killed mid-request) and a 30 s timeout are errors, not panics.
    pub async fn try_send(&self, req: &RawRequest) -> Result<Reply, crate::BoxError> {
        let fut = async {
            let conn = self.transport.connect().await?;
            conn.send(req).await
        };
        tokio::time::timeout(std::time::Duration::from_secs(30), fut)
            .await
            .map_err(|_| format!("{} {}: no answer within 30 s", req.method, req.path))?
    }

    /// Sends `method path` with an optional JSON body and extra headers; panics on a
    /// transport failure or when no answer comes within 30 s.
    pub async fn request(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
        headers: &[(&str, &str)],
    ) -> Reply {
        let mut req = self.raw(method, path, body);
        for (n, v) in headers {
            req = req.with_header(n, v);
        }
        self.try_send(&req)
            .await
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"))
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

    /// `POST /api/v1/stores` with `body`.
    pub async fn create_store(&self, body: &Value) -> Reply {
        self.post("/api/v1/stores", body).await
    }

    /// `POST /api/v1/sources/{source}/keys` with `body`.
    pub async fn create_source_key(&self, source: &str, body: &Value) -> Reply {
        self.post(&format!("/api/v1/sources/{source}/keys"), body)
            .await
    }

    /// `POST {store}/keys`: HYOK key `external_id` on `source_key`, where `store` is
    /// the store's admin path (`/api/v1/stores/<id>`).
    pub async fn create_hyok_key(&self, store: &str, external_id: &str, source_key: &str) -> Reply {
        let body = serde_json::json!({"external_id": external_id, "source_key": source_key});
        self.post(&format!("{store}/keys"), &body).await
    }

    /// `PATCH path` with `body`, and `If-Match: <etag>` when given.
    pub async fn patch(&self, path: &str, body: &Value, if_match: Option<&str>) -> Reply {
        let headers: Vec<(&str, &str)> = if_match.map(|t| ("if-match", t)).into_iter().collect();
        self.request("PATCH", path, Some(body), &headers).await
    }

    /// `POST /api/v1/login` with `user` and `password`.
    pub async fn try_login(&self, user: &str, password: &str) -> Reply {
        let body = serde_json::json!({"user": user, "password": password});
        self.post("/api/v1/login", &body).await
    }

    /// Logs in; panics unless it succeeds. Returns a client with the session token.
    pub async fn login(&self, user: &str, password: &str) -> AdminClient {
        let json = expect_status(&self.try_login(user, password).await, 200);
        self.with_token(json["token"].as_str().expect("token"))
    }

    /// `POST /api/v1/users`: user `name` with `password`, in `groups` when given.
    pub async fn create_user(&self, name: &str, password: &str, groups: Option<&Value>) -> Reply {
        let mut body = serde_json::json!({"name": name, "password": password});
        if let Some(groups) = groups {
            body["groups"] = groups.clone();
        }
        self.post("/api/v1/users", &body).await
    }
}

/// The id of the store a `POST /api/v1/stores` reply created (asserting 201).
#[track_caller]
pub fn created_store_id(r: &Reply) -> String {
    expect_status(r, 201)["store"]["id"]
        .as_str()
        .expect("store.id")
        .to_string()
}

/// The `access_key_id`s of a credential list (`GET .../credentials`).
#[track_caller]
pub fn access_key_ids(listed: &Value) -> Vec<&str> {
    listed
        .as_array()
        .expect("credential list")
        .iter()
        .map(|c| c["access_key_id"].as_str().expect("access_key_id"))
        .collect()
}

/// A reply's `ETag`.
#[track_caller]
pub fn etag(r: &Reply) -> String {
    r.headers
        .get("etag")
        .expect("ETag")
        .to_str()
        .expect("ascii")
        .to_string()
}

/// The body of a health-check source key: every usage, neither exportable nor
/// deletable.
pub fn health_check_key(name: &str) -> Value {
    serde_json::json!({"name": name, "usage": ["encrypt", "decrypt", "wrap", "unwrap"],
                       "exportable": false, "deletable": false})
}

/// The body of a data source key: encrypt and decrypt.
pub fn data_key(name: &str) -> Value {
    serde_json::json!({"name": name, "usage": ["encrypt", "decrypt"]})
}

/// Asserts the status and returns the JSON body (`null` for an empty body).
#[track_caller]
pub fn expect_status(r: &Reply, status: u16) -> Value {
    r.assert_status(status, &status.to_string());
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

/// Asserts that each request `(method, path, JSON body)` of `client` is refused with
/// `status` and error code `code`.
pub async fn expect_each_error(
    client: &AdminClient,
    requests: &[(&str, &str, Option<Value>)],
    status: u16,
    code: &str,
) {
    for (method, path, body) in requests {
        let r = client.request(method, path, body.as_ref(), &[]).await;
        expect_error(&r, status, code);
    }
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

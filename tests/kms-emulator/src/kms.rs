//! The KMS API (AWS JSON 1.1, `TrentService.<Op>`): request parsing with AWS's field
//! constraints, and the dispatch to the operations.

use base64::{Engine, engine::general_purpose::STANDARD};
use serde_json::{Map, Value};

use crate::{error::ApiError, principals::Principal, state::SharedRef};

mod crypto;
mod keys;
mod stores;
pub mod validate;

/// What an operation runs with: the shared state and the calling principal.
pub struct Ctx<'a> {
    /// Shared state.
    pub shared: &'a SharedRef,
    /// Who called.
    pub principal: &'a Principal,
}

/// The operations the emulator implements.
pub const OPERATIONS: &[&str] = &[
    "CreateCustomKeyStore",
    "DescribeCustomKeyStores",
    "UpdateCustomKeyStore",
    "ConnectCustomKeyStore",
    "DisconnectCustomKeyStore",
    "DeleteCustomKeyStore",
    "CreateKey",
    "DescribeKey",
    "ListKeys",
    "ScheduleKeyDeletion",
    "CancelKeyDeletion",
    "Encrypt",
    "Decrypt",
    "GenerateDataKey",
    "ReEncrypt",
];

/// Runs operation `op` on JSON body `body`.
pub async fn dispatch(ctx: &Ctx<'_>, op: &str, body: &[u8]) -> Result<Value, ApiError> {
    let input = Input::parse(body)?;
    match op {
        "CreateCustomKeyStore" => stores::create(ctx, &input).await,
        "DescribeCustomKeyStores" => stores::describe(ctx, &input),
        "UpdateCustomKeyStore" => stores::update(ctx, &input).await,
        "ConnectCustomKeyStore" => stores::connect(ctx, &input),
        "DisconnectCustomKeyStore" => stores::disconnect(ctx, &input),
        "DeleteCustomKeyStore" => stores::delete(ctx, &input),
        "CreateKey" => keys::create(ctx, &input).await,
        "DescribeKey" => keys::describe(ctx, &input),
        "ListKeys" => keys::list(ctx, &input),
        "ScheduleKeyDeletion" => keys::schedule_deletion(ctx, &input),
        "CancelKeyDeletion" => keys::cancel_deletion(ctx, &input),
        "Encrypt" => crypto::encrypt(ctx, &input).await,
        "Decrypt" => crypto::decrypt(ctx, &input).await,
        "GenerateDataKey" => crypto::generate_data_key(ctx, &input).await,
        "ReEncrypt" => crypto::re_encrypt(ctx, &input).await,
        other => Err(ApiError::new(
            "UnknownOperationException",
            format!("The KMS emulator does not implement operation {other}"),
        )),
    }
}

/// A JSON request body with typed, field-naming accessors.
pub struct Input(Map<String, Value>);

impl Input {
    /// Parses a body (empty = `{}`); anything but a JSON object is refused.
    pub fn parse(body: &[u8]) -> Result<Input, ApiError> {
        if body.iter().all(u8::is_ascii_whitespace) {
            return Ok(Input(Map::new()));
        }
        match serde_json::from_slice::<Value>(body) {
            Ok(Value::Object(m)) => Ok(Input(m)),
            Ok(_) => Err(ApiError::new(
                "ValidationException",
                "The request body must be a JSON object",
            )),
            Err(e) => Err(ApiError::new(
                "ValidationException",
                format!("The request body is not valid JSON: {e}"),
            )),
        }
    }

    fn get(&self, field: &str) -> Option<&Value> {
        self.0.get(field).filter(|v| !v.is_null())
    }

    /// Whether `field` is present.
    pub fn has(&self, field: &str) -> bool {
        self.get(field).is_some()
    }

    /// An optional string.
    pub fn str(&self, field: &str) -> Result<Option<&str>, ApiError> {
        match self.get(field) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(_) => Err(ApiError::validation(field, "must be a string")),
        }
    }

    /// A required string.
    pub fn req_str(&self, field: &str) -> Result<&str, ApiError> {
        self.str(field)?
            .ok_or_else(|| ApiError::validation(field, "Member must not be null"))
    }

    /// An optional integer.
    pub fn int(&self, field: &str) -> Result<Option<i64>, ApiError> {
        match self.get(field) {
            None => Ok(None),
            Some(v) => v
                .as_i64()
                .map(Some)
                .ok_or_else(|| ApiError::validation(field, "must be an integer")),
        }
    }

    /// An optional boolean.
    pub fn bool(&self, field: &str) -> Result<Option<bool>, ApiError> {
        match self.get(field) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(_) => Err(ApiError::validation(field, "must be a boolean")),
        }
    }

    /// An optional base64 blob.
    pub fn blob(&self, field: &str) -> Result<Option<Vec<u8>>, ApiError> {
        match self.str(field)? {
            None => Ok(None),
            Some(s) => STANDARD
                .decode(s)
                .map(Some)
                .map_err(|_| ApiError::validation(field, "must be base64")),
        }
    }

    /// An optional nested object.
    pub fn obj(&self, field: &str) -> Result<Option<Input>, ApiError> {
        match self.get(field) {
            None => Ok(None),
            Some(Value::Object(m)) => Ok(Some(Input(m.clone()))),
            Some(_) => Err(ApiError::validation(field, "must be an object")),
        }
    }

    /// An encryption context (string to string map; absent = empty).
    pub fn context(&self, field: &str) -> Result<Vec<(String, String)>, ApiError> {
        match self.get(field) {
            None => Ok(Vec::new()),
            Some(Value::Object(m)) => m
                .iter()
                .map(|(k, v)| match v {
                    Value::String(s) => Ok((k.clone(), s.clone())),
                    _ => Err(ApiError::validation(field, "values must be strings")),
                })
                .collect(),
            Some(_) => Err(ApiError::validation(field, "must be a map of strings")),
        }
    }
}

/// Refuses `DryRun: true` (the emulator does not simulate permission checks).
pub fn no_dry_run(input: &Input) -> Result<(), ApiError> {
    if input.bool("DryRun")? == Some(true) {
        return Err(ApiError::new(
            "DryRunOperationException",
            "The request would have succeeded, but the DryRun option is set.",
        ));
    }
    Ok(())
}

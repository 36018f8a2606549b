//! KMS key management for keys in external key stores: create (with the proxy's
//! `GetKeyMetadata` check), describe, list, schedule and cancel deletion.

use std::time::{Duration, SystemTime};

use serde_json::{Map, Value, json};

use super::{Ctx, Input, validate};
use crate::{
    error::ApiError,
    state::{ConnectionState, Data, KeyLifecycle, KeyRecord, epoch, uuid},
    xks::{Family, Target, XksFailure, mapping},
};

/// The wire `KeyState` of a key (its store's connection decides `Unavailable`).
pub fn key_state(data: &Data, key: &KeyRecord) -> &'static str {
    match key.lifecycle {
        KeyLifecycle::PendingDeletion { .. } => "PendingDeletion",
        KeyLifecycle::Enabled => match data.store(&key.store_id) {
            Some(s) if s.state == ConnectionState::Connected => "Enabled",
            _ => "Unavailable",
        },
    }
}

/// The `KeyMetadata` of a key.
pub fn metadata(data: &Data, account: &str, key: &KeyRecord) -> Value {
    let mut m = Map::new();
    m.insert("AWSAccountId".into(), json!(account));
    m.insert("KeyId".into(), json!(key.id));
    m.insert("Arn".into(), json!(key.arn));
    m.insert("CreationDate".into(), json!(epoch(key.created)));
    m.insert(
        "Enabled".into(),
        json!(key.lifecycle == KeyLifecycle::Enabled),
    );
    m.insert("Description".into(), json!(key.description));
    m.insert("KeyUsage".into(), json!("ENCRYPT_DECRYPT"));
    m.insert("KeyState".into(), json!(key_state(data, key)));
    if let KeyLifecycle::PendingDeletion { date, days } = key.lifecycle {
        m.insert("DeletionDate".into(), json!(epoch(date)));
        m.insert("PendingDeletionWindowInDays".into(), json!(days));
    }
    m.insert("Origin".into(), json!("EXTERNAL_KEY_STORE"));
    m.insert("CustomKeyStoreId".into(), json!(key.store_id));
    m.insert("KeyManager".into(), json!("CUSTOMER"));
    m.insert("CustomerMasterKeySpec".into(), json!("SYMMETRIC_DEFAULT"));
    m.insert("KeySpec".into(), json!("SYMMETRIC_DEFAULT"));
    m.insert("EncryptionAlgorithms".into(), json!(["SYMMETRIC_DEFAULT"]));
    m.insert("MultiRegion".into(), json!(false));
    m.insert(
        "XksKeyConfiguration".into(),
        json!({ "Id": key.xks_key_id }),
    );
    Value::Object(m)
}

/// [`resolve`], for changing the key.
fn resolve_mut<'d>(data: &'d mut Data, key_id: &str) -> Result<&'d mut KeyRecord, ApiError> {
    let id = resolve(data, "keyId", key_id)?.id.clone();
    data.keys
        .iter_mut()
        .find(|k| k.id == id)
        .ok_or_else(|| ApiError::key_not_found(key_id))
}

/// Resolves a `KeyId` (key id or key ARN; aliases are not emulated).
pub fn resolve<'d>(data: &'d Data, field: &str, key_id: &str) -> Result<&'d KeyRecord, ApiError> {
    validate::length(field, key_id, 1, 2048)?;
    data.key(key_id)
        .ok_or_else(|| ApiError::key_not_found(key_id))
}

/// `CreateKey` in an external key store.
pub async fn create(ctx: &Ctx<'_>, input: &Input) -> Result<Value, ApiError> {
    let unsupported = |what: &str| {
        ApiError::new(
            "UnsupportedOperationException",
            format!(
                "{what}: the KMS emulator only creates SYMMETRIC_DEFAULT ENCRYPT_DECRYPT keys in external key stores"
            ),
        )
    };
    match input.str("Origin")? {
        Some("EXTERNAL_KEY_STORE") => {}
        Some(o) => {
            validate::one_of(
                "origin",
                o,
                &["AWS_KMS", "EXTERNAL", "AWS_CLOUDHSM", "EXTERNAL_KEY_STORE"],
            )?;
            return Err(unsupported(&format!("Origin {o}")));
        }
        None => return Err(unsupported("Origin AWS_KMS (the default)")),
    }
    for field in ["KeySpec", "CustomerMasterKeySpec"] {
        if let Some(v) = input.str(field)? {
            if v != "SYMMETRIC_DEFAULT" {
                return Err(unsupported(&format!("{field} {v}")));
            }
        }
    }
    if let Some(v) = input.str("KeyUsage")? {
        if v != "ENCRYPT_DECRYPT" {
            return Err(unsupported(&format!("KeyUsage {v}")));
        }
    }
    if input.bool("MultiRegion")? == Some(true) {
        return Err(unsupported("MultiRegion"));
    }
    let description = input.str("Description")?.unwrap_or_default().to_string();
    validate::length("description", &description, 0, 8192)?;
    let store_id = input.str("CustomKeyStoreId")?.ok_or_else(|| {
        ApiError::validation(
            "customKeyStoreId",
            "is required when Origin is EXTERNAL_KEY_STORE",
        )
    })?;
    let xks_key_id = input.str("XksKeyId")?.ok_or_else(|| {
        ApiError::validation("xksKeyId", "is required when Origin is EXTERNAL_KEY_STORE")
    })?;
    validate::xks_key_id(xks_key_id)?;
    let check = |data: &Data| -> Result<Target, ApiError> {
        let store = data
            .store(store_id)
            .ok_or_else(|| ApiError::store_not_found(store_id))?;
        if store.state != ConnectionState::Connected {
            return Err(ApiError::new(
                "CustomKeyStoreInvalidStateException",
                format!(
                    "Custom key store {store_id} is {}: keys can only be created in a CONNECTED key store",
                    store.state.as_str()
                ),
            ));
        }
        if data
            .keys
            .iter()
            .any(|k| k.store_id == store_id && k.xks_key_id == xks_key_id)
        {
            return Err(ApiError::new(
                "XksKeyAlreadyInUseException",
                format!(
                    "External key {xks_key_id} is already associated with a KMS key of custom key store {store_id}"
                ),
            ));
        }
        Ok(Target {
            endpoint: store.endpoint.clone(),
            path: store.path.clone(),
            access_key_id: store.access_key_id.clone(),
            secret: store.secret.clone(),
        })
    };
    let target = check(&ctx.shared.data())?;
    let body = json!({"requestMetadata": {
        "awsPrincipalArn": ctx.principal.arn,
        "kmsOperation": "CreateKey",
        "kmsRequestId": uuid(),
    }});
    let answer = ctx
        .shared
        .xks
        .call(
            &target,
            "GetKeyMetadata",
            &format!("/keys/{xks_key_id}/metadata"),
            body,
        )
        .await
        .map_err(|f| mapping::to_api_error(&f, Family::CreateKey))?;
    check_external_key(xks_key_id, &answer)?;
    let mut data = ctx.shared.data();
    check(&data)?;
    let id = uuid();
    let config = &ctx.shared.config;
    let key = KeyRecord {
        arn: format!(
            "arn:aws:kms:{}:{}:key/{id}",
            config.region, config.account_id
        ),
        id,
        store_id: store_id.to_string(),
        xks_key_id: xks_key_id.to_string(),
        description,
        created: SystemTime::now(),
        lifecycle: KeyLifecycle::Enabled,
        inner_key: crate::blob::random::<32>(),
    };
    let meta = metadata(&data, &config.account_id, &key);
    data.keys.push(key);
    Ok(json!({ "KeyMetadata": meta }))
}

/// KMS accepts only enabled AES_256 external keys that can encrypt and decrypt.
pub fn check_external_key(xks_key_id: &str, answer: &Value) -> Result<(), ApiError> {
    let spec = answer.get("keySpec").and_then(Value::as_str);
    let status = answer.get("keyStatus").and_then(Value::as_str);
    let usage: Option<Vec<&str>> = answer
        .get("keyUsage")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect());
    let (Some(spec), Some(status), Some(usage)) = (spec, status, usage) else {
        return Err(mapping::to_api_error(
            &XksFailure::Malformed("GetKeyMetadata lacks keySpec, keyUsage or keyStatus".into()),
            Family::CreateKey,
        ));
    };
    let invalid = |why: String| {
        ApiError::new(
            "XksKeyInvalidConfigurationException",
            format!("External key {xks_key_id} {why}"),
        )
    };
    if spec != "AES_256" {
        return Err(invalid(format!(
            "has key spec {spec}; AWS KMS needs AES_256"
        )));
    }
    for needed in ["ENCRYPT", "DECRYPT"] {
        if !usage.contains(&needed) {
            return Err(invalid(format!(
                "does not allow {needed}; AWS KMS needs ENCRYPT and DECRYPT"
            )));
        }
    }
    if status != "ENABLED" {
        return Err(invalid(format!(
            "is {status} in the external key manager; enable it"
        )));
    }
    Ok(())
}

/// `DescribeKey`.
pub fn describe(ctx: &Ctx<'_>, input: &Input) -> Result<Value, ApiError> {
    let key_id = input.req_str("KeyId")?;
    let data = ctx.shared.data();
    let key = resolve(&data, "keyId", key_id)?;
    Ok(json!({ "KeyMetadata": metadata(&data, &ctx.shared.config.account_id, key) }))
}

/// `ListKeys`.
pub fn list(ctx: &Ctx<'_>, input: &Input) -> Result<Value, ApiError> {
    let limit = validate::limit(input.int("Limit")?)?;
    let data = ctx.shared.data();
    let start = validate::marker(input.str("Marker")?, data.keys.len())?;
    let end = (start + limit).min(data.keys.len());
    let keys: Vec<Value> = data.keys[start..end]
        .iter()
        .map(|k| json!({"KeyId": k.id, "KeyArn": k.arn}))
        .collect();
    let mut out = Map::new();
    out.insert("Keys".into(), Value::Array(keys));
    out.insert("Truncated".into(), json!(end < data.keys.len()));
    if end < data.keys.len() {
        out.insert("NextMarker".into(), json!(validate::next_marker(end)));
    }
    Ok(Value::Object(out))
}

/// `ScheduleKeyDeletion` (7..30 days, default 30).
pub fn schedule_deletion(ctx: &Ctx<'_>, input: &Input) -> Result<Value, ApiError> {
    let key_id = input.req_str("KeyId")?;
    let days = match input.int("PendingWindowInDays")? {
        None => 30,
        Some(d) if (7..=30).contains(&d) => d as u32,
        Some(_) => {
            return Err(ApiError::validation(
                "pendingWindowInDays",
                "Member must have value between 7 and 30",
            ));
        }
    };
    let mut data = ctx.shared.data();
    let key = resolve_mut(&mut data, key_id)?;
    if key.lifecycle != KeyLifecycle::Enabled {
        return Err(ApiError::new(
            "KMSInvalidStateException",
            format!("{} is pending deletion.", key.arn),
        ));
    }
    let date = SystemTime::now() + Duration::from_secs(u64::from(days) * 86_400);
    key.lifecycle = KeyLifecycle::PendingDeletion { date, days };
    Ok(json!({
        "KeyId": key.arn,
        "DeletionDate": epoch(date),
        "KeyState": "PendingDeletion",
        "PendingWindowInDays": days,
    }))
}

/// `CancelKeyDeletion`.
pub fn cancel_deletion(ctx: &Ctx<'_>, input: &Input) -> Result<Value, ApiError> {
    let key_id = input.req_str("KeyId")?;
    let mut data = ctx.shared.data();
    let key = resolve_mut(&mut data, key_id)?;
    if key.lifecycle == KeyLifecycle::Enabled {
        return Err(ApiError::new(
            "KMSInvalidStateException",
            format!("{} is not pending deletion.", key.arn),
        ));
    }
    key.lifecycle = KeyLifecycle::Enabled;
    Ok(json!({ "KeyId": key.arn }))
}

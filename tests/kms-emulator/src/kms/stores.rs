//! The custom key store operations (external key stores only): create, describe,
//! update, connect, disconnect, delete, with AWS's state rules and the proxy health
//! checks KMS makes.

use std::time::SystemTime;

use serde_json::{Map, Value, json};

use super::{Ctx, Input, validate};
use crate::{
    error::ApiError,
    state::{ConnectionState, Data, SharedRef, StoreRecord, epoch, uuid},
    xks::{self, Family, Target, XksFailure, mapping},
};

const PUBLIC: &str = "PUBLIC_ENDPOINT";
const VPC: &str = "VPC_ENDPOINT_SERVICE";

/// The proxy-facing settings of a store, as requested.
#[derive(Debug, Clone)]
struct Settings {
    connectivity: String,
    endpoint: String,
    path: String,
    vpc_service_name: Option<String>,
    vpc_service_owner: Option<String>,
    access_key_id: String,
    secret: String,
}

impl Settings {
    fn target(&self) -> Target {
        Target {
            endpoint: self.endpoint.clone(),
            path: self.path.clone(),
            access_key_id: self.access_key_id.clone(),
            secret: self.secret.clone(),
        }
    }

    fn of(s: &StoreRecord) -> Settings {
        Settings {
            connectivity: s.connectivity.clone(),
            endpoint: s.endpoint.clone(),
            path: s.path.clone(),
            vpc_service_name: s.vpc_service_name.clone(),
            vpc_service_owner: s.vpc_service_owner.clone(),
            access_key_id: s.access_key_id.clone(),
            secret: s.secret.clone(),
        }
    }

    /// Connectivity-dependent fields.
    fn check_connectivity(&self) -> Result<(), ApiError> {
        if self.connectivity == VPC && self.vpc_service_name.is_none() {
            return Err(ApiError::validation(
                "xksProxyVpcEndpointServiceName",
                "is required when XksProxyConnectivity is VPC_ENDPOINT_SERVICE",
            ));
        }
        if self.connectivity == PUBLIC
            && (self.vpc_service_name.is_some() || self.vpc_service_owner.is_some())
        {
            return Err(ApiError::validation(
                "xksProxyVpcEndpointServiceName",
                "is only valid when XksProxyConnectivity is VPC_ENDPOINT_SERVICE",
            ));
        }
        Ok(())
    }
}

/// The credential object of a request.
fn credential(input: &Input) -> Result<Option<(String, String)>, ApiError> {
    let Some(c) = input.obj("XksProxyAuthenticationCredential")? else {
        return Ok(None);
    };
    let akid = c.req_str("AccessKeyId").map_err(|_| {
        ApiError::validation(
            "xksProxyAuthenticationCredential.accessKeyId",
            "Member must not be null",
        )
    })?;
    let secret = c.req_str("RawSecretAccessKey").map_err(|_| {
        ApiError::validation(
            "xksProxyAuthenticationCredential.rawSecretAccessKey",
            "Member must not be null",
        )
    })?;
    validate::credential(akid, secret)?;
    Ok(Some((akid.to_string(), secret.to_string())))
}

fn refuse_cloudhsm(input: &Input) -> Result<(), ApiError> {
    for f in [
        "CloudHsmClusterId",
        "TrustAnchorCertificate",
        "KeyStorePassword",
    ] {
        if input.has(f) {
            return Err(ApiError::new(
                "UnsupportedOperationException",
                format!(
                    "{f}: the KMS emulator implements external key stores only (no AWS CloudHSM key stores)"
                ),
            ));
        }
    }
    Ok(())
}

/// Refuses settings that collide with another store (`except` = the store updated).
fn check_unique(
    data: &Data,
    name: &str,
    s: &Settings,
    except: Option<&str>,
) -> Result<(), ApiError> {
    for other in data.stores.iter().filter(|o| Some(o.id.as_str()) != except) {
        if other.name == name {
            return Err(ApiError::new(
                "CustomKeyStoreNameInUseException",
                format!(
                    "A custom key store named '{name}' already exists in this account and region"
                ),
            ));
        }
        if other.endpoint == s.endpoint && other.path == s.path {
            return Err(ApiError::new(
                "XksProxyUriInUseException",
                format!(
                    "The proxy URI {}{} is already used by custom key store {}",
                    s.endpoint, s.path, other.id
                ),
            ));
        }
        if other.endpoint == s.endpoint && (s.connectivity == VPC || other.connectivity == VPC) {
            return Err(ApiError::new(
                "XksProxyUriEndpointInUseException",
                format!(
                    "The endpoint {} is already used by custom key store {} (an external key store with VPC endpoint service connectivity needs an endpoint of its own)",
                    s.endpoint, other.id
                ),
            ));
        }
        if s.vpc_service_name.is_some() && other.vpc_service_name == s.vpc_service_name {
            return Err(ApiError::new(
                "XksProxyVpcEndpointServiceInUseException",
                format!(
                    "The VPC endpoint service is already used by custom key store {}",
                    other.id
                ),
            ));
        }
    }
    Ok(())
}

/// The health check KMS makes on create, update and connect.
async fn health(
    shared: &SharedRef,
    target: &Target,
    kms_operation: &str,
) -> Result<(), XksFailure> {
    let answer = shared
        .xks
        .call(
            target,
            "GetHealthStatus",
            "/health",
            xks::health_body(kms_operation, &uuid()),
        )
        .await?;
    let fleet = answer.get("xksProxyFleetSize").and_then(Value::as_i64);
    let ekm = answer.get("ekmFleetDetails").and_then(Value::as_array);
    match (fleet, ekm) {
        (Some(n), Some(list)) if n > 0 && !list.is_empty() => Ok(()),
        _ => Err(XksFailure::Malformed(
            "the health answer lacks xksProxyFleetSize or ekmFleetDetails".into(),
        )),
    }
}

fn store_name(input: &Input, field: &str) -> Result<Option<String>, ApiError> {
    match input.str(field)? {
        None => Ok(None),
        Some(n) => {
            validate::length("customKeyStoreName", n, 1, 256)?;
            Ok(Some(n.to_string()))
        }
    }
}

/// `CreateCustomKeyStore`.
pub async fn create(ctx: &Ctx<'_>, input: &Input) -> Result<Value, ApiError> {
    refuse_cloudhsm(input)?;
    let name = store_name(input, "CustomKeyStoreName")?
        .ok_or_else(|| ApiError::validation("customKeyStoreName", "Member must not be null"))?;
    match input.str("CustomKeyStoreType")? {
        Some("EXTERNAL_KEY_STORE") => {}
        Some(t) => validate::one_of("customKeyStoreType", t, &["EXTERNAL_KEY_STORE"])?,
        None => {
            return Err(ApiError::new(
                "UnsupportedOperationException",
                "CustomKeyStoreType defaults to AWS_CLOUDHSM, which the KMS emulator does not implement: pass EXTERNAL_KEY_STORE",
            ));
        }
    }
    let connectivity = input
        .str("XksProxyConnectivity")?
        .ok_or_else(|| ApiError::validation("xksProxyConnectivity", "Member must not be null"))?;
    validate::one_of("xksProxyConnectivity", connectivity, &[PUBLIC, VPC])?;
    let endpoint = input
        .str("XksProxyUriEndpoint")?
        .ok_or_else(|| ApiError::validation("xksProxyUriEndpoint", "Member must not be null"))?;
    validate::uri_endpoint(endpoint)?;
    let path = input
        .str("XksProxyUriPath")?
        .ok_or_else(|| ApiError::validation("xksProxyUriPath", "Member must not be null"))?;
    validate::uri_path(path)?;
    let vpc_service_name = input.str("XksProxyVpcEndpointServiceName")?;
    if let Some(v) = vpc_service_name {
        validate::vpc_service_name(v)?;
    }
    let vpc_service_owner = input.str("XksProxyVpcEndpointServiceOwner")?;
    if let Some(v) = vpc_service_owner {
        validate::account_id("xksProxyVpcEndpointServiceOwner", v)?;
    }
    let (access_key_id, secret) = credential(input)?.ok_or_else(|| {
        ApiError::validation(
            "xksProxyAuthenticationCredential",
            "Member must not be null",
        )
    })?;
    let settings = Settings {
        connectivity: connectivity.to_string(),
        endpoint: endpoint.to_string(),
        path: path.to_string(),
        vpc_service_name: vpc_service_name.map(str::to_string),
        vpc_service_owner: vpc_service_owner.map(str::to_string),
        access_key_id,
        secret,
    };
    settings.check_connectivity()?;
    check_unique(&ctx.shared.data(), &name, &settings, None)?;
    health(ctx.shared, &settings.target(), "CreateCustomKeyStore")
        .await
        .map_err(|f| mapping::to_api_error(&f, Family::StoreAdmin))?;
    let id = format!("cks-{}", &hex::encode(crate::blob::random::<9>())[..17]);
    let mut data = ctx.shared.data();
    check_unique(&data, &name, &settings, None)?;
    data.stores.push(StoreRecord {
        id: id.clone(),
        name,
        created: SystemTime::now(),
        connectivity: settings.connectivity,
        endpoint: settings.endpoint,
        path: settings.path,
        vpc_service_name: settings.vpc_service_name,
        vpc_service_owner: settings.vpc_service_owner,
        access_key_id: settings.access_key_id,
        secret: settings.secret,
        state: ConnectionState::Disconnected,
        error_code: None,
        generation: 0,
    });
    Ok(json!({ "CustomKeyStoreId": id }))
}

fn entry(s: &StoreRecord) -> Value {
    let mut proxy = Map::new();
    proxy.insert("Connectivity".into(), json!(s.connectivity));
    proxy.insert("AccessKeyId".into(), json!(s.access_key_id));
    proxy.insert("UriEndpoint".into(), json!(s.endpoint));
    proxy.insert("UriPath".into(), json!(s.path));
    if let Some(v) = &s.vpc_service_name {
        proxy.insert("VpcEndpointServiceName".into(), json!(v));
    }
    if let Some(v) = &s.vpc_service_owner {
        proxy.insert("VpcEndpointServiceOwner".into(), json!(v));
    }
    let mut e = Map::new();
    e.insert("CustomKeyStoreId".into(), json!(s.id));
    e.insert("CustomKeyStoreName".into(), json!(s.name));
    e.insert("CustomKeyStoreType".into(), json!("EXTERNAL_KEY_STORE"));
    e.insert("ConnectionState".into(), json!(s.state.as_str()));
    if let Some(code) = s.error_code {
        e.insert("ConnectionErrorCode".into(), json!(code));
    }
    e.insert("CreationDate".into(), json!(epoch(s.created)));
    e.insert("XksProxyConfiguration".into(), Value::Object(proxy));
    Value::Object(e)
}

/// `DescribeCustomKeyStores`.
pub fn describe(ctx: &Ctx<'_>, input: &Input) -> Result<Value, ApiError> {
    let id = input.str("CustomKeyStoreId")?;
    if let Some(id) = id {
        validate::length("customKeyStoreId", id, 1, 64)?;
    }
    let name = store_name(input, "CustomKeyStoreName")?;
    let limit = validate::limit(input.int("Limit")?)?;
    let data = ctx.shared.data();
    let selected: Vec<&StoreRecord> = data
        .stores
        .iter()
        .filter(|s| id.is_none_or(|i| s.id == i) && name.as_deref().is_none_or(|n| s.name == n))
        .collect();
    if selected.is_empty() {
        if let Some(what) = id.or(name.as_deref()) {
            return Err(ApiError::store_not_found(what));
        }
    }
    let start = validate::marker(input.str("Marker")?, selected.len())?;
    let end = (start + limit).min(selected.len());
    let page: Vec<Value> = selected[start..end].iter().map(|s| entry(s)).collect();
    let mut out = Map::new();
    out.insert("CustomKeyStores".into(), Value::Array(page));
    out.insert("Truncated".into(), json!(end < selected.len()));
    if end < selected.len() {
        out.insert("NextMarker".into(), json!(validate::next_marker(end)));
    }
    Ok(Value::Object(out))
}

fn invalid_state(id: &str, state: ConnectionState, why: &str) -> ApiError {
    ApiError::new(
        "CustomKeyStoreInvalidStateException",
        format!("Custom key store {id} is {}: {why}", state.as_str()),
    )
}

/// `UpdateCustomKeyStore`.
pub async fn update(ctx: &Ctx<'_>, input: &Input) -> Result<Value, ApiError> {
    refuse_cloudhsm(input)?;
    let id = input.req_str("CustomKeyStoreId")?.to_string();
    let new_name = store_name(input, "NewCustomKeyStoreName")?;
    let endpoint = input.str("XksProxyUriEndpoint")?;
    if let Some(v) = endpoint {
        validate::uri_endpoint(v)?;
    }
    let path = input.str("XksProxyUriPath")?;
    if let Some(v) = path {
        validate::uri_path(v)?;
    }
    let vpc_name = input.str("XksProxyVpcEndpointServiceName")?;
    if let Some(v) = vpc_name {
        validate::vpc_service_name(v)?;
    }
    let vpc_owner = input.str("XksProxyVpcEndpointServiceOwner")?;
    if let Some(v) = vpc_owner {
        validate::account_id("xksProxyVpcEndpointServiceOwner", v)?;
    }
    let connectivity = input.str("XksProxyConnectivity")?;
    if let Some(v) = connectivity {
        validate::one_of("xksProxyConnectivity", v, &[PUBLIC, VPC])?;
    }
    let cred = credential(input)?;
    let (name, settings, probe) = {
        let data = ctx.shared.data();
        let store = data
            .store(&id)
            .ok_or_else(|| ApiError::store_not_found(&id))?;
        let needs_disconnected = endpoint.is_some()
            || connectivity.is_some()
            || vpc_name.is_some()
            || vpc_owner.is_some();
        match store.state {
            ConnectionState::Disconnected => {}
            ConnectionState::Connected if !needs_disconnected => {}
            ConnectionState::Connected => {
                return Err(invalid_state(
                    &id,
                    store.state,
                    "the endpoint, connectivity and VPC endpoint service can only change while DISCONNECTED",
                ));
            }
            other => {
                return Err(invalid_state(
                    &id,
                    other,
                    "a custom key store can only be updated while CONNECTED or DISCONNECTED",
                ));
            }
        }
        let mut s = Settings::of(store);
        if let Some(c) = connectivity {
            s.connectivity = c.to_string();
            if c == PUBLIC {
                s.vpc_service_name = None;
                s.vpc_service_owner = None;
            }
        }
        if let Some(v) = endpoint {
            s.endpoint = v.to_string();
        }
        if let Some(v) = path {
            s.path = v.to_string();
        }
        if let Some(v) = vpc_name {
            s.vpc_service_name = Some(v.to_string());
        }
        if let Some(v) = vpc_owner {
            s.vpc_service_owner = Some(v.to_string());
        }
        if let Some((a, k)) = &cred {
            s.access_key_id = a.clone();
            s.secret = k.clone();
        }
        s.check_connectivity()?;
        let name = new_name.clone().unwrap_or_else(|| store.name.clone());
        check_unique(&data, &name, &s, Some(&id))?;
        let probe = endpoint.is_some() || path.is_some() || cred.is_some();
        (name, s, probe)
    };
    if probe {
        health(ctx.shared, &settings.target(), "UpdateCustomKeyStore")
            .await
            .map_err(|f| mapping::to_api_error(&f, Family::StoreAdmin))?;
    }
    let mut data = ctx.shared.data();
    check_unique(&data, &name, &settings, Some(&id))?;
    let store = data
        .store_mut(&id)
        .ok_or_else(|| ApiError::store_not_found(&id))?;
    store.name = name;
    store.connectivity = settings.connectivity;
    store.endpoint = settings.endpoint;
    store.path = settings.path;
    store.vpc_service_name = settings.vpc_service_name;
    store.vpc_service_owner = settings.vpc_service_owner;
    store.access_key_id = settings.access_key_id;
    store.secret = settings.secret;
    Ok(json!({}))
}

/// `ConnectCustomKeyStore`: `CONNECTING` for the transition delay, then a health check
/// decides `CONNECTED` or `FAILED` (with a `ConnectionErrorCode`).
pub fn connect(ctx: &Ctx<'_>, input: &Input) -> Result<Value, ApiError> {
    let id = input.req_str("CustomKeyStoreId")?.to_string();
    let mut data = ctx.shared.data();
    let store = data
        .store_mut(&id)
        .ok_or_else(|| ApiError::store_not_found(&id))?;
    match store.state {
        ConnectionState::Connected | ConnectionState::Connecting => return Ok(json!({})),
        ConnectionState::Disconnecting => {
            return Err(invalid_state(
                &id,
                store.state,
                "wait until it is DISCONNECTED",
            ));
        }
        ConnectionState::Failed => {
            return Err(invalid_state(
                &id,
                store.state,
                "disconnect it (DisconnectCustomKeyStore) before connecting again",
            ));
        }
        ConnectionState::Disconnected => {}
    }
    store.state = ConnectionState::Connecting;
    store.error_code = None;
    store.generation += 1;
    let generation = store.generation;
    let target = Settings::of(store).target();
    let shared = ctx.shared.clone();
    tokio::spawn(async move {
        tokio::time::sleep(shared.config.transition_delay).await;
        let outcome = health(&shared, &target, "ConnectCustomKeyStore").await;
        let mut data = shared.data();
        if let Some(s) = data.store_mut(&id).filter(|s| s.generation == generation) {
            match outcome {
                Ok(()) => s.state = ConnectionState::Connected,
                Err(f) => {
                    s.state = ConnectionState::Failed;
                    s.error_code = Some(mapping::connection_error_code(&f));
                }
            }
        }
    });
    Ok(json!({}))
}

/// `DisconnectCustomKeyStore`: `DISCONNECTING` for the transition delay, then
/// `DISCONNECTED`.
pub fn disconnect(ctx: &Ctx<'_>, input: &Input) -> Result<Value, ApiError> {
    let id = input.req_str("CustomKeyStoreId")?.to_string();
    let mut data = ctx.shared.data();
    let store = data
        .store_mut(&id)
        .ok_or_else(|| ApiError::store_not_found(&id))?;
    if matches!(
        store.state,
        ConnectionState::Disconnected | ConnectionState::Disconnecting
    ) {
        return Err(invalid_state(&id, store.state, "it is not connected"));
    }
    store.state = ConnectionState::Disconnecting;
    store.error_code = None;
    store.generation += 1;
    let generation = store.generation;
    let shared = ctx.shared.clone();
    tokio::spawn(async move {
        tokio::time::sleep(shared.config.transition_delay).await;
        let mut data = shared.data();
        if let Some(s) = data.store_mut(&id).filter(|s| s.generation == generation) {
            s.state = ConnectionState::Disconnected;
        }
    });
    Ok(json!({}))
}

/// `DeleteCustomKeyStore`: only `DISCONNECTED` stores without any KMS key.
pub fn delete(ctx: &Ctx<'_>, input: &Input) -> Result<Value, ApiError> {
    let id = input.req_str("CustomKeyStoreId")?.to_string();
    let mut data = ctx.shared.data();
    let store = data
        .store(&id)
        .ok_or_else(|| ApiError::store_not_found(&id))?;
    if store.state != ConnectionState::Disconnected {
        return Err(invalid_state(
            &id,
            store.state,
            "disconnect it before deleting it",
        ));
    }
    let keys = data.keys.iter().filter(|k| k.store_id == id).count();
    if keys > 0 {
        return Err(ApiError::new(
            "CustomKeyStoreHasCMKsException",
            format!(
                "Custom key store {id} still holds {keys} KMS key(s), pending deletion included"
            ),
        ));
    }
    data.stores.retain(|s| s.id != id);
    Ok(json!({}))
}

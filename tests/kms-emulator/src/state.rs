//! The emulator's in-memory state: custom key stores, KMS keys, the call logs and the
//! throttling counter, shared by the listener and the [`crate::Emulator`] handle.

use std::{
    sync::{Arc, Mutex, MutexGuard, atomic::AtomicU32},
    time::SystemTime,
};

use crate::{config::EmulatorConfig, principals::Directory, xks::XksClient};

/// One KMS or STS API call, as recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiCall {
    /// `kms` or `sts`.
    pub service: String,
    /// The operation (`CreateKey`, `AssumeRole`...); empty when it could not be told.
    pub operation: String,
    /// The access key id the request was signed with (empty when unsigned).
    pub access_key_id: String,
    /// The region of the SigV4 credential scope (empty when unsigned).
    pub signing_region: String,
    /// The error code answered, if any.
    pub error_code: Option<String>,
}

/// A custom key store's connection state (`ConnectionStateType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectionState {
    /// `CONNECTED`.
    Connected,
    /// `CONNECTING`.
    Connecting,
    /// `FAILED`.
    Failed,
    /// `DISCONNECTED`.
    Disconnected,
    /// `DISCONNECTING`.
    Disconnecting,
}

impl ConnectionState {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            ConnectionState::Connected => "CONNECTED",
            ConnectionState::Connecting => "CONNECTING",
            ConnectionState::Failed => "FAILED",
            ConnectionState::Disconnected => "DISCONNECTED",
            ConnectionState::Disconnecting => "DISCONNECTING",
        }
    }
}

/// An external key store.
#[derive(Debug, Clone)]
pub struct StoreRecord {
    /// `cks-...`.
    pub id: String,
    /// The unique name.
    pub name: String,
    /// Creation time.
    pub created: SystemTime,
    /// `PUBLIC_ENDPOINT` or `VPC_ENDPOINT_SERVICE`.
    pub connectivity: String,
    /// `https://host[:port]`.
    pub endpoint: String,
    /// `XksProxyUriPath`.
    pub path: String,
    /// VPC endpoint service name (VPC connectivity).
    pub vpc_service_name: Option<String>,
    /// VPC endpoint service owner (VPC connectivity).
    pub vpc_service_owner: Option<String>,
    /// The credential's access key id.
    pub access_key_id: String,
    /// The credential's secret.
    pub secret: String,
    /// Connection state.
    pub state: ConnectionState,
    /// `ConnectionErrorCode` while `FAILED`.
    pub error_code: Option<&'static str>,
    /// Bumped on each connect/disconnect: a finishing transition only applies when it
    /// still matches.
    pub generation: u64,
}

/// A KMS key's own lifecycle (the store's state adds `Unavailable`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyLifecycle {
    /// Usable (when its store is connected).
    Enabled,
    /// Waiting for deletion.
    PendingDeletion {
        /// When it will be deleted.
        date: SystemTime,
        /// The waiting period.
        days: u32,
    },
}

/// A KMS key in an external key store.
#[derive(Debug, Clone)]
pub struct KeyRecord {
    /// The key id (UUID).
    pub id: String,
    /// The key ARN.
    pub arn: String,
    /// Its custom key store.
    pub store_id: String,
    /// The external key id.
    pub xks_key_id: String,
    /// The description.
    pub description: String,
    /// Creation time.
    pub created: SystemTime,
    /// Lifecycle.
    pub lifecycle: KeyLifecycle,
    /// The KMS layer's AES-256 key (emulator-internal).
    pub inner_key: [u8; 32],
}

/// Stores and keys, in creation order.
#[derive(Debug, Default)]
pub struct Data {
    /// Custom key stores.
    pub stores: Vec<StoreRecord>,
    /// KMS keys.
    pub keys: Vec<KeyRecord>,
}

impl Data {
    /// The store with this id.
    pub fn store(&self, id: &str) -> Option<&StoreRecord> {
        self.stores.iter().find(|s| s.id == id)
    }

    /// The store with this id, mutable.
    pub fn store_mut(&mut self, id: &str) -> Option<&mut StoreRecord> {
        self.stores.iter_mut().find(|s| s.id == id)
    }

    /// The key named by id or ARN.
    pub fn key(&self, id_or_arn: &str) -> Option<&KeyRecord> {
        self.keys
            .iter()
            .find(|k| k.id == id_or_arn || k.arn == id_or_arn)
    }
}

/// Everything the listener and the handle share.
pub struct Shared {
    /// The configuration.
    pub config: EmulatorConfig,
    /// Principals.
    pub directory: Directory,
    /// The XKS client (and its call log).
    pub xks: XksClient,
    /// Stores and keys.
    pub data: Mutex<Data>,
    /// Every API call.
    pub calls: Mutex<Vec<ApiCall>>,
    /// API calls still to throttle.
    pub throttle: AtomicU32,
    /// Added to every API call's answer time, milliseconds.
    pub latency_ms: std::sync::atomic::AtomicU64,
}

impl Shared {
    /// Locks the data (a poisoned lock is recovered: the data stays consistent per
    /// operation).
    pub fn data(&self) -> MutexGuard<'_, Data> {
        self.data.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records an API call.
    pub fn record(&self, call: ApiCall) {
        self.calls
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(call);
    }
}

/// The shared state handle.
pub type SharedRef = Arc<Shared>;

/// Seconds since the epoch, as AWS JSON timestamps.
pub fn epoch(t: SystemTime) -> f64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// A random UUID (version 4).
pub fn uuid() -> String {
    let mut b = crate::blob::random::<16>();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = hex::encode(b);
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

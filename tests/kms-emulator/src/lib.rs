//! An AWS KMS emulator for external key stores.
//!
//! It speaks AWS KMS's wire protocol (AWS JSON 1.1, SigV4-verified) and STS's
//! (`AssumeRole`, `GetCallerIdentity`), keeps custom key stores and KMS keys in memory,
//! and calls the XKS proxies of its key stores exactly as AWS KMS does (see the
//! README). Start it in-process with [`start`], or run the `kms-emulator` binary.

use std::sync::{Arc, Mutex, atomic::AtomicU32};

use rustls::{ServerConfig, crypto::aws_lc_rs};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject};
use tokio::{sync::oneshot, task::JoinHandle};
use tokio_rustls::TlsAcceptor;

pub mod blob;
pub mod config;
pub mod error;
pub mod kms;
pub mod principals;
mod server;
pub mod sigv4;
pub mod state;
pub mod sts;
pub mod xks;

pub use config::{EmulatorConfig, IamRole, IamUser, TlsIdentity};
pub use error::{ApiError, EmulatorError};
pub use state::ApiCall;
pub use xks::XksCall;

use state::{Data, KeyLifecycle, Shared, SharedRef};

/// A running emulator.
pub struct Emulator {
    shared: SharedRef,
    endpoint: String,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

/// Starts the emulator on `listener` (bound by the caller: pick any port).
pub async fn start(
    config: EmulatorConfig,
    listener: std::net::TcpListener,
) -> Result<Emulator, EmulatorError> {
    for u in &config.users {
        if u.access_key_id.is_empty() || u.secret_access_key.is_empty() || u.name.is_empty() {
            return Err(EmulatorError::Config(format!(
                "user '{}' needs a name, an access key id and a secret",
                u.name
            )));
        }
    }
    let tls = match &config.tls {
        None => None,
        Some(identity) => Some(acceptor(identity)?),
    };
    listener
        .set_nonblocking(true)
        .map_err(EmulatorError::Listener)?;
    let addr = listener.local_addr().map_err(EmulatorError::Listener)?;
    let listener = tokio::net::TcpListener::from_std(listener).map_err(EmulatorError::Listener)?;
    let host = if addr.ip().is_unspecified() {
        "127.0.0.1".to_string()
    } else {
        addr.ip().to_string()
    };
    let scheme = if tls.is_some() { "https" } else { "http" };
    let endpoint = format!("{scheme}://{host}:{}", addr.port());
    let xks = xks::XksClient::new(&config.xks_ca_pem, &config.region, config.xks_timeout)?;
    let shared = Arc::new(Shared {
        directory: principals::Directory::new(
            &config.account_id,
            config.users.clone(),
            config.roles.clone(),
        ),
        config,
        xks,
        data: Mutex::new(Data::default()),
        calls: Mutex::new(Vec::new()),
        throttle: AtomicU32::new(0),
        latency_ms: std::sync::atomic::AtomicU64::new(0),
    });
    let (stop, stopped) = oneshot::channel();
    let task = tokio::spawn(server::serve(listener, tls, shared.clone(), stopped));
    Ok(Emulator {
        shared,
        endpoint,
        stop: Some(stop),
        task: Some(task),
    })
}

fn acceptor(identity: &TlsIdentity) -> Result<TlsAcceptor, EmulatorError> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&identity.cert_pem)
        .collect::<Result<_, _>>()
        .map_err(|e| EmulatorError::Tls(format!("certificate PEM: {e}")))?;
    if certs.is_empty() {
        return Err(EmulatorError::Tls("no certificate in the PEM".into()));
    }
    let key = PrivateKeyDer::from_pem_slice(&identity.key_pem)
        .map_err(|e| EmulatorError::Tls(format!("key PEM: {e}")))?;
    let mut config = ServerConfig::builder_with_provider(Arc::new(aws_lc_rs::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| EmulatorError::Tls(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| EmulatorError::Tls(e.to_string()))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

impl Emulator {
    /// `https://127.0.0.1:<port>` (or `http://` without TLS).
    pub fn endpoint(&self) -> String {
        self.endpoint.clone()
    }

    /// The next `n` API calls (KMS or STS, after authentication) fail with
    /// `ThrottlingException` (STS: `Throttling`), HTTP 400.
    pub fn throttle_next(&self, n: u32) {
        self.shared
            .throttle
            .store(n, std::sync::atomic::Ordering::SeqCst);
    }

    /// Makes every later API call take `latency` longer to answer (as a distant
    /// region would); zero for none.
    pub fn set_latency(&self, latency: std::time::Duration) {
        let ms = u64::try_from(latency.as_millis()).unwrap_or(u64::MAX);
        self.shared
            .latency_ms
            .store(ms, std::sync::atomic::Ordering::SeqCst);
    }

    /// Ends every waiting period: keys pending deletion are deleted.
    pub fn purge_pending_deletions(&self) {
        self.shared
            .data()
            .keys
            .retain(|k| k.lifecycle == KeyLifecycle::Enabled);
    }

    /// Every KMS and STS API call so far.
    pub fn calls(&self) -> Vec<ApiCall> {
        self.shared
            .calls
            .lock()
            .map(|c| c.clone())
            .unwrap_or_default()
    }

    /// Every call made to an XKS proxy so far.
    pub fn xks_calls(&self) -> Vec<XksCall> {
        self.shared.xks.calls()
    }

    /// Stops listening and drops every open connection (later connections are refused).
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

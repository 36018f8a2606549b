//! TLS for the listeners (rustls, aws-lc-rs provider): the cipher suites the XKS
//! specification names, HTTP/2 and HTTP/1.1 by ALPN, a generated development
//! certificate when none is configured, and optional client-certificate verification
//! against a CA with a required subject CN.

use std::{
    fs,
    path::{Path, PathBuf},
    sync::Arc,
};

use rustls::{
    DistinguishedName, RootCertStore, ServerConfig, SignatureScheme,
    client::danger::HandshakeSignatureValid,
    crypto::{CryptoProvider, aws_lc_rs},
    pki_types::{CertificateDer, PrivateKeyDer, UnixTime, pem::PemObject},
    server::{
        WebPkiClientVerifier,
        danger::{ClientCertVerified, ClientCertVerifier},
    },
};

use crate::config::{ClientAuth, TlsConfig};

/// Why TLS could not be set up.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// A certificate, key or CA file could not be read or parsed.
    #[error("TLS file {path}: {reason}")]
    File {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// rustls refused the configuration.
    #[error("TLS configuration: {0}")]
    Config(String),
}

/// The crypto provider, limited to forward-secret AES-256-GCM and ChaCha20-Poly1305
/// suites (TLS 1.3 and 1.2), as the XKS specification asks.
pub fn provider() -> CryptoProvider {
    use aws_lc_rs::cipher_suite as cs;
    CryptoProvider {
        cipher_suites: vec![
            cs::TLS13_AES_256_GCM_SHA384,
            cs::TLS13_CHACHA20_POLY1305_SHA256,
            cs::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
            cs::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
            cs::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
            cs::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
        ],
        ..aws_lc_rs::default_provider()
    }
}

fn file_err(path: &Path, reason: impl std::fmt::Display) -> TlsError {
    TlsError::File {
        path: path.to_path_buf(),
        reason: reason.to_string(),
    }
}

/// The PEM certificates of a file (at least one).
pub(crate) fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| file_err(path, e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| file_err(path, e))?;
    if certs.is_empty() {
        return Err(file_err(path, "no PEM certificate found"));
    }
    Ok(certs)
}

/// The certificates of a PEM text (at least one, each one a CA certificate webpki can
/// use as a trust anchor).
pub fn parse_pem_certs(pem: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("not a PEM certificate bundle: {e}"))?;
    if certs.is_empty() {
        return Err("no PEM certificate found".into());
    }
    let mut roots = RootCertStore::empty();
    for (i, cert) in certs.iter().enumerate() {
        roots
            .add(cert.clone())
            .map_err(|e| format!("certificate {} is not a usable CA certificate: {e}", i + 1))?;
    }
    Ok(certs)
}

/// The certificate and key files to serve: the configured ones, or a development
/// certificate (CA + server certificate for `localhost`/127.0.0.1) generated once
/// under `<data_dir>/tls/`.
pub fn server_cert_files(cfg: &TlsConfig, data_dir: &Path) -> Result<(PathBuf, PathBuf), TlsError> {
    if let (Some(cert), Some(key)) = (&cfg.cert_file, &cfg.key_file) {
        return Ok((cert.clone(), key.clone()));
    }
    let dir = data_dir.join("tls");
    let cert = dir.join("server.pem");
    let key = dir.join("server.key");
    if !cert.exists() || !key.exists() {
        generate_dev_pki(&dir)?;
        tracing::warn!(
            ca = %dir.join("ca.pem").display(),
            "generated a self-signed development certificate for localhost; clients must trust the CA file. \
             For AWS KMS configure xks.tls.cert_file/key_file with a certificate from a public CA"
        );
    }
    Ok((cert, key))
}

fn generate_dev_pki(dir: &Path) -> Result<(), TlsError> {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
    let gen_err = |e: rcgen::Error| TlsError::Config(format!("generating a certificate: {e}"));
    fs::create_dir_all(dir).map_err(|e| file_err(dir, e))?;
    let ca_key = KeyPair::generate().map_err(gen_err)?;
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).map_err(gen_err)?;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "keyhold development CA");
    let ca = ca_params.self_signed(&ca_key).map_err(gen_err)?;
    let key = KeyPair::generate().map_err(gen_err)?;
    let mut params = CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
        .map_err(gen_err)?;
    params
        .distinguished_name
        .push(DnType::CommonName, "localhost");
    let cert = params.signed_by(&key, &ca, &ca_key).map_err(gen_err)?;
    let key_path = dir.join("server.key");
    crate::secrets::write_private_file(&key_path, key.serialize_pem().as_bytes())
        .map_err(|e| file_err(&key_path, e))?;
    fs::write(dir.join("server.pem"), cert.pem() + &ca.pem())
        .map_err(|e| file_err(&dir.join("server.pem"), e))?;
    fs::write(dir.join("ca.pem"), ca.pem()).map_err(|e| file_err(&dir.join("ca.pem"), e))?;
    Ok(())
}

/// Builds the rustls server configuration of a listener that verifies client
/// certificates only when `client_ca_file` is set (and then requires them).
pub fn server_config(cfg: &TlsConfig, data_dir: &Path) -> Result<Arc<ServerConfig>, TlsError> {
    build_config(cfg, data_dir, required_verifier(cfg)?)
}

/// Builds the XKS listener's rustls configuration: with `client_auth = "required"`
/// every client must present a certificate from `client_ca_file` with a CN of
/// `client_cn`; else client certificates are handled by `per_store` (asked for when a
/// key store needs one, checked per request).
pub fn xks_server_config(
    cfg: &TlsConfig,
    data_dir: &Path,
    per_store: Arc<dyn ClientCertVerifier>,
) -> Result<Arc<ServerConfig>, TlsError> {
    let verifier = match cfg.client_auth.unwrap_or_default() {
        ClientAuth::Required => required_verifier(cfg)?,
        ClientAuth::PerStore => Some(per_store),
    };
    build_config(cfg, data_dir, verifier)
}

/// The verifier requiring a certificate from `client_ca_file` with an allowed CN.
fn required_verifier(cfg: &TlsConfig) -> Result<Option<Arc<dyn ClientCertVerifier>>, TlsError> {
    let Some(ca_path) = &cfg.client_ca_file else {
        return Ok(None);
    };
    let mut roots = RootCertStore::empty();
    for cert in read_certs(ca_path)? {
        roots.add(cert).map_err(|e| file_err(ca_path, e))?;
    }
    let inner = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), Arc::new(provider()))
        .build()
        .map_err(|e| TlsError::Config(e.to_string()))?;
    Ok(Some(Arc::new(CnVerifier {
        inner,
        allowed: cfg.client_cn.clone(),
    })))
}

fn build_config(
    cfg: &TlsConfig,
    data_dir: &Path,
    verifier: Option<Arc<dyn ClientCertVerifier>>,
) -> Result<Arc<ServerConfig>, TlsError> {
    let (cert_path, key_path) = server_cert_files(cfg, data_dir)?;
    let certs = read_certs(&cert_path)?;
    let key = PrivateKeyDer::from_pem_file(&key_path).map_err(|e| file_err(&key_path, e))?;
    let builder = ServerConfig::builder_with_provider(Arc::new(provider()))
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| TlsError::Config(e.to_string()))?;
    let builder = match verifier {
        None => builder.with_no_client_auth(),
        Some(v) => builder.with_client_cert_verifier(v),
    };
    let mut config = builder
        .with_single_cert(certs, key)
        .map_err(|e| TlsError::Config(format!("certificate and key: {e}")))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    enable_resumption(&mut config)?;
    Ok(Arc::new(config))
}

/// Sessions kept for TLS 1.2 clients that resume by session id instead of a ticket.
pub const SESSION_CACHE_ENTRIES: usize = 4096;

/// Session resumption: stateless tickets (TLS 1.3 and 1.2; AES-256 + HMAC-SHA256 under
/// keys generated at start and rotated every 6 hours, so tickets live at most 12 hours
/// and never outlive the process) and a bounded cache of session ids for TLS 1.2
/// clients without tickets. A resumed handshake skips the certificate signature and
/// chain verification (an ECDHE key exchange is still made in TLS 1.3); the client
/// certificate verified by the first handshake is restored with the session, so the
/// per-store mutual TLS checks see it on resumed connections too.
fn enable_resumption(config: &mut ServerConfig) -> Result<(), TlsError> {
    config.ticketer = aws_lc_rs::Ticketer::new()
        .map_err(|e| TlsError::Config(format!("session ticket keys: {e}")))?;
    config.session_storage = rustls::server::ServerSessionMemoryCache::new(SESSION_CACHE_ENTRIES);
    Ok(())
}

/// The subject common names of a DER certificate.
pub fn subject_common_names(der: &[u8]) -> Result<Vec<String>, String> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).map_err(|e| e.to_string())?;
    Ok(cert
        .subject()
        .iter_common_name()
        .filter_map(|cn| cn.as_str().ok().map(str::to_string))
        .collect())
}

/// Client verification: chain to the configured CA (webpki), then require a subject
/// CN from the allowed list. Any failure ends the handshake.
#[derive(Debug)]
struct CnVerifier {
    inner: Arc<dyn ClientCertVerifier>,
    allowed: Vec<String>,
}

impl ClientCertVerifier for CnVerifier {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.inner.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        self.inner
            .verify_client_cert(end_entity, intermediates, now)?;
        let cns = subject_common_names(end_entity).map_err(|e| {
            rustls::Error::General(format!("client certificate cannot be parsed: {e}"))
        })?;
        if cns.iter().any(|cn| self.allowed.iter().any(|a| a == cn)) {
            Ok(ClientCertVerified::assertion())
        } else {
            tracing::warn!(presented = ?cns, "refused client certificate: subject CN not allowed");
            Err(rustls::Error::General(format!(
                "client certificate subject CN {cns:?} is not allowed"
            )))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }

    fn client_auth_mandatory(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests;

//! Mutual TLS per key store. A store with mutual TLS on accepts a request only over a
//! connection whose client presented a certificate that chains to the store's client
//! CA (its own `mtls_ca_pem`, else the listener's `xks.tls.client_ca_file`) and whose
//! subject CN is on the store's list (its own `mtls_cns`, else the listener's
//! `xks.tls.client_cn`, else AWS KMS's `cks.kms.<region>.amazonaws.com` for the
//! store's region). Stores without it serve clients that present no certificate.
//!
//! The handshake asks for a certificate only while some store needs one
//! ([`PerStoreVerifier`]) and accepts any certificate that chains to one of the CAs in
//! use (a certificate no store could accept is refused with a TLS alert); each request
//! is then checked against its own store ([`check`]), refused with
//! `AuthenticationFailedException` and a reason.

use std::sync::Arc;

use arc_swap::ArcSwap;
use rustls::{
    DistinguishedName, RootCertStore, SignatureScheme,
    client::danger::HandshakeSignatureValid,
    pki_types::{CertificateDer, UnixTime},
    server::{
        WebPkiClientVerifier,
        danger::{ClientCertVerified, ClientCertVerifier},
    },
};

use crate::{
    config::TlsConfig,
    model::StoreRecord,
    tls::{self, TlsError},
};

use super::{
    error::{XksError, XksErrorKind},
    routing::Routing,
};

/// The certificate chain a client presented in the TLS handshake (end entity first),
/// carried in each request's extensions.
#[derive(Debug, Clone)]
pub struct PeerCertificates(pub Arc<[CertificateDer<'static>]>);

/// The listener's client CA and CN list: the defaults of stores with mutual TLS on.
#[derive(Debug, Clone, Default)]
pub struct ClientTrustDefaults {
    /// CA certificates of `xks.tls.client_ca_file`.
    pub roots: Vec<CertificateDer<'static>>,
    /// `xks.tls.client_cn`.
    pub cns: Vec<String>,
}

impl ClientTrustDefaults {
    /// The defaults of a listener's TLS settings.
    pub fn load(cfg: &TlsConfig) -> Result<ClientTrustDefaults, TlsError> {
        let roots = match &cfg.client_ca_file {
            Some(path) => tls::read_certs(path)?,
            None => Vec::new(),
        };
        Ok(ClientTrustDefaults {
            roots,
            cns: cfg.client_cn.clone(),
        })
    }
}

/// What a store with mutual TLS on accepts.
#[derive(Debug)]
pub struct StoreMtls {
    roots: Vec<CertificateDer<'static>>,
    verifier: Arc<dyn ClientCertVerifier>,
    cns: Vec<String>,
}

/// A store's mutual TLS requirement: `None` when it is off, else what it accepts or
/// why nothing can be accepted (every request is then refused with that reason).
pub type StoreMtlsRule = Option<Result<Arc<StoreMtls>, String>>;

/// The CN AWS KMS presents for a region.
pub fn aws_kms_cn(region: &str) -> String {
    format!("cks.kms.{region}.amazonaws.com")
}

/// `record`'s mutual TLS requirement, with `defaults` for what it does not set.
pub fn store_rule(record: &StoreRecord, defaults: &ClientTrustDefaults) -> StoreMtlsRule {
    if !record.mtls {
        return None;
    }
    Some(build_store_mtls(record, defaults).map(Arc::new))
}

fn build_store_mtls(
    record: &StoreRecord,
    defaults: &ClientTrustDefaults,
) -> Result<StoreMtls, String> {
    let roots = match &record.mtls_ca_pem {
        Some(pem) => tls::parse_pem_certs(pem)
            .map_err(|e| format!("the key store's client CA bundle is unusable: {e}"))?,
        None => defaults.roots.clone(),
    };
    if roots.is_empty() {
        return Err(
            "no client CA is configured (neither the key store's mtls_ca_pem nor xks.tls.client_ca_file)"
                .into(),
        );
    }
    let cns = if !record.mtls_cns.is_empty() {
        record.mtls_cns.clone()
    } else if !defaults.cns.is_empty() {
        defaults.cns.clone()
    } else if let Some(region) = &record.region {
        vec![aws_kms_cn(region)]
    } else {
        return Err(
            "no accepted client CN is configured (neither the key store's mtls_cns, nor xks.tls.client_cn, nor a region)"
                .into(),
        );
    };
    let verifier = verifier_for(&roots, false).map_err(|e| e.to_string())?;
    Ok(StoreMtls {
        roots,
        verifier,
        cns,
    })
}

/// A webpki verifier for `roots`; `optional`: clients may present no certificate.
fn verifier_for(
    roots: &[CertificateDer<'static>],
    optional: bool,
) -> Result<Arc<dyn ClientCertVerifier>, TlsError> {
    let mut store = RootCertStore::empty();
    for cert in roots {
        store
            .add(cert.clone())
            .map_err(|e| TlsError::Config(format!("client CA certificate: {e}")))?;
    }
    let builder =
        WebPkiClientVerifier::builder_with_provider(Arc::new(store), Arc::new(tls::provider()));
    let builder = if optional {
        builder.allow_unauthenticated()
    } else {
        builder
    };
    builder
        .build()
        .map_err(|e| TlsError::Config(format!("client certificate verifier: {e}")))
}

/// The handshake's verifier for a snapshot: accepts certificates that chain to any CA
/// some store with mutual TLS on trusts; `None` when no store needs a certificate.
pub fn handshake_verifier<'a>(
    rules: impl Iterator<Item = &'a StoreMtlsRule>,
) -> Option<Arc<dyn ClientCertVerifier>> {
    let mut roots: Vec<CertificateDer<'static>> = Vec::new();
    let mut any = false;
    for rule in rules.flatten() {
        any = true;
        if let Ok(m) = rule {
            for root in &m.roots {
                if !roots.contains(root) {
                    roots.push(root.clone());
                }
            }
        }
    }
    if !any || roots.is_empty() {
        // Stores whose rule cannot be met refuse every request anyway; without any
        // usable CA there is nothing to ask a client for.
        return None;
    }
    match verifier_for(&roots, true) {
        Ok(v) => Some(v),
        Err(e) => {
            tracing::error!("client certificate verification unavailable: {e}");
            None
        }
    }
}

fn refused(reason: impl std::fmt::Display) -> XksError {
    XksError::new(
        XksErrorKind::AuthenticationFailed,
        format!("mutual TLS: {reason}"),
    )
}

/// Checks a request to a store with `rule` against the client's certificate.
pub fn check(rule: &StoreMtlsRule, peer: Option<&PeerCertificates>) -> Result<(), XksError> {
    let Some(rule) = rule else { return Ok(()) };
    let m = rule.as_ref().map_err(refused)?;
    let Some((end_entity, intermediates)) = peer.and_then(|p| p.0.split_first()) else {
        return Err(refused(
            "this key store requires a client certificate and none was presented",
        ));
    };
    m.verifier
        .verify_client_cert(end_entity, intermediates, UnixTime::now())
        .map_err(|e| {
            refused(format!(
                "the client certificate does not chain to this key store's client CA ({e})"
            ))
        })?;
    let cns = tls::subject_common_names(end_entity)
        .map_err(|e| refused(format!("the client certificate cannot be parsed: {e}")))?;
    if cns.iter().any(|cn| m.cns.contains(cn)) {
        return Ok(());
    }
    let shown: Vec<String> = cns
        .iter()
        .map(|cn| cn.chars().take(80).collect::<String>())
        .collect();
    Err(refused(format!(
        "client certificate subject CN {shown:?} is not accepted by this key store"
    )))
}

/// The XKS listener's client-certificate verifier with `client_auth = "per_store"`:
/// asks for a certificate while the current snapshot has a store that needs one, never
/// requires it, and accepts certificates chaining to a CA in use.
pub struct PerStoreVerifier {
    routing: Arc<ArcSwap<Routing>>,
    schemes: rustls::crypto::WebPkiSupportedAlgorithms,
}

impl PerStoreVerifier {
    /// A verifier reading the current snapshot of `routing`.
    pub fn new(routing: Arc<ArcSwap<Routing>>) -> PerStoreVerifier {
        PerStoreVerifier {
            routing,
            schemes: tls::provider().signature_verification_algorithms,
        }
    }
}

impl std::fmt::Debug for PerStoreVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PerStoreVerifier").finish_non_exhaustive()
    }
}

impl ClientCertVerifier for PerStoreVerifier {
    fn offer_client_auth(&self) -> bool {
        self.routing.load().client_trust().is_some()
    }

    fn client_auth_mandatory(&self) -> bool {
        false
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        // The CAs change with the stores: send no hint (clients present what they have).
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        let routing = self.routing.load();
        let Some(verifier) = routing.client_trust() else {
            return Err(rustls::Error::General(
                "no key store accepts client certificates".into(),
            ));
        };
        verifier
            .verify_client_cert(end_entity, intermediates, now)
            .inspect_err(|e| tracing::info!("refused client certificate: {e}"))
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.schemes)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.schemes)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.schemes.supported_schemes()
    }
}

#[cfg(test)]
mod tests;

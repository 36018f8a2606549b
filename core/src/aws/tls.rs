//! The HTTPS client of AWS calls: the SDK's hyper + rustls client on the aws-lc-rs
//! provider, trusting a connection's CA bundle alone when it has one, else the
//! platform's roots (as the SDK's default client does).

use aws_sdk_kms::config::SharedHttpClient;
use aws_smithy_http_client::{
    Builder,
    tls::{self, TlsContext, TrustStore, rustls_provider::CryptoMode},
};
use rustls_pki_types::{CertificateDer, pem::PemObject};

use super::{AwsError, AwsErrorKind};

/// The certificates of PEM bundle `pem`, each a usable trust anchor; an error naming
/// what is wrong when it holds none or one does not parse.
pub fn parse_ca_pem(pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, String> {
    let mut roots = rustls::RootCertStore::empty();
    let mut certs = Vec::new();
    for (i, cert) in CertificateDer::pem_slice_iter(pem).enumerate() {
        let cert = cert.map_err(|e| format!("certificate {} is not valid PEM: {e}", i + 1))?;
        roots
            .add(cert.clone())
            .map_err(|e| format!("certificate {} is not a usable CA certificate: {e}", i + 1))?;
        certs.push(cert);
    }
    if certs.is_empty() {
        return Err("it holds no PEM certificate (-----BEGIN CERTIFICATE-----)".into());
    }
    Ok(certs)
}

/// The HTTPS client: trusting `ca_pem` (a PEM bundle) alone when given, else the
/// platform's roots. Public for clients that must trust what keyhold trusts (tests).
pub fn http_client(ca_pem: Option<&[u8]>) -> Result<SharedHttpClient, AwsError> {
    let trust = match ca_pem {
        None => TrustStore::default(),
        Some(pem) => {
            parse_ca_pem(pem).map_err(|e| {
                AwsError::new(
                    AwsErrorKind::Config,
                    format!("the AWS connection's CA file cannot be used: {e}"),
                )
            })?;
            TrustStore::empty()
                .with_native_roots(false)
                .with_pem_certificate(pem.to_vec())
        }
    };
    let context = TlsContext::builder()
        .with_trust_store(trust)
        .build()
        .map_err(|e| {
            AwsError::new(
                AwsErrorKind::Config,
                format!("cannot set up TLS for AWS calls: {e}"),
            )
        })?;
    Ok(Builder::new()
        .tls_provider(tls::Provider::Rustls(CryptoMode::AwsLc))
        .tls_context(context)
        .build_https())
}

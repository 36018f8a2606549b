//! A test PKI made with rcgen, and rustls client configurations (aws-lc-rs provider).

use std::{path::Path, sync::Arc};

use rcgen::{
    BasicConstraints, Certificate, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair,
};
use rustls::{
    ClientConfig, RootCertStore, SupportedCipherSuite,
    crypto::{CryptoProvider, aws_lc_rs},
};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, pem::PemObject};

/// A test certificate authority.
pub struct TestCa {
    cert: Certificate,
    key: KeyPair,
}

/// A certificate issued by a [`TestCa`], with its key.
pub struct Issued {
    /// Certificate PEM followed by the CA's.
    pub chain_pem: String,
    /// Private key PEM.
    pub key_pem: String,
    /// Certificate DER.
    pub cert_der: CertificateDer<'static>,
    /// Private key DER (PKCS#8).
    pub key_der: Vec<u8>,
}

impl Issued {
    /// The chain and key for a rustls client.
    pub fn client_auth(&self) -> (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>) {
        (
            vec![self.cert_der.clone()],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.key_der.clone())),
        )
    }

    /// Writes `<name>.pem` and `<name>.key` in `dir`; returns their paths.
    pub fn write(&self, dir: &Path, name: &str) -> (std::path::PathBuf, std::path::PathBuf) {
        let cert = dir.join(format!("{name}.pem"));
        let key = dir.join(format!("{name}.key"));
        std::fs::write(&cert, &self.chain_pem).expect("write cert");
        std::fs::write(&key, &self.key_pem).expect("write key");
        (cert, key)
    }
}

impl TestCa {
    /// A self-signed CA with subject CN `cn`.
    pub fn new(cn: &str) -> TestCa {
        let key = KeyPair::generate().expect("CA key");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, cn);
        let cert = params.self_signed(&key).expect("CA certificate");
        TestCa { cert, key }
    }

    /// The CA certificate PEM.
    pub fn pem(&self) -> String {
        self.cert.pem()
    }

    /// Writes the CA certificate to `dir/<name>`; returns the path.
    pub fn write(&self, dir: &Path, name: &str) -> std::path::PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, self.pem()).expect("write CA");
        path
    }

    fn issue(&self, sans: &[&str], cn: &str, usage: ExtendedKeyUsagePurpose) -> Issued {
        let key = KeyPair::generate().expect("key");
        let sans: Vec<String> = sans.iter().map(|s| s.to_string()).collect();
        let mut params = CertificateParams::new(sans).expect("params");
        params.distinguished_name.push(DnType::CommonName, cn);
        params.extended_key_usages = vec![usage];
        let cert = params
            .signed_by(&key, &self.cert, &self.key)
            .expect("issue certificate");
        Issued {
            chain_pem: cert.pem() + &self.cert.pem(),
            key_pem: key.serialize_pem(),
            cert_der: cert.der().clone(),
            key_der: key.serialize_der(),
        }
    }

    /// A server certificate for `localhost` and 127.0.0.1.
    pub fn server_cert(&self) -> Issued {
        self.issue(
            &["localhost", "127.0.0.1"],
            "localhost",
            ExtendedKeyUsagePurpose::ServerAuth,
        )
    }

    /// A client certificate with subject CN `cn`.
    pub fn client_cert(&self, cn: &str) -> Issued {
        self.issue(&[], cn, ExtendedKeyUsagePurpose::ClientAuth)
    }
}

/// Options of a rustls client configuration.
pub struct ClientTls<'a> {
    /// PEM of the trusted roots.
    pub roots_pem: &'a str,
    /// Only TLS 1.2.
    pub tls12_only: bool,
    /// Restrict cipher suites.
    pub suites: Option<Vec<SupportedCipherSuite>>,
    /// A client certificate.
    pub client_cert: Option<&'a Issued>,
}

impl<'a> ClientTls<'a> {
    /// Defaults: trust `roots_pem`, TLS 1.3 and 1.2, every aws-lc-rs suite, no client
    /// certificate.
    pub fn trusting(roots_pem: &'a str) -> ClientTls<'a> {
        ClientTls {
            roots_pem,
            tls12_only: false,
            suites: None,
            client_cert: None,
        }
    }

    /// Builds the configuration (provider: aws-lc-rs).
    pub fn build(&self) -> Arc<ClientConfig> {
        let mut provider: CryptoProvider = aws_lc_rs::default_provider();
        if let Some(suites) = &self.suites {
            provider.cipher_suites = suites.clone();
        }
        let versions: &[&'static rustls::SupportedProtocolVersion] = if self.tls12_only {
            &[&rustls::version::TLS12]
        } else {
            &[&rustls::version::TLS13, &rustls::version::TLS12]
        };
        let mut roots = RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(self.roots_pem.as_bytes()) {
            roots.add(cert.expect("root PEM")).expect("add root");
        }
        let builder = ClientConfig::builder_with_provider(Arc::new(provider))
            .with_protocol_versions(versions)
            .expect("protocol versions")
            .with_root_certificates(roots);
        let config = match self.client_cert {
            None => builder.with_no_client_auth(),
            Some(issued) => {
                let (chain, key) = issued.client_auth();
                builder
                    .with_client_auth_cert(chain, key)
                    .expect("client certificate")
            }
        };
        Arc::new(config)
    }
}

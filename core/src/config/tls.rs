//! `[xks.tls]` and `[admin.tls]`: a listener's certificate and who must present a
//! client certificate.

use std::path::PathBuf;

use serde::Deserialize;

use super::{ConfigError, invalid};

/// TLS settings of a listener.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM certificate chain. Without it (and `key_file`), a self-signed development
    /// certificate is generated under `<data_dir>/tls/`.
    pub cert_file: Option<PathBuf>,
    /// PEM private key.
    pub key_file: Option<PathBuf>,
    /// PEM CA bundle for client certificates. On the XKS listener it is the default CA
    /// of key stores with mutual TLS on (`client_auth = "per_store"`), or the CA every
    /// client must chain to (`client_auth = "required"`); on the admin listener it
    /// requires client certificates from this CA.
    pub client_ca_file: Option<PathBuf>,
    /// Accepted client certificate subject CNs (AWS KMS presents
    /// `cks.kms.<region>.amazonaws.com`): the default list of key stores with mutual
    /// TLS on, or the list every client must match (`client_auth = "required"`).
    #[serde(default)]
    pub client_cn: Vec<String>,
    /// Who must present a client certificate. XKS listener: `per_store` (default; a
    /// certificate is asked for when some key store has mutual TLS on, and checked
    /// against that store's CA and CN list) or `required` (every connection, against
    /// `client_ca_file` and `client_cn`). The admin listener only knows `required`
    /// (implied by `client_ca_file`).
    pub client_auth: Option<ClientAuth>,
}

/// Which clients must present a certificate (`xks.tls.client_auth`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClientAuth {
    /// Only clients of key stores with mutual TLS on, per store.
    #[default]
    PerStore,
    /// Every client, at the handshake.
    Required,
}

impl TlsConfig {
    /// Checks the XKS listener's TLS settings.
    pub fn validate_xks(&self) -> Result<(), ConfigError> {
        if self.cert_file.is_some() != self.key_file.is_some() {
            return Err(invalid(
                "xks.tls",
                "cert_file and key_file must be given together",
            ));
        }
        let required = self.client_auth == Some(ClientAuth::Required);
        if required && self.client_ca_file.is_none() {
            return Err(invalid(
                "xks.tls.client_ca_file",
                "client_auth = \"required\" needs the CA bundle client certificates must chain to",
            ));
        }
        if required && self.client_cn.is_empty() {
            return Err(invalid(
                "xks.tls.client_cn",
                "mutual TLS needs the accepted client subject CN(s), e.g. cks.kms.us-east-1.amazonaws.com",
            ));
        }
        Ok(())
    }

    /// Checks the admin listener's TLS settings (it has no key stores: client
    /// certificates are required of everyone, or of no one).
    pub fn validate_admin(&self) -> Result<(), ConfigError> {
        if self.client_auth == Some(ClientAuth::PerStore) {
            return Err(invalid(
                "admin.tls.client_auth",
                "the admin listener has no key stores: only \"required\" applies (implied by client_ca_file)",
            ));
        }
        if self.client_auth.is_some() && self.client_ca_file.is_none() {
            return Err(invalid(
                "admin.tls.client_ca_file",
                "client_auth = \"required\" needs the CA bundle client certificates must chain to",
            ));
        }
        Ok(())
    }
}

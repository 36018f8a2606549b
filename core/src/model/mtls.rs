//! The rules of a key store's mutual TLS settings, as pure functions: what its CA
//! bundle and CN list may hold, and when mutual TLS can be turned on at all.

use super::{ModelError, StoreRecord, rules::RuleViolation};

/// Largest CA bundle a store may hold.
pub const MAX_CA_PEM_BYTES: usize = 64 * 1024;
/// Most accepted CNs per store.
pub const MAX_CNS: usize = 20;
/// Longest accepted CN (a DNS name).
pub const MAX_CN_LEN: usize = 253;

/// What the XKS listener offers for mutual TLS (from the server's configuration).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MtlsListener {
    /// The listener speaks HTTPS (mutual TLS is impossible over plain HTTP).
    pub https: bool,
    /// `xks.tls.client_ca_file` is set: the default CA of stores.
    pub default_ca: bool,
    /// `xks.tls.client_cn` is set: the default CN list of stores.
    pub default_cns: bool,
}

/// Checks a store's own CA bundle (PEM CA certificates, at most 64 KiB) and CN list
/// (1..=253 printable ASCII characters each, at most 20, no duplicates).
pub fn validate_settings(ca_pem: Option<&str>, cns: &[String]) -> Result<(), ModelError> {
    check_settings(ca_pem, cns).map_err(|reason| ModelError::Mtls { reason })
}

fn check_settings(ca_pem: Option<&str>, cns: &[String]) -> Result<(), String> {
    if let Some(pem) = ca_pem {
        if pem.len() > MAX_CA_PEM_BYTES {
            return Err(format!(
                "mtls_ca_pem: at most {MAX_CA_PEM_BYTES} bytes (got {})",
                pem.len()
            ));
        }
        crate::tls::parse_pem_certs(pem).map_err(|e| format!("mtls_ca_pem: {e}"))?;
    }
    if cns.len() > MAX_CNS {
        return Err(format!(
            "mtls_cns: at most {MAX_CNS} names (got {})",
            cns.len()
        ));
    }
    for (i, cn) in cns.iter().enumerate() {
        if cn.is_empty() || cn.len() > MAX_CN_LEN {
            return Err(format!(
                "mtls_cns[{i}]: a CN is 1..={MAX_CN_LEN} characters"
            ));
        }
        if !cn.chars().all(|c| c.is_ascii_graphic() || c == ' ') {
            return Err(format!(
                "mtls_cns[{i}]: only printable ASCII characters are allowed"
            ));
        }
        if cns[..i].contains(cn) {
            return Err(format!("mtls_cns[{i}]: listed twice"));
        }
    }
    Ok(())
}

/// A store with mutual TLS on needs an HTTPS listener and a client CA (its own or the
/// listener's); without them every request would be refused.
pub fn ensure_possible(store: &StoreRecord, listener: &MtlsListener) -> Result<(), RuleViolation> {
    if !store.mtls {
        return Ok(());
    }
    if !listener.https {
        return Err(RuleViolation {
            code: "mtls_unavailable",
            message: "mutual TLS needs the XKS listener on HTTPS (xks.plain_http is set)".into(),
        });
    }
    if store.mtls_ca_pem.is_none() && !listener.default_ca {
        return Err(RuleViolation {
            code: "mtls_ca_required",
            message: format!(
                "key store '{}': mutual TLS needs a client CA: give mtls_ca_pem or set xks.tls.client_ca_file",
                store.name
            ),
        });
    }
    if store.mtls_cns.is_empty() && !listener.default_cns && store.region.is_none() {
        return Err(RuleViolation {
            code: "mtls_cn_required",
            message: format!(
                "key store '{}': mutual TLS needs the accepted client CNs: give mtls_cns, set xks.tls.client_cn, or give the store its AWS region (AWS KMS presents cks.kms.<region>.amazonaws.com)",
                store.name
            ),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests;

//! The AWS side of config-file setup: AWS connections and accounts declared in
//! `[aws.connections.<name>]` and `[aws.accounts."<id>"]`, and what a declared store
//! says of its AWS side (account, region, location, linked, connected).

use std::{collections::BTreeMap, path::PathBuf};

use serde::Deserialize;

use crate::model::StsRegionalEndpoints;

/// `[aws]`: declared AWS connections and accounts.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AwsDecls {
    /// AWS connections by name.
    #[serde(default)]
    pub connections: BTreeMap<String, AwsConnectionDecl>,
    /// AWS accounts by 12-digit id.
    #[serde(default)]
    pub accounts: BTreeMap<String, AccountDecl>,
}

/// A declared AWS connection; its secret from a variable or a file (inline only for
/// examples). Created when missing; an existing connection of that name is left as it
/// is (change it through the admin API).
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AwsConnectionDecl {
    /// The IAM access key id.
    pub access_key_id: String,
    /// The secret inline (examples only).
    pub secret_access_key: Option<String>,
    /// Environment variable holding the secret.
    pub secret_access_key_env: Option<String>,
    /// File holding the secret.
    pub secret_access_key_file: Option<PathBuf>,
    /// A role to assume with these credentials.
    pub role_arn: Option<String>,
    /// KMS endpoint override.
    pub endpoint_url: Option<String>,
    /// STS endpoint override.
    pub sts_endpoint_url: Option<String>,
    /// Regional or global STS endpoint.
    #[serde(default)]
    pub sts_regional_endpoints: StsRegionalEndpoints,
    /// Extra CA certificates (PEM file) trusted for the endpoints.
    pub ca_file: Option<PathBuf>,
}

impl std::fmt::Debug for AwsConnectionDecl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AwsConnectionDecl")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key_env", &self.secret_access_key_env)
            .field("secret_access_key_file", &self.secret_access_key_file)
            .field("role_arn", &self.role_arn)
            .field("endpoint_url", &self.endpoint_url)
            .finish_non_exhaustive()
    }
}

impl AwsConnectionDecl {
    /// The secret, from wherever it is declared.
    pub fn secret(&self) -> Result<zeroize::Zeroizing<String>, String> {
        let from = (
            &self.secret_access_key,
            &self.secret_access_key_env,
            &self.secret_access_key_file,
        );
        let secret = match from {
            (Some(s), None, None) => s.clone(),
            (None, Some(var), None) => {
                std::env::var(var).map_err(|_| format!("environment variable {var} is not set"))?
            }
            (None, None, Some(path)) => std::fs::read_to_string(path)
                .map_err(|e| format!("cannot read {}: {e}", path.display()))?
                .trim()
                .to_string(),
            _ => {
                return Err(
                    "set exactly one of secret_access_key, secret_access_key_env and \
                            secret_access_key_file"
                        .into(),
                );
            }
        };
        Ok(zeroize::Zeroizing::new(secret))
    }
}

/// A declared AWS account. Created when missing (an existing account is left as is).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccountDecl {
    /// Display name.
    pub name: String,
    /// Regions whose key stores it may hold.
    #[serde(default)]
    pub regions: Vec<String>,
    /// The AWS connection used to reach its AWS KMS.
    pub connection: Option<String>,
}

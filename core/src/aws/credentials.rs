//! The credentials of an AWS connection: its static keys, or a role assumed with them
//! through STS (`AssumeRole`), cached until shortly before they expire.

use std::{
    sync::Arc,
    time::{Duration, SystemTime},
};

use aws_credential_types::{
    Credentials,
    provider::{self, ProvideCredentials, error::CredentialsError},
};

use super::{
    AwsError, AwsErrorKind,
    errors::{self, Service},
};
use crate::model::StsRegionalEndpoints;

/// Assumed-role credentials are renewed this long before they expire.
const RENEW_BEFORE: Duration = Duration::from_secs(5 * 60);

/// The STS endpoint and the region its requests are signed for: `override_url`, else the
/// region's own endpoint (`regional`) or the global one (`legacy`); requests are signed
/// for `region` in `regional` mode and for `us-east-1`, the global endpoint's region, in
/// `legacy` mode (an override stands in for the endpoint that mode names).
pub fn sts_endpoint(
    override_url: Option<&str>,
    mode: StsRegionalEndpoints,
    region: &str,
) -> (String, String) {
    let (default_url, signing_region) = match mode {
        StsRegionalEndpoints::Regional => (
            format!("https://sts.{region}.amazonaws.com"),
            region.to_string(),
        ),
        StsRegionalEndpoints::Legacy => (
            "https://sts.amazonaws.com".to_string(),
            "us-east-1".to_string(),
        ),
    };
    (
        override_url.map_or(default_url, str::to_string),
        signing_region,
    )
}

/// The STS role session name of connection `connection`: `keyhold-<connection>`,
/// reduced to the characters and length STS accepts (`[\w+=,.@-]{2,64}`).
pub fn session_name(connection: &str) -> String {
    let mut name: String = format!("keyhold-{connection}")
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "_+=,.@-".contains(c) {
                c
            } else {
                '-'
            }
        })
        .collect();
    name.truncate(64);
    name
}

/// A role assumed through STS, and its current credentials.
#[derive(Debug)]
struct AssumedRole {
    sts: aws_sdk_sts::Client,
    role_arn: String,
    session_name: String,
    current: tokio::sync::Mutex<Option<Credentials>>,
}

/// The credentials KMS calls are signed with (cheap to clone; clones share the cache).
#[derive(Debug, Clone)]
pub(crate) struct ConnectionCredentials {
    fixed: Credentials,
    role: Option<Arc<AssumedRole>>,
}

impl ConnectionCredentials {
    /// The connection's own keys.
    pub(crate) fn fixed(keys: Credentials) -> Self {
        ConnectionCredentials {
            fixed: keys,
            role: None,
        }
    }

    /// `role_arn`, assumed through `sts` (configured with the connection's keys).
    pub(crate) fn role(
        keys: Credentials,
        sts: aws_sdk_sts::Client,
        role_arn: String,
        session_name: String,
    ) -> Self {
        ConnectionCredentials {
            fixed: keys,
            role: Some(Arc::new(AssumedRole {
                sts,
                role_arn,
                session_name,
                current: tokio::sync::Mutex::new(None),
            })),
        }
    }

    /// The credentials to sign with now: the keys, or the role's (assumed again when
    /// those expire within [`RENEW_BEFORE`]).
    pub(crate) async fn resolve(&self) -> Result<Credentials, AwsError> {
        let Some(role) = &self.role else {
            return Ok(self.fixed.clone());
        };
        let mut current = role.current.lock().await;
        if let Some(c) = current.as_ref() {
            let fresh = c
                .expiry()
                .is_none_or(|e| e > SystemTime::now() + RENEW_BEFORE);
            if fresh {
                return Ok(c.clone());
            }
        }
        let creds = role.assume().await?;
        *current = Some(creds.clone());
        Ok(creds)
    }
}

impl AssumedRole {
    async fn assume(&self) -> Result<Credentials, AwsError> {
        let out = self
            .sts
            .assume_role()
            .role_arn(&self.role_arn)
            .role_session_name(&self.session_name)
            .send()
            .await
            .map_err(|e| {
                let mut e = errors::from_sdk(Service::Sts, "AssumeRole", e);
                if e.code.is_some() {
                    e.kind = AwsErrorKind::Credentials;
                }
                e.message = format!("cannot assume role {}: {}", self.role_arn, e.message);
                e
            })?;
        let c = out.credentials().ok_or_else(|| {
            AwsError::new(
                AwsErrorKind::Credentials,
                format!(
                    "AWS STS AssumeRole of role {} answered without credentials; check that the \
                     STS endpoint is AWS STS",
                    self.role_arn
                ),
            )
        })?;
        let expiry = SystemTime::try_from(*c.expiration()).ok();
        Ok(Credentials::new(
            c.access_key_id(),
            c.secret_access_key(),
            Some(c.session_token().to_string()),
            expiry,
            "keyhold-assumed-role",
        ))
    }
}

impl ProvideCredentials for ConnectionCredentials {
    fn provide_credentials<'a>(&'a self) -> provider::future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        provider::future::ProvideCredentials::new(async move {
            self.resolve()
                .await
                .map_err(CredentialsError::provider_error)
        })
    }
}

#[cfg(test)]
mod tests;

//! The emulator's configuration: region, account, IAM principals, the CA trusted for
//! the XKS proxies, deadlines and the optional TLS identity of its own listener.

use std::time::Duration;

/// How the emulator is set up (everything else is in-memory state).
#[derive(Debug, Clone)]
pub struct EmulatorConfig {
    /// The AWS region it plays (SigV4 scope of KMS requests, XKS signing region, ARNs).
    pub region: String,
    /// The 12-digit AWS account id of every resource.
    pub account_id: String,
    /// IAM users whose access keys may call it.
    pub users: Vec<IamUser>,
    /// IAM roles that `AssumeRole` can hand out.
    pub roles: Vec<IamRole>,
    /// PEM of the CA(s) trusted for the XKS proxies' server certificates (only these).
    pub xks_ca_pem: Vec<u8>,
    /// The deadline of each call to an XKS proxy (AWS: 250 ms).
    pub xks_timeout: Duration,
    /// How long `CONNECTING` and `DISCONNECTING` last.
    pub transition_delay: Duration,
    /// The listener's certificate and key; `None` serves plain HTTP.
    pub tls: Option<TlsIdentity>,
}

/// An IAM user with one access key.
#[derive(Debug, Clone)]
pub struct IamUser {
    /// The user name (ARN `arn:aws:iam::<account>:user/<name>`).
    pub name: String,
    /// The access key id.
    pub access_key_id: String,
    /// The secret access key.
    pub secret_access_key: String,
}

/// An IAM role and the users (by access key id) its trust policy admits.
#[derive(Debug, Clone)]
pub struct IamRole {
    /// The role ARN, `arn:aws:iam::<account>:role/<name>`.
    pub arn: String,
    /// Access key ids of the users allowed to assume it.
    pub trusted_access_key_ids: Vec<String>,
}

/// A TLS server identity.
#[derive(Debug, Clone)]
pub struct TlsIdentity {
    /// The certificate chain, PEM (leaf first).
    pub cert_pem: Vec<u8>,
    /// The private key, PEM.
    pub key_pem: Vec<u8>,
}

impl EmulatorConfig {
    /// A configuration for `region` and `account_id` with no principals, no trusted
    /// CA, AWS's 250 ms XKS deadline, 300 ms transitions and plain HTTP.
    pub fn new(region: impl Into<String>, account_id: impl Into<String>) -> Self {
        EmulatorConfig {
            region: region.into(),
            account_id: account_id.into(),
            users: Vec::new(),
            roles: Vec::new(),
            xks_ca_pem: Vec::new(),
            xks_timeout: Duration::from_millis(250),
            transition_delay: Duration::from_millis(300),
            tls: None,
        }
    }
}

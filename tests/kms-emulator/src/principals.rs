//! The account's principals: IAM users (static access keys), roles and the temporary
//! credentials `AssumeRole` hands out.

use std::{
    collections::HashMap,
    sync::Mutex,
    time::{Duration, SystemTime},
};

use base64::{Engine, engine::general_purpose::STANDARD};

use crate::{
    blob::random,
    config::{IamRole, IamUser},
};

/// Who signed a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// Its ARN (user, or assumed role session).
    pub arn: String,
    /// The access key id used.
    pub access_key_id: String,
    /// The unique id `GetCallerIdentity` reports.
    pub user_id: String,
}

/// A credential as looked up by access key id.
#[derive(Debug, Clone)]
pub struct Lookup {
    /// The secret access key.
    pub secret: String,
    /// The session token temporary credentials need.
    pub session_token: Option<String>,
    /// The principal.
    pub principal: Principal,
}

/// Temporary credentials from `AssumeRole`.
#[derive(Debug, Clone)]
pub struct TemporaryCredentials {
    /// `ASIA...`.
    pub access_key_id: String,
    /// The secret.
    pub secret_access_key: String,
    /// The session token.
    pub session_token: String,
    /// When they stop working.
    pub expiration: SystemTime,
    /// The assumed-role ARN.
    pub arn: String,
    /// `AROA...:<session>`.
    pub assumed_role_id: String,
}

/// Why `AssumeRole` was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AssumeRoleRefusal {
    /// No such role, or the caller is not trusted by it.
    AccessDenied(String),
    /// A parameter is invalid.
    Validation(String),
}

/// Users, roles and live sessions.
pub struct Directory {
    account_id: String,
    users: Vec<IamUser>,
    roles: Vec<IamRole>,
    sessions: Mutex<HashMap<String, TemporaryCredentials>>,
}

impl Directory {
    /// A directory of `users` and `roles` in `account_id`.
    pub fn new(account_id: &str, users: Vec<IamUser>, roles: Vec<IamRole>) -> Directory {
        Directory {
            account_id: account_id.to_string(),
            users,
            roles,
            sessions: Mutex::new(HashMap::new()),
        }
    }

    /// The credential behind `access_key_id` (expired sessions are not found).
    pub fn lookup(&self, access_key_id: &str, now: SystemTime) -> Option<Lookup> {
        if let Some(u) = self.users.iter().find(|u| u.access_key_id == access_key_id) {
            return Some(Lookup {
                secret: u.secret_access_key.clone(),
                session_token: None,
                principal: Principal {
                    arn: format!("arn:aws:iam::{}:user/{}", self.account_id, u.name),
                    access_key_id: u.access_key_id.clone(),
                    user_id: format!("AIDA{}", short_id(&u.access_key_id)),
                },
            });
        }
        let sessions = self.sessions.lock().ok()?;
        let s = sessions.get(access_key_id)?;
        if s.expiration <= now {
            return None;
        }
        Some(Lookup {
            secret: s.secret_access_key.clone(),
            session_token: Some(s.session_token.clone()),
            principal: Principal {
                arn: s.arn.clone(),
                access_key_id: s.access_key_id.clone(),
                user_id: s.assumed_role_id.clone(),
            },
        })
    }

    /// Assumes `role_arn` for `caller` (only users its trust policy lists).
    pub fn assume_role(
        &self,
        caller: &Principal,
        role_arn: &str,
        session_name: &str,
        duration: Duration,
        now: SystemTime,
    ) -> Result<TemporaryCredentials, AssumeRoleRefusal> {
        let valid_session = (2..=64).contains(&session_name.len())
            && session_name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "+=,.@-_".contains(c));
        if !valid_session {
            return Err(AssumeRoleRefusal::Validation(
                "RoleSessionName must be 2 to 64 characters of [\\w+=,.@-]".into(),
            ));
        }
        let denied = || {
            AssumeRoleRefusal::AccessDenied(format!(
                "User: {} is not authorized to perform: sts:AssumeRole on resource: {role_arn}",
                caller.arn
            ))
        };
        let role = self
            .roles
            .iter()
            .find(|r| r.arn == role_arn)
            .ok_or_else(denied)?;
        if !role.trusted_access_key_ids.contains(&caller.access_key_id) {
            return Err(denied());
        }
        let role_name = role_arn.rsplit('/').next().unwrap_or(role_arn);
        let creds = TemporaryCredentials {
            access_key_id: format!("ASIA{}", base32ish(&random::<10>())),
            secret_access_key: STANDARD.encode(random::<30>()),
            session_token: STANDARD.encode(random::<96>()),
            expiration: now + duration,
            arn: format!(
                "arn:aws:sts::{}:assumed-role/{role_name}/{session_name}",
                self.account_id
            ),
            assumed_role_id: format!("AROA{}:{session_name}", short_id(role_arn)),
        };
        if let Ok(mut s) = self.sessions.lock() {
            s.retain(|_, c| c.expiration > now);
            s.insert(creds.access_key_id.clone(), creds.clone());
        }
        Ok(creds)
    }
}

/// 16 upper-case base32 characters of `bytes`.
fn base32ish(bytes: &[u8]) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut out = String::new();
    let mut acc: u32 = 0;
    let mut bits = 0;
    for b in bytes {
        acc = (acc << 8) | u32::from(*b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(char::from(ALPHABET[((acc >> bits) & 31) as usize]));
        }
    }
    out.truncate(16);
    out
}

/// A stable 16-character id derived from `seed`.
fn short_id(seed: &str) -> String {
    use sha2::{Digest, Sha256};
    base32ish(&Sha256::digest(seed.as_bytes()))
}

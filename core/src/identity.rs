//! Management-plane identities (the admin API's users and tokens; "auth" in this tree
//! means XKS request authentication only): users with argon2-hashed passwords, expiring session
//! tokens and revocable API tokens, the built-in groups, and per-account ACLs.
//!
//! Authorization is a pure function ([`authorize`]) over a user's groups and an
//! account's ACL: members of `admins` may do everything; members of `users` may act
//! on an AWS account's key stores only as far as that account's ACL grants them.

use std::collections::BTreeSet;

use argon2::{
    Argon2,
    password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString, rand_core::OsRng},
};
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD as B64URL};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use utoipa::ToSchema;
use zeroize::Zeroizing;

/// The built-in group that may do everything (holds the root admin).
pub const ADMINS: &str = "admins";
/// The built-in group whose members act only as far as account ACLs grant.
pub const USERS: &str = "users";

/// What an ACL can grant on an AWS account's key stores and keys.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Permission {
    /// See stores, keys and credentials metadata.
    View,
    /// Create key stores.
    CreateStore,
    /// Update key stores (name, location, settings).
    UpdateStore,
    /// Delete key stores.
    DeleteStore,
    /// Add and delete credentials (rotation).
    ManageCredentials,
    /// Block and unblock stores and keys.
    Block,
    /// Create and delete HYOK keys and source keys.
    ManageKeys,
}

impl Permission {
    /// Every permission.
    pub const ALL: [Permission; 7] = [
        Permission::View,
        Permission::CreateStore,
        Permission::UpdateStore,
        Permission::DeleteStore,
        Permission::ManageCredentials,
        Permission::Block,
        Permission::ManageKeys,
    ];

    /// The permission's name, as in ACLs and error messages.
    pub fn as_str(self) -> &'static str {
        match self {
            Permission::View => "view",
            Permission::CreateStore => "create_store",
            Permission::UpdateStore => "update_store",
            Permission::DeleteStore => "delete_store",
            Permission::ManageCredentials => "manage_credentials",
            Permission::Block => "block",
            Permission::ManageKeys => "manage_keys",
        }
    }
}

/// One ACL entry: a user (`user:<name>`) or group (`group:<name>`) and what it may do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AclEntry {
    /// `user:<name>` or `group:<name>`.
    pub principal: String,
    /// Granted permissions.
    pub permissions: BTreeSet<Permission>,
}

/// Why a request is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AccessError {
    /// No credentials, or wrong ones (401).
    #[error("authentication failed: {0}")]
    Unauthenticated(&'static str),
    /// Authenticated, not allowed (403); names the missing permission.
    #[error("user '{user}' lacks permission '{}' on account '{account}'", permission.as_str())]
    Forbidden {
        /// The user.
        user: String,
        /// The account.
        account: String,
        /// The missing permission.
        permission: Permission,
    },
    /// Only admins may do this (403).
    #[error("user '{user}' is not in the admins group: only admins may {action}")]
    AdminOnly {
        /// The user.
        user: String,
        /// What was attempted.
        action: String,
    },
}

impl AccessError {
    /// Stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            AccessError::Unauthenticated(_) => "unauthenticated",
            AccessError::Forbidden { .. } => "forbidden",
            AccessError::AdminOnly { .. } => "admin_only",
        }
    }

    /// HTTP status.
    pub fn http_status(&self) -> u16 {
        match self {
            AccessError::Unauthenticated(_) => 401,
            _ => 403,
        }
    }
}

/// Who is asking.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// User name.
    pub user: String,
    /// Groups the user is in.
    pub groups: BTreeSet<String>,
}

impl Principal {
    /// Whether the user is an admin.
    pub fn is_admin(&self) -> bool {
        self.groups.contains(ADMINS)
    }
}

/// Admins may do everything; others need `permission` granted by `acl` to them or to
/// one of their groups.
pub fn authorize(
    who: &Principal,
    account: &str,
    acl: &[AclEntry],
    permission: Permission,
) -> Result<(), AccessError> {
    if who.is_admin() {
        return Ok(());
    }
    let granted = acl.iter().any(|e| {
        let applies = match e.principal.split_once(':') {
            Some(("user", name)) => name == who.user,
            Some(("group", name)) => who.groups.contains(name),
            _ => false,
        };
        applies && e.permissions.contains(&permission)
    });
    if granted {
        Ok(())
    } else {
        Err(AccessError::Forbidden {
            user: who.user.clone(),
            account: account.to_string(),
            permission,
        })
    }
}

/// Only admins.
pub fn require_admin(who: &Principal, action: impl Into<String>) -> Result<(), AccessError> {
    if who.is_admin() {
        Ok(())
    } else {
        Err(AccessError::AdminOnly {
            user: who.user.clone(),
            action: action.into(),
        })
    }
}

/// A user as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserRecord {
    /// Unique name.
    pub name: String,
    /// Groups (`admins`, `users`).
    pub groups: BTreeSet<String>,
    /// argon2id PHC string.
    pub password_hash: String,
    /// Creation time, Unix seconds.
    pub created_at: i64,
    /// The user's generation: tokens carry the generation they were issued under and
    /// are refused once it changes. Set from the store revision when the user is
    /// created and when the password changes, so it only grows, also across a delete
    /// and re-create of the same name. Records from before it existed read as 0.
    #[serde(default)]
    pub generation: u64,
}

/// The longest user name accepted anywhere (login, create user).
pub const MAX_USER_NAME: usize = 64;

/// Whether `name` is a valid user name: 1 to [`MAX_USER_NAME`] letters, digits, `.`,
/// `_`, `@` and `-`.
pub fn valid_user_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_USER_NAME
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._@-".contains(&b))
}

/// A user name as it may appear in an audit record or a log line: valid names as they
/// are, anything else escaped and cut to [`MAX_USER_NAME`] characters (with `...`).
pub fn audit_user_name(name: &str) -> String {
    if valid_user_name(name) {
        return name.to_string();
    }
    let mut out: String = name.escape_debug().take(MAX_USER_NAME).collect();
    if name.escape_debug().nth(MAX_USER_NAME).is_some() {
        out.push_str("...");
    }
    out
}

/// Hashes a password with argon2id and a random salt.
pub fn hash_password(password: &str) -> Result<String, String> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| e.to_string())
}

/// Checks a password against a stored hash.
pub fn verify_password(password: &str, hash: &str) -> bool {
    PasswordHash::new(hash)
        .map(|parsed| {
            Argon2::default()
                .verify_password(password.as_bytes(), &parsed)
                .is_ok()
        })
        .unwrap_or(false)
}

/// Kind of bearer token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TokenKind {
    /// From a login; expires.
    Session,
    /// For automation; lives until revoked (or its optional expiry).
    Api,
}

/// A token as stored: only a hash of its secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenRecord {
    /// Public id (part of the token).
    pub id: String,
    /// Owner.
    pub user: String,
    /// Session or API token.
    pub kind: TokenKind,
    /// Hex SHA-256 of the secret part.
    pub secret_sha256: String,
    /// Expiry, Unix seconds.
    pub expires_at: Option<i64>,
    /// Creation time, Unix seconds.
    pub created_at: i64,
    /// Free text for API tokens.
    #[serde(default)]
    pub description: String,
    /// The owner's [`UserRecord::generation`] when the token was issued (0 for records
    /// from before it existed): a token of another generation is refused.
    #[serde(default)]
    pub user_generation: u64,
}

/// A freshly issued token: the record to store and the bearer string (shown once).
pub struct IssuedToken {
    /// What to store.
    pub record: TokenRecord,
    /// `kh_<id>.<secret>`: what the client sends as `Authorization: Bearer ...`.
    pub bearer: Zeroizing<String>,
}

impl std::fmt::Debug for IssuedToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IssuedToken")
            .field("record", &self.record)
            .field("bearer", &"<redacted>")
            .finish()
    }
}

fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

/// Issues a token for `user` (of generation `user_generation`), valid until `expires_at` (Unix seconds) when given.
pub fn issue_token(
    user: &str,
    user_generation: u64,
    kind: TokenKind,
    expires_at: Option<i64>,
    description: &str,
) -> IssuedToken {
    let mut id = [0u8; 9];
    crate::secrets::fill_random(&mut id);
    let mut secret = Zeroizing::new([0u8; 32]);
    crate::secrets::fill_random(secret.as_mut());
    let id = B64URL.encode(id);
    let secret_text = Zeroizing::new(B64URL.encode(secret.as_ref()));
    IssuedToken {
        record: TokenRecord {
            id: id.clone(),
            user: user.to_string(),
            kind,
            secret_sha256: sha256_hex(secret_text.as_bytes()),
            expires_at,
            created_at: crate::model::now_unix(),
            description: description.to_string(),
            user_generation,
        },
        bearer: Zeroizing::new(format!("kh_{id}.{}", secret_text.as_str())),
    }
}

/// Splits a bearer string into (token id, secret).
pub fn parse_bearer(bearer: &str) -> Result<(&str, &str), AccessError> {
    bearer
        .strip_prefix("kh_")
        .and_then(|rest| rest.split_once('.'))
        .filter(|(id, secret)| !id.is_empty() && !secret.is_empty())
        .ok_or(AccessError::Unauthenticated("malformed bearer token"))
}

/// Checks a presented secret against its record at time `now` (Unix seconds).
pub fn check_token(record: &TokenRecord, secret: &str, now: i64) -> Result<(), AccessError> {
    let presented = sha256_hex(secret.as_bytes());
    if !bool::from(presented.as_bytes().ct_eq(record.secret_sha256.as_bytes())) {
        return Err(AccessError::Unauthenticated("invalid token"));
    }
    if record.expires_at.is_some_and(|t| now >= t) {
        return Err(AccessError::Unauthenticated("token expired: log in again"));
    }
    Ok(())
}

/// Store keys of management objects.
pub mod keys {
    crate::store_collection! {
        /// A user.
        fn user, const USERS = "users/";
    }
    crate::store_collection! {
        /// A token.
        fn token, const TOKENS = "tokens/";
    }
}

#[cfg(test)]
mod tests;

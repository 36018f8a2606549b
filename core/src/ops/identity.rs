//! Users, bearer tokens and AWS accounts (with their ACLs): the identities and grants
//! the admin API authenticates and authorizes with.

use std::collections::BTreeSet;

use zeroize::Zeroizing;

use super::{AccountUpdate, OpError, Operations, Versioned, decode, to_json};
use crate::{
    identity::{
        self, ADMINS, AccessError, AclEntry, IssuedToken, Principal, TokenKind, TokenRecord, USERS,
        UserRecord,
    },
    model::{self, AccountRecord, keys, rules::RuleViolation},
    store::{Condition, StoreError, Write},
};

/// The root admin's name.
pub const ROOT_USER: &str = "root";

/// What [`Operations::ensure_root`] did on a first start.
pub struct RootBootstrap {
    /// The password, when it was generated (to be shown once); `None` when it came
    /// from the configured environment variable.
    pub generated_password: Option<Zeroizing<String>>,
}

/// Refuses a user name that is not 1 to 64 letters, digits, `.`, `_`, `@` and `-`
/// (the message quotes at most a cut, escaped prefix of it).
pub(crate) fn validate_user_name(name: &str) -> Result<(), OpError> {
    if identity::valid_user_name(name) {
        Ok(())
    } else {
        Err(OpError::Input(format!(
            "invalid user name '{}': 1 to {} characters of letters, digits, '.', '_', '@' and '-'",
            identity::audit_user_name(name),
            identity::MAX_USER_NAME,
        )))
    }
}

fn validate_password(password: &str) -> Result<(), OpError> {
    let n = password.chars().count();
    if !(8..=1024).contains(&n) {
        return Err(OpError::Input(
            "a password must be 8 to 1024 characters long".into(),
        ));
    }
    Ok(())
}

fn validate_groups(groups: &BTreeSet<String>) -> Result<(), OpError> {
    if groups.is_empty() {
        return Err(OpError::Input(format!(
            "a user needs a group: '{ADMINS}' or '{USERS}'"
        )));
    }
    if let Some(bad) = groups.iter().find(|g| *g != ADMINS && *g != USERS) {
        return Err(OpError::Input(format!(
            "unknown group '{bad}': the groups are '{ADMINS}' and '{USERS}'"
        )));
    }
    Ok(())
}

fn validate_acl(acl: &[AclEntry]) -> Result<(), OpError> {
    for e in acl {
        let ok = match e.principal.split_once(':') {
            Some(("user", n)) | Some(("group", n)) => !n.is_empty(),
            _ => false,
        };
        if !ok {
            return Err(OpError::Input(format!(
                "invalid ACL principal '{}': use 'user:<name>' or 'group:<name>'",
                e.principal
            )));
        }
    }
    Ok(())
}

fn validate_regions(regions: &[String]) -> Result<(), OpError> {
    for r in regions {
        model::validate_region(r)?;
    }
    Ok(())
}

fn hash(password: &str) -> Result<String, OpError> {
    identity::hash_password(password)
        .map_err(|e| OpError::Input(format!("password cannot be hashed: {e}")))
}

/// A valid argon2id hash of a password nobody knows, checked against when the user does
/// not exist so that a login takes as long either way.
fn dummy_hash() -> &'static str {
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DUMMY.get_or_init(|| identity::hash_password("keyhold-no-such-user").unwrap_or_default())
}

fn unauthenticated(reason: &'static str) -> OpError {
    OpError::Access(AccessError::Unauthenticated(reason))
}

impl Operations {
    // ----- users -----

    /// Whether this is a first start: no user exists yet, so [`Self::ensure_root`]
    /// would create `root`.
    pub fn needs_root(&self) -> Result<bool, OpError> {
        Ok(self.store.scan(identity::keys::USERS)?.is_empty())
    }

    /// On a first start (no user at all), creates `root` in `admins` with `password`,
    /// or with a generated one that is returned to be shown once. `None` when users
    /// exist already.
    pub fn ensure_root(
        &self,
        password: Option<Zeroizing<String>>,
    ) -> Result<Option<RootBootstrap>, OpError> {
        if !self.needs_root()? {
            return Ok(None);
        }
        let (password, generated) = match password {
            Some(p) => (p, false),
            None => (generate_root_password(), true),
        };
        validate_password(&password)?;
        let record = UserRecord {
            name: ROOT_USER.into(),
            groups: [ADMINS.to_string()].into_iter().collect(),
            password_hash: hash(&password)?,
            created_at: model::now_unix(),
            generation: self.next_generation()?,
        };
        match self.store.commit(
            &[Condition::Absent(identity::keys::user(ROOT_USER))],
            vec![Write::Put(
                identity::keys::user(ROOT_USER),
                to_json(&record),
            )],
        ) {
            Ok(_) => Ok(Some(RootBootstrap {
                generated_password: generated.then_some(password),
            })),
            // Another node created it first.
            Err(StoreError::Conflict { .. }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Creates a user.
    pub fn create_user(
        &self,
        name: &str,
        password: &str,
        groups: BTreeSet<String>,
    ) -> Result<UserRecord, OpError> {
        validate_user_name(name)?;
        validate_password(password)?;
        validate_groups(&groups)?;
        let record = UserRecord {
            name: name.to_string(),
            groups,
            password_hash: hash(password)?,
            created_at: model::now_unix(),
            generation: self.next_generation()?,
        };
        self.create_entry(identity::keys::user(name), to_json(&record), "user", name)?;
        Ok(record)
    }

    /// One user.
    pub fn get_user(&self, name: &str) -> Result<UserRecord, OpError> {
        let entry = self.entry(&identity::keys::user(name), "user", name)?;
        decode(&entry)
    }

    /// Every user, by name.
    pub fn list_users(&self) -> Result<Vec<UserRecord>, OpError> {
        self.decode_all(identity::keys::USERS)
    }

    /// Deletes a user and every token of theirs; the last admin cannot be deleted.
    pub fn delete_user(&self, name: &str) -> Result<(), OpError> {
        let entry = self.entry(&identity::keys::user(name), "user", name)?;
        let user: UserRecord = decode(&entry)?;
        let mut conditions = vec![Condition::Revision(entry.key.clone(), entry.revision)];
        if user.groups.contains(ADMINS) {
            let other_admins: Vec<_> = self
                .list_users()?
                .into_iter()
                .filter(|u| u.name != name && u.groups.contains(ADMINS))
                .collect();
            let Some(other) = other_admins.first() else {
                return Err(OpError::Rule(RuleViolation {
                    code: "last_admin",
                    message: format!(
                        "user '{name}' is the last member of '{ADMINS}': add another admin first"
                    ),
                }));
            };
            conditions.push(Condition::Exists(identity::keys::user(&other.name)));
        }
        let mut writes = vec![Write::Delete(entry.key)];
        for t in self.tokens_of(name)? {
            writes.push(Write::Delete(identity::keys::token(&t.id)));
        }
        match self.store.commit(&conditions, writes) {
            Ok(_) => Ok(()),
            Err(StoreError::Conflict { .. }) => Err(OpError::VersionMismatch {
                what: "user",
                id: name.to_string(),
                expected: 0,
                actual: 0,
            }),
            Err(e) => Err(e.into()),
        }
    }

    /// A user generation newer than any given so far: one past the store's revision
    /// (every earlier generation was read from an earlier revision and committed).
    fn next_generation(&self) -> Result<u64, OpError> {
        Ok(self.store.revision()?.saturating_add(1))
    }

    /// Sets a user's password and revokes every token of theirs but `keep` (the token
    /// of a user changing their own password: their current session survives, as in
    /// the AWS console). The user's generation moves on, so a token issued before,
    /// even one written concurrently, is refused from now on; `keep` is carried over.
    pub fn set_password(
        &self,
        name: &str,
        password: &str,
        keep: Option<&str>,
    ) -> Result<(), OpError> {
        validate_password(password)?;
        let entry = self.entry(&identity::keys::user(name), "user", name)?;
        let mut user: UserRecord = decode(&entry)?;
        user.password_hash = hash(password)?;
        user.generation = self
            .next_generation()?
            .max(user.generation.saturating_add(1));
        let mut conditions = vec![Condition::Revision(entry.key.clone(), entry.revision)];
        let mut writes = vec![Write::Put(entry.key, to_json(&user))];
        for mut t in self.tokens_of(name)? {
            let key = identity::keys::token(&t.id);
            if keep == Some(t.id.as_str()) {
                t.user_generation = user.generation;
                conditions.push(Condition::Exists(key.clone()));
                writes.push(Write::Put(key, to_json(&t)));
            } else {
                writes.push(Write::Delete(key));
            }
        }
        self.commit_read(&conditions, writes, "user", name, entry.revision)
    }

    /// Checks a user's password (false for unknown users, in about the same time).
    pub fn check_password(&self, name: &str, password: &str) -> Result<bool, OpError> {
        Ok(self.check_password_generation(name, password)?.is_some())
    }

    /// The user's generation when `password` is theirs; `None` for a wrong password or
    /// an unknown user (in about the same time).
    fn check_password_generation(
        &self,
        name: &str,
        password: &str,
    ) -> Result<Option<u64>, OpError> {
        match self.store.get(&identity::keys::user(name))? {
            Some(entry) => {
                let user: UserRecord = decode(&entry)?;
                Ok(identity::verify_password(password, &user.password_hash)
                    .then_some(user.generation))
            }
            None => {
                let _ = identity::verify_password(password, dummy_hash());
                Ok(None)
            }
        }
    }

    // ----- tokens -----

    fn put_token(&self, issued: &IssuedToken) -> Result<(), OpError> {
        let key = identity::keys::token(&issued.record.id);
        self.store.commit(
            &[
                Condition::Absent(key.clone()),
                Condition::Exists(identity::keys::user(&issued.record.user)),
            ],
            vec![Write::Put(key, to_json(&issued.record))],
        )?;
        Ok(())
    }

    /// Logs a user in: a session token valid for `ttl_seconds`. Wrong user or
    /// password: 401 without saying which.
    pub fn login(
        &self,
        user: &str,
        password: &str,
        ttl_seconds: u64,
    ) -> Result<IssuedToken, OpError> {
        let Some(generation) = self.check_password_generation(user, password)? else {
            return Err(unauthenticated("invalid user name or password"));
        };
        // Expired sessions go first: purged after the new one was stored, a slow
        // machine could already count the new one (1 s TTL) as expired.
        self.purge_expired_tokens(user)?;
        let ttl = i64::try_from(ttl_seconds).unwrap_or(i64::MAX / 2);
        let expires = model::now_unix().saturating_add(ttl);
        let issued = identity::issue_token(
            user,
            generation,
            TokenKind::Session,
            Some(expires),
            "login session",
        );
        self.put_token(&issued)?;
        Ok(issued)
    }

    /// Issues an API token for `user`.
    pub fn issue_api_token(
        &self,
        user: &str,
        expires_at: Option<i64>,
        description: &str,
    ) -> Result<IssuedToken, OpError> {
        if expires_at.is_some_and(|t| t <= model::now_unix()) {
            return Err(OpError::Input("expires_at must be in the future".into()));
        }
        if description.chars().count() > 256 {
            return Err(OpError::Input(
                "description must be at most 256 characters".into(),
            ));
        }
        let generation = self.get_user(user)?.generation;
        let issued =
            identity::issue_token(user, generation, TokenKind::Api, expires_at, description);
        self.put_token(&issued)?;
        Ok(issued)
    }

    /// Who presents `bearer`, and the token's record.
    pub fn authenticate(&self, bearer: &str) -> Result<(Principal, TokenRecord), OpError> {
        let (id, secret) = identity::parse_bearer(bearer)?;
        let entry = self
            .store
            .get(&identity::keys::token(id))?
            .ok_or_else(|| unauthenticated("unknown or revoked token"))?;
        let record: TokenRecord = decode(&entry)?;
        identity::check_token(&record, secret, model::now_unix())?;
        let user = match self.store.get(&identity::keys::user(&record.user))? {
            Some(e) => decode::<UserRecord>(&e)?,
            None => return Err(unauthenticated("the token's user no longer exists")),
        };
        if user.generation != record.user_generation {
            return Err(unauthenticated(
                "token revoked: the user's password changed or the user was re-created",
            ));
        }
        Ok((
            Principal {
                user: user.name,
                groups: user.groups,
            },
            record,
        ))
    }

    fn tokens_of(&self, user: &str) -> Result<Vec<TokenRecord>, OpError> {
        let all: Vec<TokenRecord> = self
            .store
            .scan(identity::keys::TOKENS)?
            .iter()
            .map(decode)
            .collect::<Result<_, _>>()?;
        Ok(all.into_iter().filter(|t| t.user == user).collect())
    }

    fn purge_expired_tokens(&self, user: &str) -> Result<(), OpError> {
        let now = model::now_unix();
        let writes: Vec<Write> = self
            .tokens_of(user)?
            .into_iter()
            .filter(|t| t.expires_at.is_some_and(|e| e <= now))
            .map(|t| Write::Delete(identity::keys::token(&t.id)))
            .collect();
        // Independent deletions: in commits the backend takes (etcd: 125 writes).
        let chunk = self.store.commit_limits().map_or(usize::MAX, |l| l.writes);
        let mut writes = writes.into_iter().peekable();
        while writes.peek().is_some() {
            self.store
                .commit(&[], writes.by_ref().take(chunk).collect())?;
        }
        Ok(())
    }

    /// A user's tokens (records only: secrets are never stored).
    pub fn list_tokens(&self, user: &str) -> Result<Vec<TokenRecord>, OpError> {
        let mut out = self.tokens_of(user)?;
        out.sort_by_key(|t| t.created_at);
        Ok(out)
    }

    /// Revokes a token: the caller's own, or anyone's for admins. Someone else's
    /// token looks absent to a non-admin.
    pub fn revoke_token(&self, id: &str, who: &Principal) -> Result<TokenRecord, OpError> {
        let not_found = || OpError::NotFound {
            what: "token",
            id: id.to_string(),
        };
        let entry = self
            .store
            .get(&identity::keys::token(id))?
            .ok_or_else(not_found)?;
        let record: TokenRecord = decode(&entry)?;
        if record.user != who.user && !who.is_admin() {
            return Err(not_found());
        }
        if !self.store.delete(&entry.key)? {
            return Err(not_found());
        }
        Ok(record)
    }

    // ----- AWS accounts -----

    /// Creates an AWS account.
    pub fn create_account(
        &self,
        id: &str,
        name: &str,
        regions: Vec<String>,
        acl: Vec<AclEntry>,
    ) -> Result<AccountRecord, OpError> {
        self.create_account_with(id, name, regions, acl, None)
    }

    /// Creates an AWS account that uses AWS connection `aws_connection` (which must
    /// exist; it cannot be deleted while the account uses it).
    pub fn create_account_with(
        &self,
        id: &str,
        name: &str,
        regions: Vec<String>,
        acl: Vec<AclEntry>,
        aws_connection: Option<String>,
    ) -> Result<AccountRecord, OpError> {
        model::validate_account_id(id)?;
        model::validate_name("account", name)?;
        validate_regions(&regions)?;
        validate_acl(&acl)?;
        let record = AccountRecord {
            id: id.to_string(),
            name: name.to_string(),
            regions,
            acl,
            created_at: model::now_unix(),
            aws_connection,
        };
        let mut conditions = vec![Condition::Absent(keys::account(id))];
        let mut writes = vec![Write::Put(keys::account(id), to_json(&record))];
        if let Some((c, w)) = super::connections::check_account_connection(self, &record)? {
            conditions.push(c);
            writes.push(w);
        }
        match self.store.commit(&conditions, writes) {
            Ok(_) => Ok(record),
            Err(StoreError::Conflict { key }) if key.starts_with("connections/") => {
                Err(OpError::VersionMismatch {
                    what: "AWS connection",
                    id: record.aws_connection.unwrap_or_default(),
                    expected: 0,
                    actual: 0,
                })
            }
            Err(StoreError::Conflict { .. }) => Err(OpError::AlreadyExists {
                what: "AWS account",
                id: id.to_string(),
            }),
            Err(e) => Err(e.into()),
        }
    }

    /// One AWS account.
    pub fn get_account(&self, id: &str) -> Result<AccountRecord, OpError> {
        let entry = self.entry(&keys::account(id), "AWS account", id)?;
        decode(&entry)
    }

    /// Every AWS account.
    pub fn list_accounts(&self) -> Result<Vec<AccountRecord>, OpError> {
        self.decode_all(keys::ACCOUNTS)
    }

    /// Changes an AWS account's name, regions or ACL.
    pub fn update_account(
        &self,
        id: &str,
        update: AccountUpdate,
    ) -> Result<AccountRecord, OpError> {
        self.update_account_if_changed(id, update).map(|(a, _)| a)
    }

    /// [`Operations::update_account`], and whether anything changed (nothing is written
    /// when nothing would change).
    pub fn update_account_if_changed(
        &self,
        id: &str,
        update: AccountUpdate,
    ) -> Result<(AccountRecord, bool), OpError> {
        self.update_account_at(id, update, None)
            .map(|(a, changed)| (a.value, changed))
    }

    /// An AWS account with its version (the `ETag` of the admin API).
    pub fn get_account_versioned(&self, id: &str) -> Result<Versioned<AccountRecord>, OpError> {
        let entry = self.entry(&keys::account(id), "AWS account", id)?;
        Ok(Versioned {
            value: decode(&entry)?,
            version: entry.revision,
        })
    }

    /// [`Operations::update_account_if_changed`] of the account at version `expected`
    /// (when given: `VersionMismatch` once it changed meanwhile); the account with its
    /// version after the change.
    pub fn update_account_at(
        &self,
        id: &str,
        update: AccountUpdate,
        expected: Option<u64>,
    ) -> Result<(Versioned<AccountRecord>, bool), OpError> {
        let entry = self.entry(&keys::account(id), "AWS account", id)?;
        if let Some(v) = expected.filter(|v| *v != entry.revision) {
            return Err(OpError::VersionMismatch {
                what: "AWS account",
                id: id.to_string(),
                expected: v,
                actual: entry.revision,
            });
        }
        let mut record: AccountRecord = decode(&entry)?;
        let current = record.clone();
        if let Some(name) = update.name {
            model::validate_name("account", &name)?;
            record.name = name;
        }
        if let Some(regions) = update.regions {
            validate_regions(&regions)?;
            record.regions = regions;
        }
        if let Some(acl) = update.acl {
            validate_acl(&acl)?;
            record.acl = acl;
        }
        if let Some(conn) = update.aws_connection {
            record.aws_connection = (!conn.is_empty()).then_some(conn);
        }
        let unchanged = Versioned {
            value: record.clone(),
            version: entry.revision,
        };
        if record == current {
            return Ok((unchanged, false));
        }
        let mut conditions = vec![Condition::Revision(entry.key.clone(), entry.revision)];
        let mut writes = vec![Write::Put(entry.key, to_json(&record))];
        if let Some((c, w)) = super::connections::check_account_connection(self, &record)? {
            conditions.push(c);
            writes.push(w);
        }
        self.commit_read(&conditions, writes, "AWS account", id, entry.revision)?;
        // The version written (the record's new revision).
        let version = self.get_account_versioned(id)?.version;
        Ok((
            Versioned {
                value: record,
                version,
            },
            true,
        ))
    }

    /// Deletes an AWS account; refused while key stores belong to it.
    pub fn delete_account(&self, id: &str) -> Result<(), OpError> {
        self.get_account(id)?;
        let using = self
            .store_accounts()?
            .values()
            .filter(|a| a.as_str() == id)
            .count();
        if using > 0 {
            return Err(OpError::Rule(RuleViolation {
                code: "account_in_use",
                message: format!(
                    "AWS account '{id}' still has {using} key store{}: delete them first",
                    if using == 1 { "" } else { "s" }
                ),
            }));
        }
        if !self.store.delete(&keys::account(id))? {
            return Err(OpError::NotFound {
                what: "AWS account",
                id: id.to_string(),
            });
        }
        Ok(())
    }
}

/// A generated `root` password: 24 random bytes, base64url (32 characters).
pub fn generate_root_password() -> Zeroizing<String> {
    let mut bytes = Zeroizing::new([0u8; 24]);
    crate::secrets::fill_random(bytes.as_mut());
    use base64::Engine;
    Zeroizing::new(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes.as_ref()))
}

//! Per-account authorization of store operations (run on the blocking pool, inside
//! the operation): admins may do everything, others what the account's ACL grants.

use crate::{
    identity::{self, AccessError, Permission, Principal},
    model::StoreRecord,
    ops::{OpError, Operations, Versioned},
};

/// Admins may do everything; others need `permission` from the account's ACL. A store
/// without an account is for admins only.
pub(super) fn authorize_account(
    ops: &Operations,
    who: &Principal,
    account: Option<&str>,
    permission: Permission,
) -> Result<(), OpError> {
    if who.is_admin() {
        return Ok(());
    }
    match account {
        None => Err(AccessError::Forbidden {
            user: who.user.clone(),
            account: "(none: admins only)".into(),
            permission,
        }
        .into()),
        Some(id) => {
            let acc = ops.get_account(id)?;
            Ok(identity::authorize(who, id, &acc.acl, permission)?)
        }
    }
}

/// The store `store_id`, once `who` may act on it with `permission`.
pub(super) fn authorize_store(
    ops: &Operations,
    who: &Principal,
    store_id: &str,
    permission: Permission,
) -> Result<Versioned<StoreRecord>, OpError> {
    let store = ops.get_store(store_id)?;
    let account = ops.store_account(store_id)?;
    authorize_account(ops, who, account.as_deref(), permission)?;
    Ok(store)
}

/// Whether `who` may see and use key source `source`: admins always; others when the
/// source backs at least one store of an account whose ACL grants them `view` (a store
/// without an account counts for admins only). Refused as 403 `forbidden`, naming the
/// source, never the stores or accounts built on it.
pub(super) fn authorize_source(
    ops: &Operations,
    who: &Principal,
    source: &str,
) -> Result<(), OpError> {
    if who.is_admin() {
        return Ok(());
    }
    let accounts = ops.store_accounts()?;
    for store in ops.list_stores()? {
        if store.value.source.as_str() != source {
            continue;
        }
        let Some(account) = accounts.get(&store.value.id) else {
            continue;
        };
        let acc = match ops.get_account(account) {
            Ok(acc) => acc,
            Err(OpError::NotFound { .. }) => continue,
            Err(e) => return Err(e),
        };
        if identity::authorize(who, account, &acc.acl, Permission::View).is_ok() {
            return Ok(());
        }
    }
    Err(AccessError::Forbidden {
        user: who.user.clone(),
        account: format!("(any account with a store on source '{source}')"),
        permission: Permission::View,
    }
    .into())
}

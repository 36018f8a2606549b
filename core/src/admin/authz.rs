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

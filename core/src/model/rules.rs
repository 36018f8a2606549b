//! The product's state rules (from the reference manual), as pure functions over
//! records: which operation a key store's state allows, and why not.

use super::{AwsLink, ConnectionState, StoreKind, StoreRecord};

mod keys;
pub use keys::{count_named, health_check_key_problems, hyok_key_problems};

/// A refused operation: a stable machine-readable code and a sentence naming the rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct RuleViolation {
    /// Stable code, e.g. `store_blocked`.
    pub code: &'static str,
    /// The rule, e.g. "store is blocked: unblock it first".
    pub message: String,
}

fn violation(code: &'static str, message: impl Into<String>) -> RuleViolation {
    RuleViolation {
        code,
        message: message.into(),
    }
}

/// The store must not be blocked.
pub fn ensure_unblocked(store: &StoreRecord) -> Result<(), RuleViolation> {
    if store.blocked {
        return Err(violation(
            "store_blocked",
            format!("key store '{}' is blocked: unblock it first", store.name),
        ));
    }
    Ok(())
}

/// Updates need an unblocked store and, when linked (and served here), a disconnected
/// one. A remote store's name and location are this product's labels only: they change
/// in any connection state.
pub fn ensure_updatable(store: &StoreRecord) -> Result<(), RuleViolation> {
    ensure_unblocked(store)?;
    if store.kind == StoreKind::Remote {
        return Ok(());
    }
    if let Some(AwsLink {
        connection_state, ..
    }) = &store.aws
    {
        if *connection_state != ConnectionState::Disconnected {
            return Err(violation(
                "store_not_disconnected",
                format!(
                    "key store '{}' is {}: disconnect it first",
                    store.name,
                    connection_state.as_str()
                ),
            ));
        }
    }
    Ok(())
}

/// Health-check key, max credentials, audit and mTLS settings exist only on local
/// stores.
pub fn ensure_local(store: &StoreRecord, what: &str) -> Result<(), RuleViolation> {
    if store.kind == StoreKind::Remote {
        return Err(violation(
            "remote_store",
            format!(
                "key store '{}' is a remote store (served elsewhere): its {what} cannot be changed here",
                store.name
            ),
        ));
    }
    Ok(())
}

/// Adding a credential needs an unblocked store and, when linked, a stable connection
/// state (`CONNECTED` or `DISCONNECTED`).
pub fn ensure_credential_addable(store: &StoreRecord) -> Result<(), RuleViolation> {
    ensure_unblocked(store)?;
    ensure_local(store, "credentials")?;
    if let Some(link) = &store.aws {
        if !matches!(
            link.connection_state,
            ConnectionState::Connected | ConnectionState::Disconnected
        ) {
            return Err(violation(
                "store_transient_state",
                format!(
                    "key store '{}' is {}: wait until it is CONNECTED or DISCONNECTED",
                    store.name,
                    link.connection_state.as_str()
                ),
            ));
        }
    }
    Ok(())
}

/// The end of a "no such key in this source" message naming the other sources that
/// hold a key of that name (`holders`), or "" when none does.
pub fn held_elsewhere(holders: &[String]) -> String {
    match holders {
        [] => String::new(),
        [one] => format!(
            "; key source '{one}' holds a key of that name, but a store's keys must come from the store's own source"
        ),
        many => format!(
            "; key sources {} hold a key of that name, but a store's keys must come from the store's own source",
            many.iter()
                .map(|s| format!("'{s}'"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// A key store's health-check key never backs a HYOK key: its material serves only the
/// health checks of the stores that name it.
pub fn source_key_is_health_check_key(source: &str, key: &str) -> RuleViolation {
    violation(
        "source_key_is_health_check_key",
        format!(
            "source key '{key}' of source '{source}' is a key store's health-check key: a health-check key cannot back a HYOK key"
        ),
    )
}

/// A source key that backs a HYOK key is no store's health-check key.
pub fn health_check_key_backs_a_hyok_key(source: &str, key: &str) -> RuleViolation {
    violation(
        "health_check_key_in_use",
        format!(
            "source key '{key}' of source '{source}' backs a HYOK key: a health-check key must be a key of its own"
        ),
    )
}

/// A source key whose name is shared by `count` keys of its source: which one a
/// request meant cannot be told.
pub fn source_key_duplicate(source: &str, key: &str, count: usize) -> RuleViolation {
    violation(
        "source_key_duplicate",
        format!(
            "key source '{source}' holds {count} keys labelled '{key}': a label must name one key; \
             delete or relabel the duplicates in the key manager, or use another key"
        ),
    )
}

/// A store's key source and container never change.
pub fn ensure_same_source(
    store: &StoreRecord,
    source: Option<&str>,
    container: Option<&str>,
) -> Result<(), RuleViolation> {
    if let Some(s) = source {
        if s != store.source {
            return Err(violation(
                "source_immutable",
                format!(
                    "source is immutable: key store '{}' is bound to key source '{}' forever",
                    store.name, store.source
                ),
            ));
        }
    }
    if let Some(c) = container {
        if Some(c) != store.container.as_deref() {
            return Err(violation(
                "source_immutable",
                format!(
                    "source is immutable: key store '{}' is bound to container '{}' forever",
                    store.name,
                    store.container.as_deref().unwrap_or("")
                ),
            ));
        }
    }
    Ok(())
}

/// Deleting a store is refused while it has HYOK keys, and must be confirmed.
pub fn ensure_deletable(
    store: &StoreRecord,
    hyok_keys: usize,
    confirmed: bool,
) -> Result<(), RuleViolation> {
    if hyok_keys > 0 {
        return Err(violation(
            "store_has_keys",
            format!(
                "key store '{}' still has {hyok_keys} HYOK key{}: delete the {hyok_keys} HYOK key{} first",
                store.name,
                if hyok_keys == 1 { "" } else { "s" },
                if hyok_keys == 1 { "" } else { "s" },
            ),
        ));
    }
    if !confirmed {
        return Err(violation(
            "confirmation_required",
            "deleting a key store is irreversible: confirm it explicitly",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> StoreRecord {
        StoreRecord {
            name: "acme".into(),
            ..StoreRecord::sample("s1", "acme")
        }
    }

    fn linked(state: ConnectionState) -> StoreRecord {
        StoreRecord {
            aws: Some(AwsLink::new("cks-1", state)),
            ..store()
        }
    }

    #[test]
    fn blocked_stores_refuse_updates_and_credentials() {
        let mut s = store();
        assert!(ensure_updatable(&s).is_ok());
        s.blocked = true;
        let e = ensure_updatable(&s).unwrap_err();
        assert_eq!(e.code, "store_blocked");
        assert!(e.message.contains("unblock it first"));
        assert_eq!(
            ensure_credential_addable(&s).unwrap_err().code,
            "store_blocked"
        );
    }

    #[test]
    fn linked_stores_must_be_disconnected_to_update() {
        assert!(ensure_updatable(&linked(ConnectionState::Disconnected)).is_ok());
        for state in [
            ConnectionState::Connected,
            ConnectionState::Connecting,
            ConnectionState::Disconnecting,
            ConnectionState::Failed,
        ] {
            let e = ensure_updatable(&linked(state)).unwrap_err();
            assert_eq!(e.code, "store_not_disconnected");
            assert!(e.message.contains(state.as_str()));
        }
    }

    #[test]
    fn credentials_need_a_stable_connection_state() {
        assert!(ensure_credential_addable(&store()).is_ok());
        assert!(ensure_credential_addable(&linked(ConnectionState::Connected)).is_ok());
        assert!(ensure_credential_addable(&linked(ConnectionState::Disconnected)).is_ok());
        for state in [
            ConnectionState::Connecting,
            ConnectionState::Disconnecting,
            ConnectionState::Failed,
        ] {
            assert_eq!(
                ensure_credential_addable(&linked(state)).unwrap_err().code,
                "store_transient_state"
            );
        }
    }

    #[test]
    fn remote_stores_are_renamed_in_any_connection_state() {
        let s = StoreRecord {
            kind: StoreKind::Remote,
            ..linked(ConnectionState::Connected)
        };
        assert!(ensure_updatable(&s).is_ok());
        assert_eq!(
            ensure_updatable(&linked(ConnectionState::Connected))
                .unwrap_err()
                .code,
            "store_not_disconnected"
        );
    }

    #[test]
    fn remote_stores_refuse_local_only_changes() {
        let s = StoreRecord {
            kind: StoreKind::Remote,
            ..store()
        };
        let e = ensure_local(&s, "health check key").unwrap_err();
        assert_eq!(e.code, "remote_store");
        assert!(e.message.contains("health check key"));
        assert!(ensure_local(&store(), "x").is_ok());
    }

    #[test]
    fn source_and_container_are_immutable() {
        let s = store();
        assert!(ensure_same_source(&s, Some("ctm"), None).is_ok());
        assert!(ensure_same_source(&s, None, None).is_ok());
        let e = ensure_same_source(&s, Some("luna-1"), None).unwrap_err();
        assert_eq!(e.code, "source_immutable");
        assert!(e.message.contains("source is immutable"));
        assert_eq!(
            ensure_same_source(&s, None, Some("partition-2"))
                .unwrap_err()
                .code,
            "source_immutable"
        );
    }

    #[test]
    fn delete_needs_no_keys_and_confirmation() {
        let s = store();
        let e = ensure_deletable(&s, 3, true).unwrap_err();
        assert_eq!(e.code, "store_has_keys");
        assert!(e.message.contains("delete the 3 HYOK keys first"), "{e}");
        assert!(
            ensure_deletable(&s, 1, true)
                .unwrap_err()
                .message
                .contains("1 HYOK key first")
        );
        assert_eq!(
            ensure_deletable(&s, 0, false).unwrap_err().code,
            "confirmation_required"
        );
        assert!(ensure_deletable(&s, 0, true).is_ok());
    }
}

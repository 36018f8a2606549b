//! The product's key rules for source keys, as pure functions over what a key source
//! reports ([`KeyInfo`]): which source keys may back a HYOK key or serve as a
//! health-check key, and why not.

use keyhold_sdk::{KeyInfo, KeyUsage};

/// A boolean attribute of `key` (`"true"`/`"false"`), when the source reports it.
fn flag(key: &KeyInfo, name: &str) -> Option<bool> {
    key.attributes
        .iter()
        .find(|a| a.name.as_str() == name)
        .and_then(|a| match a.value.as_str() {
            "true" => Some(true),
            "false" => Some(false),
            _ => None,
        })
}

/// What disqualifies `key` from backing a HYOK key, one sentence per failing
/// attribute (empty: it qualifies). A HYOK key's source key must never leave its
/// source (not exportable; `CKA_EXTRACTABLE` false), be sensitive and private where
/// the source has those attributes (PKCS#11 `CKA_SENSITIVE`, `CKA_PRIVATE`), and allow
/// both encrypt and decrypt. Attributes a source does not report are not judged.
pub fn hyok_key_problems(key: &KeyInfo) -> Vec<String> {
    let mut problems = Vec::new();
    let pkcs11 = flag(key, "CKA_EXTRACTABLE").is_some();
    if key.exportable || flag(key, "CKA_EXTRACTABLE") == Some(true) {
        problems.push(if pkcs11 {
            "CKA_EXTRACTABLE must be false".to_string()
        } else {
            "the key must not be exportable".to_string()
        });
    }
    for name in ["CKA_SENSITIVE", "CKA_PRIVATE"] {
        if flag(key, name) == Some(false) {
            problems.push(format!("{name} must be true"));
        }
    }
    for (usage, attr, word) in [
        (KeyUsage::ENCRYPT, "CKA_ENCRYPT", "encrypt"),
        (KeyUsage::DECRYPT, "CKA_DECRYPT", "decrypt"),
    ] {
        let allowed = key.usage.contains(usage) && flag(key, attr) != Some(false);
        if !allowed {
            problems.push(match flag(key, attr) {
                Some(_) => format!("{attr} must be true"),
                None => format!("the key must allow {word}"),
            });
        }
    }
    problems
}

/// What disqualifies `key` as a store's health-check key beyond what its source
/// checks: a key that can be deleted could take every store's health checks with it.
pub fn health_check_key_problems(key: &KeyInfo) -> Vec<String> {
    let mut problems = Vec::new();
    if key.deletable || flag(key, "CKA_DESTROYABLE") == Some(true) {
        problems.push(if flag(key, "CKA_DESTROYABLE").is_some() {
            "CKA_DESTROYABLE must be false (a health-check key must not be deletable)".to_string()
        } else {
            "the key must not be deletable".to_string()
        });
    }
    problems
}

/// How many of `keys` are named `name` (a source whose labels are not unique lists
/// each object: two or more means the name is ambiguous).
pub fn count_named(keys: &[KeyInfo], name: &str) -> usize {
    keys.iter().filter(|k| k.name.as_str() == name).count()
}

#[cfg(test)]
mod tests;

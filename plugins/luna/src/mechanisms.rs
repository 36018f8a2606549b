//! What the token must offer, checked when a source opens: `CKM_AES_KEY_GEN` (key
//! generation), `CKM_AES_GCM` with encrypt and decrypt, both for 256-bit keys; and
//! whether the module knows `CKA_DESTROYABLE` (PKCS#11 2.40).

use cryptoki::{
    context::Pkcs11,
    mechanism::{MechanismInfo, MechanismType},
    slot::Slot,
};

use crate::KEY_BYTES;

/// What a token says about one mechanism (`None` in [`problems`]: not offered).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Caps {
    /// `CKF_GENERATE`.
    pub generate: bool,
    /// `CKF_ENCRYPT`.
    pub encrypt: bool,
    /// `CKF_DECRYPT`.
    pub decrypt: bool,
    /// `ulMinKeySize`.
    pub min_key_size: usize,
    /// `ulMaxKeySize`.
    pub max_key_size: usize,
}

impl From<&MechanismInfo> for Caps {
    fn from(i: &MechanismInfo) -> Caps {
        Caps {
            generate: i.generate(),
            encrypt: i.encrypt(),
            decrypt: i.decrypt(),
            min_key_size: i.min_key_size(),
            max_key_size: i.max_key_size(),
        }
    }
}

/// Whether a 256-bit key is within the mechanism's key sizes. PKCS#11 gives AES key
/// sizes in bytes; some modules give bits: either reading is accepted.
fn fits_256(c: &Caps) -> bool {
    let within = |n: usize| c.min_key_size <= n && n <= c.max_key_size;
    within(KEY_BYTES as usize) || within(KEY_BYTES as usize * 8)
}

fn sizes(c: &Caps) -> String {
    format!("{}..{}", c.min_key_size, c.max_key_size)
}

/// Each missing mechanism, flag or key size, named (empty: the token has what
/// keyhold needs).
pub fn problems(keygen: Option<Caps>, gcm: Option<Caps>) -> Vec<String> {
    let mut out = Vec::new();
    match keygen {
        None => out.push("CKM_AES_KEY_GEN is not offered (AES key generation)".to_string()),
        Some(c) => {
            if !c.generate {
                out.push("CKM_AES_KEY_GEN lacks the CKF_GENERATE flag".to_string());
            }
            if !fits_256(&c) {
                out.push(format!(
                    "CKM_AES_KEY_GEN does not generate 256-bit keys (key sizes {})",
                    sizes(&c)
                ));
            }
        }
    }
    match gcm {
        None => out.push("CKM_AES_GCM is not offered (AES-GCM)".to_string()),
        Some(c) => {
            if !c.encrypt {
                out.push("CKM_AES_GCM lacks the CKF_ENCRYPT flag".to_string());
            }
            if !c.decrypt {
                out.push("CKM_AES_GCM lacks the CKF_DECRYPT flag".to_string());
            }
            if !fits_256(&c) {
                out.push(format!(
                    "CKM_AES_GCM does not take 256-bit keys (key sizes {})",
                    sizes(&c)
                ));
            }
        }
    }
    out
}

/// The problems of the token in `slot` ([`problems`]), from `C_GetMechanismList` and
/// `C_GetMechanismInfo`. An error of the module is returned as is.
pub fn check(ctx: &Pkcs11, slot: Slot) -> Result<Vec<String>, cryptoki::error::Error> {
    let list = ctx.get_mechanism_list(slot)?;
    let caps = |m: MechanismType| -> Result<Option<Caps>, cryptoki::error::Error> {
        if !list.contains(&m) {
            return Ok(None);
        }
        Ok(Some(Caps::from(&ctx.get_mechanism_info(slot, m)?)))
    };
    Ok(problems(
        caps(MechanismType::AES_KEY_GEN)?,
        caps(MechanismType::AES_GCM)?,
    ))
}

/// Whether the module implements PKCS#11 2.40 or later (`C_GetInfo`), where
/// `CKA_DESTROYABLE` exists. An unreadable version counts as older.
pub fn knows_destroyable(ctx: &Pkcs11) -> bool {
    ctx.get_library_info()
        .map(|i| {
            let v = i.cryptoki_version();
            (v.major(), v.minor()) >= (2, 40)
        })
        .unwrap_or(false)
}

#[cfg(test)]
mod tests;

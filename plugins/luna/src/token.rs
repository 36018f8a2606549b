//! Finding a token by label among the module's slots, tolerating tokens whose
//! information cryptoki cannot parse, and the "no token labelled ..." message.

use std::path::Path;

use cryptoki::{context::Pkcs11, error::Error, slot::Slot, slot::TokenInfo};

use crate::{pkcs11::rv, raw};

/// What a token reports about itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenFacts {
    /// `label`, padding removed.
    pub label: String,
    /// `serialNumber`.
    pub serial: String,
    /// `manufacturerID`.
    pub manufacturer: String,
    /// `model`.
    pub model: String,
    /// `firmwareVersion`.
    pub firmware: String,
    /// Whether `CKF_TOKEN_INITIALIZED` is set (unknown for a raw read: assumed).
    pub initialized: bool,
}

impl TokenFacts {
    fn from_info(info: &TokenInfo) -> TokenFacts {
        TokenFacts {
            label: info.label().trim_end().to_string(),
            serial: info.serial_number().trim_end().to_string(),
            manufacturer: info.manufacturer_id().trim_end().to_string(),
            model: info.model().trim_end().to_string(),
            firmware: info.firmware_version().to_string(),
            initialized: info.token_initialized(),
        }
    }

    fn from_raw(info: raw::RawTokenInfo) -> TokenFacts {
        TokenFacts {
            label: info.label,
            serial: info.serial,
            manufacturer: info.manufacturer,
            model: info.model,
            firmware: info.firmware,
            initialized: true,
        }
    }

    /// `"<manufacturer> <model> fw <firmware> (token '<label>')"`.
    pub fn describe(&self) -> String {
        format!(
            "{} {} fw {} (token '{}')",
            self.manufacturer, self.model, self.firmware, self.label
        )
    }
}

/// A slot whose token information could not be read or parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unreadable {
    /// The slot id.
    pub slot: u64,
    /// The token's label, when it could still be read.
    pub label: Option<String>,
    /// Why the information is unusable.
    pub reason: String,
}

/// The outcome of looking for a token by label.
#[derive(Debug, Default)]
pub struct Scan {
    /// The slot and facts of the token with the label, if any.
    pub found: Option<(Slot, TokenFacts)>,
    /// Labels of the initialised tokens seen (readable or read raw).
    pub labels: Vec<String>,
    /// Slots whose token information could not be used as is.
    pub unreadable: Vec<Unreadable>,
}

/// Looks at every slot with a token for the token labelled `label`. A token whose
/// `C_GetTokenInfo` answer cryptoki cannot parse (e.g. a `utcTime` that is not a date)
/// is read raw ([`raw::token_info`]): it is listed as unreadable with the reason, and
/// still found by its label.
pub fn scan(ctx: &Pkcs11, module: &Path, label: &str) -> Result<Scan, Error> {
    let mut scan = Scan::default();
    for slot in ctx.get_slots_with_token()? {
        let facts = match ctx.get_token_info(slot) {
            Ok(info) => TokenFacts::from_info(&info),
            // The module itself refused: a token may vanish between the two calls, or be
            // broken (SoftHSM2 answers CKR_GENERAL_ERROR for a token deleted by another
            // process). It is not the one we look for.
            Err(e) if rv(&e).is_some() => {
                scan.unreadable.push(Unreadable {
                    slot: slot.id(),
                    label: None,
                    reason: e.to_string(),
                });
                continue;
            }
            // cryptoki could not parse the answer: read the text fields raw.
            Err(e) => {
                let why = format!("C_GetTokenInfo answer cannot be parsed: {e}");
                match raw::token_info(module, slot.id()) {
                    Ok(info) => {
                        scan.unreadable.push(Unreadable {
                            slot: slot.id(),
                            label: Some(info.label.clone()),
                            reason: why,
                        });
                        TokenFacts::from_raw(info)
                    }
                    Err(raw_error) => {
                        scan.unreadable.push(Unreadable {
                            slot: slot.id(),
                            label: None,
                            reason: format!("{why}; raw read: {raw_error}"),
                        });
                        continue;
                    }
                }
            }
        };
        if facts.initialized {
            scan.labels.push(facts.label.clone());
        }
        if scan.found.is_none() && facts.label == label {
            scan.found = Some((slot, facts));
        }
    }
    Ok(scan)
}

/// Finds the slot holding the token labelled `label`. `Ok(None)` when no token has it.
pub fn find(ctx: &Pkcs11, module: &Path, label: &str) -> Result<Option<(Slot, TokenFacts)>, Error> {
    Ok(scan(ctx, module, label)?.found)
}

/// The message for a token label the module does not show: the labels present, the
/// slots that could not be read (with the reason), and, when no token is visible at
/// all, a hint about the module's configuration (`module_env`). `init_env` is the
/// `module_env` the module was initialised with in this process, when it differs from
/// the one of this configuration.
pub fn not_found_message(
    label: &str,
    module: &Path,
    scan: &Scan,
    init_env: Option<&[(String, String)]>,
) -> String {
    let mut text = format!(
        "no token labelled '{label}' in PKCS#11 module '{}' (tokens present: {:?})",
        module.display(),
        scan.labels
    );
    if !scan.unreadable.is_empty() {
        let slots: Vec<String> = scan
            .unreadable
            .iter()
            .map(|u| match &u.label {
                Some(l) => format!("slot {} (label '{l}'): {}", u.slot, u.reason),
                None => format!("slot {}: {}", u.slot, u.reason),
            })
            .collect();
        text.push_str(&format!(
            "; slots whose token information cannot be read: {}",
            slots.join("; ")
        ));
    }
    if scan.labels.is_empty() && scan.unreadable.is_empty() {
        text.push_str(
            "; the module shows no initialised token at all: its configuration may be \
             missing from its environment (set `module_env`, e.g. SOFTHSM2_CONF for \
             SoftHSM2, and start keyhold with the same variables in its environment)",
        );
        if let Some(env) = init_env {
            let shown: Vec<String> = env.iter().map(|(k, v)| format!("{k}={v}")).collect();
            text.push_str(&format!(
                "; this module was already initialised in this process with module_env \
                 [{}]: a PKCS#11 module cannot be re-initialised in-process (SoftHSM2 \
                 reads its configuration once per process), so a restart of keyhold \
                 applies another configuration",
                shown.join(", ")
            ));
        }
    }
    text
}

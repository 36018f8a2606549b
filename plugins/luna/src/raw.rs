//! The plugin's one unsafe corner: a token's raw `CK_TOKEN_INFO`, read when cryptoki
//! cannot parse it (openCryptoki fills `utcTime` with a non-date while setting
//! `CKF_CLOCK_ON_TOKEN`, and cryptoki refuses the whole structure). cryptoki offers no
//! raw access, so the module's function list is fetched through cryptoki-sys and only
//! `C_GetTokenInfo` is called, into a zeroed structure owned here.
#![allow(unsafe_code)]

use std::path::Path;

use cryptoki_sys::{CK_FUNCTION_LIST, CK_SLOT_ID, CK_TOKEN_INFO, CKR_OK};

/// The text fields of a token's information, padding removed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawTokenInfo {
    /// `label`.
    pub label: String,
    /// `manufacturerID`.
    pub manufacturer: String,
    /// `model`.
    pub model: String,
    /// `serialNumber`.
    pub serial: String,
    /// `firmwareVersion` as `major.minor`.
    pub firmware: String,
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).trim_end().to_string()
}

/// Reads the token information of `slot` from the module at `module`, which must
/// already be loaded and initialised (by [`crate::pkcs11::module`]).
pub fn token_info(module: &Path, slot: u64) -> Result<RawTokenInfo, String> {
    // SAFETY: the library is already loaded in this process by cryptoki (the same path),
    // so dlopen only takes another reference on it and runs no initialiser; it stays
    // loaded while `lib` lives, which covers every call below.
    let lib = unsafe { cryptoki_sys::Pkcs11::new(module) }
        .map_err(|e| format!("cannot load the module again to read it: {e}"))?;
    let get_list = *lib
        .C_GetFunctionList
        .as_ref()
        .map_err(|e| format!("C_GetFunctionList is missing: {e}"))?;
    let mut list: *mut CK_FUNCTION_LIST = std::ptr::null_mut();
    // SAFETY: C_GetFunctionList writes a pointer to the module's static function list.
    let rv = unsafe { get_list(&mut list) };
    if rv != CKR_OK || list.is_null() {
        return Err(format!("C_GetFunctionList failed (0x{rv:x})"));
    }
    // SAFETY: `list` is non-null and points to the module's function list, which lives
    // as long as the module stays loaded.
    let get_info = unsafe { (*list).C_GetTokenInfo }
        .ok_or_else(|| "the function list has no C_GetTokenInfo".to_string())?;
    let mut info = CK_TOKEN_INFO::default();
    let slot_id: CK_SLOT_ID = slot;
    // SAFETY: `info` is a valid, writable CK_TOKEN_INFO owned by this frame.
    let rv = unsafe { get_info(slot_id, &mut info) };
    drop(lib);
    if rv != CKR_OK {
        return Err(format!("C_GetTokenInfo failed (0x{rv:x})"));
    }
    Ok(RawTokenInfo {
        label: text(&info.label),
        manufacturer: text(&info.manufacturerID),
        model: text(&info.model),
        serial: text(&info.serialNumber),
        firmware: format!(
            "{}.{}",
            info.firmwareVersion.major, info.firmwareVersion.minor
        ),
    })
}

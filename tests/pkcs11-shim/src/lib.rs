//! # keyhold-pkcs11-shim: a PKCS#11 v2.20 module, simulated on SoftHSM2 (tests only)
//!
//! `libkeyhold_pkcs11_shim.so` exports `C_GetFunctionList` (and nothing of PKCS#11 3.0,
//! so callers use the 2.x function list). It loads the real module
//! (`$KEYHOLD_SHIM_MODULE`, default `/usr/lib/softhsm/libsofthsm2.so`), copies its
//! function list and overrides what makes openCryptoki-like v2.20 modules different:
//! - `C_GetInfo`: `cryptokiVersion` 2.20.
//! - `C_GetTokenInfo`: `CKF_CLOCK_ON_TOKEN` set and `utcTime` not a date (as
//!   openCryptoki's soft token answers).
//! - `C_GenerateKey` / `C_CreateObject`: `CKR_ATTRIBUTE_TYPE_INVALID` for a template
//!   holding `CKA_DESTROYABLE` (a 2.40 attribute).
//!
//! More is chosen by the shim's own file name (tests copy the library under a new
//! name; each copy is a separate instance with its own behaviour):
//! - `nogcm` in the name: `CKM_AES_GCM` is neither listed nor described.
//! - `notokens` in the name: no slot at all (a module missing its configuration).
//!
//! Everything else goes to the real module unchanged: sessions, logins and objects are
//! the real module's (the same instance as a direct user of it in the process).

use std::{ffi::CStr, sync::OnceLock};

use cryptoki_sys::{
    CK_ATTRIBUTE, CK_BBOOL, CK_FUNCTION_LIST, CK_INFO, CK_MECHANISM, CK_MECHANISM_INFO,
    CK_MECHANISM_TYPE, CK_OBJECT_HANDLE, CK_RV, CK_SESSION_HANDLE, CK_SLOT_ID, CK_TOKEN_INFO,
    CK_ULONG, CKA_DESTROYABLE, CKF_CLOCK_ON_TOKEN, CKM_AES_GCM, CKR_ARGUMENTS_BAD,
    CKR_ATTRIBUTE_TYPE_INVALID, CKR_BUFFER_TOO_SMALL, CKR_FUNCTION_FAILED, CKR_MECHANISM_INVALID,
    CKR_OK,
};

/// The real module used when `$KEYHOLD_SHIM_MODULE` is not set.
pub const DEFAULT_MODULE: &str = "/usr/lib/softhsm/libsofthsm2.so";
/// What `C_GetTokenInfo` answers as `utcTime` (not a date).
pub const ODD_UTC_TIME: &[u8; 16] = b"not a date (v2) ";

/// Behaviour chosen by the file name of this copy of the shim.
#[derive(Debug, Clone, Copy, Default)]
struct Flags {
    no_gcm: bool,
    no_tokens: bool,
}

struct Shim {
    real: CK_FUNCTION_LIST,
    list: CK_FUNCTION_LIST,
    flags: Flags,
    /// Keeps the real module loaded (its function list points into it).
    _lib: cryptoki_sys::Pkcs11,
}

// SAFETY: the function lists hold plain function pointers and a version; the library
// handle is only kept, never used from several threads.
unsafe impl Send for Shim {}
// SAFETY: as above: nothing in it is mutated after initialisation.
unsafe impl Sync for Shim {}

fn own_file_name() -> String {
    let mut info: libc::Dl_info = unsafe { std::mem::zeroed() };
    let addr = C_GetFunctionList as *const libc::c_void;
    // SAFETY: dladdr reads the loader's tables for an address of this library and
    // writes `info`; dli_fname is a NUL-terminated string owned by the loader.
    let found = unsafe { libc::dladdr(addr, &mut info) };
    if found == 0 || info.dli_fname.is_null() {
        return String::new();
    }
    // SAFETY: non-null, NUL-terminated (see above).
    let name = unsafe { CStr::from_ptr(info.dli_fname) };
    let name = name.to_string_lossy();
    name.rsplit('/').next().unwrap_or_default().to_string()
}

fn load() -> Result<Shim, String> {
    let path = std::env::var("KEYHOLD_SHIM_MODULE").unwrap_or_else(|_| DEFAULT_MODULE.into());
    // SAFETY: loading a PKCS#11 module runs its initialisers, which is what it is for.
    let lib = unsafe { cryptoki_sys::Pkcs11::new(&path) }.map_err(|e| e.to_string())?;
    let get = *lib.C_GetFunctionList.as_ref().map_err(|e| e.to_string())?;
    let mut ptr: *mut CK_FUNCTION_LIST = std::ptr::null_mut();
    // SAFETY: writes a pointer to the module's static function list.
    let rv = unsafe { get(&mut ptr) };
    if rv != CKR_OK || ptr.is_null() {
        return Err(format!("C_GetFunctionList of {path}: 0x{rv:x}"));
    }
    // SAFETY: non-null, points to the module's function list.
    let real = unsafe { *ptr };
    let name = own_file_name();
    let flags = Flags {
        no_gcm: name.contains("nogcm"),
        no_tokens: name.contains("notokens"),
    };
    let mut list = real;
    list.version.major = 2;
    list.version.minor = 20;
    list.C_GetFunctionList = Some(C_GetFunctionList);
    list.C_GetInfo = Some(get_info);
    list.C_GetSlotList = Some(get_slot_list);
    list.C_GetTokenInfo = Some(get_token_info);
    list.C_GetMechanismList = Some(get_mechanism_list);
    list.C_GetMechanismInfo = Some(get_mechanism_info);
    list.C_GenerateKey = Some(generate_key);
    list.C_CreateObject = Some(create_object);
    Ok(Shim {
        real,
        list,
        flags,
        _lib: lib,
    })
}

fn shim() -> Option<&'static Shim> {
    static SHIM: OnceLock<Result<Shim, String>> = OnceLock::new();
    match SHIM.get_or_init(load) {
        Ok(s) => Some(s),
        Err(e) => {
            eprintln!("keyhold-pkcs11-shim: cannot load the real module: {e}");
            None
        }
    }
}

/// The PKCS#11 entry point.
///
/// # Safety
/// `list` must be a valid pointer to write the function list pointer to.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn C_GetFunctionList(list: *mut *mut CK_FUNCTION_LIST) -> CK_RV {
    if list.is_null() {
        return CKR_ARGUMENTS_BAD;
    }
    let Some(s) = shim() else {
        return CKR_FUNCTION_FAILED;
    };
    // SAFETY: checked non-null; callers only read the list.
    unsafe { *list = (&s.list as *const CK_FUNCTION_LIST).cast_mut() };
    CKR_OK
}

macro_rules! real {
    ($s:expr, $f:ident) => {
        match $s.real.$f {
            Some(f) => f,
            None => return CKR_FUNCTION_FAILED,
        }
    };
}

unsafe extern "C" fn get_info(info: *mut CK_INFO) -> CK_RV {
    let Some(s) = shim() else {
        return CKR_FUNCTION_FAILED;
    };
    // SAFETY: forwarded as received.
    let rv = unsafe { real!(s, C_GetInfo)(info) };
    if rv == CKR_OK && !info.is_null() {
        // SAFETY: the real module filled it; non-null.
        unsafe {
            (*info).cryptokiVersion.major = 2;
            (*info).cryptokiVersion.minor = 20;
        }
    }
    rv
}

unsafe extern "C" fn get_slot_list(
    present: CK_BBOOL,
    slots: *mut CK_SLOT_ID,
    count: *mut CK_ULONG,
) -> CK_RV {
    let Some(s) = shim() else {
        return CKR_FUNCTION_FAILED;
    };
    if s.flags.no_tokens {
        if count.is_null() {
            return CKR_ARGUMENTS_BAD;
        }
        // SAFETY: checked non-null.
        unsafe { *count = 0 };
        return CKR_OK;
    }
    // SAFETY: forwarded as received.
    unsafe { real!(s, C_GetSlotList)(present, slots, count) }
}

unsafe extern "C" fn get_token_info(slot: CK_SLOT_ID, info: *mut CK_TOKEN_INFO) -> CK_RV {
    let Some(s) = shim() else {
        return CKR_FUNCTION_FAILED;
    };
    // SAFETY: forwarded as received.
    let rv = unsafe { real!(s, C_GetTokenInfo)(slot, info) };
    if rv == CKR_OK && !info.is_null() {
        // SAFETY: the real module filled it; non-null.
        unsafe {
            (*info).flags |= CKF_CLOCK_ON_TOKEN;
            (*info).utcTime = *ODD_UTC_TIME;
        }
    }
    rv
}

unsafe extern "C" fn get_mechanism_list(
    slot: CK_SLOT_ID,
    list: *mut CK_MECHANISM_TYPE,
    count: *mut CK_ULONG,
) -> CK_RV {
    let Some(s) = shim() else {
        return CKR_FUNCTION_FAILED;
    };
    let real = real!(s, C_GetMechanismList);
    if !s.flags.no_gcm {
        // SAFETY: forwarded as received.
        return unsafe { real(slot, list, count) };
    }
    if count.is_null() {
        return CKR_ARGUMENTS_BAD;
    }
    let mut n: CK_ULONG = 0;
    // SAFETY: a count query.
    let rv = unsafe { real(slot, std::ptr::null_mut(), &mut n) };
    if rv != CKR_OK {
        return rv;
    }
    let mut all: Vec<CK_MECHANISM_TYPE> = vec![0; n as usize];
    // SAFETY: `all` holds `n` entries.
    let rv = unsafe { real(slot, all.as_mut_ptr(), &mut n) };
    if rv != CKR_OK {
        return rv;
    }
    all.truncate(n as usize);
    all.retain(|m| *m != CKM_AES_GCM);
    let wanted = all.len() as CK_ULONG;
    // SAFETY: checked non-null; the caller's buffer holds `*count` entries.
    unsafe {
        if list.is_null() {
            *count = wanted;
            return CKR_OK;
        }
        if *count < wanted {
            *count = wanted;
            return CKR_BUFFER_TOO_SMALL;
        }
        std::ptr::copy_nonoverlapping(all.as_ptr(), list, all.len());
        *count = wanted;
    }
    CKR_OK
}

unsafe extern "C" fn get_mechanism_info(
    slot: CK_SLOT_ID,
    mechanism: CK_MECHANISM_TYPE,
    info: *mut CK_MECHANISM_INFO,
) -> CK_RV {
    let Some(s) = shim() else {
        return CKR_FUNCTION_FAILED;
    };
    if s.flags.no_gcm && mechanism == CKM_AES_GCM {
        return CKR_MECHANISM_INVALID;
    }
    // SAFETY: forwarded as received.
    unsafe { real!(s, C_GetMechanismInfo)(slot, mechanism, info) }
}

/// Whether a template holds `CKA_DESTROYABLE`.
///
/// # Safety
/// `template` must point to `count` attributes (or be null with `count` 0).
unsafe fn has_destroyable(template: *const CK_ATTRIBUTE, count: CK_ULONG) -> bool {
    if template.is_null() || count == 0 {
        return false;
    }
    // SAFETY: per the caller's contract.
    let attrs = unsafe { std::slice::from_raw_parts(template, count as usize) };
    attrs.iter().any(|a| a.type_ == CKA_DESTROYABLE)
}

unsafe extern "C" fn generate_key(
    session: CK_SESSION_HANDLE,
    mechanism: *mut CK_MECHANISM,
    template: *mut CK_ATTRIBUTE,
    count: CK_ULONG,
    key: *mut CK_OBJECT_HANDLE,
) -> CK_RV {
    let Some(s) = shim() else {
        return CKR_FUNCTION_FAILED;
    };
    // SAFETY: the caller passes `count` attributes.
    if unsafe { has_destroyable(template, count) } {
        return CKR_ATTRIBUTE_TYPE_INVALID;
    }
    // SAFETY: forwarded as received.
    unsafe { real!(s, C_GenerateKey)(session, mechanism, template, count, key) }
}

unsafe extern "C" fn create_object(
    session: CK_SESSION_HANDLE,
    template: *mut CK_ATTRIBUTE,
    count: CK_ULONG,
    object: *mut CK_OBJECT_HANDLE,
) -> CK_RV {
    let Some(s) = shim() else {
        return CKR_FUNCTION_FAILED;
    };
    // SAFETY: the caller passes `count` attributes.
    if unsafe { has_destroyable(template, count) } {
        return CKR_ATTRIBUTE_TYPE_INVALID;
    }
    // SAFETY: forwarded as received.
    unsafe { real!(s, C_CreateObject)(session, template, count, object) }
}

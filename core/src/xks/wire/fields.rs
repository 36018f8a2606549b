//! Field-level rules of XKS request bodies: base64 fields and their size limits, the
//! algorithm, and the byte strings derived from fields (the AES-GCM AAD, the CDIV).

use base64::{Engine, engine::general_purpose::STANDARD as B64};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::xks::error::{XksError, XksErrorKind};

/// Largest plaintext or ciphertext keyhold accepts (the specification's minimum).
pub const MAX_DATA_BYTES: usize = 4300;
/// Largest additional authenticated data keyhold accepts.
pub const MAX_AAD_BYTES: usize = 8192;
/// Largest `ciphertextMetadata` the specification allows.
pub const MAX_METADATA_BYTES: usize = 20;

/// Longest base64 field decoded before its length is checked exactly (IV, tag,
/// ciphertext metadata).
const MAX_SHORT_FIELD_BYTES: usize = 64;

/// Decodes a base64 field, refusing it (without echoing it) when malformed, or with
/// 501 UnsupportedOperationException when it decodes to more than `max` bytes.
pub fn decode_b64(value: &str, name: &str, max: usize) -> Result<Zeroizing<Vec<u8>>, XksError> {
    // 4 characters per 3 bytes: refuse long input before decoding it.
    if value.len() > max.div_ceil(3) * 4 {
        return Err(too_large(name, max));
    }
    let bytes = Zeroizing::new(
        B64.decode(value)
            .map_err(|_| XksError::validation(format!("field '{name}' is not valid base64")))?,
    );
    if bytes.len() > max {
        return Err(too_large(name, max));
    }
    Ok(bytes)
}

fn too_large(name: &str, max: usize) -> XksError {
    XksError::new(
        XksErrorKind::UnsupportedOperation,
        format!("field '{name}' exceeds the supported maximum of {max} bytes"),
    )
}

/// A required base64 field of at most `max` bytes.
pub(super) fn required_b64(
    value: &Option<String>,
    name: &str,
    max: usize,
) -> Result<Zeroizing<Vec<u8>>, XksError> {
    decode_b64(super::required(value, name)?, name, max)
}

/// `additionalAuthenticatedData`: optional (empty when absent), at most
/// [`MAX_AAD_BYTES`].
pub(super) fn aad(value: &Option<String>) -> Result<Zeroizing<Vec<u8>>, XksError> {
    match value {
        Some(v) => decode_b64(v, "additionalAuthenticatedData", MAX_AAD_BYTES),
        None => Ok(Zeroizing::new(Vec::new())),
    }
}

/// A required base64 field that must decode to one of `lengths` bytes
/// (ValidationException otherwise, however long).
pub(super) fn exact_b64(
    value: &Option<String>,
    name: &str,
    lengths: &[usize],
) -> Result<Zeroizing<Vec<u8>>, XksError> {
    let value = super::required(value, name)?;
    let bytes = decode_b64(value, name, MAX_SHORT_FIELD_BYTES).map_err(|e| {
        if e.kind == XksErrorKind::UnsupportedOperation {
            XksError::validation(format!("field '{name}' has the wrong length"))
        } else {
            e
        }
    })?;
    if !lengths.contains(&bytes.len()) {
        let allowed: Vec<String> = lengths.iter().map(|l| l.to_string()).collect();
        return Err(XksError::validation(format!(
            "field '{name}' must be {} bytes, got {}",
            allowed.join(" or "),
            bytes.len()
        )));
    }
    Ok(bytes)
}

/// `ciphertextMetadata`: at most [`MAX_METADATA_BYTES`] (ValidationException), or
/// UnsupportedOperationException past [`MAX_SHORT_FIELD_BYTES`].
pub(super) fn ciphertext_metadata(value: &str) -> Result<Zeroizing<Vec<u8>>, XksError> {
    let name = "ciphertextMetadata";
    let bytes = decode_b64(value, name, MAX_SHORT_FIELD_BYTES)?;
    if bytes.len() > MAX_METADATA_BYTES {
        return Err(XksError::validation(format!(
            "{name} must be at most {MAX_METADATA_BYTES} bytes"
        )));
    }
    Ok(bytes)
}

/// Checks `encryptionAlgorithm`.
pub fn check_algorithm(value: Option<&String>) -> Result<(), XksError> {
    match value.map(String::as_str) {
        Some("AES_GCM") => Ok(()),
        None => Err(XksError::validation(
            "missing required field 'encryptionAlgorithm'",
        )),
        Some(_) => Err(XksError::new(
            XksErrorKind::UnsupportedOperation,
            "encryptionAlgorithm is not supported (only AES_GCM)",
        )),
    }
}

/// The AES-GCM AAD for a request: the AAD as given when there is no ciphertext
/// metadata; otherwise `u16_be(len(aad)) || aad || u8(len(meta)) || meta`, as the
/// specification prescribes, so that metadata cannot be moved into the AAD.
pub fn effective_aad(aad: &[u8], metadata: Option<&[u8]>) -> Vec<u8> {
    match metadata {
        None => aad.to_vec(),
        Some(meta) => {
            let mut out = Vec::with_capacity(3 + aad.len() + meta.len());
            out.extend_from_slice(&(aad.len() as u16).to_be_bytes());
            out.extend_from_slice(aad);
            out.push(meta.len() as u8);
            out.extend_from_slice(meta);
            out
        }
    }
}

/// The Ciphertext Data Integrity Value: base64(SHA-256(aad || metadata || iv ||
/// ciphertext || tag)) over decoded bytes, absent fields empty.
pub fn cdiv(aad: &[u8], metadata: &[u8], iv: &[u8], ciphertext: &[u8], tag: &[u8]) -> String {
    let mut h = Sha256::new();
    for part in [aad, metadata, iv, ciphertext, tag] {
        h.update(part);
    }
    B64.encode(h.finalize())
}

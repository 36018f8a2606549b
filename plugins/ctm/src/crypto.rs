//! The crypto core: AES-256-GCM with a raw key, as small pure functions.
//!
//! Used for both the keys the plugin serves and for wrapping them under the master key.
//! Errors never contain key material or plaintext.

use aes_gcm::{
    AeadInPlace, Aes256Gcm, AesGcm, KeyInit,
    aead::{OsRng, consts::U16, generic_array::GenericArray, rand_core::RngCore},
    aes::{Aes256, cipher::BlockEncrypt},
};
use keyhold_sdk::KeySourceError;
use zeroize::Zeroizing;

/// AES-256-GCM with a 16-byte (128-bit) IV, accepted on decryption.
pub type Aes256Gcm16 = AesGcm<Aes256, U16>;

/// Length of a key in bytes (AES-256).
pub const KEY_LEN: usize = 32;
/// Length of the IVs this plugin generates.
pub const IV_LEN: usize = 12;
/// Length of every authentication tag.
pub const TAG_LEN: usize = 16;

/// A 256-bit key held in memory that is wiped on drop.
pub type KeyMaterial = Zeroizing<[u8; KEY_LEN]>;

/// Fills `buf` from the operating system's CSPRNG.
pub fn fill_random(buf: &mut [u8]) -> Result<(), KeySourceError> {
    OsRng
        .try_fill_bytes(buf)
        .map_err(|_| KeySourceError::internal("the operating system's random generator failed"))
}

/// Generates a fresh AES-256 key from the OS CSPRNG.
pub fn generate_key() -> Result<KeyMaterial, KeySourceError> {
    let mut key = Zeroizing::new([0u8; KEY_LEN]);
    fill_random(&mut key[..])?;
    Ok(key)
}

/// Generates a fresh 12-byte IV from the OS CSPRNG.
pub fn random_iv() -> Result<[u8; IV_LEN], KeySourceError> {
    let mut iv = [0u8; IV_LEN];
    fill_random(&mut iv)?;
    Ok(iv)
}

fn bad_iv(len: usize) -> KeySourceError {
    KeySourceError::invalid_input(format!(
        "initialization vector must be 12 or 16 bytes, got {len}"
    ))
}

/// Encrypts `plaintext` under `key` with the given IV (12 or 16 bytes); returns the
/// ciphertext (as long as the plaintext) and the 16-byte tag.
///
/// The plugin only ever calls this with a fresh [`random_iv`]; a caller-chosen IV is
/// for known-answer tests.
pub fn seal(
    key: &[u8; KEY_LEN],
    iv: &[u8],
    plaintext: &[u8],
    aad: &[u8],
) -> Result<(Vec<u8>, [u8; TAG_LEN]), KeySourceError> {
    let mut buf = plaintext.to_vec();
    let key = GenericArray::from_slice(key);
    let tag = match iv.len() {
        12 => Aes256Gcm::new(key).encrypt_in_place_detached(
            GenericArray::from_slice(iv),
            aad,
            &mut buf,
        ),
        16 => Aes256Gcm16::new(key).encrypt_in_place_detached(
            GenericArray::from_slice(iv),
            aad,
            &mut buf,
        ),
        n => return Err(bad_iv(n)),
    }
    .map_err(|_| KeySourceError::invalid_input("plaintext or AAD too long for AES-GCM"))?;
    let mut out = [0u8; TAG_LEN];
    out.copy_from_slice(&tag);
    Ok((buf, out))
}

/// Decrypts and verifies. IVs of 12 or 16 bytes and 16-byte tags are accepted (other
/// lengths are [`KeySourceError::InvalidInput`]); a tag that does not verify is
/// [`KeySourceError::InvalidCiphertext`]. The plaintext is returned in a buffer that is
/// wiped on drop.
pub fn open(
    key: &[u8; KEY_LEN],
    iv: &[u8],
    ciphertext: &[u8],
    tag: &[u8],
    aad: &[u8],
) -> Result<Zeroizing<Vec<u8>>, KeySourceError> {
    if tag.len() != TAG_LEN {
        return Err(KeySourceError::invalid_input(format!(
            "authentication tag must be 16 bytes, got {}",
            tag.len()
        )));
    }
    if iv.len() != 12 && iv.len() != 16 {
        return Err(bad_iv(iv.len()));
    }
    let mut buf = Zeroizing::new(ciphertext.to_vec());
    let key = GenericArray::from_slice(key);
    let tag = GenericArray::from_slice(tag);
    let result = if iv.len() == 12 {
        Aes256Gcm::new(key).decrypt_in_place_detached(
            GenericArray::from_slice(iv),
            aad,
            &mut buf,
            tag,
        )
    } else {
        Aes256Gcm16::new(key).decrypt_in_place_detached(
            GenericArray::from_slice(iv),
            aad,
            &mut buf,
            tag,
        )
    };
    // On failure aes-gcm leaves the (unauthenticated) buffer untouched.
    result.map_err(|_| KeySourceError::InvalidCiphertext)?;
    Ok(buf)
}

/// The key check value of a key: AES-256 of an all-zero block. Its first bytes
/// identify a key without revealing it.
pub fn key_check_value(key: &[u8; KEY_LEN]) -> [u8; 16] {
    let cipher = Aes256::new(GenericArray::from_slice(key));
    let mut block = GenericArray::from([0u8; 16]);
    cipher.encrypt_block(&mut block);
    block.into()
}

#[cfg(test)]
mod tests;

//! The emulator's `CiphertextBlob` format (version 1) and the KMS-side layer of the
//! double encryption.
//!
//! ```text
//! u8 version (1) | u8 len | KMS key id | 12-byte KMS nonce
//! | u8 len | proxy IV | 16-byte proxy tag | u8 len | proxy ciphertextMetadata
//! | u16 len | proxy ciphertext
//! ```
//! The plaintext is first sealed with the KMS key's emulator-held AES-256 key (AES-GCM,
//! the nonce above); that sealed text is what the XKS proxy encrypts. Decrypting needs
//! both the emulator's key and the proxy.

use aes_gcm::{
    Aes256Gcm, KeyInit, Nonce,
    aead::{Aead, OsRng, Payload, rand_core::RngCore},
};
use sha2::{Digest, Sha256};

/// The format version written.
pub const VERSION: u8 = 1;
/// The KMS layer's nonce length.
pub const NONCE_LEN: usize = 12;
/// The proxy's tag length.
pub const TAG_LEN: usize = 16;

/// A parsed ciphertext blob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Blob {
    /// The KMS key id that made it.
    pub key_id: String,
    /// The KMS layer's nonce.
    pub nonce: [u8; NONCE_LEN],
    /// The proxy's initialization vector.
    pub iv: Vec<u8>,
    /// The proxy's authentication tag.
    pub tag: Vec<u8>,
    /// The proxy's ciphertext metadata (may be empty).
    pub metadata: Vec<u8>,
    /// The proxy's ciphertext.
    pub ciphertext: Vec<u8>,
}

/// Why a blob could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Malformed(pub &'static str);

impl Blob {
    /// Serializes the blob.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(64 + self.ciphertext.len());
        out.push(VERSION);
        push_u8_prefixed(&mut out, self.key_id.as_bytes());
        out.extend_from_slice(&self.nonce);
        push_u8_prefixed(&mut out, &self.iv);
        out.extend_from_slice(&self.tag);
        push_u8_prefixed(&mut out, &self.metadata);
        let len = u16::try_from(self.ciphertext.len()).unwrap_or(u16::MAX);
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(&self.ciphertext);
        out
    }

    /// Parses a blob (any trailing or missing byte is refused).
    pub fn decode(bytes: &[u8]) -> Result<Blob, Malformed> {
        let mut r = Reader(bytes);
        if r.take(1)? != [VERSION] {
            return Err(Malformed("unknown ciphertext version"));
        }
        let key_id = String::from_utf8(r.u8_prefixed()?.to_vec())
            .map_err(|_| Malformed("key id is not UTF-8"))?;
        let mut nonce = [0u8; NONCE_LEN];
        nonce.copy_from_slice(r.take(NONCE_LEN)?);
        let iv = r.u8_prefixed()?.to_vec();
        let tag = r.take(TAG_LEN)?.to_vec();
        let metadata = r.u8_prefixed()?.to_vec();
        let len = r.take(2)?;
        let len = usize::from(u16::from_be_bytes([len[0], len[1]]));
        let ciphertext = r.take(len)?.to_vec();
        if !r.0.is_empty() {
            return Err(Malformed("trailing bytes"));
        }
        if key_id.is_empty() || iv.is_empty() {
            return Err(Malformed("empty field"));
        }
        Ok(Blob {
            key_id,
            nonce,
            iv,
            tag,
            metadata,
            ciphertext,
        })
    }
}

fn push_u8_prefixed(out: &mut Vec<u8>, bytes: &[u8]) {
    let len = u8::try_from(bytes.len()).unwrap_or(u8::MAX);
    out.push(len);
    out.extend_from_slice(&bytes[..usize::from(len)]);
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], Malformed> {
        if self.0.len() < n {
            return Err(Malformed("truncated ciphertext"));
        }
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Ok(head)
    }

    fn u8_prefixed(&mut self) -> Result<&'a [u8], Malformed> {
        let len = self.take(1)?[0];
        self.take(usize::from(len))
    }
}

/// The AAD of both layers: the KMS key id and a digest of the canonical encryption
/// context (pairs sorted by key, each length-prefixed).
pub fn aad(key_id: &str, context: &[(String, String)]) -> Vec<u8> {
    let mut sorted: Vec<&(String, String)> = context.iter().collect();
    sorted.sort();
    let mut h = Sha256::new();
    for (k, v) in sorted {
        h.update((k.len() as u64).to_be_bytes());
        h.update(k.as_bytes());
        h.update((v.len() as u64).to_be_bytes());
        h.update(v.as_bytes());
    }
    let mut out = b"kms-emulator/v1:".to_vec();
    out.extend_from_slice(key_id.as_bytes());
    out.push(0);
    out.extend_from_slice(&h.finalize());
    out
}

/// Random bytes from the operating system.
pub fn random<const N: usize>() -> [u8; N] {
    let mut b = [0u8; N];
    OsRng.fill_bytes(&mut b);
    b
}

/// Seals `plaintext` with the KMS layer's key; returns (nonce, ciphertext || tag).
pub fn seal(key: &[u8; 32], plaintext: &[u8], aad: &[u8]) -> Option<([u8; NONCE_LEN], Vec<u8>)> {
    let nonce = random::<NONCE_LEN>();
    let cipher = Aes256Gcm::new_from_slice(key).ok()?;
    let sealed = cipher
        .encrypt(
            Nonce::from_slice(&nonce),
            Payload {
                msg: plaintext,
                aad,
            },
        )
        .ok()?;
    Some((nonce, sealed))
}

/// Opens what [`seal`] made; `None` when it does not authenticate.
pub fn open(key: &[u8; 32], nonce: &[u8; NONCE_LEN], sealed: &[u8], aad: &[u8]) -> Option<Vec<u8>> {
    let cipher = Aes256Gcm::new_from_slice(key).ok()?;
    cipher
        .decrypt(Nonce::from_slice(nonce), Payload { msg: sealed, aad })
        .ok()
}

#[cfg(test)]
mod tests;

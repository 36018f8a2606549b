//! The cryptographic operations on keys in external key stores, with KMS's double
//! encryption: the emulator's AES-GCM layer inside, the proxy's `Encrypt` outside, and
//! the proxy's CDIV checked.

use base64::{Engine, engine::general_purpose::STANDARD};
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use super::{Ctx, Input, keys, no_dry_run};
use crate::{
    blob::{self, Blob},
    error::ApiError,
    state::{ConnectionState, KeyLifecycle, uuid},
    xks::{Family, Target, XksFailure, mapping},
};

const ALGORITHM: &str = "SYMMETRIC_DEFAULT";

/// What a crypto operation needs of a key, taken under the lock.
struct Usable {
    id: String,
    arn: String,
    xks_key_id: String,
    inner_key: [u8; 32],
    target: Target,
}

fn usable(ctx: &Ctx<'_>, field: &str, key_id: &str) -> Result<Usable, ApiError> {
    let data = ctx.shared.data();
    let key = keys::resolve(&data, field, key_id)?;
    if let KeyLifecycle::PendingDeletion { .. } = key.lifecycle {
        return Err(ApiError::new(
            "KMSInvalidStateException",
            format!("{} is pending deletion.", key.arn),
        ));
    }
    let store = data
        .store(&key.store_id)
        .ok_or_else(|| ApiError::internal("the key's custom key store is gone"))?;
    if store.state != ConnectionState::Connected {
        return Err(ApiError::new(
            "KMSInvalidStateException",
            format!(
                "{} is unavailable: its custom key store {} is {}, not connected to its external key store proxy. Connect the key store and retry.",
                key.arn,
                store.id,
                store.state.as_str()
            ),
        ));
    }
    Ok(Usable {
        id: key.id.clone(),
        arn: key.arn.clone(),
        xks_key_id: key.xks_key_id.clone(),
        inner_key: key.inner_key,
        target: Target {
            endpoint: store.endpoint.clone(),
            path: store.path.clone(),
            access_key_id: store.access_key_id.clone(),
            secret: store.secret.clone(),
        },
    })
}

fn check_algorithm(input: &Input, field: &str) -> Result<(), ApiError> {
    match input.str(field)? {
        None | Some(ALGORITHM) => Ok(()),
        Some(other) => Err(ApiError::new(
            "InvalidKeyUsageException",
            format!("{other} is not a valid encryption algorithm for a symmetric KMS key"),
        )),
    }
}

fn metadata_of(ctx: &Ctx<'_>, key: &Usable, kms_operation: &str) -> Value {
    json!({
        "awsPrincipalArn": ctx.principal.arn,
        "kmsKeyArn": key.arn,
        "kmsOperation": kms_operation,
        "kmsRequestId": uuid(),
    })
}

fn b64_field(answer: &Value, field: &str) -> Result<Option<Vec<u8>>, XksFailure> {
    match answer.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => STANDARD
            .decode(s)
            .map(Some)
            .map_err(|_| XksFailure::Malformed(format!("{field} is not base64"))),
        Some(_) => Err(XksFailure::Malformed(format!("{field} is not a string"))),
    }
}

/// The CDIV of an XKS encrypt answer: SHA-256 over AAD, metadata, IV, ciphertext, tag.
pub fn cdiv(aad: &[u8], metadata: &[u8], iv: &[u8], ciphertext: &[u8], tag: &[u8]) -> [u8; 32] {
    let mut h = Sha256::new();
    for part in [aad, metadata, iv, ciphertext, tag] {
        h.update(part);
    }
    h.finalize().into()
}

/// Reads an XKS encrypt answer into a blob (checking sizes and the CDIV).
pub fn read_encrypt_answer(
    key_id: &str,
    nonce: [u8; blob::NONCE_LEN],
    sent_len: usize,
    aad: &[u8],
    answer: &Value,
) -> Result<Blob, XksFailure> {
    let missing = |f: &str| XksFailure::Malformed(format!("the encrypt answer lacks {f}"));
    let ciphertext = b64_field(answer, "ciphertext")?.ok_or_else(|| missing("ciphertext"))?;
    let iv = b64_field(answer, "initializationVector")?
        .ok_or_else(|| missing("initializationVector"))?;
    let tag =
        b64_field(answer, "authenticationTag")?.ok_or_else(|| missing("authenticationTag"))?;
    let metadata = b64_field(answer, "ciphertextMetadata")?.unwrap_or_default();
    let integrity = b64_field(answer, "ciphertextDataIntegrityValue")?
        .ok_or_else(|| missing("ciphertextDataIntegrityValue"))?;
    if ciphertext.len() != sent_len
        || !(iv.len() == 12 || iv.len() == 16)
        || tag.len() != blob::TAG_LEN
        || metadata.len() > 20
    {
        return Err(XksFailure::Malformed(
            "ciphertext, initializationVector, authenticationTag or ciphertextMetadata has a wrong size".into(),
        ));
    }
    if integrity.as_slice() != cdiv(aad, &metadata, &iv, &ciphertext, &tag).as_slice() {
        return Err(XksFailure::InvalidCiphertext);
    }
    Ok(Blob {
        key_id: key_id.to_string(),
        nonce,
        iv,
        tag,
        metadata,
        ciphertext,
    })
}

async fn seal(
    ctx: &Ctx<'_>,
    key: &Usable,
    plaintext: &[u8],
    context: &[(String, String)],
    kms_operation: &str,
) -> Result<Vec<u8>, ApiError> {
    let aad = blob::aad(&key.id, context);
    let (nonce, inner) = blob::seal(&key.inner_key, plaintext, &aad)
        .ok_or_else(|| ApiError::internal("the KMS layer could not encrypt"))?;
    let body = json!({
        "requestMetadata": metadata_of(ctx, key, kms_operation),
        "additionalAuthenticatedData": STANDARD.encode(&aad),
        "plaintext": STANDARD.encode(&inner),
        "encryptionAlgorithm": "AES_GCM",
        "ciphertextDataIntegrityValueAlgorithm": "SHA_256",
    });
    let suffix = format!("/keys/{}/encrypt", key.xks_key_id);
    let crypto_err = |f: XksFailure| mapping::to_api_error(&f, Family::Crypto);
    let answer = ctx
        .shared
        .xks
        .call(&key.target, "Encrypt", &suffix, body)
        .await
        .map_err(crypto_err)?;
    let blob =
        read_encrypt_answer(&key.id, nonce, inner.len(), &aad, &answer).map_err(crypto_err)?;
    Ok(blob.encode())
}

/// Decrypts blob bytes; `expected_key` is the `KeyId` the caller named, if any.
async fn open(
    ctx: &Ctx<'_>,
    bytes: &[u8],
    expected_key: Option<&str>,
    context: &[(String, String)],
    kms_operation: &str,
) -> Result<(Usable, Vec<u8>), ApiError> {
    let invalid = || {
        ApiError::new(
            "InvalidCiphertextException",
            "The ciphertext is not a valid ciphertext of this KMS emulator",
        )
    };
    let parsed = Blob::decode(bytes).map_err(|_| invalid())?;
    if ctx.shared.data().key(&parsed.key_id).is_none() {
        return Err(invalid());
    }
    let key = usable(ctx, "ciphertextBlob", &parsed.key_id)?;
    if let Some(named) = expected_key {
        if named != key.id && named != key.arn {
            return Err(ApiError::new(
                "IncorrectKeyException",
                "The key ID in the request does not identify the KMS key that encrypted the ciphertext",
            ));
        }
    }
    let aad = blob::aad(&key.id, context);
    let mut body = Map::new();
    body.insert(
        "requestMetadata".into(),
        metadata_of(ctx, &key, kms_operation),
    );
    body.insert(
        "additionalAuthenticatedData".into(),
        json!(STANDARD.encode(&aad)),
    );
    body.insert(
        "ciphertext".into(),
        json!(STANDARD.encode(&parsed.ciphertext)),
    );
    body.insert(
        "initializationVector".into(),
        json!(STANDARD.encode(&parsed.iv)),
    );
    body.insert(
        "authenticationTag".into(),
        json!(STANDARD.encode(&parsed.tag)),
    );
    body.insert("encryptionAlgorithm".into(), json!("AES_GCM"));
    if !parsed.metadata.is_empty() {
        body.insert(
            "ciphertextMetadata".into(),
            json!(STANDARD.encode(&parsed.metadata)),
        );
    }
    let suffix = format!("/keys/{}/decrypt", key.xks_key_id);
    let crypto_err = |f: XksFailure| mapping::to_api_error(&f, Family::Crypto);
    let answer = ctx
        .shared
        .xks
        .call(&key.target, "Decrypt", &suffix, Value::Object(body))
        .await
        .map_err(crypto_err)?;
    let inner = b64_field(&answer, "plaintext")
        .and_then(|p| {
            p.ok_or_else(|| XksFailure::Malformed("the decrypt answer lacks plaintext".into()))
        })
        .map_err(crypto_err)?;
    let plaintext = blob::open(&key.inner_key, &parsed.nonce, &inner, &aad)
        .ok_or_else(|| crypto_err(XksFailure::InvalidCiphertext))?;
    Ok((key, plaintext))
}

fn plaintext_input(input: &Input) -> Result<Vec<u8>, ApiError> {
    let p = input
        .blob("Plaintext")?
        .ok_or_else(|| ApiError::validation("plaintext", "Member must not be null"))?;
    if p.is_empty() || p.len() > 4096 {
        return Err(ApiError::validation(
            "plaintext",
            "Member must have length between 1 and 4096",
        ));
    }
    Ok(p)
}

fn ciphertext_input(input: &Input) -> Result<Vec<u8>, ApiError> {
    let c = input
        .blob("CiphertextBlob")?
        .ok_or_else(|| ApiError::validation("ciphertextBlob", "Member must not be null"))?;
    if c.is_empty() || c.len() > 6144 {
        return Err(ApiError::validation(
            "ciphertextBlob",
            "Member must have length between 1 and 6144",
        ));
    }
    Ok(c)
}

/// `Encrypt`.
pub async fn encrypt(ctx: &Ctx<'_>, input: &Input) -> Result<Value, ApiError> {
    no_dry_run(input)?;
    let key_id = input.req_str("KeyId")?;
    let plaintext = plaintext_input(input)?;
    let context = input.context("EncryptionContext")?;
    check_algorithm(input, "EncryptionAlgorithm")?;
    let key = usable(ctx, "keyId", key_id)?;
    let blob = seal(ctx, &key, &plaintext, &context, "Encrypt").await?;
    Ok(json!({
        "CiphertextBlob": STANDARD.encode(blob),
        "KeyId": key.arn,
        "EncryptionAlgorithm": ALGORITHM,
    }))
}

/// `Decrypt`.
pub async fn decrypt(ctx: &Ctx<'_>, input: &Input) -> Result<Value, ApiError> {
    no_dry_run(input)?;
    if input.has("Recipient") {
        return Err(ApiError::new(
            "UnsupportedOperationException",
            "Recipient (Nitro Enclaves attestation) is not emulated",
        ));
    }
    let ciphertext = ciphertext_input(input)?;
    let context = input.context("EncryptionContext")?;
    check_algorithm(input, "EncryptionAlgorithm")?;
    let named = input.str("KeyId")?;
    let (key, plaintext) = open(ctx, &ciphertext, named, &context, "Decrypt").await?;
    Ok(json!({
        "KeyId": key.arn,
        "Plaintext": STANDARD.encode(plaintext),
        "EncryptionAlgorithm": ALGORITHM,
    }))
}

/// `GenerateDataKey` (`KeySpec` AES_256 / AES_128, or `NumberOfBytes` 1..1024).
pub async fn generate_data_key(ctx: &Ctx<'_>, input: &Input) -> Result<Value, ApiError> {
    no_dry_run(input)?;
    if input.has("Recipient") {
        return Err(ApiError::new(
            "UnsupportedOperationException",
            "Recipient (Nitro Enclaves attestation) is not emulated",
        ));
    }
    let key_id = input.req_str("KeyId")?;
    let context = input.context("EncryptionContext")?;
    let len = match (input.str("KeySpec")?, input.int("NumberOfBytes")?) {
        (Some(_), Some(_)) => {
            return Err(ApiError::new(
                "ValidationException",
                "Please specify either number of bytes or key spec, not both.",
            ));
        }
        (None, None) => {
            return Err(ApiError::new(
                "ValidationException",
                "Please specify either number of bytes or key spec.",
            ));
        }
        (Some("AES_256"), None) => 32,
        (Some("AES_128"), None) => 16,
        (Some(other), None) => {
            super::validate::one_of("keySpec", other, &["AES_256", "AES_128"])?;
            32
        }
        (None, Some(n)) if (1..=1024).contains(&n) => n as usize,
        (None, Some(_)) => {
            return Err(ApiError::validation(
                "numberOfBytes",
                "Member must have value between 1 and 1024",
            ));
        }
    };
    let key = usable(ctx, "keyId", key_id)?;
    let mut plaintext = vec![0u8; len];
    for chunk in plaintext.chunks_mut(32) {
        let r = blob::random::<32>();
        chunk.copy_from_slice(&r[..chunk.len()]);
    }
    let blob = seal(ctx, &key, &plaintext, &context, "GenerateDataKey").await?;
    Ok(json!({
        "CiphertextBlob": STANDARD.encode(blob),
        "Plaintext": STANDARD.encode(plaintext),
        "KeyId": key.arn,
    }))
}

/// `ReEncrypt`: decrypt under the source key, encrypt under the destination key.
pub async fn re_encrypt(ctx: &Ctx<'_>, input: &Input) -> Result<Value, ApiError> {
    no_dry_run(input)?;
    let ciphertext = ciphertext_input(input)?;
    let destination = input.req_str("DestinationKeyId")?;
    let source_context = input.context("SourceEncryptionContext")?;
    let destination_context = input.context("DestinationEncryptionContext")?;
    check_algorithm(input, "SourceEncryptionAlgorithm")?;
    check_algorithm(input, "DestinationEncryptionAlgorithm")?;
    let named = input.str("SourceKeyId")?;
    let dest = usable(ctx, "destinationKeyId", destination)?;
    let (source, plaintext) = open(ctx, &ciphertext, named, &source_context, "ReEncrypt").await?;
    let blob = seal(ctx, &dest, &plaintext, &destination_context, "ReEncrypt").await?;
    Ok(json!({
        "CiphertextBlob": STANDARD.encode(blob),
        "SourceKeyId": source.arn,
        "KeyId": dest.arn,
        "SourceEncryptionAlgorithm": ALGORITHM,
        "DestinationEncryptionAlgorithm": ALGORITHM,
    }))
}

//! Encrypt: AES-GCM under the key source's key; with a CDIV when KMS asks for one, in
//! which case the result is first proven to decrypt back to the plaintext.

use base64::{Engine, engine::general_purpose::STANDARD as B64};
use keyhold_sdk::KeySourceError;
use zeroize::Zeroizing;

use crate::xks::{
    error::XksError,
    ops::{KeyCall, Resp, ok_json, reopen},
    wire::{self, EncryptInput},
};

/// Answers Encrypt.
pub async fn encrypt(call: KeyCall<'_, EncryptInput>) -> Result<Resp, XksError> {
    let name = call.key.source_key.clone();
    let EncryptInput {
        plaintext,
        aad,
        want_cdiv,
    } = call.input;
    let (sealed, cdiv) = call
        .source
        .call("encrypt", move |s| {
            let name: &str = &name;
            let sealed = s
                .encrypt(
                    name.into(),
                    plaintext.as_slice().into(),
                    aad.as_slice().into(),
                )
                .into_result()?;
            if !want_cdiv {
                return Ok((sealed, None));
            }
            // CDIV first, then prove the result decrypts to the input.
            let cdiv = wire::cdiv(&aad, &[], &sealed.iv, &sealed.ciphertext, &sealed.tag);
            let back = Zeroizing::new(
                s.decrypt(name.into(), reopen(&sealed, &aad))
                    .into_result()?
                    .into_vec(),
            );
            if back.as_slice() != plaintext.as_slice() {
                return Err(KeySourceError::internal(
                    "encrypt result failed its verifying decrypt",
                ));
            }
            Ok((sealed, Some(cdiv)))
        })
        .await?;
    Ok(ok_json(&wire::EncryptResponse {
        ciphertext: B64.encode(&sealed.ciphertext),
        initialization_vector: B64.encode(&sealed.iv),
        authentication_tag: B64.encode(&sealed.tag),
        ciphertext_data_integrity_value: cdiv,
    }))
}

//! Decrypt: AES-GCM decryption under the key source's key; the plaintext is only ever
//! held in buffers that are zeroed when dropped.

use base64::{Engine, engine::general_purpose::STANDARD as B64};
use zeroize::Zeroizing;

use crate::xks::{
    error::XksError,
    ops::{KeyCall, Resp, ok_json},
    wire::{self, DecryptInput},
};

/// Answers Decrypt.
pub async fn decrypt(call: KeyCall<'_, DecryptInput>) -> Result<Resp, XksError> {
    let name = call.key.source_key.clone();
    let input = call.input;
    let plaintext = call
        .source
        .call("decrypt", move |s| {
            s.decrypt(
                (&*name).into(),
                keyhold_sdk::DecryptInput {
                    iv: input.iv.as_slice().into(),
                    ciphertext: input.ciphertext.as_slice().into(),
                    tag: input.tag.as_slice().into(),
                    aad: input.aad.as_slice().into(),
                },
            )
            .into_result()
            .map(|p| Zeroizing::new(p.into_vec()))
        })
        .await?;
    let encoded = Zeroizing::new(B64.encode(plaintext.as_slice()));
    Ok(ok_json(&wire::DecryptResponse {
        plaintext: encoded.as_str(),
    }))
}

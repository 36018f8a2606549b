//! GetKeyMetadata: the key's spec, usages and status, as its key source reports them
//! (a key blocked in keyhold reads as disabled).

use crate::xks::{
    error::XksError,
    ops::{KeyCall, Resp, ok_json},
    wire,
};

/// Most usages a metadata answer lists.
const MAX_USAGES: usize = 10;

/// Answers GetKeyMetadata.
pub async fn get_key_metadata(call: KeyCall<'_, ()>) -> Result<Resp, XksError> {
    let name = call.key.source_key.clone();
    let info = call
        .source
        .call("get_key", move |s| s.get_key((&*name).into()).into_result())
        .await?;
    let mut usage = info.usage.names();
    usage.truncate(MAX_USAGES);
    let enabled = info.enabled && !call.key.blocked;
    Ok(ok_json(&wire::MetadataResponse {
        key_spec: "AES_256",
        key_usage: usage,
        key_status: if enabled { "ENABLED" } else { "DISABLED" },
    }))
}

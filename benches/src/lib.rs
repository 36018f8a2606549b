//! Shared helpers of keyhold's criterion benchmarks and of the `xks-load` load tool:
//! XKS request bodies, SigV4 signing with AWS's own `aws-sigv4` crate, the conformance
//! configuration, and finding the plugin libraries that match the running profile.

use std::{
    path::{Path, PathBuf},
    time::SystemTime,
};

use aws_credential_types::Credentials;
use aws_sigv4::{
    http_request::{SignableBody, SignableRequest, SigningSettings, sign},
    sign::v4::SigningParams,
};
use aws_smithy_runtime_api::client::identity::Identity;
use base64::{Engine, engine::general_purpose::STANDARD as B64};
use serde_json::{Value, json};

/// The XKS SigV4 service name.
pub const SERVICE: &str = "kms-xks-proxy";
/// The region requests are signed for (any region is accepted).
pub const REGION: &str = "us-east-1";
/// The conformance store's URI path prefix (config/examples/conformance.toml).
pub const PREFIX: &str = "tenants/acme";
/// The conformance store's first access key id.
pub const ACCESS_KEY_ID: &str = "7MSKH6YXF3BEX3H3APGWHMI42G";
/// Its secret.
pub const SECRET: &str = "R2waUCZNy/ulj/7eURO1g5oc8XXokuDrR53OzOURNaM=";
/// The conformance store's key allowing encrypt and decrypt.
pub const KEY_ID: &str = "demo-key-1";
/// The conformance configuration, as checked in.
pub const CONFORMANCE_TOML: &str = include_str!("../../config/examples/conformance.toml");

/// One XKS operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, clap::ValueEnum)]
pub enum Op {
    /// GetHealthStatus.
    Health,
    /// GetKeyMetadata.
    Metadata,
    /// Encrypt.
    Encrypt,
    /// Decrypt.
    Decrypt,
}

impl Op {
    /// Lower-case name.
    pub fn name(self) -> &'static str {
        match self {
            Op::Health => "health",
            Op::Metadata => "metadata",
            Op::Encrypt => "encrypt",
            Op::Decrypt => "decrypt",
        }
    }

    /// The request path under `prefix` for key `key`.
    pub fn path(self, prefix: &str, key: &str) -> String {
        let base = base_path(prefix);
        match self {
            Op::Health => format!("{base}/health"),
            Op::Metadata => format!("{base}/keys/{key}/metadata"),
            Op::Encrypt => format!("{base}/keys/{key}/encrypt"),
            Op::Decrypt => format!("{base}/keys/{key}/decrypt"),
        }
    }
}

/// `[/<prefix>]/kms/xks/v1`.
pub fn base_path(prefix: &str) -> String {
    let prefix = prefix.trim_matches('/');
    if prefix.is_empty() {
        "/kms/xks/v1".into()
    } else {
        format!("/{prefix}/kms/xks/v1")
    }
}

const KEY_ARN: &str = "arn:aws:kms:us-east-1:111122223333:key/bench-0000-0000-0000-000000000000";
const PRINCIPAL: &str = "arn:aws:iam::111122223333:role/keyhold-bench";

fn metadata(kms_operation: &str) -> Value {
    json!({
        "awsPrincipalArn": PRINCIPAL,
        "kmsKeyArn": KEY_ARN,
        "kmsOperation": kms_operation,
        "kmsRequestId": "4112f4d6-db54-4af4-ae30-c55a22a8dfae",
    })
}

/// GetHealthStatus body.
pub fn health_body() -> Vec<u8> {
    json!({"requestMetadata": {
        "kmsRequestId": "4112f4d6-db54-4af4-ae30-c55a22a8dfae",
        "kmsOperation": "KmsHealthCheck",
    }})
    .to_string()
    .into_bytes()
}

/// GetKeyMetadata body.
pub fn metadata_body() -> Vec<u8> {
    json!({"requestMetadata": metadata("DescribeKey")})
        .to_string()
        .into_bytes()
}

/// A deterministic plaintext of `len` bytes.
pub fn plaintext(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 31 + 7) as u8).collect()
}

/// The AAD every benchmark request carries (KMS always sends some).
pub const AAD: &[u8] = b"kms-encryption-context=bench";

/// Encrypt body for `plaintext` (with AAD).
pub fn encrypt_body(plaintext: &[u8]) -> Vec<u8> {
    json!({
        "requestMetadata": metadata("Encrypt"),
        "plaintext": B64.encode(plaintext),
        "encryptionAlgorithm": "AES_GCM",
        "additionalAuthenticatedData": B64.encode(AAD),
    })
    .to_string()
    .into_bytes()
}

/// Decrypt body for a sealed value (base64 fields as an Encrypt response returns them).
pub fn decrypt_body(ciphertext_b64: &str, iv_b64: &str, tag_b64: &str) -> Vec<u8> {
    json!({
        "requestMetadata": metadata("Decrypt"),
        "ciphertext": ciphertext_b64,
        "initializationVector": iv_b64,
        "authenticationTag": tag_b64,
        "encryptionAlgorithm": "AES_GCM",
        "additionalAuthenticatedData": B64.encode(AAD),
    })
    .to_string()
    .into_bytes()
}

/// Turns an Encrypt response body into the matching Decrypt request body.
pub fn decrypt_body_from_encrypt_response(resp: &[u8]) -> Result<Vec<u8>, String> {
    let v: Value = serde_json::from_slice(resp).map_err(|e| format!("encrypt response: {e}"))?;
    let field = |name: &str| {
        v.get(name)
            .and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or_else(|| format!("encrypt response has no '{name}': {v}"))
    };
    Ok(decrypt_body(
        &field("ciphertext")?,
        &field("initializationVector")?,
        &field("authenticationTag")?,
    ))
}

/// Signs a request with AWS's `aws-sigv4` (headers `host`, `x-amz-date` and, when
/// present in `headers`, the others) and returns the headers to add (`x-amz-date`,
/// `authorization`).
#[allow(clippy::too_many_arguments)]
pub fn sigv4_headers(
    access_key_id: &str,
    secret: &str,
    method: &str,
    authority: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    at: SystemTime,
) -> Vec<(String, String)> {
    let identity: Identity =
        Credentials::new(access_key_id, secret, None, None, "keyhold-benches").into();
    let params = SigningParams::builder()
        .identity(&identity)
        .region(REGION)
        .name(SERVICE)
        .time(at)
        .settings(SigningSettings::default())
        .build()
        .expect("signing params are complete")
        .into();
    let mut all: Vec<(&str, &str)> = headers.to_vec();
    all.push(("host", authority));
    let uri = format!("http://{authority}{path}");
    let signable = SignableRequest::new(method, uri, all.into_iter(), SignableBody::Bytes(body))
        .expect("signable request");
    let (instructions, _signature) = sign(signable, &params)
        .expect("signing succeeds")
        .into_parts();
    instructions
        .headers()
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect()
}

/// Finds `libplugin_<name>.so` for the profile the current executable was built with:
/// `$BENCH_PLUGIN_DIR` if set, else the executable's directory, then its parent (a
/// bench binary lives in `target/<profile>/deps/`, where `cargo bench -p
/// keyhold-benches` also builds the plugins' cdylibs because this crate depends on
/// them; `cargo build [--release] -p plugin-ctm` puts them in `target/<profile>/`).
pub fn plugin_library(name: &str) -> Result<PathBuf, String> {
    let file = format!("libplugin_{}.so", name.replace('-', "_"));
    let mut dirs = Vec::new();
    if let Some(dir) = std::env::var_os("BENCH_PLUGIN_DIR") {
        dirs.push(PathBuf::from(dir));
    }
    if let Some(dir) = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(Path::to_path_buf))
    {
        let parent = dir.parent().map(Path::to_path_buf);
        dirs.push(dir);
        dirs.extend(parent);
    }
    dirs.iter()
        .map(|d| d.join(&file))
        .find(|p| p.is_file())
        .ok_or_else(|| {
            format!(
                "{file} not found in {dirs:?}; build it first: `cargo build --release -p plugin-{name}` \
                 (or set BENCH_PLUGIN_DIR)"
            )
        })
}

/// The conformance configuration with its data directory (and ctm master key) moved to
/// `data_dir`, listening on `listen`, and plugins loaded from `plugin_dir`.
pub fn conformance_config(data_dir: &Path, plugin_dir: &Path, listen: &str) -> String {
    let data = data_dir.display().to_string();
    let text = CONFORMANCE_TOML
        .replace(
            "data_dir = \"data/conformance\"",
            &format!("data_dir = {}", toml_str(&data)),
        )
        .replace(
            "\"data/conformance/ctm-master.key\"",
            &toml_str(&format!("{data}/ctm-master.key")),
        )
        .replace(
            "listen = \"127.0.0.1:8080\"",
            &format!("listen = {}", toml_str(listen)),
        );
    assert!(
        text.contains(&data),
        "config/examples/conformance.toml changed shape"
    );
    format!(
        "{text}\n[plugins]\ndir = {}\n",
        toml_str(&plugin_dir.display().to_string())
    )
}

fn toml_str(s: &str) -> String {
    serde_json::to_string(s).expect("a string serializes")
}

//! Request and response bodies of the four XKS operations, and their validation.
//!
//! Unknown fields are tolerated (the specification says new ones may appear). Every
//! refusal names the field.

use base64::{Engine, engine::general_purpose::STANDARD as B64};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use super::error::{XksError, XksErrorKind};

/// Largest plaintext or ciphertext keyhold accepts (the specification's minimum).
pub const MAX_DATA_BYTES: usize = 4300;
/// Largest additional authenticated data keyhold accepts.
pub const MAX_AAD_BYTES: usize = 8192;
/// Largest `ciphertextMetadata` the specification allows.
pub const MAX_METADATA_BYTES: usize = 20;

/// `requestMetadata`, as sent by AWS KMS.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RequestMetadata {
    /// Caller principal.
    pub aws_principal_arn: Option<String>,
    /// KMS key ARN.
    pub kms_key_arn: Option<String>,
    /// The KMS API that caused this call (never rejected when unknown).
    pub kms_operation: Option<String>,
    /// KMS request id (opaque, logged).
    pub kms_request_id: Option<String>,
    /// Source VPC.
    pub aws_source_vpc: Option<String>,
    /// Source VPC endpoint.
    pub aws_source_vpce: Option<String>,
    /// Calling AWS service.
    pub kms_via_service: Option<String>,
}

/// Body of GetHealthStatus (only the metadata; leniently parsed).
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HealthRequest {
    /// The metadata, if any.
    #[serde(default)]
    pub request_metadata: Option<RequestMetadata>,
}

/// Body of GetKeyMetadata.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MetadataRequest {
    /// The metadata.
    pub request_metadata: Option<RequestMetadata>,
}

/// Body of Encrypt.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EncryptRequest {
    /// The metadata.
    pub request_metadata: Option<RequestMetadata>,
    /// Base64 plaintext.
    pub plaintext: Option<String>,
    /// Must be `AES_GCM`.
    pub encryption_algorithm: Option<String>,
    /// Base64 AAD.
    pub additional_authenticated_data: Option<String>,
    /// `SHA_256` when KMS wants a CDIV.
    pub ciphertext_data_integrity_value_algorithm: Option<String>,
}

/// Body of Decrypt.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DecryptRequest {
    /// The metadata.
    pub request_metadata: Option<RequestMetadata>,
    /// Base64 ciphertext.
    pub ciphertext: Option<String>,
    /// Base64 ciphertext metadata (keyhold never emits it; accepted for completeness).
    pub ciphertext_metadata: Option<String>,
    /// Must be `AES_GCM`.
    pub encryption_algorithm: Option<String>,
    /// Base64 AAD.
    pub additional_authenticated_data: Option<String>,
    /// Base64 IV (12 or 16 bytes).
    pub initialization_vector: Option<String>,
    /// Base64 tag (16 bytes).
    pub authentication_tag: Option<String>,
}

/// Response of GetHealthStatus.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HealthResponse {
    /// Nodes of the proxy fleet.
    pub xks_proxy_fleet_size: u32,
    /// `keyhold`.
    pub xks_proxy_vendor: String,
    /// `keyhold <version>`.
    pub xks_proxy_model: String,
    /// Vendor of the key manager.
    pub ekm_vendor: String,
    /// 1..=10 key managers and their health.
    pub ekm_fleet_details: Vec<EkmFleetDetail>,
}

/// One `ekmFleetDetails` entry.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EkmFleetDetail {
    /// Key manager id.
    pub id: String,
    /// Key manager model.
    pub model: String,
    /// `ACTIVE`, `DEGRADED` or `UNAVAILABLE`.
    pub health_status: &'static str,
}

/// Response of GetKeyMetadata.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MetadataResponse {
    /// Always `AES_256`.
    pub key_spec: &'static str,
    /// Usage names, at most 10.
    pub key_usage: Vec<&'static str>,
    /// `ENABLED` or `DISABLED`.
    pub key_status: &'static str,
}

/// Response of Encrypt.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EncryptResponse {
    /// Base64 ciphertext.
    pub ciphertext: String,
    /// Base64 IV.
    pub initialization_vector: String,
    /// Base64 tag.
    pub authentication_tag: String,
    /// Base64 CDIV, when asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ciphertext_data_integrity_value: Option<String>,
}

/// Response of Decrypt.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DecryptResponse<'a> {
    /// Base64 plaintext (never logged: no Debug).
    pub plaintext: &'a str,
}

/// Parses a JSON body, mapping any syntax or type error to ValidationException.
pub fn parse_body<'a, T: Deserialize<'a>>(body: &'a [u8]) -> Result<T, XksError> {
    serde_json::from_slice(body)
        .map_err(|e| XksError::validation(format!("request body is not valid: {e}")))
}

/// Checks the metadata fields every key operation needs and returns it.
pub fn require_metadata(
    md: &Option<RequestMetadata>,
    needs_key_arn: bool,
) -> Result<&RequestMetadata, XksError> {
    let md = md
        .as_ref()
        .ok_or_else(|| XksError::validation("missing required field 'requestMetadata'"))?;
    let required = [
        ("kmsRequestId", md.kms_request_id.is_some()),
        ("kmsOperation", md.kms_operation.is_some()),
        ("awsPrincipalArn", md.aws_principal_arn.is_some()),
        ("kmsKeyArn", md.kms_key_arn.is_some() || !needs_key_arn),
    ];
    for (name, present) in required {
        if !present {
            return Err(XksError::validation(format!(
                "missing required field 'requestMetadata.{name}'"
            )));
        }
    }
    Ok(md)
}

/// A required string field.
pub fn required<'a>(value: &'a Option<String>, name: &str) -> Result<&'a str, XksError> {
    value
        .as_deref()
        .ok_or_else(|| XksError::validation(format!("missing required field '{name}'")))
}

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

/// Checks `encryptionAlgorithm`.
pub fn check_algorithm(value: Option<&String>) -> Result<(), XksError> {
    match value.map(String::as_str) {
        Some("AES_GCM") => Ok(()),
        None => Err(XksError::validation(
            "missing required field 'encryptionAlgorithm'",
        )),
        Some(other) => Err(XksError::new(
            XksErrorKind::UnsupportedOperation,
            format!(
                "encryptionAlgorithm '{}' is not supported (only AES_GCM)",
                other.chars().take(40).collect::<String>()
            ),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cdiv_matches_the_specification_example() {
        let d = |s: &str| B64.decode(s).unwrap();
        let value = cdiv(
            b"project=nile,department=marketing",
            b"key_version=1",
            &d("HMrlRw85cAJUd5Ax"),
            &d("ghxkK1txeDNn3q8Y"),
            &d("vBxN2ncH1oEkR8WVXpmyYQ=="),
        );
        assert_eq!(value, "qHA/ImC9h5HsLRXqCyPmWgYx7tzyoTplzILbP0fPXsc=");
    }

    #[test]
    fn aad_framing() {
        assert_eq!(effective_aad(b"ab", None), b"ab");
        assert_eq!(
            effective_aad(b"ab", Some(b"m")),
            [0, 2, b'a', b'b', 1, b'm']
        );
        assert_eq!(effective_aad(b"", Some(b"")), [0, 0, 0]);
        // Metadata moved into the AAD gives a different AES-GCM AAD.
        assert_ne!(
            effective_aad(b"m", Some(b"")),
            effective_aad(b"", Some(b"m"))
        );
    }

    #[test]
    fn base64_limits() {
        let at = B64.encode(vec![1u8; 4300]);
        assert_eq!(at.len(), 5736);
        assert_eq!(decode_b64(&at, "plaintext", 4300).unwrap().len(), 4300);
        let past = B64.encode(vec![1u8; 4301]);
        let e = decode_b64(&past, "plaintext", 4300).unwrap_err();
        assert_eq!(e.kind, XksErrorKind::UnsupportedOperation);
        let e = decode_b64("!!!!", "plaintext", 4300).unwrap_err();
        assert_eq!(e.kind, XksErrorKind::Validation);
        assert!(e.message.contains("plaintext"));
        assert_eq!(decode_b64("", "plaintext", 4300).unwrap().len(), 0);
    }

    #[test]
    fn algorithm() {
        assert!(check_algorithm(Some(&"AES_GCM".to_string())).is_ok());
        assert_eq!(
            check_algorithm(None).unwrap_err().kind,
            XksErrorKind::Validation
        );
        assert_eq!(
            check_algorithm(Some(&"AES_CBC".to_string()))
                .unwrap_err()
                .kind,
            XksErrorKind::UnsupportedOperation
        );
    }

    #[test]
    fn metadata_requirements() {
        let full: EncryptRequest = parse_body(
            br#"{"requestMetadata":{"awsPrincipalArn":"p","kmsKeyArn":"k","kmsOperation":"Encrypt","kmsRequestId":"r","futureField":1},"plaintext":"","encryptionAlgorithm":"AES_GCM","unknownTopLevel":true}"#,
        )
        .unwrap();
        assert!(require_metadata(&full.request_metadata, true).is_ok());
        let no_arn: EncryptRequest = parse_body(
            br#"{"requestMetadata":{"awsPrincipalArn":"p","kmsOperation":"Encrypt","kmsRequestId":"r"}}"#,
        )
        .unwrap();
        let e = require_metadata(&no_arn.request_metadata, true).unwrap_err();
        assert!(e.message.contains("kmsKeyArn"), "{e}");
        assert!(require_metadata(&no_arn.request_metadata, false).is_ok());
        let e = parse_body::<EncryptRequest>(b"{not json").unwrap_err();
        assert_eq!(e.kind, XksErrorKind::Validation);
        let e = parse_body::<EncryptRequest>(br#"{"plaintext": 5}"#).unwrap_err();
        assert_eq!(e.kind, XksErrorKind::Validation);
    }
}

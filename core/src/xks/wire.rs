//! Request and response bodies of the four XKS operations, and their validation into
//! the inputs the operations run on ([`EncryptInput`], [`DecryptInput`]).
//!
//! Unknown fields are tolerated (the specification says new ones may appear). Every
//! refusal names the field and the problem, never the field's content.

use serde::{Deserialize, Serialize, de::DeserializeOwned};
use zeroize::Zeroizing;

use super::error::{XksError, XksErrorKind};

mod fields;

pub use fields::{
    MAX_AAD_BYTES, MAX_DATA_BYTES, MAX_METADATA_BYTES, cdiv, check_algorithm, decode_b64,
    effective_aad,
};

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

/// Body of GetHealthStatus (only the metadata).
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

/// A key operation's request body. Handled in three steps, in this order: parsed
/// ([`parse_body`]), its `requestMetadata` checked ([`require_metadata`]), and, once the
/// key is known, its fields validated into the operation's input
/// ([`KeyRequest::validate`]).
pub trait KeyRequest: DeserializeOwned {
    /// What the operation runs on.
    type Input;
    /// Whether the operation uses the key's material: `requestMetadata.kmsKeyArn` is
    /// required, and a blocked key is refused.
    const CRYPTO: bool;
    /// `requestMetadata`, if sent.
    fn metadata(&self) -> &Option<RequestMetadata>;
    /// Checks and decodes the fields into the input.
    fn validate(self) -> Result<Self::Input, XksError>;
}

impl KeyRequest for MetadataRequest {
    type Input = ();
    const CRYPTO: bool = false;

    fn metadata(&self) -> &Option<RequestMetadata> {
        &self.request_metadata
    }

    fn validate(self) -> Result<(), XksError> {
        Ok(())
    }
}

/// Encrypt's validated input.
pub struct EncryptInput {
    /// The plaintext (at most [`MAX_DATA_BYTES`]).
    pub plaintext: Zeroizing<Vec<u8>>,
    /// The additional authenticated data (at most [`MAX_AAD_BYTES`]; empty if none).
    pub aad: Zeroizing<Vec<u8>>,
    /// Whether KMS asked for a Ciphertext Data Integrity Value.
    pub want_cdiv: bool,
}

impl KeyRequest for EncryptRequest {
    type Input = EncryptInput;
    const CRYPTO: bool = true;

    fn metadata(&self) -> &Option<RequestMetadata> {
        &self.request_metadata
    }

    fn validate(self) -> Result<EncryptInput, XksError> {
        check_algorithm(self.encryption_algorithm.as_ref())?;
        let plaintext = fields::required_b64(&self.plaintext, "plaintext", MAX_DATA_BYTES)?;
        let aad = fields::aad(&self.additional_authenticated_data)?;
        let want_cdiv = match self.ciphertext_data_integrity_value_algorithm.as_deref() {
            None => false,
            Some("SHA_256") => true,
            Some(_) => {
                return Err(XksError::new(
                    XksErrorKind::UnsupportedOperation,
                    "ciphertextDataIntegrityValueAlgorithm is not supported (only SHA_256)",
                ));
            }
        };
        Ok(EncryptInput {
            plaintext,
            aad,
            want_cdiv,
        })
    }
}

/// Decrypt's validated input.
pub struct DecryptInput {
    /// The ciphertext (at most [`MAX_DATA_BYTES`]).
    pub ciphertext: Zeroizing<Vec<u8>>,
    /// The IV: 12 or 16 bytes.
    pub iv: Zeroizing<Vec<u8>>,
    /// The authentication tag: 16 bytes.
    pub tag: Zeroizing<Vec<u8>>,
    /// The AES-GCM AAD: the request's AAD framed with its `ciphertextMetadata`, if any
    /// ([`effective_aad`]).
    pub aad: Zeroizing<Vec<u8>>,
}

impl KeyRequest for DecryptRequest {
    type Input = DecryptInput;
    const CRYPTO: bool = true;

    fn metadata(&self) -> &Option<RequestMetadata> {
        &self.request_metadata
    }

    fn validate(self) -> Result<DecryptInput, XksError> {
        check_algorithm(self.encryption_algorithm.as_ref())?;
        let ciphertext = fields::required_b64(&self.ciphertext, "ciphertext", MAX_DATA_BYTES)?;
        let iv = fields::exact_b64(
            &self.initialization_vector,
            "initializationVector",
            &[12, 16],
        )?;
        let tag = fields::exact_b64(&self.authentication_tag, "authenticationTag", &[16])?;
        let aad = fields::aad(&self.additional_authenticated_data)?;
        let metadata = self
            .ciphertext_metadata
            .as_deref()
            .map(fields::ciphertext_metadata)
            .transpose()?;
        let aad = Zeroizing::new(effective_aad(&aad, metadata.as_ref().map(|m| m.as_slice())));
        Ok(DecryptInput {
            ciphertext,
            iv,
            tag,
            aad,
        })
    }
}

/// Parses a JSON body; a syntax or type error is a ValidationException naming where
/// the body is wrong (the field, or the line and column), never what it holds.
pub fn parse_body<T: DeserializeOwned>(body: &[u8]) -> Result<T, XksError> {
    serde_json::from_slice(body).map_err(|_| invalid_body::<T>(body))
}

/// Why `body`, known not to parse as `T`, does not: parsed again, tracking the path
/// (only on this error path, so that a valid body is parsed once).
fn invalid_body<T: DeserializeOwned>(body: &[u8]) -> XksError {
    let mut de = serde_json::Deserializer::from_slice(body);
    let (field, e) = match serde_path_to_error::deserialize::<_, T>(&mut de) {
        Err(e) => {
            // A body that is no JSON object fails at its root, or in its first element.
            let field = match e.path().iter().next() {
                None | Some(serde_path_to_error::Segment::Seq { .. }) => None,
                Some(_) => Some(e.path().to_string()),
            };
            (field, e.into_inner())
        }
        Ok(_) => match de.end() {
            Err(e) => (None, e),
            Ok(()) => return XksError::validation("request body is not valid"),
        },
    };
    XksError::validation(match (e.classify(), field) {
        (serde_json::error::Category::Data, Some(field)) => {
            format!("field '{field}' has the wrong type or value")
        }
        (serde_json::error::Category::Data, None) => {
            "request body must be a JSON object".to_string()
        }
        _ => format!(
            "request body is not valid JSON (line {}, column {})",
            e.line(),
            e.column()
        ),
    })
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

/// Checks GetHealthStatus's metadata: `kmsRequestId` and `kmsOperation` present (the
/// specification's error table exempts health, but AWS KMS always sends both, and
/// AWS's sample proxy and conformance tooling refuse a request without them).
pub fn require_health_metadata(md: &Option<RequestMetadata>) -> Result<(), XksError> {
    let md = md
        .as_ref()
        .ok_or_else(|| XksError::validation("missing required field 'requestMetadata'"))?;
    for (name, present) in [
        ("kmsRequestId", md.kms_request_id.is_some()),
        ("kmsOperation", md.kms_operation.is_some()),
    ] {
        if !present {
            return Err(XksError::validation(format!(
                "missing required field 'requestMetadata.{name}'"
            )));
        }
    }
    Ok(())
}

/// A required string field.
pub fn required<'a>(value: &'a Option<String>, name: &str) -> Result<&'a str, XksError> {
    value
        .as_deref()
        .ok_or_else(|| XksError::validation(format!("missing required field '{name}'")))
}

#[cfg(test)]
mod tests;

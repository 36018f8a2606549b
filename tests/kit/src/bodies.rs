//! XKS request bodies as AWS KMS sends them, and the Encrypt result.

use base64::{Engine, engine::general_purpose::STANDARD as B64};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

/// `requestMetadata` of a key operation.
pub fn request_metadata(operation: &str) -> Value {
    json!({
        "awsPrincipalArn": "arn:aws:iam::111122223333:user/keyhold-tests",
        "kmsKeyArn": "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab",
        "kmsOperation": operation,
        "kmsRequestId": format!("req-{}", std::process::id()),
        "kmsViaService": "ebs",
    })
}

/// An Encrypt body.
pub fn encrypt(plaintext: &[u8], aad: Option<&[u8]>, cdiv: bool) -> Value {
    let mut body = json!({
        "requestMetadata": request_metadata("Encrypt"),
        "plaintext": B64.encode(plaintext),
        "encryptionAlgorithm": "AES_GCM",
    });
    if let Some(aad) = aad {
        body["additionalAuthenticatedData"] = B64.encode(aad).into();
    }
    if cdiv {
        body["ciphertextDataIntegrityValueAlgorithm"] = "SHA_256".into();
    }
    body
}

/// A Decrypt body.
pub fn decrypt(sealed: &Sealed, aad: Option<&[u8]>) -> Value {
    let mut body = json!({
        "requestMetadata": request_metadata("Decrypt"),
        "ciphertext": B64.encode(&sealed.ciphertext),
        "initializationVector": B64.encode(&sealed.iv),
        "authenticationTag": B64.encode(&sealed.tag),
        "encryptionAlgorithm": "AES_GCM",
    });
    if let Some(aad) = aad {
        body["additionalAuthenticatedData"] = B64.encode(aad).into();
    }
    body
}

/// A GetKeyMetadata body.
pub fn metadata() -> Value {
    json!({ "requestMetadata": request_metadata("DescribeKey") })
}

/// A GetHealthStatus body (only kmsRequestId and kmsOperation, as AWS sends it).
pub fn health() -> Value {
    json!({ "requestMetadata": { "kmsRequestId": "health-1", "kmsOperation": "KmsHealthCheck" } })
}

/// An Encrypt result, decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sealed {
    /// Ciphertext.
    pub ciphertext: Vec<u8>,
    /// IV.
    pub iv: Vec<u8>,
    /// Tag.
    pub tag: Vec<u8>,
    /// `ciphertextDataIntegrityValue`, when present.
    pub cdiv: Option<String>,
}

impl Sealed {
    /// Parses an Encrypt response.
    pub fn parse(json: &Value) -> Result<Sealed, String> {
        let field = |name: &str| -> Result<Vec<u8>, String> {
            let text = json[name]
                .as_str()
                .ok_or_else(|| format!("encrypt response lacks {name}: {json}"))?;
            B64.decode(text)
                .map_err(|e| format!("encrypt response field {name} is not base64: {e}"))
        };
        Ok(Sealed {
            ciphertext: field("ciphertext")?,
            iv: field("initializationVector")?,
            tag: field("authenticationTag")?,
            cdiv: json["ciphertextDataIntegrityValue"]
                .as_str()
                .map(str::to_string),
        })
    }

    /// Parses an Encrypt response that must be well-formed.
    #[track_caller]
    pub fn from_json(json: &Value) -> Sealed {
        Sealed::parse(json).unwrap_or_else(|e| panic!("{e}"))
    }

    /// The CDIV the specification defines (no ciphertext metadata).
    pub fn expected_cdiv(&self, aad: &[u8]) -> String {
        let mut h = Sha256::new();
        h.update(aad);
        h.update(&self.iv);
        h.update(&self.ciphertext);
        h.update(&self.tag);
        B64.encode(h.finalize())
    }
}

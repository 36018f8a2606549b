//! A node's id: `node.id` from the configuration, or one generated at the first start
//! and kept in `<data_dir>/node-id` so that a restarted node is the same node (its
//! audit chain and its registry entry keep their name).

use std::path::{Path, PathBuf};

/// The file in the data directory that keeps a generated id.
pub const NODE_ID_FILE: &str = "node-id";

/// Longest node id.
pub const MAX_NODE_ID_LEN: usize = 64;

/// Why a node id is refused or cannot be kept.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NodeIdError {
    /// The id breaks the naming rule.
    #[error("node id {id:?} is invalid: {reason}")]
    Invalid {
        /// The id (clipped).
        id: String,
        /// Which rule it breaks.
        reason: &'static str,
    },
    /// The id file cannot be read or written.
    #[error("node id file {path}: {reason}")]
    File {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
}

/// Checks a node id: 1 to 64 characters among ASCII letters, digits, `.`, `_` and `-`,
/// starting with a letter or digit (it names etcd keys and audit records).
pub fn validate_node_id(id: &str) -> Result<(), NodeIdError> {
    let invalid = |reason| NodeIdError::Invalid {
        id: id.chars().take(MAX_NODE_ID_LEN + 1).collect(),
        reason,
    };
    if id.is_empty() {
        return Err(invalid("it is empty"));
    }
    if id.len() > MAX_NODE_ID_LEN {
        return Err(invalid("it is longer than 64 characters"));
    }
    if !id
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    {
        return Err(invalid(
            "only ASCII letters, digits, '.', '_' and '-' are allowed",
        ));
    }
    if !id.as_bytes()[0].is_ascii_alphanumeric() {
        return Err(invalid("it must start with a letter or a digit"));
    }
    Ok(())
}

/// The node's id: `configured` when given (validated), else the id kept in
/// `data_dir/node-id`, generated (`node-` and 8 random hex digits) and written there
/// the first time.
pub fn load_or_create_node_id(
    configured: Option<&str>,
    data_dir: &Path,
) -> Result<String, NodeIdError> {
    if let Some(id) = configured {
        validate_node_id(id)?;
        return Ok(id.to_string());
    }
    let path = data_dir.join(NODE_ID_FILE);
    let file_error = |reason: String| NodeIdError::File {
        path: path.clone(),
        reason,
    };
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            let id = text.trim();
            validate_node_id(id)?;
            Ok(id.to_string())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let mut raw = [0u8; 4];
            crate::secrets::fill_random(&mut raw);
            let id = format!("node-{}", hex::encode(raw));
            crate::secrets::write_private_file(&path, format!("{id}\n").as_bytes())
                .map_err(|e| file_error(e.to_string()))?;
            Ok(id)
        }
        Err(e) => Err(file_error(e.to_string())),
    }
}

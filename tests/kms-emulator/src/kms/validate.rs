//! Field constraints of AWS's KMS service model (lengths, patterns, enums) for the
//! fields the emulator reads.

use crate::error::ApiError;

/// Checks a length in characters.
pub fn length(field: &str, value: &str, min: usize, max: usize) -> Result<(), ApiError> {
    let n = value.chars().count();
    if n < min || n > max {
        return Err(ApiError::validation(
            field,
            format!("Member must have length between {min} and {max}"),
        ));
    }
    Ok(())
}

/// Checks membership of an enum.
pub fn one_of(field: &str, value: &str, allowed: &[&str]) -> Result<(), ApiError> {
    if allowed.contains(&value) {
        Ok(())
    } else {
        Err(ApiError::validation(
            field,
            format!(
                "Member must satisfy enum value set: [{}]",
                allowed.join(", ")
            ),
        ))
    }
}

/// `XksProxyUriEndpoint`: `https://` and a host name (the model's pattern), plus an
/// optional `:port` (an emulator extension, so that loopback proxies on any port work).
pub fn uri_endpoint(value: &str) -> Result<(), ApiError> {
    let field = "xksProxyUriEndpoint";
    length(field, value, 10, 128)?;
    let Some(authority) = value.strip_prefix("https://") else {
        return Err(ApiError::validation(
            field,
            "Member must start with https://",
        ));
    };
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) => (h, Some(p)),
        None => (authority, None),
    };
    let host_ok = !host.is_empty()
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-');
    let port_ok = port.is_none_or(|p| p.parse::<u16>().is_ok_and(|n| n > 0));
    if !host_ok || !port_ok {
        return Err(ApiError::validation(
            field,
            "Member must satisfy regular expression pattern: ^https://[a-zA-Z0-9.-]+(:port)?$",
        ));
    }
    Ok(())
}

/// `XksProxyUriPath`: `[/prefix]/kms/xks/v<1-2 digits>`.
pub fn uri_path(value: &str) -> Result<(), ApiError> {
    let field = "xksProxyUriPath";
    length(field, value, 10, 128)?;
    let bad = || {
        ApiError::validation(
            field,
            "Member must satisfy regular expression pattern: ^(/[a-zA-Z0-9/_-]+/kms/xks/v\\d{1,2})$|^(/kms/xks/v\\d{1,2})$",
        )
    };
    let Some((prefix, version)) = value.rsplit_once("/kms/xks/v") else {
        return Err(bad());
    };
    if version.is_empty() || version.len() > 2 || !version.chars().all(|c| c.is_ascii_digit()) {
        return Err(bad());
    }
    if !prefix.is_empty() {
        let ok = prefix.starts_with('/')
            && prefix.len() > 1
            && prefix
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "/_-".contains(c));
        if !ok {
            return Err(bad());
        }
    }
    Ok(())
}

/// `XksProxyVpcEndpointServiceName`.
pub fn vpc_service_name(value: &str) -> Result<(), ApiError> {
    let field = "xksProxyVpcEndpointServiceName";
    length(field, value, 20, 64)?;
    let ok = (value.starts_with("com.amazonaws.vpce.") || value.starts_with("eu.amazonaws.vpce."))
        && value.contains(".vpce-svc-")
        && value
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || ".-".contains(c));
    if !ok {
        return Err(ApiError::validation(
            field,
            "Member must satisfy regular expression pattern: ^(com|eu)\\.amazonaws\\.vpce\\.([a-z]+-){2,3}\\d+\\.vpce-svc-[0-9a-z]+$",
        ));
    }
    Ok(())
}

/// An AWS account id (12 digits).
pub fn account_id(field: &str, value: &str) -> Result<(), ApiError> {
    if value.len() == 12 && value.chars().all(|c| c.is_ascii_digit()) {
        Ok(())
    } else {
        Err(ApiError::validation(
            field,
            "Member must be a 12-digit account id",
        ))
    }
}

/// The proxy credential: access key id (20..30 of `A-Z2-7`) and secret (43..64 of
/// base64 characters).
pub fn credential(access_key_id: &str, secret: &str) -> Result<(), ApiError> {
    let f = "xksProxyAuthenticationCredential.accessKeyId";
    length(f, access_key_id, 20, 30)?;
    if !access_key_id
        .chars()
        .all(|c| c.is_ascii_uppercase() || ('2'..='7').contains(&c))
    {
        return Err(ApiError::validation(
            f,
            "Member must satisfy regular expression pattern: ^[A-Z2-7]+$",
        ));
    }
    let f = "xksProxyAuthenticationCredential.rawSecretAccessKey";
    length(f, secret, 43, 64)?;
    if !secret
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "/+=".contains(c))
    {
        return Err(ApiError::validation(
            f,
            "Member must satisfy regular expression pattern: ^[a-zA-Z0-9/+=]+$",
        ));
    }
    Ok(())
}

/// `XksKeyId`: 1..128 of `[a-zA-Z0-9-_.]`.
pub fn xks_key_id(value: &str) -> Result<(), ApiError> {
    let f = "xksKeyId";
    length(f, value, 1, 128)?;
    if !value
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
    {
        return Err(ApiError::validation(
            f,
            "Member must satisfy regular expression pattern: ^[a-zA-Z0-9-_.]+$",
        ));
    }
    Ok(())
}

/// `Limit`: 1..1000.
pub fn limit(value: Option<i64>) -> Result<usize, ApiError> {
    match value {
        None => Ok(100),
        Some(n) if (1..=1000).contains(&n) => Ok(n as usize),
        Some(_) => Err(ApiError::validation(
            "limit",
            "Member must have value between 1 and 1000",
        )),
    }
}

/// A paging `Marker`: the position it encodes, within `len` items.
pub fn marker(value: Option<&str>, len: usize) -> Result<usize, ApiError> {
    match value {
        None => Ok(0),
        Some(m) => match m.strip_prefix("emu-").and_then(|n| n.parse::<usize>().ok()) {
            Some(n) if n <= len => Ok(n),
            _ => Err(ApiError::new(
                "InvalidMarkerException",
                "The marker is not valid",
            )),
        },
    }
}

/// The marker of position `n`.
pub fn next_marker(n: usize) -> String {
    format!("emu-{n}")
}

#[cfg(test)]
mod tests;

//! STS on the emulator's endpoint (AWS Query protocol: form body in, XML out):
//! `AssumeRole` and `GetCallerIdentity`.

use std::time::{Duration, SystemTime};

use time::{OffsetDateTime, format_description::well_known::Rfc3339};

use crate::{
    principals::{AssumeRoleRefusal, Principal},
    state::{SharedRef, uuid},
};

const NS: &str = "https://sts.amazonaws.com/doc/2011-06-15/";

/// An STS answer: HTTP status and XML body (errors carry their code too).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StsAnswer {
    /// HTTP status.
    pub status: u16,
    /// The XML body.
    pub body: String,
    /// The error code, if an error.
    pub error_code: Option<&'static str>,
}

/// Decodes an `application/x-www-form-urlencoded` body.
pub fn parse_form(body: &[u8]) -> Vec<(String, String)> {
    let text = String::from_utf8_lossy(body);
    text.split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (decode(k), decode(v))
        })
        .collect()
}

fn decode(s: &str) -> String {
    let spaced = s.replace('+', " ");
    percent_encoding::percent_decode_str(&spaced)
        .decode_utf8_lossy()
        .into_owned()
}

/// Escapes text for XML.
pub fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&apos;")
}

/// An STS XML error.
pub fn error(status: u16, code: &'static str, message: &str) -> StsAnswer {
    let kind = if status >= 500 { "Receiver" } else { "Sender" };
    StsAnswer {
        status,
        body: format!(
            "<ErrorResponse xmlns=\"{NS}\"><Error><Type>{kind}</Type><Code>{code}</Code><Message>{}</Message></Error><RequestId>{}</RequestId></ErrorResponse>",
            xml_escape(message),
            uuid()
        ),
        error_code: Some(code),
    }
}

fn ok(action: &str, result: String) -> StsAnswer {
    StsAnswer {
        status: 200,
        body: format!(
            "<{action}Response xmlns=\"{NS}\"><{action}Result>{result}</{action}Result><ResponseMetadata><RequestId>{}</RequestId></ResponseMetadata></{action}Response>",
            uuid()
        ),
        error_code: None,
    }
}

/// The `Action` of a form.
pub fn action(form: &[(String, String)]) -> Option<&str> {
    param(form, "Action")
}

fn param<'a>(form: &'a [(String, String)], name: &str) -> Option<&'a str> {
    form.iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// Runs an STS action for `caller`.
pub fn handle(shared: &SharedRef, caller: &Principal, form: &[(String, String)]) -> StsAnswer {
    match action(form) {
        Some("GetCallerIdentity") => ok(
            "GetCallerIdentity",
            format!(
                "<Arn>{}</Arn><UserId>{}</UserId><Account>{}</Account>",
                xml_escape(&caller.arn),
                xml_escape(&caller.user_id),
                xml_escape(&shared.config.account_id)
            ),
        ),
        Some("AssumeRole") => assume_role(shared, caller, form),
        Some(other) => error(
            400,
            "InvalidAction",
            &format!(
                "The action {other} is not valid for this endpoint (the KMS emulator implements AssumeRole and GetCallerIdentity)"
            ),
        ),
        None => error(400, "MissingAction", "The request lacks an Action"),
    }
}

fn assume_role(shared: &SharedRef, caller: &Principal, form: &[(String, String)]) -> StsAnswer {
    let Some(role_arn) = param(form, "RoleArn") else {
        return error(
            400,
            "ValidationError",
            "1 validation error detected: Value null at 'roleArn' failed to satisfy constraint: Member must not be null",
        );
    };
    let Some(session) = param(form, "RoleSessionName") else {
        return error(
            400,
            "ValidationError",
            "1 validation error detected: Value null at 'roleSessionName' failed to satisfy constraint: Member must not be null",
        );
    };
    let duration = match param(form, "DurationSeconds").map(str::parse::<u64>) {
        None => 3600,
        Some(Ok(d)) if (900..=43_200).contains(&d) => d,
        Some(_) => {
            return error(
                400,
                "ValidationError",
                "DurationSeconds must be between 900 and 43200",
            );
        }
    };
    let now = SystemTime::now();
    match shared.directory.assume_role(
        caller,
        role_arn,
        session,
        Duration::from_secs(duration),
        now,
    ) {
        Ok(c) => {
            let expiration = OffsetDateTime::from(c.expiration)
                .replace_nanosecond(0)
                .ok()
                .and_then(|t| t.format(&Rfc3339).ok())
                .unwrap_or_default();
            ok(
                "AssumeRole",
                format!(
                    "<AssumedRoleUser><AssumedRoleId>{}</AssumedRoleId><Arn>{}</Arn></AssumedRoleUser><Credentials><AccessKeyId>{}</AccessKeyId><SecretAccessKey>{}</SecretAccessKey><SessionToken>{}</SessionToken><Expiration>{}</Expiration></Credentials>",
                    xml_escape(&c.assumed_role_id),
                    xml_escape(&c.arn),
                    c.access_key_id,
                    xml_escape(&c.secret_access_key),
                    xml_escape(&c.session_token),
                    expiration
                ),
            )
        }
        Err(AssumeRoleRefusal::AccessDenied(m)) => error(403, "AccessDenied", &m),
        Err(AssumeRoleRefusal::Validation(m)) => error(400, "ValidationError", &m),
    }
}

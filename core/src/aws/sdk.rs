//! [`super::Kms`] on `aws-sdk-kms` (work in progress: replaced by the SDK client).

use std::sync::Arc;

use super::{AwsError, AwsErrorKind, AwsSettings, Kms};

/// The client of `settings` (cached per settings).
pub fn connect(settings: &AwsSettings) -> Result<Arc<dyn Kms>, AwsError> {
    Err(AwsError::new(
        AwsErrorKind::Config,
        format!("no AWS client for region {} yet", settings.region),
    ))
}

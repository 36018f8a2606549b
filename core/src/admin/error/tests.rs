use http_body_util::BodyExt;

use super::*;
use crate::aws::AwsError;

async fn body(e: ApiError) -> (StatusCode, serde_json::Value) {
    let resp = e.into_response();
    let status = resp.status();
    let bytes = resp.into_body().collect().await.expect("body").to_bytes();
    (status, serde_json::from_slice(&bytes).expect("JSON"))
}

#[tokio::test]
async fn aws_errors_name_aws_error_code() {
    let e = OpError::Aws(AwsError::service(
        "CustomKeyStoreInvalidStateException",
        "AWS KMS DeleteCustomKeyStore failed: ...; disconnect the key store first",
    ));
    let (status, json) = body(e.into()).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(json["error"]["code"], "aws_error");
    assert_eq!(
        json["error"]["aws_error_code"],
        "CustomKeyStoreInvalidStateException"
    );
    assert!(
        json["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("disconnect the key store first")),
        "{json}"
    );
}

#[tokio::test]
async fn other_errors_have_no_aws_error_code() {
    let (status, json) = body(OpError::Input("bad".into()).into()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(json["error"].get("aws_error_code").is_none(), "{json}");
}

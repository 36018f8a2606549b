//! Unit tests of the model's field constraints.

use super::*;

#[test]
fn endpoints_and_paths() {
    for ok in [
        "https://xks.example.com",
        "https://localhost:8443",
        "https://127.0.0.1:1",
    ] {
        assert!(uri_endpoint(ok).is_ok(), "{ok}");
    }
    for bad in [
        "http://xks.example.com",
        "https://",
        "https://a_b.example.com",
        "https://host:0",
        "https://host:x",
    ] {
        let e = uri_endpoint(bad).expect_err(bad);
        assert_eq!(e.code, "ValidationException");
        assert!(e.message.contains("xksProxyUriEndpoint"), "{}", e.message);
    }
    for ok in [
        "/kms/xks/v1",
        "/tenants/acme/kms/xks/v1",
        "/a_b-c/kms/xks/v12",
    ] {
        assert!(uri_path(ok).is_ok(), "{ok}");
    }
    for bad in [
        "/kms/xks/v",
        "/kms/xks/v123",
        "tenants/kms/xks/v1",
        "/a b/kms/xks/v1",
        "/kms/xks/w1x",
    ] {
        assert!(uri_path(bad).is_err(), "{bad}");
    }
}

#[test]
fn credentials_and_key_ids() {
    assert!(
        credential(
            "7MSKH6YXF3BEX3H3APGWHMI42G",
            "R2waUCZNy/ulj/7eURO1g5oc8XXokuDrR53OzOURNaM="
        )
        .is_ok()
    );
    assert!(credential("SHORT", "R2waUCZNy/ulj/7eURO1g5oc8XXokuDrR53OzOURNaM=").is_err());
    assert!(
        credential(
            "7MSKH6YXF3BEX3H3APGWHMI421",
            "R2waUCZNy/ulj/7eURO1g5oc8XXokuDrR53OzOURNaM="
        )
        .is_err()
    );
    assert!(credential("7MSKH6YXF3BEX3H3APGWHMI42G", "too-short").is_err());
    assert!(xks_key_id("demo-key_1.v2").is_ok());
    assert!(xks_key_id("no/slash").is_err());
    assert!(xks_key_id("").is_err());
    assert!(vpc_service_name("com.amazonaws.vpce.eu-west-1.vpce-svc-0123456789abcdef0").is_ok());
    assert!(vpc_service_name("vpce-svc-0123456789abcdef0xx").is_err());
}

#[test]
fn paging() {
    assert_eq!(limit(None), Ok(100));
    assert!(limit(Some(0)).is_err());
    assert!(limit(Some(1001)).is_err());
    assert_eq!(marker(None, 3), Ok(0));
    assert_eq!(marker(Some(&next_marker(2)), 3), Ok(2));
    assert_eq!(
        marker(Some("emu-9"), 3).map_err(|e| e.code),
        Err("InvalidMarkerException")
    );
    assert_eq!(
        marker(Some("garbage"), 3).map_err(|e| e.code),
        Err("InvalidMarkerException")
    );
}

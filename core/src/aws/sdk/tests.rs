use std::time::Duration;

use zeroize::Zeroizing;

use super::*;
use crate::model::StsRegionalEndpoints;

fn settings() -> AwsSettings {
    AwsSettings {
        connection: "prod".into(),
        region: "eu-west-1".into(),
        access_key_id: "AKIAIOSFODNN7EXAMPLE".into(),
        secret_access_key: Zeroizing::new("wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY".into()),
        role_arn: None,
        endpoint_url: None,
        sts_endpoint_url: None,
        sts_regional_endpoints: StsRegionalEndpoints::Regional,
        ca_pem: None,
        limits: AwsLimits::default(),
    }
}

#[test]
fn connection_states_map_from_aws_names() {
    for s in [
        ConnectionState::Connected,
        ConnectionState::Connecting,
        ConnectionState::Disconnected,
        ConnectionState::Disconnecting,
        ConnectionState::Failed,
    ] {
        assert_eq!(connection_state(s.as_str()), s);
    }
    assert_eq!(connection_state("SOMETHING_NEW"), ConnectionState::Failed);
}

#[test]
fn fingerprints_change_with_every_setting() {
    let base = fingerprint(&settings());
    assert_eq!(base, fingerprint(&settings()));
    let changes: [fn(&mut AwsSettings); 6] = [
        |s| s.secret_access_key = Zeroizing::new("other".into()),
        |s| s.region = "us-east-1".into(),
        |s| s.role_arn = Some("arn:aws:iam::111122223333:role/r".into()),
        |s| s.sts_regional_endpoints = StsRegionalEndpoints::Legacy,
        |s| s.ca_pem = Some(b"pem".to_vec()),
        |s| s.limits.max_attempts = 1,
    ];
    for change in changes {
        let mut s = settings();
        change(&mut s);
        assert_ne!(fingerprint(&s), base, "{s:?}");
    }
}

#[tokio::test]
async fn connect_reuses_the_client_of_the_same_settings() {
    let a = connect(&settings()).expect("client");
    let b = connect(&settings()).expect("client");
    assert!(Arc::ptr_eq(&a, &b));
    let mut other = settings();
    other.limits.attempt_timeout = Duration::from_secs(1);
    let c = connect(&other).expect("client");
    assert!(!Arc::ptr_eq(&a, &c));
}

#[test]
fn bad_settings_are_config_errors() {
    let mut s = settings();
    s.endpoint_url = Some("kms.example.test".into());
    let e = SdkKms::new(&s).expect_err("no scheme");
    assert_eq!(e.kind, AwsErrorKind::Config);
    assert!(e.message.contains("endpoint_url"), "{}", e.message);
    let mut s = settings();
    s.ca_pem = Some(b"not a certificate".to_vec());
    let e = SdkKms::new(&s).expect_err("bad CA");
    assert_eq!(e.kind, AwsErrorKind::Config);
    assert!(e.message.contains("CA file"), "{}", e.message);
}

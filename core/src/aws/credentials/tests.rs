use super::*;

#[test]
fn sts_endpoint_follows_the_override_then_the_mode() {
    let cases = [
        (
            Some("https://sts.example.test:8443"),
            StsRegionalEndpoints::Legacy,
            "eu-west-1",
            ("https://sts.example.test:8443", "us-east-1"),
        ),
        (
            Some("https://sts.example.test:8443"),
            StsRegionalEndpoints::Regional,
            "eu-west-1",
            ("https://sts.example.test:8443", "eu-west-1"),
        ),
        (
            None,
            StsRegionalEndpoints::Regional,
            "eu-west-1",
            ("https://sts.eu-west-1.amazonaws.com", "eu-west-1"),
        ),
        (
            None,
            StsRegionalEndpoints::Legacy,
            "eu-west-1",
            ("https://sts.amazonaws.com", "us-east-1"),
        ),
    ];
    for (url, mode, region, (want_url, want_region)) in cases {
        let (u, r) = sts_endpoint(url, mode, region);
        assert_eq!(
            (u.as_str(), r.as_str()),
            (want_url, want_region),
            "{url:?} {mode:?}"
        );
    }
}

#[test]
fn session_names_are_what_sts_accepts() {
    assert_eq!(session_name("prod"), "keyhold-prod");
    assert_eq!(session_name("a b/c"), "keyhold-a-b-c");
    assert_eq!(session_name(&"x".repeat(100)).len(), 64);
}

#[tokio::test]
async fn fixed_keys_resolve_to_themselves() {
    let keys = Credentials::new("AKIDEXAMPLE", "secret", None, None, "test");
    let c = ConnectionCredentials::fixed(keys.clone());
    let got = c.resolve().await.expect("fixed keys");
    assert_eq!(got.access_key_id(), "AKIDEXAMPLE");
    let provided = c.provide_credentials().await.expect("provided");
    assert_eq!(provided.secret_access_key(), "secret");
}

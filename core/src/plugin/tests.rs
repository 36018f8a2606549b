use super::version_in_model;

#[test]
fn a_plugin_version_is_the_last_word_of_its_model() {
    let cases = [
        ("keyhold ctm software keystore 0.1.0", Some("0.1.0")),
        ("keyhold PKCS#11 (Luna) plugin 0.1.0", Some("0.1.0")),
        ("Acme HSM connector v2.3", Some("v2.3")),
        ("Acme 1.2.3-rc.1", Some("1.2.3-rc.1")),
        ("Acme 1.2.3+build.7", Some("1.2.3+build.7")),
        ("keyhold slow in-memory test source", None),
        ("model 7", None),
        ("model 1..2", None),
        ("model 1.2.x", None),
        ("", None),
        ("model 1.2.3\u{202e}", None),
    ];
    for (model, want) in cases {
        assert_eq!(version_in_model(model).as_deref(), want, "{model:?}");
    }
}

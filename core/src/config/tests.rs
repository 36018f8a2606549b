use super::*;

const MINIMAL: &str = r#"
data_dir = "d"
[xks]
listen = "127.0.0.1:0"
plain_http = true
"#;

fn err_of(text: &str) -> String {
    Config::from_toml(text).unwrap_err().to_string()
}

#[test]
fn embedded_defaults_and_examples_parse() {
    let c = Config::from_toml(EMBEDDED_DEFAULTS).unwrap();
    assert_eq!(c.stores.len(), 1);
    assert!(!c.xks.plain_http, "the embedded defaults serve HTTPS");
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../config/examples/conformance.toml"
    ))
    .unwrap();
    let c = Config::from_toml(&text).unwrap();
    assert_eq!(c.xks.listen.to_string(), "127.0.0.1:8080");
    assert_eq!(c.stores[0].credentials.len(), 2);
    assert_eq!(c.stores[0].keys.len(), 4);
}

#[test]
#[allow(clippy::result_large_err)] // figment::Jail's closure signature
fn environment_overrides_nested_keys() {
    figment::Jail::expect_with(|jail| {
        jail.create_file("k.toml", MINIMAL)?;
        jail.set_env("KEYHOLD_XKS__LISTEN", "127.0.0.1:9999");
        jail.set_env("KEYHOLD_XKS__FLEET_SIZE", "3");
        // Not configuration: a secret or PIN some `*_env` setting points at.
        jail.set_env("KEYHOLD_ROOT_PASSWORD", "s3cret-s3cret");
        jail.set_env("KEYHOLD_TEST_SOMETHING", "1");
        let c = Config::load(Some(Path::new("k.toml"))).unwrap();
        assert_eq!(c.xks.listen.to_string(), "127.0.0.1:9999");
        assert_eq!(c.xks.fleet_size, 3);
        Ok(())
    });
}

#[test]
fn bad_values_name_the_key() {
    let e = err_of(&MINIMAL.replace("127.0.0.1:0", "not-an-address"));
    assert!(e.contains("listen"), "{e}");
    let e = err_of(&format!("{MINIMAL}lisen = 1\n"));
    assert!(e.contains("lisen"), "{e}");
    let e = err_of(&format!("{MINIMAL}health_cache_seconds = 61\n"));
    assert!(e.contains("xks.health_cache_seconds"), "{e}");
    let e = err_of(&format!(
        "{MINIMAL}[[stores]]\nname = \"a\"\nsource = \"nope\"\nhealth_check_key = \"h\"\n"
    ));
    assert!(e.contains("stores[0].source"), "{e}");
}

#[test]
fn store_declarations_are_checked() {
    let base = format!("{MINIMAL}[sources.s]\nplugin = \"ctm\"\n");
    let store = "[[stores]]\nname = \"a\"\nsource = \"s\"\nhealth_check_key = \"h\"\n";
    assert!(Config::from_toml(&format!("{base}{store}")).is_ok());
    let e = err_of(&format!("{base}{store}uri_path_prefix = \"a b\"\n"));
    assert!(e.contains("stores[0].uri_path_prefix"), "{e}");
    let e = err_of(&format!("{base}{store}max_credentials = 21\n"));
    assert!(e.contains("stores[0].max_credentials"), "{e}");
    let e = err_of(&format!(
        "{base}{store}[[stores.keys]]\nid = \"k\"\nusage = [\"sign\"]\n"
    ));
    assert!(
        e.contains("stores[0].keys[0].usage") && e.contains("sign"),
        "{e}"
    );
    let e = err_of(&format!(
        "{base}{store}[[stores.keys]]\nid = \"bad/id\"\nusage = [\"encrypt\"]\n"
    ));
    assert!(e.contains("stores[0].keys[0].id"), "{e}");
    let e = err_of(&format!(
        "{base}{store}[[stores.credentials]]\naccess_key_id = \"SHORT\"\nsecret = \"x\"\n"
    ));
    assert!(e.contains("stores[0].credentials[0].access_key_id"), "{e}");
    let e = err_of(&format!(
        "{base}{store}[[stores.credentials]]\naccess_key_id = \"AAAAAAAAAAAAAAAAAAAA\"\nsecret = \"tooshort\"\n"
    ));
    assert!(e.contains("stores[0].credentials[0].secret"), "{e}");
    assert!(!e.contains("tooshort"), "a secret is never echoed: {e}");
    let e = err_of(&format!("{base}{store}{store}"));
    assert!(e.contains("declared twice"), "{e}");
}

#[test]
fn missing_file_is_named() {
    let e = Config::load(Some(Path::new("/nonexistent/keyhold.toml")))
        .unwrap_err()
        .to_string();
    assert!(e.contains("/nonexistent/keyhold.toml"), "{e}");
}

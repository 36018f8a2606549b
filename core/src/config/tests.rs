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

/// `config/examples/cluster-node{1,2,3}.toml` (what `scripts/cluster.sh` starts) parse,
/// put every node on the same etcd with the same keys, and differ only where nodes must.
#[test]
fn cluster_examples_parse_and_share_what_nodes_must_share() {
    let nodes: Vec<Config> = (1..=3)
        .map(|n| {
            let path = format!(
                "{}/../config/examples/cluster-node{n}.toml",
                env!("CARGO_MANIFEST_DIR")
            );
            let text = std::fs::read_to_string(&path).unwrap();
            Config::from_toml(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
        })
        .collect();
    let first = &nodes[0];
    let etcd = first.store.etcd.as_ref().unwrap();
    assert_eq!(first.store.backend, StoreBackend::Etcd);
    assert_eq!(etcd.endpoints.len(), 3);
    assert!(first.secrets.master_key_file.is_some());
    assert!(first.admin.listen.is_some(), "admin enabled");
    for (n, node) in nodes.iter().enumerate() {
        let e = node.store.etcd.as_ref().unwrap();
        assert_eq!(node.store.backend, StoreBackend::Etcd, "node {n}");
        assert_eq!((&e.endpoints, &e.prefix), (&etcd.endpoints, &etcd.prefix));
        assert_eq!(node.secrets.master_key_file, first.secrets.master_key_file);
        assert_eq!(node.sources["ctm"].config, first.sources["ctm"].config);
        assert_eq!(
            node.sources["ctm"].config.get("generate_master_key"),
            None,
            "a node never generates the cluster's ctm key"
        );
        assert_eq!(node.admin.root_password_env, first.admin.root_password_env);
        assert_eq!(node.stores.len(), 1);
        assert_eq!(node.stores[0].name, first.stores[0].name);
    }
    let distinct = |f: &dyn Fn(&Config) -> String| {
        let all: std::collections::BTreeSet<String> = nodes.iter().map(f).collect();
        assert_eq!(all.len(), 3);
    };
    distinct(&|c| c.data_dir.display().to_string());
    distinct(&|c| c.xks.listen.to_string());
    distinct(&|c| format!("{:?}", c.admin.listen));
}

#[test]
#[allow(clippy::result_large_err)] // figment::Jail's closure signature
fn environment_overrides_nested_keys() {
    figment::Jail::expect_with(|jail| {
        jail.create_file("k.toml", MINIMAL)?;
        jail.set_env("KEYHOLD_XKS__LISTEN", "127.0.0.1:9999");
        jail.set_env("KEYHOLD_XKS__MAX_IN_FLIGHT", "3");
        // Not configuration: a secret or PIN some `*_env` setting points at.
        jail.set_env("KEYHOLD_ROOT_PASSWORD", "s3cret-s3cret");
        jail.set_env("KEYHOLD_TEST_SOMETHING", "1");
        let c = Config::load(Some(Path::new("k.toml"))).unwrap();
        assert_eq!(c.xks.listen.to_string(), "127.0.0.1:9999");
        assert_eq!(c.xks.max_in_flight, 3);
        Ok(())
    });
}

/// Each config text is refused with an error that names the key (and echoes no secret).
fn refused_naming(cases: &[(String, &str)]) {
    for (text, named) in cases {
        let e = err_of(text);
        assert!(e.contains(named), "{named}: {e}");
        assert!(!e.contains("tooshort"), "a secret is never echoed: {e}");
    }
}

#[test]
fn bad_values_name_the_key() {
    refused_naming(&[
        (MINIMAL.replace("127.0.0.1:0", "not-an-address"), "listen"),
        (format!("{MINIMAL}lisen = 1\n"), "lisen"),
        (
            format!("{MINIMAL}health_cache_seconds = 61\n"),
            "xks.health_cache_seconds",
        ),
        (
            format!(
                "{MINIMAL}[[stores]]\nname = \"a\"\nsource = \"nope\"\nhealth_check_key = \"h\"\n"
            ),
            "stores[0].source",
        ),
    ]);
}

#[test]
fn store_declarations_are_checked() {
    let base = format!("{MINIMAL}[sources.s]\nplugin = \"ctm\"\n");
    let store = "[[stores]]\nname = \"a\"\nsource = \"s\"\nhealth_check_key = \"h\"\n";
    assert!(Config::from_toml(&format!("{base}{store}")).is_ok());
    let with = |extra: &str| format!("{base}{store}{extra}");
    refused_naming(&[
        (
            with("uri_path_prefix = \"a b\"\n"),
            "stores[0].uri_path_prefix",
        ),
        (with("max_credentials = 21\n"), "stores[0].max_credentials"),
        (
            with("[[stores.keys]]\nid = \"k\"\nusage = [\"sign\"]\n"),
            "stores[0].keys[0].usage",
        ),
        (
            with("[[stores.keys]]\nid = \"k\"\nusage = [\"sign\"]\n"),
            "sign",
        ),
        (
            with("[[stores.keys]]\nid = \"bad/id\"\nusage = [\"encrypt\"]\n"),
            "stores[0].keys[0].id",
        ),
        (
            with("[[stores.credentials]]\naccess_key_id = \"SHORT\"\nsecret = \"x\"\n"),
            "stores[0].credentials[0].access_key_id",
        ),
        (
            with(
                "[[stores.credentials]]\naccess_key_id = \"AAAAAAAAAAAAAAAAAAAA\"\nsecret = \"tooshort\"\n",
            ),
            "stores[0].credentials[0].secret",
        ),
        (with(store), "declared twice"),
    ]);
}

#[test]
fn missing_file_is_named() {
    let e = Config::load(Some(Path::new("/nonexistent/keyhold.toml")))
        .unwrap_err()
        .to_string();
    assert!(e.contains("/nonexistent/keyhold.toml"), "{e}");
}

#[test]
fn aws_declarations_are_checked() {
    let base = format!("{MINIMAL}[sources.s]\nplugin = \"ctm\"\n");
    let aws = "[aws.connections.main]\naccess_key_id = \"AKIAEXAMPLEEXAMPLE01\"\nsecret_access_key_env = \"AWS_SECRET\"\n\n[aws.accounts.\"111122223333\"]\nname = \"prod\"\nregions = [\"eu-west-1\"]\nconnection = \"main\"\n";
    let store = "[[stores]]\nname = \"a\"\nsource = \"s\"\nhealth_check_key = \"h\"\n";
    let linked = "account = \"111122223333\"\nregion = \"eu-west-1\"\nlocation = { type = \"public\", endpoint = \"https://xks.example.com\" }\nlinked = true\nconnected = true\n";
    let c = Config::from_toml(&format!("{base}{aws}{store}{linked}")).unwrap();
    assert!(c.stores[0].linked && c.stores[0].connected);
    assert_eq!(c.aws.accounts["111122223333"].regions, ["eu-west-1"]);
    let without = |line: &str| format!("{base}{aws}{store}{}", linked.replace(line, ""));
    refused_naming(&[
        (without("linked = true\n"), "stores[0].connected"),
        (without("region = \"eu-west-1\"\n"), "stores[0].region"),
        (without("account = \"111122223333\"\n"), "stores[0].account"),
        (
            without("location = { type = \"public\", endpoint = \"https://xks.example.com\" }\n"),
            "stores[0].location",
        ),
        (
            format!(
                "{base}{aws}{store}{}",
                linked.replace("eu-west-1", "us-west-2")
            ),
            "aws.accounts.111122223333.regions",
        ),
        (
            format!("{base}{}", aws.replace("111122223333", "1234")),
            "aws.accounts.1234",
        ),
        (
            format!(
                "{base}{}",
                aws.replace("secret_access_key_env", "secret_access_key_file")
                    .replace("\"AWS_SECRET\"", "\"/s\"\nsecret_access_key = \"tooshort\"")
            ),
            "aws.connections.main",
        ),
    ]);
}

#[test]
fn audit_settings_have_defaults_and_limits() {
    let c = Config::from_toml(MINIMAL).unwrap();
    assert_eq!(c.audit.segment_max_bytes, 64 * 1024 * 1024);
    assert_eq!(c.audit.refusal_interval_seconds, 10);
    assert_eq!(c.audit.refusal_records_per_interval, 20);
    let c = Config::from_toml(&format!(
        "{MINIMAL}[audit]\nsegment_max_bytes = 1048576\nrefusal_interval_seconds = 60\nrefusal_records_per_interval = 0\n"
    ))
    .unwrap();
    assert_eq!(c.audit.segment_max_bytes, 1 << 20);
    assert_eq!(
        c.audit.refusal_records_per_interval, 0,
        "0: aggregates only"
    );
    let e = err_of(&format!("{MINIMAL}[audit]\nsegment_max_bytes = 100\n"));
    assert!(e.contains("audit.segment_max_bytes"), "{e}");
    let e = err_of(&format!("{MINIMAL}[audit]\nrefusal_interval_seconds = 0\n"));
    assert!(e.contains("audit.refusal_interval_seconds"), "{e}");
}

#[test]
fn connection_limits_default_and_are_checked() {
    let c = Config::from_toml(MINIMAL).unwrap();
    for conns in [
        &c.xks.connections,
        &c.admin.connections,
        &c.metrics.connections,
    ] {
        assert_eq!(conns, &ConnectionsConfig::default());
    }
    let d = ConnectionsConfig::default();
    assert_eq!(
        (d.header_timeout_ms, d.body_timeout_ms, d.idle_timeout_ms),
        (5_000, 2_000, 60_000)
    );
    assert_eq!(d.max_connections, None);
    let c = Config::from_toml(&format!(
        "{MINIMAL}connections = {{ header_timeout_ms = 700, max_connections = 9 }}\n"
    ))
    .unwrap();
    assert_eq!(c.xks.connections.header_timeout_ms, 700);
    assert_eq!(c.xks.connections.max_connections, Some(9));
    assert_eq!(c.xks.connections.body_timeout_ms, 2_000);
    for (line, key) in [
        ("header_timeout_ms = 0", "xks.connections.header_timeout_ms"),
        ("body_timeout_ms = 0", "xks.connections.body_timeout_ms"),
        (
            "idle_timeout_ms = 4000000",
            "xks.connections.idle_timeout_ms",
        ),
        ("max_connections = 0", "xks.connections.max_connections"),
        (
            "h2_max_concurrent_streams = 0",
            "xks.connections.h2_max_concurrent_streams",
        ),
        ("max_uri_bytes = 10", "xks.connections.max_uri_bytes"),
        ("max_header_bytes = 10", "xks.connections.max_header_bytes"),
        ("max_headers = 0", "xks.connections.max_headers"),
    ] {
        let err = err_of(&format!("{MINIMAL}connections = {{ {line} }}\n"));
        assert!(err.contains(key), "{line}: {err}");
    }
    let err = err_of(&format!(
        "{MINIMAL}[admin.connections]\nbody_timeout_ms = 0\n"
    ));
    assert!(err.contains("admin.connections.body_timeout_ms"), "{err}");
}

#[test]
fn the_etcd_backend_is_configured_whole_or_refused() {
    let etcd =
        "[store]\nbackend = \"etcd\"\n[store.etcd]\nendpoints = [\"http://127.0.0.1:2379\"]\n";
    let c = Config::from_toml(&format!("{MINIMAL}{etcd}")).unwrap();
    let settings = c.store.etcd.as_ref().unwrap().settings().unwrap();
    assert_eq!(settings.prefix, "keyhold/");
    assert_eq!(settings.timeout, std::time::Duration::from_secs(5));
    assert_eq!(settings.log_retain, crate::store::LOG_RETAIN);
    assert!(settings.user.is_none() && settings.tls.is_none());
    refused_naming(&[
        (
            format!("{MINIMAL}[store]\nbackend = \"etcd\"\n"),
            "store.etcd",
        ),
        (
            format!("{MINIMAL}[store]\n[store.etcd]\nendpoints = [\"http://e:2379\"]\n"),
            "store.backend is \"embedded\"",
        ),
        (
            format!(
                "{MINIMAL}{}",
                etcd.replace("[\"http://127.0.0.1:2379\"]", "[]")
            ),
            "store.etcd.endpoints",
        ),
        (
            format!("{MINIMAL}{etcd}timeout_ms = 0\n"),
            "store.etcd.timeout_ms",
        ),
        (
            format!("{MINIMAL}{etcd}log_retain = 5\n"),
            "store.etcd.log_retain",
        ),
        (
            format!("{MINIMAL}{etcd}lease_ttl_seconds = 1\n"),
            "store.etcd.lease_ttl_seconds",
        ),
        (
            format!("{MINIMAL}{etcd}lease_ttl_seconds = 301\n"),
            "store.etcd.lease_ttl_seconds",
        ),
        (format!("{MINIMAL}{etcd}user = \"k\"\n"), "store.etcd.user"),
        (
            format!("{MINIMAL}{etcd}user = \"k\"\npassword_env = \"KEYHOLD_NO_SUCH_VAR\"\n"),
            "store.etcd.password_env",
        ),
        (format!("{MINIMAL}{etcd}cert_file = \"c.pem\"\n"), "ca_file"),
        (
            format!(
                "{MINIMAL}[store]\nbackend = \"etcd\"\npath = \"x.redb\"\n[store.etcd]\nendpoints = [\"http://e:2379\"]\n"
            ),
            "store.path",
        ),
        (
            format!("{MINIMAL}[store]\nbackend = \"zookeeper\"\n"),
            "backend",
        ),
    ]);
}

#[test]
fn the_node_id_is_checked_and_the_fleet_size_is_no_longer_set_by_hand() {
    let c = Config::from_toml(&format!("{MINIMAL}[node]\nid = \"eu-1.a\"\n")).unwrap();
    assert_eq!(c.node.id.as_deref(), Some("eu-1.a"));
    assert!(Config::from_toml(MINIMAL).unwrap().node.id.is_none());
    refused_naming(&[
        (format!("{MINIMAL}[node]\nid = \"a/b\"\n"), "node.id"),
        (format!("{MINIMAL}[node]\nid = \"\"\n"), "node.id"),
        (format!("{MINIMAL}[node]\nname = \"a\"\n"), "name"),
        (format!("{MINIMAL}fleet_size = 3\n"), "number of live nodes"),
    ]);
}

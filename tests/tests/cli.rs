//! The `keyhold` admin CLI end to end: the real binary drives the admin API of a
//! running keyhold; the XKS data plane is checked with the credentials files it writes.

use std::os::unix::fs::PermissionsExt;

use keyhold_tests::{
    Credential, SourceFixture, TestServer, XksClient, admin::access_key_ids, cli::KeyholdCli, luna,
    paths::free_port,
};
use serde_json::Value;

async fn server(source: SourceFixture) -> TestServer {
    TestServer::builder()
        .source(source)
        .without_store()
        .admin()
        .start()
        .await
}

fn mode(path: &std::path::Path) -> u32 {
    std::fs::metadata(path)
        .expect("metadata")
        .permissions()
        .mode()
        & 0o777
}

/// The credential in a credentials file the CLI wrote (and its URI path).
fn read_creds(path: &std::path::Path) -> (Credential, String) {
    assert_eq!(mode(path), 0o600, "{} is private", path.display());
    let file: Value =
        serde_json::from_str(&std::fs::read_to_string(path).expect("creds file")).expect("JSON");
    let c = &file["XksProxyAuthenticationCredential"];
    (
        Credential::new(
            c["AccessKeyId"].as_str().expect("AccessKeyId"),
            c["RawSecretAccessKey"]
                .as_str()
                .expect("RawSecretAccessKey"),
        ),
        file["XksProxyUriPath"]
            .as_str()
            .expect("XksProxyUriPath")
            .to_string(),
    )
}

/// The vendor manual's lifecycle of an unlinked store on `source`, entirely via the CLI.
async fn lifecycle(server: &TestServer, source: &str) {
    let cli = KeyholdCli::for_server(server);
    let out = cli
        .run_with(
            &["login", "--password-stdin"],
            &format!("{}\n", server.root_password()),
            &[],
        )
        .await
        .expect_code(0)
        .stdout;
    assert!(out.contains("Logged in"), "{out}");
    assert_eq!(mode(&cli.session_file()), 0o600);
    let session: Value =
        serde_json::from_str(&std::fs::read_to_string(cli.session_file()).expect("session"))
            .expect("session JSON");
    assert!(session["token"].as_str().expect("token").starts_with("kh_"));
    assert!(session["expires_at"].is_i64(), "{session}");

    // Health-check key (all four usages) and a data key.
    let out = cli
        .ok(&[
            "source-key",
            "create",
            source,
            "cli-hc",
            "--usage",
            "encrypt,decrypt,wrap,unwrap",
        ])
        .await;
    assert!(out.contains("cli-hc"), "{out}");
    cli.ok(&[
        "source-key",
        "create",
        source,
        "data-1",
        "--usage",
        "encrypt,decrypt",
    ])
    .await;
    let k = cli.json(&["source-key", "get", source, "cli-hc"]).await;
    assert_eq!(k["valid_health_check_key"], true, "{k}");
    let keys = cli.json(&["source-key", "list", source]).await;
    assert!(keys.as_array().expect("array").len() >= 2, "{keys}");

    // Create the store: the credentials file is written (0600), the secret not printed.
    let out = cli
        .ok(&[
            "keystore",
            "create",
            "life",
            "--source",
            source,
            "--health-check-key",
            "cli-hc",
            "--max-credentials",
            "2",
            "--out",
            "creds1.json",
        ])
        .await;
    let (first, uri_path) = read_creds(&cli.path("creds1.json"));
    assert!(out.contains(&first.access_key_id), "{out}");
    assert!(!out.contains(&first.secret), "secret printed: {out}");
    let xks = XksClient::new(server.transport(), first.clone(), &uri_path);
    xks.health().await.ok_json();

    // Rotation: a second credential, both work; a third evicts the oldest.
    let out = cli
        .ok(&["credential", "add", "life", "--out", "creds2.json"])
        .await;
    let (second, _) = read_creds(&cli.path("creds2.json"));
    assert!(out.contains(&second.access_key_id) && !out.contains(&second.secret));
    xks.health().await.ok_json();
    xks.with_cred(second.clone()).health().await.ok_json();
    let out = cli
        .ok(&["credential", "add", "life", "--out", "creds3.json"])
        .await;
    let (third, _) = read_creds(&cli.path("creds3.json"));
    assert!(
        out.contains(&format!(
            "Evicted (oldest, over max_credentials): {}",
            first.access_key_id
        )),
        "{out}"
    );
    xks.assert_unauthenticated().await;
    xks.with_cred(second.clone()).health().await.ok_json();
    let xks = xks.with_cred(third.clone());
    xks.health().await.ok_json();
    let listed = cli.json(&["credential", "list", "life"]).await;
    let ids: Vec<&str> = access_key_ids(&listed);
    assert_eq!(
        ids,
        [second.access_key_id.as_str(), third.access_key_id.as_str()]
    );
    let table = cli.ok(&["credential", "list", "life"]).await;
    assert!(table.starts_with("ACCESS_KEY_ID"), "{table}");
    cli.ok(&["credential", "delete", "life", &second.access_key_id])
        .await;
    xks.with_cred(second)
        .health()
        .await
        .assert_error(401, "AuthenticationFailedException");

    // Block / unblock.
    cli.ok(&["keystore", "block", "life"]).await;
    xks.health()
        .await
        .assert_error(400, "InvalidStateException");
    cli.ok(&["keystore", "unblock", "life"]).await;
    xks.health().await.ok_json();

    // Update: the ETag is read and sent as If-Match; a stale --if-match is refused.
    let before = cli.json(&["keystore", "get", "life"]).await;
    let version = before["version"].as_u64().expect("version");
    cli.ok(&["keystore", "update", "life", "--name", "life-renamed"])
        .await;
    let after = cli.json(&["keystore", "get", "life-renamed"]).await;
    assert_eq!(after["name"], "life-renamed");
    assert_eq!(after["id"], before["id"], "get by name resolves the id");
    let id = after["id"].as_str().expect("id").to_string();
    let stale = cli
        .run(&[
            "keystore",
            "update",
            &id,
            "--success-audit",
            "true",
            "--if-match",
            &version.to_string(),
        ])
        .await
        .expect_code(3);
    assert!(
        stale.stderr.contains("(version_mismatch)"),
        "{}",
        stale.stderr
    );
    // Mutual TLS settings: the store's own CA bundle (read from a file) and CNs, and
    // back to the defaults; turning it on over plain HTTP is refused with the reason.
    let ca = keyhold_tests::pki::TestCa::new("cli client CA");
    std::fs::write(cli.path("client-ca.pem"), ca.pem()).expect("write CA");
    let ca_file = cli.path("client-ca.pem");
    let ca_arg = ca_file.to_string_lossy();
    let args = [
        "keystore",
        "update",
        "life-renamed",
        "--mtls-ca-file",
        &ca_arg,
    ];
    cli.ok(&[
        &args[..],
        &["--mtls-cn", "a.example", "--mtls-cn", "b.example"],
    ]
    .concat())
        .await;
    let got = cli.json(&["keystore", "get", "life-renamed"]).await;
    assert_eq!(
        got["mtls_cns"],
        serde_json::json!(["a.example", "b.example"])
    );
    assert_eq!(got["mtls_ca_pem"].as_str(), Some(ca.pem().as_str()));
    let args = ["keystore", "update", "life-renamed"];
    cli.ok(&[&args[..], &["--mtls-ca-default", "--mtls-cns-default"]].concat())
        .await;
    let got = cli.json(&["keystore", "get", "life-renamed"]).await;
    assert!(
        got.get("mtls_cns").is_none() && got.get("mtls_ca_pem").is_none(),
        "{got}"
    );
    let refused = cli
        .run(&[&args[..], &["--mtls", "true"]].concat())
        .await
        .expect_code(3);
    assert!(
        refused.stderr.contains("(mtls_unavailable)"),
        "{}",
        refused.stderr
    );
    let missing = cli
        .run(&[&args[..], &["--mtls-ca-file", "/nonexistent/ca.pem"]].concat())
        .await
        .expect_code(2);
    assert!(
        missing.stderr.contains("--mtls-ca-file"),
        "{}",
        missing.stderr
    );
    let table = cli.ok(&["keystore", "list"]).await;
    assert!(
        table.starts_with("ID") && table.contains("life-renamed"),
        "{table}"
    );

    // HYOK keys: create, metadata and encrypt through XKS, block, unblock.
    cli.ok(&[
        "key",
        "create",
        "life-renamed",
        "k1",
        "--source-key",
        "data-1",
    ])
    .await;
    let md = xks.metadata("k1").await.ok_json();
    assert_eq!(md["keyStatus"], "ENABLED", "{md}");
    let sealed = xks.encrypt_ok("k1", b"hello", None).await;
    assert_eq!(xks.decrypt_ok("k1", &sealed, None).await, b"hello");
    let k = cli.json(&["key", "get", "life-renamed", "k1"]).await;
    assert_eq!(k["source_key"], "data-1");
    let listed = cli.json(&["key", "list", &id]).await;
    assert_eq!(listed.as_array().expect("array").len(), 1);
    cli.ok(&["key", "block", "life-renamed", "k1"]).await;
    xks.encrypt("k1", b"x", None, false)
        .await
        .assert_error(400, "InvalidStateException");
    cli.ok(&["key", "unblock", "life-renamed", "k1"]).await;
    xks.encrypt_ok("k1", b"x", None).await;

    // Deletion: refused while keys exist (names the count), then without --confirm.
    let r = cli
        .run(&["keystore", "delete", "life-renamed", "--confirm"])
        .await
        .expect_code(3);
    assert!(
        r.stderr.starts_with("error: ")
            && r.stderr.contains("1 HYOK key")
            && r.stderr.contains("(store_has_keys)"),
        "{}",
        r.stderr
    );
    cli.ok(&["key", "delete", "life-renamed", "k1"]).await;
    let r = cli
        .run(&["keystore", "delete", "life-renamed"])
        .await
        .expect_code(3);
    assert!(r.stderr.contains("confirmation_required"), "{}", r.stderr);
    cli.ok(&["keystore", "delete", "life-renamed", "--confirm"])
        .await;
    xks.health()
        .await
        .assert_error(404, "InvalidUriPathException");
    assert_eq!(cli.ok(&["keystore", "list"]).await, "(none)\n");
    let r = cli
        .run(&["keystore", "get", "life-renamed"])
        .await
        .expect_code(3);
    assert!(r.stderr.contains("(not_found)"), "{}", r.stderr);

    // Logout revokes the session and forgets it.
    cli.ok(&["logout"]).await;
    assert!(!cli.session_file().exists());
    let r = cli.run(&["keystore", "list"]).await.expect_code(3);
    assert!(r.stderr.contains("keyhold login"), "{}", r.stderr);
}

#[tokio::test(flavor = "multi_thread")]
async fn lifecycle_of_an_unlinked_ctm_store_through_the_cli() {
    let server = server(SourceFixture::ctm()).await;
    lifecycle(&server, "ctm").await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn lifecycle_of_an_unlinked_luna_store_through_the_cli() {
    if !luna::available() {
        eprintln!("skipped: SoftHSM2 ({}) is not installed", luna::MODULE);
        return;
    }
    let server = server(SourceFixture::luna()).await;
    lifecycle(&server, "luna").await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn json_output_and_exit_codes() {
    let server = server(SourceFixture::ctm()).await;
    let cli = KeyholdCli::for_server(&server);

    // Refusals exit 3: a wrong password, nothing saved.
    let r = cli
        .run_with(&["login", "--password-stdin"], "wrong\n", &[])
        .await
        .expect_code(3);
    assert!(
        r.stderr.starts_with("error: ") && r.stderr.trim_end().ends_with("(unauthenticated)"),
        "{}",
        r.stderr
    );
    assert!(!cli.session_file().exists());
    // Usage errors exit 2: unknown flag, no password source, the secret would be lost.
    cli.run(&["keystore", "list", "--bogus"])
        .await
        .expect_code(2);
    cli.run(&["login"]).await.expect_code(2);
    cli.run(&["login", "--password-env", "KEYHOLD_CLI_TEST_UNSET_VAR"])
        .await
        .expect_code(2);
    cli.run_with(
        &["login", "--password-env", "ROOT_PW"],
        "",
        &[("ROOT_PW", &server.root_password())],
    )
    .await
    .expect_code(0);
    let r = cli
        .run(&["credential", "add", "whatever"])
        .await
        .expect_code(2);
    assert!(r.stderr.contains("--out"), "{}", r.stderr);

    // JSON for every list.
    for args in [
        &["keystore", "list"][..],
        &["source", "list"],
        &["source-key", "list", "ctm"],
        &["token", "list"],
        &["user", "list"],
        &["account", "list"],
    ] {
        let v = cli.json(args).await;
        assert!(v.is_array(), "{args:?}: {v}");
    }
    let sources = cli.json(&["source", "list"]).await;
    assert_eq!(sources[0]["name"], "ctm", "{sources}");
    // The node list: on the embedded store, this node alone, leading.
    let nodes = cli.json(&["node", "list"]).await;
    assert_eq!(nodes["backend"], "embedded", "{nodes}");
    assert_eq!(nodes["nodes"].as_array().map(Vec::len), Some(1), "{nodes}");
    assert_eq!(nodes["nodes"][0]["id"], nodes["this_node"], "{nodes}");
    assert_eq!(nodes["nodes"][0]["leader"], true, "{nodes}");
    let table = cli.run(&["node", "list"]).await.expect_code(0);
    assert!(
        table.stdout.contains("store backend embedded") && table.stdout.contains("HEARTBEAT_AT"),
        "{}",
        table.stdout
    );

    // Users, accounts with grants, tokens.
    cli.run_with(
        &["user", "create", "bob", "--password-env", "BOB_PW"],
        "",
        &[("BOB_PW", "bob's long password 1")],
    )
    .await
    .expect_code(0);
    cli.ok(&[
        "account",
        "create",
        "111122223333",
        "--name",
        "prod",
        "--region",
        "us-east-1",
        "--grant",
        "user:bob=view,create_store",
    ])
    .await;
    let table = cli.ok(&["account", "list"]).await;
    assert!(
        table.contains("111122223333") && table.contains("user:bob=view,create_store"),
        "{table}"
    );
    cli.run(&["account", "create", "1", "--name", "x", "--grant", "bob"])
        .await
        .expect_code(2);
    let acc = cli
        .json(&["account", "update", "111122223333", "--name", "production"])
        .await;
    assert_eq!(acc["name"], "production");
    let users = cli.ok(&["user", "list"]).await;
    assert!(users.contains("bob") && users.contains("root"), "{users}");
    let token = cli.json(&["token", "create", "--description", "ci"]).await;
    let bearer = token["token"].as_str().expect("token").to_string();
    // An explicit --token wins over the saved session: bob's view of accounts.
    let bob = KeyholdCli::for_server(&server);
    bob.login("bob", "bob's long password 1").await;
    let r = bob.run(&["user", "list"]).await.expect_code(3);
    assert!(r.stderr.contains("(admin_only)"), "{}", r.stderr);
    let as_root = bob.json(&["user", "list", "--token", &bearer]).await;
    assert_eq!(as_root.as_array().expect("array").len(), 2);
    cli.ok(&["token", "revoke", token["id"].as_str().expect("id")])
        .await;
    bob.run(&["user", "list", "--token", &bearer])
        .await
        .expect_code(3);
    cli.ok(&["account", "delete", "111122223333"]).await;
    cli.ok(&["user", "delete", "bob"]).await;

    // A refusal by rule: deleting a store that does not exist, or without --confirm.
    cli.run(&["keystore", "delete", "nope", "--confirm"])
        .await
        .expect_code(3);

    // Server or connection errors exit 4.
    let gone = KeyholdCli::new(&format!("http://127.0.0.1:{}", free_port()));
    let r = gone.run(&["keystore", "list"]).await.expect_code(4);
    assert!(
        r.stderr.starts_with("error: cannot connect"),
        "{}",
        r.stderr
    );
    gone.run_with(&["login", "--password-stdin"], "pw\n", &[])
        .await
        .expect_code(4);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn https_with_cacert() {
    let server = TestServer::start_admin_https().await;
    let port = server.running.admin_addr.expect("admin").port();
    let url = format!("https://127.0.0.1:{port}");
    // Without a CA the CLI cannot trust the server: a usage error.
    let r = KeyholdCli::new(&url)
        .run(&["source", "list"])
        .await
        .expect_code(2);
    assert!(r.stderr.contains("--cacert"), "{}", r.stderr);
    // A CA that did not sign the certificate: the TLS handshake fails (exit 4).
    let other = keyhold_tests::pki::TestCa::new("another CA");
    let wrong = tempfile::NamedTempFile::new().expect("tmp");
    std::fs::write(wrong.path(), other.pem()).expect("write CA");
    let r = KeyholdCli::new(&url)
        .with_cacert(wrong.path())
        .run_with(
            &["login", "--password-stdin"],
            &format!("{}\n", server.root_password()),
            &[],
        )
        .await
        .expect_code(4);
    assert!(r.stderr.contains("TLS"), "{}", r.stderr);
    // With the dev CA.
    let cli = KeyholdCli::for_server(&server);
    cli.login("root", &server.root_password()).await;
    let sources = cli.json(&["source", "list"]).await;
    assert_eq!(sources[0]["name"], "ctm");
    // The session remembers the server and the CA: no flags needed afterwards.
    let session: Value =
        serde_json::from_str(&std::fs::read_to_string(cli.session_file()).expect("session"))
            .expect("JSON");
    assert_eq!(session["server"], url.as_str());
    assert!(session["cacert"].as_str().is_some(), "{session}");
    server.stop().await;
}

//! HSM connections and luna key sources through the `keyhold` CLI against a real
//! SoftHSM2 token: what is sent, what is refused and why, and the exit codes.
//! (Update, reopen and delete of sources are run by tests/tests/hsm_walkthrough.rs.)

use keyhold_tests::{TestServer, cli::KeyholdCli, luna};
use serde_json::Value;

#[tokio::test(flavor = "multi_thread")]
async fn hsm_connections_and_sources_through_the_cli() {
    if !luna::available() {
        eprintln!("skipped: SoftHSM2 ({}) is not installed", luna::MODULE);
        return;
    }
    let env = luna::env();
    let token = luna::LunaToken::new();
    let server = TestServer::admin_only().start().await;
    let cli = KeyholdCli::for_server(&server);
    cli.login("root", &server.root_password()).await;
    let conf = format!("SOFTHSM2_CONF={}", env.conf.display());
    let pin_file = env.pin_file.to_string_lossy().to_string();
    let create = |name: &'static str, pin: String, module_env: String| {
        let label = token.label.clone();
        let cli = &cli;
        async move {
            cli.run(&[
                "connection",
                "hsm",
                "create",
                name,
                "--module",
                luna::MODULE,
                "--token-label",
                &label,
                "--pin-file",
                &pin,
                "--module-env",
                &module_env,
            ])
            .await
        }
    };

    // A wrong PIN: created (the PIN is only referenced), but the test fails, exit 3,
    // with the reason; so does a module_env that differs from the server's own.
    let wrong = cli.path("wrong.pin");
    std::fs::write(&wrong, "not-the-pin\n").expect("PIN file");
    create("bad-pin", wrong.to_string_lossy().into(), conf.clone())
        .await
        .expect_code(0);
    let r = cli
        .run(&["connection", "hsm", "test", "bad-pin"])
        .await
        .expect_code(3);
    assert!(r.stdout.contains("Failed"), "{}", r.stdout);
    assert!(
        r.stderr.contains("HSM connection bad-pin is not usable")
            && r.stderr.contains("PIN")
            && r.stderr.contains("(connection_failed)"),
        "{}",
        r.stderr
    );
    create(
        "bad-env",
        pin_file.clone(),
        "SOFTHSM2_CONF=/nonexistent/softhsm2.conf".into(),
    )
    .await
    .expect_code(0);
    let r = cli
        .run(&["connection", "hsm", "test", "bad-env"])
        .await
        .expect_code(3);
    assert!(r.stderr.contains("SOFTHSM2_CONF"), "{}", r.stderr);
    // A source that does not open is not created; the reason is given.
    let r = cli
        .run(&["source", "create", "never", "--hsm-connection", "bad-pin"])
        .await;
    assert_ne!(r.code, 0, "{r:?}");
    assert!(r.stderr.contains("PIN"), "{}", r.stderr);
    let sources = cli.json(&["source", "list"]).await;
    assert!(
        !sources
            .as_array()
            .expect("array")
            .iter()
            .any(|s| s["name"] == "never"),
        "{sources}"
    );
    // The server refuses a relative PIN file (paths are the server's).
    let r = create("relative", "user.pin".into(), conf.clone())
        .await
        .expect_code(3);
    assert!(
        r.stderr.contains("pin_file must be an absolute path"),
        "{}",
        r.stderr
    );

    // The good connection: every field as given, the test Ready.
    let r = cli
        .run(&[
            "connection",
            "hsm",
            "create",
            "hsm1",
            "--module",
            luna::MODULE,
            "--token-label",
            &token.label,
            "--pin-file",
            &pin_file,
            "--module-env",
            &conf,
            "--pool-size",
            "3",
            "--op-timeout-ms",
            "750",
        ])
        .await
        .expect_code(0);
    assert!(r.stdout.contains("op_timeout_ms  750"), "{}", r.stdout);
    let c = cli.json(&["connection", "hsm", "get", "hsm1"]).await;
    assert_eq!(c["pool_size"], 3, "{c}");
    assert_eq!(c["op_timeout_ms"], 750, "{c}");
    assert_eq!(c["token_label"], token.label.as_str(), "{c}");
    assert_eq!(
        c["module_env"]["SOFTHSM2_CONF"],
        env.conf.to_string_lossy().as_ref(),
        "{c}"
    );
    assert!(c.get("pin_env").is_none(), "{c}");
    let t = cli.json(&["connection", "hsm", "test", "hsm1"]).await;
    assert_eq!(t["status"], "Ready", "{t}");
    let table = cli.ok(&["connection", "hsm", "list"]).await;
    assert!(
        table.starts_with("NAME") && table.contains("hsm1") && table.contains("bad-pin"),
        "{table}"
    );

    // A source from it, its keys; the connection cannot go while the source exists.
    let s = cli
        .json(&["source", "create", "hsm-src", "--hsm-connection", "hsm1"])
        .await;
    assert_eq!(s["status"], "opened", "{s}");
    assert_eq!(s["hsm_connection"], "hsm1", "{s}");
    assert_eq!(s["container"], token.label.as_str(), "{s}");
    cli.ok(&[
        "source-key",
        "create",
        "hsm-src",
        "hc",
        "--usage",
        "encrypt,decrypt,wrap,unwrap",
    ])
    .await;
    let k: Value = cli.json(&["source-key", "get", "hsm-src", "hc"]).await;
    assert_eq!(k["valid_health_check_key"], true, "{k}");
    let r = cli
        .run(&["connection", "hsm", "delete", "hsm1"])
        .await
        .expect_code(3);
    assert!(r.stderr.contains("hsm-src"), "{}", r.stderr);
    let r = cli
        .run(&["source", "create", "hsm-src", "--hsm-connection", "hsm1"])
        .await
        .expect_code(3);
    assert!(r.stderr.contains("exists"), "{}", r.stderr);

    // Unused connections go; a deleted one is not found.
    cli.ok(&["connection", "hsm", "delete", "bad-pin"]).await;
    cli.ok(&["connection", "hsm", "delete", "bad-env"]).await;
    let r = cli
        .run(&["connection", "hsm", "get", "bad-pin"])
        .await
        .expect_code(3);
    assert!(r.stderr.contains("(not_found)"), "{}", r.stderr);
    server.stop().await;
}

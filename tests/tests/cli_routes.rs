//! CLI parity with the admin API: every route of the OpenAPI document the server
//! serves (`GET /api/v1/openapi.json`) has an entry in the CLI's route table
//! (core/src/cli/routes.rs), every entry names a route that exists, and every command
//! it names answers `keyhold <words> --help`.

use std::collections::BTreeSet;

use keyhold_tests::{SourceFixture, TestServer, cli::KeyholdCli};

#[path = "../../core/src/cli/routes.rs"]
mod routes;

/// `(METHOD, path)` of every operation in an OpenAPI document.
fn operations(doc: &serde_json::Value) -> BTreeSet<(String, String)> {
    let paths = doc["paths"].as_object().expect("paths object");
    let mut ops = BTreeSet::new();
    for (path, item) in paths {
        for method in ["get", "post", "put", "patch", "delete"] {
            if item.get(method).is_some() {
                ops.insert((method.to_uppercase(), path.clone()));
            }
        }
    }
    ops
}

#[tokio::test(flavor = "multi_thread")]
async fn every_admin_route_has_a_cli_command_with_help() {
    let server = TestServer::builder()
        .source(SourceFixture::ctm())
        .without_store()
        .admin()
        .start()
        .await;
    let cli = KeyholdCli::for_server(&server);
    // `keyhold openapi` is itself the CLI command of GET /api/v1/openapi.json.
    let served = operations(&cli.json(&["openapi"]).await);
    assert!(served.len() > 50, "{served:?}");
    let table: BTreeSet<(String, String)> = routes::ROUTES
        .iter()
        .map(|(m, p, _)| (m.to_string(), p.to_string()))
        .collect();
    assert_eq!(table.len(), routes::ROUTES.len(), "a route listed twice");

    let mut problems = Vec::new();
    for (method, path) in served.difference(&table) {
        problems.push(format!(
            "{method} {path} has no CLI command in core/src/cli/routes.rs"
        ));
    }
    for (method, path) in table.difference(&served) {
        problems.push(format!(
            "core/src/cli/routes.rs lists {method} {path}, which the server does not serve"
        ));
    }
    let commands: BTreeSet<&str> = routes::ROUTES.iter().map(|(_, _, w)| *w).collect();
    for words in commands {
        let mut args: Vec<&str> = words.split_whitespace().collect();
        args.push("--help");
        let run = cli.run(&args).await;
        let command: Vec<&str> = words
            .split_whitespace()
            .filter(|w| !w.starts_with("--"))
            .collect();
        let usage = format!("Usage: keyhold {}", command.join(" "));
        if run.code != 0 || !run.stdout.contains(&usage) {
            problems.push(format!(
                "`keyhold {words} --help` exited {} without `{usage}`:\n{}{}",
                run.code, run.stdout, run.stderr
            ));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    server.stop().await;
}

/// The help of the HSM commands says what each field means, its unit and default.
#[tokio::test(flavor = "multi_thread")]
async fn hsm_connection_help_gives_units_defaults_and_where_paths_are_read() {
    let cli = KeyholdCli::new("http://127.0.0.1:9");
    for command in [
        &["connection", "hsm", "create", "--help"][..],
        &["connection", "hsm", "update", "--help"],
    ] {
        let help = cli.run(command).await.expect_code(0).stdout;
        for needle in [
            "in milliseconds [default: 200]",
            "at least 1 [default: 8]",
            "KEY=VALUE",
            "SOFTHSM2_CONF",
            "absolute path",
            "server's host",
            "relative paths are refused",
            "made absolute against the server's working directory",
        ] {
            assert!(
                help.contains(needle),
                "{command:?} lacks '{needle}':\n{help}"
            );
        }
    }
    let help = cli
        .run(&["connection", "hsm", "update", "--help"])
        .await
        .expect_code(0)
        .stdout;
    assert!(help.contains("tests the changed connection"), "{help}");
    let help = cli
        .run(&["source", "reopen", "--help"])
        .await
        .expect_code(0)
        .stdout;
    assert!(help.contains("once per process"), "{help}");
    // Local refusals exit 2 before any request: no PIN place, nothing to change, a
    // malformed or repeated --module-env.
    for args in [
        &[
            "connection",
            "hsm",
            "create",
            "h",
            "--module",
            "/m.so",
            "--token-label",
            "t",
        ][..],
        &["connection", "hsm", "update", "h"],
        &[
            "connection",
            "hsm",
            "update",
            "h",
            "--module-env",
            "NOEQUALS",
        ],
        &[
            "connection",
            "hsm",
            "update",
            "h",
            "--module-env",
            "A=1",
            "--module-env",
            "A=2",
        ],
        &[
            "connection",
            "hsm",
            "update",
            "h",
            "--pin-env",
            "P",
            "--pin-file",
            "/p",
        ],
    ] {
        let r = cli.run(args).await.expect_code(2);
        assert!(r.stderr.contains("error"), "{args:?}: {}", r.stderr);
    }
}

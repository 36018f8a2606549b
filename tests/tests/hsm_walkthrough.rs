//! docs/hsm-walkthrough.md run as written: its ```sh blocks are fed, one after the
//! other, to one `bash -euo pipefail` (as a reader would type them into one shell) in
//! an empty directory, with the debug build's `keyhold` and `keyhold-pkcs11` first on
//! `PATH`. The doc starts `keyhold serve` itself (in the background, pid in
//! keyhold.pid); the test only moves its listeners to free ports (`KEYHOLD_XKS__LISTEN`,
//! `KEYHOLD_ADMIN__LISTEN`, and `KEYHOLD_SERVER` for the CLI). Between blocks the test
//! checks what each printed, serves XKS requests with the credentials file the doc
//! wrote (the HYOK key survives the PIN rotation, the restart and the reopen), and
//! checks the refusals the doc describes.

use std::{
    io::{BufRead, BufReader, Write},
    path::{Path, PathBuf},
    process::{Child, ChildStdin, Command, Stdio},
    sync::mpsc::{Receiver, RecvTimeoutError, channel},
    time::{Duration, Instant},
};

use keyhold_tests::{
    Credential, Transport, XksClient,
    cli::CliRun,
    luna,
    paths::{free_port, target_debug_dir},
};
use serde_json::Value;

const DOC: &str = include_str!("../../docs/hsm-walkthrough.md");
/// A bound on one block, so that a hung command fails the test instead of hanging it.
const BLOCK_DEADLINE: Duration = Duration::from_secs(300);

/// The ```sh blocks of a markdown text, in order.
fn sh_blocks(markdown: &str) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut current: Option<String> = None;
    for line in markdown.lines() {
        match (&mut current, line.trim_end()) {
            (None, "```sh") => current = Some(String::new()),
            (Some(_), "```") => blocks.extend(current.take()),
            (Some(block), _) => {
                block.push_str(line);
                block.push('\n');
            }
            (None, _) => {}
        }
    }
    assert!(current.is_none(), "an unterminated ```sh block");
    blocks
}

/// The environment every command of the walkthrough (and of the test) runs in.
struct Env {
    dir: tempfile::TempDir,
    path: String,
    xks_port: u16,
    admin_port: u16,
}

impl Env {
    fn new() -> Env {
        let bin = target_debug_dir();
        for (file, build) in [
            ("keyhold", "cargo build -p keyhold"),
            ("keyhold-pkcs11", "cargo build -p plugin-luna --bins"),
            ("libplugin_luna.so", "cargo build -p plugin-luna"),
        ] {
            assert!(
                bin.join(file).is_file(),
                "{} is missing: run `{build}` first",
                bin.join(file).display()
            );
        }
        Env {
            dir: tempfile::tempdir().expect("tempdir"),
            path: format!(
                "{}:{}",
                bin.display(),
                std::env::var("PATH").unwrap_or_default()
            ),
            xks_port: free_port(),
            admin_port: free_port(),
        }
    }

    fn file(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// A command in the walkthrough's directory and environment. The doc exports
    /// `SOFTHSM2_CONF` itself; the test's own commands get the doc's value.
    fn command(&self, program: &str) -> Command {
        let mut cmd = Command::new(program);
        cmd.current_dir(self.dir.path())
            .env("PATH", &self.path)
            .env("HOME", self.dir.path())
            .env("KEYHOLD_CLI_CONFIG", self.file("cli.json"))
            .env(
                "KEYHOLD_XKS__LISTEN",
                format!("127.0.0.1:{}", self.xks_port),
            )
            .env(
                "KEYHOLD_ADMIN__LISTEN",
                format!("127.0.0.1:{}", self.admin_port),
            )
            .env(
                "KEYHOLD_SERVER",
                format!("https://127.0.0.1:{}", self.admin_port),
            )
            .env("NO_COLOR", "1")
            .env_remove("KEYHOLD_TOKEN")
            .env_remove("KEYHOLD_CACERT")
            .env_remove("SOFTHSM2_CONF");
        cmd
    }

    /// Runs `program args` (with the doc's `SOFTHSM2_CONF`) to its end.
    fn run(&self, program: &str, args: &[&str]) -> CliRun {
        let out = self
            .command(program)
            .args(args)
            .env("SOFTHSM2_CONF", self.file("softhsm/softhsm2.conf"))
            .stdin(Stdio::null())
            .output()
            .expect("spawn");
        CliRun {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// XKS with the credentials file the doc wrote, over the server's HTTPS listener.
    fn xks(&self, creds: &str) -> XksClient {
        let file: Value = serde_json::from_str(
            &std::fs::read_to_string(self.file(creds)).expect("credentials file"),
        )
        .expect("JSON");
        let c = &file["XksProxyAuthenticationCredential"];
        let cred = Credential::new(
            c["AccessKeyId"].as_str().expect("AccessKeyId"),
            c["RawSecretAccessKey"]
                .as_str()
                .expect("RawSecretAccessKey"),
        );
        let ca = std::fs::read_to_string(self.file("keyhold-data/tls/ca.pem")).expect("CA");
        let addr = format!("127.0.0.1:{}", self.xks_port)
            .parse()
            .expect("address");
        XksClient::new(
            Transport::https(addr, &ca),
            cred,
            file["XksProxyUriPath"].as_str().expect("XksProxyUriPath"),
        )
    }
}

/// One bash fed the doc's blocks; kills it and the server the doc started on drop.
struct Shell<'a> {
    env: &'a Env,
    bash: Child,
    stdin: ChildStdin,
    lines: Receiver<String>,
    transcript: String,
}

impl<'a> Shell<'a> {
    fn start(env: &'a Env) -> Shell<'a> {
        let mut bash = env
            .command("bash")
            .args(["--noprofile", "--norc", "-euo", "pipefail", "-s"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("bash");
        let stdin = bash.stdin.take().expect("stdin");
        let stdout = bash.stdout.take().expect("stdout");
        let (tx, lines) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut shell = Shell {
            env,
            bash,
            stdin,
            lines,
            transcript: String::new(),
        };
        shell.send("exec 2>&1\n");
        shell
    }

    fn send(&mut self, text: &str) {
        self.stdin
            .write_all(text.as_bytes())
            .and_then(|()| self.stdin.flush())
            .unwrap_or_else(|e| panic!("bash stopped ({e}); so far:\n{}", self.transcript));
    }

    /// Runs block `n` (its stdin is /dev/null, so no command eats the next blocks);
    /// returns what it printed (stdout and stderr); panics when it fails.
    fn block(&mut self, n: usize, block: &str) -> String {
        let marker = format!("@@ block {n} done @@");
        self.send(&format!("{{\n{block}}} < /dev/null\necho '{marker}'\n"));
        let deadline = Instant::now() + BLOCK_DEADLINE;
        let mut out = String::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if line == marker => break,
                Ok(line) => {
                    out.push_str(&line);
                    out.push('\n');
                }
                Err(e) => {
                    let why = match e {
                        RecvTimeoutError::Timeout => "did not finish in time",
                        RecvTimeoutError::Disconnected => "failed (bash exited)",
                    };
                    panic!(
                        "walkthrough block {n} {why}:\n{block}\n--- its output:\n{out}\n--- \
                         earlier output:\n{}\n--- keyhold.log (end):\n{}",
                        self.transcript,
                        log_tail(&self.env.file("keyhold.log"))
                    );
                }
            }
        }
        self.transcript.push_str(&out);
        out
    }
}

impl Drop for Shell<'_> {
    fn drop(&mut self) {
        let _ = self.bash.kill();
        let _ = self.bash.wait();
        stop_server(self.env);
    }
}

/// Stops the `keyhold serve` the doc started (its pid is in keyhold.pid).
fn stop_server(env: &Env) {
    let Ok(pid) = std::fs::read_to_string(env.file("keyhold.pid")) else {
        return;
    };
    let pid = pid.trim();
    if pid.parse::<u32>().is_ok() {
        let _ = Command::new("kill").arg(pid).status();
    }
}

fn log_tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}

#[track_caller]
fn assert_has(out: &str, needles: &[&str]) {
    for needle in needles {
        assert!(out.contains(needle), "expected '{needle}' in:\n{out}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_hsm_walkthrough_runs_as_written() {
    if !luna::available()
        || Command::new("softhsm2-util")
            .arg("--version")
            .output()
            .is_err()
    {
        eprintln!(
            "skipped: SoftHSM2 ({}, softhsm2-util) is not installed",
            luna::MODULE
        );
        return;
    }
    let blocks = sh_blocks(DOC);
    assert_eq!(
        blocks.len(),
        9,
        "the walkthrough's steps changed: {blocks:#?}"
    );
    let env = Env::new();
    let mut sh = Shell::start(&env);
    let pkcs11 = |args: &[&str]| {
        let mut all = vec!["--module", luna::MODULE, "--token", "keyhold-walk"];
        all.extend(args);
        env.run("keyhold-pkcs11", &all)
    };

    // 1. The token.
    let out = sh.block(1, &blocks[0]);
    assert_has(&out, &["has been initialized"]);
    assert!(env.file("user.pin").is_file() && env.file("so.pin").is_file());

    // 2. keyhold with no key source.
    let out = sh.block(2, &blocks[1]);
    assert_has(&out, &["Logged in", "(none)"]);

    // 3. The HSM connection, tested.
    let out = sh.block(3, &blocks[2]);
    assert_has(
        &out,
        &[
            "token_label    keyhold-walk",
            "pool_size      4",
            "status  Ready",
        ],
    );
    let conn = env.run(
        "keyhold",
        &["connection", "hsm", "get", "hsm1", "--output", "json"],
    );
    let conn: Value = conn.expect_code(0).json();
    assert_eq!(conn["op_timeout_ms"], 500, "{conn}");
    assert_eq!(
        conn["module_env"]["SOFTHSM2_CONF"],
        env.file("softhsm/softhsm2.conf").to_string_lossy().as_ref(),
        "{conn}"
    );

    // 4. The source and its keys.
    let out = sh.block(4, &blocks[3]);
    assert_has(
        &out,
        &["status          opened", "valid_health_check_key  yes"],
    );
    let listed = pkcs11(&["list", "--pin-file", "user.pin"])
        .expect_code(0)
        .stdout;
    assert_has(&listed, &["walk-health", "walk-data"]);

    // 5. The store and its HYOK key: XKS serves it from the token.
    let out = sh.block(5, &blocks[4]);
    assert_has(&out, &["/walk/kms/xks/v1", "walk-key-1", "walk-data"]);
    let xks = env.xks("walk-creds.json");
    xks.health().await.ok_json();
    let sealed = xks.encrypt_ok("walk-key-1", b"hsm walkthrough", None).await;
    // A source in use and a connection a source is made from are not deleted.
    let r = env
        .run("keyhold", &["source", "delete", "hsm-src"])
        .expect_code(3);
    assert_has(&r.stderr, &["walk", "(source_in_use)"]);
    let r = env
        .run("keyhold", &["connection", "hsm", "delete", "hsm1"])
        .expect_code(3);
    assert_has(&r.stderr, &["hsm-src"]);
    // The HYOK key rules: a source key that cannot decrypt is refused with the
    // attribute named, unless --allow-weak-key, which the key then shows.
    env.run(
        "keyhold",
        &[
            "source-key",
            "create",
            "hsm-src",
            "walk-weak",
            "--usage",
            "encrypt",
        ],
    )
    .expect_code(0);
    let weak = [
        "key",
        "create",
        "walk",
        "walk-weak-1",
        "--source-key",
        "walk-weak",
    ];
    let r = env.run("keyhold", &weak).expect_code(3);
    assert_has(&r.stderr, &["CKA_DECRYPT must be true", "(invalid_key)"]);
    env.run("keyhold", &[&weak[..], &["--allow-weak-key"]].concat())
        .expect_code(0);
    let k: Value = env
        .run(
            "keyhold",
            &["key", "get", "walk", "walk-weak-1", "--output", "json"],
        )
        .expect_code(0)
        .json();
    assert_eq!(k["allow_weak_key"], true, "{k}");
    env.run("keyhold", &["key", "delete", "walk", "walk-weak-1"])
        .expect_code(0);

    // 6. The PIN changes on the token.
    let out = sh.block(6, &blocks[5]);
    assert_has(&out, &["changed the user PIN of token 'keyhold-walk'"]);
    let r = pkcs11(&[
        "set-pin",
        "--pin-file",
        "user.pin",
        "--new-pin-file",
        "user-2.pin",
    ]);
    assert_has(&r.expect_code(1).stderr, &["the PIN is wrong"]);
    let r = pkcs11(&[
        "init-token",
        "--so-pin-file",
        "so.pin",
        "--pin-file",
        "user.pin",
    ]);
    assert_has(&r.expect_code(1).stderr, &["exists already"]);
    pkcs11(&["create", "x"]).expect_code(2);
    // The running server (SoftHSM2 keeps the old PIN in memory) refuses the new PIN:
    // the connection test fails and nothing is saved.
    let new_pin = env.file("user-2.pin");
    let new_pin = new_pin.to_string_lossy();
    let r = env.run(
        "keyhold",
        &[
            "connection",
            "hsm",
            "update",
            "hsm1",
            "--pin-file",
            &new_pin,
        ],
    );
    assert_has(&r.expect_code(3).stderr, &["(connection_test_failed)"]);
    let conn: Value = env
        .run(
            "keyhold",
            &["connection", "hsm", "get", "hsm1", "--output", "json"],
        )
        .expect_code(0)
        .json();
    assert_eq!(
        conn["pin_file"],
        env.file("user.pin").to_string_lossy().as_ref(),
        "{conn}"
    );

    // 6. The restart: the source cannot log in with the old PIN and says so.
    let out = sh.block(7, &blocks[6]);
    assert_has(&out, &["Logged in", "hsm-src", "failed", "PIN"]);

    // 6. Update and reopen: the same store and key serve again, from the same token.
    let out = sh.block(8, &blocks[7]);
    assert_has(&out, &["user-2.pin", "opened", "walk-key-1", "walk-data"]);
    let source: Value = env
        .run("keyhold", &["source", "get", "hsm-src", "--output", "json"])
        .expect_code(0)
        .json();
    assert_eq!(source["status"], "opened", "{source}");
    assert_eq!(
        xks.decrypt_ok("walk-key-1", &sealed, None).await,
        b"hsm walkthrough"
    );

    // 7. Delete everything.
    let out = sh.block(9, &blocks[8]);
    assert_has(
        &out,
        &[
            "Deleted key walk-key-1.",
            "Deleted key source hsm-src.",
            "Deleted HSM connection hsm1.",
        ],
    );
    assert!(out.ends_with("(none)\n(none)\n"), "{out}");
    xks.health()
        .await
        .assert_error(404, "InvalidUriPathException");
    // The keys stay on the token.
    let listed = pkcs11(&["list", "--pin-file", "user-2.pin"])
        .expect_code(0)
        .stdout;
    assert_has(&listed, &["walk-health", "walk-data"]);
    drop(sh);
}

#[test]
fn sh_blocks_are_extracted_in_order() {
    let md = "text\n```sh\na\nb\n```\n```text\nno\n```\n```sh\nc\n```\n";
    assert_eq!(sh_blocks(md), ["a\nb\n", "c\n"]);
}

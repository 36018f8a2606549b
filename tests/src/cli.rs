//! The `keyhold` admin CLI as a child process: each [`KeyholdCli`] has a private
//! session file (`KEYHOLD_CLI_CONFIG`) and working directory, and points at one server.

use std::{
    io::Write,
    path::{Path, PathBuf},
    process::{Command, Stdio},
};

use serde_json::Value;
use tempfile::TempDir;

use crate::{paths::keyhold_bin, server::TestServer};

/// What one CLI run did.
#[derive(Debug, Clone)]
pub struct CliRun {
    /// The exit code (-1 when killed by a signal).
    pub code: i32,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

impl CliRun {
    /// Asserts exit code `code`; returns self.
    #[track_caller]
    pub fn expect_code(self, code: i32) -> CliRun {
        assert_eq!(
            self.code, code,
            "expected exit {code}, got {}\nstdout:\n{}\nstderr:\n{}",
            self.code, self.stdout, self.stderr
        );
        self
    }

    /// Standard output as JSON (panics when it is not).
    #[track_caller]
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}):\n{}", self.stdout))
    }
}

/// Runs `keyhold` admin commands against one server.
pub struct KeyholdCli {
    dir: TempDir,
    server: String,
    cacert: Option<PathBuf>,
}

impl KeyholdCli {
    /// A CLI for the admin API at `server` (e.g. `http://127.0.0.1:1234`).
    pub fn new(server: &str) -> KeyholdCli {
        KeyholdCli {
            dir: tempfile::tempdir().expect("tempdir"),
            server: server.into(),
            cacert: None,
        }
    }

    /// A CLI for `server`'s admin listener (plain HTTP, or HTTPS trusting its dev CA).
    pub fn for_server(server: &TestServer) -> KeyholdCli {
        let addr = server.running.admin_addr.expect("admin API enabled");
        if server.running.admin_tls {
            KeyholdCli::new(&format!("https://127.0.0.1:{}", addr.port()))
                .with_cacert(&server.path().join("tls/ca.pem"))
        } else {
            KeyholdCli::new(&format!("http://{addr}"))
        }
    }

    /// Passes `--cacert file` (via `KEYHOLD_CACERT`).
    pub fn with_cacert(mut self, file: &Path) -> KeyholdCli {
        self.cacert = Some(file.to_path_buf());
        self
    }

    /// The working directory of the runs (files written with `--out` land here).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// A file in [`Self::dir`].
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// The session file `login` writes.
    pub fn session_file(&self) -> PathBuf {
        self.path("cli.json")
    }

    /// Runs `keyhold args...` with `stdin` and extra environment variables.
    pub async fn run_with(&self, args: &[&str], stdin: &str, env: &[(&str, &str)]) -> CliRun {
        let mut cmd = Command::new(keyhold_bin());
        cmd.args(args)
            .current_dir(self.dir.path())
            .env("KEYHOLD_CLI_CONFIG", self.session_file())
            .env("KEYHOLD_SERVER", &self.server)
            .env_remove("KEYHOLD_TOKEN")
            .env_remove("KEYHOLD_CACERT")
            .env("NO_COLOR", "1")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if let Some(ca) = &self.cacert {
            cmd.env("KEYHOLD_CACERT", ca);
        }
        for (k, v) in env {
            cmd.env(k, v);
        }
        let stdin = stdin.to_string();
        tokio::task::spawn_blocking(move || {
            let mut child = cmd.spawn().expect("spawn keyhold");
            if let Some(mut pipe) = child.stdin.take() {
                let _ = pipe.write_all(stdin.as_bytes());
            }
            let out = child.wait_with_output().expect("keyhold output");
            CliRun {
                code: out.status.code().unwrap_or(-1),
                stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
                stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            }
        })
        .await
        .expect("CLI task")
    }

    /// Runs `keyhold args...` (empty stdin).
    pub async fn run(&self, args: &[&str]) -> CliRun {
        self.run_with(args, "", &[]).await
    }

    /// Runs and asserts exit 0; returns stdout.
    pub async fn ok(&self, args: &[&str]) -> String {
        self.run(args).await.expect_code(0).stdout
    }

    /// Runs with `--output json`, asserts exit 0, returns the parsed stdout.
    pub async fn json(&self, args: &[&str]) -> Value {
        let mut all = args.to_vec();
        all.extend(["--output", "json"]);
        self.run(&all).await.expect_code(0).json()
    }

    /// `keyhold login --user user --password-stdin`, asserting success.
    pub async fn login(&self, user: &str, password: &str) {
        self.run_with(
            &["login", "--user", user, "--password-stdin"],
            &format!("{password}\n"),
            &[],
        )
        .await
        .expect_code(0);
    }
}

//! The real `keyhold` binary as a child process (crash tests: SIGKILL, restart on the
//! same data directory).

use std::{
    fs::File,
    net::SocketAddr,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use crate::{
    admin::AdminClient,
    client::Transport,
    fixture::SourceFixture,
    paths::{self, toml_str},
};

/// How long a start may take before the test gives up.
pub const START_TIMEOUT: Duration = Duration::from_secs(30);

/// What to run: a data directory, key sources, the root password (handed to the child
/// through `admin.root_password_env`). Ports are picked afresh on each start.
#[derive(Debug, Clone)]
pub struct BinaryConfig {
    /// Holds the configuration file, the logs and (under `data/`) the data directory.
    pub root: PathBuf,
    /// Key sources (`{dir}` = the data directory).
    pub sources: Vec<SourceFixture>,
    /// Name of the environment variable holding the root password (not `KEYHOLD_*`:
    /// the configuration reads those as overrides and refuses unknown ones).
    pub password_env: String,
    /// The root password.
    pub password: String,
    /// TOML appended after everything else (e.g. `[store]` on etcd, `[secrets]`,
    /// `[[stores]]`), `{dir}` = the data directory.
    pub toml_tail: String,
}

impl BinaryConfig {
    /// A configuration under `root` with a `ctm` source.
    pub fn new(root: &Path) -> BinaryConfig {
        BinaryConfig {
            root: root.to_path_buf(),
            sources: vec![SourceFixture::ctm()],
            password_env: "KH_TEST_ROOT_PASSWORD".into(),
            password: "crash-test root password 1".into(),
            toml_tail: String::new(),
        }
    }

    /// The data directory.
    pub fn data_dir(&self) -> PathBuf {
        self.root.join("data")
    }

    /// The configuration file.
    pub fn config_path(&self) -> PathBuf {
        self.root.join("keyhold.toml")
    }

    /// The audit log.
    pub fn audit_path(&self) -> PathBuf {
        self.data_dir().join("audit.jsonl")
    }

    /// The configuration text for these listeners.
    pub fn toml(&self, xks: SocketAddr, admin: SocketAddr) -> String {
        let dir = self.data_dir();
        let mut t = format!("data_dir = {}\n\n", toml_str(dir.to_string_lossy()));
        t += &format!(
            "[plugins]\ndir = {}\n\n",
            toml_str(paths::plugin_dir().to_string_lossy())
        );
        t += &format!(
            "[xks]\nlisten = {}\nplain_http = true\n\n",
            toml_str(xks.to_string())
        );
        for s in &self.sources {
            t += &s.toml(&dir);
            t += "\n";
        }
        t += &format!(
            "[admin]\nlisten = {}\nplain_http = true\nroot_password_env = {}\n",
            toml_str(admin.to_string()),
            toml_str(&self.password_env)
        );
        t += "\n";
        t += &self.toml_tail.replace("{dir}", &dir.to_string_lossy());
        t
    }

    /// Starts the binary and waits (bounded) until its admin API answers.
    pub async fn start(&self) -> BinaryServer {
        std::fs::create_dir_all(self.data_dir()).expect("create data dir");
        let mut last = String::new();
        // A free port can be taken by someone else between probe and bind: retry.
        for attempt in 0..3 {
            let xks: SocketAddr = format!("127.0.0.1:{}", paths::free_port())
                .parse()
                .expect("addr");
            let admin: SocketAddr = format!("127.0.0.1:{}", paths::free_port())
                .parse()
                .expect("addr");
            std::fs::write(self.config_path(), self.toml(xks, admin)).expect("write config");
            let log = self.root.join(format!(
                "keyhold-{}-{attempt}.log",
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_nanos())
                    .unwrap_or_default()
            ));
            let stderr = File::create(&log).expect("log file");
            let child = Command::new(paths::keyhold_bin())
                .args(["serve", "--config"])
                .arg(self.config_path())
                .current_dir(&self.root)
                .env(&self.password_env, &self.password)
                .env("RUST_LOG", "warn")
                .env_remove("KEYHOLD_XKS__LISTEN")
                .env_remove("KEYHOLD_ADMIN__LISTEN")
                .env_remove("KEYHOLD_DATA_DIR")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::from(stderr))
                .spawn()
                .expect("spawn keyhold");
            let mut server = BinaryServer {
                child: Some(child),
                xks,
                admin,
                log,
            };
            match server.wait_ready().await {
                Ok(()) => return server,
                Err(e) => {
                    server.kill();
                    last = format!("{e}\n--- keyhold stderr ---\n{}", server.log_text());
                    if !last.contains("in use") {
                        break;
                    }
                }
            }
        }
        panic!("keyhold did not start: {last}");
    }

    /// Runs `keyhold audit-verify --config <file>`; returns (success, stdout+stderr).
    pub fn audit_verify_cli(&self) -> (bool, String) {
        let out = Command::new(paths::keyhold_bin())
            .args(["audit-verify", "--config"])
            .arg(self.config_path())
            .env_remove("KEYHOLD_DATA_DIR")
            .output()
            .expect("run keyhold audit-verify");
        (
            out.status.success(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        )
    }
}

/// A running `keyhold serve`; killed (SIGKILL) when dropped.
pub struct BinaryServer {
    child: Option<Child>,
    /// The XKS listener.
    pub xks: SocketAddr,
    /// The admin listener.
    pub admin: SocketAddr,
    /// Its stderr.
    pub log: PathBuf,
}

impl BinaryServer {
    async fn wait_ready(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + START_TIMEOUT;
        let client = self.admin();
        loop {
            if let Some(child) = self.child.as_mut() {
                if let Some(status) = child.try_wait().map_err(|e| e.to_string())? {
                    return Err(format!("keyhold exited early: {status}"));
                }
            }
            let probe = client.raw("GET", "/api/v1/openapi.json", None);
            if let Ok(r) = client.try_send(&probe).await {
                if r.status.as_u16() == 200 {
                    return Ok(());
                }
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "the admin API on {} did not answer within {START_TIMEOUT:?}",
                    self.admin
                ));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// An unauthenticated admin client.
    pub fn admin(&self) -> AdminClient {
        AdminClient::new(Transport::plain(self.admin))
    }

    /// Plain HTTP transport to the XKS listener.
    pub fn transport(&self) -> Transport {
        Transport::plain(self.xks)
    }

    /// The process id (while running).
    pub fn id(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// SIGKILL, then reap.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM (graceful shutdown) and wait up to 30 s for the exit (then SIGKILL and
    /// panic). Returns whether it exited successfully.
    pub fn terminate(&mut self) -> bool {
        let Some(mut child) = self.child.take() else {
            return false;
        };
        let sent = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        assert!(sent, "could not send SIGTERM to keyhold");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            match child.try_wait() {
                Ok(Some(status)) => return status.success(),
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20));
                }
                _ => {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!(
                        "keyhold did not exit within 30 s of SIGTERM\n{}",
                        self.log_text()
                    );
                }
            }
        }
    }

    /// What the server wrote to stderr so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for BinaryServer {
    fn drop(&mut self) {
        self.kill();
    }
}

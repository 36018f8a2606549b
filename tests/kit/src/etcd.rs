//! A throw-away single-member etcd (Debian's `etcd-server`) on loopback ports chosen
//! at run time, for the etcd store backend's tests and the cluster tests.

use std::{
    net::{TcpListener, TcpStream},
    path::Path,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

/// A running etcd; killed on drop.
pub struct Etcd {
    child: Child,
    dir: tempfile::TempDir,
    peer_url: String,
    /// Its client URL (`http://127.0.0.1:<port>`).
    pub url: String,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

impl Etcd {
    /// Starts etcd on a fresh data directory (fsync off: tests only) and waits until
    /// it reports itself healthy.
    pub fn start() -> Etcd {
        let dir = tempfile::tempdir().expect("tempdir");
        let url = format!("http://127.0.0.1:{}", free_port());
        let peer_url = format!("http://127.0.0.1:{}", free_port());
        let child = spawn(dir.path(), &url, &peer_url);
        let etcd = Etcd {
            child,
            dir,
            peer_url,
            url,
        };
        etcd.wait_healthy();
        etcd
    }

    /// Waits (at most 30 s) until `GET /health` answers `"health":"true"`.
    pub fn wait_healthy(&self) {
        use std::io::{Read, Write};
        let addr = self.url.trim_start_matches("http://").to_string();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let healthy = TcpStream::connect(&addr)
                .and_then(|mut s| {
                    s.set_read_timeout(Some(Duration::from_secs(2)))?;
                    s.write_all(b"GET /health HTTP/1.0\r\n\r\n")?;
                    let mut text = String::new();
                    s.read_to_string(&mut text)?;
                    Ok(text.contains("\"health\":\"true\""))
                })
                .unwrap_or(false);
            if healthy {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "etcd at {} did not become healthy",
                self.url
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Kills etcd (its data stays).
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Kills etcd and starts it again on the same data and ports.
    pub fn restart(&mut self) {
        self.stop();
        self.child = spawn(self.dir.path(), &self.url, &self.peer_url);
    }
}

fn spawn(dir: &Path, url: &str, peer_url: &str) -> Child {
    Command::new("etcd")
        .args(["--name", "t", "--data-dir"])
        .arg(dir)
        .args(["--listen-client-urls", url, "--advertise-client-urls", url])
        .args(["--listen-peer-urls", peer_url])
        .args(["--initial-advertise-peer-urls", peer_url])
        .args(["--initial-cluster", &format!("t={peer_url}")])
        .args(["--unsafe-no-fsync", "--log-level", "error"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("etcd runs (apt-get install etcd-server; scripts/test.sh does)")
}

impl Drop for Etcd {
    fn drop(&mut self) {
        self.stop();
    }
}

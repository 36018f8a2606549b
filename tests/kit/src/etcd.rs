//! Throw-away etcd (Debian's `etcd-server`) on loopback ports chosen at run time, for
//! the etcd store backend's tests and the cluster tests: a single member ([`Etcd`]) or
//! a cluster of several ([`EtcdCluster`]) whose members can be killed and brought back.

use std::{
    net::{TcpListener, TcpStream},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

/// How long a member may take to report itself healthy.
const HEALTHY_WITHIN: Duration = Duration::from_secs(30);

/// A running etcd; killed on drop.
pub struct Etcd {
    member: Member,
    _dir: tempfile::TempDir,
    /// Its client URL (`http://127.0.0.1:<port>`).
    pub url: String,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

fn loopback_url() -> String {
    format!("http://127.0.0.1:{}", free_port())
}

impl Etcd {
    /// Starts etcd on a fresh data directory (fsync off: tests only) and waits until
    /// it reports itself healthy.
    pub fn start() -> Etcd {
        let (dir, mut members, _) = start_members(1);
        let member = members.remove(0);
        Etcd {
            url: member.url.clone(),
            member,
            _dir: dir,
        }
    }

    /// Waits (at most 30 s) until `GET /health` answers `"health":"true"`.
    pub fn wait_healthy(&self) {
        wait_healthy(&self.url);
    }

    /// Kills etcd (its data stays).
    pub fn stop(&mut self) {
        self.member.kill();
    }

    /// Kills etcd and starts it again on the same data and ports.
    pub fn restart(&mut self) {
        self.stop();
        let cluster = self.member.initial_cluster_entry();
        self.member.spawn(&cluster);
    }
}

/// Whether the etcd member at `url` answers `GET /health` with `"health":"true"` (it
/// does once the cluster has a leader).
pub fn is_healthy(url: &str) -> bool {
    use std::io::{Read, Write};
    let addr = url.trim_start_matches("http://");
    TcpStream::connect(addr)
        .and_then(|mut s| {
            s.set_read_timeout(Some(Duration::from_secs(2)))?;
            s.write_all(b"GET /health HTTP/1.0\r\n\r\n")?;
            let mut text = String::new();
            s.read_to_string(&mut text)?;
            Ok(text.contains("\"health\":\"true\""))
        })
        .unwrap_or(false)
}

/// The member at `url`'s own id and its leader's, from its JSON gateway
/// (`POST /v3/maintenance/status`); `None` when it does not answer.
fn member_and_leader(url: &str) -> Option<(String, String)> {
    use std::io::{Read, Write};
    let addr = url.trim_start_matches("http://");
    let mut s = TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    s.write_all(
        b"POST /v3/maintenance/status HTTP/1.0\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}",
    )
    .ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    let (_, body) = text.split_once("\r\n\r\n")?;
    let json: serde_json::Value = serde_json::from_str(body).ok()?;
    let member = json["header"]["member_id"].as_str()?.to_string();
    let leader = json["leader"].as_str()?.to_string();
    Some((member, leader))
}

/// Waits (at most 30 s) until the member at `url` is healthy.
pub fn wait_healthy(url: &str) {
    let deadline = Instant::now() + HEALTHY_WITHIN;
    while !is_healthy(url) {
        assert!(
            Instant::now() < deadline,
            "etcd at {url} did not become healthy within {HEALTHY_WITHIN:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// How many times a fresh set of members is started before a test gives up: ports are
/// found free, then released for etcd to bind, so another process may take one in
/// between (the member then exits at once), and a loaded machine may miss an election.
const START_ATTEMPTS: usize = 3;

/// Starts `size` fresh members (`t` for one, else `m0`, `m1`, ...) as one cluster and
/// waits until every one is healthy; a set whose member exits or that misses the
/// deadline is killed and started again on new ports and directories. Answers the data
/// directory, the members and `--initial-cluster`.
fn start_members(size: usize) -> (tempfile::TempDir, Vec<Member>, String) {
    let mut failures = Vec::new();
    for _ in 0..START_ATTEMPTS {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut members: Vec<Member> = (0..size)
            .map(|i| {
                let name = if size == 1 {
                    "t".to_string()
                } else {
                    format!("m{i}")
                };
                Member::new(&name, dir.path().join(&name))
            })
            .collect();
        let cluster = members
            .iter()
            .map(Member::initial_cluster_entry)
            .collect::<Vec<_>>()
            .join(",");
        for m in &mut members {
            m.spawn(&cluster);
        }
        match members_healthy(&mut members) {
            Ok(()) => return (dir, members, cluster),
            Err(why) => failures.push(why),
        }
    }
    panic!("etcd did not start in {START_ATTEMPTS} attempts: {failures:?}");
}

/// Waits (at most [`HEALTHY_WITHIN`]) until every member is healthy; `Err` says which
/// member exited (with its log's tail) or did not become healthy in time.
fn members_healthy(members: &mut [Member]) -> Result<(), String> {
    let deadline = Instant::now() + HEALTHY_WITHIN;
    loop {
        for m in members.iter_mut() {
            if let Some(child) = m.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                let log = std::fs::read_to_string(m.dir.with_extension("log")).unwrap_or_default();
                let tail: String = log.lines().rev().take(5).collect::<Vec<_>>().join(" | ");
                return Err(format!("member {} exited ({status}): {tail}", m.name));
            }
        }
        if members.iter().all(|m| is_healthy(&m.url)) {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(format!("not healthy within {HEALTHY_WITHIN:?}"));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// One etcd member: its name, data directory and URLs, and its process while running.
struct Member {
    name: String,
    dir: PathBuf,
    url: String,
    peer_url: String,
    child: Option<Child>,
}

impl Member {
    fn new(name: &str, dir: PathBuf) -> Member {
        Member {
            name: name.into(),
            dir,
            url: loopback_url(),
            peer_url: loopback_url(),
            child: None,
        }
    }

    /// `name=peer_url`, this member's part of `--initial-cluster`.
    fn initial_cluster_entry(&self) -> String {
        format!("{}={}", self.name, self.peer_url)
    }

    /// Starts the member (fsync off: tests only); `cluster` is `--initial-cluster`,
    /// read on the first start only (later starts find the membership in the data).
    fn spawn(&mut self, cluster: &str) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.with_extension("log"))
            .map(Stdio::from)
            .unwrap_or_else(|_| Stdio::null());
        let child = Command::new("etcd")
            .args(["--name", &self.name, "--data-dir"])
            .arg(&self.dir)
            .args(["--listen-client-urls", &self.url])
            .args(["--advertise-client-urls", &self.url])
            .args(["--listen-peer-urls", &self.peer_url])
            .args(["--initial-advertise-peer-urls", &self.peer_url])
            .args(["--initial-cluster", cluster])
            .args(["--initial-cluster-state", "new"])
            .args(["--unsafe-no-fsync", "--log-level", "error"])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("etcd runs (apt-get install etcd-server; scripts/test.sh does)");
        self.child = Some(child);
    }

    /// SIGKILL, then reap (the data directory stays).
    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Member {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A cluster of etcd members on loopback (fsync off: tests only); every member killed
/// on drop.
pub struct EtcdCluster {
    members: Vec<Member>,
    cluster: String,
    dir: tempfile::TempDir,
}

impl EtcdCluster {
    /// Starts `size` members (named `m0`, `m1`, ...) on fresh data directories and waits
    /// until every one is healthy (the cluster has elected a leader).
    pub fn start(size: usize) -> EtcdCluster {
        assert!(size > 0, "a cluster has at least one member");
        let (dir, members, cluster) = start_members(size);
        EtcdCluster {
            members,
            cluster,
            dir,
        }
    }

    /// Every member's client URL, in member order.
    pub fn endpoints(&self) -> Vec<String> {
        self.members.iter().map(|m| m.url.clone()).collect()
    }

    /// The client URL of member `i`.
    pub fn url(&self, i: usize) -> &str {
        &self.members[i].url
    }

    /// Whether member `i` is running (not killed).
    pub fn is_running(&self, i: usize) -> bool {
        self.members[i].child.is_some()
    }

    /// Kills member `i` with SIGKILL (its data directory stays).
    pub fn kill(&mut self, i: usize) {
        self.members[i].kill();
    }

    /// Starts member `i` again on its data directory and ports (after [`Self::kill`]),
    /// and waits until it is healthy again.
    pub fn restart(&mut self, i: usize) {
        self.members[i].kill();
        let cluster = self.cluster.clone();
        self.members[i].spawn(&cluster);
        wait_healthy(&self.members[i].url);
    }

    /// The index of the member that leads the cluster now, as the running members
    /// report it (`None` while there is no leader).
    pub fn leader(&self) -> Option<usize> {
        let ids: Vec<Option<(String, String)>> = self
            .members
            .iter()
            .map(|m| m.child.as_ref().and_then(|_| member_and_leader(&m.url)))
            .collect();
        let (_, leader) = ids.iter().flatten().find(|(_, leader)| leader != "0")?;
        ids.iter()
            .position(|m| m.as_ref().is_some_and(|(id, _)| id == leader))
    }

    /// Waits (at most 30 s each) until every running member is healthy.
    pub fn wait_healthy(&self) {
        for m in self.members.iter().filter(|m| m.child.is_some()) {
            wait_healthy(&m.url);
        }
    }

    /// Where the members keep their data (and their logs, `<member>.log`).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

//! The Debian package end to end: `cargo deb` packages the debug build (the same
//! `[package.metadata.deb]` a release uses), its control fields, file list and
//! maintainer scripts are checked, and it is installed with the machine's real `dpkg -i`
//! into a scratch root: a private mount namespace (`unshare --mount`) in which `/etc`,
//! `/usr` and `/var` are overlays whose upper layers live in the test's temporary
//! directory. So the postinst really runs (`adduser --system`, the state directory, the
//! unit enabled through `deb-systemd-helper`) without touching the machine's own files
//! or users. The INSTALLED binary then serves with the INSTALLED configuration, as the
//! `keyhold` user the postinst made, without capabilities, with no-new-privileges and
//! under the kernel's memory-deny-write-execute (what the unit's
//! `MemoryDenyWriteExecute=yes` asks for: the plugins must load under it); only the two
//! listen ports are moved, through `KEYHOLD_XKS__LISTEN`/`KEYHOLD_ADMIN__LISTEN`. A key
//! store is made through its admin API over the generated development TLS, and a
//! SigV4-signed XKS encrypt/decrypt goes through. `systemd-analyze verify` and
//! `security --offline` check the installed unit. Then `dpkg -r` keeps the user, the
//! state and the configuration, and `dpkg -P` removes them.
//!
//! Needs root (mounts), `cargo-deb` (scripts/test.sh installs it), `unshare`, `setpriv`
//! and `dpkg`: a missing one fails the test, saying what to install.

use std::{
    collections::BTreeMap,
    os::unix::process::CommandExt,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use keyhold_tests::{
    Credential, Transport, XksClient,
    admin::{AdminClient, created_store_id, credential_of, expect_status},
    paths::{free_port, keyhold_bin, target_debug_dir, workspace_root},
};
use serde_json::json;

/// The cargo-deb release scripts/test.sh installs (keep the two in step).
const CARGO_DEB_VERSION: &str = "3.8.0";

/// What the package ships from the build, where it installs it, and the mode.
const BUILT: [(&str, &str, &str); 4] = [
    ("keyhold", "./usr/bin/keyhold", "-rwxr-xr-x"),
    ("keyhold-pkcs11", "./usr/bin/keyhold-pkcs11", "-rwxr-xr-x"),
    (
        "libplugin_ctm.so",
        "./usr/lib/keyhold/plugins/libplugin_ctm.so",
        "-rw-r--r--",
    ),
    (
        "libplugin_luna.so",
        "./usr/lib/keyhold/plugins/libplugin_luna.so",
        "-rw-r--r--",
    ),
];

/// The other files of the package and their modes.
const SHIPPED: [(&str, &str); 3] = [
    ("./etc/keyhold/keyhold.toml", "-rw-r--r--"),
    ("./usr/lib/systemd/system/keyhold.service", "-rw-r--r--"),
    ("./usr/share/doc/keyhold/README.md", "-rw-r--r--"),
];

/// The hardening the installed unit must carry, directive by directive.
const HARDENING: [&str; 27] = [
    "User=keyhold",
    "Group=keyhold",
    "ExecStart=/usr/bin/keyhold serve --config /etc/keyhold/keyhold.toml",
    "StandardOutput=null",
    "NoNewPrivileges=yes",
    "ProtectSystem=strict",
    "ProtectHome=yes",
    "PrivateTmp=yes",
    "PrivateMounts=yes",
    "PrivateDevices=yes",
    "StateDirectory=keyhold",
    "StateDirectoryMode=0750",
    "ReadWritePaths=/var/lib/keyhold",
    "CapabilityBoundingSet=",
    "AmbientCapabilities=",
    "RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6",
    "SystemCallFilter=@system-service",
    "SystemCallFilter=~@privileged",
    "SystemCallArchitectures=native",
    "LockPersonality=yes",
    "MemoryDenyWriteExecute=yes",
    "RestrictNamespaces=yes",
    "RestrictSUIDSGID=yes",
    "ProtectKernelTunables=yes",
    "ProtectKernelModules=yes",
    "ProtectControlGroups=yes",
    "UMask=0077",
];

/// Runs `cmd`; panics with its output unless it succeeds. Returns stdout.
#[track_caller]
fn run(cmd: &mut Command) -> String {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\n--- stdout ---\n{}\n--- stderr ---\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Whether `program` runs (`program --version`).
fn available(program: &str) -> bool {
    Command::new(program)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Checks what the test needs from the machine, naming what is missing.
fn check_tools() {
    for (tool, package) in [
        ("dpkg", "dpkg"),
        ("unshare", "util-linux"),
        ("setpriv", "util-linux"),
    ] {
        assert!(available(tool), "`{tool}` is missing: install {package}");
    }
    let version = Command::new("cargo")
        .args(["deb", "--version"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string());
    assert!(
        version.is_some(),
        "cargo-deb is not installed: `scripts/test.sh` installs it, or run \
         `cargo install cargo-deb --version {CARGO_DEB_VERSION} --locked --no-default-features`"
    );
    let uid = run(Command::new("id").arg("-u"));
    assert_eq!(
        uid.trim(),
        "0",
        "installing into the scratch root mounts overlays: run the test as root (as CI does)"
    );
}

/// Packages the debug build with `cargo deb` into `dir`: its artifacts are linked into
/// `dir/target/release/`, the directory `cargo deb --no-build` packages from (its
/// `target/release/` asset paths resolve against `CARGO_TARGET_DIR`).
fn build_deb(dir: &Path) -> PathBuf {
    let release = dir.join("target/release");
    std::fs::create_dir_all(&release).expect("mkdir");
    for (file, _, _) in BUILT {
        let built = target_debug_dir().join(file);
        assert!(
            built.is_file(),
            "{} is missing: run `cargo build -p keyhold -p plugin-ctm -p plugin-luna` first",
            built.display()
        );
        std::os::unix::fs::symlink(&built, release.join(file)).expect("symlink");
    }
    let deb = dir.join("keyhold.deb");
    let started = Instant::now();
    run(Command::new("cargo")
        .args(["deb", "-p", "keyhold", "--no-build", "--fast", "--output"])
        .arg(&deb)
        .current_dir(workspace_root())
        .env("CARGO_TARGET_DIR", dir.join("target")));
    eprintln!("cargo deb took {:?}", started.elapsed());
    deb
}

/// The control fields of the package.
fn control_fields(deb: &Path) -> BTreeMap<String, String> {
    let text = run(Command::new("dpkg-deb").arg("--field").arg(deb));
    let mut fields = BTreeMap::new();
    let mut last = String::new();
    for line in text.lines() {
        if line.starts_with(' ') {
            if let Some(v) = fields.get_mut(&last) {
                *v = format!("{v}\n{line}");
            }
        } else if let Some((k, v)) = line.split_once(':') {
            last = k.to_string();
            fields.insert(k.to_string(), v.trim().to_string());
        }
    }
    fields
}

/// The package's files: path -> (mode string, owner/group).
fn file_list(deb: &Path) -> BTreeMap<String, (String, String)> {
    run(Command::new("dpkg-deb").arg("--contents").arg(deb))
        .lines()
        .filter_map(|line| {
            let cols: Vec<&str> = line.split_whitespace().collect();
            let path = cols.get(5)?;
            Some((
                path.trim_end_matches('/').to_string(),
                (cols[0].to_string(), cols[1].to_string()),
            ))
        })
        .collect()
}

/// Mounts the scratch root's overlays (`$1` = the scratch directory) in the private
/// mount namespace `unshare --mount` made; every script below starts with it.
const PRELUDE: &str = r#"
root=$1
for d in etc usr var; do
    mkdir -p "$root/$d-up" "$root/$d-work"
    mount -t overlay overlay -o "lowerdir=/$d,upperdir=$root/$d-up,workdir=$root/$d-work" "/$d"
done
"#;

/// Prints what the package left on the (scratch) system, one `name=value` a line.
const FACTS: &str = r#"
echo "passwd=$(getent passwd keyhold || echo absent)"
echo "group=$(getent group keyhold || echo absent)"
echo "state=$(stat -c '%U:%G:%a' /var/lib/keyhold 2>/dev/null || echo absent)"
echo "store=$(test -e /var/lib/keyhold/keyhold.redb && echo present || echo absent)"
echo "config=$(stat -c '%U:%G:%a' /etc/keyhold/keyhold.toml 2>/dev/null || echo absent)"
echo "binary=$(stat -c '%U:%G:%a' /usr/bin/keyhold 2>/dev/null || echo absent)"
echo "plugins=$(ls /usr/lib/keyhold/plugins 2>/dev/null | tr '\n' ' ' || true)"
echo "wants=$(readlink /etc/systemd/system/multi-user.target.wants/keyhold.service || echo absent)"
echo "status=$(dpkg-query -W -f='${db:Status-Abbrev}' keyhold 2>/dev/null || echo absent)"
echo "version=$(/usr/bin/keyhold --version 2>/dev/null || echo absent)"
"#;

/// A command running `script` (after [`PRELUDE`]) in a new private mount namespace
/// over the scratch root `root`.
fn scratch(root: &Path, script: &str) -> Command {
    let mut cmd = Command::new("unshare");
    cmd.args(["--mount", "--propagation", "private", "sh", "-euc"])
        .arg(format!("{PRELUDE}\n{script}"))
        .arg("sh")
        .arg(root)
        .env_clear()
        .env(
            "PATH",
            "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        )
        .env("LANG", "C.UTF-8");
    cmd
}

/// Runs `script` over the scratch root and returns the `name=value` lines it printed.
#[track_caller]
fn facts_after(root: &Path, script: &str) -> BTreeMap<String, String> {
    let out = run(&mut scratch(root, &format!("{script}\n{FACTS}")));
    out.lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.trim().to_string()))
        .collect()
}

/// The keyhold user's uid in a `getent passwd` line.
fn uid_of(passwd: &str) -> String {
    passwd.split(':').nth(2).unwrap_or("").to_string()
}

/// `keyhold serve` of the installed package, started in the scratch root.
struct Installed {
    child: Child,
    root: PathBuf,
    xks: std::net::SocketAddr,
    admin: std::net::SocketAddr,
    log: PathBuf,
}

impl Installed {
    /// Starts the installed binary with the installed configuration as the `keyhold`
    /// user, without capabilities, under no-new-privileges and memory-deny-write-execute.
    fn start(root: &Path) -> Installed {
        let xks: std::net::SocketAddr = format!("127.0.0.1:{}", free_port()).parse().expect("addr");
        let admin: std::net::SocketAddr =
            format!("127.0.0.1:{}", free_port()).parse().expect("addr");
        let log = root.join("serve.log");
        let stdout = root.join("serve.out");
        let mut cmd = scratch(
            root,
            "exec setpriv --reuid=keyhold --regid=keyhold --init-groups --no-new-privs \
             --inh-caps=-all --bounding-set=-all -- \
             /usr/bin/keyhold serve --config /etc/keyhold/keyhold.toml",
        );
        cmd.env("KEYHOLD_XKS__LISTEN", xks.to_string())
            .env("KEYHOLD_ADMIN__LISTEN", admin.to_string())
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&stdout).expect("stdout file"))
            .stderr(std::fs::File::create(&log).expect("log file"));
        // SAFETY: prctl(2) is async-signal-safe; the closure touches no memory of the
        // parent. PR_SET_MDWE (65) with PR_MDWE_REFUSE_EXEC_GAIN (1): no mapping may
        // become writable and executable, inherited by every program the child runs
        // (unshare, sh, setpriv, keyhold and the plugins it loads).
        unsafe {
            cmd.pre_exec(|| {
                if libc::prctl(65, 1, 0, 0, 0) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = cmd.spawn().unwrap_or_else(|e| {
            panic!("cannot start the installed keyhold under PR_SET_MDWE (Linux 6.3 or later): {e}")
        });
        Installed {
            child,
            root: root.to_path_buf(),
            xks,
            admin,
            log,
        }
    }

    /// A file of the installed state directory, as the scratch root's upper layer has it.
    fn state_file(&self, name: &str) -> PathBuf {
        self.root.join("var-up/lib/keyhold").join(name)
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits (bounded) until the admin API answers over the generated TLS; returns the
    /// development CA.
    async fn wait_ready(&mut self) -> String {
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                panic!(
                    "the installed keyhold exited early ({status}):\n{}",
                    self.log_text()
                );
            }
            if let Ok(ca) = std::fs::read_to_string(self.state_file("tls/ca.pem")) {
                let client = AdminClient::new(Transport::https(self.admin, &ca));
                let probe = client.raw("GET", "/api/v1/openapi.json", None);
                if let Ok(r) = client.try_send(&probe).await {
                    if r.status.as_u16() == 200 {
                        return ca;
                    }
                }
            }
            assert!(
                Instant::now() < deadline,
                "the installed keyhold did not answer on {} within 90 s:\n{}",
                self.admin,
                self.log_text()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// SIGTERM, then waits (bounded) for a clean exit.
    fn terminate(mut self) {
        run(Command::new("kill")
            .args(["-TERM"])
            .arg(self.child.id().to_string()));
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                assert!(status.success(), "{status}:\n{}", self.log_text());
                return;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("no exit within 60 s of SIGTERM:\n{}", self.log_text());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Installed {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `name: value` of a `/proc/<pid>/status` line.
fn proc_status(pid: u32, name: &str) -> String {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{name}:")))
        .map(|v| v.split_whitespace().collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

/// The control fields, file list and maintainer scripts of the package.
fn check_package(deb: &Path, scratch_dir: &Path) {
    let fields = control_fields(deb);
    assert_eq!(fields["Package"], "keyhold", "{fields:?}");
    assert_eq!(
        fields["Version"],
        format!("{}-1", env!("CARGO_PKG_VERSION")),
        "{fields:?}"
    );
    let arch = run(Command::new("dpkg").arg("--print-architecture"));
    assert_eq!(fields["Architecture"], arch.trim(), "{fields:?}");
    let depends = &fields["Depends"];
    assert!(
        depends.contains("adduser") && depends.contains("libc6"),
        "{depends}"
    );
    assert!(fields["Maintainer"].contains('@'), "{fields:?}");
    assert!(fields["Description"].contains("XKS"), "{fields:?}");
    assert_eq!(fields["Section"], "net", "{fields:?}");

    let files = file_list(deb);
    for (_, path, mode) in BUILT {
        let (m, owner) = files
            .get(path)
            .unwrap_or_else(|| panic!("{path} not in {files:?}"));
        assert_eq!((m.as_str(), owner.as_str()), (mode, "0/0"), "{path}");
    }
    for (path, mode) in SHIPPED {
        let (m, owner) = files
            .get(path)
            .unwrap_or_else(|| panic!("{path} not in {files:?}"));
        assert_eq!((m.as_str(), owner.as_str()), (mode, "0/0"), "{path}");
    }
    for (path, (mode, owner)) in &files {
        assert_eq!(owner, "0/0", "{path} is owned by root");
        assert_ne!(mode.chars().nth(8), Some('w'), "{path} is world-writable");
        assert!(
            !path.starts_with("./var") && !path.starts_with("./home"),
            "{path}: state is made by the postinst, not shipped"
        );
    }

    let control = scratch_dir.join("control");
    run(Command::new("dpkg-deb")
        .arg("--control")
        .arg(deb)
        .arg(&control));
    let conffiles = std::fs::read_to_string(control.join("conffiles")).expect("conffiles");
    assert_eq!(conffiles.trim(), "/etc/keyhold/keyhold.toml");
    for script in ["postinst", "prerm", "postrm"] {
        let path = control.join(script);
        run(Command::new("sh").arg("-n").arg(&path));
    }
    let postinst = std::fs::read_to_string(control.join("postinst")).expect("postinst");
    assert!(postinst.contains("adduser --system"), "{postinst}");
    assert!(
        postinst.contains("deb-systemd-helper enable keyhold.service"),
        "{postinst}"
    );
    // Enabled, not started on install (the first start generates the keys): only an
    // upgrade restarts a running service.
    assert!(!postinst.contains("deb-systemd-invoke start"), "{postinst}");
    assert!(
        postinst.contains("try-restart keyhold.service"),
        "{postinst}"
    );
    let postrm = std::fs::read_to_string(control.join("postrm")).expect("postrm");
    let purge = postrm.rfind("\"purge\"").expect("a purge branch");
    assert!(
        postrm[purge..].contains("rm -rf /var/lib/keyhold")
            && postrm[purge..].contains("deluser --system"),
        "{postrm}"
    );
}

/// `systemd-analyze verify` and the offline security review of the installed unit.
fn check_unit(root: &Path) {
    let unit = std::fs::read_to_string(root.join("usr-up/lib/systemd/system/keyhold.service"))
        .expect("the installed unit");
    let lines: Vec<&str> = unit.lines().map(str::trim).collect();
    for directive in HARDENING {
        assert!(lines.contains(&directive), "the unit lacks {directive}");
    }
    assert!(
        !lines
            .iter()
            .any(|l| l.starts_with("AmbientCapabilities=CAP")
                || l.starts_with("CapabilityBoundingSet=CAP")),
        "the unit grants capabilities"
    );
    if !available("systemd-analyze") {
        eprintln!("systemd-analyze is not installed: the unit is checked by its text only");
        return;
    }
    let out = run(&mut scratch(
        root,
        "systemd-analyze verify /usr/lib/systemd/system/keyhold.service 2>&1\n\
         echo '--- security'\n\
         systemd-analyze security --offline=true --no-pager \
             /usr/lib/systemd/system/keyhold.service 2>&1",
    ));
    let (verify, security) = out.split_once("--- security").expect("both parts");
    assert!(
        !verify.contains("keyhold.service"),
        "systemd-analyze verify complains about the unit:\n{verify}"
    );
    let score = security
        .lines()
        .find_map(|l| l.split_once("Overall exposure level for keyhold.service: "))
        .and_then(|(_, rest)| rest.split_whitespace().next())
        .and_then(|s| s.parse::<f32>().ok())
        .unwrap_or_else(|| panic!("no exposure level in:\n{security}"));
    eprintln!("systemd-analyze security --offline: exposure {score} (0 = best, 10 = worst)");
    assert!(
        score <= 2.0,
        "exposure {score} (OK is below 2):\n{security}"
    );
}

/// The installed service end to end: a store made through its admin API, a signed XKS
/// call, and the process's identity and privileges.
async fn serve_installed(root: &Path, keyhold_uid: &str) {
    let mut server = Installed::start(root);
    let ca = server.wait_ready().await;
    let pid = server.child.id();
    assert_eq!(
        proc_status(pid, "Uid"),
        format!("{keyhold_uid} {keyhold_uid} {keyhold_uid} {keyhold_uid}"),
        "runs as the keyhold user"
    );
    assert_eq!(proc_status(pid, "NoNewPrivs"), "1");
    assert_eq!(proc_status(pid, "CapEff"), "0000000000000000");
    assert_eq!(proc_status(pid, "CapBnd"), "0000000000000000");

    // The first start's state, owned by keyhold and private.
    let meta = |name: &str| {
        let m = std::fs::metadata(server.state_file(name))
            .unwrap_or_else(|e| panic!("{name}: {e}\n{}", server.log_text()));
        (
            std::os::unix::fs::MetadataExt::uid(&m).to_string(),
            std::os::unix::fs::PermissionsExt::mode(&m.permissions()) & 0o777,
        )
    };
    for (name, mode) in [
        ("", 0o750),
        ("master.key", 0o600),
        ("ctm-master.key", 0o600),
        ("root-password", 0o600),
        ("tls/server.key", 0o600),
    ] {
        assert_eq!(meta(name), (keyhold_uid.to_string(), mode), "{name}");
    }
    let password = std::fs::read_to_string(server.state_file("root-password"))
        .expect("root-password")
        .trim()
        .to_string();
    let log = server.log_text();
    assert!(
        log.contains("/usr/lib/keyhold/plugins/libplugin_ctm.so"),
        "ctm loaded from the package's plugin directory:\n{log}"
    );
    assert!(!log.contains(&password), "the root password is not logged");

    // What the container's HEALTHCHECK runs: the CLI fetches the OpenAPI document over
    // the admin API's TLS, without a session.
    let home = tempfile::tempdir().expect("tempdir");
    let probe = run(Command::new(keyhold_bin())
        .arg("openapi")
        .env_clear()
        .env("HOME", home.path())
        .env(
            "KEYHOLD_SERVER",
            format!("https://127.0.0.1:{}", server.admin.port()),
        )
        .env("KEYHOLD_CACERT", server.state_file("tls/ca.pem")));
    assert!(probe.contains("\"openapi\""), "{probe}");

    // The admin API, as an operator would use it on the installed service.
    let admin = AdminClient::new(Transport::https(server.admin, &ca));
    let root_client = admin.login("root", &password).await;
    let sources = expect_status(&root_client.get("/api/v1/sources").await, 200);
    let ctm = &sources[0];
    assert_eq!(ctm["name"], "ctm", "{sources}");
    assert_eq!(ctm["status"], "opened", "{sources}");
    assert_eq!(
        ctm["plugin_version"],
        env!("CARGO_PKG_VERSION"),
        "{sources}"
    );
    assert_eq!(ctm["sdk_version"], keyhold_sdk::SDK_VERSION, "{sources}");
    assert_eq!(ctm["abi_version"], keyhold_sdk::ABI_VERSION, "{sources}");
    for (name, usage) in [
        ("pkg-hc", json!(["encrypt", "decrypt", "wrap", "unwrap"])),
        ("pkg-data", json!(["encrypt", "decrypt"])),
    ] {
        let r = root_client
            .create_source_key("ctm", &json!({"name": name, "usage": usage}))
            .await;
        expect_status(&r, 201);
    }
    let r = root_client
        .create_store(&json!({"name": "pkg", "source": "ctm", "health_check_key": "pkg-hc"}))
        .await;
    let created = expect_status(&r, 201);
    let id = created_store_id(&r);
    let file = &created["credentials_file"];
    let uri_path = file["XksProxyUriPath"].as_str().expect("XksProxyUriPath");
    let r = root_client
        .create_hyok_key(&format!("/api/v1/stores/{id}"), "pkg-key", "pkg-data")
        .await;
    expect_status(&r, 201);

    // A SigV4-signed XKS call over the generated TLS, and a refused one.
    let xks = XksClient::new(
        Transport::https(server.xks, &ca),
        credential_of(file),
        uri_path,
    );
    let health = xks.health().await.ok_json();
    assert!(health["ekmFleetDetails"].is_array(), "{health}");
    let sealed = xks
        .encrypt_ok("pkg-key", b"installed by dpkg", Some(b"aad"))
        .await;
    assert_eq!(
        xks.decrypt_ok("pkg-key", &sealed, Some(b"aad")).await,
        b"installed by dpkg"
    );
    xks.with_cred(Credential::new(
        &credential_of(file).access_key_id,
        "bm90IHRoZSBzZWNyZXQgb2YgdGhpcyBjcmVkZW50aWFsIQ==",
    ))
    .assert_unauthenticated()
    .await;

    server.terminate();
}

#[tokio::test(flavor = "multi_thread")]
async fn the_deb_installs_a_hardened_service_that_serves_signed_xks_calls() {
    check_tools();
    let machine_user = run(Command::new("sh").args(["-c", "getent passwd keyhold || true"]));
    let dir = tempfile::tempdir().expect("tempdir");
    let started = Instant::now();
    let deb = build_deb(dir.path());
    check_package(&deb, dir.path());

    // Install with dpkg into the scratch root: the postinst makes the user, the state
    // directory and enables the unit.
    let root = dir.path().join("root");
    std::fs::create_dir_all(&root).expect("mkdir");
    let deb_arg = deb.to_string_lossy().to_string();
    let installed = facts_after(&root, &format!("dpkg -i '{deb_arg}' >&2"));
    let passwd = &installed["passwd"];
    assert!(
        passwd.starts_with("keyhold:x:") && passwd.ends_with(":/var/lib/keyhold:/usr/sbin/nologin"),
        "{installed:?}"
    );
    let uid = uid_of(passwd);
    let uid_n: u32 = uid.parse().expect("numeric uid");
    assert!((100..1000).contains(&uid_n), "a system uid: {uid}");
    assert!(
        installed["group"].starts_with("keyhold:x:"),
        "{installed:?}"
    );
    assert_eq!(installed["state"], "keyhold:keyhold:750", "{installed:?}");
    assert_eq!(installed["store"], "absent", "not started on install");
    assert_eq!(installed["config"], "root:root:644", "{installed:?}");
    assert_eq!(installed["binary"], "root:root:755", "{installed:?}");
    assert_eq!(
        installed["plugins"], "libplugin_ctm.so libplugin_luna.so",
        "{installed:?}"
    );
    assert!(
        installed["wants"].ends_with("/systemd/system/keyhold.service"),
        "enabled: {installed:?}"
    );
    assert_eq!(installed["status"], "ii", "{installed:?}");
    let version = &installed["version"];
    assert!(
        version.starts_with(&format!("keyhold {} (commit ", env!("CARGO_PKG_VERSION")))
            && version.contains(&format!("plugin ABI {}", keyhold_sdk::ABI_VERSION)),
        "{version}"
    );
    check_unit(&root);

    // Installing again (an upgrade to the same version) changes nothing.
    let again = facts_after(&root, &format!("dpkg -i '{deb_arg}' >&2"));
    assert_eq!(again, installed, "a second install is idempotent");

    serve_installed(&root, &uid).await;

    // Remove keeps the user, the state and the configuration; purge removes them.
    let removed = facts_after(&root, "dpkg --remove keyhold >&2");
    assert_eq!(removed["binary"], "absent", "{removed:?}");
    assert_eq!(removed["plugins"], "", "{removed:?}");
    assert_eq!(removed["passwd"], *passwd, "{removed:?}");
    assert_eq!(removed["state"], "keyhold:keyhold:750", "{removed:?}");
    assert_eq!(removed["store"], "present", "{removed:?}");
    assert_eq!(removed["config"], "root:root:644", "{removed:?}");
    assert_eq!(removed["status"], "rc", "{removed:?}");
    let purged = facts_after(&root, "dpkg --purge keyhold >&2");
    for fact in ["passwd", "group", "state", "store", "config", "wants"] {
        assert_eq!(purged[fact], "absent", "{fact} after purge: {purged:?}");
    }

    // None of it touched the machine.
    let after = run(Command::new("sh").args(["-c", "getent passwd keyhold || true"]));
    assert_eq!(after, machine_user, "the machine's users are unchanged");
    eprintln!("package test took {:?}", started.elapsed());
}

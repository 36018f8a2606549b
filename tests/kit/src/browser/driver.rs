//! The WebDriver plumbing of [`super::Browser`]: finding chromium and chromedriver,
//! the NSS database trusting the test CA, starting chromedriver, the session's
//! capabilities, DevTools commands, and killing what a browser left behind.

use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use bytes::Bytes;
use fantoccini::{Client, ClientBuilder, wd::WebDriverCompatibleCommand};
use http_body_util::{BodyExt, Empty};
use hyper_util::{
    client::legacy::{Client as HttpClient, connect::HttpConnector},
    rt::TokioExecutor,
};
use serde_json::{Value, json};

use super::{BrowserOptions, PATIENCE, POLL, Viewport};

/// The chromium executable: `$KEYHOLD_TEST_CHROMIUM`, else Debian's real binary (not
/// the `/usr/bin/chromium` launcher script, whose `/etc/chromium.d` snippets add flags
/// of their own), else the launcher.
pub(super) fn chromium_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("KEYHOLD_TEST_CHROMIUM") {
        return PathBuf::from(path);
    }
    let real = Path::new("/usr/lib/chromium/chromium");
    if real.is_file() {
        return real.to_path_buf();
    }
    PathBuf::from("/usr/bin/chromium")
}

/// The chromedriver executable: `$KEYHOLD_TEST_CHROMEDRIVER`, else `chromedriver`.
pub(super) fn chromedriver_binary() -> PathBuf {
    std::env::var_os("KEYHOLD_TEST_CHROMEDRIVER")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("chromedriver"))
}

pub(super) const INSTALL_HINT: &str =
    "install Debian's chromium, chromium-driver and libnss3-tools (scripts/test.sh does)";

/// Creates an NSS database under `home/.pki/nssdb` (where chromium on Linux reads the
/// user's trust anchors) trusting the CA in `ca_pem` for TLS servers.
pub(super) fn trust_ca(home: &Path, ca_pem: &str) {
    let db = home.join(".pki").join("nssdb");
    std::fs::create_dir_all(&db).expect("create the NSS database directory");
    let ca_file = home.join("test-ca.pem");
    std::fs::write(&ca_file, ca_pem).expect("write the test CA");
    let db_arg = format!("sql:{}", db.display());
    let run = |args: &[&str]| {
        let out = Command::new("certutil")
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("certutil: {e}; {INSTALL_HINT}"));
        assert!(
            out.status.success(),
            "certutil {args:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    };
    run(&["-d", &db_arg, "-N", "--empty-password"]);
    let ca = ca_file.to_string_lossy();
    run(&[
        "-d",
        &db_arg,
        "-A",
        "-t",
        "C,,",
        "-n",
        "keyhold-test-ca",
        "-i",
        &ca,
    ]);
}

/// A DevTools command through chromedriver (`POST /session/{id}/goog/cdp/execute`).
#[derive(Debug)]
pub(super) struct Cdp {
    pub(super) cmd: &'static str,
    pub(super) params: Value,
}

impl WebDriverCompatibleCommand for Cdp {
    fn endpoint(
        &self,
        base_url: &url::Url,
        session_id: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        base_url.join(&format!(
            "session/{}/goog/cdp/execute",
            session_id.unwrap_or_default()
        ))
    }

    fn method_and_body(&self, _request_url: &url::Url) -> (http::Method, Option<String>) {
        let body = json!({"cmd": self.cmd, "params": self.params});
        (http::Method::POST, Some(body.to_string()))
    }
}

/// Starts chromedriver on 127.0.0.1:`port` with `home` as chromium's HOME.
pub(super) fn spawn_driver(port: u16, home: &Path, dir: &Path, log: &Path) -> Child {
    let stderr = std::fs::File::create(dir.join("chromedriver.stderr")).expect("stderr file");
    Command::new(chromedriver_binary())
        .arg(format!("--port={port}"))
        .arg("--allowed-ips=127.0.0.1")
        .arg(format!("--log-path={}", log.display()))
        .env("HOME", home)
        .env("XDG_CONFIG_HOME", home.join(".config"))
        .env("XDG_CACHE_HOME", home.join(".cache"))
        .env("XDG_DATA_HOME", home.join(".local/share"))
        .env_remove("DISPLAY")
        .env_remove("WAYLAND_DISPLAY")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::from(stderr))
        .spawn()
        .unwrap_or_else(|e| panic!("start chromedriver: {e}; {INSTALL_HINT}"))
}

/// Waits until chromedriver on `port` is ready, then opens a session.
pub(super) async fn connect(
    port: u16,
    options: &BrowserOptions,
    dir: &Path,
    downloads: &Path,
) -> Result<Client, String> {
    let base = format!("http://127.0.0.1:{port}");
    let http: HttpClient<HttpConnector, Empty<Bytes>> =
        HttpClient::builder(TokioExecutor::new()).build(HttpConnector::new());
    let deadline = Instant::now() + PATIENCE;
    loop {
        let status = async {
            let uri: http::Uri = format!("{base}/status").parse().ok()?;
            let reply = http.get(uri).await.ok()?;
            let body = reply.into_body().collect().await.ok()?.to_bytes();
            serde_json::from_slice::<Value>(&body).ok()
        };
        if let Some(s) = tokio::time::timeout(Duration::from_secs(5), status)
            .await
            .ok()
            .flatten()
        {
            if s["value"]["ready"] == true {
                break;
            }
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "chromedriver on {base} not ready within {PATIENCE:?}"
            ));
        }
        tokio::time::sleep(POLL).await;
    }
    let caps = capabilities(options, dir, downloads);
    let mut builder = ClientBuilder::new(HttpConnector::new());
    builder.capabilities(caps);
    let client = tokio::time::timeout(PATIENCE, builder.connect(&base))
        .await
        .map_err(|_| format!("no session from chromedriver within {PATIENCE:?}"))?
        .map_err(|e| format!("new session: {e}"))?;
    let (w, h) = options.viewport.size();
    if options.viewport == Viewport::Desktop {
        client
            .set_window_size(w, h)
            .await
            .map_err(|e| format!("window size: {e}"))?;
    }
    Ok(client)
}

/// The session's capabilities: headless chromium, its own profile and downloads, the
/// window, and certificate errors NOT accepted (trust comes from the NSS database).
pub(super) fn capabilities(
    options: &BrowserOptions,
    dir: &Path,
    downloads: &Path,
) -> serde_json::Map<String, Value> {
    let (w, h) = options.viewport.size();
    let args = vec![
        "--headless=new".to_string(),
        "--no-sandbox".into(),
        "--disable-gpu".into(),
        "--disable-dev-shm-usage".into(),
        format!("--window-size={w},{h}"),
        format!("--user-data-dir={}", dir.join("profile").display()),
        "--no-first-run".into(),
        "--no-default-browser-check".into(),
        "--disable-extensions".into(),
        "--disable-background-networking".into(),
        "--disable-component-update".into(),
        "--disable-sync".into(),
        "--disable-features=Translate,MediaRouter,OptimizationHints".into(),
        "--password-store=basic".into(),
        "--hide-scrollbars".into(),
        "--force-color-profile=srgb".into(),
        "--lang=en-US".into(),
    ];
    let mut chrome = json!({
        "binary": chromium_binary(),
        "args": args,
        "prefs": {
            "download.default_directory": downloads,
            "download.prompt_for_download": false,
            "download.directory_upgrade": true,
            "safebrowsing.enabled": false,
            "credentials_enable_service": false,
            "profile.password_manager_enabled": false,
        },
    });
    if options.viewport == Viewport::Phone {
        chrome["mobileEmulation"] = json!({
            "deviceMetrics": {"width": w, "height": h, "pixelRatio": 2.0, "touch": true, "mobile": true},
        });
    }
    let caps = json!({
        "browserName": "chrome",
        "acceptInsecureCerts": false,
        "pageLoadStrategy": "normal",
        "goog:chromeOptions": chrome,
    });
    match caps {
        Value::Object(map) => map,
        _ => unreachable!("a JSON object"),
    }
}

/// Kills (SIGKILL, by process id) every process whose command line names `dir`:
/// chromium and its helpers started for this browser, should any outlive chromedriver.
pub(super) fn kill_leftovers(dir: &Path) {
    let needle = dir.to_string_lossy().to_string();
    let own = std::process::id();
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return;
    };
    for entry in procs.flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        if pid == own {
            continue;
        }
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        if String::from_utf8_lossy(&cmdline).contains(&needle) {
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .stderr(Stdio::null())
                .status();
        }
    }
}

//! The console's browser tests' fixture: a real keyhold (in-process) whose admin and
//! XKS listeners serve HTTPS with a certificate of a test CA, and headless chromium
//! browsers that trust that CA.

use std::{
    path::{Path, PathBuf},
    sync::Arc,
};

use keyhold_testkit::browser::{Browser, BrowserOptions, Viewport};
use keyhold_tests::{
    Credential, TestServer, Transport, XksClient,
    admin::{
        AdminClient, created_store_id, credential_of, data_key, expect_status, health_check_key,
    },
    paths::toml_str,
    pki::TestCa,
};

/// A running keyhold for the browser.
pub struct Console {
    /// The server (its data directory holds the screenshots of a normal run).
    pub server: TestServer,
    /// PEM of the test CA.
    pub ca_pem: String,
    /// `https://localhost:<admin port>`.
    pub origin: String,
}

impl Console {
    /// keyhold with the `ctm` source, no store, admin API and XKS over HTTPS.
    pub async fn start() -> Console {
        let dir = Arc::new(tempfile::tempdir().expect("tempdir"));
        let ca = TestCa::new("keyhold console test CA");
        let (cert, key) = ca.server_cert().write(dir.path(), "server");
        let (cert, key) = (
            toml_str(cert.to_string_lossy()),
            toml_str(key.to_string_lossy()),
        );
        let mut server = TestServer::admin_only()
            .tls(&[format!("cert_file = {cert}"), format!("key_file = {key}")])
            .admin_line("plain_http = false")
            .admin_line(&format!("tls = {{ cert_file = {cert}, key_file = {key} }}"))
            // The store page's charts get a point each second (default 10 s).
            .toml_tail("[metrics]\nhistory_interval_seconds = 1\n")
            .in_dir(dir)
            .start()
            .await;
        assert!(server.running.tls && server.running.admin_tls);
        server.ca_pem = Some(ca.pem());
        let port = server.running.admin_addr.expect("admin listener").port();
        Console {
            server,
            ca_pem: ca.pem(),
            origin: format!("https://localhost:{port}"),
        }
    }

    /// The URL of console path `path` (`/console/...`).
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.origin)
    }

    /// Where screenshots of this run go (unless updating the committed ones).
    pub fn screenshot_dir(&self) -> PathBuf {
        self.server.path().join("screenshots")
    }

    /// A browser of this viewport trusting the test CA.
    pub async fn browser_at(&self, viewport: Viewport) -> Browser {
        Browser::start(
            BrowserOptions::trusting(&self.ca_pem)
                .viewport(viewport)
                .screenshots_in(&self.screenshot_dir()),
        )
        .await
    }

    /// A desktop browser (1280 x 900) trusting the test CA.
    pub async fn browser(&self) -> Browser {
        self.browser_at(Viewport::Desktop).await
    }

    /// The admin API over HTTPS, unauthenticated.
    pub fn api(&self) -> AdminClient {
        let addr = self.server.running.admin_addr.expect("admin listener");
        AdminClient::new(Transport::https(addr, &self.ca_pem))
    }

    /// The admin API as root.
    pub async fn root_api(&self) -> AdminClient {
        self.api().login("root", &self.server.root_password()).await
    }

    /// The generated root password.
    pub fn root_password(&self) -> String {
        self.server.root_password()
    }

    /// Signs `browser` in as `user` through the sign-in page; waits for the page it
    /// leads to (the user's name in the header).
    pub async fn sign_in(&self, browser: &Browser, user: &str, password: &str) {
        browser.goto(&self.url("/console/signin")).await;
        browser.fill("#user", user).await;
        browser.fill("#password", password).await;
        browser.click_and_wait("#signin-submit").await;
        let who = browser.text("#signed-in-user").await;
        assert!(who.contains(user), "signed in as {user}: {who}");
    }

    /// Signs `browser` in as root.
    pub async fn sign_in_root(&self, browser: &Browser) {
        self.sign_in(browser, "root", &self.root_password()).await;
    }
}

/// The refusal banner of the page: `(data-code, text)`, waiting for it.
pub async fn alert(browser: &Browser) -> (String, String) {
    let code = browser
        .attr("[role=alert]", "data-code")
        .await
        .unwrap_or_default();
    (code, browser.text("[role=alert]").await)
}

/// The success banner's text, waiting for it.
pub async fn status(browser: &Browser) -> String {
    browser.text("[role=status]").await
}

/// Creates source key `name` on source `source` through the source's page; `usage`
/// lists the usages to tick (the others are cleared). Waits for its row.
pub async fn create_source_key(
    console: &Console,
    browser: &Browser,
    source: &str,
    name: &str,
    usage: &[&str],
    exportable: bool,
    deletable: bool,
) {
    browser
        .goto(&console.url(&format!("/console/sources/{source}")))
        .await;
    browser.fill("#create-source-key-form #name", name).await;
    for u in ["encrypt", "decrypt", "wrap", "unwrap"] {
        browser
            .check(&format!("#usage-{u}"), usage.contains(&u))
            .await;
    }
    browser.check("#exportable", exportable).await;
    browser.check("#deletable", deletable).await;
    browser.click_and_wait("#create-source-key-submit").await;
    browser
        .find(&format!("#source-keys tr[data-name=\"{name}\"]"))
        .await;
}

/// The credential and `XksProxyUriPath` of a downloaded credentials file.
pub fn read_credentials_file(path: &Path) -> (Credential, String) {
    let text = std::fs::read_to_string(path).expect("read the credentials file");
    let file: serde_json::Value = serde_json::from_str(&text).expect("credentials file JSON");
    let uri_path = file["XksProxyUriPath"]
        .as_str()
        .expect("XksProxyUriPath")
        .to_string();
    (credential_of(&file), uri_path)
}

/// An XKS client of `uri_path` over HTTPS (the test CA) signing with `cred`.
pub fn xks_client(console: &Console, cred: Credential, uri_path: &str) -> XksClient {
    XksClient::new(
        Transport::https(console.server.running.xks_addr, &console.ca_pem),
        cred,
        uri_path,
    )
}

/// Clicks the download link `css` and returns the downloaded file.
pub async fn download(browser: &Browser, css: &str) -> PathBuf {
    let before = browser.downloads();
    browser.click(css).await;
    browser.wait_download(&before).await
}

/// Creates, through the API as root, the health-check key `hc` and the data key
/// `data` on `ctm` and store `name` (no account: admins only, unless `account`);
/// returns the store's id.
pub async fn store_via_api(console: &Console, name: &str, account: Option<&str>) -> String {
    let root = console.root_api().await;
    for key in [
        health_check_key(&format!("{name}-hc")),
        data_key(&format!("{name}-data")),
    ] {
        expect_status(&root.create_source_key("ctm", &key).await, 201);
    }
    let mut body = serde_json::json!({"name": name, "source": "ctm",
                                      "health_check_key": format!("{name}-hc")});
    if let Some(a) = account {
        body["account"] = a.into();
    }
    created_store_id(&root.create_store(&body).await)
}

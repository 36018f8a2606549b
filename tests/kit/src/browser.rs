//! Debian's `chromium`, headless, driven over WebDriver by Debian's `chromedriver`
//! (package `chromium-driver`) through the `fantoccini` client: the browser of the
//! console's end-to-end tests.
//!
//! Each [`Browser`] is its own world: a `chromedriver` on a port chosen at run time
//! (127.0.0.1 only), a throw-away `HOME` whose NSS database trusts the test CA (so
//! chromium verifies the server's certificate like any browser, against a root it was
//! given: no `acceptInsecureCerts`), a fresh profile and a download directory. Dropping
//! it kills chromedriver and every chromium process it started.
//!
//! Nothing here has timing thresholds: every wait polls, with the generous deadline
//! [`PATIENCE`], for something the page must show.

use std::{
    path::{Path, PathBuf},
    process::Child,
    time::{Duration, Instant},
};

use base64::Engine;
use fantoccini::{
    Client, Locator,
    actions::{InputSource, KeyAction, KeyActions},
    elements::Element,
    key::Key,
};
use serde_json::{Value, json};
use tempfile::TempDir;

use crate::paths;

mod driver;

use driver::{Cdp, connect, kill_leftovers, spawn_driver, trust_ca};

/// The WebDriver client crate, for what [`Browser`] does not wrap (cookies, windows).
pub use fantoccini;

/// How long any one wait (an element, a page, a download, chromedriver's start) may
/// take before the test fails: generous, for a loaded 2-core machine.
pub const PATIENCE: Duration = Duration::from_secs(60);

/// How often a wait looks again.
const POLL: Duration = Duration::from_millis(100);

/// Environment variable: `update` writes screenshots to `docs/screenshots/` (to commit
/// them); otherwise they go to the test's own directory, so a test run leaves the tree
/// clean.
pub const SCREENSHOTS_ENV: &str = "KEYHOLD_SCREENSHOTS";

/// The window a browser emulates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Viewport {
    /// A desktop window of 1280 x 900 CSS pixels.
    Desktop,
    /// A phone: 390 x 844 CSS pixels, device pixel ratio 2, touch, mobile viewport
    /// rules (chromedriver's mobile emulation, so `<meta name="viewport">` counts).
    Phone,
}

impl Viewport {
    /// Width and height in CSS pixels.
    pub fn size(self) -> (u32, u32) {
        match self {
            Viewport::Desktop => (1280, 900),
            Viewport::Phone => (390, 844),
        }
    }
}

/// What to start.
#[derive(Debug, Clone)]
pub struct BrowserOptions {
    /// PEM of the CA the browser trusts besides nothing else (the test CA), or none.
    pub ca_pem: Option<String>,
    /// The window.
    pub viewport: Viewport,
    /// Where screenshots go unless [`SCREENSHOTS_ENV`] is `update` (default: the
    /// browser's own temporary directory).
    pub screenshot_dir: Option<PathBuf>,
}

impl BrowserOptions {
    /// A desktop browser trusting `ca_pem`.
    pub fn trusting(ca_pem: &str) -> BrowserOptions {
        BrowserOptions {
            ca_pem: Some(ca_pem.to_string()),
            viewport: Viewport::Desktop,
            screenshot_dir: None,
        }
    }

    /// The same with another viewport.
    pub fn viewport(mut self, viewport: Viewport) -> BrowserOptions {
        self.viewport = viewport;
        self
    }

    /// The same, saving screenshots to `dir` (unless updating the committed ones).
    pub fn screenshots_in(mut self, dir: &Path) -> BrowserOptions {
        self.screenshot_dir = Some(dir.to_path_buf());
        self
    }
}

/// A headless chromium session (see the module documentation).
pub struct Browser {
    client: Client,
    driver: Option<Child>,
    /// HOME, profile, downloads, chromedriver's log (kept while the browser runs).
    dir: TempDir,
    screenshots: PathBuf,
    viewport: Viewport,
}

impl Browser {
    /// A desktop browser trusting `ca_pem`.
    pub async fn desktop(ca_pem: &str) -> Browser {
        Browser::start(BrowserOptions::trusting(ca_pem)).await
    }

    /// A phone-width browser trusting `ca_pem`.
    pub async fn phone(ca_pem: &str) -> Browser {
        Browser::start(BrowserOptions::trusting(ca_pem).viewport(Viewport::Phone)).await
    }

    /// Starts chromedriver and a chromium session; panics with chromedriver's log when
    /// that fails within [`PATIENCE`].
    pub async fn start(options: BrowserOptions) -> Browser {
        let dir = tempfile::Builder::new()
            .prefix("keyhold-browser-")
            .tempdir()
            .expect("browser tempdir");
        let home = dir.path().join("home");
        std::fs::create_dir_all(&home).expect("browser home");
        let downloads = dir.path().join("downloads");
        std::fs::create_dir_all(&downloads).expect("download directory");
        if let Some(ca) = &options.ca_pem {
            trust_ca(&home, ca);
        }
        let mut last = String::new();
        // A port can be taken between the probe and chromedriver's bind: try again.
        for attempt in 0..3 {
            let port = paths::free_port();
            let log = dir.path().join(format!("chromedriver-{attempt}.log"));
            let mut driver = spawn_driver(port, &home, dir.path(), &log);
            match connect(port, &options, dir.path(), &downloads).await {
                Ok(client) => {
                    let screenshots = options
                        .screenshot_dir
                        .clone()
                        .unwrap_or_else(|| dir.path().join("screenshots"));
                    return Browser {
                        client,
                        driver: Some(driver),
                        dir,
                        screenshots,
                        viewport: options.viewport,
                    };
                }
                Err(e) => {
                    let _ = driver.kill();
                    let _ = driver.wait();
                    kill_leftovers(dir.path());
                    let log = std::fs::read_to_string(&log).unwrap_or_default();
                    let tail: String = log
                        .lines()
                        .rev()
                        .take(30)
                        .collect::<Vec<_>>()
                        .into_iter()
                        .rev()
                        .collect::<Vec<_>>()
                        .join("\n");
                    last = format!("{e}\n--- chromedriver log (tail) ---\n{tail}");
                }
            }
        }
        panic!("no chromium session: {last}");
    }

    /// The WebDriver client, for what the helpers here do not cover.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The viewport this browser emulates.
    pub fn viewport(&self) -> Viewport {
        self.viewport
    }

    /// Where chromium saves downloads.
    pub fn download_dir(&self) -> PathBuf {
        self.dir.path().join("downloads")
    }

    /// Opens `url` (waits for the load, as WebDriver's navigation does).
    pub async fn goto(&self, url: &str) {
        self.client
            .goto(url)
            .await
            .unwrap_or_else(|e| panic!("open {url}: {e}"));
    }

    /// The current URL.
    pub async fn url(&self) -> String {
        self.client
            .current_url()
            .await
            .expect("current URL")
            .to_string()
    }

    /// Polls (up to [`PATIENCE`]) until `what` yields `Some`; panics naming `waiting_for`
    /// and the page's URL and text otherwise.
    pub async fn poll<T, F, Fut>(&self, waiting_for: &str, mut what: F) -> T
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Option<T>>,
    {
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some(v) = what().await {
                return v;
            }
            if Instant::now() >= deadline {
                let url = self.client.current_url().await.map(|u| u.to_string());
                let text = self.body_text().await;
                panic!(
                    "waited {PATIENCE:?} for {waiting_for}\n--- at {url:?} ---\n{text}\n--- end of page ---"
                );
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// The first element matching CSS selector `css`, waiting for it to appear.
    pub async fn find(&self, css: &str) -> Element {
        self.poll(&format!("an element `{css}`"), || async {
            self.client.find(Locator::Css(css)).await.ok()
        })
        .await
    }

    /// Every element matching `css` now (no waiting).
    pub async fn find_all(&self, css: &str) -> Vec<Element> {
        self.client
            .find_all(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("find `{css}`: {e}"))
    }

    /// Whether an element matches `css` now (no waiting).
    pub async fn exists(&self, css: &str) -> bool {
        !self.find_all(css).await.is_empty()
    }

    /// Waits until nothing matches `css`.
    pub async fn wait_gone(&self, css: &str) {
        self.poll(&format!("`{css}` to go away"), || async {
            (!self.exists(css).await).then_some(())
        })
        .await
    }

    /// The visible text of the first element matching `css` (waiting for it).
    pub async fn text(&self, css: &str) -> String {
        self.find(css)
            .await
            .text()
            .await
            .unwrap_or_else(|e| panic!("text of `{css}`: {e}"))
    }

    /// The attribute `name` of the first element matching `css` (waiting for it).
    pub async fn attr(&self, css: &str, name: &str) -> Option<String> {
        self.find(css)
            .await
            .attr(name)
            .await
            .unwrap_or_else(|e| panic!("attribute {name} of `{css}`: {e}"))
    }

    /// The text of the whole page (for failure messages and assertions).
    pub async fn body_text(&self) -> String {
        match self.client.find(Locator::Css("body")).await {
            Ok(body) => body.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        }
    }

    /// Types `value` into the field matching `css`, replacing what it held.
    pub async fn fill(&self, css: &str, value: &str) {
        let field = self.find(css).await;
        field
            .clear()
            .await
            .unwrap_or_else(|e| panic!("clear `{css}`: {e}"));
        field
            .send_keys(value)
            .await
            .unwrap_or_else(|e| panic!("type into `{css}`: {e}"));
    }

    /// Chooses the option of value `value` in the `<select>` matching `css`.
    pub async fn select(&self, css: &str, value: &str) {
        self.find(css)
            .await
            .select_by_value(value)
            .await
            .unwrap_or_else(|e| panic!("select {value:?} in `{css}`: {e}"));
    }

    /// Sets the checkbox matching `css` to `checked`.
    pub async fn check(&self, css: &str, checked: bool) {
        let box_ = self.find(css).await;
        let now = box_
            .is_selected()
            .await
            .unwrap_or_else(|e| panic!("state of `{css}`: {e}"));
        if now != checked {
            box_.click()
                .await
                .unwrap_or_else(|e| panic!("click `{css}`: {e}"));
        }
    }

    /// Clicks the element matching `css` (no waiting for a new page: see
    /// [`Self::click_and_wait`]).
    pub async fn click(&self, css: &str) {
        self.find(css)
            .await
            .click()
            .await
            .unwrap_or_else(|e| panic!("click `{css}`: {e}"));
    }

    /// Clicks the element matching `css` (a submit button, a link) and waits until a
    /// new document has replaced the current one and finished loading: so what the
    /// test looks for next is on the page the click led to, never on the old one.
    pub async fn click_and_wait(&self, css: &str) {
        self.mark_document().await;
        self.click(css).await;
        self.wait_new_document(&format!("the page after clicking `{css}`"))
            .await;
    }

    /// Marks the current document, for [`Self::wait_new_document`].
    pub async fn mark_document(&self) {
        self.eval("document.documentElement.dataset.keyholdTestOld = '1'; return null;")
            .await;
    }

    /// Waits until the marked document was replaced by a loaded one.
    pub async fn wait_new_document(&self, waiting_for: &str) {
        self.poll(waiting_for, || async {
            let state = self
                .client
                .execute(
                    "return [document.readyState, document.documentElement.dataset.keyholdTestOld || null];",
                    vec![],
                )
                .await
                .ok()?;
            (state[0] == "complete" && state[1].is_null()).then_some(())
        })
        .await
    }

    /// Runs `script` (a function body) in the page through WebDriver (the console
    /// itself runs no script; WebDriver's evaluation is not subject to the page's CSP)
    /// and returns its result.
    pub async fn eval(&self, script: &str) -> Value {
        self.client
            .execute(script, vec![])
            .await
            .unwrap_or_else(|e| panic!("script {script:?}: {e}"))
    }

    /// Presses Tab `n` times (real key events) and returns the focused element (see
    /// [`Self::press`]).
    pub async fn tab(&self, n: usize) -> Value {
        self.press(&vec![char::from(Key::Tab); n]).await
    }

    /// Presses `keys` one after the other (real key events: [`Key`] for the special
    /// ones) and returns the focused element's `id`, `tag`, `href`, `text` and
    /// `in_view` (whether its box lies inside the viewport) as JSON.
    pub async fn press(&self, keys: &[char]) -> Value {
        let mut actions = KeyActions::new("keyboard".into());
        for &value in keys {
            actions = actions
                .then(KeyAction::Down { value })
                .then(KeyAction::Up { value });
        }
        self.client
            .perform_actions(actions)
            .await
            .expect("press keys");
        self.eval(
            "const e = document.activeElement; \
             return {id: e.id, tag: e.tagName.toLowerCase(), href: e.getAttribute('href'), \
                     text: (e.innerText || e.value || '').trim().slice(0, 200), \
                     in_view: (() => { const r = e.getBoundingClientRect(); \
                       return r.width > 0 && r.height > 0 && r.top >= 0 && r.left >= 0 && \
                              r.bottom <= innerHeight && r.right <= innerWidth; })()};",
        )
        .await
    }

    /// The document's width beyond the viewport: `scrollWidth - innerWidth` (positive
    /// means the page scrolls sideways) and `innerWidth`.
    pub async fn horizontal_overflow(&self) -> (i64, i64) {
        let v = self
            .eval(
                "return [document.documentElement.scrollWidth, window.innerWidth, \
                         document.body ? document.body.scrollWidth : 0];",
            )
            .await;
        let n = |i: usize| v[i].as_i64().expect("a number");
        (n(0).max(n(2)) - n(1), n(1))
    }

    /// Waits for a finished download (a file in the download directory that chromium
    /// is no longer writing) other than those in `before`; returns its path.
    pub async fn wait_download(&self, before: &[PathBuf]) -> PathBuf {
        let dir = self.download_dir();
        self.poll("a finished download", || async {
            let entries = std::fs::read_dir(&dir).ok()?;
            let mut partial = false;
            let mut done = None;
            for entry in entries.flatten() {
                let path = entry.path();
                let name = path.file_name()?.to_string_lossy().to_string();
                // `.crdownload`: in progress; hidden files (`.org.chromium.Chromium.*`):
                // chromium's temporary files before the rename.
                if name.ends_with(".crdownload") || name.starts_with('.') {
                    partial = true;
                } else if !before.contains(&path) {
                    done = Some(path);
                }
            }
            if partial { None } else { done }
        })
        .await
    }

    /// The files in the download directory now.
    pub fn downloads(&self) -> Vec<PathBuf> {
        std::fs::read_dir(self.download_dir())
            .map(|d| d.flatten().map(|e| e.path()).collect())
            .unwrap_or_default()
    }

    /// Saves a screenshot of the viewport as `<name>.png`: under `docs/screenshots/`
    /// when [`SCREENSHOTS_ENV`] is `update`, else in the screenshot directory. Returns
    /// its path.
    pub async fn screenshot(&self, name: &str) -> PathBuf {
        let png = self.client.screenshot().await.expect("screenshot");
        self.save_png(name, &png)
    }

    fn save_png(&self, name: &str, png: &[u8]) -> PathBuf {
        assert!(
            png.starts_with(b"\x89PNG\r\n\x1a\n"),
            "a screenshot is a PNG"
        );
        let dir = screenshot_dir(&self.screenshots);
        std::fs::create_dir_all(&dir).expect("screenshot directory");
        let path = dir.join(format!("{name}.png"));
        std::fs::write(&path, png).expect("write screenshot");
        path
    }

    /// Saves a screenshot of the whole page (up to [`FULL_PAGE_MAX_HEIGHT`] CSS pixels
    /// tall), not only the viewport, as `<name>.png` (see [`Self::screenshot`] for
    /// where). Chromium's DevTools `Page.captureScreenshot` through chromedriver.
    pub async fn screenshot_full(&self, name: &str) -> PathBuf {
        let metrics = self.cdp("Page.getLayoutMetrics", json!({})).await;
        let size = &metrics["cssContentSize"];
        let width = size["width"].as_f64().expect("content width");
        let height = size["height"]
            .as_f64()
            .expect("content height")
            .min(FULL_PAGE_MAX_HEIGHT);
        let shot = self
            .cdp(
                "Page.captureScreenshot",
                json!({"format": "png", "captureBeyondViewport": true,
                       "clip": {"x": 0, "y": 0, "width": width, "height": height, "scale": 1}}),
            )
            .await;
        let png = base64::engine::general_purpose::STANDARD
            .decode(shot["data"].as_str().expect("screenshot data"))
            .expect("base64 screenshot");
        self.save_png(name, &png)
    }

    /// Runs the DevTools command `cmd` with `params` (chromedriver's
    /// `goog/cdp/execute`); returns its result.
    pub async fn cdp(&self, cmd: &'static str, params: Value) -> Value {
        self.client
            .issue_cmd(Cdp { cmd, params })
            .await
            .unwrap_or_else(|e| panic!("DevTools {cmd}: {e}"))
    }

    /// Ends the WebDriver session, then stops chromedriver and chromium.
    pub async fn close(mut self) {
        let client = self.client.clone();
        let _ = tokio::time::timeout(PATIENCE, client.close()).await;
        self.stop();
    }

    fn stop(&mut self) {
        if let Some(mut driver) = self.driver.take() {
            let _ = driver.kill();
            let _ = driver.wait();
        }
        kill_leftovers(self.dir.path());
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The tallest full-page screenshot, in CSS pixels (longer pages are cut).
pub const FULL_PAGE_MAX_HEIGHT: f64 = 2400.0;

/// Where a screenshot goes: `docs/screenshots/` when updating them, else `default`.
pub fn screenshot_dir(default: &Path) -> PathBuf {
    if std::env::var(SCREENSHOTS_ENV).is_ok_and(|v| v == "update") {
        paths::workspace_root().join("docs").join("screenshots")
    } else {
        default.to_path_buf()
    }
}

//! The web console in a real browser: Debian's chromium, headless, driven over WebDriver
//! (chromedriver) against a real keyhold serving the console and the admin API over
//! HTTPS with a test CA's certificate, which the browser trusts like any root (no
//! certificate errors accepted).
//!
//! One browser per test; every wait polls with a generous deadline (no timing
//! thresholds). Screenshots go to the server's data directory, or to
//! `docs/screenshots/` with `KEYHOLD_SCREENSHOTS=update`.

#[path = "console_browser/common.rs"]
mod common;

use common::{Console, alert, status};
use keyhold_testkit::browser::{Browser, BrowserOptions, fantoccini};

/// The browser verifies the console's certificate against the test CA it was given:
/// with it the sign-in page opens; a browser without it refuses the same page.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_browser_trusts_the_test_ca_and_nothing_else() {
    let console = Console::start().await;
    let browser = console.browser().await;
    browser.goto(&console.url("/console/signin")).await;
    browser.find("#signin-form").await;
    assert!(browser.url().await.starts_with("https://localhost:"));
    browser.close().await;

    let stranger = Browser::start(BrowserOptions {
        ca_pem: None,
        ..BrowserOptions::trusting("")
    })
    .await;
    let refused = stranger
        .client()
        .goto(&console.url("/console/signin"))
        .await;
    let shown = stranger.body_text().await;
    assert!(
        refused.is_err() || !shown.contains("Sign in"),
        "a browser without the test CA must not show the console: {refused:?} {shown}"
    );
    if let Err(e) = refused {
        let e = e.to_string();
        assert!(
            e.contains("insecure certificate") || e.contains("ERR_CERT"),
            "refused for its certificate: {e}"
        );
    }
    stranger.close().await;
}

/// Signing in: a wrong password is refused with the API's code; the right one sets an
/// HttpOnly, Secure, SameSite=Strict session cookie; the skip link is the first thing
/// the keyboard reaches; signing out clears the cookie, and the old session token is
/// refused by the console and by the API.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_in_and_sign_out() {
    let console = Console::start().await;
    let browser = console.browser().await;

    // A page without a session leads to the sign-in page, which comes back to it.
    browser.goto(&console.url("/console/stores")).await;
    browser.find("#signin-form").await;
    assert!(browser.url().await.contains("next="), "{}", browser.url().await);
    browser.screenshot("signin").await;

    browser.fill("#user", "root").await;
    browser.fill("#password", "not the password").await;
    browser.click_and_wait("#signin-submit").await;
    let (code, text) = alert(&browser).await;
    assert_eq!(code, "invalid_credentials", "{text}");
    assert_eq!(
        browser.attr("#user", "value").await.as_deref(),
        Some("root"),
        "the user name is kept"
    );
    assert!(
        browser.client().get_named_cookie("keyhold_session").await.is_err(),
        "no session cookie after a refusal"
    );

    console.sign_in_root(&browser).await;
    assert!(
        browser.url().await.ends_with("/console/stores"),
        "back to the page asked for: {}",
        browser.url().await
    );
    let cookie = browser
        .client()
        .get_named_cookie("keyhold_session")
        .await
        .expect("session cookie");
    assert_eq!(cookie.http_only(), Some(true));
    assert_eq!(cookie.secure(), Some(true));
    assert_eq!(
        cookie.same_site(),
        Some(fantoccini::cookies::SameSite::Strict)
    );
    let token = cookie.value().to_string();
    let js_sees = browser.eval("return document.cookie;").await;
    assert!(
        !js_sees.as_str().unwrap_or_default().contains("keyhold_session"),
        "page scripts cannot read the session cookie"
    );

    // Keyboard: the first Tab reaches the skip link, which leads to <main>.
    let first = browser.tab(1).await;
    assert_eq!(first["href"], "#main", "first focusable: {first}");
    assert!(first["text"].as_str().unwrap_or_default().contains("Skip"));

    browser.click_and_wait("#signout-submit").await;
    assert!(status(&browser).await.contains("signed out"));
    assert!(
        browser.client().get_named_cookie("keyhold_session").await.is_err(),
        "the session cookie is gone"
    );
    // The old token is dead: the API refuses it, and a browser that still sends it
    // is sent to the sign-in page.
    let r = console.api().with_token(&token).get("/api/v1/stores").await;
    assert_eq!(r.status.as_u16(), 401, "the API refuses the signed-out token");
    let mut stale = fantoccini::cookies::Cookie::new("keyhold_session", token);
    stale.set_path("/");
    stale.set_secure(true);
    stale.set_http_only(true);
    browser.client().add_cookie(stale).await.expect("add cookie");
    browser.goto(&console.url("/console/stores")).await;
    browser.find("#signin-form").await;
    let (code, _) = alert(&browser).await;
    assert_eq!(code, "session_expired");
    browser.close().await;
}

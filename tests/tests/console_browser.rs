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

use common::{
    Console, alert, create_source_key, download, read_credentials_file, status, store_via_api,
    xks_client,
};
use keyhold_testkit::browser::{Browser, BrowserOptions, Viewport, fantoccini};

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
    assert!(
        browser.url().await.contains("next="),
        "{}",
        browser.url().await
    );
    browser.screenshot("signin").await;

    browser.fill("#user", "root").await;
    browser.fill("#password", "not the password").await;
    browser.click_and_wait("#signin-submit").await;
    let (code, text) = alert(&browser).await;
    assert_eq!(code, "unauthenticated", "{text}");
    assert_eq!(
        browser.attr("#user", "value").await.as_deref(),
        Some("root"),
        "the user name is kept"
    );
    assert!(
        browser
            .client()
            .get_named_cookie("keyhold_session")
            .await
            .is_err(),
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
        cookie.same_site().map(|s| s.to_string()).as_deref(),
        Some("Strict")
    );
    let token = cookie.value().to_string();
    let js_sees = browser.eval("return document.cookie;").await;
    assert!(
        !js_sees
            .as_str()
            .unwrap_or_default()
            .contains("keyhold_session"),
        "page scripts cannot read the session cookie"
    );

    // Keyboard: the first Tab reaches the skip link, which leads to <main>.
    let first = browser.tab(1).await;
    assert_eq!(first["href"], "#main", "first focusable: {first}");
    assert!(first["text"].as_str().unwrap_or_default().contains("Skip"));
    assert_eq!(
        first["in_view"], true,
        "the focused skip link is visible: {first}"
    );
    let target = browser
        .press(&[char::from(fantoccini::key::Key::Enter)])
        .await;
    assert_eq!(
        target["id"], "main",
        "the skip link moves focus to <main>: {target}"
    );

    browser.click_and_wait("#signout-submit").await;
    assert!(status(&browser).await.contains("signed out"));
    assert!(
        browser
            .client()
            .get_named_cookie("keyhold_session")
            .await
            .is_err(),
        "the session cookie is gone"
    );
    // The old token is dead: the API refuses it, and a browser that still sends it
    // is sent to the sign-in page.
    let r = console.api().with_token(&token).get("/api/v1/stores").await;
    assert_eq!(
        r.status.as_u16(),
        401,
        "the API refuses the signed-out token"
    );
    let mut stale = fantoccini::cookies::Cookie::new("keyhold_session", token);
    stale.set_domain("localhost");
    stale.set_path("/");
    stale.set_secure(true);
    stale.set_http_only(true);
    browser
        .client()
        .add_cookie(stale)
        .await
        .expect("add cookie");
    browser.goto(&console.url("/console/stores")).await;
    browser.find("#signin-form").await;
    let (code, _) = alert(&browser).await;
    assert_eq!(code, "session_expired");
    browser.close().await;
}

/// An admin runs a key store from the browser: source keys (a health-check key, a data
/// key, and one that breaks the health-check rules), a store refused for that key and
/// for an invalid name, then created, its credentials file downloaded once and used for
/// real SigV4-signed XKS calls; a HYOK key created; a credential rotated (the new file
/// works, the deleted one is refused); the store blocked and unblocked; the key deleted
/// after a typed confirmation. Screenshots of the main pages are saved on the way.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_runs_a_key_store_from_the_browser() {
    let console = Console::start().await;
    let browser = console.browser().await;
    console.sign_in_root(&browser).await;

    // Key sources and their keys, with the health-check rules.
    browser.goto(&console.url("/console/sources")).await;
    browser.find("#sources tr[data-name=\"ctm\"]").await;
    let all = ["encrypt", "decrypt", "wrap", "unwrap"];
    create_source_key(&console, &browser, "ctm", "hc-1", &all, false, false).await;
    create_source_key(&console, &browser, "ctm", "data-1", &all[..2], false, false).await;
    create_source_key(&console, &browser, "ctm", "hc-bad", &all, false, true).await;
    let check = |name: &str| {
        format!("#source-keys tr[data-name=\"{name}\"] td[data-check=\"health-check\"]")
    };
    let good = browser.text(&check("hc-1")).await;
    assert!(
        good.contains("valid") && !good.contains("not valid"),
        "hc-1 follows the rules: {good}"
    );
    let data = browser.text(&check("data-1")).await;
    assert!(
        data.contains("not valid") && data.contains("WRAP") && data.contains("UNWRAP"),
        "the missing usages are named: {data}"
    );
    let bad = browser.text(&check("hc-bad")).await;
    assert!(
        bad.contains("not valid") && bad.contains("deletable"),
        "the failing attribute is named: {bad}"
    );
    browser.find("#health-check-rules").await;
    browser.screenshot_full("key-sources").await;

    // Create a store: the rules are shown; a rule broken is refused with the API's code
    // and message, the form keeping what was typed.
    browser.goto(&console.url("/console/stores")).await;
    browser.click_and_wait("#new-store").await;
    browser.find(".rules").await;
    browser.fill("#name", "payments").await;
    browser.select("#source", "ctm").await;
    browser.fill("#health_check_key", "hc-bad").await;
    browser.screenshot_full("create-store").await;
    browser.click_and_wait("#create-store-submit").await;
    let (code, text) = alert(&browser).await;
    assert_eq!(code, "invalid_key", "{text}");
    assert!(text.contains("deletable"), "names the attribute: {text}");
    assert_eq!(
        browser.attr("#name", "value").await.as_deref(),
        Some("payments")
    );
    browser.screenshot_full("create-store-refused").await;
    // An invalid name: the browser shows the code the API gives for it.
    let api_code = console
        .root_api()
        .await
        .create_store(
            &serde_json::json!({"name": "pay/ments", "source": "ctm", "health_check_key": "hc-1"}),
        )
        .await
        .json()["error"]["code"]
        .as_str()
        .expect("error code")
        .to_string();
    browser.fill("#name", "pay/ments").await;
    browser.fill("#health_check_key", "hc-1").await;
    browser.click_and_wait("#create-store-submit").await;
    let (code, text) = alert(&browser).await;
    assert_eq!(code, api_code, "{text}");

    // Now right: the store page offers the credentials file, once.
    browser.fill("#name", "payments").await;
    browser.click_and_wait("#create-store-submit").await;
    browser.find("#credentials-download-step").await;
    let link = browser
        .attr("#credentials-download", "href")
        .await
        .expect("download link");
    let page = browser.body_text().await;
    let file = download(&browser, "#credentials-download").await;
    let (cred, uri_path) = read_credentials_file(&file);
    assert!(
        !page.contains(&cred.secret),
        "the secret is never rendered into the page"
    );
    assert!(
        file.to_string_lossy()
            .ends_with("payments-credentials.json"),
        "{file:?}"
    );
    // Served once: asking again shows a refusal, and nothing more is downloaded.
    let before = browser.downloads();
    browser.goto(&console.url(&link)).await;
    let (code, _) = alert(&browser).await;
    assert_eq!(code, "download_gone");
    assert_eq!(browser.downloads(), before);
    browser.client().back().await.expect("back");

    // A HYOK key, then a real signed XKS call with the downloaded credential.
    let store_url = browser.url().await;
    let store_url = store_url.split('?').next().expect("url").to_string();
    browser.goto(&store_url).await;
    browser.fill("#external_id", "browser-key-1").await;
    browser.fill("#source_key", "data-1").await;
    browser.click_and_wait("#create-key-submit").await;
    browser.find("#keys tr[data-name=\"browser-key-1\"]").await;
    let xks = xks_client(&console, cred.clone(), &uri_path);
    let sealed = xks
        .encrypt_ok("browser-key-1", b"hello from the browser", None)
        .await;
    assert_eq!(
        xks.decrypt_ok("browser-key-1", &sealed, None).await,
        b"hello from the browser"
    );
    // Traffic for the store's charts: a few seconds of calls, some of them refused.
    for round in 0..5 {
        for _ in 0..=round {
            xks.encrypt_ok("browser-key-1", b"traffic", None).await;
        }
        xks.decrypt("browser-key-1", &sealed, Some(b"another context"))
            .await
            .assert_error(400, "InvalidCiphertextException");
        xks.encrypt("no-such-key", b"x", None, false)
            .await
            .assert_error(404, "KeyNotFoundException");
        tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    }
    browser
        .poll("the store's charts", || async {
            browser.goto(&store_url).await;
            browser.exists("#store-charts svg").await.then_some(())
        })
        .await;
    let charts = browser
        .eval("return document.getElementById('store-charts').textContent;")
        .await;
    let charts = charts.as_str().unwrap_or_default();
    for error in ["InvalidCiphertextException", "KeyNotFoundException"] {
        assert!(charts.contains(error), "errors by XKS error name: {charts}");
    }
    browser.screenshot_full("store").await;

    // Rotate: add a credential (its file downloaded once), delete the first one.
    browser.click_and_wait("#add-credential-submit").await;
    let file = download(&browser, "#credentials-download").await;
    let (rotated, rotated_path) = read_credentials_file(&file);
    assert_eq!(rotated_path, uri_path);
    assert_ne!(rotated.access_key_id, cred.access_key_id);
    browser.goto(&store_url).await;
    assert_eq!(browser.find_all("#credentials tbody tr").await.len(), 2);
    browser
        .click_and_wait(&format!("#delete-credential-{}-submit", cred.access_key_id))
        .await;
    browser
        .wait_gone(&format!(
            "#credentials tr[data-name=\"{}\"]",
            cred.access_key_id
        ))
        .await;
    browser
        .find(&format!(
            "#credentials tr[data-name=\"{}\"]",
            rotated.access_key_id
        ))
        .await;
    xks.assert_unauthenticated().await;
    let xks = xks.with_cred(rotated);
    xks.encrypt_ok("browser-key-1", b"after rotation", None)
        .await;

    // Block and unblock the store.
    browser.click_and_wait("#block-store-submit").await;
    browser.find("#unblock-store-submit").await;
    xks.encrypt("browser-key-1", b"x", None, false)
        .await
        .assert_error(400, "InvalidStateException");
    browser.click_and_wait("#unblock-store-submit").await;
    browser.find("#block-store-submit").await;
    xks.encrypt_ok("browser-key-1", b"unblocked", None).await;

    // Delete the HYOK key: a wrong confirmation deletes nothing.
    browser.click_and_wait("#delete-key-browser-key-1").await;
    browser.fill("#confirm_name", "browser-key-2").await;
    browser.click_and_wait("#delete-key-submit").await;
    let (code, _) = alert(&browser).await;
    assert_eq!(code, "confirmation_mismatch");
    xks.encrypt_ok("browser-key-1", b"still there", None).await;
    browser.fill("#confirm_name", "browser-key-1").await;
    browser.click_and_wait("#delete-key-submit").await;
    browser.find("#keys-title").await;
    assert!(
        !browser
            .exists("#keys tr[data-name=\"browser-key-1\"]")
            .await
    );
    xks.encrypt("browser-key-1", b"x", None, false)
        .await
        .assert_error(404, "KeyNotFoundException");

    // The list and the audit log show what happened.
    browser.goto(&console.url("/console/stores")).await;
    let row = browser.text("#stores tr[data-name=\"payments\"]").await;
    assert!(row.contains("serving"), "{row}");
    browser.screenshot("stores").await;
    browser.goto(&console.url("/console/audit")).await;
    let chain = status(&browser).await;
    assert!(chain.contains("verified"), "chain status: {chain}");
    browser.find("#audit-records").await;
    let audit = browser.text("#audit-records").await;
    for action in [
        "create_store",
        "block_store",
        "unblock_store",
        "delete_hyok_key",
    ] {
        assert!(
            audit.contains(action),
            "the audit log shows {action}: {audit}"
        );
    }
    // Filtered by user and outcome: the refused creations are there, the rest is not.
    browser.fill("#user", "root").await;
    browser.select("#outcome", "failure").await;
    browser.click_and_wait("#audit-filter-submit").await;
    let failures = browser.text("#audit-records").await;
    assert!(failures.contains("create_store"), "{failures}");
    assert!(!failures.contains("block_store"), "{failures}");
    browser.goto(&console.url("/console/audit")).await;
    browser.find("#audit-records").await;
    browser.screenshot_full("audit-log").await;
    browser.close().await;
}

/// Two tabs edit the same store: the second save is refused as a version conflict
/// (412, the API's code in the banner), the form then shows the current values, and
/// saving again from there succeeds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_tabs_editing_one_store_see_a_version_conflict() {
    let console = Console::start().await;
    let id = store_via_api(&console, "shared", None).await;
    let browser = console.browser().await;
    console.sign_in_root(&browser).await;
    let page = console.url(&format!("/console/stores/{id}"));
    browser.goto(&page).await;
    browser.find("#edit-store-form").await;
    let first = browser.client().window().await.expect("window");
    let second = browser
        .client()
        .new_window(true)
        .await
        .expect("new tab")
        .handle;
    browser
        .client()
        .switch_to_window(second.clone())
        .await
        .expect("switch");
    browser.goto(&page).await;
    browser.fill("#edit-store-form #max_credentials", "5").await;
    browser.click_and_wait("#edit-store-submit").await;
    assert!(status(&browser).await.to_lowercase().contains("saved"));
    assert_eq!(
        browser
            .attr("#edit-store-form #max_credentials", "value")
            .await
            .as_deref(),
        Some("5")
    );

    // The first tab still holds the old version.
    browser
        .client()
        .switch_to_window(first)
        .await
        .expect("switch back");
    browser.fill("#edit-store-form #max_credentials", "7").await;
    browser.click_and_wait("#edit-store-submit").await;
    let (code, text) = alert(&browser).await;
    assert_eq!(code, "version_mismatch", "{text}");
    let conflict = browser.text("#edit-conflict").await;
    assert!(conflict.contains("max_credentials"), "{conflict}");
    assert_eq!(
        browser
            .attr("#edit-store-form #max_credentials", "value")
            .await
            .as_deref(),
        Some("5"),
        "the form shows the current value"
    );
    browser.screenshot_full("store-conflict").await;
    let stored = console
        .root_api()
        .await
        .get(&format!("/api/v1/stores/{id}"))
        .await;
    assert_eq!(
        stored.json()["max_credentials"],
        5,
        "the stale save changed nothing"
    );
    // From the refreshed form, the change goes through.
    browser.fill("#edit-store-form #max_credentials", "7").await;
    browser.click_and_wait("#edit-store-submit").await;
    assert!(status(&browser).await.to_lowercase().contains("saved"));
    let stored = console
        .root_api()
        .await
        .get(&format!("/api/v1/stores/{id}"))
        .await;
    assert_eq!(stored.json()["max_credentials"], 7);
    browser.close().await;
}

/// A user who is not an admin sees only the stores its ACLs grant: the list holds the
/// granted store only, the other store's page is refused with the API's code, and
/// admin-only pages say so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_who_is_not_an_admin_sees_only_what_its_acl_grants() {
    let console = Console::start().await;
    let root = console.root_api().await;
    let r = root
        .post(
            "/api/v1/accounts",
            &serde_json::json!({"id": "111122223333", "name": "granted",
                "acl": [{"principal": "user:bob", "permissions": ["view"]}]}),
        )
        .await;
    assert_eq!(
        r.status.as_u16(),
        201,
        "{}",
        String::from_utf8_lossy(&r.body)
    );
    let r = root.create_user("bob", "bob's long password", None).await;
    assert_eq!(
        r.status.as_u16(),
        201,
        "{}",
        String::from_utf8_lossy(&r.body)
    );
    let granted = store_via_api(&console, "bobs-store", Some("111122223333")).await;
    let hidden = store_via_api(&console, "roots-store", None).await;

    let browser = console.browser().await;
    console
        .sign_in(&browser, "bob", "bob's long password")
        .await;
    browser.goto(&console.url("/console/stores")).await;
    browser.find("#stores tr[data-name=\"bobs-store\"]").await;
    assert!(
        !browser
            .exists("#stores tr[data-name=\"roots-store\"]")
            .await
    );
    assert!(!browser.body_text().await.contains("roots-store"));
    browser
        .goto(&console.url(&format!("/console/stores/{granted}")))
        .await;
    browser.find("#health-check-uri").await;
    browser
        .goto(&console.url(&format!("/console/stores/{hidden}")))
        .await;
    let (code, _) = alert(&browser).await;
    assert!(
        code == "forbidden" || code == "not_found",
        "the hidden store is refused: {code}"
    );
    assert!(!browser.body_text().await.contains("roots-store"));
    // Admin-only: the audit log is refused, the users page says so in place.
    browser.goto(&console.url("/console/audit")).await;
    let (code, _) = alert(&browser).await;
    assert_eq!(code, "admin_only");
    browser.goto(&console.url("/console/users")).await;
    browser.find("[role=alert][data-code=\"admin_only\"]").await;
    browser.close().await;
}

/// At phone width (390 px, mobile emulation) no main page scrolls sideways, and every
/// one is laid out for the device width (the viewport meta tag).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_main_pages_fit_a_phone() {
    let console = Console::start().await;
    let id = store_via_api(&console, "phone", None).await;
    let browser = console.browser_at(Viewport::Phone).await;
    browser.goto(&console.url("/console/signin")).await;
    browser.find("#signin-form").await;
    assert_fits(&browser, "/console/signin").await;
    console.sign_in_root(&browser).await;
    for path in [
        "/console/stores".to_string(),
        "/console/stores/new".to_string(),
        format!("/console/stores/{id}"),
        "/console/sources".to_string(),
        "/console/sources/ctm".to_string(),
        "/console/accounts".to_string(),
        "/console/users".to_string(),
        "/console/tokens".to_string(),
        "/console/connections".to_string(),
        "/console/audit".to_string(),
        "/console/operations".to_string(),
    ] {
        browser.goto(&console.url(&path)).await;
        browser.find("main#main h1").await;
        assert_fits(&browser, &path).await;
    }
    browser.goto(&console.url("/console/stores")).await;
    browser.find("#stores").await;
    browser.screenshot("phone-stores").await;
    browser
        .goto(&console.url(&format!("/console/stores/{id}")))
        .await;
    browser.find("#edit-store-form").await;
    browser.screenshot("phone-store").await;
    browser.close().await;
}

/// Asserts that the page is laid out at the phone's width and does not scroll
/// sideways.
async fn assert_fits(browser: &Browser, path: &str) {
    let (overflow, width) = browser.horizontal_overflow().await;
    assert_eq!(width, 390, "{path}: laid out for the device width");
    assert!(
        overflow <= 0,
        "{path}: the page is {overflow} px wider than the screen"
    );
}

//! The web console against a real keyhold over TLS, driven as a browser without
//! scripts would: the session cookie's attributes, redirects to the sign-in page, the
//! CSRF and same-origin refusals, security headers, a new store's credentials file
//! served once (and never in a page), version conflicts, and ACLs.

use keyhold_tests::{
    TestServer,
    admin::{AdminClient, expect_status, health_check_key},
    console::{ConsoleClient, header, input_value, text},
};
use serde_json::json;

/// A TLS admin listener with the ctm source and its health-check key `hc`; the root
/// API client; a console client signed in as root.
async fn setup() -> (TestServer, AdminClient, ConsoleClient) {
    let server = TestServer::start_admin_https().await;
    let console = ConsoleClient::new(&server);
    let api = AdminClient::new(console.transport.clone());
    let root = api.login("root", &server.root_password()).await;
    let r = root.create_source_key("ctm", &health_check_key("hc")).await;
    expect_status(&r, 201);
    let mut signed_in = console.clone();
    let r = signed_in.sign_in("root", &server.root_password()).await;
    assert_eq!(r.status.as_u16(), 303, "{}", text(&r));
    (server, root, signed_in)
}

#[track_caller]
fn assert_refused(r: &keyhold_tests::Reply, status: u16, code: &str) {
    let body = text(r);
    assert_eq!(r.status.as_u16(), status, "{body}");
    assert!(
        body.contains(&format!("data-code=\"{code}\"")),
        "expected {code}: {body}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn signing_in_sets_a_strict_cookie_and_pages_need_it() {
    let server = TestServer::start_admin_https().await;
    let mut c = ConsoleClient::new(&server);
    // The listener's root and the console's root lead to the console.
    let r = c.get("/").await;
    assert_eq!(r.status.as_u16(), 303);
    assert_eq!(header(&r, "location"), Some("/console/"));
    // Without a session: the sign-in page, coming back afterwards.
    let r = c.get("/console/stores?x=1").await;
    assert_eq!(r.status.as_u16(), 303);
    assert_eq!(
        header(&r, "location"),
        Some("/console/signin?next=%2Fconsole%2Fstores%3Fx%3D1")
    );
    let page = c.follow(&r).await;
    assert_eq!(page.status.as_u16(), 200);
    assert_eq!(
        input_value(&text(&page), "next").as_deref(),
        Some("/console/stores?x=1")
    );
    // A wrong password: the API's refusal, no cookie.
    let r = c.sign_in("root", "wrong password").await;
    assert_refused(&r, 401, "unauthenticated");
    assert!(header(&r, "set-cookie").is_none());
    // The right one: the cookie with every attribute, then the page asked for.
    let r = c.sign_in("root", &server.root_password()).await;
    assert_eq!(r.status.as_u16(), 303, "{}", text(&r));
    assert_eq!(header(&r, "location"), Some("/console/stores"));
    let cookie = header(&r, "set-cookie").expect("Set-Cookie");
    for attr in ["HttpOnly", "Secure", "SameSite=Strict", "Path=/"] {
        assert!(cookie.split("; ").any(|a| a == attr), "{attr} in {cookie}");
    }
    let max_age: i64 = cookie
        .split("; ")
        .find_map(|a| a.strip_prefix("Max-Age="))
        .expect("Max-Age")
        .parse()
        .expect("seconds");
    assert!(max_age > 0 && max_age <= 8 * 3600, "{cookie}");
    assert!(c.cookie.as_deref().is_some_and(|t| t.starts_with("kh_")));
    let r = c.get("/console/stores").await;
    assert_eq!(r.status.as_u16(), 200, "{}", text(&r));
    let html = text(&r);
    assert!(html.contains("Signed in as"), "{html}");
    assert!(html.contains("<table") || html.contains("No key stores"));
    // Signing out revokes the session: the old cookie leads to the sign-in page.
    let old = c.clone();
    let csrf = c.csrf("/console/stores").await;
    let r = c
        .post_raw("/console/signout", &[("csrf", &csrf)], &[])
        .await;
    assert_eq!(r.status.as_u16(), 303);
    assert!(header(&r, "set-cookie").is_some_and(|v| v.contains("Max-Age=0")));
    let r = old.get("/console/stores").await;
    assert_eq!(r.status.as_u16(), 303);
    assert!(
        header(&r, "location").is_some_and(|l| l.contains("expired=1")),
        "{:?}",
        r.headers
    );
    let page = old.follow(&r).await;
    assert!(text(&page).contains("data-code=\"session_expired\""));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn next_only_leads_to_console_pages() {
    let server = TestServer::start_admin_https().await;
    let c = ConsoleClient::new(&server);
    let pw = server.root_password();
    for (next, to) in [
        ("/console/stores/abc", "/console/stores/abc"),
        ("//evil.example/console/", "/console/"),
        ("https://evil.example/", "/console/"),
        ("/api/v1/stores", "/console/"),
        ("/console/\\evil", "/console/"),
    ] {
        let r = c
            .post_raw(
                "/console/signin",
                &[("user", "root"), ("password", &pw), ("next", next)],
                &[],
            )
            .await;
        assert_eq!(header(&r, "location"), Some(to), "next={next}");
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn pages_carry_security_headers_and_the_stylesheet_is_cached() {
    let (server, _root, c) = setup().await;
    let r = c.get("/console/stores").await;
    let csp = header(&r, "content-security-policy").expect("CSP");
    assert!(csp.contains("script-src 'none'"), "{csp}");
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    assert_eq!(header(&r, "x-content-type-options"), Some("nosniff"));
    assert_eq!(header(&r, "referrer-policy"), Some("same-origin"));
    assert_eq!(header(&r, "cache-control"), Some("no-store"));
    assert!(!text(&r).contains("<script"));
    // The stylesheet: linked with its version, cached for long, revalidated by ETag.
    let html = text(&r);
    let at = html
        .find("/console/assets/console.css?v=")
        .expect("css link");
    let href = &html[at..at + html[at..].find('"').expect("end")];
    let css = c.get(href).await;
    assert_eq!(css.status.as_u16(), 200);
    assert!(header(&css, "content-type").is_some_and(|t| t.starts_with("text/css")));
    assert!(header(&css, "cache-control").is_some_and(|v| v.contains("max-age=31536000")));
    let etag = header(&css, "etag").expect("ETag").to_string();
    let again = c
        .send(keyhold_tests::RawRequest::new("GET", href, "").with_header("if-none-match", &etag))
        .await;
    assert_eq!(again.status.as_u16(), 304);
    // An unknown console page is the console's own 404.
    let r = c.get("/console/no-such-page").await;
    assert_eq!(r.status.as_u16(), 404);
    assert!(text(&r).contains("Not found"));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn state_changes_need_the_csrf_token_and_this_origin() {
    let (server, root, c) = setup().await;
    let form = [
        ("name", "s1"),
        ("source", "ctm"),
        ("health_check_key", "hc"),
    ];
    // No token, a wrong one, another session's: refused, nothing created.
    let r = c.post_raw("/console/stores", &form, &[]).await;
    assert_refused(&r, 403, "csrf_failed");
    let mut with_wrong = vec![("csrf", "AAAA")];
    with_wrong.extend_from_slice(&form);
    let r = c.post_raw("/console/stores", &with_wrong, &[]).await;
    assert_refused(&r, 403, "csrf_failed");
    let mut other = ConsoleClient::new(&server);
    other.sign_in("root", &server.root_password()).await;
    let other_csrf = other.csrf("/console/stores").await;
    let mut with_other = vec![("csrf", other_csrf.as_str())];
    with_other.extend_from_slice(&form);
    let r = c.post_raw("/console/stores", &with_other, &[]).await;
    assert_refused(&r, 403, "csrf_failed");
    // The right token from another site: refused too.
    let csrf = c.csrf("/console/stores").await;
    let mut good = vec![("csrf", csrf.as_str())];
    good.extend_from_slice(&form);
    for extra in [
        [("origin", "https://evil.example")],
        [("origin", "null")],
        [("sec-fetch-site", "cross-site")],
    ] {
        let r = c.post_raw("/console/stores", &good, &extra).await;
        assert_refused(&r, 403, "csrf_failed");
    }
    // Signing in from another site is refused as well.
    let anon = ConsoleClient::new(&server);
    let r = anon
        .post_raw(
            "/console/signin",
            &[("user", "root"), ("password", &server.root_password())],
            &[("origin", "https://evil.example")],
        )
        .await;
    assert_refused(&r, 403, "csrf_failed");
    let listed = expect_status(&root.get("/api/v1/stores").await, 200);
    assert_eq!(listed, json!([]));
    // Same origin with the token: created.
    let r = c
        .post_raw(
            "/console/stores",
            &good,
            &[("sec-fetch-site", "same-origin")],
        )
        .await;
    assert_eq!(r.status.as_u16(), 303, "{}", text(&r));
    let listed = expect_status(&root.get("/api/v1/stores").await, 200);
    assert_eq!(listed.as_array().map(Vec::len), Some(1));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_new_stores_credentials_file_is_served_once_and_never_in_a_page() {
    let (server, root, c) = setup().await;
    let r = c
        .post(
            "/console/stores/new",
            "/console/stores",
            &[
                ("name", "s1"),
                ("source", "ctm"),
                ("health_check_key", "hc"),
                ("max_credentials", "3"),
            ],
        )
        .await;
    assert_eq!(r.status.as_u16(), 303, "{}", text(&r));
    let page = c.follow(&r).await;
    assert_eq!(page.status.as_u16(), 200, "{}", text(&page));
    let html = text(&page);
    let at = html.find("/console/downloads/").expect("download link");
    let url = &html[at..at + html[at..].find('"').expect("end")];
    // Another session cannot take it.
    let mut other = ConsoleClient::new(&server);
    other.sign_in("root", &server.root_password()).await;
    assert_eq!(other.get(url).await.status.as_u16(), 404);
    let file = c.get(url).await;
    assert_eq!(file.status.as_u16(), 200);
    assert!(
        header(&file, "content-disposition")
            .is_some_and(|d| d.starts_with("attachment") && d.contains("s1-credentials.json")),
        "{:?}",
        file.headers
    );
    let json = file.json();
    let secret = json["XksProxyAuthenticationCredential"]["RawSecretAccessKey"]
        .as_str()
        .expect("secret")
        .to_string();
    let akid = json["XksProxyAuthenticationCredential"]["AccessKeyId"]
        .as_str()
        .expect("akid")
        .to_string();
    let id = created_store_id_from(&root, "s1").await;
    assert_eq!(
        json["XksProxyUriPath"],
        expect_status(&root.get(&format!("/api/v1/stores/{id}")).await, 200)["xks_uri_path"]
    );
    // Served once.
    let again = c.get(url).await;
    assert_eq!(again.status.as_u16(), 404);
    // The secret is in no page; the access key id is.
    for path in [
        "/console/stores".to_string(),
        format!("/console/stores/{id}"),
    ] {
        let html = text(&c.get(&path).await);
        assert!(!html.contains(&secret), "{path} shows the secret");
        assert!(html.contains(&akid) || path == "/console/stores", "{path}");
    }
    server.stop().await;
}

async fn created_store_id_from(root: &AdminClient, name: &str) -> String {
    let listed = expect_status(&root.get("/api/v1/stores").await, 200);
    listed
        .as_array()
        .expect("stores")
        .iter()
        .find(|s| s["name"] == name)
        .and_then(|s| s["id"].as_str())
        .expect("store")
        .to_string()
}

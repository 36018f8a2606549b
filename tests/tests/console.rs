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

/// Creates store `name` on ctm (health-check key `hc`) through the API; its id.
async fn api_store(root: &AdminClient, name: &str, account: Option<&str>) -> String {
    let mut body = json!({"name": name, "source": "ctm", "health_check_key": "hc"});
    if let Some(a) = account {
        body["account"] = json!(a);
    }
    let r = root.create_store(&body).await;
    expect_status(&r, 201)["store"]["id"]
        .as_str()
        .expect("id")
        .to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn an_edit_from_a_stale_page_shows_the_conflict_with_current_values() {
    let (server, root, c) = setup().await;
    let id = api_store(&root, "s1", None).await;
    let page = format!("/console/stores/{id}");
    let html = text(&c.get(&page).await);
    let stale = input_value(&html, "etag").expect("etag");
    let csrf = input_value(&html, "csrf").expect("csrf");
    let edit = format!("{page}/edit");
    // The first tab saves a new name.
    let r = c
        .post_raw(
            &edit,
            &[
                ("csrf", &csrf),
                ("etag", &stale),
                ("name", "s1-renamed"),
                ("health_check_key", "hc"),
                ("max_credentials", "20"),
            ],
            &[],
        )
        .await;
    assert_eq!(r.status.as_u16(), 303, "{}", text(&r));
    assert!(text(&c.follow(&r).await).contains("Changes saved."));
    // The second tab, read before that change, is refused and sees the current values.
    let r = c
        .post_raw(
            &edit,
            &[
                ("csrf", &csrf),
                ("etag", &stale),
                ("name", "s1"),
                ("health_check_key", "hc"),
                ("max_credentials", "5"),
            ],
            &[],
        )
        .await;
    assert_refused(&r, 412, "version_mismatch");
    let html = text(&r);
    assert!(html.contains("id=\"edit-conflict\""), "{html}");
    assert_eq!(input_value(&html, "name").as_deref(), Some("s1-renamed"));
    assert_ne!(input_value(&html, "etag").as_deref(), Some(stale.as_str()));
    assert!(html.contains("<code>max_credentials</code>: 5"), "{html}");
    let store = expect_status(&root.get(&format!("/api/v1/stores/{id}")).await, 200);
    assert_eq!(store["name"], "s1-renamed");
    assert_eq!(store["max_credentials"], 20);
    // A value the API refuses comes back in the form with the API's message.
    let fresh = input_value(&text(&c.get(&page).await), "etag").expect("etag");
    let r = c
        .post_raw(
            &edit,
            &[
                ("csrf", &csrf),
                ("etag", &fresh),
                ("name", "s1-renamed"),
                ("health_check_key", "hc"),
                ("max_credentials", "50"),
            ],
            &[],
        )
        .await;
    assert!(r.status.is_client_error(), "{}", text(&r));
    assert!(
        text(&r).contains("id=\"max_credentials-error\""),
        "{}",
        text(&r)
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_user_sees_and_changes_only_what_its_acl_grants() {
    let (server, root, _c) = setup().await;
    let r = root
        .post(
            "/api/v1/accounts",
            &json!({"id": "111122223333", "name": "acc",
            "acl": [{"principal": "user:bob", "permissions": ["view"]}]}),
        )
        .await;
    expect_status(&r, 201);
    expect_status(
        &root
            .create_user("bob", "correct horse", Some(&json!(["users"])))
            .await,
        201,
    );
    let bobs = api_store(&root, "bobs", Some("111122223333")).await;
    let roots = api_store(&root, "roots", None).await;
    let mut bob = ConsoleClient::new(&server);
    let r = bob.sign_in("bob", "correct horse").await;
    assert_eq!(r.status.as_u16(), 303);
    let html = text(&bob.get("/console/stores").await);
    assert!(html.contains("Signed in as <strong>bob</strong>"), "{html}");
    assert!(html.contains("data-name=\"bobs\""), "{html}");
    assert!(!html.contains("roots"), "{html}");
    assert_refused(
        &bob.get(&format!("/console/stores/{roots}")).await,
        403,
        "forbidden",
    );
    // View only: blocking is refused with the API's code, and nothing changes.
    let page = format!("/console/stores/{bobs}");
    let r = bob.post(&page, &format!("{page}/block"), &[]).await;
    assert_refused(&r, 403, "forbidden");
    let store = expect_status(&root.get(&format!("/api/v1/stores/{bobs}")).await, 200);
    assert_eq!(store["blocked"], false);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn refusals_name_the_failing_attribute_on_the_field() {
    let (server, root, c) = setup().await;
    let weak = json!({"name": "weak", "usage": ["encrypt", "decrypt"], "exportable": true});
    expect_status(&root.create_source_key("ctm", &weak).await, 201);
    expect_status(
        &root
            .create_source_key(
                "ctm",
                &json!({"name": "data",
        "usage": ["encrypt", "decrypt"]}),
            )
            .await,
        201,
    );
    // A health-check key without wrap/unwrap: the create form comes back with the
    // rules, the API's refusal and the field marked.
    let r = c
        .post(
            "/console/stores/new",
            "/console/stores",
            &[
                ("name", "s1"),
                ("source", "ctm"),
                ("health_check_key", "data"),
            ],
        )
        .await;
    assert_refused(&r, 422, "invalid_key");
    let html = text(&r);
    assert!(html.contains("id=\"health_check_key-error\""), "{html}");
    assert!(html.contains("WRAP"), "{html}");
    assert!(html.contains("Before you create a key store"), "{html}");
    assert_eq!(input_value(&html, "name").as_deref(), Some("s1"));
    // A HYOK key on an exportable source key: refused, naming it; then allowed.
    let id = api_store(&root, "s1", None).await;
    let page = format!("/console/stores/{id}");
    let r = c
        .post(
            &page,
            &format!("{page}/keys"),
            &[("external_id", "k1"), ("source_key", "weak")],
        )
        .await;
    assert_refused(&r, 422, "invalid_key");
    let html = text(&r);
    assert!(html.contains("id=\"source_key-error\""), "{html}");
    assert!(
        html.to_lowercase().contains("extractable") || html.to_lowercase().contains("exportable"),
        "{html}"
    );
    let r = c
        .post(
            &page,
            &format!("{page}/keys"),
            &[("external_id", "k1"), ("source_key", "data")],
        )
        .await;
    assert_eq!(r.status.as_u16(), 303, "{}", text(&r));
    let html = text(&c.follow(&r).await);
    assert!(html.contains("HYOK key created."));
    assert!(html.contains("<tr data-name=\"k1\">"), "{html}");
    // Block and unblock the key.
    let r = c.post(&page, &format!("{page}/keys/k1/block"), &[]).await;
    assert_eq!(r.status.as_u16(), 303, "{}", text(&r));
    let key = expect_status(
        &root.get(&format!("/api/v1/stores/{id}/keys/k1")).await,
        200,
    );
    assert_eq!(key["blocked"], true);
    let r = c.post(&page, &format!("{page}/keys/k1/unblock"), &[]).await;
    assert_eq!(r.status.as_u16(), 303);
    // Deleting the store is refused while it has keys (the API's code), and needs its
    // name typed.
    let r = c
        .post(&page, &format!("{page}/delete"), &[("confirm_name", "s2")])
        .await;
    assert_refused(&r, 409, "confirmation_mismatch");
    let r = c
        .post(&page, &format!("{page}/delete"), &[("confirm_name", "s1")])
        .await;
    assert!(r.status.is_client_error(), "{}", text(&r));
    assert!(text(&r).contains("role=\"alert\""), "{}", text(&r));
    // Deleting the key needs its id typed.
    let confirm = format!("{page}/keys/k1/delete");
    let r = c.post(&confirm, &confirm, &[("confirm_name", "k2")]).await;
    assert_refused(&r, 409, "confirmation_mismatch");
    let r = c.post(&confirm, &confirm, &[("confirm_name", "k1")]).await;
    assert_eq!(r.status.as_u16(), 303, "{}", text(&r));
    let keys = expect_status(&root.get(&format!("/api/v1/stores/{id}/keys")).await, 200);
    assert_eq!(keys, json!([]));
    let r = c
        .post(&page, &format!("{page}/delete"), &[("confirm_name", "s1")])
        .await;
    assert_eq!(
        header(&r, "location"),
        Some("/console/stores?done=deleted"),
        "{}",
        text(&r)
    );
    assert_eq!(
        expect_status(&root.get("/api/v1/stores").await, 200),
        json!([])
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn block_unblock_and_rotate_a_store_from_its_page() {
    let (server, root, c) = setup().await;
    let id = api_store(&root, "s1", None).await;
    let page = format!("/console/stores/{id}");
    let r = c.post(&page, &format!("{page}/block"), &[]).await;
    assert_eq!(r.status.as_u16(), 303, "{}", text(&r));
    let html = text(&c.follow(&r).await);
    assert!(html.contains("Key store blocked"), "{html}");
    assert!(html.contains("id=\"unblock-store-submit\""), "{html}");
    let store = expect_status(&root.get(&format!("/api/v1/stores/{id}")).await, 200);
    assert_eq!(store["blocked"], true);
    // A blocked store refuses new credentials: the API's refusal on the page.
    let r = c.post(&page, &format!("{page}/credentials"), &[]).await;
    assert!(r.status.is_client_error(), "{}", text(&r));
    assert!(text(&r).contains("role=\"alert\""));
    let r = c.post(&page, &format!("{page}/unblock"), &[]).await;
    assert_eq!(r.status.as_u16(), 303);
    // Rotation: a new credential, its file offered once; the old one deleted.
    let before = expect_status(
        &root.get(&format!("/api/v1/stores/{id}/credentials")).await,
        200,
    );
    let old = before[0]["access_key_id"]
        .as_str()
        .expect("akid")
        .to_string();
    let r = c.post(&page, &format!("{page}/credentials"), &[]).await;
    assert_eq!(r.status.as_u16(), 303, "{}", text(&r));
    let html = text(&c.follow(&r).await);
    let at = html.find("/console/downloads/").expect("download link");
    let url = &html[at..at + html[at..].find('"').expect("end")];
    let file = c.get(url).await;
    assert_eq!(file.status.as_u16(), 200);
    let new = file.json()["XksProxyAuthenticationCredential"]["AccessKeyId"]
        .as_str()
        .expect("akid")
        .to_string();
    assert!(html.contains(&format!("data-name=\"{new}\"")), "{html}");
    assert!(
        !html.contains(
            file.json()["XksProxyAuthenticationCredential"]["RawSecretAccessKey"]
                .as_str()
                .expect("secret")
        )
    );
    let r = c
        .post(&page, &format!("{page}/credentials/{old}/delete"), &[])
        .await;
    assert_eq!(r.status.as_u16(), 303, "{}", text(&r));
    let after = expect_status(
        &root.get(&format!("/api/v1/stores/{id}/credentials")).await,
        200,
    );
    assert_eq!(after.as_array().map(Vec::len), Some(1));
    assert_eq!(after[0]["access_key_id"], new.as_str());
    // The health-check URI is on the page.
    let html = text(&c.get(&page).await);
    let store = expect_status(&root.get(&format!("/api/v1/stores/{id}")).await, 200);
    let hc = store["health_check_path"].as_str().expect("path");
    assert!(html.contains(hc), "{html}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn source_pages_check_health_check_keys_and_create_keys() {
    let (server, root, c) = setup().await;
    let deletable = json!({"name": "del", "usage": ["encrypt", "decrypt", "wrap", "unwrap"],
        "deletable": true});
    expect_status(&root.create_source_key("ctm", &deletable).await, 201);
    let html = text(&c.get("/console/sources").await);
    assert!(html.contains("<tr data-name=\"ctm\">"), "{html}");
    let page = "/console/sources/ctm";
    let html = text(&c.get(page).await);
    assert!(html.contains("id=\"health-check-rules\""), "{html}");
    let row = |name: &str| {
        let at = html
            .find(&format!("<tr data-name=\"{name}\">"))
            .expect("row");
        html[at..at + html[at..].find("</tr>").expect("row end")].to_string()
    };
    assert!(row("hc").contains(">valid<"), "{}", row("hc"));
    assert!(
        row("del").contains("not valid") && row("del").contains("deletable"),
        "{}",
        row("del")
    );
    // Create a key through the form; a name taken is refused with the API's code.
    let form = [("name", "k2"), ("usage", "encrypt"), ("usage", "decrypt")];
    let r = c.post(page, &format!("{page}/keys"), &form).await;
    assert_eq!(r.status.as_u16(), 303, "{}", text(&r));
    let key = expect_status(&root.get("/api/v1/sources/ctm/keys/k2").await, 200);
    assert_eq!(key["usage"], json!(["ENCRYPT", "DECRYPT"]));
    let r = c.post(page, &format!("{page}/keys"), &form).await;
    assert!(r.status.is_client_error(), "{}", text(&r));
    assert!(
        text(&r).contains("role=\"alert\" class=\"error\" data-code="),
        "{}",
        text(&r)
    );
    // A config-declared source cannot be deleted: the API's refusal, after the name.
    let r = c
        .post(page, &format!("{page}/delete"), &[("confirm_name", "ctm")])
        .await;
    assert_refused(&r, 422, "source_declared_in_config");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn failed_sign_ins_are_throttled_by_user_and_by_the_clients_address() {
    let server = TestServer::start_admin_https().await;
    let mut c = ConsoleClient::new(&server);
    // The API's login throttle sees the console's client address: 20 failures from
    // it (any names) refuse even root's right password.
    for i in 0..20 {
        let r = c.sign_in(&format!("nobody{i}"), "wrong password").await;
        assert_refused(&r, 401, "unauthenticated");
    }
    let r = c.sign_in("root", &server.root_password()).await;
    assert_refused(&r, 429, "too_many_attempts");
    assert!(c.cookie.is_none());
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_console_works_over_http2_where_the_host_is_the_authority() {
    let server = TestServer::start_admin_https().await;
    let mut c = ConsoleClient::new(&server);
    c.transport = c.transport.with_proto(keyhold_tests::Proto::Http2);
    let r = c.sign_in("root", &server.root_password()).await;
    assert_eq!(r.status.as_u16(), 303, "{}", text(&r));
    let page = "/console/sources/ctm";
    let r = c
        .post(
            page,
            &format!("{page}/keys"),
            &[("name", "k"), ("usage", "encrypt")],
        )
        .await;
    assert_eq!(r.status.as_u16(), 303, "{}", text(&r));
    let r = c
        .post_raw(
            "/console/sources/ctm/keys",
            &[("name", "k2")],
            &[("origin", "https://evil.example")],
        )
        .await;
    assert_refused(&r, 403, "csrf_failed");
    server.stop().await;
}

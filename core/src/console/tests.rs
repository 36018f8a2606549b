use std::time::{Duration, Instant};

use axum::http::{HeaderMap, HeaderValue, header};
use maud::Render;

use super::{
    Field, FormData,
    auth::{cross_site, csrf_ok, csrf_token, sanitize_next, session_cookie, set_cookie},
    downloads::{Downloads, TTL, Taken, safe_filename},
    store::{form_values, patch_from_form},
    store_keys::new_key_from_form,
    stores::{location_from_form, new_store_from_form},
};
use crate::{api::stores::XksLocation, model::StoreRecord};

#[test]
fn the_csrf_token_is_the_contracts_digest_of_the_session() {
    // base64url(SHA-256("keyhold-console-csrf\0" || token)), no padding.
    use base64::Engine;
    use sha2::{Digest, Sha256};
    let expected = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(Sha256::digest(b"keyhold-console-csrf\0kh_a.b"));
    assert_eq!(csrf_token("kh_a.b"), expected);
    assert_eq!(expected.len(), 43);
    assert!(csrf_ok("kh_a.b", Some(&expected)));
    assert!(!csrf_ok("kh_a.c", Some(&expected)), "another session's");
    assert!(!csrf_ok("kh_a.b", None));
    assert!(!csrf_ok("kh_a.b", Some("")));
    assert!(!csrf_ok("kh_a.b", Some(&expected[..42])), "a prefix");
}

#[test]
fn next_is_only_a_console_path() {
    for ok in ["/console/", "/console/stores", "/console/stores/abc?x=1"] {
        assert_eq!(sanitize_next(Some(ok)), ok);
    }
    for bad in [
        None,
        Some(""),
        Some("/"),
        Some("/api/v1/stores"),
        Some("//evil.example/console/"),
        Some("/console//evil.example"),
        Some("https://evil.example/console/"),
        Some("/console/\\evil"),
        Some("/console/../api/v1/tokens"),
        Some("/console/a/.."),
        Some("/console/a\nb"),
        Some("/console/signout"),
        Some("/console/signin?next=/x"),
        Some("/consolex"),
    ] {
        assert_eq!(sanitize_next(bad), "/console/", "{bad:?}");
    }
    let long = format!("/console/{}", "a".repeat(2000));
    assert_eq!(sanitize_next(Some(&long)), "/console/");
}

#[test]
fn cross_site_requests_are_told_apart() {
    let host = Some("127.0.0.1:8443");
    assert!(!cross_site(None, None, host), "no Origin: a same-site form");
    assert!(!cross_site(
        Some("same-origin"),
        Some("https://127.0.0.1:8443"),
        host
    ));
    assert!(!cross_site(Some("none"), None, host));
    assert!(!cross_site(None, Some("HTTPS://127.0.0.1:8443"), host));
    assert!(cross_site(Some("cross-site"), None, host));
    assert!(cross_site(
        Some("Cross-Site"),
        Some("https://127.0.0.1:8443"),
        host
    ));
    assert!(cross_site(None, Some("https://evil.example"), host));
    assert!(cross_site(None, Some("https://127.0.0.1:9443"), host));
    assert!(cross_site(None, Some("null"), host));
    assert!(cross_site(None, Some("https://127.0.0.1:8443"), None));
}

#[test]
fn the_session_cookie_is_read_and_written_with_its_attributes() {
    let mut h = HeaderMap::new();
    h.append(
        header::COOKIE,
        HeaderValue::from_static("a=1; keyhold_session=kh_x.y; b=2"),
    );
    assert_eq!(session_cookie(&h).as_deref(), Some("kh_x.y"));
    let mut h = HeaderMap::new();
    h.append(header::COOKIE, HeaderValue::from_static("other=1"));
    h.append(
        header::COOKIE,
        HeaderValue::from_static("keyhold_session=kh_2.z"),
    );
    assert_eq!(session_cookie(&h).as_deref(), Some("kh_2.z"));
    let mut h = HeaderMap::new();
    h.append(header::COOKIE, HeaderValue::from_static("keyhold_session="));
    assert_eq!(session_cookie(&h), None);
    assert_eq!(session_cookie(&HeaderMap::new()), None);
    assert_eq!(
        set_cookie("kh_x.y", 3600),
        "keyhold_session=kh_x.y; HttpOnly; Secure; SameSite=Strict; Path=/; Max-Age=3600"
    );
    assert!(set_cookie("", -5).ends_with("Max-Age=0"));
}

#[test]
fn forms_are_parsed_with_repeated_fields_and_numbers() {
    let f = FormData::parse(
        b"name=+s1+&usage=encrypt&usage=decrypt&usage=&n=12&bad=x&c=true&t=a%0D%0Ab%0A%0A",
    )
    .expect("form");
    assert_eq!(f.text("name"), "s1");
    assert_eq!(f.opt("missing"), None);
    assert_eq!(f.opt("usage").as_deref(), Some("encrypt"));
    assert_eq!(f.all("usage"), ["encrypt", "decrypt"]);
    assert_eq!(f.number::<u32>("n"), Ok(Some(12)));
    assert_eq!(f.number::<u32>("missing"), Ok(None));
    assert!(f.number::<u32>("bad").unwrap_err().contains("bad"));
    assert!(f.checked("c") && !f.checked("d"));
    assert_eq!(f.lines("t"), ["a", "b"]);
    assert!(FormData::from_pairs([("confirm_name", "s1")]).confirmed("s1"));
    assert!(!FormData::from_pairs([("confirm_name", "s2")]).confirmed("s1"));
    assert!(!FormData::default().confirmed(""));
}

#[test]
fn the_create_form_becomes_the_api_body() {
    let f = FormData::from_pairs([
        ("name", "s1"),
        ("source", "ctm"),
        ("health_check_key", "hc"),
        ("account", ""),
        ("max_credentials", "5"),
        ("location", "public"),
        ("endpoint", "https://xks.example"),
        ("mtls_cns", "a\n\nb\n"),
        ("success_audit", "true"),
    ]);
    let b = new_store_from_form(&f).expect("body");
    assert_eq!((b.name.as_str(), b.source.as_str()), ("s1", "ctm"));
    assert_eq!(b.account, None);
    assert_eq!(b.max_credentials, Some(5));
    assert_eq!(
        b.location,
        XksLocation::Public {
            endpoint: "https://xks.example".into()
        }
    );
    assert_eq!(b.mtls_cns, ["a", "b"]);
    assert!(b.success_audit && !b.mtls && !b.linked);
    let bad = FormData::from_pairs([("max_credentials", "many")]);
    assert_eq!(new_store_from_form(&bad).unwrap_err().0, "max_credentials");
    let vpc = FormData::from_pairs([("location", "vpc"), ("endpoint", "e")]);
    assert_eq!(location_from_form(&vpc).unwrap_err().0, "service_name");
    let public = FormData::from_pairs([("location", "public")]);
    assert_eq!(location_from_form(&public).unwrap_err().0, "endpoint");
    let odd = FormData::from_pairs([("location", "moon")]);
    assert_eq!(location_from_form(&odd).unwrap_err().0, "location");
    assert_eq!(
        location_from_form(&FormData::default()),
        Ok(XksLocation::Unset)
    );
}

fn record() -> StoreRecord {
    serde_json::from_value(serde_json::json!({
        "id": "abc", "name": "s1", "source": "ctm", "plugin": "ctm",
        "uri_path_prefix": "keystores/abc", "health_check_key": "hc",
        "max_credentials": 20, "created_at": 0, "mtls_cns": ["x"]
    }))
    .expect("record")
}

#[test]
fn an_edit_patches_only_what_changed() {
    let r = record();
    let same = form_values(&r);
    let p = patch_from_form(&same, &r).expect("patch");
    assert!(p.fields().is_empty(), "{:?}", p.fields());
    let mut pairs: Vec<(&str, &str)> = vec![
        ("name", "s2"),
        ("health_check_key", "hc"),
        ("max_credentials", "7"),
        ("location", "unset"),
        ("mtls_cns", "x\r\ny"),
        ("mtls_ca_pem", ""),
        ("mtls", "true"),
    ];
    let p = patch_from_form(&FormData::from_pairs(pairs.clone()), &r).expect("patch");
    assert_eq!(p.fields(), ["name", "max_credentials", "mtls", "mtls_cns"]);
    assert_eq!(p.mtls_cns, Some(vec!["x".to_string(), "y".to_string()]));
    pairs.push(("region", "eu-west-1"));
    pairs[2] = ("max_credentials", "lots");
    let e = patch_from_form(&FormData::from_pairs(pairs), &r).unwrap_err();
    assert_eq!(e.0, "max_credentials");
}

#[test]
fn the_hyok_key_form_becomes_the_api_body() {
    let k = new_key_from_form(&FormData::from_pairs([
        ("external_id", " k1 "),
        ("source_key", "data"),
        ("linked", "false"),
        ("allow_weak_key", "true"),
    ]));
    assert_eq!(
        (k.external_id.as_str(), k.source_key.as_str()),
        ("k1", "data")
    );
    assert_eq!(k.linked, Some(false));
    assert!(k.allow_weak_key);
    let k = new_key_from_form(&FormData::from_pairs([("linked", "")]));
    assert_eq!(k.linked, None);
    assert!(!k.allow_weak_key);
}

#[test]
fn a_download_is_served_once_to_its_session_within_ten_minutes() {
    let d = Downloads::default();
    let now = Instant::now();
    let id = d.put("kh_a.1", "f.json", b"secret".to_vec(), now);
    assert_eq!(id.len(), 32);
    assert_eq!(
        d.take("kh_b.2", &id, now),
        Taken::NotFound,
        "another session"
    );
    match d.take("kh_a.1", &id, now) {
        Taken::File { filename, body } => {
            assert_eq!(filename, "f.json");
            assert_eq!(body.as_slice(), b"secret");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(d.take("kh_a.1", &id, now), Taken::NotFound, "served once");
    let id = d.put("kh_a.1", "f.json", b"secret".to_vec(), now);
    assert_eq!(TTL, Duration::from_secs(600));
    assert_eq!(d.take("kh_a.1", &id, now + TTL), Taken::Expired);
    assert_eq!(
        d.take("kh_a.1", &id, now),
        Taken::NotFound,
        "gone once expired"
    );
    assert_eq!(d.take("kh_a.1", "nope", now), Taken::NotFound);
    // Ids differ.
    let a = d.put("kh_a.1", "f", vec![], now);
    let b = d.put("kh_a.1", "f", vec![], now);
    assert_ne!(a, b);
}

#[test]
fn download_names_are_header_safe() {
    assert_eq!(safe_filename("s1-credentials.json"), "s1-credentials.json");
    assert_eq!(safe_filename("a\"b;\r\nc.json"), "a_b___c.json");
    assert_eq!(safe_filename(""), "download");
}

#[test]
fn fields_are_labelled_and_described() {
    let html = Field::text("name", "Name")
        .value("<s1>")
        .help("Unique.")
        .error(Some("taken".into()))
        .required()
        .render()
        .into_string();
    assert!(html.contains(r#"<label for="name">"#), "{html}");
    assert!(
        html.contains(r#"id="name" name="name" value="&lt;s1&gt;""#),
        "{html}"
    );
    assert!(
        html.contains(r#"aria-describedby="name-help name-error""#),
        "{html}"
    );
    assert!(html.contains(r#"aria-invalid="true""#), "{html}");
    assert!(
        html.contains(r#"<p class="help" id="name-help">Unique.</p>"#),
        "{html}"
    );
    let html = Field::password("password", "Password")
        .value("secret")
        .render()
        .into_string();
    assert!(
        !html.contains("secret"),
        "passwords are never put back: {html}"
    );
    let html = Field::text("name", "Name")
        .id_prefix("link")
        .render()
        .into_string();
    assert!(
        html.contains(r#"<label for="link-name">"#)
            && html.contains(r#"id="link-name" name="name""#),
        "{html}"
    );
    let html = Field::checkbox("mtls", "mTLS", true).render().into_string();
    assert!(
        html.contains("checked") && !html.contains("aria-describedby"),
        "{html}"
    );
}

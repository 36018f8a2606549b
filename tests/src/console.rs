//! A client of the web console (`/console/...`) as a browser without scripts would
//! use it: it keeps the session cookie, sends forms urlencoded with this origin's
//! `Origin`, and reads the hidden fields (the CSRF token, etags) out of pages.

use crate::{RawRequest, Reply, TestServer, Transport};

/// A console client over HTTPS (the admin listener's development CA).
#[derive(Clone)]
pub struct ConsoleClient {
    /// How to reach the admin listener.
    pub transport: Transport,
    /// The session cookie's value, once signed in.
    pub cookie: Option<String>,
    /// Whether the listener serves TLS.
    pub tls: bool,
}

/// Percent-encodes a form value (`application/x-www-form-urlencoded`).
pub fn form_encode(pairs: &[(&str, &str)]) -> String {
    let enc = |s: &str| {
        s.bytes()
            .map(|b| {
                if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                    (b as char).to_string()
                } else {
                    format!("%{b:02X}")
                }
            })
            .collect::<String>()
    };
    pairs
        .iter()
        .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// The `value` of the first `<input ... name="<name>" value="...">` in `html`.
pub fn input_value(html: &str, name: &str) -> Option<String> {
    let at = html.find(&format!("name=\"{name}\""))?;
    let tag_start = html[..at].rfind('<')?;
    let tag_end = at + html[at..].find('>')?;
    let tag = &html[tag_start..tag_end];
    let v = tag.find("value=\"")? + 7;
    let end = tag[v..].find('"')?;
    Some(
        tag[v..v + end]
            .replace("&quot;", "\"")
            .replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&amp;", "&"),
    )
}

/// The body of a reply as text.
pub fn text(r: &Reply) -> String {
    String::from_utf8_lossy(&r.body).into_owned()
}

/// A reply's header as text.
pub fn header<'a>(r: &'a Reply, name: &str) -> Option<&'a str> {
    r.headers.get(name).and_then(|v| v.to_str().ok())
}

impl ConsoleClient {
    /// A client of `server`'s admin listener: over HTTPS trusting the development CA
    /// when it serves TLS, else plain HTTP (test servers with `admin.plain_http`).
    pub fn new(server: &TestServer) -> ConsoleClient {
        let addr = server.running.admin_addr.expect("admin listener");
        let transport = if server.running.admin_tls {
            let ca = std::fs::read_to_string(server.path().join("tls/ca.pem")).expect("dev CA");
            Transport::https(addr, &ca)
        } else {
            Transport::plain(addr)
        };
        ConsoleClient {
            transport,
            cookie: None,
            tls: server.running.admin_tls,
        }
    }

    /// The origin pages are served from (`https://<authority>`).
    pub fn origin(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://{}", self.transport.authority())
    }

    /// Sends `req` with the session cookie.
    pub async fn send(&self, mut req: RawRequest) -> Reply {
        if let Some(c) = &self.cookie {
            req = req.with_header("cookie", &format!("keyhold_session={c}"));
        }
        let conn = self.transport.connect().await.expect("connect");
        conn.send(&req).await.expect("console answer")
    }

    /// GET `path`.
    pub async fn get(&self, path: &str) -> Reply {
        self.send(RawRequest::new("GET", path, "")).await
    }

    /// POSTs a form to `path` from this origin, with `extra` headers.
    pub async fn post_raw(
        &self,
        path: &str,
        pairs: &[(&str, &str)],
        extra: &[(&str, &str)],
    ) -> Reply {
        let mut req = RawRequest::new("POST", path, form_encode(pairs))
            .with_header("content-type", "application/x-www-form-urlencoded");
        if !extra.iter().any(|(n, _)| n.eq_ignore_ascii_case("origin")) {
            req = req.with_header("origin", &self.origin());
        }
        for (n, v) in extra {
            req = req.with_header(n, v);
        }
        self.send(req).await
    }

    /// POSTs a form to `path` with the CSRF token read from the page `page` first.
    pub async fn post(&self, page: &str, path: &str, pairs: &[(&str, &str)]) -> Reply {
        let csrf = self.csrf(page).await;
        let mut all = vec![("csrf", csrf.as_str())];
        all.extend_from_slice(pairs);
        self.post_raw(path, &all, &[]).await
    }

    /// The CSRF token of the forms on `page`.
    pub async fn csrf(&self, page: &str) -> String {
        let r = self.get(page).await;
        assert_eq!(r.status.as_u16(), 200, "GET {page}: {}", text(&r));
        input_value(&text(&r), "csrf").expect("a csrf field")
    }

    /// Signs in; the reply (303 with the cookie when it worked). Keeps the cookie.
    pub async fn sign_in(&mut self, user: &str, password: &str) -> Reply {
        let r = self
            .post_raw(
                "/console/signin",
                &[
                    ("user", user),
                    ("password", password),
                    ("next", "/console/stores"),
                ],
                &[],
            )
            .await;
        if let Some(c) = header(&r, "set-cookie") {
            let value = c
                .split(';')
                .next()
                .and_then(|kv| kv.split_once('='))
                .map(|(_, v)| v.to_string())
                .filter(|v| !v.is_empty());
            self.cookie = value;
        }
        r
    }

    /// Follows a 303: GETs its `Location`.
    pub async fn follow(&self, r: &Reply) -> Reply {
        assert_eq!(r.status.as_u16(), 303, "expected a redirect: {}", text(r));
        let to = header(r, "location").expect("Location").to_string();
        self.get(&to).await
    }
}

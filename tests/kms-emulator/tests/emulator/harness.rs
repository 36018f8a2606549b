//! The test harness: the real `keyhold` binary as the XKS proxy (HTTPS with a test
//! PKI, the conformance store declared in its configuration), the emulator in-process,
//! and `aws-sdk-kms` clients.

use std::{
    fs::File,
    net::SocketAddr,
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use aws_sdk_kms::{
    config::{BehaviorVersion, Credentials, Region, retry::RetryConfig},
    types::{OriginType, XksProxyConnectivityType},
};
use keyhold_testkit::{
    Credential, RawRequest, Reply, Transport,
    admin::{AdminClient, expect_status},
    fixture::{self, KeyFixture, SourceFixture},
    paths::{free_port, keyhold_bin, plugin_dir, toml_str},
    pki::TestCa,
    sign::Signer,
};
use kms_emulator::{Emulator, EmulatorConfig, IamRole, IamUser};
use serde_json::{Value, json};
use tempfile::TempDir;

/// The emulator's region.
pub const REGION: &str = "eu-west-1";
/// The emulator's account.
pub const ACCOUNT: &str = "111122223333";
/// Alice: an IAM user trusted by [`ROLE`].
pub const ALICE: (&str, &str) = (
    "AKIAALICEEXAMPLE0001",
    "alice-secret-access-key-0000000000000001",
);
/// Bob: an IAM user not trusted by [`ROLE`].
pub const BOB: (&str, &str) = (
    "AKIABOBEXAMPLE000002",
    "bob-secret-access-key-00000000000000002",
);
/// A role Alice may assume.
pub const ROLE: &str = "arn:aws:iam::111122223333:role/keyhold-manager";
/// A second key with encrypt and decrypt.
pub const KEY_2: &str = "demo-key-2";
/// A key declared disabled in keyhold's source.
pub const KEY_DISABLED: &str = "demo-disabled";
/// The root password handed to keyhold.
const ROOT_PASSWORD: &str = "emulator test root password 1";
const ROOT_ENV: &str = "KH_EMU_ROOT_PASSWORD";

/// keyhold serving the conformance store over HTTPS, as a child process.
pub struct Keyhold {
    child: Option<Child>,
    /// Its XKS listener.
    pub xks: SocketAddr,
    /// Its admin listener (plain HTTP).
    pub admin: SocketAddr,
    /// The CA of its certificate.
    pub ca_pem: String,
    log: PathBuf,
    _dir: TempDir,
}

impl Keyhold {
    /// Starts keyhold and waits until its admin API answers.
    pub async fn start() -> Keyhold {
        let dir = tempfile::tempdir().expect("tempdir");
        let ca = TestCa::new("kms-emulator test CA");
        let (cert, key) = ca.server_cert().write(dir.path(), "xks");
        let data = dir.path().join("data");
        std::fs::create_dir_all(&data).expect("data dir");
        let xks: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().expect("addr");
        let admin: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().expect("addr");
        let mut t = format!("data_dir = {}\n\n", toml_str(data.to_string_lossy()));
        t += &format!(
            "[plugins]\ndir = {}\n\n",
            toml_str(plugin_dir().to_string_lossy())
        );
        t += &format!(
            "[xks]\nlisten = {}\nplain_http = false\n\n[xks.tls]\ncert_file = {}\nkey_file = {}\n\n",
            toml_str(xks.to_string()),
            toml_str(cert.to_string_lossy()),
            toml_str(key.to_string_lossy())
        );
        t += &SourceFixture::ctm().toml(&data);
        t += &format!(
            "\n[[stores]]\nname = {}\nsource = \"ctm\"\nuri_path_prefix = {}\nhealth_check_key = {}\n\n",
            toml_str(fixture::STORE),
            toml_str(fixture::PREFIX),
            toml_str(fixture::HEALTH_KEY)
        );
        for c in [Credential::a(), Credential::b()] {
            t += &format!(
                "[[stores.credentials]]\naccess_key_id = {}\nsecret = {}\n\n",
                toml_str(&c.access_key_id),
                toml_str(&c.secret)
            );
        }
        let mut keys = KeyFixture::conformance();
        keys.push(KeyFixture::new(KEY_2, &["encrypt", "decrypt"]));
        keys.push(KeyFixture::new(KEY_DISABLED, &["encrypt", "decrypt"]).disabled());
        for k in keys {
            t += &k.toml();
            t += "\n";
        }
        t += &format!(
            "[admin]\nlisten = {}\nplain_http = true\nroot_password_env = {}\n",
            toml_str(admin.to_string()),
            toml_str(ROOT_ENV)
        );
        let config = dir.path().join("keyhold.toml");
        std::fs::write(&config, t).expect("write config");
        let log = dir.path().join("keyhold.log");
        let child = Command::new(keyhold_bin())
            .args(["serve", "--config"])
            .arg(&config)
            .current_dir(dir.path())
            .env(ROOT_ENV, ROOT_PASSWORD)
            .env("RUST_LOG", "warn")
            .env_remove("KEYHOLD_XKS__LISTEN")
            .env_remove("KEYHOLD_ADMIN__LISTEN")
            .env_remove("KEYHOLD_DATA_DIR")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(File::create(&log).expect("log")))
            .spawn()
            .expect("spawn keyhold");
        let mut k = Keyhold {
            child: Some(child),
            xks,
            admin,
            ca_pem: ca.pem(),
            log,
            _dir: dir,
        };
        k.wait_ready().await;
        k
    }

    async fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        let client = AdminClient::new(Transport::plain(self.admin));
        loop {
            if let Some(Ok(Some(status))) = self.child.as_mut().map(Child::try_wait) {
                panic!("keyhold exited early ({status}):\n{}", self.log_text());
            }
            let probe = client.raw("GET", "/api/v1/openapi.json", None);
            if let Ok(r) = client.try_send(&probe).await {
                if r.status.as_u16() == 200 {
                    return;
                }
            }
            assert!(
                Instant::now() < deadline,
                "keyhold did not start:\n{}",
                self.log_text()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// What keyhold wrote to stderr.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// `https://localhost:<port>`: the store's `XksProxyUriEndpoint`.
    pub fn endpoint(&self) -> String {
        format!("https://localhost:{}", self.xks.port())
    }

    /// An admin client logged in as root.
    pub async fn root(&self) -> AdminClient {
        AdminClient::new(Transport::plain(self.admin))
            .login("root", ROOT_PASSWORD)
            .await
    }

    /// The admin API path of the conformance store.
    pub async fn store_path(&self) -> String {
        let root = self.root().await;
        let listed = expect_status(&root.get("/api/v1/stores").await, 200);
        let id = find_id(&listed, fixture::STORE).expect("the acme store is listed");
        format!("/api/v1/stores/{id}")
    }
}

fn find_id(v: &Value, name: &str) -> Option<String> {
    match v {
        Value::Object(m) => {
            if m.get("name").and_then(Value::as_str) == Some(name) {
                if let Some(id) = m.get("id").and_then(Value::as_str) {
                    return Some(id.to_string());
                }
            }
            m.values().find_map(|x| find_id(x, name))
        }
        Value::Array(a) => a.iter().find_map(|x| find_id(x, name)),
        _ => None,
    }
}

impl Drop for Keyhold {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// The emulator's configuration for these tests: plain HTTP, trusting keyhold's CA,
/// Alice and Bob, the role, short transitions.
pub fn emulator_config(ca_pem: &str) -> EmulatorConfig {
    let mut c = EmulatorConfig::new(REGION, ACCOUNT);
    c.users = vec![
        IamUser {
            name: "alice".into(),
            access_key_id: ALICE.0.into(),
            secret_access_key: ALICE.1.into(),
        },
        IamUser {
            name: "bob".into(),
            access_key_id: BOB.0.into(),
            secret_access_key: BOB.1.into(),
        },
    ];
    c.roles = vec![IamRole {
        arn: ROLE.into(),
        trusted_access_key_ids: vec![ALICE.0.into()],
    }];
    c.xks_ca_pem = ca_pem.as_bytes().to_vec();
    c.transition_delay = Duration::from_millis(100);
    // Generous: the debug-built proxy on a shared machine, not AWS's 250 ms.
    c.xks_timeout = Duration::from_secs(5);
    c
}

/// Starts the emulator on a free loopback port.
pub async fn start_emulator(config: EmulatorConfig) -> Emulator {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    kms_emulator::start(config, listener)
        .await
        .expect("emulator starts")
}

/// An `aws-sdk-kms` client of `emulator` with static keys (and a session token).
pub fn kms(emulator: &Emulator, key: (&str, &str), token: Option<&str>) -> aws_sdk_kms::Client {
    kms_with_retries(emulator, key, token, 1)
}

/// The same, with `attempts` attempts per call (standard retry mode, short backoff).
pub fn kms_with_retries(
    emulator: &Emulator,
    key: (&str, &str),
    token: Option<&str>,
    attempts: u32,
) -> aws_sdk_kms::Client {
    let creds = Credentials::new(key.0, key.1, token.map(str::to_string), None, "tests");
    let conf = aws_sdk_kms::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(REGION))
        .endpoint_url(emulator.endpoint())
        .credentials_provider(creds)
        .retry_config(
            RetryConfig::standard()
                .with_max_attempts(attempts)
                .with_initial_backoff(Duration::from_millis(5)),
        )
        .build();
    aws_sdk_kms::Client::from_conf(conf)
}

/// A signed STS Query request to the emulator (`region` = the SigV4 scope).
pub async fn sts(emulator: &Emulator, key: (&str, &str), region: &str, form: &str) -> Reply {
    let endpoint = emulator.endpoint();
    let authority = endpoint.trim_start_matches("http://").to_string();
    let addr: SocketAddr = authority.parse().expect("emulator address");
    let cred = Credential::new(key.0, key.1);
    let signer = Signer {
        cred: &cred,
        service: "sts",
        region,
    };
    let ct = "application/x-www-form-urlencoded; charset=utf-8";
    let headers = signer
        .headers(
            "POST",
            &authority,
            "/",
            [("content-type", ct)],
            form.as_bytes(),
            std::time::SystemTime::now(),
        )
        .expect("sign");
    let mut req =
        RawRequest::new("POST", "/", form.as_bytes().to_vec()).with_header("content-type", ct);
    for (n, v) in headers {
        req = req.with_header(&n, &v);
    }
    Transport::plain(addr)
        .connect()
        .await
        .expect("connect")
        .send(&req)
        .await
        .expect("STS answers")
}

/// Plain HTTP to the emulator.
pub fn plain(emulator: &Emulator) -> Transport {
    let endpoint = emulator.endpoint();
    let addr: SocketAddr = endpoint
        .trim_start_matches("http://")
        .parse()
        .expect("emulator address");
    Transport::plain(addr)
}

/// A signed KMS request with target `TrentService.<op>` and a raw body.
pub async fn kms_raw(emulator: &Emulator, key: (&str, &str), op: &str, body: &[u8]) -> Reply {
    kms_raw_via(&plain(emulator), key, op, body).await
}

/// The same over any transport.
pub async fn kms_raw_via(transport: &Transport, key: (&str, &str), op: &str, body: &[u8]) -> Reply {
    let authority = transport.authority();
    let cred = Credential::new(key.0, key.1);
    let signer = Signer {
        cred: &cred,
        service: "kms",
        region: REGION,
    };
    let target = format!("TrentService.{op}");
    let ct = "application/x-amz-json-1.1";
    let headers = signer
        .headers(
            "POST",
            &authority,
            "/",
            [("content-type", ct), ("x-amz-target", target.as_str())],
            body,
            std::time::SystemTime::now(),
        )
        .expect("sign");
    let mut req = RawRequest::new("POST", "/", body.to_vec())
        .with_header("content-type", ct)
        .with_header("x-amz-target", &target);
    for (n, v) in headers {
        req = req.with_header(&n, &v);
    }
    transport
        .connect()
        .await
        .expect("connect")
        .send(&req)
        .await
        .expect("KMS answers")
}

/// The text of XML element `tag` in `xml`.
pub fn xml_text<'a>(xml: &'a str, tag: &str) -> Option<&'a str> {
    let open = format!("<{tag}>");
    let close = format!("</{tag}>");
    let start = xml.find(&open)? + open.len();
    let end = xml[start..].find(&close)? + start;
    Some(&xml[start..end])
}

/// The error code of an SDK error.
pub fn code<E, R>(e: &aws_sdk_kms::error::SdkError<E, R>) -> String
where
    E: aws_sdk_kms::error::ProvideErrorMetadata,
{
    use aws_sdk_kms::error::ProvideErrorMetadata;
    e.code().unwrap_or("<no code>").to_string()
}

/// Waits (bounded) until `store` leaves its transient state; returns the final state
/// and error code, and every state seen.
pub async fn settle(
    client: &aws_sdk_kms::Client,
    store: &str,
) -> (String, Option<String>, Vec<String>) {
    let mut seen = Vec::new();
    for _ in 0..400 {
        let d = client
            .describe_custom_key_stores()
            .custom_key_store_id(store)
            .send()
            .await
            .expect("describe");
        let e = &d.custom_key_stores()[0];
        let state = e
            .connection_state()
            .map(|s| s.as_str().to_string())
            .unwrap_or_default();
        if seen.last() != Some(&state) {
            seen.push(state.clone());
        }
        if state != "CONNECTING" && state != "DISCONNECTING" {
            return (
                state,
                e.connection_error_code().map(|c| c.as_str().to_string()),
                seen,
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("store {store} stayed transient: {seen:?}");
}

/// The proxy credential of the conformance store, for `CreateCustomKeyStore`.
pub fn proxy_credential(
    c: &Credential,
) -> aws_sdk_kms::types::XksProxyAuthenticationCredentialType {
    aws_sdk_kms::types::XksProxyAuthenticationCredentialType::builder()
        .access_key_id(&c.access_key_id)
        .raw_secret_access_key(&c.secret)
        .build()
        .expect("credential")
}

/// Admin API body helper.
pub fn empty() -> Value {
    json!({})
}

/// `CreateCustomKeyStore` (public endpoint); the store id or the error code.
pub async fn create_store(
    client: &aws_sdk_kms::Client,
    name: &str,
    endpoint: &str,
    path: &str,
    cred: &Credential,
) -> Result<String, String> {
    client
        .create_custom_key_store()
        .custom_key_store_name(name)
        .custom_key_store_type(aws_sdk_kms::types::CustomKeyStoreType::ExternalKeyStore)
        .xks_proxy_connectivity(XksProxyConnectivityType::PublicEndpoint)
        .xks_proxy_uri_endpoint(endpoint)
        .xks_proxy_uri_path(path)
        .xks_proxy_authentication_credential(proxy_credential(cred))
        .send()
        .await
        .map(|o| o.custom_key_store_id().unwrap_or_default().to_string())
        .map_err(|e| code(&e))
}

/// `ConnectCustomKeyStore`, then [`settle`].
pub async fn connect(
    client: &aws_sdk_kms::Client,
    store: &str,
) -> (String, Option<String>, Vec<String>) {
    client
        .connect_custom_key_store()
        .custom_key_store_id(store)
        .send()
        .await
        .expect("connect");
    settle(client, store).await
}

/// `DisconnectCustomKeyStore`, then [`settle`].
pub async fn disconnect(
    client: &aws_sdk_kms::Client,
    store: &str,
) -> (String, Option<String>, Vec<String>) {
    client
        .disconnect_custom_key_store()
        .custom_key_store_id(store)
        .send()
        .await
        .expect("disconnect");
    settle(client, store).await
}

/// `CreateKey` for external key `xks_key`; the key id or the error code.
pub async fn create_key(
    client: &aws_sdk_kms::Client,
    store: &str,
    xks_key: &str,
) -> Result<String, String> {
    client
        .create_key()
        .origin(OriginType::ExternalKeyStore)
        .custom_key_store_id(store)
        .xks_key_id(xks_key)
        .description("test key")
        .send()
        .await
        .map(|o| {
            o.key_metadata()
                .map(|m| m.key_id().to_string())
                .unwrap_or_default()
        })
        .map_err(|e| code(&e))
}

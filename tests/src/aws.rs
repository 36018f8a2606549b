//! keyhold and the KMS emulator side by side on loopback, both over TLS from one test
//! CA: keyhold's AWS connection points at the emulator, the emulator trusts keyhold's
//! XKS certificate, and an "application" IAM user calls AWS KMS (the emulator) with
//! the real `aws-sdk-kms` client, as AWS users do.

use std::{path::PathBuf, sync::Arc};

use aws_sdk_kms::{
    Client,
    config::{BehaviorVersion, Credentials, Region, retry::RetryConfig},
};
use kms_emulator::{Emulator, EmulatorConfig, IamRole, IamUser, TlsIdentity};
use serde_json::{Value, json};

use crate::{
    ServerBuilder, TestServer,
    admin::{AdminClient, expect_status},
    paths::toml_str,
    pki::TestCa,
};

/// The AWS region everything runs in.
pub const REGION: &str = "eu-west-1";
/// The AWS account.
pub const ACCOUNT: &str = "111122223333";
/// keyhold's IAM user (its AWS connection).
pub const KEYHOLD_AKID: &str = "AKIAKEYHOLDEXAMPLE01";
/// keyhold's IAM secret.
pub const KEYHOLD_SECRET: &str = "keyholdSecretKeyExample0000000000000000001";
/// The application's IAM user.
pub const APP_AKID: &str = "AKIAAPPLICATIONEXMPL";
/// The application's IAM secret.
pub const APP_SECRET: &str = "appSecretKeyExample000000000000000000000001";
/// A role keyhold's user may assume.
pub const ROLE_ARN: &str = "arn:aws:iam::111122223333:role/keyhold-manager";
/// A role nobody may assume.
pub const CLOSED_ROLE_ARN: &str = "arn:aws:iam::111122223333:role/closed";
/// The AWS connection keyhold's account uses.
pub const CONNECTION: &str = "emulator";

/// keyhold (admin API, XKS over TLS) and the KMS emulator (over TLS), wired together.
pub struct AwsWorld {
    /// The test CA both certificates come from.
    pub ca: TestCa,
    /// Its PEM file.
    pub ca_file: PathBuf,
    /// keyhold.
    pub server: TestServer,
    /// keyhold's root admin.
    pub root: AdminClient,
    /// The KMS emulator.
    pub emulator: Emulator,
    /// The application's AWS KMS client.
    pub app: Client,
}

/// The emulator's configuration: keyhold's and the application's IAM users, a role
/// keyhold may assume and one nobody may, trusting `ca` for XKS proxies and serving
/// TLS with a certificate of `ca`.
pub fn emulator_config(ca: &TestCa) -> EmulatorConfig {
    let cert = ca.server_cert();
    let mut config = EmulatorConfig::new(REGION, ACCOUNT);
    config.users = vec![
        IamUser {
            name: "keyhold".into(),
            access_key_id: KEYHOLD_AKID.into(),
            secret_access_key: KEYHOLD_SECRET.into(),
        },
        IamUser {
            name: "application".into(),
            access_key_id: APP_AKID.into(),
            secret_access_key: APP_SECRET.into(),
        },
    ];
    config.roles = vec![
        IamRole {
            arn: ROLE_ARN.into(),
            trusted_access_key_ids: vec![KEYHOLD_AKID.into()],
        },
        IamRole {
            arn: CLOSED_ROLE_ARN.into(),
            trusted_access_key_ids: vec![],
        },
    ];
    config.xks_ca_pem = ca.pem().into_bytes();
    config.tls = Some(TlsIdentity {
        cert_pem: cert.chain_pem.into_bytes(),
        key_pem: cert.key_pem.into_bytes(),
    });
    config
}

/// Starts the emulator with `config` on a free loopback port.
pub async fn start_emulator(config: EmulatorConfig) -> Emulator {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind emulator");
    kms_emulator::start(config, listener)
        .await
        .expect("emulator starts")
}

/// An AWS KMS client of the emulator at `endpoint` signing as `akid`/`secret`, trusting
/// `ca_pem`, with `attempts` attempts per call.
pub fn kms_client(endpoint: &str, ca_pem: &str, akid: &str, secret: &str, attempts: u32) -> Client {
    let http = keyhold::aws::tls::http_client(Some(ca_pem.as_bytes())).expect("https client");
    let conf = aws_sdk_kms::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(REGION))
        .endpoint_url(endpoint)
        .credentials_provider(Credentials::new(akid, secret, None, None, "test"))
        .http_client(http)
        .retry_config(RetryConfig::standard().with_max_attempts(attempts))
        .build();
    Client::from_conf(conf)
}

impl AwsWorld {
    /// keyhold with the `ctm` source and the admin API, and the emulator.
    pub async fn start() -> AwsWorld {
        AwsWorld::start_with(TestServer::admin_only()).await
    }

    /// keyhold from `builder` (XKS over TLS is added) and the emulator; keyhold's AWS
    /// connection (static keys) and account are created.
    pub async fn start_with(builder: ServerBuilder) -> AwsWorld {
        AwsWorld::start_logged_in(builder, None).await
    }

    /// [`Self::start_with`] for a node joining a cluster whose `root` another node
    /// created, with `root_password`.
    pub async fn start_joining(builder: ServerBuilder, root_password: &str) -> AwsWorld {
        AwsWorld::start_logged_in(builder, Some(root_password)).await
    }

    async fn start_logged_in(builder: ServerBuilder, root_password: Option<&str>) -> AwsWorld {
        let ca = TestCa::new("keyhold test CA");
        let dir = Arc::new(tempfile::tempdir().expect("tempdir"));
        let ca_file = ca.write(dir.path(), "ca.pem");
        let (cert, key) = ca.server_cert().write(dir.path(), "xks");
        let server = builder
            .in_dir(dir)
            .tls(&[
                format!("cert_file = {}", toml_str(cert.to_string_lossy())),
                format!("key_file = {}", toml_str(key.to_string_lossy())),
            ])
            .start()
            .await;
        let root = match root_password {
            Some(password) => server.admin().login("root", password).await,
            None => server.root().await,
        };
        let emulator = start_emulator(emulator_config(&ca)).await;
        let app = kms_client(&emulator.endpoint(), &ca.pem(), APP_AKID, APP_SECRET, 3);
        let world = AwsWorld {
            ca,
            ca_file,
            server,
            root,
            emulator,
            app,
        };
        world.add_connection(CONNECTION, json!({})).await;
        let r = world
            .root
            .post(
                "/api/v1/accounts",
                &json!({"id": ACCOUNT, "name": "acme", "regions": [REGION], "aws_connection": CONNECTION}),
            )
            .await;
        expect_status(&r, 201);
        world
    }

    /// Creates AWS connection `name` to the emulator (keyhold's static keys, the test
    /// CA), with `extra` fields merged in (e.g. a role, a wrong secret).
    pub async fn add_connection(&self, name: &str, extra: Value) {
        let mut body = json!({
            "name": name,
            "access_key_id": KEYHOLD_AKID,
            "secret_access_key": KEYHOLD_SECRET,
            "endpoint_url": self.emulator.endpoint(),
            "sts_endpoint_url": self.emulator.endpoint(),
            "ca_file": self.ca_file.to_string_lossy(),
        });
        if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
            for (k, v) in e {
                b.insert(k.clone(), v.clone());
            }
        }
        let r = self.root.post("/api/v1/connections/aws", &body).await;
        expect_status(&r, 201);
    }

    /// Tests AWS connection `name` in this region (200): `Ready`, or `Failed` with the
    /// reason.
    pub async fn test_connection(&self, name: &str) -> Value {
        let path = format!("/api/v1/connections/aws/{name}/test");
        expect_status(
            &self.root.post(&path, &json!({"region": REGION})).await,
            200,
        )
    }

    /// keyhold's XKS endpoint as AWS KMS reaches it (`https://127.0.0.1:<port>`).
    pub fn xks_endpoint(&self) -> String {
        format!("https://127.0.0.1:{}", self.server.running.xks_addr.port())
    }

    /// Creates key `name` (AES-256, every usage, not exportable) in `source`.
    pub async fn source_key(&self, source: &str, name: &str) {
        let r = self
            .root
            .create_source_key(source, &crate::admin::health_check_key(name))
            .await;
        expect_status(&r, 201);
    }

    /// The body of a linked store `name` on `source` with health-check key `hc`
    /// (created first), at this keyhold's endpoint.
    pub async fn linked_store_body(&self, name: &str, source: &str, hc: &str) -> Value {
        self.source_key(source, hc).await;
        json!({
            "name": name,
            "account": ACCOUNT,
            "region": REGION,
            "source": source,
            "health_check_key": hc,
            "location": {"type": "public", "endpoint": self.xks_endpoint()},
            "linked": true,
        })
    }

    /// Creates linked store `name` on `source` (201): its admin path and the reply.
    pub async fn create_linked_store(&self, name: &str, source: &str) -> (String, Value) {
        let body = self
            .linked_store_body(name, source, &format!("{name}-health"))
            .await;
        let created = expect_status(&self.root.create_store(&body).await, 201);
        let id = created["store"]["id"].as_str().expect("store id");
        (format!("/api/v1/stores/{id}"), created)
    }

    /// Creates rotation schedule `name` with `recurrence` (201) and assigns it to the
    /// store at `path` (200).
    pub async fn schedule_rotation(&self, path: &str, name: &str, recurrence: Value) {
        let schedule = json!({"name": name, "recurrence": recurrence});
        expect_status(&self.root.post("/api/v1/schedules", &schedule).await, 201);
        let assign = json!({ "schedule": name });
        let r = self
            .root
            .request("PUT", &format!("{path}/schedule"), Some(&assign), &[])
            .await;
        expect_status(&r, 200);
    }

    /// Connects the store at `path` (200) and returns it.
    pub async fn connect(&self, path: &str) -> Value {
        expect_status(
            &self.root.post(&format!("{path}/connect"), &json!({})).await,
            200,
        )
    }

    /// Creates HYOK key `external_id` on a new source key of `source` in the store at
    /// `path` (201) and returns it.
    pub async fn create_key(&self, path: &str, source: &str, external_id: &str) -> Value {
        let source_key = format!("{external_id}-src");
        self.source_key(source, &source_key).await;
        let r = self
            .root
            .create_hyok_key(path, external_id, &source_key)
            .await;
        expect_status(&r, 201)
    }

    /// The store at `path`, as the admin API shows it.
    pub async fn store(&self, path: &str) -> Value {
        expect_status(&self.root.get(path).await, 200)
    }

    /// The access key id AWS KMS (the emulator) signs with for custom key store `cks`.
    pub async fn aws_access_key(&self, cks: &str) -> String {
        let stores = self.aws_stores().await;
        let store = stores
            .iter()
            .find(|s| s.custom_key_store_id() == Some(cks))
            .expect("AWS store");
        store
            .xks_proxy_configuration()
            .and_then(|c| c.access_key_id())
            .expect("access key id")
            .to_string()
    }

    /// The emulator's external key stores, as `DescribeCustomKeyStores` lists them.
    pub async fn aws_stores(&self) -> Vec<aws_sdk_kms::types::CustomKeyStoresListEntry> {
        self.app
            .describe_custom_key_stores()
            .send()
            .await
            .expect("DescribeCustomKeyStores")
            .custom_key_stores
            .unwrap_or_default()
    }
}

/// AWS's error code of a failed SDK call.
pub fn aws_code<E, R>(e: &aws_sdk_kms::error::SdkError<E, R>) -> String
where
    E: aws_sdk_kms::error::ProvideErrorMetadata + std::fmt::Debug,
    R: std::fmt::Debug,
{
    match e.as_service_error() {
        Some(s) => s.code().unwrap_or("").to_string(),
        None => format!("not a service error: {e:?}"),
    }
}

/// Calls `probe` until it answers `Ok` (every 50 ms, at most 60 s) and returns that;
/// panics with `what` and the last `Err` (what was seen) otherwise.
pub async fn eventually<T, F, Fut>(what: &str, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, String>>,
{
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        match probe().await {
            Ok(t) => return t,
            Err(seen) => assert!(std::time::Instant::now() < deadline, "{what}: {seen}"),
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// The admin API's answer to `GET path` once `done` holds for it.
pub async fn get_until(root: &AdminClient, path: &str, done: impl Fn(&Value) -> bool) -> Value {
    eventually(&format!("GET {path}"), || async {
        let v = expect_status(&root.get(path).await, 200);
        if done(&v) { Ok(v) } else { Err(v.to_string()) }
    })
    .await
}

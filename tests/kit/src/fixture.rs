//! The conformance fixture (config/examples/conformance.toml): one key store `acme` at
//! prefix `tenants/acme`, two credentials, four demo keys; and the swappable key source.

use std::path::Path;

use crate::paths::toml_str;

/// The store's name.
pub const STORE: &str = "acme";
/// The store's URI path prefix.
pub const PREFIX: &str = "tenants/acme";
/// The store's `XksProxyUriPath`.
pub const BASE: &str = "/tenants/acme/kms/xks/v1";
/// The load-balancer health path.
pub const LB_HEALTH: &str = "/tenants/acme/keyhold-health";
/// The health-check key's source name.
pub const HEALTH_KEY: &str = "acme-health";

/// Key with every usage.
pub const KEY_ALL: &str = "demo-key-1";
/// Key that only encrypts.
pub const KEY_ENCRYPT_ONLY: &str = "demo-encrypt-only";
/// Key that only decrypts.
pub const KEY_DECRYPT_ONLY: &str = "demo-decrypt-only";
/// Key with wrap/unwrap only.
pub const KEY_NO_CRYPTO: &str = "demo-no-crypto";

/// A SigV4 credential.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credential {
    /// Access key id.
    pub access_key_id: String,
    /// Secret access key.
    pub secret: String,
}

impl Credential {
    /// A credential.
    pub fn new(access_key_id: &str, secret: &str) -> Credential {
        Credential {
            access_key_id: access_key_id.into(),
            secret: secret.into(),
        }
    }

    /// The first credential of the conformance store (44-character secret).
    pub fn a() -> Credential {
        Credential::new(
            "7MSKH6YXF3BEX3H3APGWHMI42G",
            "R2waUCZNy/ulj/7eURO1g5oc8XXokuDrR53OzOURNaM=",
        )
    }

    /// The second credential of the conformance store (52-character secret).
    pub fn b() -> Credential {
        Credential::new(
            "OL4OMBO6E27Z2EWQK6UJYOBY",
            "UGsVhs7lY4k7WboReepYN22iuC4VZMQPO8Laxcey7H/ny27974Yu",
        )
    }
}

/// A declared HYOK key.
#[derive(Debug, Clone)]
pub struct KeyFixture {
    /// External key id.
    pub id: String,
    /// Usage names (`encrypt`, `decrypt`, `wrap`, `unwrap`).
    pub usage: Vec<String>,
    /// Whether the source key is enabled.
    pub enabled: bool,
}

impl KeyFixture {
    /// An enabled key.
    pub fn new(id: &str, usage: &[&str]) -> KeyFixture {
        KeyFixture {
            id: id.into(),
            usage: usage.iter().map(|u| u.to_string()).collect(),
            enabled: true,
        }
    }

    /// The same key, disabled in its source.
    pub fn disabled(mut self) -> KeyFixture {
        self.enabled = false;
        self
    }

    /// The conformance store's four keys.
    pub fn conformance() -> Vec<KeyFixture> {
        vec![
            KeyFixture::new(KEY_ALL, &["encrypt", "decrypt", "wrap", "unwrap"]),
            KeyFixture::new(KEY_ENCRYPT_ONLY, &["encrypt"]),
            KeyFixture::new(KEY_DECRYPT_ONLY, &["decrypt"]),
            KeyFixture::new(KEY_NO_CRYPTO, &["wrap", "unwrap"]),
        ]
    }

    /// The `[[stores.keys]]` table.
    pub fn toml(&self) -> String {
        let usage: Vec<String> = self.usage.iter().map(toml_str).collect();
        format!(
            "[[stores.keys]]\nid = {}\nusage = [{}]\nenabled = {}\n",
            toml_str(&self.id),
            usage.join(", "),
            self.enabled
        )
    }
}

/// A key source declaration: the body of `[sources.<name>]`, where `{dir}` stands for
/// the test's data directory. Swap it to run every test against another plugin.
#[derive(Debug, Clone)]
pub struct SourceFixture {
    /// The source's name (a key of `[sources]`).
    pub name: String,
    /// The lines of the `[sources.<name>]` table, `{dir}` = the data directory.
    pub body: String,
}

impl SourceFixture {
    /// A source named `name` with the given table body.
    pub fn new(name: &str, body: &str) -> SourceFixture {
        SourceFixture {
            name: name.into(),
            body: body.into(),
        }
    }

    /// The software `ctm` source with a generated master key file `{dir}/ctm.key`.
    pub fn ctm() -> SourceFixture {
        SourceFixture::ctm_named("ctm", "ctm.key")
    }

    /// A `ctm` source called `name` with master key file `{dir}/<key_file>`.
    pub fn ctm_named(name: &str, key_file: &str) -> SourceFixture {
        SourceFixture::new(
            name,
            &format!(
                "plugin = \"ctm\"\nconfig = {{ master_key_file = \"{{dir}}/{key_file}\", generate_master_key = true }}\n"
            ),
        )
    }

    /// The suite's default: `KEYHOLD_TEST_SOURCE_TOML` (`name` on its first line as
    /// `# source: <name>`, then the table body) when set, otherwise [`SourceFixture::ctm`].
    pub fn suite_default() -> SourceFixture {
        match std::env::var("KEYHOLD_TEST_SOURCE_TOML") {
            Ok(text) => {
                let name = text
                    .lines()
                    .next()
                    .and_then(|l| l.strip_prefix("# source:"))
                    .map(|n| n.trim().to_string())
                    .unwrap_or_else(|| "src".into());
                SourceFixture { name, body: text }
            }
            Err(_) => SourceFixture::ctm(),
        }
    }

    /// A source whose library is the given file (plugin name kept as `plugin`).
    pub fn library(name: &str, plugin: &str, library: &Path) -> SourceFixture {
        SourceFixture::new(
            name,
            &format!(
                "plugin = {}\nlibrary = {}\n",
                toml_str(plugin),
                toml_str(library.to_string_lossy())
            ),
        )
    }

    /// A source named `name`, of plugin `name`, whose library is the debug build's
    /// `file` (see [`crate::paths::library`]).
    pub fn built_library(name: &str, file: &str) -> SourceFixture {
        SourceFixture::library(name, name, &crate::paths::library(file))
    }

    /// The `[sources.<name>]` table for data directory `dir`.
    pub fn toml(&self, dir: &Path) -> String {
        format!(
            "[sources.{}]\n{}\n",
            toml_str(&self.name),
            self.body.replace("{dir}", &dir.to_string_lossy())
        )
    }
}

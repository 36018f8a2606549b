//! `keyhold keystore ...`: external key stores, named on the command line by id or
//! name.

use clap::Subcommand;
use http::Method;
use keyhold::api::stores::{CreatedStore, LinkRequest, NewStore, StorePatch, XksLocation};
use serde_json::json;

use super::{
    CliError, Result,
    client::seg,
    context::Ctx,
    credentials::{self, SecretOut},
    output::{self, out, outln, print_json},
};

/// `keyhold keystore ...`
#[derive(Subcommand, Debug)]
pub enum KeystoreCmd {
    /// Creates a key store and its first credential (written to --out)
    Create {
        /// Unique name of the key store
        name: String,
        /// Key source
        #[arg(long)]
        source: String,
        /// Health-check key in the source (usage encrypt,decrypt,wrap,unwrap)
        #[arg(long)]
        health_check_key: String,
        /// AWS account (default: none; admins only)
        #[arg(long)]
        account: Option<String>,
        /// URI path prefix (default: generated)
        #[arg(long)]
        prefix: Option<String>,
        /// Credentials kept at once (rotation evicts the oldest)
        #[arg(long)]
        max_credentials: Option<u32>,
        /// Audit successful XKS requests too
        #[arg(long)]
        success_audit: bool,
        /// Require mutual TLS on the XKS endpoint
        #[arg(long)]
        mtls: bool,
        #[command(flatten)]
        mtls_trust: MtlsArgs,
        /// AWS region (one of the account's regions; needed with --linked)
        #[arg(long)]
        region: Option<String>,
        /// Also create the external key store on AWS KMS (needs --account, --region
        /// and a location); AWS KMS first checks that it reaches this proxy
        #[arg(long)]
        linked: bool,
        /// Rotation schedule to assign once linked (with --linked)
        #[arg(long, value_name = "SCHEDULE", requires = "linked")]
        schedule: Option<String>,
        #[command(flatten)]
        location: LocationArgs,
        #[command(flatten)]
        secret: SecretOut,
    },
    /// Links an unlinked key store: creates its external key store on AWS KMS (--review
    /// shows what would be created, with your edits, and changes nothing)
    Link {
        /// The key store (id or name)
        store: String,
        /// Name on AWS KMS (renames the store here too)
        #[arg(long)]
        name: Option<String>,
        /// AWS region (one of the account's regions)
        #[arg(long)]
        region: Option<String>,
        #[command(flatten)]
        location: LocationArgs,
        /// Only show the networking details that linking would send
        #[arg(long)]
        review: bool,
    },
    /// Connects a linked key store on AWS KMS (follows CONNECTING to the end)
    Connect {
        /// The key store (id or name)
        store: String,
    },
    /// Disconnects a linked key store on AWS KMS (follows DISCONNECTING to the end)
    Disconnect {
        /// The key store (id or name)
        store: String,
    },
    /// Lists key stores
    List,
    /// Shows a key store
    Get {
        /// The key store (id or name)
        store: String,
    },
    /// Changes a key store (reads its ETag and sends If-Match, unless --if-match)
    Update {
        /// The key store (id or name)
        store: String,
        /// New name
        #[arg(long)]
        name: Option<String>,
        #[arg(long)]
        max_credentials: Option<u32>,
        #[arg(long)]
        health_check_key: Option<String>,
        #[arg(long, value_name = "BOOL")]
        success_audit: Option<bool>,
        #[arg(long, value_name = "BOOL")]
        mtls: Option<bool>,
        #[command(flatten)]
        mtls_trust: MtlsArgs,
        /// Drop the store's own client CA bundle (the listener's applies)
        #[arg(long, conflicts_with = "mtls_ca_file")]
        mtls_ca_default: bool,
        /// Drop the store's own CN list (the defaults apply)
        #[arg(long, conflicts_with = "mtls_cn")]
        mtls_cns_default: bool,
        /// AWS region (one of the account's regions; fixed once linked)
        #[arg(long)]
        region: Option<String>,
        #[command(flatten)]
        location: LocationArgs,
        /// The store version you read (the ETag); default: the current one
        #[arg(long, value_name = "VERSION")]
        if_match: Option<String>,
    },
    /// Deletes a key store (needs --confirm; refused while it has HYOK keys)
    Delete {
        /// The key store (id or name)
        store: String,
        /// Really delete it
        #[arg(long)]
        confirm: bool,
    },
    /// Blocks a key store: XKS answers InvalidStateException
    Block {
        /// The key store (id or name)
        store: String,
    },
    /// Unblocks a key store
    Unblock {
        /// The key store (id or name)
        store: String,
    },
    /// Shows a key store's XKS traffic over the last hour on the answering node:
    /// requests per second, p50/p99 latency and refusals by XKS error name, per
    /// sampling interval with requests
    Metrics {
        /// The key store (id or name)
        store: String,
    },
    /// The credential rotation schedule of a key store
    #[command(subcommand)]
    Schedule(super::schedules::StoreScheduleCmd),
}

/// Which client certificates a store with mutual TLS accepts.
#[derive(clap::Args, Debug, Default)]
pub struct MtlsArgs {
    /// PEM CA bundle client certificates must chain to (default: the XKS listener's
    /// xks.tls.client_ca_file); read from this local file, at most 64 KiB
    #[arg(long, value_name = "PATH")]
    mtls_ca_file: Option<std::path::PathBuf>,
    /// Accepted client certificate subject CN, repeatable, at most 20 (default: the
    /// listener's xks.tls.client_cn, else cks.kms.<region>.amazonaws.com)
    #[arg(long, value_name = "CN")]
    mtls_cn: Vec<String>,
}

impl MtlsArgs {
    /// The CA bundle's text, read from `--mtls-ca-file`.
    fn ca_pem(&self) -> Result<Option<String>> {
        self.mtls_ca_file
            .as_ref()
            .map(|path| {
                std::fs::read_to_string(path).map_err(|e| {
                    CliError::Usage(format!(
                        "cannot read --mtls-ca-file {}: {e}",
                        path.display()
                    ))
                })
            })
            .transpose()
    }
}

/// Where AWS KMS reaches a store: a public endpoint or a VPC endpoint service.
#[derive(clap::Args, Debug, Default)]
pub struct LocationArgs {
    /// Public XKS endpoint (https://FQDN[:port]) as AWS KMS reaches it
    #[arg(long, value_name = "URL", conflicts_with = "vpc_service")]
    public_endpoint: Option<String>,
    /// VPC endpoint service name (with --vpc-endpoint)
    #[arg(long, value_name = "NAME", requires = "vpc_endpoint")]
    vpc_service: Option<String>,
    /// VPC private DNS name (with --vpc-service)
    #[arg(long, value_name = "URL", requires = "vpc_service")]
    vpc_endpoint: Option<String>,
}

impl LocationArgs {
    /// The location given, if any.
    fn location(self) -> Option<XksLocation> {
        match (self.public_endpoint, self.vpc_service, self.vpc_endpoint) {
            (_, Some(service_name), Some(endpoint)) => Some(XksLocation::Vpc {
                service_name,
                endpoint,
            }),
            (Some(endpoint), _, _) => Some(XksLocation::Public { endpoint }),
            _ => None,
        }
    }
}

const COLUMNS: &[&str] = &[
    "id",
    "name",
    "source",
    "account",
    "uri_path_prefix",
    "health_check_key",
    "max_credentials",
    "blocked",
    "region",
    "aws",
    "version",
];

/// A store's id from its id or name.
pub async fn resolve(ctx: &Ctx, store: &str) -> Result<String> {
    let stores = ctx.get("/stores").await?;
    let all = stores.as_array().map_or(&[][..], Vec::as_slice);
    let found = all
        .iter()
        .find(|s| s["id"] == store)
        .or_else(|| all.iter().find(|s| s["name"] == store));
    match found {
        Some(s) => Ok(s["id"].as_str().unwrap_or(store).to_string()),
        None => Err(CliError::Refused {
            status: 404,
            code: "not_found".into(),
            message: format!(
                "no key store with id or name '{store}' (see `keyhold keystore list`)"
            ),
        }),
    }
}

/// The API path (`/stores/{id}`) of a store given by id or name.
pub async fn path(ctx: &Ctx, store: &str) -> Result<String> {
    Ok(format!("/stores/{}", seg(&resolve(ctx, store).await?)))
}

/// Runs a `keystore` command.
pub async fn run(ctx: Ctx, c: KeystoreCmd) -> Result<()> {
    match c {
        KeystoreCmd::Create {
            name,
            source,
            health_check_key,
            account,
            prefix,
            max_credentials,
            success_audit,
            mtls,
            mtls_trust,
            region,
            linked,
            schedule,
            location,
            secret,
        } => {
            secret.check()?;
            let mtls_ca_pem = mtls_trust.ca_pem()?;
            let body = NewStore {
                mtls_ca_pem,
                mtls_cns: mtls_trust.mtls_cn,
                name,
                account,
                source,
                uri_path_prefix: prefix,
                health_check_key,
                max_credentials,
                location: location.location().unwrap_or_default(),
                success_audit,
                mtls,
                region,
                linked,
                rotation_schedule: schedule,
            };
            let r = ctx.call_with(Method::POST, "/stores", &body).await?;
            let created: CreatedStore = r.parse()?;
            let shown = credentials::save(&created.credentials_file, &secret)?;
            if ctx.json() {
                let mut view = r.json.clone();
                view["credentials_file"] = json!(shown);
                print_json(&view);
            } else {
                out!("{}", output::object(&r.json["store"], &[]));
                outln!();
                credentials::print(&shown, &secret);
                if let Some(schedule) = r.json["rotation"]["schedule"].as_str() {
                    let next = output::cell("next_run_at", &r.json["rotation"]["next_run_at"]);
                    outln!("Rotation schedule:   {schedule} (next run {next})");
                }
            }
            Ok(())
        }
        KeystoreCmd::List => ctx.show_list("/stores", COLUMNS).await,
        KeystoreCmd::Get { store } => ctx.show(&path(&ctx, &store).await?).await,
        KeystoreCmd::Update {
            store,
            name,
            max_credentials,
            health_check_key,
            success_audit,
            mtls,
            mtls_trust,
            mtls_ca_default,
            mtls_cns_default,
            region,
            location,
            if_match,
        } => {
            let mtls_ca_pem = match mtls_ca_default {
                true => Some(String::new()),
                false => mtls_trust.ca_pem()?,
            };
            let mtls_cns = match (mtls_cns_default, mtls_trust.mtls_cn.is_empty()) {
                (true, _) => Some(Vec::new()),
                (false, true) => None,
                (false, false) => Some(mtls_trust.mtls_cn),
            };
            let body = StorePatch {
                mtls_ca_pem,
                mtls_cns,
                name,
                location: location.location(),
                region,
                health_check_key,
                max_credentials,
                success_audit,
                mtls,
                source: None,
                container: None,
            };
            update(&ctx, &store, &body, if_match).await
        }
        KeystoreCmd::Delete { store, confirm } => {
            let id = resolve(&ctx, &store).await?;
            let q = if confirm { "?confirm=true" } else { "" };
            let path = format!("/stores/{}{q}", seg(&id));
            match ctx.call(Method::DELETE, &path).await {
                Err(CliError::Refused {
                    status,
                    code,
                    message,
                }) if code == "confirmation_required" => Err(CliError::Refused {
                    status,
                    code,
                    message: format!("{message} (add --confirm)"),
                }),
                Err(e) => Err(e),
                Ok(_) => {
                    ctx.done(
                        &format!("Deleted key store {store} ({id})."),
                        &serde_json::Value::Null,
                    );
                    Ok(())
                }
            }
        }
        KeystoreCmd::Link {
            store,
            name,
            region,
            location,
            review,
        } => {
            let body = LinkRequest {
                name,
                location: location.location(),
                region,
            };
            let path = format!("{}/link", path(&ctx, &store).await?);
            let path = if review {
                format!("{path}/review")
            } else {
                path
            };
            let r = ctx.call_with(Method::POST, &path, &body).await?;
            ctx.object(&r.json);
            Ok(())
        }
        KeystoreCmd::Connect { store } => connection(&ctx, &store, "connect").await,
        KeystoreCmd::Disconnect { store } => connection(&ctx, &store, "disconnect").await,
        KeystoreCmd::Block { store } => {
            let path = format!("{}/block", path(&ctx, &store).await?);
            ctx.act(Method::POST, &path, &format!("Blocked key store {store}."))
                .await
        }
        KeystoreCmd::Schedule(c) => super::schedules::run_store(&ctx, c).await,
        KeystoreCmd::Metrics { store } => super::store_metrics::run(&ctx, &store).await,
        KeystoreCmd::Unblock { store } => {
            let path = format!("{}/unblock", path(&ctx, &store).await?);
            ctx.act(
                Method::POST,
                &path,
                &format!("Unblocked key store {store}."),
            )
            .await
        }
    }
}

/// Connects or disconnects a linked store; fails (exit code) when AWS KMS leaves it
/// `FAILED`, naming AWS's connection error code.
async fn connection(ctx: &Ctx, store: &str, action: &str) -> Result<()> {
    let path = format!("{}/{action}", path(ctx, store).await?);
    let r = ctx.call(Method::POST, &path).await?;
    ctx.object(&r.json);
    let state = r.json["aws"]["connection_state"].as_str().unwrap_or("");
    if state == "FAILED" {
        let code = r.json["aws"]["connection_error_code"]
            .as_str()
            .unwrap_or("unknown");
        return Err(CliError::Refused {
            status: 200,
            code: "connection_failed".into(),
            message: format!(
                "AWS KMS could not connect key store {store}: ConnectionErrorCode {code}"
            ),
        });
    }
    Ok(())
}

/// Sends a store update with `If-Match`: the version given, else the current ETag.
async fn update(ctx: &Ctx, store: &str, body: &StorePatch, if_match: Option<String>) -> Result<()> {
    if body.fields().is_empty() {
        return Err(CliError::Usage(
            "nothing to change: pass --name, --max-credentials, --health-check-key, \
             --success-audit, --mtls or an endpoint"
                .into(),
        ));
    }
    let path = path(ctx, store).await?;
    let tag = match if_match {
        Some(v) => format!("\"{}\"", v.trim().trim_matches('"')),
        None => ctx
            .call(Method::GET, &path)
            .await?
            .header("etag")
            .ok_or_else(|| CliError::Server("the server sent no ETag for the store".into()))?,
    };
    let r = ctx
        .client
        .send(Method::PATCH, &path, Some(body), &[("if-match", tag)])
        .await?;
    ctx.object(&r.json);
    Ok(())
}

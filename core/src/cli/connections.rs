//! `keyhold connection aws ...`: the AWS connections keyhold reaches AWS KMS (and STS)
//! with; the secret is read from a variable or a file, never from the command line.
//! `keyhold connection hsm ...` ([`hsm`]): the PKCS#11 connections luna sources use.

use clap::{Subcommand, ValueEnum};
use http::Method;
use keyhold::api::connections::{AwsConnectionTest, NewAwsConnection, StsRegionalEndpoints};
use zeroize::Zeroizing;

use super::{CliError, Result, client::seg, context::Ctx};

mod hsm;

/// `keyhold connection ...`
#[derive(Subcommand, Debug)]
pub enum ConnectionCmd {
    /// AWS connections (admins)
    #[command(subcommand)]
    Aws(AwsConnectionCmd),
    /// HSM connections: PKCS#11 module, token, PIN (admins)
    #[command(subcommand)]
    Hsm(hsm::HsmConnectionCmd),
}

/// `keyhold connection aws ...`
#[derive(Subcommand, Debug)]
pub enum AwsConnectionCmd {
    /// Creates an AWS connection (the secret is sealed at rest, never shown again)
    Create {
        /// The connection's name
        name: String,
        /// The IAM access key id
        #[arg(long)]
        access_key_id: String,
        /// Environment variable holding the secret access key
        #[arg(long, value_name = "VAR", conflicts_with = "secret_access_key_file")]
        secret_access_key_env: Option<String>,
        /// File holding the secret access key
        #[arg(long, value_name = "FILE")]
        secret_access_key_file: Option<std::path::PathBuf>,
        /// A role to assume (through STS) with these keys
        #[arg(long, value_name = "ARN")]
        role_arn: Option<String>,
        /// AWS KMS endpoint (default: https://kms.<region>.amazonaws.com)
        #[arg(long, value_name = "URL")]
        endpoint_url: Option<String>,
        /// AWS STS endpoint (default: by --sts-regional-endpoints)
        #[arg(long, value_name = "URL")]
        sts_endpoint_url: Option<String>,
        /// STS endpoint: the region's own, or the global sts.amazonaws.com
        #[arg(long, value_enum, default_value = "regional")]
        sts_regional_endpoints: StsSetting,
        /// PEM bundle of the CAs trusted for these endpoints (default: the system's)
        #[arg(long, value_name = "FILE")]
        ca_file: Option<String>,
    },
    /// Lists AWS connections
    List,
    /// Shows an AWS connection
    Get {
        /// The connection's name
        name: String,
    },
    /// Deletes an AWS connection (refused while an account uses it)
    Delete {
        /// The connection's name
        name: String,
    },
    /// Tests an AWS connection with a real AWS KMS call
    Test {
        /// The connection's name
        name: String,
        /// The region whose AWS KMS is called (default us-east-1)
        #[arg(long)]
        region: Option<String>,
    },
}

/// How STS is reached.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum StsSetting {
    /// The region's own STS endpoint
    Regional,
    /// The global sts.amazonaws.com
    Legacy,
}

const COLUMNS: &[&str] = &[
    "name",
    "access_key_id",
    "role_arn",
    "endpoint_url",
    "created_at",
];

/// The secret from a variable or a file (one of them is required).
fn secret(env: Option<String>, file: Option<std::path::PathBuf>) -> Result<Zeroizing<String>> {
    match (env, file) {
        (Some(var), _) => std::env::var(&var)
            .map(Zeroizing::new)
            .map_err(|_| CliError::Usage(format!("environment variable {var} is not set"))),
        (None, Some(path)) => std::fs::read_to_string(&path)
            .map(|s| Zeroizing::new(s.trim().to_string()))
            .map_err(|e| CliError::Usage(format!("cannot read {}: {e}", path.display()))),
        (None, None) => Err(CliError::Usage(
            "give the secret access key with --secret-access-key-env or --secret-access-key-file"
                .into(),
        )),
    }
}

/// Runs a `connection` command.
pub async fn run(ctx: Ctx, c: ConnectionCmd) -> Result<()> {
    let c = match c {
        ConnectionCmd::Aws(c) => c,
        ConnectionCmd::Hsm(c) => return hsm::run(ctx, c).await,
    };
    match c {
        AwsConnectionCmd::Create {
            name,
            access_key_id,
            secret_access_key_env,
            secret_access_key_file,
            role_arn,
            endpoint_url,
            sts_endpoint_url,
            sts_regional_endpoints,
            ca_file,
        } => {
            let body = NewAwsConnection {
                name,
                access_key_id,
                secret_access_key: secret(secret_access_key_env, secret_access_key_file)?,
                role_arn,
                endpoint_url,
                sts_endpoint_url,
                sts_regional_endpoints: match sts_regional_endpoints {
                    StsSetting::Regional => StsRegionalEndpoints::Regional,
                    StsSetting::Legacy => StsRegionalEndpoints::Legacy,
                },
                ca_file,
            };
            let r = ctx
                .call_with(Method::POST, "/connections/aws", &body)
                .await?;
            ctx.object(&r.json);
            Ok(())
        }
        AwsConnectionCmd::List => ctx.show_list("/connections/aws", COLUMNS).await,
        AwsConnectionCmd::Get { name } => {
            ctx.show(&format!("/connections/aws/{}", seg(&name))).await
        }
        AwsConnectionCmd::Delete { name } => {
            let path = format!("/connections/aws/{}", seg(&name));
            ctx.act(
                Method::DELETE,
                &path,
                &format!("Deleted AWS connection {name}."),
            )
            .await
        }
        AwsConnectionCmd::Test { name, region } => {
            let path = format!("/connections/aws/{}/test", seg(&name));
            let r = ctx
                .call_with(Method::POST, &path, &AwsConnectionTest { region })
                .await?;
            report_test(&ctx, "AWS", &name, &r.json)
        }
    }
}

/// Prints a connection test's outcome; `Failed` exits 3 with the reason.
fn report_test(ctx: &Ctx, kind: &str, name: &str, answer: &serde_json::Value) -> Result<()> {
    ctx.object(answer);
    if answer["status"] != "Ready" {
        return Err(CliError::Refused {
            status: 200,
            code: "connection_failed".into(),
            message: format!(
                "{kind} connection {name} is not usable: {}",
                answer["reason"].as_str().unwrap_or("no reason given")
            ),
        });
    }
    Ok(())
}

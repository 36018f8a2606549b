//! Where a password comes from: standard input or an environment variable, never the
//! command line.

use std::io::BufRead;

use clap::Args;

use super::{CliError, Result};

/// Where a password comes from: never the command line.
#[derive(Args, Debug)]
pub struct PasswordSource {
    /// Read the password from the first line of standard input
    #[arg(long, conflicts_with = "password_env")]
    pub password_stdin: bool,
    /// Read the password from this environment variable
    #[arg(long, value_name = "VAR")]
    pub password_env: Option<String>,
}

impl PasswordSource {
    /// The password, read from where the flags say.
    pub fn read(&self) -> Result<String> {
        if let Some(var) = &self.password_env {
            return env_var(var);
        }
        if self.password_stdin {
            let mut line = String::new();
            std::io::stdin()
                .lock()
                .read_line(&mut line)
                .map_err(|e| CliError::Usage(format!("cannot read standard input: {e}")))?;
            let pw = line.trim_end_matches(['\n', '\r']).to_string();
            if pw.is_empty() {
                return Err(CliError::Usage("no password on standard input".into()));
            }
            return Ok(pw);
        }
        Err(CliError::Usage(
            "pass --password-stdin or --password-env VAR (passwords never go on the command line)"
                .into(),
        ))
    }
}

/// A non-empty environment variable's value.
fn env_var(var: &str) -> Result<String> {
    match std::env::var(var) {
        Ok(v) if !v.is_empty() => Ok(v),
        _ => Err(CliError::Usage(format!(
            "environment variable {var} is not set"
        ))),
    }
}

//! The CLI's command tree against its route table (no server: clap parses only).

use clap::{Parser, error::ErrorKind};

use super::routes::ROUTES;

/// `keyhold <words> --help` parses to a help display (the command exists).
fn help_of(words: &str) -> Result<(), String> {
    let args = std::iter::once("keyhold")
        .chain(words.split_whitespace())
        .chain(std::iter::once("--help"));
    match crate::Cli::try_parse_from(args) {
        Err(e) if e.kind() == ErrorKind::DisplayHelp => Ok(()),
        Err(e) => Err(format!("{words}: {e}")),
        Ok(_) => Err(format!("{words}: parsed without showing help")),
    }
}

#[test]
fn every_route_entry_names_an_existing_command() {
    for (method, path, words) in ROUTES {
        help_of(words).unwrap_or_else(|e| panic!("{method} {path}: {e}"));
    }
    assert!(help_of("connection hsm frobnicate").is_err());
}

#[test]
fn route_entries_are_unique_and_well_formed() {
    let mut seen = std::collections::BTreeSet::new();
    for (method, path, _) in ROUTES {
        assert!(
            ["GET", "POST", "PUT", "PATCH", "DELETE"].contains(method),
            "{method} {path}"
        );
        assert!(path.starts_with("/api/v1/"), "{path}");
        assert!(seen.insert((method, path)), "{method} {path} twice");
    }
}

#[test]
fn token_ids_starting_with_a_hyphen_are_ids_not_options() {
    // Token ids are base64url: one in 64 starts with `-`.
    let parsed = crate::Cli::try_parse_from(["keyhold", "token", "revoke", "-Xb3_k9aQ1zZ"]);
    assert!(parsed.is_ok(), "{:?}", parsed.err());
    assert!(crate::Cli::try_parse_from(["keyhold", "token", "revoke"]).is_err());
}

//! Records the git commit the binary is built from, for `keyhold --version`:
//! `KEYHOLD_GIT_COMMIT` when set (a build outside git: a source tarball, the container
//! build, whose context has no `.git`), else `git rev-parse --short=12 HEAD` with
//! `-dirty` when tracked files differ from it, else `unknown`. Never fails the build.

use std::{path::PathBuf, process::Command};

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8(out.stdout).ok()?;
    let text = text.trim();
    (!text.is_empty()).then(|| text.to_string())
}

/// Whether tracked files differ from HEAD (`None` when git cannot tell). `git diff`
/// compares contents (a file touched but unchanged does not count) and, with optional
/// locks off, never rewrites the index this script watches.
fn dirty() -> Option<bool> {
    let status = Command::new("git")
        .args(["diff", "--quiet", "HEAD", "--"])
        .env("GIT_OPTIONAL_LOCKS", "0")
        .status()
        .ok()?;
    match status.code() {
        Some(0) => Some(false),
        Some(1) => Some(true),
        _ => None,
    }
}

/// Tells cargo to run this script again when HEAD moves (a checkout, a commit) or this
/// crate's sources change (cargo rebuilds the crate then anyway). The index is not
/// watched: `git status` refreshes it, and every refresh would rebuild keyhold. So
/// `-dirty` tells whether tracked files differed when the script last ran: edits
/// elsewhere in the workspace count from the next commit or change of `core/src` on.
fn watch_git() {
    // Only files that exist: cargo runs the script on every build for a missing one.
    let watch = |path: String| {
        if std::path::Path::new(&path).exists() {
            println!("cargo:rerun-if-changed={path}");
        }
    };
    let mut files = vec!["HEAD".to_string(), "packed-refs".to_string()];
    files.extend(git(&["symbolic-ref", "-q", "HEAD"]));
    for file in files {
        if let Some(path) = git(&["rev-parse", "--git-path", &file]) {
            watch(path);
        }
    }
    let src = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_default()).join("src");
    println!("cargo:rerun-if-changed={}", src.display());
}

/// The commit, and where it came from (`env`, `git` or `none`).
fn commit() -> (String, &'static str) {
    if let Ok(given) = std::env::var("KEYHOLD_GIT_COMMIT") {
        let given = given.trim();
        if !given.is_empty() {
            return (given.to_string(), "env");
        }
    }
    let Some(hash) = git(&["rev-parse", "--short=12", "HEAD"]) else {
        return ("unknown".into(), "none");
    };
    watch_git();
    match dirty() {
        Some(true) => (format!("{hash}-dirty"), "git"),
        _ => (hash, "git"),
    }
}

fn main() {
    println!("cargo:rerun-if-env-changed=KEYHOLD_GIT_COMMIT");
    println!("cargo:rerun-if-changed=build.rs");
    let (commit, from) = commit();
    // Printable ASCII only: it lands in a one-line version string.
    let commit: String = commit
        .chars()
        .filter(|c| c.is_ascii_graphic())
        .take(64)
        .collect();
    let commit = if commit.is_empty() {
        "unknown".into()
    } else {
        commit
    };
    println!("cargo:rustc-env=KEYHOLD_GIT_COMMIT={commit}");
    println!("cargo:rustc-env=KEYHOLD_GIT_COMMIT_FROM={from}");
}

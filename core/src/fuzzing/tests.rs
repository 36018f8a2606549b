//! Replays every file of the fuzz targets' checked-in corpora (`fuzz/corpus/<target>/`,
//! the minimized corpora and every crash input found) through the targets' entry
//! functions, on stable, in the ordinary test run: none may panic.

use std::path::PathBuf;

fn corpus_dir(target: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/corpus")
        .join(target)
}

fn replay(target: &str) -> usize {
    let dir = corpus_dir(target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.expect("corpus entry").path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    for file in &files {
        let input = std::fs::read(file).expect("corpus file");
        let outcome = std::panic::catch_unwind(|| super::run(target, &input));
        assert!(outcome.is_ok(), "{target}: {} panics", file.display());
    }
    files.len()
}

#[test]
fn sigv4_corpus_replays_without_panic() {
    assert!(replay("sigv4") > 0);
}

#[test]
fn xks_path_corpus_replays_without_panic() {
    assert!(replay("xks_path") > 0);
}

#[test]
fn xks_body_corpus_replays_without_panic() {
    assert!(replay("xks_body") > 0);
}

#[test]
fn admin_json_corpus_replays_without_panic() {
    assert!(replay("admin_json") > 0);
}

#[test]
fn every_target_has_a_corpus() {
    for target in super::TARGETS {
        assert!(corpus_dir(target).is_dir(), "no corpus for {target}");
    }
}

/// The signed seeds (fuzz/seeds/make_seeds.py) verify, so the fuzzer starts from
/// accepted requests and reaches the signature comparison.
#[test]
fn signed_sigv4_seeds_verify() {
    let dir = corpus_dir("sigv4");
    let mut signed = 0;
    for entry in std::fs::read_dir(&dir).expect("sigv4 corpus") {
        let path = entry.expect("corpus entry").path();
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        if name.starts_with("seed-signed-") || name == "seed-query" {
            let input = std::fs::read(&path).expect("seed");
            assert_eq!(super::sigv4_outcome(&input), Some(Ok(())), "{name}");
            signed += 1;
        }
    }
    assert_eq!(signed, 6);
}

//! Replays every saved fuzz input (`fuzz/corpus/<target>/`: the seeds and every input that
//! once broke something) through its target's check, on stable, in the ordinary test suite.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::PathBuf;

fn corpus_dir(target: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/corpus")
        .join(target)
}

fn replay(target: &str) {
    let (_, check) = ferry_fuzz_checks::TARGETS
        .iter()
        .find(|(name, _)| *name == target)
        .expect("a known target");
    let dir = corpus_dir(target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
        .map(|entry| entry.expect("a directory entry").path())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "{} has no inputs", dir.display());
    let mut failed = Vec::new();
    for file in &files {
        let data = std::fs::read(file).unwrap_or_else(|e| panic!("cannot read {}: {e}", file.display()));
        if catch_unwind(AssertUnwindSafe(|| check(&data))).is_err() {
            failed.push(file.display().to_string());
        }
    }
    assert!(
        failed.is_empty(),
        "{target}: {} of {} inputs fail: {failed:#?}",
        failed.len(),
        files.len()
    );
}

#[test]
fn every_target_has_a_corpus() {
    for (target, _) in ferry_fuzz_checks::TARGETS {
        assert!(corpus_dir(target).is_dir(), "no corpus for {target}");
    }
}

#[test]
fn config_loader_corpus() {
    replay("config_loader");
}

#[test]
fn template_corpus() {
    replay("template");
}

#[test]
fn json_line_corpus() {
    replay("json_line");
}

#[test]
fn disk_record_corpus() {
    replay("disk_record");
}

/// The shipped configurations load: proof that the check links every component they use, so
/// the fuzzer explores the components' own options rather than "unknown type".
#[test]
fn the_shipped_configurations_load() {
    for name in [
        "example-demo.toml",
        "packaging-ferry.toml",
        "kubernetes-ferry.toml",
        "interpolation.toml",
    ] {
        let path = corpus_dir("config_loader").join(name);
        let text = std::fs::read_to_string(&path).expect("a seed");
        let env = |name: &str| {
            (name == "KAFKA_BROKERS"
                || name == "BROKERS"
                || name == "SET"
                || name == "NUMBER"
                || name == "REFERENCE"
                || name == "EMPTY")
                .then(|| "1".to_owned())
        };
        if let Err(e) = ferry_config::load_str(&path, &text, &env) {
            panic!("{name}: {e}");
        }
    }
}

//! Replays the fuzz corpus (`fuzz/corpus/<target>/`) and the inputs that once made a target fail
//! (`fuzz/regressions/<target>/`) through the targets' own bodies (`fuzz/src/lib.rs`, included
//! here), so that `cargo test` on stable guards what fuzzing found. `scripts/fuzz` runs the fuzzer.

#[path = "../../../fuzz/src/lib.rs"]
mod bodies;

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// A generous guard: in a debug build an input takes milliseconds (the fuzzer allows 10 s).
const PER_INPUT: Duration = Duration::from_secs(20);

/// The inputs of `target` in the folders `dirs` of `fuzz/`.
fn inputs(target: &str, dirs: &[&str]) -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz");
    let mut files: Vec<PathBuf> = dirs
        .iter()
        .filter_map(|dir| std::fs::read_dir(root.join(dir).join(target)).ok())
        .flatten()
        .map(|entry| entry.expect("a corpus entry").path())
        .collect();
    files.sort();
    files
}

/// Runs every input of `target`'s corpus and regressions through its body; fails naming each
/// input that panicked or took too long.
fn replay(target: &str) {
    let (_, body) = bodies::TARGETS
        .into_iter()
        .find(|(name, _)| *name == target)
        .expect("a target of that name");
    let files = inputs(target, &["corpus", "regressions"]);
    assert!(!files.is_empty(), "no inputs for fuzz target {target}");
    let mut failures = Vec::new();
    for file in &files {
        let data = std::fs::read(file).expect("a readable corpus file");
        let start = Instant::now();
        if let Err(panic) = catch_unwind(AssertUnwindSafe(|| body(&data))) {
            let message = (panic.downcast_ref::<String>().map(String::as_str))
                .or_else(|| panic.downcast_ref::<&str>().copied())
                .unwrap_or("a panic");
            failures.push(format!("{}: {message}", file.display()));
        }
        let took = start.elapsed();
        if took > PER_INPUT {
            failures.push(format!("{}: took {took:?}", file.display()));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} inputs of fuzz target {target} failed:\n{}",
        failures.len(),
        files.len(),
        failures.join("\n")
    );
}

#[test]
fn loader_corpus() {
    replay("loader");
}

#[test]
fn engine_corpus() {
    replay("engine");
}

#[test]
fn engine_template_corpus() {
    replay("engine_template");
}

#[test]
fn nflog_corpus() {
    replay("nflog");
}

#[test]
fn netlink_ack_corpus() {
    replay("netlink_ack");
}

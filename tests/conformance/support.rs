//! Reading the conformance suite; shared by the engine's and the kernel's conformance tests
//! (included with `#[path]`).

#![allow(dead_code)]

use palisade_analyze::Probe;
use palisade_model::{ClusterState, Loader, Protocol};
use std::path::{Path, PathBuf};

/// One expected truth table.
pub struct Table {
    pub probe: Probe,
    pub columns: Vec<String>,
    pub rows: Vec<(String, Vec<bool>)>,
}

pub fn suite_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/conformance")
}

/// Every step folder of every case, in order.
pub fn steps() -> Vec<PathBuf> {
    let sorted_dirs = |dir: &Path| {
        let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|e| e.unwrap().path())
            .filter(|p| p.is_dir())
            .collect();
        v.sort();
        v
    };
    let cases = sorted_dirs(&suite_dir().join("cases"));
    assert!(cases.len() >= 50, "the suite has {} cases", cases.len());
    cases
        .iter()
        .flat_map(|case| {
            let steps = sorted_dirs(case);
            assert!(!steps.is_empty(), "{}: no steps", case.display());
            steps
        })
        .collect()
}

/// The cluster of a step: base.yaml, with the step's objects replacing base objects of the same name.
pub fn load_step(step: &Path) -> ClusterState {
    let mut loader = Loader::new().replace_duplicates(true);
    loader.load_path(&suite_dir().join("base.yaml"));
    let mut files: Vec<PathBuf> = std::fs::read_dir(step)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| matches!(p.extension().and_then(|e| e.to_str()), Some("yaml" | "yml")))
        .collect();
    files.sort();
    for f in files {
        loader.load_path(&f);
    }
    let (state, diags) = loader.finish();
    let errors: Vec<String> = diags
        .iter()
        .filter(|d| d.is_error())
        .map(|d| d.to_string())
        .collect();
    assert!(
        errors.is_empty(),
        "{}: invalid input:\n{}",
        step.display(),
        errors.join("\n")
    );
    state
}

/// The expected tables of a step (`expected.txt`, the `palisade matrix -o txt` format).
pub fn expected(step: &Path) -> Vec<Table> {
    let path = step.join("expected.txt");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut tables: Vec<Table> = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let at = || format!("{}:{}", path.display(), n + 1);
        let tokens: Vec<&str> = line.split_whitespace().collect();
        match tokens.as_slice() {
            [] => {}
            ["#", "probe", port, proto] => tables.push(Table {
                probe: Probe {
                    port: port
                        .parse()
                        .unwrap_or_else(|_| panic!("{}: bad port", at())),
                    protocol: proto
                        .parse::<Protocol>()
                        .unwrap_or_else(|e| panic!("{}: {e}", at())),
                },
                columns: Vec::new(),
                rows: Vec::new(),
            }),
            [first, ..] if first.starts_with('#') => {}
            ["-", columns @ ..] => {
                let t = tables
                    .last_mut()
                    .unwrap_or_else(|| panic!("{}: header before probe", at()));
                t.columns = columns.iter().map(|c| c.to_string()).collect();
            }
            [source, cells @ ..] => {
                let t = tables
                    .last_mut()
                    .unwrap_or_else(|| panic!("{}: row before probe", at()));
                assert_eq!(cells.len(), t.columns.len(), "{}: row width", at());
                let cells = cells
                    .iter()
                    .map(|c| match *c {
                        "." => true,
                        "X" => false,
                        other => panic!("{}: bad cell {other:?}", at()),
                    })
                    .collect();
                t.rows.push((source.to_string(), cells));
            }
        }
    }
    assert!(!tables.is_empty(), "{}: no probes", path.display());
    for t in &tables {
        assert_eq!(
            t.rows.len(),
            t.columns.len(),
            "{}: tables must be square",
            path.display()
        );
    }
    tables
}

//! The conformance suite (`tests/conformance/`, written from the upstream Kubernetes e2e `Netpol`
//! scenarios): for every case and step, the engine's matrix must equal the expected truth tables.

use palisade_analyze::{Matrix, Probe, Scope};
use palisade_model::{Loader, Protocol};
use palisade_policy::{AddrCache, Direction, Engine};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// One expected truth table.
struct Table {
    probe: Probe,
    columns: Vec<String>,
    rows: Vec<(String, Vec<bool>)>,
}

fn suite_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/conformance")
}

fn parse_expected(path: &Path) -> Vec<Table> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut tables: Vec<Table> = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let where_ = || format!("{}:{}", path.display(), n + 1);
        let tokens: Vec<&str> = line.split_whitespace().collect();
        match tokens.as_slice() {
            [] => {}
            ["#", "probe", port, proto] => tables.push(Table {
                probe: Probe {
                    port: port
                        .parse()
                        .unwrap_or_else(|_| panic!("{}: bad port", where_())),
                    protocol: proto
                        .parse::<Protocol>()
                        .unwrap_or_else(|e| panic!("{}: {e}", where_())),
                },
                columns: Vec::new(),
                rows: Vec::new(),
            }),
            [first, ..] if first.starts_with('#') => {}
            ["-", columns @ ..] => {
                let t = tables
                    .last_mut()
                    .unwrap_or_else(|| panic!("{}: header before probe", where_()));
                t.columns = columns.iter().map(|c| c.to_string()).collect();
            }
            [source, cells @ ..] => {
                let t = tables
                    .last_mut()
                    .unwrap_or_else(|| panic!("{}: row before probe", where_()));
                assert_eq!(cells.len(), t.columns.len(), "{}: row width", where_());
                let cells = cells
                    .iter()
                    .map(|c| match *c {
                        "." => true,
                        "X" => false,
                        other => panic!("{}: bad cell {other:?}", where_()),
                    })
                    .collect();
                t.rows.push((source.to_string(), cells));
            }
        }
    }
    tables
}

fn manifests(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            matches!(
                p.extension().and_then(|e| e.to_str()),
                Some("yaml" | "yml" | "json")
            )
        })
        .collect();
    files.sort();
    files
}

/// Runs one step; returns the mismatching cells, described.
fn run_step(base: &Path, step: &Path) -> Vec<String> {
    let mut loader = Loader::new().replace_duplicates(true);
    loader.load_path(base);
    for f in manifests(step) {
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
    let engine = Engine::new(Arc::new(state));
    let pods = Matrix::pods_in(&engine, &Scope::All);
    let tables = parse_expected(&step.join("expected.txt"));
    assert!(
        !tables.is_empty(),
        "{}: no probes in expected.txt",
        step.display()
    );
    let probes: Vec<Probe> = tables.iter().map(|t| t.probe).collect();
    let matrix = Matrix::compute(&engine, pods, &probes);
    let names: Vec<String> = (0..matrix.pods.len()).map(|i| matrix.pod_name(i)).collect();
    let position = |name: &str| {
        names
            .iter()
            .position(|n| n == name)
            .unwrap_or_else(|| panic!("{}: unknown pod {name}", step.display()))
    };
    let mut mismatches = Vec::new();
    // What the dataplane compiles must decide exactly like the matrix, pair by pair.
    let mut cache = AddrCache::default();
    let compiled: Vec<_> = (0..engine.class_count())
        .map(|c| engine.compile_class(c, &mut cache))
        .collect();
    let state = engine.state();
    for (pi, table) in tables.iter().enumerate() {
        let (port, protocol) = (table.probe.port, table.probe.protocol);
        for (i, &src) in matrix.pods.iter().enumerate() {
            for (j, &dst) in matrix.pods.iter().enumerate() {
                if i == j {
                    continue;
                }
                let egress = compiled[engine.class_of(src)].allows(
                    Direction::Egress,
                    state.pods[dst].ip,
                    port,
                    protocol,
                );
                let ingress = compiled[engine.class_of(dst)].allows(
                    Direction::Ingress,
                    state.pods[src].ip,
                    port,
                    protocol,
                );
                if (egress && ingress) != matrix.allowed(pi, i, j) {
                    mismatches.push(format!(
                        "{}: probe {}: {} -> {}: compiled rules disagree with the matrix",
                        step.display(),
                        table.probe,
                        names[i],
                        names[j]
                    ));
                }
            }
        }
    }
    for (pi, table) in tables.iter().enumerate() {
        assert_eq!(
            table.rows.len(),
            table.columns.len(),
            "{}: table must be square",
            step.display()
        );
        for (src, cells) in &table.rows {
            for (dst, &expected) in table.columns.iter().zip(cells) {
                let got = matrix.allowed(pi, position(src), position(dst));
                if got != expected {
                    mismatches.push(format!(
                        "{}: probe {}: {src} -> {dst}: expected {}, engine says {}",
                        step.display(),
                        table.probe,
                        if expected { "allowed" } else { "denied" },
                        if got { "allowed" } else { "denied" },
                    ));
                }
            }
        }
    }
    mismatches
}

#[test]
fn engine_matches_every_conformance_case() {
    let dir = suite_dir();
    let base = dir.join("base.yaml");
    let mut cases: Vec<PathBuf> = std::fs::read_dir(dir.join("cases"))
        .expect("tests/conformance/cases exists")
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    cases.sort();
    assert!(cases.len() >= 50, "the suite has {} cases", cases.len());
    let mut steps = 0;
    let mut mismatches = Vec::new();
    for case in &cases {
        let mut case_steps: Vec<PathBuf> = std::fs::read_dir(case)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.is_dir())
            .collect();
        case_steps.sort();
        assert!(!case_steps.is_empty(), "{}: no steps", case.display());
        for step in case_steps {
            steps += 1;
            mismatches.extend(run_step(&base, &step));
        }
    }
    assert!(
        mismatches.is_empty(),
        "{} mismatching cells over {steps} steps:\n{}",
        mismatches.len(),
        mismatches.join("\n")
    );
}

//! The conformance suite (`tests/conformance/`, written from the upstream Kubernetes e2e `Netpol`
//! scenarios): for every case and step, the engine's matrix must equal the expected truth tables, and
//! the rule sets compiled for the dataplane must decide every pair the same way.

#[path = "../../../tests/conformance/support.rs"]
mod support;

use palisade_analyze::{Matrix, Probe, Scope};
use palisade_model::IdVec;
use palisade_policy::{AddrCache, Class, Direction, Engine};
use std::path::Path;
use std::sync::Arc;

/// Runs one step; returns the mismatching cells, described.
fn run_step(step: &Path) -> Vec<String> {
    let engine = Engine::new(Arc::new(support::load_step(step)));
    let tables = support::expected(step);
    let probes: Vec<Probe> = tables.iter().map(|t| t.probe).collect();
    let matrix = Matrix::compute(&engine, Matrix::pods_in(&engine, &Scope::All), &probes);
    let names: Vec<String> = (0..matrix.pods.len()).map(|i| matrix.pod_name(i)).collect();
    let position = |name: &str| {
        names
            .iter()
            .position(|n| n == name)
            .unwrap_or_else(|| panic!("{}: unknown pod {name}", step.display()))
    };
    let mut mismatches = Vec::new();
    for (pi, table) in tables.iter().enumerate() {
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
    // What the dataplane compiles must decide exactly like the matrix, pair by pair.
    let mut cache = AddrCache::default();
    let compiled: IdVec<Class, _> = (engine.class_ids())
        .map(|c| engine.compile_class(c, &mut cache))
        .collect();
    let state = engine.state();
    for (pi, probe) in probes.iter().enumerate() {
        for (i, &src) in matrix.pods.iter().enumerate() {
            for (j, &dst) in matrix.pods.iter().enumerate() {
                if i == j {
                    continue;
                }
                let (port, protocol) = (probe.port, probe.protocol);
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
                        "{}: probe {probe}: {} -> {}: compiled rules disagree with the matrix",
                        step.display(),
                        names[i],
                        names[j]
                    ));
                }
            }
        }
    }
    mismatches
}

#[test]
fn engine_matches_every_conformance_case() {
    let steps = support::steps();
    let mismatches: Vec<String> = steps.iter().flat_map(|s| run_step(s)).collect();
    assert!(
        mismatches.is_empty(),
        "{} mismatching cells over {} steps:\n{}",
        mismatches.len(),
        steps.len(),
        mismatches.join("\n")
    );
}

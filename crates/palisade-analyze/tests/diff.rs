//! `diff` against the conformance suite (`tests/conformance/`): for consecutive steps of a case,
//! and from the base cluster (no policy: everything allowed) to each case's first step, the
//! connectivity the diff reports added and removed must be exactly where the expected truth tables
//! differ, probe by probe.

#[path = "../../../tests/conformance/support.rs"]
mod support;

use palisade_analyze::diff::{diff, Change, Report};
use palisade_analyze::{Probe, Scope};
use palisade_model::{ClusterState, Loader};
use palisade_policy::Engine;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Per (probe, source, destination), whether it is allowed.
type Truth = BTreeMap<(Probe, String, String), bool>;

fn truth(tables: &[support::Table]) -> Truth {
    let mut out = Truth::new();
    for t in tables {
        for (src, cells) in &t.rows {
            for (dst, &allowed) in t.columns.iter().zip(cells) {
                if src != dst {
                    out.insert((t.probe, src.clone(), dst.clone()), allowed);
                }
            }
        }
    }
    out
}

/// The base cluster alone: no policy, every pair allowed on every probe.
fn base() -> ClusterState {
    let mut loader = Loader::new();
    loader.load_path(&support::suite_dir().join("base.yaml"));
    loader.finish().0
}

/// How `report` says each of `probes` changed, per (probe, src, dst); every pod pair at most once.
fn reported(report: &Report, probes: &[Probe]) -> BTreeMap<(Probe, String, String), Change> {
    let mut out = BTreeMap::new();
    for g in &report.groups {
        let covered = |p: &&Probe| {
            (g.ports.iter())
                .any(|r| r.protocol == p.protocol && (r.first..=r.last).contains(&p.port))
        };
        for &probe in probes.iter().filter(covered) {
            for src in &g.from_pods {
                for dst in g.to_pods.iter().filter(|d| *d != src) {
                    let previous = out.insert((probe, src.clone(), dst.clone()), g.change);
                    assert!(previous.is_none(), "{probe} {src} -> {dst} in two groups");
                }
            }
        }
    }
    out
}

/// Diffs `before` against `after` and compares with their truth tables; the mismatches.
fn check(name: &str, before: (ClusterState, Truth), after: (ClusterState, Truth)) -> Vec<String> {
    let (b, a) = (
        Engine::new(Arc::new(before.0)),
        Engine::new(Arc::new(after.0)),
    );
    let report = diff(&b, &a, &Scope::All).expect("small inputs");
    let mut probes: Vec<Probe> = after.1.keys().map(|k| k.0).collect();
    probes.dedup();
    let got = reported(&report, &probes);
    let mut mismatches = Vec::new();
    for (key, &now) in &after.1 {
        let Some(&was) = before.1.get(key) else {
            continue; // a probe only one step's tables have
        };
        let expected = (was != now).then_some(if now { Change::Added } else { Change::Removed });
        // Probes absent from the report's ports are unchanged.
        let reported = got.get(key).copied();
        if reported != expected {
            mismatches.push(format!(
                "{name}: {} {} -> {}: expected {expected:?}, diff says {reported:?}",
                key.0, key.1, key.2
            ));
        }
    }
    for g in &report.groups {
        let pods = g.from_pods.len() * g.to_pods.len();
        assert!(g.pairs > 0 && g.pairs <= pods, "{name}: {g:?}");
    }
    mismatches
}

fn step_case(step: &Path) -> PathBuf {
    step.parent().expect("a step is in a case").to_path_buf()
}

#[test]
fn diff_of_consecutive_steps_is_the_difference_of_their_truth_tables() {
    let steps = support::steps();
    let mut mismatches = Vec::new();
    let mut pairs = 0;
    for window in steps.windows(2) {
        let [before, after] = window else { continue };
        if step_case(before) != step_case(after) {
            continue;
        }
        pairs += 1;
        let side = |s: &Path| (support::load_step(s), truth(&support::expected(s)));
        mismatches.extend(check(
            &after.display().to_string(),
            side(before),
            side(after),
        ));
    }
    assert!(pairs >= 5, "only {pairs} consecutive step pairs");
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
}

#[test]
fn diff_from_no_policy_to_each_first_step_is_what_the_step_denies() {
    let steps = support::steps();
    let mut mismatches = Vec::new();
    for step in steps.iter().filter(|s| s.ends_with("step1")) {
        let tables = support::expected(step);
        // Without policies every pair of the step's tables is allowed.
        let open: Truth = truth(&tables).into_keys().map(|k| (k, true)).collect();
        let after = (support::load_step(step), truth(&tables));
        mismatches.extend(check(&step.display().to_string(), (base(), open), after));
    }
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
}

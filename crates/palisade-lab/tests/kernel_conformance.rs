//! Real packets against real kernel rules: the conformance suite's pods run as network namespaces
//! behind a node namespace; for every step the rendered table is applied there and every pod tries
//! every other pod on each TCP and UDP probe. The kernel must agree with the engine's matrix, cell by
//! cell. Needs root, `ip` and `nft` (scripts/test installs them). SCTP tables are not probed here:
//! Rust's standard library has no SCTP sockets.

#[path = "../../../tests/conformance/support.rs"]
mod conformance;
mod support;

use palisade_analyze::Grid;
use palisade_dataplane::build;
use palisade_dataplane::conntrack::forget_connections;
use palisade_lab as lab;
use palisade_model::Protocol;
use palisade_policy::{Audit, CompiledTable, Engine};
use std::sync::Arc;
use std::time::Duration;

#[test]
fn kernel_enforces_exactly_the_engine_matrix() {
    let steps = conformance::steps();
    let (lab, _teardown) = support::served_lab("t", &conformance::load_step(&steps[0]));
    assert_eq!(lab.pods.len(), 9);
    let timeout = Duration::from_millis(250);
    let mut mismatches = Vec::new();
    let mut cells = 0;
    for step in &steps {
        let engine = Engine::new(Arc::new(conformance::load_step(step)));
        build(&CompiledTable::of(&engine, Audit::Annotated), None)
            .apply(Some(&lab.node))
            .unwrap_or_else(|e| panic!("{}: {e}", step.display()));
        // Flows of the previous step's probes must not answer for this step's policies.
        forget_connections(&lab.node).expect("conntrack flush");
        let probes = conformance::expected(step)
            .iter()
            .map(|t| t.probe)
            .collect();
        let (measured, skipped) = lab::measure(&lab, &engine, probes, timeout).expect("probe");
        assert!(skipped.iter().all(|p| p.protocol == Protocol::Sctp));
        assert_eq!(
            measured.names().len(),
            engine.state().pods.len(),
            "{}: every pod is in the lab",
            step.display()
        );
        let comparison = measured.compare(&engine);
        // Every pod tried every other; a pod and itself are compared but not probed.
        cells += comparison.compared - measured.probes().len() * measured.names().len();
        let describe = |d| format!("{}: {d}", step.display());
        mismatches.extend(comparison.differences.iter().map(describe));
    }
    assert!(cells > 5000, "probed only {cells} cells");
    assert!(
        mismatches.is_empty(),
        "{} of {cells} cells differ:\n{}",
        mismatches.len(),
        mismatches.join("\n")
    );
}

//! A lab of three nodes against the conformance suite, in the kernel: each node's table enforces only
//! the pods placed on it (every pod stays a peer), a connection between nodes crosses the fabric, is
//! decided by the source node's egress and the destination node's ingress, and the kernel agrees
//! with the engine's matrix cell by cell — cross-node pairs included. Needs root, `ip` and `nft`.

#[path = "../../../tests/conformance/support.rs"]
mod conformance;
mod support;

use palisade_analyze::Grid;
use palisade_dataplane::build;
use palisade_dataplane::conntrack::forget_connections;
use palisade_lab as lab;
use palisade_model::Protocol;
use palisade_policy::{CompiledTable, Enforcement, Engine};
use std::collections::HashSet;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

#[test]
fn three_nodes_enforce_their_own_pods_and_agree_with_the_engine() {
    let steps = conformance::steps();
    let (lab, _teardown) = support::served_lab_of("mn", &conformance::load_step(&steps[0]), 3);
    assert_eq!(lab.nodes.len(), 3);
    assert_eq!(lab.pods.len(), 9);
    // What each node enforces: the pods placed on it (3 each, round-robin).
    let enforcement: Vec<Enforcement> = (lab.nodes.iter())
        .map(|n| {
            let placed = lab.placed_on(Some(&n.name)).expect("a node of the lab");
            Enforcement {
                placed: placed.map(Arc::new),
                ..Enforcement::default()
            }
        })
        .collect();
    let node_of: Vec<usize> = lab.pods.iter().map(|p| p.node).collect();
    assert_eq!(node_of, [0, 1, 2, 0, 1, 2, 0, 1, 2]);
    let timeout = Duration::from_millis(250);
    let mut previous: Vec<Option<_>> = vec![None; lab.nodes.len()];
    let (mut mismatches, mut cells, mut cross_node) = (Vec::new(), 0, 0);
    for step in &steps {
        let engine = Engine::new(Arc::new(conformance::load_step(step)));
        let mut jumps: Vec<IpAddr> = Vec::new();
        for ((node, enforcement), previous) in lab.nodes.iter().zip(&enforcement).zip(&mut previous)
        {
            let table = CompiledTable::of(&engine, enforcement.clone());
            let mine: HashSet<IpAddr> = (lab.pods.iter())
                .filter(|p| lab.node_of(p) == Some(node))
                .map(|p| p.ip)
                .collect();
            for class in table.classes.iter() {
                assert!(
                    class.addresses.iter().all(|ip| mine.contains(ip)),
                    "{}: {} enforces a pod of another node: {:?}",
                    step.display(),
                    node.name,
                    class.addresses
                );
                jumps.extend(&class.addresses);
            }
            let ruleset = build(&table, previous.as_ref());
            ruleset
                .apply(Some(&node.netns))
                .unwrap_or_else(|e| panic!("{}: {}: {e}", step.display(), node.name));
            // Flows of the previous step's probes must not answer for this step's policies.
            forget_connections(&node.netns).expect("conntrack flush");
            *previous = Some(ruleset);
        }
        jumps.sort();
        jumps.dedup();
        assert_eq!(
            jumps.len(),
            9,
            "{}: every pod enforced somewhere",
            step.display()
        );
        let probes = conformance::expected(step)
            .iter()
            .map(|t| t.probe)
            .collect();
        let (measured, skipped) = lab::measure(&lab, &engine, probes, timeout).expect("probe");
        assert!(skipped.iter().all(|p| p.protocol == Protocol::Sctp));
        let comparison = measured.compare(&engine);
        let (probes, pods) = (measured.probes().len(), measured.names().len());
        cells += comparison.compared - probes * pods;
        let nodes: Vec<usize> = (measured.names().iter())
            .map(|n| lab.find_pod(n).expect("a pod of the lab").node)
            .collect();
        let pairs = nodes.iter().flat_map(|a| nodes.iter().map(move |b| a != b));
        cross_node += probes * pairs.filter(|&cross| cross).count();
        let describe = |d| format!("{}: {d}", step.display());
        mismatches.extend(comparison.differences.iter().map(describe));
    }
    assert!(cells > 5000, "probed only {cells} cells");
    assert!(cross_node > 3000, "only {cross_node} cross-node cells");
    assert!(
        mismatches.is_empty(),
        "{} of {cells} cells differ:\n{}",
        mismatches.len(),
        mismatches.join("\n")
    );
}

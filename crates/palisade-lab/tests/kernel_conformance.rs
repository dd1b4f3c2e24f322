//! Real packets against real kernel rules: the conformance suite's pods run as network namespaces
//! behind a node namespace; for every step the rendered table is applied there and every pod tries
//! every other pod on each TCP and UDP probe. The kernel must agree with the engine's matrix, cell by
//! cell. Needs root, `ip` and `nft` (scripts/test installs them). SCTP tables are not probed here:
//! Rust's standard library has no SCTP sockets.

#[path = "../../../tests/conformance/support.rs"]
mod support;

use palisade_analyze::{Matrix, Scope};
use palisade_dataplane::build;
use palisade_dataplane::conntrack::forget_connections;
use palisade_lab::{self as lab, Lab, Transport};
use palisade_model::Protocol;
use palisade_policy::{Audit, CompiledTable, Engine};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

#[test]
fn kernel_enforces_exactly_the_engine_matrix() {
    lab::require_root().expect("the kernel tests run as root");
    let name = format!("t{}", std::process::id());
    let _ = Lab::down(&name);
    let _teardown = lab::DownOnDrop(name.clone());
    let steps = support::steps();
    let lab = Lab::plan(&name, &support::load_step(&steps[0]));
    assert_eq!(lab.pods.len(), 9);
    lab.create().expect("lab up");
    for pod in &lab.pods {
        lab::serve(&pod.netns, &pod.tcp, &pod.udp).expect("responders");
    }
    let timeout = Duration::from_millis(250);
    let mut mismatches = Vec::new();
    let mut cells = 0;
    for step in &steps {
        let engine = Engine::new(Arc::new(support::load_step(step)));
        build(&CompiledTable::of(&engine, Audit::Annotated), None)
            .apply(Some(&lab.node))
            .unwrap_or_else(|e| panic!("{}: {e}", step.display()));
        // Flows of the previous step's probes must not answer for this step's policies.
        forget_connections(&lab.node).expect("conntrack flush");
        let probes: Vec<_> = support::expected(step)
            .iter()
            .map(|t| t.probe)
            .filter(|p| p.protocol != Protocol::Sctp)
            .collect();
        let matrix = Matrix::compute(&engine, Matrix::pods_in(&engine, &Scope::All), &probes);
        let state = engine.state();
        for (pi, probe) in probes.iter().enumerate() {
            let transport = match probe.protocol {
                Protocol::Udp => Transport::Udp,
                _ => Transport::Tcp,
            };
            let attempts: Vec<_> = (0..matrix.pods.len())
                .flat_map(|i| (0..matrix.pods.len()).map(move |j| (i, j)))
                .filter(|(i, j)| i != j)
                .map(|(i, j)| {
                    let src = lab
                        .pods
                        .iter()
                        .find(|p| p.key == matrix.pod_name(i))
                        .expect("pod in lab");
                    let dst: SocketAddr =
                        (state.pods[matrix.pods[j]].ip.unwrap(), probe.port).into();
                    let netns = src.netns.clone();
                    let handle =
                        std::thread::spawn(move || lab::probe(&netns, dst, transport, timeout));
                    (i, j, handle)
                })
                .collect();
            for (i, j, handle) in attempts {
                let kernel = handle.join().expect("probe thread").expect("probe");
                cells += 1;
                if kernel != matrix.allowed(pi, i, j) {
                    mismatches.push(format!(
                        "{}: probe {probe}: {} -> {}: engine {}, kernel {}",
                        step.display(),
                        matrix.pod_name(i),
                        matrix.pod_name(j),
                        matrix.allowed(pi, i, j),
                        kernel
                    ));
                }
            }
        }
    }
    assert!(cells > 5000, "probed only {cells} cells");
    assert!(
        mismatches.is_empty(),
        "{} of {cells} cells differ:\n{}",
        mismatches.len(),
        mismatches.join("\n")
    );
}

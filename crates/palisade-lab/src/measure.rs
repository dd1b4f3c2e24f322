//! Connectivity measured with real packets in the lab, and its comparison with what the engine
//! predicts (`palisade lab probe`, `--compare`): the kernel and the engine must agree cell by cell.

use crate::error::LabError;
use crate::net::{probe_matrix, Transport};
use crate::topology::Lab;
use palisade_analyze::{default_probes, Grid, Matrix, Probe};
use palisade_model::{PodId, Protocol};
use palisade_policy::Engine;
use std::net::IpAddr;
use std::time::Duration;

/// Connectivity measured between the lab's pods, drawable by the matrix renderers.
pub struct Measured {
    /// The pods, in the engine's order (namespace, then name).
    pods: Vec<PodId>,
    /// `ns/name` of every pod, in the same order.
    names: Vec<String>,
    /// Whether each pod's address is IPv6.
    ipv6: Vec<bool>,
    probes: Vec<Probe>,
    /// `cells[probe][src][dst]`: true when the connection went through.
    cells: Vec<Vec<Vec<bool>>>,
}

/// Where the kernel and the engine disagree.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Difference {
    pub probe: Probe,
    /// `ns/name` of the source pod.
    pub src: String,
    /// `ns/name` of the destination pod.
    pub dst: String,
    /// Whether the connection went through in the kernel.
    pub kernel: bool,
    /// Whether the engine allows it.
    pub engine: bool,
}

impl std::fmt::Display for Difference {
    /// `probe 6379/TCP: ns/a -> ns/b: engine true, kernel false`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "probe {}: {} -> {}: engine {}, kernel {}",
            self.probe, self.src, self.dst, self.engine, self.kernel
        )
    }
}

/// The kernel against the engine, over every cell of a measurement.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Comparison {
    /// The cells that differ, by probe, then source, then destination.
    pub differences: Vec<Difference>,
    /// Cells compared.
    pub compared: usize,
    /// Cells between an IPv4 and an IPv6 pod, not compared: no path joins the families.
    pub cross_family: usize,
}

impl Grid for Measured {
    fn names(&self) -> Vec<String> {
        self.names.clone()
    }

    fn probes(&self) -> Vec<Probe> {
        self.probes.clone()
    }

    fn row_into(&self, probe: usize, src: usize, out: &mut Vec<bool>) {
        out.clear();
        out.extend_from_slice(&self.cells[probe][src]);
    }
}

/// Tries every pod of `lab` against every other, for each of `probes` (default: every container
/// port of the pods), waiting `timeout` for each attempt. `engine` is the lab's cluster as the
/// engine sees it (loaded with the lab's addresses pinned), and orders the pods. Probes other than
/// TCP and UDP cannot be sent: they are returned apart, not measured.
pub fn measure(
    lab: &Lab,
    engine: &Engine,
    probes: Vec<Probe>,
    timeout: Duration,
) -> Result<(Measured, Vec<Probe>), LabError> {
    let state = engine.state();
    let mut pods = Vec::new();
    let mut names = Vec::new();
    let mut targets: Vec<(String, IpAddr)> = Vec::new();
    for (i, pod) in state.pods.iter_enumerated() {
        let key = pod.key();
        if let Some(p) = lab.pod(&key) {
            pods.push(i);
            names.push(key.to_string());
            targets.push((p.netns.clone(), p.ip));
        }
    }
    let probes = if probes.is_empty() {
        default_probes(state, &pods)
    } else {
        probes
    };
    let (probes, skipped): (Vec<Probe>, Vec<Probe>) = probes
        .into_iter()
        .partition(|p| matches!(p.protocol, Protocol::Tcp | Protocol::Udp));
    let transports: Vec<(u16, Transport)> = probes
        .iter()
        .map(|p| match p.protocol {
            Protocol::Udp => (p.port, Transport::Udp),
            _ => (p.port, Transport::Tcp),
        })
        .collect();
    let cells = probe_matrix(&targets, &transports, timeout)
        .map_err(|source| LabError::Probe { source })?;
    let measured = Measured {
        pods,
        names,
        ipv6: targets.iter().map(|(_, ip)| ip.is_ipv6()).collect(),
        probes,
        cells,
    };
    Ok((measured, skipped))
}

impl Measured {
    /// True when the lab has both IPv4 and IPv6 pods (which cannot reach each other).
    pub fn mixed_families(&self) -> bool {
        let v6 = self.ipv6.iter().filter(|&&v6| v6).count();
        v6 > 0 && v6 < self.ipv6.len()
    }

    /// Compares every cell with `engine`'s matrix (the engine [`measure`] was given).
    pub fn compare(&self, engine: &Engine) -> Comparison {
        let matrix = Matrix::compute(engine, self.pods.clone(), &self.probes);
        let n = self.names.len();
        let mut differences = Vec::new();
        let mut cross_family = 0;
        for (pi, probe) in self.probes.iter().enumerate() {
            for i in 0..n {
                for j in 0..n {
                    // IPv4 and IPv6 pods cannot reach each other whatever the policy.
                    if self.ipv6[i] != self.ipv6[j] {
                        cross_family += 1;
                        continue;
                    }
                    let (kernel, predicted) = (self.cells[pi][i][j], matrix.allowed(pi, i, j));
                    if kernel != predicted {
                        differences.push(Difference {
                            probe: *probe,
                            src: self.names[i].clone(),
                            dst: self.names[j].clone(),
                            kernel,
                            engine: predicted,
                        });
                    }
                }
            }
        }
        Comparison {
            differences,
            compared: self.probes.len() * n * n - cross_family,
            cross_family,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use palisade_model::Loader;
    use std::sync::Arc;

    /// Pods a and b (IPv4) and c (IPv6); b admits nothing.
    const CLUSTER: &str = r#"
apiVersion: v1
kind: Pod
metadata: {name: a, namespace: m, labels: {app: a}}
spec: {containers: [{name: c, image: i, ports: [{containerPort: 80}]}]}
status: {podIP: 10.9.0.1}
---
apiVersion: v1
kind: Pod
metadata: {name: b, namespace: m, labels: {app: b}}
spec: {containers: [{name: c, image: i, ports: [{containerPort: 80}]}]}
status: {podIP: 10.9.0.2}
---
apiVersion: v1
kind: Pod
metadata: {name: c, namespace: m, labels: {app: c}}
spec: {containers: [{name: c, image: i, ports: [{containerPort: 80}]}]}
status: {podIP: "fd00::3"}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: deny-b, namespace: m}
spec: {podSelector: {matchLabels: {app: b}}, policyTypes: [Ingress]}
"#;

    #[test]
    fn a_cell_where_the_kernel_and_the_engine_disagree_is_reported_and_families_are_not_compared() {
        let mut loader = Loader::new();
        loader.load_str("m.yaml", CLUSTER);
        let engine = Engine::new(Arc::new(loader.finish().0));
        let probe = Probe {
            port: 80,
            protocol: Protocol::Tcp,
        };
        // The kernel let everything through within each family; the engine denies a -> b.
        let measured = Measured {
            pods: [0, 1, 2].map(PodId::new).to_vec(),
            names: vec!["m/a".into(), "m/b".into(), "m/c".into()],
            ipv6: vec![false, false, true],
            probes: vec![probe],
            cells: vec![vec![
                vec![true, true, false],
                vec![true, true, false],
                vec![false, false, true],
            ]],
        };
        assert!(measured.mixed_families());
        let comparison = measured.compare(&engine);
        assert_eq!(
            comparison.differences,
            [Difference {
                probe,
                src: "m/a".into(),
                dst: "m/b".into(),
                kernel: true,
                engine: false,
            }]
        );
        assert_eq!((comparison.compared, comparison.cross_family), (5, 4));
    }
}

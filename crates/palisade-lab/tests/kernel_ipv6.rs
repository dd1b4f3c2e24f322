//! IPv6 and mixed-family pods in the lab: addresses, routes and responders work for IPv6 pods, and the
//! kernel enforces selector and IPv6 ipBlock rules exactly as the engine predicts, next to IPv4 pods.
//! Needs root, `ip` and `nft`.

mod support;

use palisade_dataplane::build;
use palisade_lab as lab;
use palisade_model::{ClusterState, PodId, Protocol};
use palisade_policy::{Audit, CompiledTable, Endpoint, Flow};
use std::time::Duration;

const CLUSTER: &str = r#"
apiVersion: v1
kind: Pod
metadata: {name: a, namespace: six, labels: {app: a}}
spec: {containers: [{name: c, image: i, ports: [{containerPort: 80}, {containerPort: 53, protocol: UDP}]}]}
status: {podIP: "fd00:10::a"}
---
apiVersion: v1
kind: Pod
metadata: {name: b, namespace: six, labels: {app: b}}
spec: {containers: [{name: c, image: i, ports: [{containerPort: 80}, {containerPort: 53, protocol: UDP}]}]}
status: {podIP: "fd00:10::b"}
---
apiVersion: v1
kind: Pod
metadata: {name: c, namespace: six, labels: {app: c}}
spec: {containers: [{name: c, image: i, ports: [{containerPort: 80}, {containerPort: 53, protocol: UDP}]}]}
status: {podIP: "fd00:10::c"}
---
apiVersion: v1
kind: Pod
metadata: {name: d, namespace: six, labels: {app: d}}
spec: {containers: [{name: c, image: i, ports: [{containerPort: 80}, {containerPort: 53, protocol: UDP}]}]}
status: {podIP: 10.81.0.4}
---
apiVersion: v1
kind: Pod
metadata: {name: e, namespace: six, labels: {app: e}}
spec: {containers: [{name: c, image: i, ports: [{containerPort: 80}, {containerPort: 53, protocol: UDP}]}]}
status: {podIP: 10.81.0.5}
---
# b: TCP 80 from a only.
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: b-from-a, namespace: six}
spec:
  podSelector: {matchLabels: {app: b}}
  ingress: [{from: [{podSelector: {matchLabels: {app: a}}}], ports: [{port: 80}]}]
---
# c: egress to fd00:10::/112 except b, UDP 53 only; and to the IPv4 pod e.
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: c-egress, namespace: six}
spec:
  podSelector: {matchLabels: {app: c}}
  policyTypes: [Egress]
  egress:
  - to: [{ipBlock: {cidr: "fd00:10::/112", except: ["fd00:10::b/128"]}}]
    ports: [{port: 53, protocol: UDP}]
  - to: [{podSelector: {matchLabels: {app: e}}}]
---
# e: nothing in.
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: e-deny, namespace: six}
spec: {podSelector: {matchLabels: {app: e}}, policyTypes: [Ingress]}
"#;

#[test]
fn ipv6_pods_are_enforced_as_the_engine_predicts() {
    let engine = support::engine(CLUSTER);
    let (lab, _teardown) = support::served_lab("v6", engine.state());
    assert_eq!(lab.pods.len(), 5, "IPv6 pods are part of the lab");
    build(&CompiledTable::of(&engine, Audit::Annotated), None)
        .apply(Some(&lab.node))
        .expect("ruleset");
    let probes = ["80/TCP", "53/UDP"].map(|p| p.parse().unwrap()).to_vec();
    let (measured, _) =
        lab::measure(&lab, &engine, probes, Duration::from_millis(300)).expect("probe");
    let comparison = measured.compare(&engine);
    // On each probe: 8 ordered pairs of one family probed and 5 pods with themselves compared;
    // the 12 pairs of an IPv4 and an IPv6 pod are not.
    assert_eq!(
        (comparison.compared, comparison.cross_family),
        (2 * (8 + 5), 2 * 12)
    );
    assert!(
        comparison.differences.is_empty(),
        "{:#?}",
        comparison.differences
    );
    let state = engine.state();
    // The cells that show each rule at work.
    let allowed = |s: &str, d: &str, port: u16, protocol: Protocol| {
        engine
            .verdict(&Flow {
                src: Endpoint::Pod(pod_id(state, s)),
                dst: Endpoint::Pod(pod_id(state, d)),
                port,
                protocol,
            })
            .allowed
    };
    assert!(allowed("six/a", "six/b", 80, Protocol::Tcp));
    assert!(!allowed("six/c", "six/b", 80, Protocol::Tcp));
    assert!(allowed("six/c", "six/a", 53, Protocol::Udp));
    assert!(!allowed("six/c", "six/a", 80, Protocol::Tcp));
    assert!(!allowed("six/c", "six/b", 53, Protocol::Udp), "except");
    assert!(!allowed("six/d", "six/e", 80, Protocol::Tcp));
}

/// The pod `ns/name` of `state`.
fn pod_id(state: &ClusterState, key: &str) -> PodId {
    let (namespace, name) = key.split_once('/').expect("ns/name");
    state.pod_id(namespace, name).expect("a pod of the state")
}

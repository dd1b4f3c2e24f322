//! Node-local enforcement, in the kernel: a node's table makes only the pods scheduled on it (and
//! pods scheduled nowhere) jump to their policy chains; a pod of another node is left to that
//! node's agent — here all pods share one node namespace, so that pod is reachable — while every
//! pod stays a peer. Needs root and `ip`.

mod support;

use palisade_dataplane::build;
use palisade_lab::{self as lab, Transport};
use palisade_model::PodKey;
use palisade_policy::{Audit, CompiledTable, Enforcement};
use std::net::SocketAddr;
use std::time::Duration;

const CLUSTER: &str = r#"
apiVersion: v1
kind: Pod
metadata: {name: client, namespace: nl, labels: {app: client}}
spec: {nodeName: n1, containers: [{name: c, image: i}]}
status: {podIP: 10.79.0.1}
---
apiVersion: v1
kind: Pod
metadata: {name: here, namespace: nl, labels: {app: here}}
spec: {nodeName: n1, containers: [{name: c, image: i, ports: [{containerPort: 80}]}]}
status: {podIP: 10.79.0.2}
---
apiVersion: v1
kind: Pod
metadata: {name: there, namespace: nl, labels: {app: there}}
spec: {nodeName: n2, containers: [{name: c, image: i, ports: [{containerPort: 80}]}]}
status: {podIP: 10.79.0.3}
---
apiVersion: v1
kind: Pod
metadata: {name: unscheduled, namespace: nl, labels: {app: unscheduled}}
spec: {containers: [{name: c, image: i, ports: [{containerPort: 80}]}]}
status: {podIP: 10.79.0.4}
---
# Every pod but the client accepts nothing.
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: deny, namespace: nl}
spec:
  podSelector: {matchExpressions: [{key: app, operator: NotIn, values: [client]}]}
  policyTypes: [Ingress]
"#;

#[test]
fn a_node_enforces_the_pods_scheduled_on_it() {
    let engine = support::engine(CLUSTER);
    let (lab, _teardown) = support::served_lab("nl", engine.state());
    let client = &lab.pod(&PodKey::new("nl", "client")).expect("client").netns;
    let reaches = |ip: &str| {
        let to = SocketAddr::new(ip.parse().unwrap(), 80);
        lab::probe(client, to, Transport::Tcp, Duration::from_millis(300)).unwrap()
    };
    let on = |node: &str| Enforcement {
        node: Some(node.into()),
        ..Enforcement::default()
    };
    let mut previous = None;
    // (node, here, there, unscheduled): reachable?
    for (node, expected) in [
        (Some("n1"), [false, true, false]),
        (Some("n2"), [true, false, false]),
        (None, [false, false, false]),
    ] {
        let enforcement = node.map_or(Audit::Annotated.into(), on);
        let ruleset = build(&CompiledTable::of(&engine, enforcement), previous.as_ref());
        ruleset.apply(Some(&lab.node)).expect("ruleset");
        let got = ["10.79.0.2", "10.79.0.3", "10.79.0.4"].map(reaches);
        assert_eq!(got, expected, "node {node:?}: here, there, unscheduled");
        previous = Some(ruleset);
    }
}

//! IPv6 and mixed-family pods in the lab: addresses, routes and responders work for IPv6 pods, and the
//! kernel enforces selector and IPv6 ipBlock rules exactly as the engine predicts, next to IPv4 pods.
//! Needs root, `ip` and `nft`.

use palisade_dataplane::build;
use palisade_lab::{self as lab, Lab, Transport};
use palisade_model::{ClusterState, Loader, PodId, Protocol};
use palisade_policy::{Audit, CompiledTable, Endpoint, Engine, Flow};
use std::net::SocketAddr;
use std::sync::Arc;
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
    lab::require_root().expect("the kernel tests run as root");
    let name = format!("v6{}", std::process::id());
    let _teardown = lab::DownOnDrop(name.clone());
    let mut loader = Loader::new();
    loader.load_str("six.yaml", CLUSTER);
    let (state, diags) = loader.finish();
    assert!(diags.iter().all(|d| !d.is_error()), "{diags:#?}");
    let engine = Engine::new(Arc::new(state));
    let lab = Lab::plan(&name, engine.state());
    assert_eq!(lab.pods.len(), 5, "IPv6 pods are part of the lab");
    lab.create().expect("lab up");
    for pod in &lab.pods {
        lab::serve(&pod.netns, &pod.tcp, &pod.udp).expect("responders");
    }
    build(&CompiledTable::of(&engine, Audit::Annotated), None)
        .apply(Some(&lab.node))
        .expect("ruleset");
    let state = engine.state();
    let mut checked = 0;
    let mut mismatches = Vec::new();
    for src in &lab.pods {
        for dst in &lab.pods {
            if src.key == dst.key || src.ip.is_ipv6() != dst.ip.is_ipv6() {
                continue;
            }
            for (port, protocol, transport) in [
                (80, Protocol::Tcp, Transport::Tcp),
                (53, Protocol::Udp, Transport::Udp),
            ] {
                let flow = Flow {
                    src: Endpoint::Pod(pod_id(state, &src.key)),
                    dst: Endpoint::Pod(pod_id(state, &dst.key)),
                    port,
                    protocol,
                };
                let predicted = engine.verdict(&flow).allowed;
                let timeout = Duration::from_millis(300);
                let to = SocketAddr::new(dst.ip, port);
                let kernel = lab::probe(&src.netns, to, transport, timeout).unwrap();
                checked += 1;
                if kernel != predicted {
                    mismatches.push(format!(
                        "{} -> {} {port}/{protocol}: kernel {kernel}, engine {predicted}",
                        src.key, dst.key
                    ));
                }
            }
        }
    }
    assert_eq!(checked, 16);
    assert!(mismatches.is_empty(), "{mismatches:#?}");
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

//! A recorded drop explained and fixed: the fix, applied to the cluster, makes the engine allow
//! exactly that flow, and `diff` reports only that workload pair on that port.

use palisade_analyze::diff::{diff, Change, PortRange};
use palisade_analyze::explain::{explain, resolve_endpoint, to_text};
use palisade_analyze::fix::{propose, with_policies, Fix};
use palisade_analyze::Scope;
use palisade_model::{Loader, Protocol};
use palisade_policy::{Engine, Flow};
use std::sync::Arc;

const CLUSTER: &str = r#"
apiVersion: v1
kind: Namespace
metadata: {name: shop}
---
apiVersion: v1
kind: Namespace
metadata: {name: ops}
---
apiVersion: v1
kind: Pod
metadata:
  name: web-7d9f-a
  namespace: shop
  labels: {app: web, pod-template-hash: 7d9f}
  ownerReferences: [{apiVersion: apps/v1, kind: ReplicaSet, name: web-7d9f, uid: u1, controller: true}]
spec: {containers: [{name: m, image: i}]}
status: {podIP: 10.1.0.1}
---
apiVersion: v1
kind: Pod
metadata:
  name: web-7d9f-b
  namespace: shop
  labels: {app: web, pod-template-hash: 7d9f}
  ownerReferences: [{apiVersion: apps/v1, kind: ReplicaSet, name: web-7d9f, uid: u1, controller: true}]
spec: {containers: [{name: m, image: i}]}
status: {podIP: 10.1.0.2}
---
apiVersion: v1
kind: Pod
metadata:
  name: db-0
  namespace: shop
  labels: {app: db, statefulset.kubernetes.io/pod-name: db-0, controller-revision-hash: db-5c}
  ownerReferences: [{apiVersion: apps/v1, kind: StatefulSet, name: db, uid: u2, controller: true}]
spec: {containers: [{name: m, image: i, ports: [{name: sql, containerPort: 5432}]}]}
status: {podIP: 10.1.0.3}
---
apiVersion: v1
kind: Pod
metadata: {name: backup, namespace: shop, labels: {app: db}}
spec: {containers: [{name: m, image: i}]}
status: {podIP: 10.1.0.4}
---
apiVersion: v1
kind: Pod
metadata: {name: probe, namespace: ops, labels: {app: probe}}
spec: {containers: [{name: m, image: i}]}
status: {podIP: 10.2.0.1}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: db-ingress, namespace: shop}
spec:
  podSelector: {matchLabels: {app: db}}
  ingress: [{from: [{podSelector: {matchLabels: {app: api}}}], ports: [{port: 5432}]}]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: deny-egress, namespace: ops}
spec: {podSelector: {}, policyTypes: [Egress]}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: web-ingress, namespace: shop}
spec:
  podSelector: {matchLabels: {app: web}}
  ingress: [{from: [{podSelector: {matchLabels: {app: lb}}}]}]
"#;

fn engine() -> Engine {
    let mut loader = Loader::new();
    loader.load_str("cluster.yaml", CLUSTER);
    let (state, diagnostics) = loader.finish();
    assert!(diagnostics.iter().all(|d| !d.is_error()), "{diagnostics:?}");
    Engine::new(Arc::new(state))
}

/// The flow a record names by addresses, as `explain --record` resolves it.
fn recorded(engine: &Engine, src: &str, dst: &str, port: u16) -> Flow {
    let state = engine.state();
    Flow {
        src: resolve_endpoint(state, src, "").unwrap(),
        dst: resolve_endpoint(state, dst, "").unwrap(),
        port,
        protocol: Protocol::Tcp,
    }
}

/// The fix applied: the engine's verdict on the flow with the fix in the cluster.
fn allowed_with(engine: &Engine, fix: &Fix, flow: &Flow) -> bool {
    let after = Engine::new(Arc::new(
        with_policies(engine.state(), &fix.policies).unwrap(),
    ));
    after.verdict(flow).allowed
}

#[test]
fn a_recorded_deny_on_both_sides_is_explained_and_fixed_for_the_workload_pair_only() {
    let engine = engine();
    // ops/probe -> shop/web: ops denies all egress, web's ingress allows only app=lb.
    let flow = recorded(&engine, "10.2.0.1", "10.1.0.1", 8080);
    let text = to_text(&explain(&engine, flow));
    assert!(
        text.contains(
            "pod ops/probe (10.2.0.1) -> pod shop/web-7d9f-a (10.1.0.1) TCP 8080: DENIED"
        ),
        "{text}"
    );
    assert!(text.contains("Egress of ops/probe: DENIED"), "{text}");
    assert!(text.contains("pod ops/probe is in namespace ops"), "{text}");

    let fix = propose(&engine, &flow).unwrap().expect("a deny has a fix");
    // Both sides deny: the destination's ingress and the source's egress, each fixed.
    assert_eq!(fix.policies.len(), 2, "{}", fix.to_yaml());
    let yaml = fix.to_yaml();
    assert_eq!(
        yaml,
        "apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: allow-probe-to-web-tcp-8080
  namespace: shop
spec:
  ingress:
  - from:
    - namespaceSelector:
        matchLabels:
          kubernetes.io/metadata.name: ops
      podSelector:
        matchLabels:
          app: probe
    ports:
    - port: 8080
      protocol: TCP
  podSelector:
    matchLabels:
      app: web
  policyTypes:
  - Ingress
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: allow-probe-to-web-tcp-8080-egress
  namespace: ops
spec:
  egress:
  - ports:
    - port: 8080
      protocol: TCP
    to:
    - namespaceSelector:
        matchLabels:
          kubernetes.io/metadata.name: shop
      podSelector:
        matchLabels:
          app: web
  podSelector:
    matchLabels:
      app: probe
  policyTypes:
  - Egress
"
    );
    assert!(allowed_with(&engine, &fix, &flow));
    // Only probe -> web (both replicas, the pod-template-hash dropped) on TCP 8080 is added.
    assert!(fix.exact);
    let [group] = fix.report.groups.as_slice() else {
        panic!("{:?}", fix.report.groups)
    };
    assert_eq!(group.change, Change::Added);
    assert_eq!(
        (group.from.name.as_str(), group.to.name.as_str()),
        ("probe", "web-7d9f")
    );
    assert_eq!(group.to_pods, ["shop/web-7d9f-a", "shop/web-7d9f-b"]);
    let port = PortRange {
        protocol: Protocol::Tcp,
        first: 8080,
        last: 8080,
    };
    assert_eq!(group.ports, [port]);
    // And the diff of the cluster before against the cluster with the fix says the same.
    let after = Engine::new(Arc::new(
        with_policies(engine.state(), &fix.policies).unwrap(),
    ));
    assert_eq!(diff(&engine, &after, &Scope::All).unwrap(), fix.report);
    // A different port stays denied.
    assert!(!after.verdict(&Flow { port: 8081, ..flow }).allowed);
}

#[test]
fn a_fix_whose_selector_matches_another_workload_is_not_exact() {
    let engine = engine();
    // web -> db-0: the StatefulSet's per-pod labels are dropped, leaving app=db, which the
    // unowned pod backup has too: the fix lets web reach backup as well, and says so.
    let flow = recorded(&engine, "10.1.0.1", "10.1.0.3", 5432);
    let fix = propose(&engine, &flow).unwrap().expect("denied");
    assert_eq!(fix.policies.len(), 1);
    let selector = fix.policies[0]
        .spec
        .as_ref()
        .unwrap()
        .pod_selector
        .as_ref()
        .unwrap();
    assert_eq!(
        selector
            .match_labels
            .as_ref()
            .unwrap()
            .keys()
            .collect::<Vec<_>>(),
        ["app"]
    );
    assert!(allowed_with(&engine, &fix, &flow));
    assert!(!fix.exact);
    let to: Vec<_> = fix
        .report
        .groups
        .iter()
        .map(|g| g.to.name.as_str())
        .collect();
    assert!(to.contains(&"backup") && to.contains(&"db"), "{to:?}");
}

#[test]
fn an_allowed_flow_needs_no_fix() {
    let engine = engine();
    // web -> probe: web's egress and probe's ingress are not isolated.
    let flow = recorded(&engine, "10.1.0.1", "10.2.0.1", 80);
    assert!(engine.verdict(&flow).allowed);
    assert!(propose(&engine, &flow).unwrap().is_none());
}

#[test]
fn an_icmp_fix_cannot_name_the_protocol_and_is_not_exact() {
    let engine = engine();
    let flow = Flow {
        protocol: Protocol::Icmp,
        ..recorded(&engine, "10.1.0.2", "10.1.0.1", 0)
    };
    let fix = propose(&engine, &flow)
        .unwrap()
        .expect("web's ingress denies");
    let ingress = &fix.policies[0]
        .spec
        .as_ref()
        .unwrap()
        .ingress
        .as_ref()
        .unwrap()[0];
    assert_eq!(ingress.ports, None, "NetworkPolicy ports have no ICMP");
    assert!(allowed_with(&engine, &fix, &flow));
    // Without ports the rule allows every port: the diff says so, and the fix is not exact.
    assert!(!fix.exact);
    assert!(fix
        .report
        .groups
        .iter()
        .any(|g| g.ports.len() > 1 || g.ports[0].first != g.ports[0].last));
}

#[test]
fn an_egress_deny_to_an_address_outside_the_cluster_is_fixed_with_that_address_only() {
    let engine = engine();
    let flow = recorded(&engine, "10.2.0.1", "192.0.2.7", 443);
    let fix = propose(&engine, &flow)
        .unwrap()
        .expect("ops denies all egress");
    let [policy] = fix.policies.as_slice() else {
        panic!("{}", fix.to_yaml())
    };
    assert_eq!(
        policy.metadata.name.as_deref(),
        Some("allow-probe-to-192-0-2-7-tcp-443-egress")
    );
    let egress = &policy.spec.as_ref().unwrap().egress.as_ref().unwrap()[0];
    let peer = &egress.to.as_ref().unwrap()[0];
    assert_eq!(peer.ip_block.as_ref().unwrap().cidr, "192.0.2.7/32");
    assert!(peer.pod_selector.is_none());
    assert!(allowed_with(&engine, &fix, &flow));
    let elsewhere = recorded(&engine, "10.2.0.1", "192.0.2.8", 443);
    let after = Engine::new(Arc::new(
        with_policies(engine.state(), &fix.policies).unwrap(),
    ));
    assert!(!after.verdict(&elsewhere).allowed);
    // No pod pair changes: exact.
    assert!(fix.report.groups.is_empty() && fix.exact);
}

/// With cluster-wide policies: an Admin Deny has no NetworkPolicy fix (the error names the rule);
/// a Baseline Deny is overridden by the proposed NetworkPolicy, and the policies of both tiers stay
/// in the cluster the fix is judged on.
#[test]
fn an_admin_deny_cannot_be_fixed_by_networkpolicy_and_a_baseline_deny_can() {
    let tiers = r#"
---
apiVersion: policy.networking.k8s.io/v1alpha2
kind: ClusterNetworkPolicy
metadata: {name: no-probes}
spec:
  tier: Admin
  priority: 1
  subject: {namespaces: {matchLabels: {kubernetes.io/metadata.name: shop}}}
  ingress: [{name: from-ops, action: Deny, from: [{namespaces: {matchLabels: {kubernetes.io/metadata.name: ops}}}], protocols: [{tcp: {destinationPort: {number: 9000}}}]}]
---
apiVersion: policy.networking.k8s.io/v1alpha2
kind: ClusterNetworkPolicy
metadata: {name: baseline}
spec:
  tier: Baseline
  priority: 1
  subject: {namespaces: {}}
  egress: [{name: default-deny, action: Deny, to: [{namespaces: {}}]}]
"#;
    let mut loader = Loader::new();
    loader.load_str("cluster.yaml", &format!("{CLUSTER}{tiers}"));
    let (state, diagnostics) = loader.finish();
    assert!(diagnostics.iter().all(|d| !d.is_error()), "{diagnostics:?}");
    let engine = Engine::new(Arc::new(state));
    // db-0 -> web: web's ingress NetworkPolicy denies; db-0's egress the Baseline Deny.
    let flow = recorded(&engine, "10.1.0.3", "10.1.0.1", 8080);
    let fix = propose(&engine, &flow).unwrap().expect("a fix");
    assert_eq!(fix.policies.len(), 2, "{}", fix.to_yaml());
    assert!(allowed_with(&engine, &fix, &flow));
    // probe -> web on 9000: the Admin Deny.
    let flow = recorded(&engine, "10.2.0.1", "10.1.0.1", 9000);
    let Err(why) = propose(&engine, &flow) else {
        panic!("an Admin Deny has no NetworkPolicy fix");
    };
    assert!(
        why.contains(
            "ClusterNetworkPolicy no-probes spec.ingress[0] `from-ops` (Admin, priority 1) → Deny"
        ),
        "{why}"
    );
}

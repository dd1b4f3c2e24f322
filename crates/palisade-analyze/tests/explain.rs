//! `explain` end to end, its whole output pinned: the engine's reasons are data, and this is the
//! English and the JSON users read, which must not change by accident.

use palisade_analyze::explain::{explain, explain_staged, resolve_endpoint, to_text, Explanation};
use palisade_model::{ClusterState, Loader, Protocol};
use palisade_policy::{Engine, Engines, Flow};
use std::sync::Arc;

const CLUSTER: &str = r#"
apiVersion: v1
kind: Namespace
metadata: {name: shop, labels: {role: tenant}}
---
apiVersion: v1
kind: Pod
metadata: {name: web, namespace: shop, labels: {app: web}}
spec: {nodeName: n0, containers: [{name: m, image: i, ports: [{name: http, containerPort: 8080}]}]}
status: {podIP: 10.1.0.1, hostIP: 192.168.0.100}
---
apiVersion: v1
kind: Pod
metadata: {name: db, namespace: shop, labels: {app: db, tier: data}}
spec: {nodeName: n0, containers: [{name: m, image: i, ports: [{name: sql, containerPort: 5432}]}]}
status: {podIP: 10.1.0.2, hostIP: 192.168.0.100}
---
apiVersion: v1
kind: Pod
metadata: {name: agent, namespace: ops, labels: {app: agent}}
spec: {nodeName: n0, hostNetwork: true, containers: [{name: m, image: i}]}
status: {podIP: 192.168.0.100, hostIP: 192.168.0.100}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: db-ingress, namespace: shop}
spec:
  podSelector: {matchLabels: {app: db}}
  ingress:
  - from:
    - podSelector: {matchExpressions: [{key: app, operator: In, values: [api, batch]}]}
    - ipBlock: {cidr: 10.1.0.0/16, except: [10.1.0.0/30]}
    ports: [{port: sql}, {port: 6000, endPort: 6010}]
  - from: [{namespaceSelector: {matchLabels: {role: core}}}]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: web-egress, namespace: shop}
spec:
  podSelector: {matchLabels: {app: web}}
  policyTypes: [Egress]
  egress:
  - to: [{podSelector: {matchLabels: {tier: data}}}]
    ports: [{port: sql}]
"#;

/// `text` loaded (it must hold no error) and the flow `from -> to` (`ns/pod` or an address) in it.
fn flow_in(
    text: &str,
    from: &str,
    to: &str,
    port: u16,
    protocol: Protocol,
) -> (ClusterState, Flow) {
    let mut loader = Loader::new();
    loader.load_str("cluster.yaml", text);
    let (state, diagnostics) = loader.finish();
    assert!(
        diagnostics.iter().all(|d| !d.is_error()),
        "{diagnostics:#?}"
    );
    let src = resolve_endpoint(&state, from, "default").unwrap();
    let dst = resolve_endpoint(&state, to, "default").unwrap();
    let flow = Flow {
        src,
        dst,
        port,
        protocol,
    };
    (state, flow)
}

/// Explains `from -> to` in the cluster above.
fn run(from: &str, to: &str, port: u16, protocol: Protocol) -> Explanation {
    run_in(CLUSTER, from, to, port, protocol)
}

/// Explains `from -> to` in `text`.
fn run_in(text: &str, from: &str, to: &str, port: u16, protocol: Protocol) -> Explanation {
    let (state, flow) = flow_in(text, from, to, port, protocol);
    explain(&Engine::new(Arc::new(state)), flow)
}

/// The allowing rule on one side; on the other, why each peer of each rule missed (a selector term,
/// an `except`, a namespace label).
#[test]
fn a_denial_lists_every_rule_and_peer_that_missed() {
    let e = run("shop/web", "shop/db", 5432, Protocol::Tcp);
    assert_eq!(
        to_text(&e),
        r#"pod shop/web (10.1.0.1) -> pod shop/db (10.1.0.2) TCP 5432: DENIED
Egress of shop/web: allowed by
  - NetworkPolicy shop/web-egress spec.egress[0]
Ingress of shop/db: DENIED (isolated for ingress by 1 policy; no rule allows this flow)
  - NetworkPolicy shop/db-ingress
      rule 0: from[0]: podSelector needs app in (api, batch); pod shop/web has app=web
      rule 0: from[1]: ipBlock 10.1.0.0/16 excludes 10.1.0.1 (except 10.1.0.0/30)
      rule 1: from[0]: namespaceSelector needs role=core; namespace shop has role=tenant
"#
    );
    assert_eq!(
        serde_json::to_string_pretty(&e).unwrap(),
        r#"{
  "from": "pod shop/web (10.1.0.1)",
  "to": "pod shop/db (10.1.0.2)",
  "port": 5432,
  "protocol": "TCP",
  "allowed": false,
  "egress": {
    "direction": "egress",
    "pod": "shop/web",
    "decision": "allowed",
    "by": [
      {
        "policy": {
          "namespace": "shop",
          "name": "web-egress"
        },
        "rule": 0
      }
    ]
  },
  "ingress": {
    "direction": "ingress",
    "pod": "shop/db",
    "decision": "denied",
    "isolating": [
      {
        "policy": {
          "namespace": "shop",
          "name": "db-ingress"
        },
        "rules": [
          {
            "rule": 0,
            "reasons": [
              "from[0]: podSelector needs app in (api, batch); pod shop/web has app=web",
              "from[1]: ipBlock 10.1.0.0/16 excludes 10.1.0.1 (except 10.1.0.0/30)"
            ]
          },
          {
            "rule": 1,
            "reasons": [
              "from[0]: namespaceSelector needs role=core; namespace shop has role=tenant"
            ]
          }
        ]
      }
    ]
  }
}"#
    );
}

/// A hostNetwork pod and a pod on its node: neither side is enforced.
#[test]
fn a_pod_and_its_node_are_never_enforced() {
    let e = run("ops/agent", "shop/db", 5432, Protocol::Tcp);
    assert_eq!(
        to_text(&e),
        r#"pod ops/agent (192.168.0.100) -> pod shop/db (10.1.0.2) TCP 5432: ALLOWED
Egress of ops/agent: allowed (traffic between pod shop/db and its node (192.168.0.100) is always allowed)
Ingress of shop/db: allowed (traffic between pod shop/db and its node (192.168.0.100) is always allowed)
"#
    );
}

/// An address outside the cluster: not a pod for selector peers, outside the ipBlock, and a port
/// none of the rule's ports allows (its named port resolved on the destination pod).
#[test]
fn an_address_outside_the_cluster_misses_selectors_blocks_and_ports() {
    let e = run("203.0.113.7", "shop/db", 6011, Protocol::Tcp);
    assert_eq!(
        to_text(&e),
        r#"203.0.113.7 -> pod shop/db (10.1.0.2) TCP 6011: DENIED
Egress: allowed (203.0.113.7 is not a pod in the cluster: its egress is not governed by NetworkPolicy)
Ingress of shop/db: DENIED (isolated for ingress by 1 policy; no rule allows this flow)
  - NetworkPolicy shop/db-ingress
      rule 0: allows ports sql, 6000-6010/TCP only (named port sql is 5432 on pod shop/db)
      rule 0: from[0]: selects pods; 203.0.113.7 is not a pod
      rule 0: from[1]: ipBlock 10.1.0.0/16 does not contain 203.0.113.7
      rule 1: from[0]: selects pods; 203.0.113.7 is not a pod
"#
    );
    assert_eq!(
        serde_json::to_string_pretty(&e).unwrap(),
        r#"{
  "from": "203.0.113.7",
  "to": "pod shop/db (10.1.0.2)",
  "port": 6011,
  "protocol": "TCP",
  "allowed": false,
  "egress": {
    "direction": "egress",
    "pod": null,
    "decision": "unenforced",
    "reason": "203.0.113.7 is not a pod in the cluster: its egress is not governed by NetworkPolicy"
  },
  "ingress": {
    "direction": "ingress",
    "pod": "shop/db",
    "decision": "denied",
    "isolating": [
      {
        "policy": {
          "namespace": "shop",
          "name": "db-ingress"
        },
        "rules": [
          {
            "rule": 0,
            "ports": [
              "sql/TCP",
              "6000-6010/TCP"
            ],
            "reasons": [
              "allows ports sql, 6000-6010/TCP only (named port sql is 5432 on pod shop/db)",
              "from[0]: selects pods; 203.0.113.7 is not a pod",
              "from[1]: ipBlock 10.1.0.0/16 does not contain 203.0.113.7"
            ]
          },
          {
            "rule": 1,
            "reasons": [
              "from[0]: selects pods; 203.0.113.7 is not a pod"
            ]
          }
        ]
      }
    ]
  }
}"#
    );
}

/// ICMP against a rule with ports, to an address outside the cluster.
#[test]
fn icmp_misses_every_rule_with_ports() {
    let e = run("shop/web", "203.0.113.7", 0, Protocol::Icmp);
    assert_eq!(
        to_text(&e),
        r#"pod shop/web (10.1.0.1) -> 203.0.113.7 ICMP 0: DENIED
Egress of shop/web: DENIED (isolated for egress by 1 policy; no rule allows this flow)
  - NetworkPolicy shop/web-egress
      rule 0: allows port sql/TCP only; ICMP is allowed only by rules without ports
      rule 0: to[0]: selects pods; 203.0.113.7 is not a pod
Ingress: allowed (203.0.113.7 is not a pod in the cluster: its ingress is not governed by NetworkPolicy)
"#
    );
}

/// A pod to itself.
#[test]
fn a_pod_may_reach_itself() {
    let e = run("shop/db", "shop/db", 80, Protocol::Tcp);
    assert_eq!(
        to_text(&e),
        r#"pod shop/db (10.1.0.2) -> pod shop/db (10.1.0.2) TCP 80: ALLOWED
Egress of shop/db: allowed (a pod may always reach itself)
Ingress of shop/db: allowed (a pod may always reach itself)
"#
    );
}

/// Cluster-wide policies around the NetworkPolicies above.
const TIERS: &str = r#"
---
apiVersion: policy.networking.k8s.io/v1alpha2
kind: ClusterNetworkPolicy
metadata: {name: deny-imds}
spec:
  tier: Admin
  priority: 10
  subject: {namespaces: {}}
  egress:
  - {name: block-metadata, action: Deny, to: [{networks: [169.254.169.254/32]}]}
  - {name: tenants-pass, action: Pass, to: [{namespaces: {matchLabels: {role: tenant}}}]}
---
apiVersion: policy.networking.k8s.io/v1alpha2
kind: ClusterNetworkPolicy
metadata: {name: baseline-deny}
spec:
  tier: Baseline
  priority: 100
  subject: {namespaces: {}}
  ingress:
  - {name: default-deny, action: Deny, from: [{namespaces: {}}]}
"#;

fn run_tiers(from: &str, to: &str, port: u16) -> Explanation {
    run_in(&format!("{CLUSTER}{TIERS}"), from, to, port, Protocol::Tcp)
}

/// The tiers walked in order, each step named: an Admin Deny; an Admin Pass on to NetworkPolicy;
/// a Pass on to the default where nothing isolates, and a Baseline Deny.
#[test]
fn the_tiers_are_walked_in_order_and_each_step_named() {
    let e = run_tiers("shop/web", "169.254.169.254", 80);
    assert_eq!(
        to_text(&e),
        r#"pod shop/web (10.1.0.1) -> 169.254.169.254 TCP 80: DENIED
Egress of shop/web: DENIED by the Admin tier
  Admin: ClusterNetworkPolicy deny-imds spec.egress[0] `block-metadata` (Admin, priority 10) → Deny
Ingress: allowed (169.254.169.254 is not a pod in the cluster: its ingress is not governed by NetworkPolicy)
"#
    );
    let json = serde_json::to_value(&e).unwrap();
    let rule = serde_json::json!({
        "kind": "ClusterNetworkPolicy",
        "policy": "deny-imds",
        "tier": "Admin",
        "priority": 10,
        "rule": 0,
        "name": "block-metadata",
        "action": "Deny",
        "text": "ClusterNetworkPolicy deny-imds spec.egress[0] `block-metadata` (Admin, priority 10) → Deny"
    });
    assert_eq!(
        json["egress"],
        serde_json::json!({
            "direction": "egress",
            "pod": "shop/web",
            "decision": "tier",
            "rule": rule,
            "admin": {
                "policies": ["ClusterNetworkPolicy deny-imds"],
                "matched": rule,
                "text": "ClusterNetworkPolicy deny-imds spec.egress[0] `block-metadata` (Admin, priority 10) → Deny"
            }
        })
    );
    let e = run_tiers("shop/web", "shop/db", 5432);
    assert_eq!(
        to_text(&e),
        r#"pod shop/web (10.1.0.1) -> pod shop/db (10.1.0.2) TCP 5432: DENIED
Egress of shop/web: allowed by NetworkPolicy
  Admin: Pass by ClusterNetworkPolicy deny-imds spec.egress[1] `tenants-pass` (Admin, priority 10) → on to NetworkPolicy
  - NetworkPolicy shop/web-egress spec.egress[0]
Ingress of shop/db: DENIED (isolated for ingress by 1 policy; no rule allows this flow)
  - NetworkPolicy shop/db-ingress
      rule 0: from[0]: podSelector needs app in (api, batch); pod shop/web has app=web
      rule 0: from[1]: ipBlock 10.1.0.0/16 excludes 10.1.0.1 (except 10.1.0.0/30)
      rule 1: from[0]: namespaceSelector needs role=core; namespace shop has role=tenant
"#
    );
    let e = run_tiers("shop/db", "shop/web", 8080);
    assert_eq!(
        to_text(&e),
        r#"pod shop/db (10.1.0.2) -> pod shop/web (10.1.0.1) TCP 8080: DENIED
Egress of shop/db: allowed (no NetworkPolicy isolates the pod for egress, and no cluster-wide rule decides)
  Admin: Pass by ClusterNetworkPolicy deny-imds spec.egress[1] `tenants-pass` (Admin, priority 10) → on to NetworkPolicy
  default: allowed
Ingress of shop/web: DENIED by the Baseline tier
  Baseline: ClusterNetworkPolicy baseline-deny spec.ingress[0] `default-deny` (Baseline, priority 100) → Deny
"#
    );
}

const STAGED: &str = r#"
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: lockdown, namespace: shop, annotations: {policy.palisade.dev/audit-mode: "true"}}
spec: {podSelector: {matchLabels: {app: web}}, policyTypes: [Ingress]}
---
apiVersion: policy.networking.k8s.io/v1alpha2
kind: ClusterNetworkPolicy
metadata: {name: open-db, annotations: {policy.palisade.dev/audit-mode: "true"}}
spec:
  tier: Admin
  priority: 20
  subject: {pods: {namespaceSelector: {}, podSelector: {matchLabels: {app: db}}}}
  ingress:
  - {name: web-in, action: Accept, from: [{pods: {namespaceSelector: {}, podSelector: {matchLabels: {app: web}}}}]}
"#;

/// Explains `from -> to` in the cluster above with staged policies: as enforced, and what they
/// would change.
fn run_staged(from: &str, to: &str, port: u16) -> Explanation {
    let text = format!("{CLUSTER}{STAGED}");
    let (state, flow) = flow_in(&text, from, to, port, Protocol::Tcp);
    explain_staged(&Engines::new(Arc::new(state)), flow)
}

/// Staged policies change nothing enforced; explain shows the enforced verdict, then what they
/// would change and who would decide it (a staged NetworkPolicy isolating, a staged Admin Accept).
#[test]
fn staged_policies_are_explained_after_the_enforced_verdict() {
    let e = run_staged("shop/db", "shop/web", 8080);
    assert_eq!(
        to_text(&e),
        r#"pod shop/db (10.1.0.2) -> pod shop/web (10.1.0.1) TCP 8080: ALLOWED
Egress of shop/db: allowed (no NetworkPolicy selects the pod for egress: not isolated)
Ingress of shop/web: allowed (no NetworkPolicy selects the pod for ingress: not isolated)
staged: would DENY (policies annotated policy.palisade.dev/audit-mode: logged, not enforced)
  Ingress of shop/web: would DENY — by NetworkPolicy shop/lockdown (audit-mode)
"#
    );
    let json = serde_json::to_value(&e).unwrap();
    assert_eq!(json["allowed"], true, "the enforced verdict");
    assert_eq!(
        json["staged"],
        serde_json::json!({
            "allowed": false,
            "changed": [{
                "direction": "ingress",
                "pod": "shop/web",
                "decision": "denied",
                "isolating": [{"policy": {"namespace": "shop", "name": "lockdown"}, "rules": []}]
            }],
            "by": ["NetworkPolicy shop/lockdown (audit-mode)"]
        })
    );
    let e = run_staged("shop/web", "shop/db", 5432);
    assert_eq!(
        to_text(&e),
        r#"pod shop/web (10.1.0.1) -> pod shop/db (10.1.0.2) TCP 5432: DENIED
Egress of shop/web: allowed by
  - NetworkPolicy shop/web-egress spec.egress[0]
Ingress of shop/db: DENIED (isolated for ingress by 1 policy; no rule allows this flow)
  - NetworkPolicy shop/db-ingress
      rule 0: from[0]: podSelector needs app in (api, batch); pod shop/web has app=web
      rule 0: from[1]: ipBlock 10.1.0.0/16 excludes 10.1.0.1 (except 10.1.0.0/30)
      rule 1: from[0]: namespaceSelector needs role=core; namespace shop has role=tenant
staged: would ALLOW (policies annotated policy.palisade.dev/audit-mode: logged, not enforced)
  Ingress of shop/db: would ALLOW — by ClusterNetworkPolicy open-db spec.ingress[0] `web-in` (Admin, priority 20) → Accept (audit-mode)
"#
    );
    // Where they change nothing, nothing is said.
    let e = run_staged("shop/web", "10.9.9.9", 80);
    assert!(e.staged.is_none(), "{}", to_text(&e));
}

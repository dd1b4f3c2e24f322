//! One test (at least) per statement of `shared/reference/networkpolicy.md` §1–4. Each builds a tiny
//! cluster from YAML and checks the per-flow verdict (and its reasons) and the class-level reach,
//! which must agree.

use palisade_model::{Loader, Protocol};
use palisade_policy::{Decision, Endpoint, Engine, Flow, Verdict};
use std::sync::Arc;

/// Namespaces x (team=a) and y (team=b); pods with IPs and named ports; plus `extra` YAML.
const BASE: &str = r#"
apiVersion: v1
kind: Namespace
metadata: {name: x, labels: {team: a}}
---
apiVersion: v1
kind: Namespace
metadata: {name: y, labels: {team: b}}
---
apiVersion: v1
kind: Pod
metadata: {name: a, namespace: x, labels: {app: a, tier: fe}}
spec: {containers: [{name: c, image: i, ports: [{name: http, containerPort: 8080}, {name: dns, containerPort: 53, protocol: UDP}]}]}
status: {podIP: 10.0.1.1}
---
apiVersion: v1
kind: Pod
metadata: {name: b, namespace: x, labels: {app: b}}
spec: {containers: [{name: c, image: i, ports: [{name: http, containerPort: 9090}]}]}
status: {podIP: 10.0.1.2}
---
apiVersion: v1
kind: Pod
metadata: {name: a, namespace: y, labels: {app: a}}
spec: {containers: [{name: c, image: i}]}
status: {podIP: 10.0.2.1}
---
apiVersion: v1
kind: Pod
metadata: {name: h, namespace: y, labels: {app: h}}
spec: {hostNetwork: true, containers: [{name: c, image: i}]}
status: {podIP: 192.168.0.10, hostIP: 192.168.0.10}
"#;

struct Cluster {
    engine: Engine,
}

fn cluster(extra: &str) -> Cluster {
    let mut loader = Loader::new();
    loader.load_str("base.yaml", BASE);
    loader.load_str("policies.yaml", extra);
    let (state, diags) = loader.finish();
    let errors: Vec<_> = diags
        .iter()
        .filter(|d| d.is_error())
        .map(|d| d.to_string())
        .collect();
    assert!(errors.is_empty(), "{errors:?}");
    Cluster {
        engine: Engine::new(Arc::new(state)),
    }
}

fn policy(ns: &str, name: &str, spec: &str) -> String {
    format!("---\napiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {{name: {name}, namespace: {ns}}}\nspec: {spec}\n")
}

impl Cluster {
    fn endpoint(&self, e: &str) -> Endpoint {
        if let Ok(ip) = e.parse() {
            return Endpoint::Ip(ip);
        }
        let (ns, name) = e.split_once('/').unwrap();
        Endpoint::Pod(
            self.engine
                .state()
                .pod_idx(ns, name)
                .unwrap_or_else(|| panic!("no pod {e}")),
        )
    }

    /// The verdict; for pod pairs also checks that the class-level reach agrees.
    fn verdict(&self, from: &str, to: &str, port: u16, protocol: Protocol) -> Verdict {
        let (src, dst) = (self.endpoint(from), self.endpoint(to));
        let v = self.engine.verdict(&Flow {
            src,
            dst,
            port,
            protocol,
        });
        if let (Endpoint::Pod(s), Endpoint::Pod(d)) = (src, dst) {
            let reach = self.engine.reach(port, protocol);
            let class = s == d || reach.allowed(self.engine.class_of(s), self.engine.class_of(d));
            assert_eq!(
                class, v.allowed,
                "class reach and verdict disagree for {from} -> {to}"
            );
        }
        v
    }

    fn allowed(&self, from: &str, to: &str, port: u16) -> bool {
        self.verdict(from, to, port, Protocol::Tcp).allowed
    }
}

fn reasons(d: &Decision) -> String {
    match d {
        Decision::Denied { isolating } => isolating
            .iter()
            .flat_map(|m| m.rules.iter().flat_map(|r| r.reasons.clone()))
            .collect::<Vec<_>>()
            .join(" | "),
        other => panic!("expected denied, got {other:?}"),
    }
}

// §1 A policy in namespace N selects the pods of N that match spec.podSelector; {} selects every pod of N.
#[test]
fn empty_pod_selector_selects_every_pod_of_its_namespace_only() {
    let c = cluster(&policy(
        "x",
        "deny",
        "{podSelector: {}, policyTypes: [Ingress]}",
    ));
    assert!(!c.allowed("y/a", "x/a", 80));
    assert!(!c.allowed("y/a", "x/b", 80));
    assert_eq!(
        c.verdict("x/a", "y/a", 80, Protocol::Tcp).ingress.decision,
        Decision::NotIsolated
    );
}

// §1 Pods with hostNetwork: true are never selected and never enforced.
#[test]
fn host_network_pods_are_never_selected() {
    let c = cluster(&policy(
        "y",
        "deny",
        "{podSelector: {}, policyTypes: [Ingress, Egress]}",
    ));
    let v = c.verdict("x/a", "y/h", 80, Protocol::Tcp);
    assert!(v.allowed);
    assert!(matches!(v.ingress.decision, Decision::Unenforced { .. }));
    assert!(!c.allowed("x/a", "y/a", 80));
}

// §1 Effective policyTypes: non-empty spec.policyTypes is used; otherwise Ingress, plus Egress iff
// spec.egress has at least one rule (egress: [] does NOT imply Egress).
#[test]
fn effective_policy_types() {
    let c = cluster(&policy(
        "x",
        "p",
        "{podSelector: {matchLabels: {app: a}}, egress: []}",
    ));
    assert!(
        c.allowed("x/a", "y/a", 80),
        "egress: [] does not isolate egress"
    );
    assert!(!c.allowed("y/a", "x/a", 80), "Ingress is implied");
    let c = cluster(&policy(
        "x",
        "p",
        "{podSelector: {matchLabels: {app: a}}, egress: [{to: [{podSelector: {}}]}]}",
    ));
    assert!(
        !c.allowed("x/a", "y/a", 80),
        "one egress rule implies Egress"
    );
    assert!(c.allowed("x/a", "x/b", 80));
    let c = cluster(&policy(
        "x",
        "p",
        "{podSelector: {matchLabels: {app: a}}, policyTypes: [Egress], ingress: []}",
    ));
    assert!(
        c.allowed("y/a", "x/a", 80),
        "explicit policyTypes wins over ingress: []"
    );
    assert!(!c.allowed("x/a", "y/a", 80));
}

// §1 Isolation per direction; the two directions are independent. Not isolated ⇒ everything allowed.
#[test]
fn directions_are_independent() {
    let c = cluster(&policy(
        "x",
        "p",
        "{podSelector: {matchLabels: {app: a}}, policyTypes: [Egress]}",
    ));
    assert!(!c.allowed("x/a", "x/b", 80));
    assert!(c.allowed("x/b", "x/a", 80));
    let v = c.verdict("x/b", "x/a", 80, Protocol::Tcp);
    assert_eq!(v.ingress.decision, Decision::NotIsolated);
    assert_eq!(v.egress.decision, Decision::NotIsolated);
}

// §1 Isolated ⇒ allowed only what at least one rule of at least one selecting policy allows; additive.
#[test]
fn policies_are_additive() {
    let yaml = policy("x", "p1", "{podSelector: {matchLabels: {app: a}}, ingress: [{from: [{podSelector: {matchLabels: {app: b}}}], ports: [{port: 80}]}]}")
        + &policy("x", "p2", "{podSelector: {matchLabels: {app: a}}, ingress: [{from: [{namespaceSelector: {matchLabels: {team: b}}}], ports: [{port: 81}]}]}");
    let c = cluster(&yaml);
    assert!(c.allowed("x/b", "x/a", 80));
    assert!(!c.allowed("x/b", "x/a", 81));
    assert!(c.allowed("y/a", "x/a", 81));
    assert!(!c.allowed("y/a", "x/a", 80));
    match c.verdict("x/b", "x/a", 80, Protocol::Tcp).ingress.decision {
        Decision::Allowed { by } => {
            assert_eq!(by.len(), 1);
            assert_eq!((by[0].policy.name.as_str(), by[0].rule), ("p1", 0));
        }
        d => panic!("{d:?}"),
    }
    let v = c.verdict("x/b", "x/a", 82, Protocol::Tcp);
    let Decision::Denied { isolating } = &v.ingress.decision else {
        panic!()
    };
    assert_eq!(isolating.len(), 2, "both isolating policies are reported");
}

// §1 A connection is allowed iff the source's egress AND the destination's ingress allow it.
#[test]
fn both_ends_must_allow() {
    let yaml = policy("x", "eg", "{podSelector: {matchLabels: {app: a}}, policyTypes: [Egress], egress: [{ports: [{port: 80}]}]}")
        + &policy("y", "in", "{podSelector: {}, ingress: [{ports: [{port: 81}]}]}");
    let c = cluster(&yaml);
    let v = c.verdict("x/a", "y/a", 80, Protocol::Tcp);
    assert!(!v.allowed && v.egress.decision.allows() && !v.ingress.decision.allows());
    let v = c.verdict("x/a", "y/a", 81, Protocol::Tcp);
    assert!(!v.allowed && !v.egress.decision.allows() && v.ingress.decision.allows());
    assert!(c.allowed("x/b", "y/a", 81));
}

// §1 Always allowed: a pod to itself. A policy whose selector matches no pod has no effect.
#[test]
fn self_traffic_and_selectors_matching_nothing() {
    let c = cluster(&policy(
        "x",
        "deny",
        "{podSelector: {}, policyTypes: [Ingress, Egress]}",
    ));
    let v = c.verdict("x/a", "x/a", 80, Protocol::Tcp);
    assert!(v.allowed);
    assert!(matches!(v.ingress.decision, Decision::Unenforced { .. }));
    let c = cluster(&policy(
        "x",
        "none",
        "{podSelector: {matchLabels: {app: nobody}}, policyTypes: [Ingress, Egress]}",
    ));
    assert!(c.allowed("y/a", "x/a", 80) && c.allowed("x/a", "y/a", 80));
}

// §2 Missing or empty from/to matches every source/destination, including outside the cluster.
#[test]
fn missing_or_empty_peers_match_everything() {
    let c = cluster(&policy("x", "p", "{podSelector: {matchLabels: {app: a}}, ingress: [{ports: [{port: 80}]}], egress: [{to: [], ports: [{port: 443}]}]}"));
    assert!(c.verdict("203.0.113.7", "x/a", 80, Protocol::Tcp).allowed);
    assert!(c.allowed("y/a", "x/a", 80));
    assert!(c.verdict("x/a", "203.0.113.7", 443, Protocol::Tcp).allowed);
    assert!(!c.verdict("x/a", "203.0.113.7", 80, Protocol::Tcp).allowed);
}

// §2 ports missing or empty ⇒ every port of every protocol; a rule matches iff peer AND port match.
#[test]
fn missing_or_empty_ports_match_every_port_and_protocol() {
    let c = cluster(&policy("x", "p", "{podSelector: {matchLabels: {app: a}}, ingress: [{from: [{podSelector: {matchLabels: {app: b}}}], ports: []}]}"));
    for (port, proto) in [
        (1, Protocol::Tcp),
        (65535, Protocol::Udp),
        (9, Protocol::Sctp),
        (0, Protocol::Icmp),
    ] {
        assert!(
            c.verdict("x/b", "x/a", port, proto).allowed,
            "{port}/{proto}"
        );
    }
    assert!(!c.allowed("y/a", "x/a", 80), "peer must match too");
}

// §2 ingress: [{}] allows everything; ingress: [] (or missing, with Ingress) allows nothing.
#[test]
fn allow_all_and_deny_all_rule_lists() {
    let c = cluster(&policy("x", "all", "{podSelector: {}, ingress: [{}]}"));
    assert!(
        c.allowed("y/a", "x/a", 80) && c.verdict("203.0.113.1", "x/b", 5, Protocol::Udp).allowed
    );
    let c = cluster(&policy("x", "none", "{podSelector: {}, ingress: []}"));
    let v = c.verdict("y/a", "x/a", 80, Protocol::Tcp);
    assert!(!v.allowed);
    let Decision::Denied { isolating } = &v.ingress.decision else {
        panic!()
    };
    assert!(isolating[0].rules.is_empty(), "no rules: denies all");
    let c = cluster(&policy(
        "x",
        "none",
        "{podSelector: {}, policyTypes: [Ingress]}",
    ));
    assert!(!c.allowed("x/b", "x/a", 80));
}

// §3 podSelector alone: pods in the policy's own namespace that match.
#[test]
fn pod_selector_alone_is_the_policys_namespace() {
    let c = cluster(&policy("x", "p", "{podSelector: {matchLabels: {app: b}}, ingress: [{from: [{podSelector: {matchLabels: {app: a}}}]}]}"));
    assert!(c.allowed("x/a", "x/b", 80));
    let v = c.verdict("y/a", "x/b", 80, Protocol::Tcp);
    assert!(!v.allowed);
    assert!(reasons(&v.ingress.decision)
        .contains("selects pods in namespace x only; pod y/a is in namespace y"));
}

// §3 namespaceSelector alone: all pods in matching namespaces ({} = every namespace).
#[test]
fn namespace_selector_alone() {
    let c = cluster(&policy("x", "p", "{podSelector: {matchLabels: {app: a}}, ingress: [{from: [{namespaceSelector: {matchLabels: {team: b}}}]}]}"));
    assert!(c.allowed("y/a", "x/a", 80));
    let v = c.verdict("x/b", "x/a", 80, Protocol::Tcp);
    assert!(reasons(&v.ingress.decision)
        .contains("namespaceSelector needs team=b; namespace x has team=a"));
    let c = cluster(&policy(
        "x",
        "p",
        "{podSelector: {matchLabels: {app: a}}, ingress: [{from: [{namespaceSelector: {}}]}]}",
    ));
    assert!(c.allowed("y/a", "x/a", 80) && c.allowed("x/b", "x/a", 80));
    assert!(
        !c.verdict("203.0.113.1", "x/a", 80, Protocol::Tcp).allowed,
        "selectors match pods only"
    );
}

// §3 Both in ONE peer: AND. Two separate list items: OR.
#[test]
fn one_peer_is_and_two_peers_are_or() {
    let and = cluster(&policy("x", "p", "{podSelector: {matchLabels: {app: b}}, ingress: [{from: [{namespaceSelector: {matchLabels: {team: b}}, podSelector: {matchLabels: {app: a}}}]}]}"));
    assert!(and.allowed("y/a", "x/b", 80));
    assert!(!and.allowed("x/a", "x/b", 80));
    let or = cluster(&policy("x", "p", "{podSelector: {matchLabels: {app: b}}, ingress: [{from: [{namespaceSelector: {matchLabels: {team: b}}}, {podSelector: {matchLabels: {app: a}}}]}]}"));
    assert!(or.allowed("y/a", "x/b", 80));
    assert!(or.allowed("x/a", "x/b", 80));
}

// §3 ipBlock {cidr, except}: inside cidr and outside every except; matches pod IPs too; IPv4 and IPv6.
#[test]
fn ip_blocks_with_except_match_pods_and_external_addresses() {
    let yaml = policy("x", "p", "{podSelector: {matchLabels: {app: a}}, ingress: [{from: [{ipBlock: {cidr: 10.0.0.0/16, except: [10.0.2.0/24]}}, {ipBlock: {cidr: 'fd00::/64', except: ['fd00::/120']}}]}]}");
    let c = cluster(&yaml);
    assert!(
        c.allowed("x/b", "x/a", 80),
        "pod IP 10.0.1.2 is in the block"
    );
    let v = c.verdict("y/a", "x/a", 80, Protocol::Tcp);
    assert!(!v.allowed);
    assert!(reasons(&v.ingress.decision)
        .contains("ipBlock 10.0.0.0/16 excludes 10.0.2.1 (except 10.0.2.0/24)"));
    assert!(c.verdict("10.0.9.9", "x/a", 80, Protocol::Tcp).allowed);
    assert!(!c.verdict("10.1.0.1", "x/a", 80, Protocol::Tcp).allowed);
    assert!(c.verdict("fd00::1:1", "x/a", 80, Protocol::Tcp).allowed);
    assert!(!c.verdict("fd00::5", "x/a", 80, Protocol::Tcp).allowed);
    assert!(
        !c.verdict("192.168.0.10", "x/a", 80, Protocol::Tcp).allowed,
        "the node address is outside the blocks"
    );
}

// §3 Namespace labels include kubernetes.io/metadata.name, declared or implicit.
#[test]
fn namespace_name_label_is_always_there() {
    let yaml = policy("x", "p", "{podSelector: {matchLabels: {app: a}}, ingress: [{from: [{namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: z}}}]}]}")
        + "---\napiVersion: v1\nkind: Pod\nmetadata: {name: q, namespace: z}\nspec: {containers: [{name: c, image: i}]}\nstatus: {podIP: 10.0.3.1}\n";
    let c = cluster(&yaml);
    assert!(
        c.allowed("z/q", "x/a", 80),
        "z exists implicitly with its name label"
    );
    assert!(!c.allowed("y/a", "x/a", 80));
}

// §3 Label selectors: matchLabels AND matchExpressions; NotIn and DoesNotExist match objects without
// the key; empty selector matches everything.
#[test]
fn selector_operators() {
    let sel = |expr: &str| {
        cluster(&policy("x", "p", &format!("{{podSelector: {{matchLabels: {{app: a}}}}, ingress: [{{from: [{{namespaceSelector: {{}}, podSelector: {expr}}}]}}]}}")))
    };
    let c = sel("{matchExpressions: [{key: tier, operator: NotIn, values: [fe]}]}");
    assert!(
        c.allowed("x/b", "x/a", 80),
        "x/b has no tier: NotIn matches"
    );
    let c = sel("{matchExpressions: [{key: tier, operator: DoesNotExist}]}");
    assert!(c.allowed("y/a", "x/a", 80));
    let c = sel("{matchExpressions: [{key: app, operator: Exists}], matchLabels: {app: b}}");
    assert!(c.allowed("x/b", "x/a", 80) && !c.allowed("y/a", "x/a", 80));
    let c = sel("{matchExpressions: [{key: app, operator: In, values: [a, x]}]}");
    assert!(c.allowed("y/a", "x/a", 80) && !c.allowed("x/b", "x/a", 80));
    let v = c.verdict("x/b", "x/a", 80, Protocol::Tcp);
    assert!(
        reasons(&v.ingress.decision).contains("podSelector needs app in (a, x); pod x/b has app=b")
    );
}

// §4 protocol: TCP by default, UDP, SCTP distinct; ICMP allowed only by a rule with no ports.
#[test]
fn protocols() {
    let c = cluster(&policy("x", "p", "{podSelector: {matchLabels: {app: a}}, ingress: [{ports: [{port: 80}, {port: 53, protocol: UDP}, {port: 9, protocol: SCTP}]}]}"));
    assert!(c.allowed("x/b", "x/a", 80));
    assert!(!c.verdict("x/b", "x/a", 80, Protocol::Udp).allowed);
    assert!(c.verdict("x/b", "x/a", 53, Protocol::Udp).allowed);
    assert!(!c.allowed("x/b", "x/a", 53));
    assert!(c.verdict("x/b", "x/a", 9, Protocol::Sctp).allowed);
    assert!(!c.verdict("x/b", "x/a", 9, Protocol::Tcp).allowed);
    let v = c.verdict("x/b", "x/a", 0, Protocol::Icmp);
    assert!(!v.allowed);
    assert!(reasons(&v.ingress.decision).contains("ICMP is allowed only by rules without ports"));
    let c = cluster(&policy(
        "x",
        "p",
        "{podSelector: {matchLabels: {app: a}}, ingress: [{from: [{podSelector: {}}]}]}",
    ));
    assert!(c.verdict("x/b", "x/a", 0, Protocol::Icmp).allowed);
}

// §4 Missing port with a protocol = every port of it.
#[test]
fn protocol_without_port_is_every_port() {
    let c = cluster(&policy(
        "x",
        "p",
        "{podSelector: {matchLabels: {app: a}}, ingress: [{ports: [{protocol: UDP}]}]}",
    ));
    assert!(
        c.verdict("x/b", "x/a", 1, Protocol::Udp).allowed
            && c.verdict("x/b", "x/a", 65535, Protocol::Udp).allowed
    );
    assert!(!c.allowed("x/b", "x/a", 1));
}

// §4 Named ports resolve on the destination pod: the selected pod for ingress, each peer for egress;
// different pods may resolve differently; a pod without the name does not match.
#[test]
fn named_ports_resolve_on_the_destination() {
    let c = cluster(&policy(
        "x",
        "p",
        "{podSelector: {}, ingress: [{ports: [{port: http}]}]}",
    ));
    assert!(c.allowed("y/a", "x/a", 8080) && !c.allowed("y/a", "x/a", 9090));
    assert!(c.allowed("y/a", "x/b", 9090) && !c.allowed("y/a", "x/b", 8080));
    let c = cluster(&policy("x", "eg", "{podSelector: {matchLabels: {app: a}}, policyTypes: [Egress], egress: [{to: [{namespaceSelector: {}}], ports: [{port: http}]}]}"));
    assert!(c.allowed("x/a", "x/b", 9090), "resolved on the peer x/b");
    assert!(!c.allowed("x/a", "x/b", 8080));
    let v = c.verdict("x/a", "y/a", 8080, Protocol::Tcp);
    assert!(!v.allowed);
    assert!(
        reasons(&v.egress.decision).contains("named port http not found on pod y/a"),
        "{}",
        reasons(&v.egress.decision)
    );
}

// §4 A named port never matches an ipBlock destination.
#[test]
fn named_port_never_matches_an_ip_block_destination() {
    let c = cluster(&policy("x", "eg", "{podSelector: {matchLabels: {app: a}}, policyTypes: [Egress], egress: [{to: [{ipBlock: {cidr: 10.0.0.0/8}}], ports: [{port: http}]}]}"));
    let v = c.verdict("x/a", "x/b", 9090, Protocol::Tcp);
    assert!(
        !v.allowed,
        "x/b has http=9090 but is matched only by the ipBlock"
    );
    assert!(
        reasons(&v.egress.decision).contains("never matches an ipBlock destination"),
        "{}",
        reasons(&v.egress.decision)
    );
}

// §4 endPort: the range [port, endPort], inclusive.
#[test]
fn end_port_ranges_are_inclusive() {
    let c = cluster(&policy(
        "x",
        "p",
        "{podSelector: {matchLabels: {app: a}}, ingress: [{ports: [{port: 8000, endPort: 8080}]}]}",
    ));
    assert!(
        c.allowed("x/b", "x/a", 8000)
            && c.allowed("x/b", "x/a", 8080)
            && c.allowed("x/b", "x/a", 8040)
    );
    assert!(!c.allowed("x/b", "x/a", 7999) && !c.allowed("x/b", "x/a", 8081));
    let v = c.verdict("x/b", "x/a", 8081, Protocol::Tcp);
    assert!(reasons(&v.ingress.decision).contains("allows TCP 8000-8080 only"));
}

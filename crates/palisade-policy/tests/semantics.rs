//! One test (at least) for every statement of §1–§4 of `shared/reference/networkpolicy.md`.
//!
//! Each test builds a tiny cluster from YAML, adds policies, and checks the per-flow verdict (the
//! answer, the decision kind of both sides, which rules allowed or why the isolating policies did
//! not) AND the class-level `reach` answer for the same pod pair: the two must agree. Expected
//! results are derived from the reference, never from the engine's output.

use ipnet::IpNet;
use palisade_model::Protocol::{self, Icmp, Sctp, Tcp, Udp};
use palisade_model::{Diagnostic, Kind, Loader, PodId, TierAction};
use palisade_policy::{
    Decision, Endpoint, Engine, Flow, LabelOperator, LabelRequirement, NamedPort,
    NamedPortResolution, PeerMiss, PeerMissReason, PodRef, PortMatch, PortSpec, RuleMiss,
    SelectorMiss, SelectorTerm, Side, UnenforcedReason, Verdict,
};
use std::collections::BTreeSet;
use std::net::IpAddr;
use std::sync::Arc;
use LabelOperator::{DoesNotExist, Exists, In, NotIn};

// ---------------------------------------------------------------------------------------------
// Building clusters
// ---------------------------------------------------------------------------------------------

/// An external address (TEST-NET-3), outside every pod.
const EXT: &str = "203.0.113.7";

fn ns(name: &str, labels: &str) -> String {
    format!("apiVersion: v1\nkind: Namespace\nmetadata: {{name: {name}, labels: {labels}}}\n---\n")
}

/// A pod on node `n0` with `status.podIP` `ip` and container ports `ports` (a YAML flow list).
fn pod_ports(ns: &str, name: &str, labels: &str, ip: &str, ports: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}, namespace: {ns}, labels: {labels}}}\n\
         spec: {{nodeName: n0, containers: [{{name: main, image: app, ports: {ports}}}]}}\n\
         status: {{podIP: '{ip}', hostIP: '192.168.0.100'}}\n---\n"
    )
}

fn pod(ns: &str, name: &str, labels: &str, ip: &str) -> String {
    pod_ports(ns, name, labels, ip, "[]")
}

/// A pod on `node` placed in the node's network namespace (its address is the node's, `host_ip`).
fn host_pod(ns: &str, name: &str, labels: &str, node: &str, host_ip: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}, namespace: {ns}, labels: {labels}}}\n\
         spec: {{nodeName: {node}, hostNetwork: true, containers: [{{name: main, image: agent}}]}}\n\
         status: {{podIP: '{host_ip}', hostIP: '{host_ip}'}}\n---\n"
    )
}

/// A NetworkPolicy; `spec` is a YAML flow mapping.
fn np(ns: &str, name: &str, spec: &str) -> String {
    format!(
        "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {{name: {name}, namespace: {ns}}}\nspec: {spec}\n---\n"
    )
}

struct Cluster {
    engine: Engine,
}

/// Loads `docs`; returns the cluster and every diagnostic.
fn load(docs: &[String]) -> (Cluster, Vec<Diagnostic>) {
    let mut l = Loader::new();
    l.load_str("test.yaml", &docs.concat());
    let (state, diags) = l.finish();
    let engine = Engine::new(Arc::new(state));
    (Cluster { engine }, diags)
}

/// Loads `docs`, which must load without errors.
fn cluster(docs: &[String]) -> Cluster {
    let (c, diags) = load(docs);
    let errors: Vec<String> = diags
        .iter()
        .filter(|d| d.is_error())
        .map(|d| d.to_string())
        .collect();
    assert!(errors.is_empty(), "unexpected load errors: {errors:#?}");
    c
}

impl Cluster {
    /// `ns/name` of a pod, or an IP address.
    fn endpoint(&self, s: &str) -> Endpoint {
        if let Ok(ip) = s.parse::<IpAddr>() {
            return Endpoint::Ip(ip);
        }
        let (ns, name) = s.split_once('/').expect("ns/name or an IP");
        let i = self
            .engine
            .state()
            .pod_id(ns, name)
            .unwrap_or_else(|| panic!("no pod {s}"));
        Endpoint::Pod(i)
    }

    /// The pod an endpoint is (a pod, or an address some non-hostNetwork pod has).
    fn pod_of(&self, e: Endpoint) -> Option<PodId> {
        match e {
            Endpoint::Pod(i) => Some(i),
            Endpoint::Ip(ip) => self.engine.state().pod_by_ip(ip),
        }
    }

    /// The verdict for `src -> dst`, checked against `expect`; when both ends are (distinct) pods,
    /// the class-level `reach` answer is checked against `expect` too.
    fn check(&self, src: &str, dst: &str, port: u16, protocol: Protocol, expect: bool) -> Verdict {
        self.try_check(src, dst, port, protocol, expect)
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// Like [`Cluster::check`], but returns the mismatches (verdict and/or reach) instead of
    /// panicking, for tests that report every failing flow at once.
    fn try_check(
        &self,
        src: &str,
        dst: &str,
        port: u16,
        protocol: Protocol,
        expect: bool,
    ) -> Result<Verdict, String> {
        let (s, d) = (self.endpoint(src), self.endpoint(dst));
        let v = self.engine.verdict(&Flow {
            src: s,
            dst: d,
            port,
            protocol,
        });
        let what = if expect { "allowed" } else { "denied" };
        let mut errors = Vec::new();
        if v.allowed != expect {
            errors.push(format!(
                "verdict: {src} -> {dst} {protocol} {port} should be {what}; got {v:#?}"
            ));
        }
        if let (Some(a), Some(b)) = (self.pod_of(s), self.pod_of(d)) {
            if a != b {
                // Class-level reach answers for pairs no exception covers (the same pod, a pod and
                // its node: `Engine::always_allowed`).
                let reach = self.engine.always_allowed(a, b)
                    || self
                        .engine
                        .reach(port, protocol)
                        .allowed(self.engine.class_of(a), self.engine.class_of(b));
                if reach != expect {
                    errors.push(format!(
                        "reach: {src} -> {dst} {protocol} {port} should be {what}, reach says {reach}"
                    ));
                }
            }
        }
        if errors.is_empty() {
            Ok(v)
        } else {
            Err(errors.join("\n"))
        }
    }

    fn allowed(&self, src: &str, dst: &str, port: u16, protocol: Protocol) -> Verdict {
        self.check(src, dst, port, protocol, true)
    }

    fn denied(&self, src: &str, dst: &str, port: u16, protocol: Protocol) -> Verdict {
        self.check(src, dst, port, protocol, false)
    }
}

// ---------------------------------------------------------------------------------------------
// Decision assertions
// ---------------------------------------------------------------------------------------------

fn not_isolated(side: &Side) {
    assert_eq!(
        side.decision,
        Decision::NotIsolated,
        "{} side should be not isolated: {side:#?}",
        side.direction.as_str()
    );
}

fn unenforced(side: &Side, expected: UnenforcedReason) {
    match &side.decision {
        Decision::Unenforced { reason } => assert_eq!(
            *reason,
            expected,
            "{} side unenforced for another reason",
            side.direction.as_str()
        ),
        other => panic!(
            "{} side should be unenforced ({expected:?}): {other:#?}",
            side.direction.as_str()
        ),
    }
}

/// The side is allowed by exactly these rules `(namespace, policy, rule index)`.
fn allowed_by(side: &Side, expected: &[(&str, &str, usize)]) {
    let Decision::Allowed { by } = &side.decision else {
        panic!(
            "{} side should be Allowed by {expected:?}: {side:#?}",
            side.direction.as_str()
        );
    };
    let got: BTreeSet<(String, String, usize)> = by
        .iter()
        .map(|r| (r.policy.namespace.clone(), r.policy.name.clone(), r.rule))
        .collect();
    let want: BTreeSet<(String, String, usize)> = expected
        .iter()
        .map(|(n, p, r)| (n.to_string(), p.to_string(), *r))
        .collect();
    assert_eq!(
        got,
        want,
        "{} side allowed by the wrong rules",
        side.direction.as_str()
    );
}

/// One reason a denial must give, checked on the engine's data: some rule of some isolating policy
/// missed for it.
struct Why {
    what: String,
    holds: Box<dyn Fn(&RuleMiss) -> bool>,
}

fn why(what: String, holds: impl Fn(&RuleMiss) -> bool + 'static) -> Why {
    Why {
        what,
        holds: Box::new(holds),
    }
}

/// A rule whose `ports` (exactly these) do not allow the flow.
fn ports(specs: &[PortSpec]) -> Why {
    let specs = specs.to_vec();
    why(format!("ports {specs:?}"), move |m| {
        m.ports.as_ref().is_some_and(|p| p.allowed == specs)
    })
}

/// A rule with ports that an ICMP flow misses.
fn icmp_needs_a_rule_without_ports() -> Why {
    why("an ICMP port miss".into(), |m| {
        m.ports.as_ref().is_some_and(|p| p.protocol == Icmp)
    })
}

/// A rule's named port `name`, resolved as `resolution`, did not allow the flow.
fn named(name: &str, resolution: NamedPortResolution) -> Why {
    let expected = NamedPort {
        name: name.into(),
        resolution,
    };
    why(format!("{expected:?}"), move |m| {
        m.ports
            .as_ref()
            .is_some_and(|p| p.named.contains(&expected))
    })
}

/// A hostNetwork pod, which no policy selects.
fn host_network(pod: &str) -> UnenforcedReason {
    UnenforcedReason::HostNetwork { pod: pod_ref(pod) }
}

/// An address that is no pod's, which no policy enforces on.
fn address(address: &str) -> UnenforcedReason {
    UnenforcedReason::NotAPod {
        address: Some(ip(address)),
    }
}

/// A named port that is `port` on the destination pod `pod`.
fn resolved(pod: &str, port: u16) -> NamedPortResolution {
    NamedPortResolution::Port {
        pod: pod_ref(pod),
        port,
    }
}

/// A named port the destination pod `pod` does not have.
fn not_found(pod: &str) -> NamedPortResolution {
    NamedPortResolution::NotFound { pod: pod_ref(pod) }
}

/// Peer `peer` of a rule missed for exactly `reason`.
fn peer(peer: usize, reason: PeerMissReason) -> Why {
    let expected = PeerMiss { peer, reason };
    why(format!("{expected:?}"), move |m| {
        m.peers.contains(&expected)
    })
}

fn pod_ref(key: &str) -> PodRef {
    let (namespace, name) = key.split_once('/').expect("ns/name");
    PodRef {
        namespace: namespace.into(),
        name: name.into(),
    }
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn net(s: &str) -> IpNet {
    s.parse().unwrap()
}

/// `{protocol, port: lo, endPort: hi}`.
fn range(protocol: Protocol, lo: u16, hi: u16) -> PortSpec {
    PortSpec {
        protocol,
        port: PortMatch::Range(lo, hi),
    }
}

/// `{protocol, port}`.
fn number(protocol: Protocol, port: u16) -> PortSpec {
    range(protocol, port, port)
}

/// `{protocol}` without a port.
fn any_port(protocol: Protocol) -> PortSpec {
    PortSpec {
        protocol,
        port: PortMatch::Any,
    }
}

fn named_spec(protocol: Protocol, name: &str) -> PortSpec {
    PortSpec {
        protocol,
        port: PortMatch::Named(name.into()),
    }
}

/// A `matchLabels` entry.
fn label(key: &str, value: &str) -> LabelRequirement {
    LabelRequirement {
        term: SelectorTerm::MatchLabels,
        key: key.into(),
        operator: LabelOperator::In,
        values: vec![value.into()],
    }
}

/// `matchExpressions[index]`.
fn expression(
    index: usize,
    key: &str,
    operator: LabelOperator,
    values: &[&str],
) -> LabelRequirement {
    LabelRequirement {
        term: SelectorTerm::MatchExpressions(index),
        key: key.into(),
        operator,
        values: values.iter().map(|v| v.to_string()).collect(),
    }
}

fn pod_selector(pod: &str, requirement: LabelRequirement, found: Option<&str>) -> PeerMissReason {
    PeerMissReason::PodSelector {
        pod: pod_ref(pod),
        miss: SelectorMiss {
            requirement,
            found: found.map(Into::into),
        },
    }
}

fn namespace_selector(
    namespace: &str,
    requirement: LabelRequirement,
    found: Option<&str>,
) -> PeerMissReason {
    PeerMissReason::NamespaceSelector {
        namespace: namespace.into(),
        miss: SelectorMiss {
            requirement,
            found: found.map(Into::into),
        },
    }
}

/// A `podSelector` alone (the policy's namespace `namespace`) and a pod of another namespace.
fn other_namespace(namespace: &str, pod: &str) -> PeerMissReason {
    PeerMissReason::OtherNamespace {
        namespace: namespace.into(),
        pod: pod_ref(pod),
    }
}

fn outside(cidr: &str, address: &str) -> PeerMissReason {
    PeerMissReason::OutsideBlock {
        cidr: net(cidr),
        address: ip(address),
    }
}

fn excepted(cidr: &str, address: &str, except: &str) -> PeerMissReason {
    PeerMissReason::Excepted {
        cidr: net(cidr),
        address: ip(address),
        except: net(except),
    }
}

/// A selector peer and an address that is no pod's.
fn not_a_pod(address: &str) -> PeerMissReason {
    PeerMissReason::NotAPod {
        address: Some(ip(address)),
    }
}

/// The misses of every rule of every isolating policy of a denied side.
fn rule_misses(side: &Side) -> Vec<&RuleMiss> {
    match &side.decision {
        Decision::Denied { isolating } => isolating.iter().flat_map(|m| &m.rules).collect(),
        _ => Vec::new(),
    }
}

/// The side is denied, the isolating policies are exactly `policies`, and each of `reasons` is
/// given by some rule.
fn denied_by(side: &Side, policies: &[(&str, &str)], reasons: &[Why]) {
    let Decision::Denied { isolating } = &side.decision else {
        panic!(
            "{} side should be Denied by {policies:?}: {side:#?}",
            side.direction.as_str()
        );
    };
    let got: BTreeSet<(String, String)> = isolating
        .iter()
        .map(|m| (m.policy.namespace.clone(), m.policy.name.clone()))
        .collect();
    let want: BTreeSet<(String, String)> = policies
        .iter()
        .map(|(n, p)| (n.to_string(), p.to_string()))
        .collect();
    assert_eq!(
        got,
        want,
        "{} side: wrong isolating policies",
        side.direction.as_str()
    );
    let misses = rule_misses(side);
    for r in reasons {
        assert!(
            misses.iter().any(|m| (r.holds)(m)),
            "{} side: no rule missed for {}; the misses are: {misses:#?}",
            side.direction.as_str(),
            r.what
        );
    }
}

/// The side is denied by policies none of which has a rule for the direction.
fn denied_without_rules(side: &Side, policies: &[(&str, &str)]) {
    denied_by(side, policies, &[]);
    let Decision::Denied { isolating } = &side.decision else {
        unreachable!()
    };
    for m in isolating {
        assert!(
            m.rules.is_empty(),
            "policy {}/{} should have no rules here: {m:#?}",
            m.policy.namespace,
            m.policy.name
        );
    }
}

// =============================================================================================
// §1 Selection and isolation
// =============================================================================================

// §1: "A policy in namespace N *selects* the pods of N that match `spec.podSelector`."
#[test]
fn s1_policy_selects_the_pods_of_its_namespace_matching_pod_selector() {
    let c = cluster(&[
        pod("x", "web", "{app: web}", "10.1.0.1"),
        pod("x", "db", "{app: db}", "10.1.0.2"),
        pod("y", "web", "{app: web}", "10.2.0.1"),
        pod("z", "client", "{app: client}", "10.3.0.1"),
        np(
            "x",
            "deny-web",
            "{podSelector: {matchLabels: {app: web}}, policyTypes: [Ingress]}",
        ),
    ]);
    let v = c.denied("z/client", "x/web", 80, Tcp);
    denied_without_rules(&v.ingress, &[("x", "deny-web")]);
    not_isolated(&v.egress);
    // Same namespace, labels do not match.
    let v = c.allowed("z/client", "x/db", 80, Tcp);
    not_isolated(&v.ingress);
    // Labels match, but another namespace.
    let v = c.allowed("z/client", "y/web", 80, Tcp);
    not_isolated(&v.ingress);
}

// §1: "`{}` selects every pod of N."
#[test]
fn s1_empty_pod_selector_selects_every_pod_of_its_namespace_only() {
    let c = cluster(&[
        pod("x", "web", "{app: web}", "10.1.0.1"),
        pod("x", "db", "{app: db}", "10.1.0.2"),
        pod("x", "bare", "{}", "10.1.0.3"),
        pod("y", "web", "{app: web}", "10.2.0.1"),
        pod("z", "client", "{app: client}", "10.3.0.1"),
        np(
            "x",
            "deny-all",
            "{podSelector: {}, policyTypes: [Ingress, Egress]}",
        ),
    ]);
    for dst in ["x/web", "x/db", "x/bare"] {
        let v = c.denied("z/client", dst, 80, Tcp);
        denied_without_rules(&v.ingress, &[("x", "deny-all")]);
        let v = c.denied(dst, "z/client", 80, Tcp);
        denied_without_rules(&v.egress, &[("x", "deny-all")]);
        not_isolated(&v.ingress);
    }
    let v = c.allowed("z/client", "y/web", 80, Tcp);
    not_isolated(&v.ingress);
    not_isolated(&v.egress);
    let v = c.allowed("y/web", "z/client", 80, Tcp);
    not_isolated(&v.egress);
}

// §1: "Pods with `hostNetwork: true` are never selected and never enforced (they share the node's
// address)."
#[test]
fn s1_host_network_pods_are_never_selected_nor_enforced() {
    let c = cluster(&[
        host_pod("x", "agent", "{app: web}", "n9", "192.168.9.9"),
        pod("x", "web", "{app: web}", "10.1.0.1"),
        pod("z", "client", "{app: client}", "10.3.0.1"),
        np(
            "x",
            "deny-all",
            "{podSelector: {}, policyTypes: [Ingress, Egress]}",
        ),
        np(
            "x",
            "deny-web",
            "{podSelector: {matchLabels: {app: web}}, policyTypes: [Ingress, Egress]}",
        ),
    ]);
    // Into the hostNetwork pod: its ingress is not enforced although both policies match its labels.
    let v = c.allowed("z/client", "x/agent", 80, Tcp);
    unenforced(&v.ingress, host_network("x/agent"));
    not_isolated(&v.egress);
    let v = c.allowed("z/client", "x/agent", 53, Udp);
    unenforced(&v.ingress, host_network("x/agent"));
    // Out of it: its egress is not enforced either.
    let v = c.allowed("x/agent", "z/client", 443, Tcp);
    unenforced(&v.egress, host_network("x/agent"));
    not_isolated(&v.ingress);
    let v = c.allowed("x/agent", EXT, 443, Tcp);
    unenforced(&v.egress, host_network("x/agent"));
    // The ordinary pod with the same labels is selected.
    let v = c.denied("z/client", "x/web", 80, Tcp);
    denied_without_rules(&v.ingress, &[("x", "deny-all"), ("x", "deny-web")]);
}

// §1: "Effective `policyTypes`: if `spec.policyTypes` is non-empty, use it."
#[test]
fn s1_non_empty_policy_types_are_used_as_given() {
    let c = cluster(&[
        pod("x", "a", "{app: a}", "10.1.0.1"),
        pod("x", "b", "{app: b}", "10.1.0.2"),
        pod("x", "e", "{app: e}", "10.1.0.3"),
        pod("z", "client", "{app: client}", "10.3.0.1"),
        // Egress rules are present but Egress is not among the types: a is not egress-isolated.
        np(
            "x",
            "only-ingress",
            "{podSelector: {matchLabels: {app: a}}, policyTypes: [Ingress], \
             ingress: [{from: [{podSelector: {matchLabels: {app: b}}}]}], \
             egress: [{to: [{podSelector: {matchLabels: {app: nobody}}}]}]}",
        ),
        // Only Egress, with no egress rule: e may send nothing; its ingress rule is ignored.
        np(
            "x",
            "only-egress",
            "{podSelector: {matchLabels: {app: e}}, policyTypes: [Egress], ingress: [{}]}",
        ),
    ]);
    let v = c.allowed("x/a", "z/client", 80, Tcp);
    not_isolated(&v.egress);
    let v = c.allowed("x/b", "x/a", 80, Tcp);
    allowed_by(&v.ingress, &[("x", "only-ingress", 0)]);
    let v = c.denied("z/client", "x/a", 80, Tcp);
    denied_by(
        &v.ingress,
        &[("x", "only-ingress")],
        &[peer(0, other_namespace("x", "z/client"))],
    );

    let v = c.denied("x/e", "z/client", 80, Tcp);
    denied_without_rules(&v.egress, &[("x", "only-egress")]);
    let v = c.allowed("z/client", "x/e", 80, Tcp);
    not_isolated(&v.ingress);
}

// §1: "Otherwise (apiserver defaulting) it is `[Ingress]`, plus `Egress` if and only if
// `spec.egress` has at least one rule" — without egress rules: Ingress only.
#[test]
fn s1_default_policy_types_are_ingress_only_without_egress_rules() {
    let c = cluster(&[
        pod("x", "a", "{app: a}", "10.1.0.1"),
        pod("z", "client", "{app: client}", "10.3.0.1"),
        np("x", "no-types", "{podSelector: {matchLabels: {app: a}}}"),
    ]);
    let v = c.denied("z/client", "x/a", 80, Tcp);
    denied_without_rules(&v.ingress, &[("x", "no-types")]);
    let v = c.allowed("x/a", "z/client", 80, Tcp);
    not_isolated(&v.egress);
    let v = c.allowed("x/a", EXT, 443, Tcp);
    not_isolated(&v.egress);
}

// §1: "... plus `Egress` if and only if `spec.egress` has **at least one** rule" — with one.
#[test]
fn s1_default_policy_types_include_egress_when_egress_has_a_rule() {
    let c = cluster(&[
        pod("x", "a", "{app: a}", "10.1.0.1"),
        pod("x", "b", "{app: b}", "10.1.0.2"),
        pod("z", "client", "{app: client}", "10.3.0.1"),
        np(
            "x",
            "egress-to-b",
            "{podSelector: {matchLabels: {app: a}}, \
             egress: [{to: [{podSelector: {matchLabels: {app: b}}}]}]}",
        ),
    ]);
    let v = c.allowed("x/a", "x/b", 80, Tcp);
    allowed_by(&v.egress, &[("x", "egress-to-b", 0)]);
    not_isolated(&v.ingress);
    let v = c.denied("x/a", "z/client", 80, Tcp);
    denied_by(
        &v.egress,
        &[("x", "egress-to-b")],
        &[peer(0, other_namespace("x", "z/client"))],
    );
    let v = c.denied("x/a", EXT, 80, Tcp);
    denied_by(
        &v.egress,
        &[("x", "egress-to-b")],
        &[peer(0, not_a_pod(EXT))],
    );
    // Ingress is always among the defaulted types, and the policy has no ingress rule.
    let v = c.denied("x/b", "x/a", 80, Tcp);
    denied_without_rules(&v.ingress, &[("x", "egress-to-b")]);
}

// §1: "(`egress: []` does NOT imply Egress)."
#[test]
fn s1_empty_egress_list_does_not_imply_egress() {
    let c = cluster(&[
        pod("x", "a", "{app: a}", "10.1.0.1"),
        pod("z", "client", "{app: client}", "10.3.0.1"),
        np(
            "x",
            "empty-egress",
            "{podSelector: {matchLabels: {app: a}}, egress: []}",
        ),
    ]);
    let v = c.allowed("x/a", "z/client", 80, Tcp);
    not_isolated(&v.egress);
    let v = c.allowed("x/a", EXT, 53, Udp);
    not_isolated(&v.egress);
    let v = c.denied("z/client", "x/a", 80, Tcp);
    denied_without_rules(&v.ingress, &[("x", "empty-egress")]);
}

// §1: "A pod is *isolated for ingress* iff at least one policy selects it and has `Ingress` in its
// effective types; likewise for egress. The two directions are independent."
#[test]
fn s1_isolation_is_per_direction_and_the_directions_are_independent() {
    let c = cluster(&[
        pod("x", "in", "{app: in}", "10.1.0.1"),
        pod("x", "out", "{app: out}", "10.1.0.2"),
        pod("z", "client", "{app: client}", "10.3.0.1"),
        np(
            "x",
            "in-only",
            "{podSelector: {matchLabels: {app: in}}, policyTypes: [Ingress]}",
        ),
        np(
            "x",
            "out-only",
            "{podSelector: {matchLabels: {app: out}}, policyTypes: [Egress]}",
        ),
    ]);
    // `in` is isolated for ingress only.
    let v = c.denied("z/client", "x/in", 80, Tcp);
    denied_without_rules(&v.ingress, &[("x", "in-only")]);
    let v = c.allowed("x/in", "z/client", 80, Tcp);
    not_isolated(&v.egress);
    // `out` is isolated for egress only.
    let v = c.denied("x/out", "z/client", 80, Tcp);
    denied_without_rules(&v.egress, &[("x", "out-only")]);
    let v = c.allowed("z/client", "x/out", 80, Tcp);
    not_isolated(&v.ingress);
    // Both at once: out's egress denies before in's ingress is even relevant; each is reported.
    let v = c.denied("x/out", "x/in", 80, Tcp);
    denied_without_rules(&v.egress, &[("x", "out-only")]);
    denied_without_rules(&v.ingress, &[("x", "in-only")]);
    let v = c.allowed("x/in", "x/out", 80, Tcp);
    not_isolated(&v.egress);
    not_isolated(&v.ingress);
}

// §1: "Not isolated in a direction ⇒ everything is allowed in that direction."
#[test]
fn s1_not_isolated_allows_everything() {
    let c = cluster(&[
        pod("x", "a", "{app: a}", "10.1.0.1"),
        pod("x", "other", "{app: other}", "10.1.0.2"),
        pod("y", "b", "{app: b}", "10.2.0.1"),
        // A policy exists in x, but it does not select a.
        np(
            "x",
            "other-only",
            "{podSelector: {matchLabels: {app: other}}, policyTypes: [Ingress, Egress]}",
        ),
    ]);
    for (port, proto) in [
        (80, Tcp),
        (1, Tcp),
        (65535, Tcp),
        (53, Udp),
        (3868, Sctp),
        (0, Icmp),
    ] {
        let v = c.allowed("x/a", "y/b", port, proto);
        not_isolated(&v.egress);
        not_isolated(&v.ingress);
        let v = c.allowed("y/b", "x/a", port, proto);
        not_isolated(&v.egress);
        not_isolated(&v.ingress);
        let v = c.allowed(EXT, "x/a", port, proto);
        not_isolated(&v.ingress);
        unenforced(&v.egress, address(EXT));
        let v = c.allowed("x/a", EXT, port, proto);
        not_isolated(&v.egress);
        unenforced(&v.ingress, address(EXT));
    }
}

// §1: "Isolated ⇒ allowed only what at least one rule of at least one selecting policy (of that
// direction) allows."
#[test]
fn s1_isolated_allows_only_what_a_rule_of_a_selecting_policy_of_that_direction_allows() {
    let c = cluster(&[
        pod("x", "a", "{app: a}", "10.1.0.1"),
        pod("x", "b", "{app: b}", "10.1.0.2"),
        pod("z", "client", "{app: client}", "10.3.0.1"),
        np(
            "x",
            "allow-client",
            "{podSelector: {matchLabels: {app: a}}, ingress: [{from: [{namespaceSelector: {}, \
             podSelector: {matchLabels: {app: client}}}], ports: [{port: 80}]}]}",
        ),
        // Selects a for Egress only: its ingress rule `{}` does not count for a's ingress.
        np(
            "x",
            "egress-only",
            "{podSelector: {matchLabels: {app: a}}, policyTypes: [Egress], ingress: [{}], egress: [{}]}",
        ),
        // Allows everything, but for b only: it does not select a.
        np(
            "x",
            "open-b",
            "{podSelector: {matchLabels: {app: b}}, ingress: [{}]}",
        ),
    ]);
    let v = c.allowed("z/client", "x/a", 80, Tcp);
    allowed_by(&v.ingress, &[("x", "allow-client", 0)]);
    let v = c.denied("z/client", "x/a", 81, Tcp);
    denied_by(
        &v.ingress,
        &[("x", "allow-client")],
        &[ports(&[number(Tcp, 80)])],
    );
    let v = c.denied("x/b", "x/a", 80, Tcp);
    denied_by(
        &v.ingress,
        &[("x", "allow-client")],
        &[peer(
            0,
            pod_selector("x/b", label("app", "client"), Some("b")),
        )],
    );
    let v = c.denied(EXT, "x/a", 80, Tcp);
    denied_by(
        &v.ingress,
        &[("x", "allow-client")],
        &[peer(0, not_a_pod(EXT))],
    );
    // a's egress is isolated by egress-only, whose rule allows everything.
    let v = c.allowed("x/a", "z/client", 22, Tcp);
    allowed_by(&v.egress, &[("x", "egress-only", 0)]);
    let v = c.allowed("z/client", "x/b", 22, Tcp);
    allowed_by(&v.ingress, &[("x", "open-b", 0)]);
}

// §1: "Policies are additive (a union); there is no order and no deny rule in v1."
#[test]
fn s1_policies_are_additive_without_order_or_deny() {
    let docs = vec![
        pod("x", "a", "{app: a}", "10.1.0.1"),
        pod("z", "c1", "{app: c1}", "10.3.0.1"),
        pod("z", "c2", "{app: c2}", "10.3.0.2"),
        pod("z", "c3", "{app: c3}", "10.3.0.3"),
        // A deny-all policy does not override the allow policies.
        np(
            "x",
            "a-deny-all",
            "{podSelector: {}, policyTypes: [Ingress]}",
        ),
        np(
            "x",
            "m-allow-c1",
            "{podSelector: {matchLabels: {app: a}}, ingress: [{from: [{namespaceSelector: {}, \
             podSelector: {matchLabels: {app: c1}}}]}]}",
        ),
        np(
            "x",
            "b-allow-c1-http",
            "{podSelector: {matchLabels: {app: a}}, ingress: [{from: [{namespaceSelector: {}, \
             podSelector: {matchLabels: {app: c1}}}], ports: [{port: 80}]}]}",
        ),
        np(
            "x",
            "z-allow-c2-https",
            "{podSelector: {}, ingress: [{from: [{namespaceSelector: {}, \
             podSelector: {matchLabels: {app: c2}}}], ports: [{port: 443}]}]}",
        ),
    ];
    let mut reversed = docs.clone();
    reversed.reverse();
    for c in [cluster(&docs), cluster(&reversed)] {
        let v = c.allowed("z/c1", "x/a", 80, Tcp);
        allowed_by(
            &v.ingress,
            &[("x", "m-allow-c1", 0), ("x", "b-allow-c1-http", 0)],
        );
        let v = c.allowed("z/c1", "x/a", 22, Tcp);
        allowed_by(&v.ingress, &[("x", "m-allow-c1", 0)]);
        let v = c.allowed("z/c2", "x/a", 443, Tcp);
        allowed_by(&v.ingress, &[("x", "z-allow-c2-https", 0)]);
        let v = c.denied("z/c2", "x/a", 80, Tcp);
        denied_by(
            &v.ingress,
            &[
                ("x", "a-deny-all"),
                ("x", "m-allow-c1"),
                ("x", "b-allow-c1-http"),
                ("x", "z-allow-c2-https"),
            ],
            &[
                ports(&[number(Tcp, 443)]),
                peer(0, pod_selector("z/c2", label("app", "c1"), Some("c2"))),
            ],
        );
        let v = c.denied("z/c3", "x/a", 443, Tcp);
        denied_by(
            &v.ingress,
            &[
                ("x", "a-deny-all"),
                ("x", "m-allow-c1"),
                ("x", "b-allow-c1-http"),
                ("x", "z-allow-c2-https"),
            ],
            &[peer(
                0,
                pod_selector("z/c3", label("app", "c2"), Some("c3")),
            )],
        );
    }
}

// §1: "A connection from A to B is allowed iff A's egress allows it AND B's ingress allows it."
#[test]
fn s1_connection_needs_source_egress_and_destination_ingress() {
    let c = cluster(&[
        pod("x", "a", "{app: a}", "10.1.0.1"),
        pod("y", "b", "{app: b}", "10.2.0.1"),
        pod("y", "c", "{app: c}", "10.2.0.2"),
        np(
            "x",
            "a-to-b",
            "{podSelector: {matchLabels: {app: a}}, policyTypes: [Egress], egress: [{to: \
             [{namespaceSelector: {}, podSelector: {matchLabels: {app: b}}}]}]}",
        ),
        np(
            "y",
            "from-a-http",
            "{podSelector: {}, policyTypes: [Ingress], ingress: [{from: [{namespaceSelector: {}, \
             podSelector: {matchLabels: {app: a}}}], ports: [{port: 80}]}]}",
        ),
    ]);
    // Both allow.
    let v = c.allowed("x/a", "y/b", 80, Tcp);
    allowed_by(&v.egress, &[("x", "a-to-b", 0)]);
    allowed_by(&v.ingress, &[("y", "from-a-http", 0)]);
    // Egress allows, ingress does not.
    let v = c.denied("x/a", "y/b", 81, Tcp);
    allowed_by(&v.egress, &[("x", "a-to-b", 0)]);
    denied_by(
        &v.ingress,
        &[("y", "from-a-http")],
        &[ports(&[number(Tcp, 80)])],
    );
    // Ingress allows, egress does not.
    let v = c.denied("x/a", "y/c", 80, Tcp);
    denied_by(
        &v.egress,
        &[("x", "a-to-b")],
        &[peer(0, pod_selector("y/c", label("app", "b"), Some("c")))],
    );
    allowed_by(&v.ingress, &[("y", "from-a-http", 0)]);
    // Neither.
    let v = c.denied("x/a", "y/c", 81, Tcp);
    denied_by(
        &v.egress,
        &[("x", "a-to-b")],
        &[peer(0, pod_selector("y/c", label("app", "b"), Some("c")))],
    );
    denied_by(
        &v.ingress,
        &[("y", "from-a-http")],
        &[ports(&[number(Tcp, 80)])],
    );
}

// §1: "Replies of an allowed connection are allowed (stateful)."
#[test]
fn s1_replies_of_an_allowed_connection_are_allowed() {
    let c = cluster(&[
        pod("x", "a", "{app: a}", "10.1.0.1"),
        pod("x", "b", "{app: b}", "10.1.0.2"),
        // a accepts no new connection, b opens none: the replies b -> a must still flow.
        np(
            "x",
            "a-no-ingress",
            "{podSelector: {matchLabels: {app: a}}, policyTypes: [Ingress]}",
        ),
        np(
            "x",
            "b-no-egress",
            "{podSelector: {matchLabels: {app: b}}, policyTypes: [Egress]}",
        ),
        np(
            "x",
            "b-from-a",
            "{podSelector: {matchLabels: {app: b}}, ingress: [{from: [{podSelector: \
             {matchLabels: {app: a}}}]}]}",
        ),
    ]);
    // The connection a -> b is judged on a's egress and b's ingress only.
    let v = c.allowed("x/a", "x/b", 5432, Tcp);
    assert_eq!(v.egress.pod, Some(pod_ref("x/a")));
    assert_eq!(v.ingress.pod, Some(pod_ref("x/b")));
    not_isolated(&v.egress);
    allowed_by(&v.ingress, &[("x", "b-from-a", 0)]);
    // A new connection b -> a is another matter.
    let v = c.denied("x/b", "x/a", 5432, Tcp);
    denied_without_rules(&v.egress, &[("x", "b-no-egress")]);
    denied_without_rules(&v.ingress, &[("x", "a-no-ingress")]);
}

// §1: "Each end is evaluated on its own pod, in its own namespace."
#[test]
fn s1_each_end_is_evaluated_on_its_own_pod_in_its_own_namespace() {
    let c = cluster(&[
        pod("x", "web", "{app: web}", "10.1.0.1"),
        pod("y", "web", "{app: web}", "10.2.0.1"),
        np(
            "x",
            "web-egress",
            "{podSelector: {matchLabels: {app: web}}, policyTypes: [Egress], egress: [{to: \
             [{namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: y}}}]}]}",
        ),
        np(
            "x",
            "web-no-ingress",
            "{podSelector: {matchLabels: {app: web}}, policyTypes: [Ingress]}",
        ),
        np(
            "y",
            "web-ingress",
            "{podSelector: {matchLabels: {app: web}}, ingress: [{from: [{namespaceSelector: \
             {matchLabels: {kubernetes.io/metadata.name: x}}}], ports: [{port: 8080}]}]}",
        ),
    ]);
    let v = c.allowed("x/web", "y/web", 8080, Tcp);
    assert_eq!(v.egress.pod, Some(pod_ref("x/web")));
    assert_eq!(v.ingress.pod, Some(pod_ref("y/web")));
    allowed_by(&v.egress, &[("x", "web-egress", 0)]);
    // x's web-no-ingress has the same podSelector but does not apply to y/web.
    allowed_by(&v.ingress, &[("y", "web-ingress", 0)]);
    let v = c.denied("x/web", "y/web", 9090, Tcp);
    allowed_by(&v.egress, &[("x", "web-egress", 0)]);
    denied_by(
        &v.ingress,
        &[("y", "web-ingress")],
        &[ports(&[number(Tcp, 8080)])],
    );
    // The other way: y/web is not egress-isolated (x's web-egress does not select it); x/web's
    // ingress is decided by x's policies only.
    let v = c.denied("y/web", "x/web", 8080, Tcp);
    assert_eq!(v.egress.pod, Some(pod_ref("y/web")));
    not_isolated(&v.egress);
    denied_without_rules(&v.ingress, &[("x", "web-no-ingress")]);
}

// §1: "Always allowed, whatever the policies: a pod to itself (loopback)".
#[test]
fn s1_a_pod_may_always_reach_itself() {
    let c = cluster(&[
        pod("x", "a", "{app: a}", "10.1.0.1"),
        pod("x", "twin", "{app: a}", "10.1.0.2"),
        np(
            "x",
            "deny-all",
            "{podSelector: {}, policyTypes: [Ingress, Egress]}",
        ),
    ]);
    for (port, proto) in [(80, Tcp), (53, Udp), (9000, Sctp), (0, Icmp)] {
        for (src, dst) in [
            ("x/a", "x/a"),
            ("10.1.0.1", "10.1.0.1"),
            ("x/a", "10.1.0.1"),
        ] {
            let v = c.allowed(src, dst, port, proto);
            unenforced(&v.egress, UnenforcedReason::SamePod);
            unenforced(&v.ingress, UnenforcedReason::SamePod);
        }
        // Another pod of the very same class is not the pod itself (`reach` answers for distinct
        // pods; its answer for the class pair is this one).
        let v = c.denied("x/a", "x/twin", port, proto);
        denied_without_rules(&v.egress, &[("x", "deny-all")]);
        denied_without_rules(&v.ingress, &[("x", "deny-all")]);
        let state = c.engine.state();
        let (a, twin) = (state.pod_id("x", "a"), state.pod_id("x", "twin"));
        assert_eq!(
            c.engine.class_of(a.unwrap()),
            c.engine.class_of(twin.unwrap())
        );
    }
}

// §1: "Always allowed, whatever the policies: ... traffic between a pod and the node it runs on
// (kubelet probes)." The node is represented by a hostNetwork pod on it (it shares the node's
// address) and by that address.
#[test]
fn s1_traffic_between_a_pod_and_its_own_node_is_always_allowed() {
    let c = cluster(&[
        pod("x", "a", "{app: a}", "10.1.0.10"), // on node n0, hostIP 192.168.0.100
        host_pod(
            "kube-system",
            "node-n0",
            "{app: node}",
            "n0",
            "192.168.0.100",
        ),
        host_pod(
            "kube-system",
            "node-n2",
            "{app: node}",
            "n2",
            "192.168.0.102",
        ),
        np(
            "x",
            "deny-all",
            "{podSelector: {}, policyTypes: [Ingress, Egress]}",
        ),
    ]);
    // Every failing flow is reported, not just the first.
    let mut errors = Vec::new();
    // Both sides say why: a and its node.
    let node_local = |v: Verdict| {
        for side in [&v.egress, &v.ingress] {
            unenforced(
                side,
                UnenforcedReason::NodeLocal {
                    pod: pod_ref("x/a"),
                    node: ip("192.168.0.100"),
                },
            );
        }
    };
    // Kubelet probe: from a's own node (the hostNetwork pod, or its address) to a.
    for src in ["kube-system/node-n0", "192.168.0.100"] {
        match c.try_check(src, "x/a", 8080, Tcp, true) {
            Ok(v) => node_local(v),
            Err(e) => errors.push(e),
        }
    }
    // a to its own node.
    for dst in ["kube-system/node-n0", "192.168.0.100"] {
        match c.try_check("x/a", dst, 10250, Tcp, true) {
            Ok(v) => node_local(v),
            Err(e) => errors.push(e),
        }
    }
    // Another node is subject to a's policies.
    for (src, dst) in [
        ("kube-system/node-n2", "x/a"),
        ("192.168.0.102", "x/a"),
        ("x/a", "kube-system/node-n2"),
        ("x/a", "192.168.0.102"),
    ] {
        match c.try_check(src, dst, 8080, Tcp, false) {
            Ok(v) if dst == "x/a" => denied_without_rules(&v.ingress, &[("x", "deny-all")]),
            Ok(v) => denied_without_rules(&v.egress, &[("x", "deny-all")]),
            Err(e) => errors.push(e),
        }
    }
    assert!(
        errors.is_empty(),
        "{} flow(s) wrong:\n{}",
        errors.len(),
        errors.join("\n")
    );
}

// §1: "A policy with a selector that matches no pod has no effect."
#[test]
fn s1_a_policy_whose_selector_matches_no_pod_has_no_effect() {
    let c = cluster(&[
        pod("x", "a", "{app: a}", "10.1.0.1"),
        pod("z", "client", "{app: client}", "10.3.0.1"),
        np(
            "x",
            "ghost",
            "{podSelector: {matchLabels: {app: ghost}}, policyTypes: [Ingress, Egress]}",
        ),
        // A namespace without pods: `{}` there selects nothing.
        np(
            "empty",
            "deny-all",
            "{podSelector: {}, policyTypes: [Ingress, Egress]}",
        ),
    ]);
    for (src, dst) in [
        ("z/client", "x/a"),
        ("x/a", "z/client"),
        ("x/a", EXT),
        (EXT, "x/a"),
    ] {
        let v = c.allowed(src, dst, 80, Tcp);
        if src != EXT {
            not_isolated(&v.egress);
        }
        if dst != EXT {
            not_isolated(&v.ingress);
        }
    }
}

// =============================================================================================
// §2 Rules
// =============================================================================================

// §2: "`ingress[i].from` / `egress[i].to`: a list of peers, OR-ed."
#[test]
fn s2_peers_of_a_rule_are_ored() {
    let c = cluster(&[
        pod("x", "a", "{app: a}", "10.1.0.1"),
        pod("x", "p", "{app: p}", "10.1.0.2"),
        pod("x", "q", "{app: q}", "10.1.0.3"),
        pod("x", "r", "{app: r}", "10.1.0.4"),
        np(
            "x",
            "from-p-or-q",
            "{podSelector: {matchLabels: {app: a}}, policyTypes: [Ingress, Egress], \
             ingress: [{from: [{podSelector: {matchLabels: {app: p}}}, \
             {podSelector: {matchLabels: {app: q}}}, {ipBlock: {cidr: '198.51.100.0/24'}}]}], \
             egress: [{to: [{podSelector: {matchLabels: {app: p}}}, {ipBlock: {cidr: '203.0.113.0/24'}}]}]}",
        ),
    ]);
    for src in ["x/p", "x/q", "198.51.100.9"] {
        let v = c.allowed(src, "x/a", 80, Tcp);
        allowed_by(&v.ingress, &[("x", "from-p-or-q", 0)]);
    }
    let v = c.denied("x/r", "x/a", 80, Tcp);
    denied_by(
        &v.ingress,
        &[("x", "from-p-or-q")],
        &[
            peer(0, pod_selector("x/r", label("app", "p"), Some("r"))),
            peer(1, pod_selector("x/r", label("app", "q"), Some("r"))),
            peer(2, outside("198.51.100.0/24", "10.1.0.4")),
        ],
    );
    for dst in ["x/p", EXT] {
        let v = c.allowed("x/a", dst, 80, Tcp);
        allowed_by(&v.egress, &[("x", "from-p-or-q", 0)]);
    }
    let v = c.denied("x/a", "x/q", 80, Tcp);
    denied_by(
        &v.egress,
        &[("x", "from-p-or-q")],
        &[
            peer(0, pod_selector("x/q", label("app", "p"), Some("q"))),
            peer(1, outside("203.0.113.0/24", "10.1.0.3")),
        ],
    );
}

// §2: "Missing or empty ⇒ matches every source / destination, including outside the cluster."
// (ingress `from` missing and empty)
#[test]
fn s2_missing_or_empty_from_matches_every_source_including_external() {
    for (name, rule) in [
        ("from-missing", "{ports: [{port: 80}]}"),
        ("from-empty", "{from: [], ports: [{port: 80}]}"),
    ] {
        let c = cluster(&[
            pod("x", "a", "{app: a}", "10.1.0.1"),
            pod("x", "b", "{}", "10.1.0.2"),
            pod("y", "b", "{app: b}", "10.2.0.1"),
            host_pod("y", "agent", "{}", "n9", "192.168.9.9"),
            np(
                "x",
                name,
                &format!("{{podSelector: {{matchLabels: {{app: a}}}}, ingress: [{rule}]}}"),
            ),
        ]);
        for src in ["x/b", "y/b", EXT, "2001:db8::7", "y/agent"] {
            let v = c.allowed(src, "x/a", 80, Tcp);
            allowed_by(&v.ingress, &[("x", name, 0)]);
            let v = c.denied(src, "x/a", 81, Tcp);
            denied_by(&v.ingress, &[("x", name)], &[ports(&[number(Tcp, 80)])]);
        }
    }
}

// §2: "Missing or empty ⇒ matches every source / destination, including outside the cluster."
// (egress `to` missing and empty)
#[test]
fn s2_missing_or_empty_to_matches_every_destination_including_external() {
    for (name, rule) in [
        ("to-missing", "{ports: [{port: 443}]}"),
        ("to-empty", "{to: [], ports: [{port: 443}]}"),
    ] {
        let c = cluster(&[
            pod("x", "a", "{app: a}", "10.1.0.1"),
            pod("x", "b", "{}", "10.1.0.2"),
            pod("y", "b", "{app: b}", "10.2.0.1"),
            np(
                "x",
                name,
                &format!(
                    "{{podSelector: {{matchLabels: {{app: a}}}}, policyTypes: [Egress], egress: [{rule}]}}"
                ),
            ),
        ]);
        for dst in ["x/b", "y/b", EXT, "2001:db8::7"] {
            let v = c.allowed("x/a", dst, 443, Tcp);
            allowed_by(&v.egress, &[("x", name, 0)]);
            let v = c.denied("x/a", dst, 80, Tcp);
            denied_by(&v.egress, &[("x", name)], &[ports(&[number(Tcp, 443)])]);
        }
    }
}

// §2: "`ports`: a list, OR-ed."
#[test]
fn s2_ports_of_a_rule_are_ored() {
    let c = cluster(&[
        pod("x", "a", "{app: a}", "10.1.0.1"),
        pod("z", "client", "{}", "10.3.0.1"),
        np(
            "x",
            "web-ports",
            "{podSelector: {matchLabels: {app: a}}, ingress: [{ports: [{port: 80}, {port: 443}, \
             {protocol: UDP, port: 443}]}]}",
        ),
    ]);
    for (port, proto) in [(80, Tcp), (443, Tcp), (443, Udp)] {
        let v = c.allowed("z/client", "x/a", port, proto);
        allowed_by(&v.ingress, &[("x", "web-ports", 0)]);
    }
    for (port, proto) in [(8080, Tcp), (80, Udp)] {
        let v = c.denied("z/client", "x/a", port, proto);
        denied_by(
            &v.ingress,
            &[("x", "web-ports")],
            &[ports(&[
                number(Tcp, 80),
                number(Tcp, 443),
                number(Udp, 443),
            ])],
        );
    }
}

// §2: "Missing or empty [`ports`] ⇒ every port of every protocol."
#[test]
fn s2_missing_or_empty_ports_means_every_port_of_every_protocol() {
    for (name, rule) in [
        (
            "ports-missing",
            "{from: [{podSelector: {matchLabels: {app: client}}}]}",
        ),
        (
            "ports-empty",
            "{from: [{podSelector: {matchLabels: {app: client}}}], ports: []}",
        ),
    ] {
        let c = cluster(&[
            pod("x", "a", "{app: a}", "10.1.0.1"),
            pod("x", "client", "{app: client}", "10.1.0.2"),
            pod("x", "other", "{app: other}", "10.1.0.3"),
            np(
                "x",
                name,
                &format!("{{podSelector: {{matchLabels: {{app: a}}}}, ingress: [{rule}]}}"),
            ),
        ]);
        for (port, proto) in [
            (1, Tcp),
            (80, Tcp),
            (65535, Tcp),
            (53, Udp),
            (65535, Udp),
            (3868, Sctp),
            (0, Icmp),
        ] {
            let v = c.allowed("x/client", "x/a", port, proto);
            allowed_by(&v.ingress, &[("x", name, 0)]);
            let v = c.denied("x/other", "x/a", port, proto);
            denied_by(
                &v.ingress,
                &[("x", name)],
                &[peer(
                    0,
                    pod_selector("x/other", label("app", "client"), Some("other")),
                )],
            );
        }
    }
}

// §2: "A rule matches iff (peer matches) AND (port matches)."
#[test]
fn s2_a_rule_matches_iff_peer_and_port_match() {
    let c = cluster(&[
        pod("x", "a", "{app: a}", "10.1.0.1"),
        pod("x", "client", "{app: client}", "10.1.0.2"),
        pod("x", "other", "{app: other}", "10.1.0.3"),
        np(
            "x",
            "client-http",
            "{podSelector: {matchLabels: {app: a}}, ingress: [{from: [{podSelector: \
             {matchLabels: {app: client}}}], ports: [{port: 80}]}]}",
        ),
    ]);
    let v = c.allowed("x/client", "x/a", 80, Tcp);
    allowed_by(&v.ingress, &[("x", "client-http", 0)]);
    // Peer matches, port does not.
    let v = c.denied("x/client", "x/a", 81, Tcp);
    denied_by(
        &v.ingress,
        &[("x", "client-http")],
        &[ports(&[number(Tcp, 80)])],
    );
    assert!(
        rule_misses(&v.ingress).iter().all(|m| m.peers.is_empty()),
        "the peer matched: {v:#?}"
    );
    // Port matches, peer does not.
    let v = c.denied("x/other", "x/a", 80, Tcp);
    denied_by(
        &v.ingress,
        &[("x", "client-http")],
        &[peer(
            0,
            pod_selector("x/other", label("app", "client"), Some("other")),
        )],
    );
    assert!(
        rule_misses(&v.ingress).iter().all(|m| m.ports.is_none()),
        "the port matched: {v:#?}"
    );
    // Neither.
    let v = c.denied("x/other", "x/a", 81, Tcp);
    denied_by(
        &v.ingress,
        &[("x", "client-http")],
        &[
            ports(&[number(Tcp, 80)]),
            peer(
                0,
                pod_selector("x/other", label("app", "client"), Some("other")),
            ),
        ],
    );
}

// §2: "`ingress: [{}]` allows everything".
#[test]
fn s2_ingress_with_one_empty_rule_allows_everything() {
    let c = cluster(&[
        pod("x", "a", "{app: a}", "10.1.0.1"),
        pod("y", "b", "{}", "10.2.0.1"),
        np(
            "x",
            "allow-all",
            "{podSelector: {matchLabels: {app: a}}, ingress: [{}]}",
        ),
    ]);
    for src in ["y/b", EXT, "2001:db8::7"] {
        for (port, proto) in [(80, Tcp), (65535, Tcp), (53, Udp), (3868, Sctp), (0, Icmp)] {
            let v = c.allowed(src, "x/a", port, proto);
            allowed_by(&v.ingress, &[("x", "allow-all", 0)]);
        }
    }
}

// §2: "`ingress: []` (or missing, with Ingress in policyTypes) allows nothing."
#[test]
fn s2_empty_or_missing_ingress_with_ingress_type_allows_nothing() {
    for (name, spec) in [
        (
            "empty-list",
            "{podSelector: {matchLabels: {app: a}}, ingress: []}",
        ),
        (
            "empty-list-typed",
            "{podSelector: {matchLabels: {app: a}}, policyTypes: [Ingress], ingress: []}",
        ),
        (
            "missing-typed",
            "{podSelector: {matchLabels: {app: a}}, policyTypes: [Ingress, Egress], egress: [{}]}",
        ),
    ] {
        let c = cluster(&[
            pod("x", "a", "{app: a}", "10.1.0.1"),
            pod("x", "b", "{app: b}", "10.1.0.2"),
            np("x", name, spec),
        ]);
        for src in ["x/b", EXT] {
            for (port, proto) in [(80, Tcp), (53, Udp), (3868, Sctp), (0, Icmp)] {
                let v = c.denied(src, "x/a", port, proto);
                denied_without_rules(&v.ingress, &[("x", name)]);
            }
        }
    }
}

// §2 (egress counterpart): `egress: []` with Egress in policyTypes allows nothing; `egress: [{}]`
// allows everything.
#[test]
fn s2_egress_empty_list_with_egress_type_allows_nothing_and_one_empty_rule_everything() {
    let c = cluster(&[
        pod("x", "closed", "{app: closed}", "10.1.0.1"),
        pod("x", "open", "{app: open}", "10.1.0.2"),
        pod("y", "b", "{}", "10.2.0.1"),
        np(
            "x",
            "closed",
            "{podSelector: {matchLabels: {app: closed}}, policyTypes: [Egress], egress: []}",
        ),
        np(
            "x",
            "open",
            "{podSelector: {matchLabels: {app: open}}, egress: [{}]}",
        ),
    ]);
    for dst in ["y/b", EXT] {
        for (port, proto) in [(80, Tcp), (53, Udp), (0, Icmp)] {
            let v = c.denied("x/closed", dst, port, proto);
            denied_without_rules(&v.egress, &[("x", "closed")]);
            let v = c.allowed("x/open", dst, port, proto);
            allowed_by(&v.egress, &[("x", "open", 0)]);
        }
    }
}

// =============================================================================================
// §3 Peers
// =============================================================================================

// §3: "`podSelector` alone: pods in the **policy's own** namespace that match."
#[test]
fn s3_pod_selector_alone_matches_pods_of_the_policys_own_namespace() {
    let c = cluster(&[
        pod("x", "a", "{app: a}", "10.1.0.1"),
        pod("x", "client", "{app: client}", "10.1.0.2"),
        pod("x", "db", "{app: db}", "10.1.0.3"),
        pod("y", "client", "{app: client}", "10.2.0.2"),
        pod("y", "db", "{app: db}", "10.2.0.3"),
        np(
            "x",
            "a-peers",
            "{podSelector: {matchLabels: {app: a}}, \
             ingress: [{from: [{podSelector: {matchLabels: {app: client}}}]}], \
             egress: [{to: [{podSelector: {matchLabels: {app: db}}}]}]}",
        ),
    ]);
    let v = c.allowed("x/client", "x/a", 80, Tcp);
    allowed_by(&v.ingress, &[("x", "a-peers", 0)]);
    let v = c.denied("y/client", "x/a", 80, Tcp);
    denied_by(
        &v.ingress,
        &[("x", "a-peers")],
        &[peer(0, other_namespace("x", "y/client"))],
    );
    let v = c.allowed("x/a", "x/db", 5432, Tcp);
    allowed_by(&v.egress, &[("x", "a-peers", 0)]);
    let v = c.denied("x/a", "y/db", 5432, Tcp);
    denied_by(
        &v.egress,
        &[("x", "a-peers")],
        &[peer(0, other_namespace("x", "y/db"))],
    );
}

// §3: "`namespaceSelector` alone: all pods in namespaces that match".
#[test]
fn s3_namespace_selector_alone_matches_all_pods_of_matching_namespaces() {
    let c = cluster(&[
        ns("core", "{role: core}"),
        ns("tenant", "{role: tenant}"),
        pod("x", "a", "{app: a}", "10.1.0.1"),
        pod("core", "p", "{app: p}", "10.2.0.1"),
        pod("core", "q", "{}", "10.2.0.2"),
        pod("tenant", "p", "{app: p}", "10.3.0.1"),
        np(
            "x",
            "from-core",
            "{podSelector: {matchLabels: {app: a}}, ingress: [{from: [{namespaceSelector: \
             {matchLabels: {role: core}}}]}]}",
        ),
    ]);
    for src in ["core/p", "core/q"] {
        let v = c.allowed(src, "x/a", 80, Tcp);
        allowed_by(&v.ingress, &[("x", "from-core", 0)]);
    }
    let v = c.denied("tenant/p", "x/a", 80, Tcp);
    denied_by(
        &v.ingress,
        &[("x", "from-core")],
        &[peer(
            0,
            namespace_selector("tenant", label("role", "core"), Some("tenant")),
        )],
    );
    // Not a pod of any namespace.
    let v = c.denied(EXT, "x/a", 80, Tcp);
    denied_by(
        &v.ingress,
        &[("x", "from-core")],
        &[peer(0, not_a_pod(EXT))],
    );
}

// §3: "(`{}` = every namespace)" — all pods of every namespace, and nothing outside the cluster.
#[test]
fn s3_empty_namespace_selector_matches_every_pod_of_every_namespace() {
    let c = cluster(&[
        ns("y", "{role: core}"),
        pod("x", "a", "{app: a}", "10.1.0.1"),
        pod("x", "b", "{}", "10.1.0.2"),
        pod("y", "b", "{app: b}", "10.2.0.1"),
        pod("implicit", "b", "{}", "10.4.0.1"),
        np(
            "x",
            "all-ns",
            "{podSelector: {matchLabels: {app: a}}, policyTypes: [Ingress, Egress], \
             ingress: [{from: [{namespaceSelector: {}}]}], egress: [{to: [{namespaceSelector: {}}]}]}",
        ),
    ]);
    for peer in ["x/b", "y/b", "implicit/b"] {
        let v = c.allowed(peer, "x/a", 80, Tcp);
        allowed_by(&v.ingress, &[("x", "all-ns", 0)]);
        let v = c.allowed("x/a", peer, 80, Tcp);
        allowed_by(&v.egress, &[("x", "all-ns", 0)]);
    }
    let v = c.denied(EXT, "x/a", 80, Tcp);
    denied_by(&v.ingress, &[("x", "all-ns")], &[peer(0, not_a_pod(EXT))]);
    let v = c.denied("x/a", EXT, 80, Tcp);
    denied_by(&v.egress, &[("x", "all-ns")], &[peer(0, not_a_pod(EXT))]);
}

// §3: "Both in ONE peer: pods matching `podSelector` inside namespaces matching `namespaceSelector`
// (AND)."
#[test]
fn s3_both_selectors_in_one_peer_are_anded() {
    let c = cluster(&[
        ns("x", "{}"),
        ns("core", "{role: core}"),
        ns("tenant", "{role: tenant}"),
        pod("x", "a", "{app: a}", "10.1.0.1"),
        pod("x", "client", "{app: client}", "10.1.0.2"),
        pod("core", "client", "{app: client}", "10.2.0.1"),
        pod("core", "other", "{app: other}", "10.2.0.2"),
        pod("tenant", "client", "{app: client}", "10.3.0.1"),
        np(
            "x",
            "and",
            "{podSelector: {matchLabels: {app: a}}, ingress: [{from: [{namespaceSelector: \
             {matchLabels: {role: core}}, podSelector: {matchLabels: {app: client}}}]}]}",
        ),
    ]);
    let v = c.allowed("core/client", "x/a", 80, Tcp);
    allowed_by(&v.ingress, &[("x", "and", 0)]);
    let v = c.denied("core/other", "x/a", 80, Tcp);
    denied_by(
        &v.ingress,
        &[("x", "and")],
        &[peer(
            0,
            pod_selector("core/other", label("app", "client"), Some("other")),
        )],
    );
    let v = c.denied("tenant/client", "x/a", 80, Tcp);
    denied_by(
        &v.ingress,
        &[("x", "and")],
        &[peer(
            0,
            namespace_selector("tenant", label("role", "core"), Some("tenant")),
        )],
    );
    // Even the policy's own namespace must match the namespaceSelector.
    let v = c.denied("x/client", "x/a", 80, Tcp);
    denied_by(
        &v.ingress,
        &[("x", "and")],
        &[peer(
            0,
            namespace_selector("x", label("role", "core"), None),
        )],
    );
}

// §3: "Two separate list items are OR — the most common user mistake; lint and explain must make it
// visible."
#[test]
fn s3_two_separate_peers_are_ored_and_the_mistake_is_explained() {
    let c = cluster(&[
        ns("x", "{}"),
        ns("core", "{role: core}"),
        ns("tenant", "{role: tenant}"),
        pod("x", "a", "{app: a}", "10.1.0.1"),
        pod("x", "client", "{app: client}", "10.1.0.2"),
        pod("core", "other", "{app: other}", "10.2.0.2"),
        pod("tenant", "client", "{app: client}", "10.3.0.1"),
        np(
            "x",
            "or",
            "{podSelector: {matchLabels: {app: a}}, ingress: [{from: [{namespaceSelector: \
             {matchLabels: {role: core}}}, {podSelector: {matchLabels: {app: client}}}]}]}",
        ),
    ]);
    // Any pod of core (first item), whatever its labels.
    let v = c.allowed("core/other", "x/a", 80, Tcp);
    allowed_by(&v.ingress, &[("x", "or", 0)]);
    // app=client in the policy's own namespace (second item).
    let v = c.allowed("x/client", "x/a", 80, Tcp);
    allowed_by(&v.ingress, &[("x", "or", 0)]);
    // app=client elsewhere is matched by neither: the explanation says why for each item.
    let v = c.denied("tenant/client", "x/a", 80, Tcp);
    denied_by(
        &v.ingress,
        &[("x", "or")],
        &[
            peer(
                0,
                namespace_selector("tenant", label("role", "core"), Some("tenant")),
            ),
            peer(1, other_namespace("x", "tenant/client")),
        ],
    );
}

// §3: "`ipBlock {cidr, except[]}`: addresses inside `cidr` and outside every `except`." (IPv4,
// addresses outside the cluster)
#[test]
fn s3_ip_block_matches_addresses_in_cidr_and_outside_every_except() {
    let c = cluster(&[
        pod("x", "a", "{app: a}", "10.1.0.1"),
        np(
            "x",
            "blocks",
            "{podSelector: {matchLabels: {app: a}}, policyTypes: [Ingress, Egress], \
             ingress: [{from: [{ipBlock: {cidr: '203.0.113.0/24', except: ['203.0.113.128/25', \
             '203.0.113.64/26']}}]}], \
             egress: [{to: [{ipBlock: {cidr: '198.51.100.0/24', except: ['198.51.100.0/28']}}]}]}",
        ),
    ]);
    for src in [EXT, "203.0.113.0", "203.0.113.63"] {
        let v = c.allowed(src, "x/a", 80, Tcp);
        allowed_by(&v.ingress, &[("x", "blocks", 0)]);
        unenforced(&v.egress, address(src));
    }
    let v = c.denied("203.0.113.200", "x/a", 80, Tcp);
    denied_by(
        &v.ingress,
        &[("x", "blocks")],
        &[peer(
            0,
            excepted("203.0.113.0/24", "203.0.113.200", "203.0.113.128/25"),
        )],
    );
    let v = c.denied("203.0.113.64", "x/a", 80, Tcp);
    denied_by(
        &v.ingress,
        &[("x", "blocks")],
        &[peer(
            0,
            excepted("203.0.113.0/24", "203.0.113.64", "203.0.113.64/26"),
        )],
    );
    let v = c.denied("198.51.100.7", "x/a", 80, Tcp);
    denied_by(
        &v.ingress,
        &[("x", "blocks")],
        &[peer(0, outside("203.0.113.0/24", "198.51.100.7"))],
    );

    let v = c.allowed("x/a", "198.51.100.16", 443, Tcp);
    allowed_by(&v.egress, &[("x", "blocks", 0)]);
    let v = c.allowed("x/a", "198.51.100.255", 443, Tcp);
    allowed_by(&v.egress, &[("x", "blocks", 0)]);
    let v = c.denied("x/a", "198.51.100.15", 443, Tcp);
    denied_by(
        &v.egress,
        &[("x", "blocks")],
        &[peer(
            0,
            excepted("198.51.100.0/24", "198.51.100.15", "198.51.100.0/28"),
        )],
    );
    let v = c.denied("x/a", EXT, 443, Tcp);
    denied_by(
        &v.egress,
        &[("x", "blocks")],
        &[peer(0, outside("198.51.100.0/24", EXT))],
    );
}

// §3: "It matches pod IPs too (the upstream e2e suite relies on it: egress to a pod's /32, except
// blocks)".
#[test]
fn s3_ip_block_matches_pod_ips() {
    let c = cluster(&[
        pod("x", "a", "{app: a}", "10.1.0.1"),
        pod("y", "b", "{app: b}", "10.2.1.5"),
        pod("y", "c", "{app: c}", "10.2.2.5"),
        pod("y", "d", "{app: d}", "10.2.3.9"),
        np(
            "x",
            "to-pods-by-ip",
            "{podSelector: {matchLabels: {app: a}}, policyTypes: [Egress], egress: [\
             {to: [{ipBlock: {cidr: '10.2.0.0/16', except: ['10.2.2.0/24']}}], ports: [{port: 80}]}, \
             {to: [{ipBlock: {cidr: '10.2.3.9/32'}}], ports: [{port: 9000}]}]}",
        ),
        np(
            "y",
            "from-a-by-ip",
            "{podSelector: {}, ingress: [{from: [{ipBlock: {cidr: '10.1.0.1/32'}}]}]}",
        ),
    ]);
    // By pod and by the pod's address: the same answer.
    for dst in ["y/b", "10.2.1.5", "y/d"] {
        let v = c.allowed("x/a", dst, 80, Tcp);
        allowed_by(&v.egress, &[("x", "to-pods-by-ip", 0)]);
        allowed_by(&v.ingress, &[("y", "from-a-by-ip", 0)]);
    }
    let v = c.denied("x/a", "y/c", 80, Tcp);
    denied_by(
        &v.egress,
        &[("x", "to-pods-by-ip")],
        &[
            peer(0, excepted("10.2.0.0/16", "10.2.2.5", "10.2.2.0/24")),
            peer(0, outside("10.2.3.9/32", "10.2.2.5")),
        ],
    );
    allowed_by(&v.ingress, &[("y", "from-a-by-ip", 0)]);
    // The /32 of one pod.
    let v = c.allowed("x/a", "y/d", 9000, Tcp);
    allowed_by(&v.egress, &[("x", "to-pods-by-ip", 1)]);
    let v = c.denied("x/a", "y/b", 9000, Tcp);
    denied_by(
        &v.egress,
        &[("x", "to-pods-by-ip")],
        &[
            ports(&[number(Tcp, 80)]),
            peer(0, outside("10.2.3.9/32", "10.2.1.5")),
        ],
    );
    // Ingress by the source pod's IP.
    let v = c.denied("y/b", "y/c", 80, Tcp);
    denied_by(
        &v.ingress,
        &[("y", "from-a-by-ip")],
        &[peer(0, outside("10.1.0.1/32", "10.2.1.5"))],
    );
}

// §3: "IPv4 and IPv6."
#[test]
fn s3_ip_block_works_for_ipv6_and_families_do_not_mix() {
    let c = cluster(&[
        pod("x", "a", "{app: a}", "fd00:10::10"),
        pod("y", "b", "{app: b}", "fd00:20::1:5"),
        pod("y", "c", "{app: c}", "fd00:20::5"),
        pod("y", "v4", "{app: v4}", "10.2.0.1"),
        np(
            "x",
            "v6",
            "{podSelector: {matchLabels: {app: a}}, policyTypes: [Ingress, Egress], ingress: [\
             {from: [{ipBlock: {cidr: 'fd00:20::/64', except: ['fd00:20::/120']}}, \
             {ipBlock: {cidr: '2001:db8::/32'}}]}, \
             {from: [{ipBlock: {cidr: '0.0.0.0/0'}}], ports: [{port: 22}]}], \
             egress: [{to: [{ipBlock: {cidr: '2001:db8:1::/48'}}]}]}",
        ),
    ]);
    let v = c.allowed("y/b", "x/a", 80, Tcp);
    allowed_by(&v.ingress, &[("x", "v6", 0)]);
    let v = c.allowed("fd00:20::1:5", "fd00:10::10", 80, Tcp);
    allowed_by(&v.ingress, &[("x", "v6", 0)]);
    let v = c.denied("y/c", "x/a", 80, Tcp);
    denied_by(
        &v.ingress,
        &[("x", "v6")],
        &[peer(
            0,
            excepted("fd00:20::/64", "fd00:20::5", "fd00:20::/120"),
        )],
    );
    let v = c.allowed("2001:db8::7", "x/a", 80, Tcp);
    allowed_by(&v.ingress, &[("x", "v6", 0)]);
    let v = c.denied("2001:db9::7", "x/a", 80, Tcp);
    denied_by(
        &v.ingress,
        &[("x", "v6")],
        &[peer(1, outside("2001:db8::/32", "2001:db9::7"))],
    );
    // 0.0.0.0/0 contains every IPv4 address and no IPv6 one.
    let v = c.allowed("y/v4", "x/a", 22, Tcp);
    allowed_by(&v.ingress, &[("x", "v6", 1)]);
    let v = c.allowed(EXT, "x/a", 22, Tcp);
    allowed_by(&v.ingress, &[("x", "v6", 1)]);
    let v = c.denied("2001:db9::7", "x/a", 22, Tcp);
    denied_by(
        &v.ingress,
        &[("x", "v6")],
        &[peer(0, outside("0.0.0.0/0", "2001:db9::7"))],
    );
    // Egress.
    let v = c.allowed("x/a", "2001:db8:1::1", 443, Tcp);
    allowed_by(&v.egress, &[("x", "v6", 0)]);
    let v = c.denied("x/a", "2001:db8:2::1", 443, Tcp);
    denied_by(
        &v.egress,
        &[("x", "v6")],
        &[peer(0, outside("2001:db8:1::/48", "2001:db8:2::1"))],
    );
    let v = c.denied("x/a", "y/b", 443, Tcp);
    denied_by(
        &v.egress,
        &[("x", "v6")],
        &[peer(0, outside("2001:db8:1::/48", "fd00:20::1:5"))],
    );
}

// §3: "`ipBlock` cannot be combined with a selector in one peer."
#[test]
fn s3_ip_block_with_a_selector_in_one_peer_is_rejected() {
    let (c, diags) = load(&[
        pod("x", "a", "{app: a}", "10.1.0.1"),
        pod("x", "b", "{app: b}", "10.1.0.2"),
        np(
            "x",
            "mixed",
            "{podSelector: {}, ingress: [{from: [{ipBlock: {cidr: '10.0.0.0/8'}, \
             podSelector: {matchLabels: {app: b}}}]}]}",
        ),
        np(
            "x",
            "mixed-ns",
            "{podSelector: {}, ingress: [{from: [{ipBlock: {cidr: '10.0.0.0/8'}, \
             namespaceSelector: {}}]}]}",
        ),
    ]);
    for name in ["mixed", "mixed-ns"] {
        assert!(
            diags.iter().any(|d| d.is_error()
                && d.object.as_deref() == Some(&format!("NetworkPolicy x/{name}"))
                && d.field.as_deref() == Some("spec.ingress[0].from[0]")
                && d.message.contains("ipBlock")),
            "{name} should be rejected at spec.ingress[0].from[0]: {diags:#?}"
        );
    }
    assert!(c.engine.state().policies.is_empty());
    // Rejected policies have no effect.
    let v = c.allowed("x/b", "x/a", 80, Tcp);
    not_isolated(&v.ingress);
}

// §3: "Namespace labels include `kubernetes.io/metadata.name: <name>` (set by the apiserver on every
// namespace); manifests loaded offline must get it too, if missing."
#[test]
fn s3_namespaces_get_the_metadata_name_label() {
    let c = cluster(&[
        ns("y", "{}"),
        ns("z", "{team: z}"),
        pod("x", "a", "{app: a}", "10.1.0.1"),
        pod("y", "p", "{}", "10.2.0.1"),
        pod("z", "p", "{}", "10.3.0.1"),
        pod("implicit", "p", "{}", "10.4.0.1"), // no Namespace object
        np(
            "x",
            "by-name",
            "{podSelector: {matchLabels: {app: a}}, ingress: [\
             {from: [{namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: y}}}]}, \
             {from: [{namespaceSelector: {matchExpressions: [{key: kubernetes.io/metadata.name, \
             operator: In, values: [implicit]}]}}]}]}",
        ),
    ]);
    let state = c.engine.state();
    for (name, extra) in [
        ("x", None),
        ("y", None),
        ("z", Some("team")),
        ("implicit", None),
    ] {
        let n = state
            .namespace(name)
            .unwrap_or_else(|| panic!("no namespace {name}"));
        assert_eq!(
            n.labels
                .get("kubernetes.io/metadata.name")
                .map(String::as_str),
            Some(name),
            "namespace {name}: {:?}",
            n.labels
        );
        if let Some(k) = extra {
            assert!(
                n.labels.contains_key(k),
                "declared labels kept: {:?}",
                n.labels
            );
        }
    }
    let v = c.allowed("y/p", "x/a", 80, Tcp);
    allowed_by(&v.ingress, &[("x", "by-name", 0)]);
    let v = c.allowed("implicit/p", "x/a", 80, Tcp);
    allowed_by(&v.ingress, &[("x", "by-name", 1)]);
    let v = c.denied("z/p", "x/a", 80, Tcp);
    denied_by(
        &v.ingress,
        &[("x", "by-name")],
        &[
            peer(
                0,
                namespace_selector("z", label("kubernetes.io/metadata.name", "y"), Some("z")),
            ),
            peer(
                0,
                namespace_selector(
                    "z",
                    expression(0, "kubernetes.io/metadata.name", In, &["implicit"]),
                    Some("z"),
                ),
            ),
        ],
    );
}

// §3: "Label selectors: `matchLabels` AND `matchExpressions`".
#[test]
fn s3_match_labels_and_match_expressions_are_anded() {
    let c = cluster(&[
        pod("x", "a", "{app: a}", "10.1.0.1"),
        pod("x", "c1", "{app: client, tier: fe}", "10.1.0.2"),
        pod("x", "c2", "{app: client, tier: db}", "10.1.0.3"),
        pod("x", "c3", "{app: other, tier: fe}", "10.1.0.4"),
        np(
            "x",
            "both",
            "{podSelector: {matchLabels: {app: a}}, ingress: [{from: [{podSelector: \
             {matchLabels: {app: client}, matchExpressions: [{key: tier, operator: In, \
             values: [fe, be]}]}}]}]}",
        ),
    ]);
    let v = c.allowed("x/c1", "x/a", 80, Tcp);
    allowed_by(&v.ingress, &[("x", "both", 0)]);
    let v = c.denied("x/c2", "x/a", 80, Tcp);
    denied_by(
        &v.ingress,
        &[("x", "both")],
        &[peer(
            0,
            pod_selector("x/c2", expression(0, "tier", In, &["fe", "be"]), Some("db")),
        )],
    );
    let v = c.denied("x/c3", "x/a", 80, Tcp);
    denied_by(
        &v.ingress,
        &[("x", "both")],
        &[peer(
            0,
            pod_selector("x/c3", label("app", "client"), Some("other")),
        )],
    );
}

// §3: "`matchExpressions` (`In`, `NotIn`, `Exists`, `DoesNotExist`)"
#[test]
fn s3_match_expression_operators_in_notin_exists_doesnotexist() {
    let c = cluster(&[
        pod("x", "a", "{app: a}", "10.1.0.1"),
        pod("x", "fe", "{tier: fe}", "10.1.0.2"),
        pod("x", "be", "{tier: be}", "10.1.0.3"),
        pod("x", "none", "{app: none}", "10.1.0.4"),
        np(
            "x",
            "ops",
            "{podSelector: {matchLabels: {app: a}}, ingress: [\
             {from: [{podSelector: {matchExpressions: [{key: tier, operator: In, values: [fe]}]}}], ports: [{port: 1001}]}, \
             {from: [{podSelector: {matchExpressions: [{key: tier, operator: NotIn, values: [fe]}]}}], ports: [{port: 1002}]}, \
             {from: [{podSelector: {matchExpressions: [{key: tier, operator: Exists}]}}], ports: [{port: 1003}]}, \
             {from: [{podSelector: {matchExpressions: [{key: tier, operator: DoesNotExist}]}}], ports: [{port: 1004}]}]}",
        ),
    ]);
    let rules = [
        expression(0, "tier", In, &["fe"]),
        expression(0, "tier", NotIn, &["fe"]),
        expression(0, "tier", Exists, &[]),
        expression(0, "tier", DoesNotExist, &[]),
    ];
    // (source, its tier, [In, NotIn, Exists, DoesNotExist])
    let table = [
        ("x/fe", Some("fe"), [true, false, true, false]),
        ("x/be", Some("be"), [false, true, true, false]),
        ("x/none", None, [false, true, false, true]),
    ];
    for (src, tier, expect) in table {
        for (rule, want) in expect.into_iter().enumerate() {
            let port = 1001 + rule as u16;
            let v = c.check(src, "x/a", port, Tcp, want);
            if want {
                allowed_by(&v.ingress, &[("x", "ops", rule)]);
            } else {
                let miss = pod_selector(src, rules[rule].clone(), tier);
                denied_by(&v.ingress, &[("x", "ops")], &[peer(0, miss)]);
            }
        }
    }
}

// §3: "`NotIn` and `DoesNotExist` match objects without the key." (namespaces and pods)
#[test]
fn s3_notin_and_doesnotexist_match_objects_without_the_key() {
    let c = cluster(&[
        ns("prod", "{env: prod}"),
        ns("dev", "{env: dev}"),
        ns("plain", "{}"),
        pod("x", "a", "{app: a}", "10.1.0.1"),
        pod("prod", "p", "{}", "10.2.0.1"),
        pod("dev", "p", "{}", "10.3.0.1"),
        pod("plain", "p", "{}", "10.4.0.1"),
        pod("plain", "legacy", "{legacy: 'true'}", "10.4.0.2"),
        np(
            "x",
            "not-prod",
            "{podSelector: {matchLabels: {app: a}}, ingress: [{from: [{namespaceSelector: \
             {matchExpressions: [{key: env, operator: NotIn, values: [prod]}]}, podSelector: \
             {matchExpressions: [{key: legacy, operator: DoesNotExist}]}}]}]}",
        ),
    ]);
    for src in ["dev/p", "plain/p"] {
        let v = c.allowed(src, "x/a", 80, Tcp);
        allowed_by(&v.ingress, &[("x", "not-prod", 0)]);
    }
    let v = c.denied("prod/p", "x/a", 80, Tcp);
    denied_by(
        &v.ingress,
        &[("x", "not-prod")],
        &[peer(
            0,
            namespace_selector("prod", expression(0, "env", NotIn, &["prod"]), Some("prod")),
        )],
    );
    let v = c.denied("plain/legacy", "x/a", 80, Tcp);
    denied_by(
        &v.ingress,
        &[("x", "not-prod")],
        &[peer(
            0,
            pod_selector(
                "plain/legacy",
                expression(0, "legacy", DoesNotExist, &[]),
                Some("true"),
            ),
        )],
    );
}

// §3: "Empty selector matches everything".
#[test]
fn s3_empty_selector_matches_everything() {
    let c = cluster(&[
        pod("x", "a", "{app: a}", "10.1.0.1"),
        pod("x", "bare", "{}", "10.1.0.2"),
        pod("x", "labelled", "{app: l, tier: t}", "10.1.0.3"),
        pod("y", "bare", "{}", "10.2.0.1"),
        np(
            "x",
            "same-ns",
            "{podSelector: {matchLabels: {app: a}}, ingress: [{from: [{podSelector: {}}]}]}",
        ),
    ]);
    for src in ["x/bare", "x/labelled"] {
        let v = c.allowed(src, "x/a", 80, Tcp);
        allowed_by(&v.ingress, &[("x", "same-ns", 0)]);
    }
    // `podSelector: {}` alone is still scoped to the policy's namespace.
    let v = c.denied("y/bare", "x/a", 80, Tcp);
    denied_by(
        &v.ingress,
        &[("x", "same-ns")],
        &[peer(0, other_namespace("x", "y/bare"))],
    );
}

// §3: "a selector with `In` and empty `values` is invalid."
#[test]
fn s3_in_with_empty_values_is_invalid() {
    let (c, diags) = load(&[
        pod("x", "a", "{app: a}", "10.1.0.1"),
        pod("x", "b", "{app: b}", "10.1.0.2"),
        np(
            "x",
            "bad-in",
            "{podSelector: {}, ingress: [{from: [{podSelector: {matchExpressions: \
             [{key: app, operator: In, values: []}]}}]}]}",
        ),
        np(
            "x",
            "bad-notin",
            "{podSelector: {matchExpressions: [{key: app, operator: NotIn}]}}",
        ),
    ]);
    for name in ["bad-in", "bad-notin"] {
        assert!(
            diags
                .iter()
                .any(|d| d.is_error()
                    && d.object.as_deref() == Some(&format!("NetworkPolicy x/{name}"))),
            "{name} should be rejected: {diags:#?}"
        );
    }
    assert!(c.engine.state().policies.is_empty());
    let v = c.allowed("x/b", "x/a", 80, Tcp);
    not_isolated(&v.ingress);
}

// =============================================================================================
// §4 Ports
// =============================================================================================

// §4: "`protocol`: `TCP` (default when omitted), `UDP`, `SCTP`."
#[test]
fn s4_protocol_defaults_to_tcp_and_udp_sctp_are_distinct() {
    let c = cluster(&[
        pod("x", "a", "{app: a}", "10.1.0.1"),
        pod("z", "client", "{}", "10.3.0.1"),
        np(
            "x",
            "default-tcp",
            "{podSelector: {matchLabels: {app: a}}, ingress: [{ports: [{port: 53}]}]}",
        ),
        np(
            "x",
            "udp-sctp",
            "{podSelector: {matchLabels: {app: a}}, ingress: [{ports: [{protocol: UDP, port: 5353}, \
             {protocol: SCTP, port: 3868}]}]}",
        ),
    ]);
    let v = c.allowed("z/client", "x/a", 53, Tcp);
    allowed_by(&v.ingress, &[("x", "default-tcp", 0)]);
    let v = c.denied("z/client", "x/a", 53, Udp);
    denied_by(
        &v.ingress,
        &[("x", "default-tcp"), ("x", "udp-sctp")],
        &[
            ports(&[number(Tcp, 53)]),
            ports(&[number(Udp, 5353), number(Sctp, 3868)]),
        ],
    );
    c.denied("z/client", "x/a", 53, Sctp);
    let v = c.allowed("z/client", "x/a", 5353, Udp);
    allowed_by(&v.ingress, &[("x", "udp-sctp", 0)]);
    let v = c.allowed("z/client", "x/a", 3868, Sctp);
    allowed_by(&v.ingress, &[("x", "udp-sctp", 0)]);
    for (port, proto) in [(5353, Tcp), (5353, Sctp), (3868, Tcp), (3868, Udp)] {
        c.denied("z/client", "x/a", port, proto);
    }
}

// §4: "Other protocols (ICMP, …) are not governed by port rules: for an isolated pod they are allowed
// only by a rule with no `ports` (Calico/Cilium behaviour)."
#[test]
fn s4_icmp_is_allowed_for_an_isolated_pod_only_by_a_rule_without_ports() {
    let c = cluster(&[
        pod("x", "a", "{app: a}", "10.1.0.1"),
        pod("x", "b", "{app: b}", "10.1.0.2"),
        pod("x", "free", "{app: free}", "10.1.0.3"),
        pod("z", "client", "{app: client}", "10.3.0.1"),
        // Port rules of every shape, for every protocol: none admits ICMP.
        np(
            "x",
            "ports-only",
            "{podSelector: {matchLabels: {app: a}}, policyTypes: [Ingress, Egress], \
             ingress: [{ports: [{protocol: TCP}, {protocol: UDP}, {protocol: SCTP}, \
             {port: 1, endPort: 65535}]}], \
             egress: [{to: [{podSelector: {matchLabels: {app: b}}}], ports: [{protocol: TCP}]}]}",
        ),
        // Rules without ports, for b only as a source / destination.
        np(
            "x",
            "portless",
            "{podSelector: {matchLabels: {app: a}}, policyTypes: [Ingress, Egress], \
             ingress: [{from: [{podSelector: {matchLabels: {app: b}}}]}], \
             egress: [{to: [{ipBlock: {cidr: '0.0.0.0/0'}}]}]}",
        ),
    ]);
    let v = c.denied("z/client", "x/a", 0, Icmp);
    denied_by(
        &v.ingress,
        &[("x", "ports-only"), ("x", "portless")],
        &[icmp_needs_a_rule_without_ports()],
    );
    let v = c.allowed("x/b", "x/a", 0, Icmp);
    allowed_by(&v.ingress, &[("x", "portless", 0)]);
    // Egress: the ipBlock rule without ports admits ICMP; the port rule to b does not.
    let v = c.allowed("x/a", EXT, 0, Icmp);
    allowed_by(&v.egress, &[("x", "portless", 0)]);
    let v = c.allowed("x/a", "x/b", 0, Icmp);
    allowed_by(&v.egress, &[("x", "portless", 0)]);
    // A pod that is not isolated gets ICMP anyway.
    let v = c.allowed("z/client", "x/free", 0, Icmp);
    not_isolated(&v.ingress);
    // Its TCP counterpart is allowed by the port rules.
    let v = c.allowed("z/client", "x/a", 80, Tcp);
    allowed_by(&v.ingress, &[("x", "ports-only", 0)]);
}

// §4: "`port`: a number 1–65535, or a **named port** (IANA_SVC_NAME: ≤15 chars, lowercase
// alphanumerics and '-', at least one letter, no leading/trailing/double '-')."
#[test]
fn s4_port_is_a_number_in_range_or_a_valid_named_port() {
    let port_policy = |name: &str, port: &str| {
        np(
            "x",
            name,
            &format!("{{podSelector: {{}}, ingress: [{{ports: [{{port: {port}}}]}}]}}"),
        )
    };
    let valid = [
        ("n-1", "1"),
        ("n-65535", "65535"),
        ("http", "http"),
        ("h2c", "h2c"),
        ("web-8080", "web-8080"),
        ("fifteen", "abcdefghijklmno"),
    ];
    let invalid = [
        ("n-0", "0"),
        ("n-65536", "65536"),
        ("upper", "HTTP"),
        ("leading", "-http"),
        ("trailing", "http-"),
        ("double", "my--port"),
        ("digits", "'12345'"),
        ("sixteen", "abcdefghijklmnop"),
        ("underscore", "my_port"),
    ];
    let mut docs = vec![pod("x", "a", "{app: a}", "10.1.0.1")];
    docs.extend(valid.iter().map(|(n, p)| port_policy(n, p)));
    docs.extend(invalid.iter().map(|(n, p)| port_policy(n, p)));
    let (c, diags) = load(&docs);
    let loaded: BTreeSet<&str> = c
        .engine
        .state()
        .policies
        .iter()
        .map(|p| p.name.as_str())
        .collect();
    for (name, port) in valid {
        assert!(
            loaded.contains(name),
            "port {port} should be accepted: {diags:#?}"
        );
    }
    for (name, port) in invalid {
        assert!(!loaded.contains(name), "port {port} should be rejected");
        assert!(
            diags.iter().any(|d| d.is_error()
                && d.object.as_deref() == Some(&format!("NetworkPolicy x/{name}"))
                && d.field.as_deref() == Some("spec.ingress[0].ports[0].port")),
            "port {port}: expected an error at spec.ingress[0].ports[0].port: {diags:#?}"
        );
    }
}

// §4: "Missing `port` with a protocol = every port of it."
#[test]
fn s4_missing_port_with_a_protocol_means_every_port_of_it() {
    let c = cluster(&[
        pod("x", "a", "{app: a}", "10.1.0.1"),
        pod("z", "client", "{}", "10.3.0.1"),
        np(
            "x",
            "all-udp",
            "{podSelector: {matchLabels: {app: a}}, ingress: [{ports: [{protocol: UDP}]}]}",
        ),
    ]);
    for port in [1, 53, 5353, 65535] {
        let v = c.allowed("z/client", "x/a", port, Udp);
        allowed_by(&v.ingress, &[("x", "all-udp", 0)]);
    }
    for (port, proto) in [(53, Tcp), (53, Sctp), (0, Icmp)] {
        let v = c.denied("z/client", "x/a", port, proto);
        denied_by(&v.ingress, &[("x", "all-udp")], &[ports(&[any_port(Udp)])]);
    }
}

// §4: "A named port is resolved against the **destination pod's** `containers[].ports[]` with that
// name and protocol: for ingress, against the selected pod ... Different pods may resolve the same
// name to different numbers; a pod without the name does not match."
#[test]
fn s4_named_port_resolves_on_the_selected_pod_for_ingress() {
    let c = cluster(&[
        pod_ports(
            "x",
            "s1",
            "{app: s}",
            "10.1.0.1",
            "[{name: http, containerPort: 8080}]",
        ),
        pod_ports(
            "x",
            "s2",
            "{app: s}",
            "10.1.0.2",
            "[{name: http, containerPort: 9090}]",
        ),
        pod_ports(
            "x",
            "s3",
            "{app: s}",
            "10.1.0.3",
            "[{name: metrics, containerPort: 8080}]",
        ),
        // The client has an `http` port too: irrelevant, it is not the destination.
        pod_ports(
            "z",
            "client",
            "{}",
            "10.3.0.1",
            "[{name: http, containerPort: 7070}]",
        ),
        np(
            "x",
            "http",
            "{podSelector: {matchLabels: {app: s}}, ingress: [{ports: [{port: http}]}]}",
        ),
    ]);
    let v = c.allowed("z/client", "x/s1", 8080, Tcp);
    allowed_by(&v.ingress, &[("x", "http", 0)]);
    let v = c.denied("z/client", "x/s1", 9090, Tcp);
    denied_by(
        &v.ingress,
        &[("x", "http")],
        &[named("http", resolved("x/s1", 8080))],
    );
    let v = c.allowed("z/client", "x/s2", 9090, Tcp);
    allowed_by(&v.ingress, &[("x", "http", 0)]);
    let v = c.denied("z/client", "x/s2", 8080, Tcp);
    denied_by(
        &v.ingress,
        &[("x", "http")],
        &[named("http", resolved("x/s2", 9090))],
    );
    c.denied("z/client", "x/s1", 7070, Tcp);
    for port in [8080, 9090, 7070] {
        let v = c.denied("z/client", "x/s3", port, Tcp);
        denied_by(
            &v.ingress,
            &[("x", "http")],
            &[named("http", not_found("x/s3"))],
        );
    }
    // From outside the cluster too: the name resolves on the selected pod, not the source.
    let v = c.allowed(EXT, "x/s2", 9090, Tcp);
    allowed_by(&v.ingress, &[("x", "http", 0)]);
}

// §4: "... for egress, against each peer pod. Different pods may resolve the same name to different
// numbers; a pod without the name does not match."
#[test]
fn s4_named_port_resolves_on_each_peer_pod_for_egress() {
    let c = cluster(&[
        // The source has `http` on 1111: irrelevant for egress.
        pod_ports("x", "a", "{app: a}", "10.1.0.1", "[{name: http, containerPort: 1111}]"),
        pod_ports("y", "s1", "{app: s}", "10.2.0.1", "[{name: http, containerPort: 8080}]"),
        pod_ports("y", "s2", "{app: s}", "10.2.0.2", "[{name: http, containerPort: 9090}]"),
        pod_ports("y", "s3", "{app: s}", "10.2.0.3", "[{name: web, containerPort: 8080}]"),
        np(
            "x",
            "to-http",
            "{podSelector: {matchLabels: {app: a}}, policyTypes: [Egress], egress: [\
             {to: [{namespaceSelector: {}, podSelector: {matchLabels: {app: s}}}], ports: [{port: http}]}]}",
        ),
        np(
            "x",
            "to-any-http",
            "{podSelector: {matchLabels: {app: a}}, policyTypes: [Egress], egress: [{ports: [{port: http}]}]}",
        ),
    ]);
    let v = c.allowed("x/a", "y/s1", 8080, Tcp);
    allowed_by(&v.egress, &[("x", "to-http", 0), ("x", "to-any-http", 0)]);
    let v = c.allowed("x/a", "y/s2", 9090, Tcp);
    allowed_by(&v.egress, &[("x", "to-http", 0), ("x", "to-any-http", 0)]);
    let v = c.denied("x/a", "y/s1", 9090, Tcp);
    denied_by(
        &v.egress,
        &[("x", "to-http"), ("x", "to-any-http")],
        &[named("http", resolved("y/s1", 8080))],
    );
    c.denied("x/a", "y/s2", 8080, Tcp);
    c.denied("x/a", "y/s1", 1111, Tcp);
    for port in [8080, 9090, 1111] {
        let v = c.denied("x/a", "y/s3", port, Tcp);
        denied_by(
            &v.egress,
            &[("x", "to-http"), ("x", "to-any-http")],
            &[named("http", not_found("y/s3"))],
        );
    }
    // An address outside the cluster has no ports to resolve the name on.
    let v = c.denied("x/a", EXT, 8080, Tcp);
    denied_by(
        &v.egress,
        &[("x", "to-http"), ("x", "to-any-http")],
        &[named("http", NamedPortResolution::NoDestinationPod)],
    );
}

// §4: "A named port is resolved against the destination pod's `containers[].ports[]` with that name
// **and protocol**".
#[test]
fn s4_named_port_resolves_with_its_protocol() {
    let c = cluster(&[
        pod_ports(
            "x",
            "dns",
            "{app: dns}",
            "10.1.0.1",
            "[{name: dns, containerPort: 53, protocol: UDP}, {name: dns-tcp, containerPort: 53}]",
        ),
        pod("z", "client", "{}", "10.3.0.1"),
        np(
            "x",
            "dns-default-tcp",
            "{podSelector: {matchLabels: {app: dns}}, ingress: [{ports: [{port: dns}]}]}",
        ),
    ]);
    // `dns` is a UDP port; the rule asks for TCP `dns`.
    for proto in [Tcp, Udp] {
        let v = c.denied("z/client", "x/dns", 53, proto);
        denied_by(
            &v.ingress,
            &[("x", "dns-default-tcp")],
            &[ports(&[named_spec(Tcp, "dns")])],
        );
    }
    let v = c.denied("z/client", "x/dns", 53, Tcp);
    denied_by(
        &v.ingress,
        &[("x", "dns-default-tcp")],
        &[named("dns", not_found("x/dns"))],
    );

    let c = cluster(&[
        pod_ports(
            "x",
            "dns",
            "{app: dns}",
            "10.1.0.1",
            "[{name: dns, containerPort: 53, protocol: UDP}, {name: dns-tcp, containerPort: 53}]",
        ),
        pod("z", "client", "{}", "10.3.0.1"),
        np(
            "x",
            "dns-udp",
            "{podSelector: {matchLabels: {app: dns}}, ingress: [{ports: [{protocol: UDP, port: dns}, \
             {port: dns-tcp}]}]}",
        ),
    ]);
    let v = c.allowed("z/client", "x/dns", 53, Udp);
    allowed_by(&v.ingress, &[("x", "dns-udp", 0)]);
    let v = c.allowed("z/client", "x/dns", 53, Tcp);
    allowed_by(&v.ingress, &[("x", "dns-udp", 0)]);
    c.denied("z/client", "x/dns", 53, Sctp);
}

// §4: "A named port never matches an `ipBlock` destination."
#[test]
fn s4_named_port_never_matches_an_ip_block_destination() {
    let c = cluster(&[
        pod("x", "a", "{app: a}", "10.1.0.1"),
        pod_ports("y", "b", "{app: b}", "10.2.0.5", "[{name: http, containerPort: 8080}]"),
        np(
            "x",
            "named-to-block",
            "{podSelector: {matchLabels: {app: a}}, policyTypes: [Egress], egress: [\
             {to: [{ipBlock: {cidr: '10.2.0.0/16'}}, {ipBlock: {cidr: '0.0.0.0/0'}}], ports: [{port: http}]}]}",
        ),
        // Ingress from an ipBlock with a named port: the destination is the selected pod, so the name
        // resolves there.
        np(
            "y",
            "named-from-block",
            "{podSelector: {matchLabels: {app: b}}, ingress: [{from: [{ipBlock: {cidr: '10.1.0.0/16'}}, \
             {ipBlock: {cidr: '203.0.113.0/24'}}], ports: [{port: http}]}]}",
        ),
    ]);
    // The pod b is inside the block and has `http` = 8080, but it is reached as an ipBlock.
    for dst in ["y/b", "10.2.0.5"] {
        let v = c.denied("x/a", dst, 8080, Tcp);
        denied_by(
            &v.egress,
            &[("x", "named-to-block")],
            &[named("http", NamedPortResolution::IpBlockDestination)],
        );
        allowed_by(&v.ingress, &[("y", "named-from-block", 0)]);
    }
    let v = c.denied("x/a", EXT, 8080, Tcp);
    denied_by(
        &v.egress,
        &[("x", "named-to-block")],
        &[ports(&[named_spec(Tcp, "http")])],
    );
    // Ingress side: resolved on the selected pod b.
    let v = c.allowed(EXT, "y/b", 8080, Tcp);
    allowed_by(&v.ingress, &[("y", "named-from-block", 0)]);
    let v = c.denied(EXT, "y/b", 9090, Tcp);
    denied_by(
        &v.ingress,
        &[("y", "named-from-block")],
        &[named("http", resolved("y/b", 8080))],
    );
}

// §4: "A named port never matches an `ipBlock` destination." — in a rule that also has a selector
// peer, the name resolves on the pods that selector matches, and only on those.
#[test]
fn s4_named_port_in_a_rule_with_selector_and_ip_block_resolves_only_via_the_selector() {
    let c = cluster(&[
        pod("x", "a", "{app: a}", "10.1.0.1"),
        pod_ports(
            "x",
            "b",
            "{app: b}",
            "10.1.0.2",
            "[{name: http, containerPort: 8080}]",
        ),
        pod_ports(
            "y",
            "b",
            "{app: b}",
            "10.2.0.5",
            "[{name: http, containerPort: 8080}]",
        ),
        np(
            "x",
            "mixed",
            "{podSelector: {matchLabels: {app: a}}, policyTypes: [Egress], egress: [\
             {to: [{podSelector: {matchLabels: {app: b}}}, {ipBlock: {cidr: '10.0.0.0/8'}}], \
             ports: [{port: http}]}]}",
        ),
    ]);
    // x/b is matched by the podSelector (and the ipBlock): the name resolves on it.
    let v = c.allowed("x/a", "x/b", 8080, Tcp);
    allowed_by(&v.egress, &[("x", "mixed", 0)]);
    // y/b is matched only by the ipBlock (podSelector alone is namespace x): no named port.
    let v = c.denied("x/a", "y/b", 8080, Tcp);
    denied_by(
        &v.egress,
        &[("x", "mixed")],
        &[named("http", NamedPortResolution::IpBlockDestination)],
    );
    // A peer matched, so the rule missed on its port only: the podSelector's miss is not a reason.
    assert!(
        rule_misses(&v.egress).iter().all(|m| m.peers.is_empty()),
        "{v:#?}"
    );
}

// §4: "`endPort`: the range `[port, endPort]`" (inclusive).
#[test]
fn s4_end_port_range_is_inclusive() {
    let c = cluster(&[
        pod("x", "a", "{app: a}", "10.1.0.1"),
        pod("z", "client", "{}", "10.3.0.1"),
        np(
            "x",
            "range",
            "{podSelector: {matchLabels: {app: a}}, policyTypes: [Ingress, Egress], \
             ingress: [{ports: [{port: 8000, endPort: 8010}, {protocol: UDP, port: 7000, endPort: 7000}]}], \
             egress: [{ports: [{protocol: SCTP, port: 30000, endPort: 32767}]}]}",
        ),
    ]);
    for port in [8000, 8005, 8010] {
        let v = c.allowed("z/client", "x/a", port, Tcp);
        allowed_by(&v.ingress, &[("x", "range", 0)]);
    }
    for port in [7999, 8011] {
        let v = c.denied("z/client", "x/a", port, Tcp);
        denied_by(
            &v.ingress,
            &[("x", "range")],
            &[ports(&[range(Tcp, 8000, 8010), number(Udp, 7000)])],
        );
    }
    c.denied("z/client", "x/a", 8005, Udp);
    c.allowed("z/client", "x/a", 7000, Udp);
    c.denied("z/client", "x/a", 7001, Udp);
    for port in [30000, 31000, 32767] {
        let v = c.allowed("x/a", "z/client", port, Sctp);
        allowed_by(&v.egress, &[("x", "range", 0)]);
    }
    for port in [29999, 32768] {
        let v = c.denied("x/a", "z/client", port, Sctp);
        denied_by(
            &v.egress,
            &[("x", "range")],
            &[ports(&[range(Sctp, 30000, 32767)])],
        );
    }
    c.denied("x/a", "z/client", 31000, Tcp);
}

// §4: "`endPort` ... requires a numeric `port` and `endPort >= port`."
#[test]
fn s4_end_port_requires_a_numeric_port_not_above_it() {
    let (c, diags) = load(&[
        pod("x", "a", "{app: a}", "10.1.0.1"),
        np(
            "x",
            "named",
            "{podSelector: {}, ingress: [{ports: [{port: http, endPort: 8080}]}]}",
        ),
        np(
            "x",
            "below",
            "{podSelector: {}, ingress: [{ports: [{port: 8080, endPort: 8000}]}]}",
        ),
        np(
            "x",
            "no-port",
            "{podSelector: {}, ingress: [{ports: [{endPort: 8080}]}]}",
        ),
        np(
            "x",
            "equal",
            "{podSelector: {}, ingress: [{ports: [{port: 8080, endPort: 8080}]}]}",
        ),
    ]);
    for name in ["named", "below", "no-port"] {
        assert!(
            diags.iter().any(|d| d.is_error()
                && d.object.as_deref() == Some(&format!("NetworkPolicy x/{name}"))
                && d.field.as_deref() == Some("spec.ingress[0].ports[0].endPort")),
            "{name} should be rejected at spec.ingress[0].ports[0].endPort: {diags:#?}"
        );
    }
    let names: Vec<&str> = c
        .engine
        .state()
        .policies
        .iter()
        .map(|p| p.name.as_str())
        .collect();
    assert_eq!(names, ["equal"]);
    let v = c.allowed("1.2.3.4", "x/a", 8080, Tcp);
    allowed_by(&v.ingress, &[("x", "equal", 0)]);
    c.denied("1.2.3.4", "x/a", 8079, Tcp);
    c.denied("1.2.3.4", "x/a", 8081, Tcp);
}

// §4: "Policies see pod IPs and container ports: a Service's `port` and ClusterIP are translated to
// the backend pod's IP and `targetPort` before policy applies. Writing the Service port in a policy
// is a bug."
#[test]
fn s4_policies_see_pod_ports_not_service_ports() {
    let service = "apiVersion: v1\nkind: Service\nmetadata: {name: web, namespace: x}\n\
                   spec: {selector: {app: web}, clusterIP: 10.96.0.10, ports: [{port: 80, targetPort: 8080}]}\n---\n"
        .to_string();
    let backend = pod_ports(
        "x",
        "web",
        "{app: web}",
        "10.1.0.1",
        "[{name: http, containerPort: 8080}]",
    );
    let client = pod("z", "client", "{}", "10.3.0.1");
    // The bug: the Service port in the policy. The connection reaches the pod on 8080.
    let c = cluster(&[
        service.clone(),
        backend.clone(),
        client.clone(),
        np(
            "x",
            "service-port",
            "{podSelector: {matchLabels: {app: web}}, ingress: [{ports: [{port: 80}]}]}",
        ),
    ]);
    let v = c.denied("z/client", "x/web", 8080, Tcp);
    denied_by(
        &v.ingress,
        &[("x", "service-port")],
        &[ports(&[number(Tcp, 80)])],
    );
    // The fix: the target port, by number or by name.
    for (name, port) in [("target-port", "8080"), ("target-name", "http")] {
        let c = cluster(&[
            service.clone(),
            backend.clone(),
            client.clone(),
            np(
                "x",
                name,
                &format!("{{podSelector: {{matchLabels: {{app: web}}}}, ingress: [{{ports: [{{port: {port}}}]}}]}}"),
            ),
        ]);
        let v = c.allowed("z/client", "x/web", 8080, Tcp);
        allowed_by(&v.ingress, &[("x", name, 0)]);
        let v = c.allowed("z/client", "10.1.0.1", 8080, Tcp);
        allowed_by(&v.ingress, &[("x", name, 0)]);
        c.denied("z/client", "x/web", 80, Tcp);
    }
}

// ---------------------------------------------------------------------------------------------
// §7 The cluster-wide tiers
// ---------------------------------------------------------------------------------------------

/// A ClusterNetworkPolicy; `spec` is a YAML flow mapping.
fn cnp(name: &str, spec: &str) -> String {
    format!(
        "apiVersion: policy.networking.k8s.io/v1alpha2\nkind: ClusterNetworkPolicy\nmetadata: {{name: {name}}}\nspec: {spec}\n---\n"
    )
}

/// The side was decided by rule `rule` of the cluster-wide policy `(kind, name)`, with `action`.
fn tier_decided(side: &Side, kind: Kind, name: &str, rule: usize, action: TierAction) {
    let Decision::Tier { rule: by } = &side.decision else {
        panic!(
            "{} side should be decided by {kind} {name}: {side:#?}",
            side.direction.as_str()
        );
    };
    assert_eq!(
        (by.policy.kind, by.policy.name.as_str(), by.rule, by.action),
        (kind, name, rule, action),
        "{} side decided by another rule",
        side.direction.as_str()
    );
}

/// Namespaces x (team a) and y (team b), a pod in each, and a client in z.
fn tenants() -> Vec<String> {
    vec![
        ns("x", "{team: a}"),
        ns("y", "{team: b}"),
        ns("z", "{team: c}"),
        pod_ports(
            "x",
            "web",
            "{app: web}",
            "10.1.0.1",
            "[{name: http, containerPort: 8080}]",
        ),
        pod_ports(
            "y",
            "db",
            "{app: db}",
            "10.2.0.1",
            "[{name: http, containerPort: 9090, protocol: UDP}]",
        ),
        pod("z", "client", "{app: client}", "10.3.0.1"),
    ]
}

const ALL_NAMESPACES: &str = "{namespaces: {}}";

/// Admin Deny and Accept are final: NetworkPolicy is not consulted. A Deny beats a NetworkPolicy
/// that allows; an Accept beats a NetworkPolicy that isolates; the Admin tier's walk says so.
#[test]
fn admin_accept_and_deny_are_final() {
    let mut docs = tenants();
    docs.push(np("x", "allow-all", "{podSelector: {}, ingress: [{}]}"));
    docs.push(np(
        "y",
        "deny-all",
        "{podSelector: {}, policyTypes: [Ingress]}",
    ));
    docs.push(cnp(
        "guard",
        &format!(
            "{{tier: Admin, priority: 10, subject: {ALL_NAMESPACES}, ingress: [\
             {{name: no-client-to-web, action: Deny, from: [{{pods: {{namespaceSelector: {{}}, podSelector: {{matchLabels: {{app: client}}}}}}}}], protocols: [{{tcp: {{destinationPort: {{number: 8080}}}}}}]}}, \
             {{name: ops-to-db, action: Accept, from: [{{namespaces: {{matchLabels: {{team: c}}}}}}]}}]}}"
        ),
    ));
    let c = cluster(&docs);
    let v = c.denied("z/client", "x/web", 8080, Tcp);
    tier_decided(
        &v.ingress,
        Kind::ClusterNetworkPolicy,
        "guard",
        0,
        TierAction::Deny,
    );
    let walk = v.ingress.admin.as_ref().expect("the Admin tier's walk");
    assert_eq!(
        walk.matched.as_ref().unwrap().name.as_deref(),
        Some("no-client-to-web")
    );
    assert_eq!(walk.policies.len(), 1);
    // Another port: the Deny does not match; the Accept does (z is team c).
    let v = c.allowed("z/client", "x/web", 80, Tcp);
    tier_decided(
        &v.ingress,
        Kind::ClusterNetworkPolicy,
        "guard",
        1,
        TierAction::Accept,
    );
    // The Accept opens y/db although a NetworkPolicy isolates it.
    let v = c.allowed("z/client", "y/db", 5432, Tcp);
    tier_decided(
        &v.ingress,
        Kind::ClusterNetworkPolicy,
        "guard",
        1,
        TierAction::Accept,
    );
    // No Admin rule matches x -> y: NetworkPolicy decides, and the walk says none matched.
    let v = c.denied("x/web", "y/db", 5432, Tcp);
    assert!(
        matches!(v.ingress.decision, Decision::Denied { .. }),
        "{v:#?}"
    );
    assert_eq!(v.ingress.admin.as_ref().unwrap().matched, None);
}

/// An egress Accept allows the egress side only: the destination's ingress is still enforced.
#[test]
fn an_egress_accept_does_not_open_the_destination() {
    let mut docs = tenants();
    docs.push(np(
        "x",
        "deny-all",
        "{podSelector: {}, policyTypes: [Ingress]}",
    ));
    docs.push(cnp(
        "egress-ok",
        "{tier: Admin, priority: 1, subject: {namespaces: {matchLabels: {team: c}}}, egress: [{action: Accept, to: [{namespaces: {}}]}]}",
    ));
    let c = cluster(&docs);
    let v = c.denied("z/client", "x/web", 8080, Tcp);
    tier_decided(
        &v.egress,
        Kind::ClusterNetworkPolicy,
        "egress-ok",
        0,
        TierAction::Accept,
    );
    assert!(
        matches!(v.ingress.decision, Decision::Denied { .. }),
        "{v:#?}"
    );
}

/// Pass leaves the Admin tier: NetworkPolicy decides where it isolates, otherwise the Baseline
/// tier, whose Deny a NetworkPolicy would have overridden.
#[test]
fn pass_hands_over_to_networkpolicy_then_baseline() {
    let mut docs = tenants();
    docs.push(cnp(
        "pass-then-deny",
        "{tier: Admin, priority: 1, subject: {namespaces: {}}, ingress: [{action: Pass, from: [{namespaces: {matchLabels: {team: c}}}]}, {action: Deny, from: [{namespaces: {}}]}]}",
    ));
    docs.push(cnp(
        "baseline-deny",
        "{tier: Baseline, priority: 1, subject: {namespaces: {}}, ingress: [{name: default-deny, action: Deny, from: [{namespaces: {}}]}]}",
    ));
    docs.push(np(
        "x",
        "allow-client",
        "{podSelector: {}, ingress: [{from: [{namespaceSelector: {}}]}]}",
    ));
    let c = cluster(&docs);
    // z -> x: passed, x is isolated by a NetworkPolicy that allows it.
    let v = c.allowed("z/client", "x/web", 8080, Tcp);
    allowed_by(&v.ingress, &[("x", "allow-client", 0)]);
    assert_eq!(
        v.ingress
            .admin
            .as_ref()
            .unwrap()
            .matched
            .as_ref()
            .unwrap()
            .action,
        TierAction::Pass
    );
    assert_eq!(
        v.ingress.baseline, None,
        "Baseline is not reached where NetworkPolicy isolates"
    );
    // z -> y: passed, nothing isolates y: the Baseline Deny decides.
    let v = c.denied("z/client", "y/db", 9090, Udp);
    tier_decided(
        &v.ingress,
        Kind::ClusterNetworkPolicy,
        "baseline-deny",
        0,
        TierAction::Deny,
    );
    // x -> y: the Admin Deny (the Pass did not match).
    let v = c.denied("x/web", "y/db", 9090, Udp);
    tier_decided(
        &v.ingress,
        Kind::ClusterNetworkPolicy,
        "pass-then-deny",
        1,
        TierAction::Deny,
    );
}

/// Policies of a tier go by priority (lower first), then kind and name; rules in written order.
#[test]
fn priorities_then_kind_and_name_then_rule_order() {
    let deny = "{action: Deny, from: [{namespaces: {}}]}";
    let accept = "{action: Accept, from: [{namespaces: {}}]}";
    let subject =
        "subject: {pods: {namespaceSelector: {}, podSelector: {matchLabels: {app: web}}}}";
    let docs = |a: (&str, u32, &str), b: (&str, u32, &str)| {
        let mut docs = tenants();
        for (name, priority, rule) in [a, b] {
            docs.push(cnp(
                name,
                &format!("{{tier: Admin, priority: {priority}, {subject}, ingress: [{rule}]}}"),
            ));
        }
        cluster(&docs)
    };
    let c = docs(("a-deny", 2, deny), ("b-accept", 1, accept));
    tier_decided(
        &c.allowed("z/client", "x/web", 1, Tcp).ingress,
        Kind::ClusterNetworkPolicy,
        "b-accept",
        0,
        TierAction::Accept,
    );
    let c = docs(("a-deny", 1, deny), ("b-accept", 2, accept));
    tier_decided(
        &c.denied("z/client", "x/web", 1, Tcp).ingress,
        Kind::ClusterNetworkPolicy,
        "a-deny",
        0,
        TierAction::Deny,
    );
    // The same priority: by name.
    let c = docs(("b-deny", 5, deny), ("a-accept", 5, accept));
    tier_decided(
        &c.allowed("z/client", "x/web", 1, Tcp).ingress,
        Kind::ClusterNetworkPolicy,
        "a-accept",
        0,
        TierAction::Accept,
    );
    // Within a policy, the first rule written that matches.
    let c = docs(("one", 1, &format!("{accept}, {deny}")), ("two", 2, deny));
    tier_decided(
        &c.allowed("z/client", "x/web", 1, Tcp).ingress,
        Kind::ClusterNetworkPolicy,
        "one",
        0,
        TierAction::Accept,
    );
}

/// `networks` match addresses outside the cluster and pod addresses alike; `nodes` the addresses
/// of the Nodes they select (a hostNetwork pod there shares them).
#[test]
fn networks_and_nodes_peers() {
    let mut docs = tenants();
    docs.push(
        "apiVersion: v1\nkind: Node\nmetadata: {name: n1, labels: {role: infra}}\nstatus: {addresses: [{type: InternalIP, address: 192.168.0.21}]}\n---\n".to_string(),
    );
    docs.push(host_pod(
        "kube-system",
        "agent",
        "{app: agent}",
        "n1",
        "192.168.0.21",
    ));
    docs.push(cnp(
        "egress",
        "{tier: Admin, priority: 1, subject: {namespaces: {matchLabels: {team: c}}}, egress: [\
         {action: Deny, to: [{networks: ['203.0.113.0/24', '10.1.0.0/16']}]}, \
         {action: Deny, to: [{nodes: {matchLabels: {role: infra}}}]}]}",
    ));
    let c = cluster(&docs);
    tier_decided(
        &c.denied("z/client", EXT, 443, Tcp).egress,
        Kind::ClusterNetworkPolicy,
        "egress",
        0,
        TierAction::Deny,
    );
    tier_decided(
        &c.denied("z/client", "x/web", 8080, Tcp).egress,
        Kind::ClusterNetworkPolicy,
        "egress",
        0,
        TierAction::Deny,
    );
    tier_decided(
        &c.denied("z/client", "192.168.0.21", 10250, Tcp).egress,
        Kind::ClusterNetworkPolicy,
        "egress",
        1,
        TierAction::Deny,
    );
    tier_decided(
        &c.denied("z/client", "kube-system/agent", 10250, Tcp).egress,
        Kind::ClusterNetworkPolicy,
        "egress",
        1,
        TierAction::Deny,
    );
    c.allowed("z/client", "y/db", 9090, Udp);
}

/// What Palisade cannot read fails closed, as the API says: a peer of no known field matches
/// nothing in an Accept rule and everything in a Deny rule; `domainNames` match no address.
#[test]
fn unknown_peers_fail_closed_and_domain_names_match_nothing() {
    let mut docs = tenants();
    docs.push(np(
        "x",
        "deny-all",
        "{podSelector: {}, policyTypes: [Ingress]}",
    ));
    docs.push(cnp(
        "future",
        "{tier: Admin, priority: 1, subject: {namespaces: {matchLabels: {team: a}}}, ingress: [{action: Accept, from: [{serviceAccounts: {}}]}]}",
    ));
    docs.push(cnp(
        "future-deny",
        "{tier: Admin, priority: 2, subject: {namespaces: {matchLabels: {team: b}}}, ingress: [{action: Deny, from: [{serviceAccounts: {}}]}]}",
    ));
    docs.push(cnp(
        "names",
        "{tier: Admin, priority: 3, subject: {namespaces: {matchLabels: {team: c}}}, egress: [{action: Accept, to: [{domainNames: ['example.com']}]}, {action: Deny, to: [{networks: ['0.0.0.0/0']}]}]}",
    ));
    let c = cluster(&docs);
    // The Accept matches nothing: NetworkPolicy still denies.
    let v = c.denied("y/db", "x/web", 8080, Tcp);
    assert!(
        matches!(v.ingress.decision, Decision::Denied { .. }),
        "{v:#?}"
    );
    // The Deny matches everything.
    let v = c.denied("x/web", "y/db", 9090, Udp);
    tier_decided(
        &v.ingress,
        Kind::ClusterNetworkPolicy,
        "future-deny",
        0,
        TierAction::Deny,
    );
    // The domain name matches no address: the Deny after it decides.
    let v = c.denied("z/client", EXT, 443, Tcp);
    tier_decided(
        &v.egress,
        Kind::ClusterNetworkPolicy,
        "names",
        1,
        TierAction::Deny,
    );
}

/// A named port resolves on the destination pod, whatever its protocol; hostNetwork pods are
/// never a subject.
#[test]
fn named_ports_resolve_on_the_destination_and_host_pods_are_no_subject() {
    let mut docs = tenants();
    docs.push(host_pod(
        "x",
        "node-agent",
        "{app: web}",
        "n9",
        "192.168.0.109",
    ));
    docs.push(cnp(
        "named",
        "{tier: Admin, priority: 1, subject: {namespaces: {}}, ingress: [{action: Deny, from: [{namespaces: {}}], protocols: [{destinationNamedPort: http}]}]}",
    ));
    let c = cluster(&docs);
    // x/web's http is 8080/TCP, y/db's is 9090/UDP.
    tier_decided(
        &c.denied("z/client", "x/web", 8080, Tcp).ingress,
        Kind::ClusterNetworkPolicy,
        "named",
        0,
        TierAction::Deny,
    );
    c.allowed("z/client", "x/web", 8080, Udp);
    tier_decided(
        &c.denied("z/client", "y/db", 9090, Udp).ingress,
        Kind::ClusterNetworkPolicy,
        "named",
        0,
        TierAction::Deny,
    );
    c.allowed("z/client", "y/db", 9090, Tcp);
    let v = c.allowed("z/client", "x/node-agent", 8080, Tcp);
    unenforced(&v.ingress, host_network("x/node-agent"));
}

/// The v1alpha1 kinds: AdminNetworkPolicy is the Admin tier (`Allow` is Accept); the
/// BaselineAdminNetworkPolicy `default` the Baseline tier, after every Baseline
/// ClusterNetworkPolicy (it has no priority).
#[test]
fn v1alpha1_kinds_take_their_tiers() {
    let mut docs = tenants();
    docs.push(
        "apiVersion: policy.networking.k8s.io/v1alpha1\nkind: AdminNetworkPolicy\nmetadata: {name: anp}\nspec: {priority: 5, subject: {namespaces: {matchLabels: {team: a}}}, ingress: [{action: Allow, from: [{namespaces: {matchLabels: {team: c}}}], ports: [{portNumber: {protocol: TCP, port: 8080}}]}]}\n---\n".to_string(),
    );
    docs.push(
        "apiVersion: policy.networking.k8s.io/v1alpha1\nkind: BaselineAdminNetworkPolicy\nmetadata: {name: default}\nspec: {subject: {namespaces: {}}, ingress: [{action: Deny, from: [{namespaces: {}}]}]}\n---\n".to_string(),
    );
    docs.push(cnp(
        "baseline-allow-b",
        "{tier: Baseline, priority: 1000, subject: {namespaces: {matchLabels: {team: b}}}, ingress: [{action: Accept, from: [{namespaces: {}}]}]}",
    ));
    let c = cluster(&docs);
    tier_decided(
        &c.allowed("z/client", "x/web", 8080, Tcp).ingress,
        Kind::AdminNetworkPolicy,
        "anp",
        0,
        TierAction::Accept,
    );
    tier_decided(
        &c.denied("z/client", "x/web", 80, Tcp).ingress,
        Kind::BaselineAdminNetworkPolicy,
        "default",
        0,
        TierAction::Deny,
    );
    tier_decided(
        &c.allowed("z/client", "y/db", 9090, Udp).ingress,
        Kind::ClusterNetworkPolicy,
        "baseline-allow-b",
        0,
        TierAction::Accept,
    );
}

/// `Engine::peer_classes_matching` (for analyses asking what a peer as written selects) matches
/// as the reference says: namespace scope, labels, `hostNetwork` pods never — selectors naming
/// keys and values no object has included (they are not interned, yet must match as written).
#[test]
fn peer_classes_matching_follows_the_reference_for_selectors_as_written() {
    use palisade_model::PolicyPeer;
    let peers = [
        "{podSelector: {matchLabels: {app: web}}}",
        "{podSelector: {matchLabels: {app: nowhere}}}",
        "{podSelector: {matchExpressions: [{key: app, operator: NotIn, values: [nowhere]}]}}",
        "{podSelector: {matchExpressions: [{key: absent, operator: DoesNotExist}]}}",
        "{podSelector: {matchExpressions: [{key: absent, operator: Exists}]}}",
        "{namespaceSelector: {matchLabels: {team: b}}, podSelector: {}}",
        "{namespaceSelector: {matchLabels: {team: z}}}",
        "{namespaceSelector: {}, podSelector: {matchLabels: {app: web}}}",
    ];
    let mut docs = vec![ns("a", "{team: a}"), ns("b", "{team: b}")];
    for (n, (name, labels, ip)) in [
        ("web", "{app: web}", "10.0.0.1"),
        ("db", "{app: db}", "10.0.0.2"),
    ]
    .into_iter()
    .enumerate()
    {
        docs.push(pod("a", name, labels, ip));
        docs.push(pod("b", name, labels, &format!("10.0.1.{}", n + 1)));
    }
    docs.push(host_pod("a", "agent", "{app: web}", "n0", "192.168.0.100"));
    // Labels with the keys and values interned first (the namespaces'), which an unknown key or
    // value must never be taken for.
    docs.push(pod("a", "odd", "{app: a, team: a}", "10.0.0.3"));
    let c = cluster(&docs);
    // The peers come from another load: their keys and values are not interned by `c`'s engine.
    for (i, peer) in peers.iter().enumerate() {
        let spec = format!("{{podSelector: {{}}, ingress: [{{from: [{peer}]}}]}}");
        docs.push(np("a", &format!("p{i}"), &spec));
    }
    let written = cluster(&docs);
    let state = c.engine.state();
    let own = state.namespace_id("a").unwrap();
    let mut matched_some = 0;
    for policy in &written.engine.state().policies {
        let rule = &policy.policy.spec().ingress.as_ref().unwrap()[0];
        let Some(PolicyPeer::Pods { namespaces, pods }) = rule.peers.as_ref().unwrap().first()
        else {
            panic!("{} has a selector peer", policy.name);
        };
        let expected: BTreeSet<String> = (state.pods.iter())
            .filter(|p| !p.host_network && pods.matches(&p.labels))
            .filter(|p| match namespaces {
                None => p.namespace == "a",
                Some(sel) => {
                    sel.matches(&state.namespaces[state.namespace_id(&p.namespace).unwrap()].labels)
                }
            })
            .map(|p| p.key().to_string())
            .collect();
        let classes = c
            .engine
            .peer_classes_matching(own, namespaces.as_ref(), pods);
        let got: BTreeSet<String> = (classes.iter())
            .flat_map(|class| c.engine.class_pods(class))
            .map(|&p| state.pods[p].key().to_string())
            .collect();
        assert_eq!(
            got,
            expected,
            "{}: {}",
            policy.name,
            peers[policy.name[1..].parse::<usize>().unwrap()]
        );
        matched_some += usize::from(!got.is_empty());
    }
    assert_eq!(matched_some, 5, "the peers that match pods here match some");
}

//! NetworkPolicies decoded: what a valid policy's spec says, as typed values (`shared/reference/
//! networkpolicy.md` §1–4 for the defaults: effective policy types, TCP when no protocol is given,
//! an omitted or empty list meaning everyone or every port). [`ValidPolicy::new`] validates a
//! policy (§5: the field rules of `validate.rs`, and those of NetworkPolicy here) and decodes it in
//! the same walk: a policy is either rejected with its errors or carries its typed spec, and no
//! consumer parses its strings again.

use crate::selector::SelectorSpec;
use crate::validate::{
    cidr, cidr_at, dns1123_label, dns1123_subdomain, labels, port_name, port_number, protocol,
    selector, Issues,
};
use crate::Protocol;
use ipnet::IpNet;
use k8s_openapi::api::networking::v1::{
    IPBlock, NetworkPolicy, NetworkPolicyPeer, NetworkPolicyPort, NetworkPolicySpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use std::net::IpAddr;

/// A NetworkPolicy that passed validation: the object as read and its spec decoded. Made only by
/// [`ValidPolicy::new`], so the two always agree.
#[derive(Debug, PartialEq)]
pub struct ValidPolicy {
    object: NetworkPolicy,
    spec: PolicySpec,
}

impl ValidPolicy {
    /// Validates `object` (§5 of the reference) and decodes its spec: the policy with the warnings
    /// found, or the issues (at least one error) that reject it.
    pub fn new(object: NetworkPolicy) -> Result<(ValidPolicy, Issues), Issues> {
        match network_policy(&object) {
            (issues, Some(spec)) => Ok((ValidPolicy { object, spec }, issues)),
            (issues, None) => Err(issues),
        }
    }

    /// The object as read (its metadata, and the manifest a snapshot writes).
    pub fn object(&self) -> &NetworkPolicy {
        &self.object
    }

    /// The spec, decoded.
    pub fn spec(&self) -> &PolicySpec {
        &self.spec
    }

    /// `ns/name`: how an agent's status and `palisade status` name it.
    pub fn namespaced_name(&self) -> String {
        let meta = &self.object.metadata;
        let namespace = meta.namespace.as_deref().unwrap_or("default");
        format!("{namespace}/{}", meta.name.as_deref().unwrap_or_default())
    }

    /// `metadata.generation` (0 where the API server gives none: manifests).
    pub fn generation(&self) -> i64 {
        self.object.metadata.generation.unwrap_or(0)
    }

    /// Annotated `policy.palisade.dev/audit-mode: "true"` (what that means is the engine's).
    pub fn audit_annotated(&self) -> bool {
        crate::logging::audit_annotated(&self.object.metadata)
    }
}

/// A policy's spec.
#[derive(Clone, Debug, PartialEq)]
pub struct PolicySpec {
    /// `spec.podSelector` (`{}`, every pod of the namespace, when omitted).
    pub pod_selector: SelectorSpec,
    /// The ingress rules when `Ingress` is among the effective policy types, else `None`.
    pub ingress: Option<Vec<PolicyRule>>,
    /// The egress rules when `Egress` is among the effective policy types, else `None`.
    pub egress: Option<Vec<PolicyRule>>,
}

/// One ingress or egress rule.
#[derive(Clone, Debug, PartialEq)]
pub struct PolicyRule {
    /// `from` / `to`; `None` when omitted or empty: every source / destination.
    pub peers: Option<Vec<PolicyPeer>>,
    /// `ports`; `None` when omitted or empty: every port of every protocol.
    pub ports: Option<Vec<PortSpec>>,
}

/// One entry of `from` / `to`.
#[derive(Clone, Debug, PartialEq)]
pub enum PolicyPeer {
    /// An `ipBlock`.
    IpBlock(IpBlock),
    /// Pods matching `pods` in the namespaces `namespaces` selects.
    Pods {
        /// `namespaceSelector`; `None` when omitted: the policy's own namespace.
        namespaces: Option<SelectorSpec>,
        /// `podSelector` (`{}`, every pod, when omitted).
        pods: SelectorSpec,
    },
}

/// An `ipBlock`: addresses in `cidr` and in none of `except`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct IpBlock {
    /// The block (host bits cleared).
    pub cidr: IpNet,
    /// Excluded sub-blocks (host bits cleared).
    pub except: Vec<IpNet>,
}

impl IpBlock {
    /// True if `ip` is in `cidr` and not in any `except`.
    pub fn contains(&self, ip: IpAddr) -> bool {
        self.cidr.contains(&ip) && !self.except.iter().any(|e| e.contains(&ip))
    }

    /// The `except` entry that excludes `ip`, if any.
    pub fn excluded_by(&self, ip: IpAddr) -> Option<&IpNet> {
        self.except.iter().find(|e| e.contains(&ip))
    }
}

/// Which ports of a protocol a rule allows.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum PortMatch {
    /// Every port of the protocol (`port` omitted).
    Any,
    /// `port` or `[port, endPort]`, inclusive.
    Range(u16, u16),
    /// A named container port, resolved on the destination pod.
    Named(String),
}

/// One entry of a rule's `ports` list.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct PortSpec {
    /// Protocol (TCP when omitted).
    pub protocol: Protocol,
    /// The ports of that protocol.
    pub port: PortMatch,
}

impl PortSpec {
    /// True if this spec allows `port`/`protocol` when the named port (if any) resolves to
    /// `named` (the destination pod's port of that name and protocol; `None` if it has none).
    /// ICMP and other portless protocols never match a port spec.
    pub fn matches(&self, port: u16, protocol: Protocol, named: Option<u16>) -> bool {
        self.protocol == protocol
            && match &self.port {
                PortMatch::Any => true,
                PortMatch::Range(lo, hi) => (*lo..=*hi).contains(&port),
                PortMatch::Named(_) => named == Some(port),
            }
    }

    /// The name, for named port specs.
    pub fn name(&self) -> Option<&str> {
        match &self.port {
            PortMatch::Named(n) => Some(n),
            _ => None,
        }
    }
}

/// Effective policy types as (ingress, egress): `spec.policyTypes` when non-empty; otherwise
/// `Ingress`, plus `Egress` iff `spec.egress` has at least one rule (`egress: []` does not imply
/// Egress).
pub(crate) fn effective_types(spec: &NetworkPolicySpec) -> (bool, bool) {
    match spec.policy_types.as_deref() {
        Some(types) if !types.is_empty() => (
            types.iter().any(|t| t == "Ingress"),
            types.iter().any(|t| t == "Egress"),
        ),
        _ => (true, spec.egress.as_ref().is_some_and(|e| !e.is_empty())),
    }
}

fn policy_port(port: &NetworkPolicyPort, path: &str, issues: &mut Issues) -> Option<PortSpec> {
    let protocol = issues.check(
        format!("{path}.protocol"),
        protocol(port.protocol.as_deref()),
    );
    let end_path = format!("{path}.endPort");
    let matched = match &port.port {
        Some(IntOrString::Int(n)) => {
            let lo = issues.check(format!("{path}.port"), port_number(*n));
            let hi = match port.end_port {
                None => lo,
                Some(end) => {
                    let end = port_number(end).and_then(|end| {
                        if i32::from(end) < *n {
                            Err(format!(
                                "endPort {end} must be greater than or equal to port {n}"
                            ))
                        } else {
                            Ok(end)
                        }
                    });
                    issues.check(end_path, end)
                }
            };
            lo.zip(hi).map(|(lo, hi)| PortMatch::Range(lo, hi))
        }
        Some(IntOrString::String(name)) => {
            let name = issues.check(format!("{path}.port"), port_name(name).map(|()| name));
            if port.end_port.is_some() {
                issues.error(
                    end_path,
                    "endPort may not be used with a named port; use a numeric port",
                );
                None
            } else {
                name.map(|name| PortMatch::Named(name.clone()))
            }
        }
        None => {
            if port.end_port.is_some() {
                issues.error(end_path, "endPort requires a numeric port");
                None
            } else {
                Some(PortMatch::Any)
            }
        }
    };
    Some(PortSpec {
        protocol: protocol?,
        port: matched?,
    })
}

fn peer(peer: &NetworkPolicyPeer, path: &str, issues: &mut Issues) -> Option<PolicyPeer> {
    let selectors = peer.pod_selector.is_some() || peer.namespace_selector.is_some();
    let shape = match &peer.ip_block {
        Some(_) if selectors => Err(
            "ipBlock may not be combined with podSelector or namespaceSelector in one peer; use separate peers",
        ),
        None if !selectors => Err("a peer must set podSelector, namespaceSelector or ipBlock"),
        _ => Ok(()),
    };
    let shape = issues.check(path, shape.map_err(String::from));
    let any = LabelSelector::default();
    let pods = peer.pod_selector.as_ref().unwrap_or(&any);
    let pods = selector(pods, &format!("{path}.podSelector"), issues);
    let namespaces = (peer.namespace_selector.as_ref())
        .map(|sel| selector(sel, &format!("{path}.namespaceSelector"), issues));
    let decoded = match &peer.ip_block {
        Some(block) => ip_block(block, path, issues).map(PolicyPeer::IpBlock),
        None => Some(PolicyPeer::Pods {
            namespaces: namespaces.map_or(Some(None), |n| n.map(Some))?,
            pods: pods?,
        }),
    };
    shape.and(decoded)
}

fn ip_block(block: &IPBlock, path: &str, issues: &mut Issues) -> Option<IpBlock> {
    let cidr_path = format!("{path}.ipBlock.cidr");
    let outer = cidr_at(&block.cidr, &cidr_path, issues);
    let except: Vec<Option<IpNet>> = (block.except.iter().flatten().enumerate())
        .map(|(i, text)| {
            let p = format!("{path}.ipBlock.except[{i}]");
            let (net, canonical) = issues.check(&p, cidr(text))?;
            // Without a valid cidr (its error is reported) there is nothing to check against.
            let outer = outer?;
            let same_family = matches!(
                (net, outer),
                (IpNet::V4(_), IpNet::V4(_)) | (IpNet::V6(_), IpNet::V6(_))
            );
            if !same_family {
                issues.error(
                    p,
                    format!("{text:?} is not of the same address family as cidr {outer}"),
                );
                return None;
            }
            if !(outer.contains(&net) && net.prefix_len() > outer.prefix_len()) {
                issues.error(
                    p,
                    format!(
                        "{text:?} must be strictly inside cidr {outer} (a smaller block within it)"
                    ),
                );
                return None;
            }
            if !canonical {
                issues.warning(
                    p,
                    format!("{text:?} is not in canonical form; it is read as {net}"),
                );
            }
            Some(net)
        })
        .collect();
    Some(IpBlock {
        cidr: outer?,
        except: except.into_iter().collect::<Option<_>>()?,
    })
}

/// `None` for an empty list: in a rule, the same as an omitted one.
fn non_empty<T>(list: Vec<T>) -> Option<Vec<T>> {
    (!list.is_empty()).then_some(list)
}

/// Validates and decodes one rule (`field` is `from` or `to`): `None` when it has an error.
fn rule(
    peers: Option<&[NetworkPolicyPeer]>,
    ports: Option<&[NetworkPolicyPort]>,
    path: &str,
    field: &str,
    issues: &mut Issues,
) -> Option<PolicyRule> {
    let peers: Vec<_> = (peers.into_iter().flatten().enumerate())
        .map(|(j, p)| peer(p, &format!("{path}.{field}[{j}]"), issues))
        .collect();
    let ports: Vec<_> = (ports.into_iter().flatten().enumerate())
        .map(|(j, p)| policy_port(p, &format!("{path}.ports[{j}]"), issues))
        .collect();
    Some(PolicyRule {
        peers: non_empty(peers.into_iter().collect::<Option<_>>()?),
        ports: non_empty(ports.into_iter().collect::<Option<_>>()?),
    })
}

/// A NetworkPolicy's name, namespace and labels.
fn metadata(np: &NetworkPolicy, issues: &mut Issues) {
    match np.metadata.name.as_deref() {
        None => issues.error("metadata.name", "a NetworkPolicy needs a name"),
        Some(name) => {
            if let Err(e) = dns1123_subdomain(name) {
                issues.error("metadata.name", e);
            }
        }
    }
    if let Some(ns) = np.metadata.namespace.as_deref() {
        if let Err(e) = dns1123_label(ns) {
            issues.error("metadata.namespace", e);
        }
    }
    if let Some(map) = &np.metadata.labels {
        labels(map, "metadata.labels", issues);
    }
}

/// `spec.policyTypes`: each `Ingress` or `Egress`, once.
fn policy_types(spec: &NetworkPolicySpec, issues: &mut Issues) {
    let mut seen = Vec::new();
    for (i, t) in spec.policy_types.iter().flatten().enumerate() {
        if t != "Ingress" && t != "Egress" {
            issues.error(
                format!("spec.policyTypes[{i}]"),
                format!("unknown policy type {t:?}; valid: Ingress, Egress"),
            );
        } else if seen.contains(&t) {
            issues.error(
                format!("spec.policyTypes[{i}]"),
                format!("duplicate policy type {t:?}"),
            );
        }
        seen.push(t);
    }
}

/// Validates a NetworkPolicy (§5 of the reference): name, selectors, peers, ipBlocks, ports,
/// policyTypes. Errors reject the object; warnings are reported and the object is used. Decodes it
/// in the same walk: the spec is there exactly when no issue is an error ([`ValidPolicy::new`]).
pub(crate) fn network_policy(np: &NetworkPolicy) -> (Issues, Option<PolicySpec>) {
    let mut issues = Issues::default();
    metadata(np, &mut issues);
    let Some(spec) = &np.spec else {
        issues.error(
            "spec",
            "a NetworkPolicy needs a spec (at least `podSelector: {}`)",
        );
        return (issues, None);
    };
    let pod_selector = selector(
        spec.pod_selector
            .as_ref()
            .unwrap_or(&LabelSelector::default()),
        "spec.podSelector",
        &mut issues,
    );
    policy_types(spec, &mut issues);
    let ingress: Vec<_> = (spec.ingress.iter().flatten().enumerate())
        .map(|(i, r)| {
            let (peers, ports) = (r.from.as_deref(), r.ports.as_deref());
            rule(
                peers,
                ports,
                &format!("spec.ingress[{i}]"),
                "from",
                &mut issues,
            )
        })
        .collect();
    let egress: Vec<_> = (spec.egress.iter().flatten().enumerate())
        .map(|(i, r)| {
            let (peers, ports) = (r.to.as_deref(), r.ports.as_deref());
            rule(
                peers,
                ports,
                &format!("spec.egress[{i}]"),
                "to",
                &mut issues,
            )
        })
        .collect();
    if issues.has_errors() {
        return (issues, None);
    }
    // Every part that failed to decode reported an error: all are there.
    let (has_ingress, has_egress) = effective_types(spec);
    // `Some(None)` for a direction the policy does not govern.
    let rules = |has: bool, rules: Vec<Option<PolicyRule>>| match has {
        true => rules.into_iter().collect::<Option<Vec<_>>>().map(Some),
        false => Some(None),
    };
    let decoded = (|| {
        Some(PolicySpec {
            pod_selector: pod_selector?,
            ingress: rules(has_ingress, ingress)?,
            egress: rules(has_egress, egress)?,
        })
    })();
    debug_assert!(decoded.is_some(), "a part failed without an error");
    (issues, decoded)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::selector::{Expression, LabelOperator};
    use crate::Severity;
    use serde_json::json;

    fn np(spec: serde_json::Value) -> NetworkPolicy {
        serde_json::from_value(json!({
            "apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": {"name": "p", "namespace": "x"}, "spec": spec
        }))
        .unwrap()
    }

    fn errors(spec: serde_json::Value) -> Vec<String> {
        network_policy(&np(spec))
            .0
             .0
            .into_iter()
            .filter(|i| i.severity == crate::Severity::Error)
            .map(|i| i.field)
            .collect()
    }

    #[test]
    fn valid_policy_has_no_issues() {
        let (issues, spec) = network_policy(&np(json!({
            "podSelector": {"matchLabels": {"app": "db"}},
            "policyTypes": ["Ingress", "Egress"],
            "ingress": [{"from": [
                {"namespaceSelector": {"matchExpressions": [{"key": "team", "operator": "In", "values": ["a"]}]},
                 "podSelector": {"matchExpressions": [{"key": "tier", "operator": "Exists"}]}},
                {"ipBlock": {"cidr": "10.0.0.0/8", "except": ["10.1.0.0/16"]}}],
                "ports": [{"port": 80}, {"port": "http", "protocol": "TCP"}, {"port": 1000, "endPort": 2000, "protocol": "UDP"}]}],
            "egress": [{"to": [{"ipBlock": {"cidr": "fd00::/8", "except": ["fd00:1::/32"]}}], "ports": [{"protocol": "SCTP"}]}]
        })));
        assert!(issues.0.is_empty(), "{issues:?}");
        assert!(spec.is_some());
    }

    #[test]
    fn in_operator_needs_values() {
        assert_eq!(
            errors(
                json!({"podSelector": {"matchExpressions": [{"key": "a", "operator": "In", "values": []}]}})
            ),
            vec!["spec.podSelector.matchExpressions[0].values"]
        );
        assert_eq!(
            errors(
                json!({"podSelector": {"matchExpressions": [{"key": "a", "operator": "Exists", "values": ["x"]}]}})
            ),
            vec!["spec.podSelector.matchExpressions[0].values"]
        );
        assert_eq!(
            errors(json!({"podSelector": {"matchExpressions": [{"key": "a", "operator": "Is"}]}})),
            vec!["spec.podSelector.matchExpressions[0].operator"]
        );
    }

    #[test]
    fn except_must_be_strictly_inside_and_same_family() {
        let e = errors(
            json!({"podSelector": {}, "ingress": [{"from": [{"ipBlock": {"cidr": "10.0.0.0/16",
            "except": ["10.0.0.0/16", "10.1.0.0/24", "fd00::/64", "10.0.1.0/24", "bogus"]}}]}]}),
        );
        assert_eq!(
            e,
            vec![
                "spec.ingress[0].from[0].ipBlock.except[0]",
                "spec.ingress[0].from[0].ipBlock.except[1]",
                "spec.ingress[0].from[0].ipBlock.except[2]",
                "spec.ingress[0].from[0].ipBlock.except[4]",
            ]
        );
    }

    #[test]
    fn non_canonical_cidr_is_a_warning() {
        let (issues, spec) = network_policy(&np(
            json!({"podSelector": {}, "egress": [{"to": [{"ipBlock": {"cidr": "10.0.0.1/8"}}]}]}),
        ));
        assert!(spec.is_some(), "a warning does not reject");
        assert_eq!(issues.0.len(), 1);
        assert_eq!(issues.0[0].severity, crate::Severity::Warning);
        assert!(issues.0[0].message.contains("10.0.0.0/8"));
    }

    #[test]
    fn end_port_rules() {
        let e = errors(json!({"podSelector": {}, "ingress": [{"ports": [
            {"port": 100, "endPort": 99}, {"port": "http", "endPort": 100}, {"endPort": 5}, {"port": 0}, {"port": 70000},
            {"port": "Http"}, {"port": "a--b"}, {"port": "1234"}, {"port": 53, "protocol": "ICMP"}, {"port": 53, "protocol": "udp"}]}]}));
        assert_eq!(
            e,
            vec![
                "spec.ingress[0].ports[0].endPort",
                "spec.ingress[0].ports[1].endPort",
                "spec.ingress[0].ports[2].endPort",
                "spec.ingress[0].ports[3].port",
                "spec.ingress[0].ports[4].port",
                "spec.ingress[0].ports[5].port",
                "spec.ingress[0].ports[6].port",
                "spec.ingress[0].ports[7].port",
                "spec.ingress[0].ports[8].protocol",
                "spec.ingress[0].ports[9].protocol",
            ]
        );
    }

    #[test]
    fn peer_shape_rules() {
        let e = errors(json!({"podSelector": {}, "egress": [{"to": [
            {}, {"ipBlock": {"cidr": "10.0.0.0/8"}, "podSelector": {}}]}]}));
        assert_eq!(e, vec!["spec.egress[0].to[0]", "spec.egress[0].to[1]"]);
    }

    #[test]
    fn names_types_and_labels() {
        let mut p = np(
            json!({"podSelector": {"matchLabels": {"bad key!": "v", "ok": "-bad"}}, "policyTypes": ["Ingress", "Ingress", "Foo"]}),
        );
        p.metadata.name = Some("Bad_Name".into());
        let fields: Vec<_> = network_policy(&p)
            .0
             .0
            .into_iter()
            .map(|i| i.field)
            .collect();
        assert_eq!(
            fields,
            vec![
                "metadata.name",
                "spec.podSelector.matchLabels[\"bad key!\"]",
                "spec.podSelector.matchLabels[\"ok\"]",
                "spec.policyTypes[1]",
                "spec.policyTypes[2]",
            ]
        );
    }

    fn decode(spec: serde_json::Value) -> Result<(ValidPolicy, Issues), Issues> {
        ValidPolicy::new(
            serde_json::from_value(json!({
                "apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
                "metadata": {"name": "p", "namespace": "x"}, "spec": spec
            }))
            .unwrap(),
        )
    }

    fn spec(spec: serde_json::Value) -> PolicySpec {
        let (policy, issues) = decode(spec).expect("valid");
        assert!(!issues.has_errors());
        policy.spec
    }

    fn directions(s: serde_json::Value) -> (Option<usize>, Option<usize>) {
        let s = spec(s);
        (s.ingress.map(|r| r.len()), s.egress.map(|r| r.len()))
    }

    fn ports(ports: serde_json::Value) -> Option<Vec<PortSpec>> {
        let s = spec(json!({"podSelector": {}, "ingress": [{"ports": ports}]}));
        s.ingress.unwrap()[0].ports.clone()
    }

    fn peers(peers: serde_json::Value) -> Option<Vec<PolicyPeer>> {
        let s = spec(json!({"podSelector": {}, "egress": [{"to": peers}]}));
        s.egress.unwrap()[0].peers.clone()
    }

    fn port(protocol: Protocol, port: PortMatch) -> PortSpec {
        PortSpec { protocol, port }
    }

    fn net(text: &str) -> IpNet {
        text.parse().unwrap()
    }

    #[test]
    fn effective_types_default_to_ingress_plus_egress_with_egress_rules() {
        assert_eq!(directions(json!({"podSelector": {}})), (Some(0), None));
        assert_eq!(
            directions(json!({"podSelector": {}, "ingress": [{}, {}]})),
            (Some(2), None)
        );
        // `egress: []` does not imply Egress; one rule does.
        assert_eq!(
            directions(json!({"podSelector": {}, "egress": []})),
            (Some(0), None)
        );
        assert_eq!(
            directions(json!({"podSelector": {}, "egress": [{}]})),
            (Some(0), Some(1))
        );
        assert_eq!(
            directions(json!({"podSelector": {}, "policyTypes": []})),
            (Some(0), None)
        );
    }

    #[test]
    fn policy_types_when_given_decide_the_directions() {
        // Rules of a direction the policy does not govern are not used.
        assert_eq!(
            directions(json!({"podSelector": {}, "policyTypes": ["Egress"], "ingress": [{}]})),
            (None, Some(0))
        );
        assert_eq!(
            directions(json!({"podSelector": {}, "policyTypes": ["Ingress"], "egress": [{}]})),
            (Some(0), None)
        );
        assert_eq!(
            directions(json!({"podSelector": {}, "policyTypes": ["Egress", "Ingress"]})),
            (Some(0), Some(0))
        );
    }

    #[test]
    fn pod_selector_defaults_to_every_pod() {
        assert_eq!(spec(json!({})).pod_selector, SelectorSpec::default());
        let s = spec(json!({"podSelector": {"matchLabels": {"app": "db"}}}));
        assert_eq!(
            s.pod_selector.match_labels,
            [("app".to_string(), "db".to_string())].into()
        );
    }

    #[test]
    fn ports_decode_with_tcp_by_default_ranges_and_names() {
        assert_eq!(ports(json!([])), None);
        assert_eq!(
            ports(json!([
                {"port": 80},
                {"port": 1000, "endPort": 2000, "protocol": "UDP"},
                {"port": "http"},
                {"protocol": "SCTP"},
                {"port": 53, "protocol": "UDP"},
                {"port": 65535, "endPort": 65535},
            ])),
            Some(vec![
                port(Protocol::Tcp, PortMatch::Range(80, 80)),
                port(Protocol::Udp, PortMatch::Range(1000, 2000)),
                port(Protocol::Tcp, PortMatch::Named("http".into())),
                port(Protocol::Sctp, PortMatch::Any),
                port(Protocol::Udp, PortMatch::Range(53, 53)),
                port(Protocol::Tcp, PortMatch::Range(65535, 65535)),
            ])
        );
    }

    #[test]
    fn peers_decode_to_blocks_and_selectors() {
        assert_eq!(peers(json!([])), None);
        let team = SelectorSpec {
            match_labels: [("team".to_string(), "a".to_string())].into(),
            match_expressions: Vec::new(),
        };
        assert_eq!(
            peers(json!([
                {"podSelector": {"matchLabels": {"team": "a"}}},
                {"namespaceSelector": {"matchLabels": {"team": "a"}}},
                {"namespaceSelector": {}, "podSelector": {"matchLabels": {"team": "a"}}},
                {"ipBlock": {"cidr": "10.0.0.0/8"}},
            ])),
            Some(vec![
                PolicyPeer::Pods {
                    namespaces: None,
                    pods: team.clone(),
                },
                PolicyPeer::Pods {
                    namespaces: Some(team.clone()),
                    pods: SelectorSpec::default(),
                },
                PolicyPeer::Pods {
                    namespaces: Some(SelectorSpec::default()),
                    pods: team,
                },
                PolicyPeer::IpBlock(IpBlock {
                    cidr: net("10.0.0.0/8"),
                    except: Vec::new(),
                }),
            ])
        );
    }

    #[test]
    fn ip_blocks_are_read_canonical_with_a_warning() {
        let (policy, issues) = decode(json!({"podSelector": {}, "ingress": [{"from": [
            {"ipBlock": {"cidr": "10.1.2.3/8", "except": ["10.1.2.3/16", "10.2.0.0/16"]}},
            {"ipBlock": {"cidr": "fd00::1/64", "except": ["fd00::1:0/112"]}}]}]}))
        .expect("non-canonical CIDRs are warnings");
        let warned: Vec<_> = (issues.0.iter())
            .map(|i| (i.severity, i.field.as_str()))
            .collect();
        assert_eq!(
            warned,
            vec![
                (Severity::Warning, "spec.ingress[0].from[0].ipBlock.cidr"),
                (
                    Severity::Warning,
                    "spec.ingress[0].from[0].ipBlock.except[0]"
                ),
                (Severity::Warning, "spec.ingress[0].from[1].ipBlock.cidr"),
            ]
        );
        let peers = policy.spec.ingress.unwrap()[0].peers.clone().unwrap();
        assert_eq!(
            peers,
            vec![
                PolicyPeer::IpBlock(IpBlock {
                    cidr: net("10.0.0.0/8"),
                    except: vec![net("10.1.0.0/16"), net("10.2.0.0/16")],
                }),
                PolicyPeer::IpBlock(IpBlock {
                    cidr: net("fd00::/64"),
                    except: vec![net("fd00::1:0/112")],
                }),
            ]
        );
    }

    #[test]
    fn selector_expressions_decode_with_their_operators() {
        let s = spec(json!({"podSelector": {"matchExpressions": [
            {"key": "tier", "operator": "NotIn", "values": ["db", "cache"]},
            {"key": "canary", "operator": "DoesNotExist"},
        ]}}));
        let expression = |key: &str, operator, values: &[&str]| Expression {
            key: key.into(),
            operator,
            values: values.iter().map(|v| v.to_string()).collect(),
        };
        assert_eq!(
            s.pod_selector.match_expressions,
            [
                expression("tier", LabelOperator::NotIn, &["db", "cache"]),
                expression("canary", LabelOperator::DoesNotExist, &[]),
            ]
        );
        assert!(s.pod_selector.match_labels.is_empty());
    }

    #[test]
    fn an_invalid_policy_has_no_spec_and_says_why() {
        for bad in [
            json!({"podSelector": {}, "ingress": [{"from": [{"ipBlock": {"cidr": "10.0.0.0/33"}}]}]}),
            json!({"podSelector": {}, "ingress": [{"from": [{"ipBlock": {"cidr": "10.0.0.0/8", "except": ["11.0.0.0/16"]}}]}]}),
            json!({"podSelector": {}, "egress": [{"ports": [{"port": 80, "protocol": "ICMP"}]}]}),
            json!({"podSelector": {}, "egress": [{"ports": [{"port": 70000}]}]}),
            json!({"podSelector": {}, "egress": [{"ports": [{"port": 80, "endPort": 79}]}]}),
            json!({"podSelector": {}, "egress": [{"ports": [{"port": "HTTP"}]}]}),
            json!({"podSelector": {}, "egress": [{"to": [{}]}]}),
            // Invalid parts of a direction the policy does not govern reject it too.
            json!({"podSelector": {}, "policyTypes": ["Ingress"], "egress": [{"ports": [{"port": 0}]}]}),
            json!({"podSelector": {"matchLabels": {"-": "x"}}}),
            json!({"podSelector": {"matchExpressions": [{"key": "a", "operator": "in", "values": ["x"]}]}}),
            json!({"podSelector": {}, "ingress": [{"from": [{"namespaceSelector": {"matchExpressions": [{"key": "a", "operator": "Exists", "values": ["x"]}]}}]}]}),
            json!({"podSelector": {}, "policyTypes": ["Ingress", "Ingress"]}),
        ] {
            let issues = decode(bad.clone()).expect_err(&bad.to_string());
            assert!(issues.has_errors(), "{bad}: {issues:?}");
        }
        let object: NetworkPolicy = serde_json::from_value(json!({
            "apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": {"name": "p"}
        }))
        .unwrap();
        assert!(ValidPolicy::new(object).unwrap_err().has_errors());
    }

    #[test]
    fn port_specs_match_their_protocol_and_ports() {
        let tcp80 = port(Protocol::Tcp, PortMatch::Range(80, 80));
        assert!(tcp80.matches(80, Protocol::Tcp, None));
        assert!(!tcp80.matches(80, Protocol::Udp, None));
        assert!(!tcp80.matches(81, Protocol::Tcp, None));
        assert!(!tcp80.matches(80, Protocol::Sctp, None));
        let udp = port(Protocol::Udp, PortMatch::Any);
        assert!(udp.matches(1, Protocol::Udp, None) && udp.matches(65535, Protocol::Udp, None));
        assert!(!udp.matches(53, Protocol::Tcp, None));
        let range = port(Protocol::Tcp, PortMatch::Range(80, 82));
        assert!(range.matches(80, Protocol::Tcp, None) && range.matches(82, Protocol::Tcp, None));
        assert!(!range.matches(83, Protocol::Tcp, None) && !range.matches(79, Protocol::Tcp, None));
        let named = port(Protocol::Tcp, PortMatch::Named("http".into()));
        assert!(named.matches(8080, Protocol::Tcp, Some(8080)));
        assert!(!named.matches(8080, Protocol::Tcp, Some(9090)));
        assert!(!named.matches(8080, Protocol::Tcp, None));
        assert_eq!(named.name(), Some("http"));
        assert_eq!(range.name(), None);
        // ICMP never matches a port spec, not even "every port".
        assert!(!port(Protocol::Tcp, PortMatch::Any).matches(0, Protocol::Icmp, None));
    }

    #[test]
    fn ip_blocks_contain_what_no_except_excludes() {
        let block = IpBlock {
            cidr: net("10.0.0.0/8"),
            except: vec![net("10.1.0.0/16")],
        };
        assert!(block.contains("10.2.3.4".parse().unwrap()));
        assert!(!block.contains("10.1.3.4".parse().unwrap()));
        assert!(!block.contains("11.0.0.1".parse().unwrap()));
        assert_eq!(
            block.excluded_by("10.1.3.4".parse().unwrap()),
            Some(&net("10.1.0.0/16"))
        );
    }
}

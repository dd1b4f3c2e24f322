//! The engine's reasons in words: the one place their English is written (`explain` prints it; lint
//! and logs can reuse it). Each function renders one reason of `palisade_policy`.

use palisade_model::{Protocol, Tier, TierAction};
use palisade_policy::{
    Direction, LabelOperator, LabelRequirement, NamedPort, NamedPortResolution, PeerMiss,
    PeerMissReason, PodRef, PortMatch, PortMiss, PortSpec, RuleMiss, SelectorMiss, TierPolicyRef,
    TierRuleRef, TierWalk, UnenforcedReason,
};
use std::net::IpAddr;

/// Why no policy applies to the `direction` side of a flow, e.g. `a pod may always reach itself`.
pub fn unenforced(reason: &UnenforcedReason, direction: Direction) -> String {
    match reason {
        UnenforcedReason::SamePod => "a pod may always reach itself".into(),
        UnenforcedReason::NodeLocal { pod, node } => {
            format!(
                "traffic between {} and its node ({node}) is always allowed",
                pod_text(pod)
            )
        }
        UnenforcedReason::NotAPod { address } => format!(
            "{} is not a pod in the cluster: its {} is not governed by NetworkPolicy",
            address_text(*address),
            direction.as_str()
        ),
        UnenforcedReason::HostNetwork { pod } => format!(
            "{} uses the host network: NetworkPolicy never selects it",
            pod_text(pod)
        ),
    }
}

/// Why a rule of `direction` missed, one line per reason: its ports first, then each peer (`from[j]`
/// or `to[j]`).
pub fn rule_miss(miss: &RuleMiss, direction: Direction) -> Vec<String> {
    let ports = miss.ports.iter().map(port_miss);
    let peers = miss.peers.iter().map(|p| peer_miss(p, direction));
    ports.chain(peers).collect()
}

/// E.g. `allows ports 80, 443/TCP, 53/UDP only (named port http is 8080 on pod x/web)`: every
/// port the rule lists.
pub fn port_miss(miss: &PortMiss) -> String {
    let mut text = format!("allows {} only", ports_list(&miss.allowed));
    if miss.protocol == Protocol::Icmp {
        text.push_str("; ICMP is allowed only by rules without ports");
    }
    if !miss.named.is_empty() {
        let named: Vec<String> = miss.named.iter().map(named_port).collect();
        text.push_str(&format!(" ({})", named.join("; ")));
    }
    text
}

/// A rule's `ports`, every one, compactly: per protocol (in the order first written) its ports as
/// written, then the protocol — `ports 80, 443, 8000-8080, http/TCP, 53/UDP`, `port 22/TCP` —,
/// and `every UDP port` for a protocol with an entry without a port.
pub fn ports_list(specs: &[PortSpec]) -> String {
    let mut protocols: Vec<Protocol> = Vec::new();
    for s in specs {
        if !protocols.contains(&s.protocol) {
            protocols.push(s.protocol);
        }
    }
    let (mut listed, mut every, mut count) = (Vec::new(), Vec::new(), 0);
    for protocol in protocols {
        let of = || specs.iter().filter(move |s| s.protocol == protocol);
        if of().any(|s| s.port == PortMatch::Any) {
            every.push(format!("every {protocol} port"));
            continue;
        }
        let ports: Vec<String> = of().map(|s| port_text(&s.port)).collect();
        count += ports.len();
        listed.push(format!("{}/{protocol}", ports.join(", ")));
    }
    let word = match count {
        1 => "port",
        _ => "ports",
    };
    let listed = (!listed.is_empty()).then(|| format!("{word} {}", listed.join(", ")));
    (listed.into_iter().chain(every))
        .collect::<Vec<_>>()
        .join(" and ")
}

/// A `ports` entry: `80/TCP`, `8000-8010/TCP`, `http/TCP`, `any/UDP` (an entry without a port).
pub fn port_spec(spec: &PortSpec) -> String {
    format!("{}/{}", port_text(&spec.port), spec.protocol)
}

fn port_text(port: &PortMatch) -> String {
    match port {
        PortMatch::Any => "any".into(),
        PortMatch::Range(lo, hi) if lo == hi => lo.to_string(),
        PortMatch::Range(lo, hi) => format!("{lo}-{hi}"),
        PortMatch::Named(name) => name.clone(),
    }
}

fn named_port(named: &NamedPort) -> String {
    let name = &named.name;
    match &named.resolution {
        NamedPortResolution::Port { pod, port } => {
            format!("named port {name} is {port} on {}", pod_text(pod))
        }
        NamedPortResolution::NotFound { pod } => {
            format!("named port {name} not found on {}", pod_text(pod))
        }
        NamedPortResolution::IpBlockDestination => {
            format!("named port {name} never matches an ipBlock destination")
        }
        NamedPortResolution::NoDestinationPod => {
            format!("named port {name} needs a destination pod")
        }
    }
}

/// E.g. `from[0]: podSelector needs app=web; pod x/db has app=db`.
pub fn peer_miss(miss: &PeerMiss, direction: Direction) -> String {
    let field = match direction {
        Direction::Ingress => "from",
        Direction::Egress => "to",
    };
    let why = match &miss.reason {
        PeerMissReason::NoAddress { cidr, pod } => {
            let who = pod.as_ref().map_or_else(|| address_text(None), pod_text);
            format!("ipBlock {cidr}: {who} has no IP")
        }
        PeerMissReason::OutsideBlock { cidr, address } => {
            format!("ipBlock {cidr} does not contain {address}")
        }
        PeerMissReason::Excepted {
            cidr,
            address,
            except,
        } => format!("ipBlock {cidr} excludes {address} (except {except})"),
        PeerMissReason::HostNetworkPod { pod } => format!(
            "selects pods; {} uses the host network and is matched only by ipBlock",
            pod_text(pod)
        ),
        PeerMissReason::NotAPod { address } => {
            format!("selects pods; {} is not a pod", address_text(*address))
        }
        PeerMissReason::OtherNamespace { namespace, pod } => format!(
            "podSelector without namespaceSelector selects pods in namespace {namespace} only; {} is in namespace {}",
            pod_text(pod),
            pod.namespace
        ),
        PeerMissReason::NamespaceSelector { namespace, miss } => format!(
            "namespaceSelector {}",
            selector_miss(miss, &format!("namespace {namespace}"))
        ),
        PeerMissReason::PodSelector { pod, miss } => {
            format!("podSelector {}", selector_miss(miss, &pod_text(pod)))
        }
    };
    format!("{field}[{}]: {why}", miss.peer)
}

/// E.g. `needs role=core; namespace y has role=tenant` (`subject` names the object).
fn selector_miss(miss: &SelectorMiss, subject: &str) -> String {
    let r = &miss.requirement;
    let need = match r.operator {
        LabelOperator::Exists => format!("needs label {}", r.key),
        LabelOperator::DoesNotExist => format!("needs no label {}", r.key),
        _ => format!("needs {}", requirement(r)),
    };
    match &miss.found {
        Some(value) => format!("{need}; {subject} has {}={value}", r.key),
        None => format!("{need}; {subject} has no such label"),
    }
}

/// A selector requirement in kubectl's syntax: `app=web`, `tier in (a, b)`, `tier notin (a)`,
/// `tier`, `!tier`.
pub fn requirement(r: &LabelRequirement) -> String {
    let key = &r.key;
    let values = || r.values.join(", ");
    match r.operator {
        LabelOperator::In if r.values.len() == 1 => format!("{key}={}", r.values[0]),
        LabelOperator::In => format!("{key} in ({})", values()),
        LabelOperator::NotIn => format!("{key} notin ({})", values()),
        LabelOperator::Exists => key.clone(),
        LabelOperator::DoesNotExist => format!("!{key}"),
    }
}

/// A cluster-wide policy: `ClusterNetworkPolicy deny-imds (Admin, priority 10)`.
pub fn tier_policy(policy: &TierPolicyRef) -> String {
    format!(
        "{} {} ({}, {})",
        policy.kind,
        policy.name,
        policy.tier.as_str(),
        priority(policy.priority)
    )
}

fn priority(priority: Option<u32>) -> String {
    match priority {
        Some(p) => format!("priority {p}"),
        None => "no priority".to_string(),
    }
}

/// A cluster-wide rule and its action: ``ClusterNetworkPolicy deny-imds spec.egress[0]
/// `block-metadata` (Admin, priority 10) → Deny``.
pub fn tier_rule(rule: &TierRuleRef, direction: Direction) -> String {
    format!(
        "{} → {}",
        tier_rule_name(rule, direction),
        rule.action.as_str()
    )
}

fn tier_rule_name(rule: &TierRuleRef, direction: Direction) -> String {
    let name = (rule.name.as_ref())
        .map(|n| format!(" `{n}`"))
        .unwrap_or_default();
    format!(
        "{} {} spec.{}[{}]{name} ({}, {})",
        rule.policy.kind,
        rule.policy.name,
        direction.as_str(),
        rule.rule,
        rule.policy.tier.as_str(),
        priority(rule.policy.priority),
    )
}

/// One tier's walk for a flow: the rule that matched (`Pass by …` when it left the tier, saying
/// what comes next), or that none of its policies' rules did.
pub fn tier_walk(walk: &TierWalk, direction: Direction) -> String {
    match &walk.matched {
        Some(rule) if rule.action == TierAction::Pass => {
            let next = match rule.policy.tier {
                Tier::Admin => "on to NetworkPolicy",
                Tier::Baseline => "on to the default: allowed",
            };
            format!("Pass by {} → {next}", tier_rule_name(rule, direction))
        }
        Some(rule) => tier_rule(rule, direction),
        None => {
            let names: Vec<String> = walk.policies.iter().map(tier_policy).collect();
            format!("no rule matches (of {})", names.join("; "))
        }
    }
}

/// `ns/name`.
pub fn pod_key(pod: &PodRef) -> String {
    format!("{}/{}", pod.namespace, pod.name)
}

/// `pod ns/name`.
fn pod_text(pod: &PodRef) -> String {
    format!("pod {}", pod_key(pod))
}

/// An endpoint that is not a pod: its address, if it has one.
fn address_text(address: Option<IpAddr>) -> String {
    address.map_or_else(|| "unknown endpoint".into(), |ip| ip.to_string())
}

#[cfg(test)]
mod tests {
    //! The exact English of every reason: what `explain` prints and users (and their scripts) read.

    use super::*;
    use palisade_policy::SelectorTerm;

    fn pod(key: &str) -> PodRef {
        let (namespace, name) = key.split_once('/').unwrap();
        PodRef {
            namespace: namespace.into(),
            name: name.into(),
        }
    }

    fn spec(protocol: Protocol, port: PortMatch) -> PortSpec {
        PortSpec { protocol, port }
    }

    fn requirement_of(operator: LabelOperator, values: &[&str]) -> LabelRequirement {
        LabelRequirement {
            term: SelectorTerm::MatchExpressions(0),
            key: "tier".into(),
            operator,
            values: values.iter().map(|v| v.to_string()).collect(),
        }
    }

    #[test]
    fn unenforced_reasons() {
        let cases = [
            (UnenforcedReason::SamePod, "a pod may always reach itself"),
            (
                UnenforcedReason::NodeLocal {
                    pod: pod("x/a"),
                    node: "192.168.0.1".parse().unwrap(),
                },
                "traffic between pod x/a and its node (192.168.0.1) is always allowed",
            ),
            (
                UnenforcedReason::NotAPod {
                    address: Some("203.0.113.7".parse().unwrap()),
                },
                "203.0.113.7 is not a pod in the cluster: its egress is not governed by NetworkPolicy",
            ),
            (
                UnenforcedReason::NotAPod { address: None },
                "unknown endpoint is not a pod in the cluster: its egress is not governed by NetworkPolicy",
            ),
            (
                UnenforcedReason::HostNetwork { pod: pod("x/agent") },
                "pod x/agent uses the host network: NetworkPolicy never selects it",
            ),
        ];
        for (reason, text) in cases {
            assert_eq!(unenforced(&reason, Direction::Egress), text);
        }
        let not_a_pod = UnenforcedReason::NotAPod { address: None };
        assert!(unenforced(&not_a_pod, Direction::Ingress).contains("its ingress is"));
    }

    #[test]
    fn port_specs_and_requirements() {
        assert_eq!(port_spec(&spec(Protocol::Udp, PortMatch::Any)), "any/UDP");
        assert_eq!(
            port_spec(&spec(Protocol::Tcp, PortMatch::Range(80, 80))),
            "80/TCP"
        );
        assert_eq!(
            port_spec(&spec(Protocol::Sctp, PortMatch::Range(30000, 32767))),
            "30000-32767/SCTP"
        );
        assert_eq!(
            port_spec(&spec(Protocol::Tcp, PortMatch::Named("http".into()))),
            "http/TCP"
        );
        let cases = [
            (LabelOperator::In, &["fe"][..], "tier=fe"),
            (LabelOperator::In, &["fe", "be"], "tier in (fe, be)"),
            (LabelOperator::NotIn, &["fe"], "tier notin (fe)"),
            (LabelOperator::Exists, &[], "tier"),
            (LabelOperator::DoesNotExist, &[], "!tier"),
        ];
        for (operator, values, text) in cases {
            assert_eq!(requirement(&requirement_of(operator, values)), text);
        }
    }

    #[test]
    fn port_misses_list_the_rule_ports_then_the_named_ports() {
        let named = |name: &str, resolution| NamedPort {
            name: name.into(),
            resolution,
        };
        let miss = PortMiss {
            allowed: vec![
                spec(Protocol::Tcp, PortMatch::Named("http".into())),
                spec(Protocol::Udp, PortMatch::Range(53, 53)),
                spec(Protocol::Tcp, PortMatch::Named("web".into())),
            ],
            port: 9090,
            protocol: Protocol::Tcp,
            named: vec![
                named(
                    "http",
                    NamedPortResolution::Port {
                        pod: pod("x/s1"),
                        port: 8080,
                    },
                ),
                named("web", NamedPortResolution::NotFound { pod: pod("x/s1") }),
            ],
        };
        assert_eq!(
            port_miss(&miss),
            "allows ports http, web/TCP, 53/UDP only (named port http is 8080 on pod x/s1; \
             named port web not found on pod x/s1)"
        );
        let miss = PortMiss {
            named: vec![
                named("http", NamedPortResolution::IpBlockDestination),
                named("web", NamedPortResolution::NoDestinationPod),
            ],
            ..miss
        };
        assert_eq!(
            port_miss(&miss),
            "allows ports http, web/TCP, 53/UDP only (named port http never matches an ipBlock \
             destination; named port web needs a destination pod)"
        );
        let icmp = PortMiss {
            allowed: vec![spec(Protocol::Tcp, PortMatch::Any)],
            port: 0,
            protocol: Protocol::Icmp,
            named: Vec::new(),
        };
        assert_eq!(
            port_miss(&icmp),
            "allows every TCP port only; ICMP is allowed only by rules without ports"
        );
    }

    /// Every port a rule lists is said, however many: grouped by protocol, in written order.
    #[test]
    fn port_lists_say_every_port_compactly() {
        let tcp = |lo, hi| spec(Protocol::Tcp, PortMatch::Range(lo, hi));
        let many = [
            tcp(80, 80),
            spec(Protocol::Udp, PortMatch::Range(53, 53)),
            tcp(443, 443),
            tcp(8000, 8080),
            spec(Protocol::Tcp, PortMatch::Named("http".into())),
        ];
        assert_eq!(
            ports_list(&many),
            "ports 80, 443, 8000-8080, http/TCP, 53/UDP"
        );
        let with_any = [
            tcp(80, 80),
            spec(Protocol::Udp, PortMatch::Any),
            tcp(443, 443),
        ];
        assert_eq!(
            ports_list(&with_any),
            "ports 80, 443/TCP and every UDP port"
        );
        assert_eq!(ports_list(&[tcp(22, 22)]), "port 22/TCP");
        let miss = PortMiss {
            allowed: many.to_vec(),
            port: 9000,
            protocol: Protocol::Tcp,
            named: Vec::new(),
        };
        assert_eq!(
            port_miss(&miss),
            "allows ports 80, 443, 8000-8080, http/TCP, 53/UDP only"
        );
    }

    #[test]
    fn peer_misses_name_the_peer_and_say_why() {
        let net = |s: &str| s.parse().unwrap();
        let ip = |s: &str| s.parse().unwrap();
        let selector = |operator, values: &[&str], found: Option<&str>| SelectorMiss {
            requirement: requirement_of(operator, values),
            found: found.map(Into::into),
        };
        let cases = [
            (
                PeerMissReason::NoAddress {
                    cidr: net("10.0.0.0/8"),
                    pod: Some(pod("x/pending")),
                },
                "ipBlock 10.0.0.0/8: pod x/pending has no IP",
            ),
            (
                PeerMissReason::NoAddress {
                    cidr: net("10.0.0.0/8"),
                    pod: None,
                },
                "ipBlock 10.0.0.0/8: unknown endpoint has no IP",
            ),
            (
                PeerMissReason::OutsideBlock {
                    cidr: net("fd00:20::/64"),
                    address: ip("2001:db9::7"),
                },
                "ipBlock fd00:20::/64 does not contain 2001:db9::7",
            ),
            (
                PeerMissReason::Excepted {
                    cidr: net("203.0.113.0/24"),
                    address: ip("203.0.113.200"),
                    except: net("203.0.113.128/25"),
                },
                "ipBlock 203.0.113.0/24 excludes 203.0.113.200 (except 203.0.113.128/25)",
            ),
            (
                PeerMissReason::HostNetworkPod {
                    pod: pod("y/agent"),
                },
                "selects pods; pod y/agent uses the host network and is matched only by ipBlock",
            ),
            (
                PeerMissReason::NotAPod {
                    address: Some(ip("203.0.113.7")),
                },
                "selects pods; 203.0.113.7 is not a pod",
            ),
            (
                PeerMissReason::OtherNamespace {
                    namespace: "x".into(),
                    pod: pod("y/client"),
                },
                "podSelector without namespaceSelector selects pods in namespace x only; \
                 pod y/client is in namespace y",
            ),
            (
                PeerMissReason::NamespaceSelector {
                    namespace: "y".into(),
                    miss: selector(LabelOperator::In, &["core"], Some("tenant")),
                },
                "namespaceSelector needs tier=core; namespace y has tier=tenant",
            ),
            (
                PeerMissReason::PodSelector {
                    pod: pod("x/c2"),
                    miss: selector(LabelOperator::In, &["fe", "be"], Some("db")),
                },
                "podSelector needs tier in (fe, be); pod x/c2 has tier=db",
            ),
            (
                PeerMissReason::PodSelector {
                    pod: pod("x/none"),
                    miss: selector(LabelOperator::Exists, &[], None),
                },
                "podSelector needs label tier; pod x/none has no such label",
            ),
            (
                PeerMissReason::PodSelector {
                    pod: pod("x/be"),
                    miss: selector(LabelOperator::DoesNotExist, &[], Some("be")),
                },
                "podSelector needs no label tier; pod x/be has tier=be",
            ),
        ];
        for (reason, text) in cases {
            let miss = PeerMiss { peer: 2, reason };
            assert_eq!(
                peer_miss(&miss, Direction::Ingress),
                format!("from[2]: {text}")
            );
            assert_eq!(
                peer_miss(&miss, Direction::Egress),
                format!("to[2]: {text}")
            );
        }
    }

    #[test]
    fn a_rule_miss_gives_its_ports_first_then_each_peer() {
        let miss = RuleMiss {
            rule: 0,
            ports: Some(PortMiss {
                allowed: vec![spec(Protocol::Tcp, PortMatch::Range(80, 80))],
                port: 81,
                protocol: Protocol::Tcp,
                named: Vec::new(),
            }),
            peers: vec![
                PeerMiss {
                    peer: 0,
                    reason: PeerMissReason::NotAPod { address: None },
                },
                PeerMiss {
                    peer: 1,
                    reason: PeerMissReason::OutsideBlock {
                        cidr: "10.0.0.0/8".parse().unwrap(),
                        address: "192.0.2.1".parse().unwrap(),
                    },
                },
            ],
        };
        assert_eq!(
            rule_miss(&miss, Direction::Egress),
            [
                "allows port 80/TCP only",
                "to[0]: selects pods; unknown endpoint is not a pod",
                "to[1]: ipBlock 10.0.0.0/8 does not contain 192.0.2.1",
            ]
        );
    }
}

//! Verdicts with reasons for one flow: both directions' decisions, the rules that allowed, or for
//! every isolating policy why none of its rules matched — in words a user can act on.

use crate::engine::Engine;
use crate::policy::{CompiledPolicy, Direction, NamespaceScope, Peer, Rule};
use palisade_model::{PodInfo, Protocol};
use serde::Serialize;
use std::net::IpAddr;

/// One end of a flow.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Endpoint {
    /// A pod (index into `ClusterState::pods`).
    Pod(usize),
    /// An address; resolved to a pod when one has it.
    Ip(IpAddr),
}

/// A connection attempt: source, destination, destination port and protocol.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Flow {
    /// Who opens the connection.
    pub src: Endpoint,
    /// Who receives it.
    pub dst: Endpoint,
    /// Destination port (ignored for ICMP).
    pub port: u16,
    /// Protocol.
    pub protocol: Protocol,
}

/// A policy by namespace and name.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PolicyRef {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
}

/// A rule of a policy: `spec.ingress[rule]` or `spec.egress[rule]`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RuleRef {
    /// The policy.
    pub policy: PolicyRef,
    /// Index of the rule in the direction's rule list.
    pub rule: usize,
}

/// Why one rule did not match.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RuleMiss {
    /// Index of the rule.
    pub rule: usize,
    /// Every reason, in words (port mismatch, then each peer that did not match).
    pub reasons: Vec<String>,
}

/// An isolating policy none of whose rules matched.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PolicyMiss {
    /// The policy.
    pub policy: PolicyRef,
    /// Its rules for the direction and why each missed; empty when it has none (it denies all).
    pub rules: Vec<RuleMiss>,
}

/// The decision of one direction.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "decision", rename_all = "snake_case")]
pub enum Decision {
    /// Policy does not apply: the same pod, an endpoint that is not a pod, or a hostNetwork pod.
    Unenforced {
        /// Why.
        reason: String,
    },
    /// No policy selects the pod for this direction: everything is allowed.
    NotIsolated,
    /// Isolated, and these rules allow the flow.
    Allowed {
        /// Every allowing rule of every selecting policy.
        by: Vec<RuleRef>,
    },
    /// Isolated, and no rule allows the flow.
    Denied {
        /// Every isolating policy and why its rules missed.
        isolating: Vec<PolicyMiss>,
    },
}

impl Decision {
    /// True unless denied.
    pub fn allows(&self) -> bool {
        !matches!(self, Decision::Denied { .. })
    }
}

/// One direction's side of a verdict.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Side {
    /// `egress` (enforced on the source) or `ingress` (on the destination).
    pub direction: Direction,
    /// The enforcing pod `ns/name`, when the endpoint is a pod.
    pub pod: Option<String>,
    /// The decision.
    #[serde(flatten)]
    pub decision: Decision,
}

/// The verdict for a flow: allowed iff the source's egress AND the destination's ingress allow it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Verdict {
    /// The final answer.
    pub allowed: bool,
    /// The source pod's egress side.
    pub egress: Side,
    /// The destination pod's ingress side.
    pub ingress: Side,
}

/// An endpoint with what evaluation needs.
struct Resolved<'a> {
    pod: Option<(usize, &'a PodInfo)>,
    ip: Option<IpAddr>,
}

impl Resolved<'_> {
    fn describe(&self) -> String {
        match (self.pod, self.ip) {
            (Some((_, p)), _) => format!("pod {}", p.key()),
            (None, Some(ip)) => ip.to_string(),
            (None, None) => "unknown endpoint".into(),
        }
    }

    /// A pod that selector peers can match (not hostNetwork).
    fn selectable(&self) -> Option<(usize, &PodInfo)> {
        self.pod.filter(|(_, p)| !p.host_network)
    }
}

/// If `a` is a pod and `b` is the node it runs on (its address, or a hostNetwork pod there), why that
/// traffic is always allowed.
fn node_local(a: &Resolved, b: &Resolved) -> Option<String> {
    let (_, pod) = a.selectable()?;
    let host = pod.host_ip?;
    let b_is_node = b.ip == Some(host) && b.pod.is_none_or(|(_, p)| p.host_network);
    b_is_node.then(|| {
        format!(
            "traffic between pod {} and its node ({host}) is always allowed",
            pod.key()
        )
    })
}

impl Engine {
    /// True for pod pairs whose traffic no policy governs: a pod and itself, and a pod and a
    /// hostNetwork pod on its node (which has the node's address).
    pub fn always_allowed(&self, src: usize, dst: usize) -> bool {
        let (a, b) = (
            self.resolve(Endpoint::Pod(src)),
            self.resolve(Endpoint::Pod(dst)),
        );
        src == dst || node_local(&a, &b).is_some() || node_local(&b, &a).is_some()
    }

    fn resolve(&self, e: Endpoint) -> Resolved<'_> {
        let state = self.state();
        let pod = match e {
            Endpoint::Pod(i) => Some(i),
            Endpoint::Ip(ip) => state.pod_by_ip(ip),
        };
        let pod = pod.and_then(|i| state.pods.get(i).map(|p| (i, &**p)));
        let ip = match e {
            Endpoint::Ip(ip) => Some(ip),
            Endpoint::Pod(_) => pod.and_then(|(_, p)| p.ip),
        };
        Resolved { pod, ip }
    }

    /// The verdict for `flow`, with reasons for both directions.
    pub fn verdict(&self, flow: &Flow) -> Verdict {
        let egress = self.side(Direction::Egress, flow);
        let ingress = self.side(Direction::Ingress, flow);
        Verdict {
            allowed: egress.decision.allows() && ingress.decision.allows(),
            egress,
            ingress,
        }
    }

    /// One direction's side of the verdict for `flow`: the source's egress or the destination's
    /// ingress (what a verdict event from that side is attributed to).
    pub fn side(&self, direction: Direction, flow: &Flow) -> Side {
        let src = self.resolve(flow.src);
        let dst = self.resolve(flow.dst);
        let (enforcing, peer) = match direction {
            Direction::Egress => (&src, &dst),
            Direction::Ingress => (&dst, &src),
        };
        let same_pod = matches!((src.pod, dst.pod), (Some((a, _)), Some((b, _))) if a == b);
        let decision = if same_pod {
            Decision::Unenforced {
                reason: "a pod may always reach itself".into(),
            }
        } else if let Some(reason) = node_local(&src, &dst).or_else(|| node_local(&dst, &src)) {
            Decision::Unenforced { reason }
        } else {
            self.decide(direction, enforcing, peer, flow.port, flow.protocol)
        };
        Side {
            direction,
            pod: enforcing.pod.map(|(_, p)| p.key()),
            decision,
        }
    }

    fn decide(
        &self,
        direction: Direction,
        enforcing: &Resolved,
        peer: &Resolved,
        port: u16,
        protocol: Protocol,
    ) -> Decision {
        let Some((pi, pod)) = enforcing.pod else {
            return Decision::Unenforced {
                reason: format!(
                    "{} is not a pod in the cluster: its {} is not governed by NetworkPolicy",
                    enforcing.describe(),
                    direction.as_str()
                ),
            };
        };
        if pod.host_network {
            return Decision::Unenforced {
                reason: format!(
                    "pod {} uses the host network: NetworkPolicy never selects it",
                    pod.key()
                ),
            };
        }
        let selecting = self.selecting(self.class_of(pi), direction);
        if selecting.is_empty() {
            return Decision::NotIsolated;
        }
        let mut by = Vec::new();
        let mut isolating = Vec::new();
        for &ci in selecting {
            let policy = &self.policies[ci];
            let rules = policy.rules(direction).unwrap_or_default();
            let mut misses = Vec::new();
            for (ri, rule) in rules.iter().enumerate() {
                match self.rule_outcome(direction, rule, enforcing, peer, port, protocol) {
                    Ok(()) => by.push(RuleRef {
                        policy: self.policy_ref(policy),
                        rule: ri,
                    }),
                    Err(reasons) => misses.push(RuleMiss { rule: ri, reasons }),
                }
            }
            if misses.len() == rules.len() {
                isolating.push(PolicyMiss {
                    policy: self.policy_ref(policy),
                    rules: misses,
                });
            }
        }
        if by.is_empty() {
            Decision::Denied { isolating }
        } else {
            Decision::Allowed { by }
        }
    }

    pub(crate) fn policy_ref(&self, policy: &CompiledPolicy) -> PolicyRef {
        let info = &self.state().policies[policy.index];
        PolicyRef {
            namespace: info.namespace.clone(),
            name: info.name.clone(),
        }
    }

    /// `Ok` if `rule` matches; otherwise every reason it does not.
    fn rule_outcome(
        &self,
        direction: Direction,
        rule: &Rule,
        enforcing: &Resolved,
        peer: &Resolved,
        port: u16,
        protocol: Protocol,
    ) -> Result<(), Vec<String>> {
        let field = match direction {
            Direction::Ingress => "from",
            Direction::Egress => "to",
        };
        let mut peer_reasons = Vec::new();
        let (mut by_selector, mut by_block) = (rule.peers.is_none(), rule.peers.is_none());
        for (j, p) in rule.peers.iter().flatten().enumerate() {
            match self.peer_miss(p, peer) {
                None if matches!(p, Peer::Block { .. }) => by_block = true,
                None => by_selector = true,
                Some(why) => peer_reasons.push(format!("{field}[{j}]: {why}")),
            }
        }
        let peer_ok = by_selector || by_block;
        let Some(specs) = &rule.ports else {
            return if peer_ok { Ok(()) } else { Err(peer_reasons) };
        };
        // Named ports resolve on the destination pod: the enforcing pod for ingress; for egress the
        // peer, and only when it is a pod matched by a selector (never an ipBlock destination).
        let named_target = match direction {
            Direction::Ingress => enforcing.pod.map(|(_, p)| p),
            Direction::Egress => peer.pod.map(|(_, p)| p).filter(|_| by_selector),
        };
        let mut port_ok = false;
        let mut notes = Vec::new();
        for s in specs {
            match s.name() {
                None => port_ok |= s.matches(port, protocol, None),
                Some(name) => {
                    let resolved = named_target.and_then(|p| p.named_port(name, s.protocol));
                    port_ok |= s.matches(port, protocol, resolved);
                    if s.protocol == protocol {
                        notes.push(match (named_target, resolved) {
                            (Some(p), Some(n)) => {
                                format!("named port {name} is {n} on pod {}", p.key())
                            }
                            (Some(p), None) => {
                                format!("named port {name} not found on pod {}", p.key())
                            }
                            (None, _) if peer.pod.is_some() && !by_selector && by_block => {
                                format!("named port {name} never matches an ipBlock destination")
                            }
                            (None, _) => format!("named port {name} needs a destination pod"),
                        });
                    }
                }
            }
        }
        if port_ok && peer_ok {
            return Ok(());
        }
        let mut reasons = Vec::new();
        if !port_ok {
            let list: Vec<String> = specs.iter().map(|s| s.to_string()).collect();
            let mut why = format!("allows {} only", list.join(", "));
            if protocol == Protocol::Icmp {
                why.push_str("; ICMP is allowed only by rules without ports");
            }
            if !notes.is_empty() {
                why.push_str(&format!(" ({})", notes.join("; ")));
            }
            reasons.push(why);
        }
        if !peer_ok {
            reasons.extend(peer_reasons);
        }
        Err(reasons)
    }

    /// `None` if `peer` (a `from`/`to` entry) matches the endpoint; otherwise why not.
    fn peer_miss(&self, peer: &Peer, endpoint: &Resolved) -> Option<String> {
        let state = self.state();
        match peer {
            Peer::Block { block, .. } => {
                let Some(ip) = endpoint.ip else {
                    return Some(format!(
                        "ipBlock {}: {} has no IP",
                        block.cidr,
                        endpoint.describe()
                    ));
                };
                if !block.cidr.contains(&ip) {
                    Some(format!("ipBlock {} does not contain {ip}", block.cidr))
                } else {
                    block
                        .excluded_by(ip)
                        .map(|e| format!("ipBlock {} excludes {ip} (except {e})", block.cidr))
                }
            }
            Peer::Pods { namespaces, pods } => {
                let Some((pi, pod)) = endpoint.selectable() else {
                    return Some(match endpoint.pod {
                        Some((_, p)) => format!(
                            "selects pods; pod {} uses the host network and is matched only by ipBlock",
                            p.key()
                        ),
                        None => format!("selects pods; {} is not a pod", endpoint.describe()),
                    });
                };
                let class = &self.classes.list[self.class_of(pi)];
                match namespaces {
                    NamespaceScope::Own(ns) if *ns != class.namespace => {
                        return Some(format!(
                            "podSelector without namespaceSelector selects pods in namespace {} only; pod {} is in namespace {}",
                            state.namespaces[*ns].name,
                            pod.key(),
                            pod.namespace
                        ))
                    }
                    NamespaceScope::Own(_) => {}
                    NamespaceScope::Selected(sel) => {
                        let ns = &state.namespaces[class.namespace];
                        let subject = format!("namespace {}", ns.name);
                        if let Some(why) =
                            sel.unmet(&self.namespace_labels[class.namespace], &ns.labels, &subject)
                        {
                            return Some(format!("namespaceSelector {why}"));
                        }
                    }
                }
                let subject = format!("pod {}", pod.key());
                pods.unmet(&class.labels, &pod.labels, &subject)
                    .map(|why| format!("podSelector {why}"))
            }
        }
    }
}

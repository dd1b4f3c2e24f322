//! Verdicts with reasons for one flow: both directions' decisions, the rules that allowed, or for
//! every isolating policy why none of its rules matched — as data (the types of `reason.rs`), for
//! `palisade-analyze` to put into words and for tools to match on.

use crate::engine::Engine;
use crate::policy::{CompiledPolicy, Direction, NamespaceScope, Peer, PolicyId, Rule, Scope};
use crate::reason::{
    NamedPort, NamedPortResolution, PeerMiss, PeerMissReason, PodRef, PolicyMiss, PolicyRef,
    PortMiss, RuleMiss, UnenforcedReason,
};
use palisade_model::PortSpec;
use palisade_model::{Kind, PodId, PodInfo, Protocol, Tier, TierAction};
use std::net::IpAddr;

/// One end of a flow.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Endpoint {
    /// A pod.
    Pod(PodId),
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

/// A rule of a policy: `spec.ingress[rule]` or `spec.egress[rule]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RuleRef {
    /// The policy.
    pub policy: PolicyRef,
    /// Index of the rule in the direction's rule list.
    pub rule: usize,
}

/// A cluster-wide policy: its kind, name, tier and priority.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TierPolicyRef {
    /// ClusterNetworkPolicy, AdminNetworkPolicy or BaselineAdminNetworkPolicy.
    pub kind: Kind,
    /// Its name.
    pub name: String,
    /// Admin or Baseline.
    pub tier: Tier,
    /// Its priority (`None`: a BaselineAdminNetworkPolicy).
    pub priority: Option<u32>,
}

/// A rule of a cluster-wide policy: `spec.ingress[rule]` or `spec.egress[rule]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TierRuleRef {
    /// The policy.
    pub policy: TierPolicyRef,
    /// Index of the rule in the direction's rule list.
    pub rule: usize,
    /// The rule's `name`.
    pub name: Option<String>,
    /// Its action.
    pub action: TierAction,
}

/// How one tier went for one direction of a flow.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TierWalk {
    /// The tier's policies whose subject holds the enforcing pod and that have rules for the
    /// direction, in the order they are evaluated.
    pub policies: Vec<TierPolicyRef>,
    /// The first rule that matched the flow: its action decided (Accept, Deny) or left the tier
    /// (Pass). `None`: no rule matched.
    pub matched: Option<TierRuleRef>,
}

/// The decision of one direction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Policy does not apply: the same pod, a pod and its node, an endpoint that is not a pod, or
    /// a hostNetwork pod.
    Unenforced {
        /// Why.
        reason: UnenforcedReason,
    },
    /// No NetworkPolicy isolates the pod for this direction and no cluster-wide rule decided:
    /// allowed (the default).
    NotIsolated,
    /// A cluster-wide rule decided (Accept or Deny), before NetworkPolicy (Admin) or where none
    /// isolates the pod (Baseline).
    Tier {
        /// The rule.
        rule: TierRuleRef,
    },
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
        match self {
            Decision::Denied { .. } => false,
            Decision::Tier { rule } => rule.action != TierAction::Deny,
            _ => true,
        }
    }
}

/// One direction's side of a verdict.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Side {
    /// `egress` (enforced on the source) or `ingress` (on the destination).
    pub direction: Direction,
    /// The enforcing pod, when the endpoint is a pod.
    pub pod: Option<PodRef>,
    /// The decision.
    pub decision: Decision,
    /// How the Admin tier went; `None` when no Admin policy's subject holds the pod.
    pub admin: Option<TierWalk>,
    /// How the Baseline tier went; `None` when it was not reached (decided before it) or no
    /// Baseline policy's subject holds the pod.
    pub baseline: Option<TierWalk>,
}

/// The verdict for a flow: allowed iff the source's egress AND the destination's ingress allow it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verdict {
    /// The final answer.
    pub allowed: bool,
    /// The source pod's egress side.
    pub egress: Side,
    /// The destination pod's ingress side.
    pub ingress: Side,
}

/// What one side of a verdict asks: may `enforcing` send to `peer` (egress) or receive from it
/// (ingress) on `port`/`protocol`?
struct Question<'a> {
    direction: Direction,
    enforcing: &'a Resolved<'a>,
    peer: &'a Resolved<'a>,
    port: u16,
    protocol: Protocol,
}

/// An endpoint with what evaluation needs.
struct Resolved<'a> {
    pod: Option<(PodId, &'a PodInfo)>,
    ip: Option<IpAddr>,
}

impl Resolved<'_> {
    /// A pod that selector peers can match (not hostNetwork).
    fn selectable(&self) -> Option<(PodId, &PodInfo)> {
        self.pod.filter(|(_, p)| !p.host_network)
    }
}

/// If `a` is a pod and `b` is the node it runs on (its address, or a hostNetwork pod there), why that
/// traffic is always allowed.
fn node_local(a: &Resolved, b: &Resolved) -> Option<UnenforcedReason> {
    let (_, pod) = a.selectable()?;
    let host = pod.host_ip?;
    let b_is_node = b.ip == Some(host) && b.pod.is_none_or(|(_, p)| p.host_network);
    b_is_node.then(|| UnenforcedReason::NodeLocal {
        pod: pod.into(),
        node: host,
    })
}

impl Engine {
    /// True for pod pairs whose traffic no policy governs: a pod and itself, and a pod and a
    /// hostNetwork pod on its node (which has the node's address).
    pub fn always_allowed(&self, src: PodId, dst: PodId) -> bool {
        self.ungoverned(Endpoint::Pod(src), Endpoint::Pod(dst))
    }

    /// True for ends whose traffic no policy governs, either way: a pod and itself, and a pod and
    /// its node (the node's address, or a hostNetwork pod there).
    pub fn ungoverned(&self, a: Endpoint, b: Endpoint) -> bool {
        let (a, b) = (self.resolve(a), self.resolve(b));
        let same_pod = matches!((a.pod, b.pod), (Some((x, _)), Some((y, _))) if x == y);
        same_pod || node_local(&a, &b).is_some() || node_local(&b, &a).is_some()
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
        let mut side = Side {
            direction,
            pod: enforcing.pod.map(|(_, p)| p.into()),
            decision: Decision::NotIsolated,
            admin: None,
            baseline: None,
        };
        side.decision = if same_pod {
            Decision::Unenforced {
                reason: UnenforcedReason::SamePod,
            }
        } else if let Some(reason) = node_local(&src, &dst).or_else(|| node_local(&dst, &src)) {
            Decision::Unenforced { reason }
        } else {
            let q = Question {
                direction,
                enforcing,
                peer,
                port: flow.port,
                protocol: flow.protocol,
            };
            self.decide(&q, &mut side)
        };
        side
    }

    /// The tiers in order (§7): Admin, NetworkPolicy where it isolates, else Baseline, else
    /// allowed; each tier's walk recorded in `side`.
    fn decide(&self, q: &Question, side: &mut Side) -> Decision {
        let Some((pod_id, pod)) = q.enforcing.pod else {
            return Decision::Unenforced {
                reason: UnenforcedReason::NotAPod {
                    address: q.enforcing.ip,
                },
            };
        };
        if pod.host_network {
            return Decision::Unenforced {
                reason: UnenforcedReason::HostNetwork { pod: pod.into() },
            };
        }
        let class = self.class_of(pod_id);
        let tiers = self.tier_policies(class, q.direction);
        side.admin = self.walk(q, tiers.admin);
        if let Some(rule) = side.admin.as_ref().and_then(|w| w.matched.clone()) {
            if rule.action != TierAction::Pass {
                return Decision::Tier { rule };
            }
        }
        let selecting = self.selecting(class, q.direction);
        if selecting.is_empty() {
            side.baseline = self.walk(q, tiers.baseline);
            return match side.baseline.as_ref().and_then(|w| w.matched.clone()) {
                Some(rule) if rule.action != TierAction::Pass => Decision::Tier { rule },
                _ => Decision::NotIsolated,
            };
        }
        let mut by = Vec::new();
        let mut isolating = Vec::new();
        for &pi in selecting {
            let policy = &self.policies[pi];
            let rules = policy.rules(q.direction).unwrap_or_default();
            let mut misses = Vec::new();
            for (ri, rule) in rules.iter().enumerate() {
                match self.rule_miss(q, ri, rule) {
                    None => by.push(RuleRef {
                        policy: self.policy_ref(policy),
                        rule: ri,
                    }),
                    Some(miss) => misses.push(miss),
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

    /// How one tier's `policies` go for `q`: the first rule matching; `None` without policies.
    fn walk(&self, q: &Question, policies: &[PolicyId]) -> Option<TierWalk> {
        if policies.is_empty() {
            return None;
        }
        let refs: Vec<TierPolicyRef> = (policies.iter())
            .filter_map(|&pi| tier_policy_ref(&self.policies[pi]))
            .collect();
        let matched = (policies.iter().zip(&refs)).find_map(|(&pi, policy)| {
            let rules = self.policies[pi].rules(q.direction).unwrap_or_default();
            let (ri, rule) = (rules.iter().enumerate())
                .find(|(ri, rule)| self.rule_miss(q, *ri, rule).is_none())?;
            Some(TierRuleRef {
                policy: policy.clone(),
                rule: ri,
                name: rule.name.clone(),
                action: rule.action,
            })
        });
        Some(TierWalk {
            policies: refs,
            matched,
        })
    }

    pub(crate) fn policy_ref(&self, policy: &CompiledPolicy) -> PolicyRef {
        PolicyRef {
            namespace: policy.key.namespace().unwrap_or_default().to_string(),
            name: policy.key.name().to_string(),
        }
    }

    /// `None` if rule `index` (`rule`) allows the flow; otherwise why not.
    fn rule_miss(&self, q: &Question, index: usize, rule: &Rule) -> Option<RuleMiss> {
        let peer = q.peer;
        let mut peers = Vec::new();
        let (mut by_selector, mut by_block) = (rule.peers.is_none(), rule.peers.is_none());
        for (j, p) in rule.peers.iter().flatten().enumerate() {
            match self.peer_miss(p, peer) {
                None if matches!(p, Peer::Block { .. }) => by_block = true,
                None => by_selector = true,
                Some(reason) => peers.push(PeerMiss { peer: j, reason }),
            }
        }
        let peer_ok = by_selector || by_block;
        let ports = rule.ports.as_deref().and_then(|specs| {
            // Named ports resolve on the destination pod: the enforcing pod for ingress; for egress
            // the peer, and only when it is a pod matched by a selector (never an ipBlock
            // destination).
            let target = match q.direction {
                Direction::Ingress => q.enforcing.pod.map(|(_, p)| p),
                Direction::Egress => peer.pod.map(|(_, p)| p).filter(|_| by_selector),
            };
            let unresolvable = if peer.pod.is_some() && !by_selector && by_block {
                NamedPortResolution::IpBlockDestination
            } else {
                NamedPortResolution::NoDestinationPod
            };
            port_miss(specs, target, &unresolvable, q.port, q.protocol)
        });
        if peer_ok {
            // A peer matched: the others' misses are beside the point.
            peers.clear();
        }
        (ports.is_some() || !peer_ok).then_some(RuleMiss {
            rule: index,
            ports,
            peers,
        })
    }

    /// `None` if `peer` (a `from`/`to` entry) matches the endpoint; otherwise why not.
    fn peer_miss(&self, peer: &Peer, endpoint: &Resolved) -> Option<PeerMissReason> {
        let state = self.state();
        match peer {
            Peer::Block { block, .. } => {
                let cidr = block.cidr;
                let Some(address) = endpoint.ip else {
                    return Some(PeerMissReason::NoAddress {
                        cidr,
                        pod: endpoint.pod.map(|(_, p)| p.into()),
                    });
                };
                if !cidr.contains(&address) {
                    return Some(PeerMissReason::OutsideBlock { cidr, address });
                }
                block
                    .excluded_by(address)
                    .map(|&except| PeerMissReason::Excepted {
                        cidr,
                        address,
                        except,
                    })
            }
            Peer::Pods { namespaces, pods } => {
                let Some((pod_id, pod)) = endpoint.selectable() else {
                    return Some(match endpoint.pod {
                        Some((_, p)) => PeerMissReason::HostNetworkPod { pod: p.into() },
                        None => PeerMissReason::NotAPod {
                            address: endpoint.ip,
                        },
                    });
                };
                let class = &self.classes.list[self.class_of(pod_id)].key;
                match namespaces {
                    NamespaceScope::Own(ns) if *ns != class.namespace => {
                        return Some(PeerMissReason::OtherNamespace {
                            namespace: state.namespaces[*ns].name.clone(),
                            pod: pod.into(),
                        })
                    }
                    NamespaceScope::Own(_) => {}
                    NamespaceScope::Selected(sel) => {
                        let ns = &state.namespaces[class.namespace];
                        if let Some(miss) =
                            sel.unmet(&self.namespace_labels[class.namespace], &ns.labels)
                        {
                            return Some(PeerMissReason::NamespaceSelector {
                                namespace: ns.name.clone(),
                                miss,
                            });
                        }
                    }
                }
                pods.unmet(&class.labels, &pod.labels)
                    .map(|miss| PeerMissReason::PodSelector {
                        pod: pod.into(),
                        miss,
                    })
            }
        }
    }
}

/// A cluster-wide policy's reference; `None` for a NetworkPolicy.
fn tier_policy_ref(policy: &CompiledPolicy) -> Option<TierPolicyRef> {
    match &policy.scope {
        Scope::Cluster { tier, priority, .. } => Some(TierPolicyRef {
            kind: policy.key.kind(),
            name: policy.key.name().to_string(),
            tier: *tier,
            priority: *priority,
        }),
        Scope::Namespace { .. } => None,
    }
}

/// `None` if one of a rule's `specs` allows `port`/`protocol`, named ports resolving on `target`;
/// otherwise the specs and what their named ports of `protocol` resolved to (`unresolvable` when
/// there is no `target`).
fn port_miss(
    specs: &[PortSpec],
    target: Option<&PodInfo>,
    unresolvable: &NamedPortResolution,
    port: u16,
    protocol: Protocol,
) -> Option<PortMiss> {
    fn resolve<'s>(s: &'s PortSpec, target: Option<&PodInfo>) -> Option<(&'s str, Option<u16>)> {
        let name = s.name()?;
        Some((name, target.and_then(|p| p.named_port(name, s.protocol))))
    }
    let allowed = specs
        .iter()
        .any(|s| s.matches(port, protocol, resolve(s, target).and_then(|(_, n)| n)));
    if allowed {
        return None;
    }
    let named = specs
        .iter()
        .filter(|s| s.protocol == protocol)
        .filter_map(|s| {
            let (name, resolved) = resolve(s, target)?;
            let resolution = match (target, resolved) {
                (Some(p), Some(port)) => NamedPortResolution::Port {
                    pod: p.into(),
                    port,
                },
                (Some(p), None) => NamedPortResolution::NotFound { pod: p.into() },
                (None, _) => unresolvable.clone(),
            };
            Some(NamedPort {
                name: name.to_string(),
                resolution,
            })
        })
        .collect();
    Some(PortMiss {
        allowed: specs.to_vec(),
        port,
        protocol,
        named,
    })
}

//! Policies compiled for evaluation — NetworkPolicies and the cluster-wide tiers' policies alike:
//! where each applies, its rules, peers and ports.

pub use crate::direction::Direction;
use crate::selector::{Interner, Selector};
use foldhash::HashMap;
use palisade_model::selector::SelectorSpec;
use palisade_model::{
    ClusterState, Id, IdVec, IpBlock, NamespaceId, ObjectKey, PolicyInfo, PolicyPeer, PolicyRule,
    PortMatch, PortSpec, Protocol, Subject, Tier, TierAction, TierPeer, TierPolicyInfo, TierPort,
    TierRule, ValidPolicy, ValidTierPolicy,
};
use std::sync::Arc;

/// Which namespaces a selector peer looks in.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum NamespaceScope {
    /// `podSelector` alone: the policy's own namespace.
    Own(NamespaceId),
    /// `namespaceSelector` (alone or with a `podSelector`).
    Selected(Selector),
}

/// One entry of `from` / `to`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Peer {
    /// Pods matching `pods` in the namespaces of `namespaces`.
    Pods {
        /// Where to look.
        namespaces: NamespaceScope,
        /// Which pods there (`{}` = all).
        pods: Selector,
    },
    /// An `ipBlock`, one of the engine's distinct blocks.
    Block {
        /// The block.
        block: IpBlock,
        /// Which of the engine's distinct blocks it is.
        id: Id<IpBlock>,
    },
}

/// One ingress or egress rule.
#[derive(Clone, Debug)]
pub struct Rule {
    /// Peers (`None`: every source/destination — a NetworkPolicy's `from`/`to` missing or empty,
    /// or a cluster-wide Deny or Pass rule failing closed on a peer it cannot read). `Some` of an
    /// empty list matches no one.
    pub peers: Option<Vec<Peer>>,
    /// Ports (`None`: every port of every protocol). `Some` of an empty list matches no port (a
    /// cluster-wide Accept rule whose only entries could not be read).
    pub ports: Option<Vec<PortSpec>>,
    /// What a match does: always `Accept` for a NetworkPolicy rule (its rules allow, together).
    pub action: TierAction,
    /// A cluster-wide rule's `name`.
    pub name: Option<String>,
}

/// What a policy was compiled from (an engine compiled from this one reuses it while the spec is
/// the same).
#[derive(Clone, Debug)]
pub enum Source {
    /// A NetworkPolicy.
    Network(Arc<ValidPolicy>),
    /// A ClusterNetworkPolicy, AdminNetworkPolicy or BaselineAdminNetworkPolicy.
    Tier(Arc<ValidTierPolicy>),
}

/// Which pods a policy applies to, and how its rules decide.
#[derive(Clone, Debug)]
pub enum Scope {
    /// A NetworkPolicy: the pods of `namespace` that `pods` matches are isolated, and its rules
    /// allow (the union of every selecting policy's rules).
    Namespace {
        /// Its namespace.
        namespace: NamespaceId,
        /// `spec.podSelector`.
        pods: Selector,
    },
    /// A cluster-wide policy: the pods (never hostNetwork ones) that `pods` matches in the
    /// namespaces that `namespaces` matches; evaluated in `tier` by `priority`, its rules in
    /// order, the first match deciding.
    Cluster {
        /// Admin or Baseline.
        tier: Tier,
        /// Lower first; `None` (a BaselineAdminNetworkPolicy) after every other.
        priority: Option<u32>,
        /// The subject's namespace selector (empty: all).
        namespaces: Selector,
        /// The subject's pod selector (empty: all).
        pods: Selector,
    },
}

/// A compiled policy.
#[derive(Clone, Debug)]
pub struct CompiledPolicy {
    /// Which policy it is.
    pub key: Arc<ObjectKey>,
    /// What it was compiled from.
    pub source: Source,
    /// Where it applies.
    pub scope: Scope,
    /// Ingress rules: for a NetworkPolicy, if `Ingress` is among the effective policy types; for a
    /// cluster-wide policy, if it has ingress rules (one without does not affect ingress).
    pub ingress: Option<Vec<Rule>>,
    /// Egress rules, likewise.
    pub egress: Option<Vec<Rule>>,
}

impl CompiledPolicy {
    /// Its tier, for a cluster-wide policy.
    pub fn tier(&self) -> Option<Tier> {
        match self.scope {
            Scope::Cluster { tier, .. } => Some(tier),
            Scope::Namespace { .. } => None,
        }
    }

    /// True when compiling `source` would give this policy again: the same object or the same
    /// spec, and for one that reads the nodes, the same nodes (`nodes_alike`).
    pub(crate) fn compiles_from(&self, source: &Source, nodes_alike: bool) -> bool {
        match (&self.source, source) {
            (Source::Network(a), Source::Network(b)) => Arc::ptr_eq(a, b) || a.spec() == b.spec(),
            (Source::Tier(a), Source::Tier(b)) => {
                (Arc::ptr_eq(a, b) || (a.kind() == b.kind() && a.spec() == b.spec()))
                    && (nodes_alike || !reads_nodes(b))
            }
            _ => false,
        }
    }

    /// The rules for `direction`, if the policy governs it.
    pub fn rules(&self, direction: Direction) -> Option<&[Rule]> {
        match direction {
            Direction::Ingress => self.ingress.as_deref(),
            Direction::Egress => self.egress.as_deref(),
        }
    }
}

/// A policy of an engine (its position among the engine's policies).
pub(crate) type PolicyId = Id<CompiledPolicy>;

/// The distinct ipBlocks of an engine's policies, numbered (`Peer::Block::id`) in order of first
/// use after those of the engine compiled from ([`crate::Engine::new_from`]), and found by
/// content.
#[derive(Default)]
pub(crate) struct Blocks {
    pub list: IdVec<IpBlock, IpBlock>,
    ids: HashMap<IpBlock, Id<IpBlock>>,
}

impl Blocks {
    /// The blocks of `list`, to which others may be added.
    pub fn from_list(list: IdVec<IpBlock, IpBlock>) -> Blocks {
        let ids = (list.iter_enumerated())
            .map(|(id, b)| (b.clone(), id))
            .collect();
        Blocks { list, ids }
    }

    fn id(&mut self, block: &IpBlock) -> Id<IpBlock> {
        if let Some(&id) = self.ids.get(block) {
            return id;
        }
        let id = self.list.push(block.clone());
        self.ids.insert(block.clone(), id);
        id
    }
}

/// Compiles the policies of `state`; `blocks` collects their distinct ipBlocks.
pub(crate) struct Compiler<'a> {
    pub interner: &'a mut Interner,
    pub blocks: Blocks,
    pub state: &'a ClusterState,
}

impl Compiler<'_> {
    fn peer(&mut self, peer: &PolicyPeer, own_ns: NamespaceId) -> Peer {
        match peer {
            PolicyPeer::IpBlock(block) => {
                let id = self.blocks.id(block);
                Peer::Block {
                    block: block.clone(),
                    id,
                }
            }
            PolicyPeer::Pods { namespaces, pods } => Peer::Pods {
                namespaces: match namespaces {
                    Some(sel) => NamespaceScope::Selected(self.interner.selector(sel)),
                    None => NamespaceScope::Own(own_ns),
                },
                pods: self.interner.selector(pods),
            },
        }
    }

    fn rules(&mut self, rules: &[PolicyRule], own_ns: NamespaceId) -> Vec<Rule> {
        (rules.iter())
            .map(|rule| Rule {
                peers: (rule.peers.as_ref())
                    .map(|peers| peers.iter().map(|p| self.peer(p, own_ns)).collect()),
                ports: rule.ports.clone(),
                action: TierAction::Accept,
                name: None,
            })
            .collect()
    }

    /// Compiles one validated policy; `None` if its namespace is unknown.
    pub fn policy(&mut self, info: &PolicyInfo) -> Option<CompiledPolicy> {
        let namespace = self.state.namespace_id(&info.namespace)?;
        let spec = info.policy.spec();
        let pods = self.interner.selector(&spec.pod_selector);
        let ingress = (spec.ingress.as_deref()).map(|rules| self.rules(rules, namespace));
        let egress = (spec.egress.as_deref()).map(|rules| self.rules(rules, namespace));
        Some(CompiledPolicy {
            key: Arc::new(info.key()),
            source: Source::Network(info.policy.clone()),
            scope: Scope::Namespace { namespace, pods },
            ingress,
            egress,
        })
    }

    /// Pods matching `pods` in the namespaces matching `namespaces`.
    fn pods_peer(&mut self, namespaces: &SelectorSpec, pods: &SelectorSpec) -> Peer {
        Peer::Pods {
            namespaces: NamespaceScope::Selected(self.interner.selector(namespaces)),
            pods: self.interner.selector(pods),
        }
    }

    /// A block of exactly `cidr`.
    fn block_peer(&mut self, cidr: ipnet::IpNet) -> Peer {
        let block = IpBlock {
            cidr,
            except: Vec::new(),
        };
        let id = self.blocks.id(&block);
        Peer::Block { block, id }
    }

    /// A cluster-wide rule. What cannot be read fails closed, as the API says: a peer or port
    /// entry with no known field matches nothing in an Accept rule, and everything in a Deny or
    /// Pass rule. `domainNames` match no address (nothing here resolves names).
    fn tier_rule(&mut self, rule: &TierRule) -> Rule {
        let fails_to_everything = rule.action != TierAction::Accept;
        let mut peers = Some(Vec::new());
        for peer in &rule.peers {
            let compiled: Vec<Peer> = match peer {
                TierPeer::Namespaces(sel) => vec![self.pods_peer(sel, &SelectorSpec::default())],
                TierPeer::Pods(p) => vec![self.pods_peer(&p.namespaces, &p.pods)],
                TierPeer::Networks(nets) => nets.iter().map(|&n| self.block_peer(n)).collect(),
                TierPeer::Nodes(sel) => {
                    let addresses: Vec<std::net::IpAddr> = (self.state.nodes.iter())
                        .filter(|node| sel.matches(&node.labels))
                        .flat_map(|node| node.addresses.iter().copied())
                        .collect();
                    (addresses.into_iter())
                        .map(|ip| self.block_peer(ipnet::IpNet::from(ip)))
                        .collect()
                }
                TierPeer::DomainNames(_) => Vec::new(),
                TierPeer::Unknown if fails_to_everything => {
                    peers = None;
                    break;
                }
                TierPeer::Unknown => Vec::new(),
            };
            peers.as_mut().expect("not failed open").extend(compiled);
        }
        let ports = rule.ports.as_ref().and_then(|entries| {
            let mut specs = Vec::new();
            for entry in entries {
                match entry {
                    TierPort::Range {
                        protocol,
                        first,
                        last,
                    } => specs.push(PortSpec {
                        protocol: *protocol,
                        port: PortMatch::Range(*first, *last),
                    }),
                    // A container port's name is unique in its pod, whatever the protocol.
                    TierPort::Named(name) => {
                        specs.extend(Protocol::PORTED.map(|protocol| PortSpec {
                            protocol,
                            port: PortMatch::Named(name.clone()),
                        }))
                    }
                    TierPort::Unknown if fails_to_everything => return None,
                    TierPort::Unknown => {}
                }
            }
            Some(specs)
        });
        Rule {
            peers,
            ports,
            action: rule.action,
            name: rule.name.clone(),
        }
    }

    /// Compiles one validated cluster-wide policy.
    pub fn tier_policy(&mut self, info: &TierPolicyInfo) -> CompiledPolicy {
        let spec = info.policy.spec();
        let (namespaces, pods) = match &spec.subject {
            Subject::Namespaces(sel) => (sel, &SelectorSpec::default()),
            Subject::Pods(p) => (&p.namespaces, &p.pods),
        };
        let scope = Scope::Cluster {
            tier: spec.tier,
            priority: spec.priority,
            namespaces: self.interner.selector(namespaces),
            pods: self.interner.selector(pods),
        };
        let mut rules = |rules: &[TierRule]| {
            (!rules.is_empty()).then(|| rules.iter().map(|r| self.tier_rule(r)).collect())
        };
        let ingress = rules(&spec.ingress);
        let egress = rules(&spec.egress);
        CompiledPolicy {
            key: Arc::new(info.key()),
            source: Source::Tier(info.policy.clone()),
            scope,
            ingress,
            egress,
        }
    }
}

/// True when what `policy` compiles to depends on the nodes (a `nodes` peer): it is compiled
/// again whenever it is.
fn reads_nodes(policy: &ValidTierPolicy) -> bool {
    let spec = policy.spec();
    (spec.ingress.iter().chain(&spec.egress))
        .flat_map(|rule| &rule.peers)
        .any(|peer| matches!(peer, TierPeer::Nodes(_)))
}

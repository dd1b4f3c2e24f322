//! NetworkPolicies compiled for evaluation: effective policy types, rules, peers and ports.

pub use crate::direction::Direction;
use crate::selector::{Interner, Selector};
use foldhash::HashMap;
use palisade_model::{
    ClusterState, Id, IdVec, IpBlock, NamespaceId, ObjectKey, PolicyInfo, PolicyPeer, PolicyRule,
    PortSpec, ValidPolicy,
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
    /// Peers (`None`: `from`/`to` missing or empty — every source/destination).
    pub peers: Option<Vec<Peer>>,
    /// Ports (`None`: `ports` missing or empty — every port of every protocol).
    pub ports: Option<Vec<PortSpec>>,
}

/// A compiled NetworkPolicy.
#[derive(Clone, Debug)]
pub struct CompiledPolicy {
    /// Which policy it is.
    pub key: Arc<ObjectKey>,
    /// What it was compiled from (an engine compiled from this one reuses it while the spec is
    /// the same).
    pub source: Arc<ValidPolicy>,
    /// Its namespace.
    pub namespace: NamespaceId,
    /// `spec.podSelector`.
    pub pod_selector: Selector,
    /// Ingress rules if `Ingress` is among the effective policy types.
    pub ingress: Option<Vec<Rule>>,
    /// Egress rules if `Egress` is among the effective policy types.
    pub egress: Option<Vec<Rule>>,
}

impl CompiledPolicy {
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
            })
            .collect()
    }

    /// Compiles one validated policy; `None` if its namespace is unknown.
    pub fn policy(&mut self, info: &PolicyInfo) -> Option<CompiledPolicy> {
        let namespace = self.state.namespace_id(&info.namespace)?;
        let spec = info.policy.spec();
        let pod_selector = self.interner.selector(&spec.pod_selector);
        let ingress = (spec.ingress.as_deref()).map(|rules| self.rules(rules, namespace));
        let egress = (spec.egress.as_deref()).map(|rules| self.rules(rules, namespace));
        Some(CompiledPolicy {
            key: Arc::new(info.key()),
            source: info.policy.clone(),
            namespace,
            pod_selector,
            ingress,
            egress,
        })
    }
}

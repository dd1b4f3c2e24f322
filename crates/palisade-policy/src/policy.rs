//! NetworkPolicies compiled for evaluation: effective policy types, rules, peers and ports.

pub use crate::direction::Direction;
use crate::ports::PortSpec;
use crate::selector::{Interner, Selector};
use ipnet::IpNet;
use k8s_openapi::api::networking::v1::NetworkPolicyPeer;
use palisade_model::{validate, ClusterState, Id, IdVec, Kind, NamespaceId, ObjectKey, PolicyInfo};
use std::net::IpAddr;
use std::sync::Arc;

/// An `ipBlock`: addresses in `cidr` and in none of `except`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct IpBlock {
    /// The block (host bits cleared).
    pub cidr: IpNet,
    /// Excluded sub-blocks.
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

/// Effective policy types: `spec.policyTypes` when non-empty; otherwise `Ingress`, plus `Egress` iff
/// `spec.egress` has at least one rule (`egress: []` does not imply Egress).
pub fn effective_types(info: &PolicyInfo) -> (bool, bool) {
    let spec = info.policy.spec.clone().unwrap_or_default();
    match spec.policy_types.as_deref() {
        Some(types) if !types.is_empty() => (
            types.iter().any(|t| t == "Ingress"),
            types.iter().any(|t| t == "Egress"),
        ),
        _ => (true, spec.egress.is_some_and(|e| !e.is_empty())),
    }
}

/// A policy of an engine (its position among the engine's policies).
pub(crate) type PolicyId = Id<CompiledPolicy>;

/// Compiles the policies of `state`; `blocks` collects the distinct ipBlocks (`Peer::Block::id`).
pub(crate) struct Compiler<'a> {
    pub interner: &'a mut Interner,
    pub blocks: IdVec<IpBlock, IpBlock>,
    pub state: &'a ClusterState,
}

impl Compiler<'_> {
    fn peer(&mut self, p: &NetworkPolicyPeer, own_ns: NamespaceId) -> Option<Peer> {
        if let Some(b) = &p.ip_block {
            let cidr = validate::cidr(&b.cidr).ok()?.0;
            let except = b
                .except
                .iter()
                .flatten()
                .filter_map(|e| validate::cidr(e).ok().map(|(n, _)| n))
                .collect();
            let block = IpBlock { cidr, except };
            let known =
                (self.blocks.iter_enumerated()).find_map(|(id, b)| (*b == block).then_some(id));
            let id = known.unwrap_or_else(|| self.blocks.push(block.clone()));
            return Some(Peer::Block { block, id });
        }
        let namespaces = match &p.namespace_selector {
            Some(sel) => NamespaceScope::Selected(self.interner.selector(sel)),
            None => NamespaceScope::Own(own_ns),
        };
        let pods = p
            .pod_selector
            .as_ref()
            .map(|s| self.interner.selector(s))
            .unwrap_or_else(|| self.interner.selector(&Default::default()));
        Some(Peer::Pods { namespaces, pods })
    }

    fn rule(
        &mut self,
        peers: Option<&Vec<NetworkPolicyPeer>>,
        ports: Option<&Vec<k8s_openapi::api::networking::v1::NetworkPolicyPort>>,
        own_ns: NamespaceId,
    ) -> Rule {
        let peers = peers
            .filter(|p| !p.is_empty())
            .map(|ps| ps.iter().filter_map(|p| self.peer(p, own_ns)).collect());
        let ports = ports
            .filter(|p| !p.is_empty())
            .map(|ps| ps.iter().map(PortSpec::compile).collect());
        Rule { peers, ports }
    }

    /// Compiles one validated policy; `None` if its namespace is unknown.
    pub fn policy(&mut self, info: &PolicyInfo) -> Option<CompiledPolicy> {
        let namespace = self.state.namespace_id(&info.namespace)?;
        let spec = info.policy.spec.clone().unwrap_or_default();
        let (has_ingress, has_egress) = effective_types(info);
        let pod_selector = self
            .interner
            .selector(&spec.pod_selector.clone().unwrap_or_default());
        let ingress = has_ingress.then(|| {
            spec.ingress
                .iter()
                .flatten()
                .map(|r| self.rule(r.from.as_ref(), r.ports.as_ref(), namespace))
                .collect()
        });
        let egress = has_egress.then(|| {
            spec.egress
                .iter()
                .flatten()
                .map(|r| self.rule(r.to.as_ref(), r.ports.as_ref(), namespace))
                .collect()
        });
        Some(CompiledPolicy {
            key: Arc::new(ObjectKey::new(
                Kind::NetworkPolicy,
                Some(&info.namespace),
                &info.name,
            )),
            namespace,
            pod_selector,
            ingress,
            egress,
        })
    }
}

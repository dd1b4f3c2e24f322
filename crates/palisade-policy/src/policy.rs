//! NetworkPolicies compiled for evaluation: effective policy types, rules, peers and ports.

use crate::ports::PortSpec;
use crate::selector::{Interner, Selector};
use ipnet::IpNet;
use k8s_openapi::api::networking::v1::NetworkPolicyPeer;
use palisade_model::{validate, Kind, ObjectKey, PolicyInfo};
use serde::Serialize;
use std::net::IpAddr;
use std::sync::Arc;

/// Traffic direction, seen from the pod a policy selects.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// Traffic into the selected pod.
    Ingress,
    /// Traffic out of the selected pod.
    Egress,
}

impl Direction {
    /// `ingress` or `egress`.
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Ingress => "ingress",
            Direction::Egress => "egress",
        }
    }
}

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
    /// `podSelector` alone: the policy's own namespace (index into `ClusterState::namespaces`).
    Own(usize),
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
    /// An `ipBlock`; `id` indexes the engine's table of distinct blocks.
    Block {
        /// The block.
        block: IpBlock,
        /// Index of this block among the engine's distinct blocks.
        id: usize,
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
    /// Index of its namespace in `ClusterState::namespaces`.
    pub namespace: usize,
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

/// Compiles policies; `blocks` collects the distinct ipBlocks (their index is `Peer::Block::id`).
pub(crate) struct Compiler<'a> {
    pub interner: &'a mut Interner,
    pub blocks: Vec<IpBlock>,
    pub namespace_idx: &'a dyn Fn(&str) -> Option<usize>,
}

impl Compiler<'_> {
    fn peer(&mut self, p: &NetworkPolicyPeer, own_ns: usize) -> Option<Peer> {
        if let Some(b) = &p.ip_block {
            let cidr = validate::cidr(&b.cidr).ok()?.0;
            let except = b
                .except
                .iter()
                .flatten()
                .filter_map(|e| validate::cidr(e).ok().map(|(n, _)| n))
                .collect();
            let block = IpBlock { cidr, except };
            let id = match self.blocks.iter().position(|b| *b == block) {
                Some(id) => id,
                None => {
                    self.blocks.push(block.clone());
                    self.blocks.len() - 1
                }
            };
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
        own_ns: usize,
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
        let namespace = (self.namespace_idx)(&info.namespace)?;
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

//! Why the engine decided what it did, as data: which policy, rule, peer, selector term, label, port
//! or address made the difference. Nothing here is worded; `palisade-analyze` renders reasons for
//! people, and tools (lint, the policy action logger) match on them.

use crate::selector::SelectorMiss;
use ipnet::IpNet;
use palisade_model::PortSpec;
use palisade_model::{PodInfo, Protocol};
use std::net::IpAddr;

/// A NetworkPolicy by namespace and name.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PolicyRef {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
}

/// A pod by namespace and name.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PodRef {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
}

impl From<&PodInfo> for PodRef {
    fn from(pod: &PodInfo) -> PodRef {
        PodRef {
            namespace: pod.namespace.clone(),
            name: pod.name.clone(),
        }
    }
}

/// Why no policy applies to one side of a flow, whatever the policies say.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum UnenforcedReason {
    /// Source and destination are the same pod: a pod may always reach itself.
    SamePod,
    /// Traffic between a pod and the node it runs on (the node's address, or a `hostNetwork` pod
    /// there) is always allowed.
    NodeLocal {
        /// The (non-`hostNetwork`) pod.
        pod: PodRef,
        /// Its node's address.
        node: IpAddr,
    },
    /// The enforcing end is not a pod of the cluster, so nothing enforces this direction.
    NotAPod {
        /// Its address (`None` for an endpoint that is neither a known pod nor an address).
        address: Option<IpAddr>,
    },
    /// The enforcing pod uses the host network: policies never select it.
    HostNetwork {
        /// The pod.
        pod: PodRef,
    },
}

/// An isolating policy none of whose rules for the direction allows the flow.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PolicyMiss {
    /// The policy.
    pub policy: PolicyRef,
    /// Each of its rules for the direction and why it missed; empty when it has none (it denies all
    /// traffic of the direction).
    pub rules: Vec<RuleMiss>,
}

/// Why one rule (`spec.ingress[rule]` or `spec.egress[rule]`) did not allow the flow: its ports, its
/// peers, or both.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RuleMiss {
    /// Index of the rule in the direction's rule list.
    pub rule: usize,
    /// Set when none of the rule's `ports` allows the flow's port and protocol.
    pub ports: Option<PortMiss>,
    /// When no peer of the rule matches the other end: why each missed, in `from`/`to` order. Empty
    /// when a peer matched (the rule missed on its ports only).
    pub peers: Vec<PeerMiss>,
}

/// The flow's port and protocol are none of a rule's `ports`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PortMiss {
    /// The rule's `ports`, in order.
    pub allowed: Vec<PortSpec>,
    /// The flow's destination port.
    pub port: u16,
    /// The flow's protocol (ICMP is allowed only by rules without `ports`).
    pub protocol: Protocol,
    /// What the rule's named ports of the flow's protocol resolved to, in `ports` order.
    pub named: Vec<NamedPort>,
}

/// What a named port of a rule resolved to for this flow.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NamedPort {
    /// The port name (`ports[].port` as a string).
    pub name: String,
    /// What it resolved to.
    pub resolution: NamedPortResolution,
}

/// How a named port resolves on the destination of a flow.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NamedPortResolution {
    /// The destination pod has a container port of that name and protocol.
    Port {
        /// The destination pod.
        pod: PodRef,
        /// Its port number.
        port: u16,
    },
    /// The destination pod has no container port of that name and protocol.
    NotFound {
        /// The destination pod.
        pod: PodRef,
    },
    /// The destination pod matched the egress rule only through an `ipBlock` peer, and named ports
    /// never match an `ipBlock` destination.
    IpBlockDestination,
    /// The destination is not a pod (an address outside the cluster): there is nothing to resolve
    /// the name on.
    NoDestinationPod,
}

/// Why one peer (`from[peer]` or `to[peer]`) of a rule does not match the other end of the flow.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerMiss {
    /// Index of the peer in the rule's `from` / `to` list.
    pub peer: usize,
    /// Why it does not match.
    pub reason: PeerMissReason,
}

/// Why a peer does not match the other end of a flow.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PeerMissReason {
    /// An `ipBlock` peer, and the other end has no address.
    NoAddress {
        /// The block's `cidr`.
        cidr: IpNet,
        /// The other end (`None` when it is not a known pod either).
        pod: Option<PodRef>,
    },
    /// An `ipBlock` peer whose `cidr` does not contain the address.
    OutsideBlock {
        /// The block's `cidr`.
        cidr: IpNet,
        /// The other end's address.
        address: IpAddr,
    },
    /// An `ipBlock` peer whose `cidr` contains the address, but one of its `except` entries too.
    Excepted {
        /// The block's `cidr`.
        cidr: IpNet,
        /// The other end's address.
        address: IpAddr,
        /// The first `except` entry that contains it.
        except: IpNet,
    },
    /// A selector peer, and the other end is a `hostNetwork` pod, which only `ipBlock` peers match.
    HostNetworkPod {
        /// The pod.
        pod: PodRef,
    },
    /// A selector peer, and the other end is not a pod.
    NotAPod {
        /// Its address (`None` for an endpoint that is neither a known pod nor an address).
        address: Option<IpAddr>,
    },
    /// A `podSelector` without `namespaceSelector` (pods of the policy's namespace only), and the pod
    /// is in another namespace.
    OtherNamespace {
        /// The policy's namespace, the only one the peer looks in.
        namespace: String,
        /// The pod (its namespace is the other one).
        pod: PodRef,
    },
    /// The peer's `namespaceSelector` does not match the pod's namespace.
    NamespaceSelector {
        /// The pod's namespace.
        namespace: String,
        /// The first requirement the namespace's labels fail.
        miss: SelectorMiss,
    },
    /// The peer's `podSelector` does not match the pod.
    PodSelector {
        /// The pod.
        pod: PodRef,
        /// The first requirement the pod's labels fail.
        miss: SelectorMiss,
    },
}

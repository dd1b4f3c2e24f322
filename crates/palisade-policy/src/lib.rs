//! The policy engine — NetworkPolicy (networking.k8s.io/v1) and the cluster-wide tiers around it
//! (ClusterNetworkPolicy, and the v1alpha1 AdminNetworkPolicy and BaselineAdminNetworkPolicy) —
//! pure: no I/O, no async.
//!
//! [`Engine::new`] compiles a `ClusterState` once: labels are interned, selectors compiled, pods
//! grouped into endpoint equivalence classes, and every rule's peers resolved to class sets. Then
//! [`Engine::reach`] answers a whole probe (port, protocol) for all class pairs with bit sets, and
//! [`Engine::verdict`] explains one flow: which rules allowed it, or why each isolating policy did not
//! (as data — [`PolicyMiss`], [`RuleMiss`], [`PeerMissReason`]… — that `palisade-analyze` words).
//! The semantics are those of `shared/reference/networkpolicy.md` §1–4; the choices it leaves open:
//! - `ipBlock` peers match pod IPs too (the upstream e2e suite relies on it);
//! - `hostNetwork` pods are never selected and are matched as peers only by `ipBlock` (their address is
//!   the node's);
//! - a named port in an egress rule resolves on the destination pod when a selector peer (or an empty
//!   `to`) matches it, and never matches an `ipBlock` destination.

mod bitset;
mod classes;
mod compile;
mod direction;
mod engine;
mod policy;
mod reason;
mod selector;
mod staged;
mod table;
mod verdict;

pub use bitset::BitSet;
pub use classes::{Class, ClassId, ClassKey, ClassPort};
pub use compile::{
    AddrCache, AddrRange, AddrSet, Allow, ClassRules, DirectionRules, Disposition, Flat, FlatEntry,
    Peers, PortRange, RawRange, RuleOrigin, TierEntry,
};
pub use direction::{Direction, PerDirection};
pub use engine::{Engine, Reach};
pub use palisade_model::selector::LabelOperator;
pub use palisade_model::{PortMatch, PortSpec};
pub use reason::{
    NamedPort, NamedPortResolution, PeerMiss, PeerMissReason, PodRef, PolicyMiss, PolicyRef,
    PortMiss, RuleMiss, UnenforcedReason,
};
pub use selector::{LabelRequirement, SelectorMiss, SelectorTerm};
pub use staged::{enforced_engine, Engines};
pub use table::{Audit, CompiledTable, Enforcement, TableClass};
pub use verdict::{
    Decision, Endpoint, Flow, RuleRef, Side, TierPolicyRef, TierRuleRef, TierWalk, Verdict,
};

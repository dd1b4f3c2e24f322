//! The cluster-wide tiers decoded: ClusterNetworkPolicy (`policy.networking.k8s.io/v1alpha2`) and
//! the v1alpha1 AdminNetworkPolicy and BaselineAdminNetworkPolicy it replaced, as one typed spec
//! (`shared/reference/networkpolicy.md` §7). As for NetworkPolicy, the model validates and decodes
//! with the API's defaults (v1alpha1 `Allow` is `Accept`, a port's protocol TCP when omitted) and
//! decides nothing: which pods a subject or a peer matches, and in which order policies and rules
//! are evaluated, is the engine's.

use crate::key::Kind;
use crate::selector::SelectorSpec;
use crate::validate::Issues;
use crate::Protocol;
use ipnet::IpNet;

mod decode;

/// The tier a cluster-wide policy is evaluated in: Admin before NetworkPolicy, Baseline after.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Tier {
    /// Evaluated before NetworkPolicy; its Accept and Deny cannot be overridden.
    Admin,
    /// Evaluated only for pods NetworkPolicy does not isolate in that direction.
    Baseline,
}

impl Tier {
    /// The API's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Tier::Admin => "Admin",
            Tier::Baseline => "Baseline",
        }
    }
}

/// What a rule does with the traffic it matches.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TierAction {
    /// Allowed for this direction; no later rule of any tier is evaluated (v1alpha1 `Allow`).
    Accept,
    /// Dropped; no later rule of any tier is evaluated.
    Deny,
    /// The rest of this tier is skipped; evaluation goes on in the next tier.
    Pass,
}

impl TierAction {
    /// The v1alpha2 spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            TierAction::Accept => "Accept",
            TierAction::Deny => "Deny",
            TierAction::Pass => "Pass",
        }
    }
}

/// Pods in namespaces: `namespaces` selects the namespaces, `pods` the pods in them (an empty
/// selector, all).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NamespacedPods {
    /// `namespaceSelector`.
    pub namespaces: SelectorSpec,
    /// `podSelector`.
    pub pods: SelectorSpec,
}

/// `spec.subject`: the pods a policy applies to (hostNetwork pods never are).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Subject {
    /// `namespaces`: every pod of the namespaces it selects.
    Namespaces(SelectorSpec),
    /// `pods`.
    Pods(NamespacedPods),
}

/// One entry of a rule's `from` / `to`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TierPeer {
    /// `namespaces`: every pod (not hostNetwork) of the namespaces it selects.
    Namespaces(SelectorSpec),
    /// `pods`.
    Pods(NamespacedPods),
    /// `networks` (egress): addresses in these CIDRs (host bits cleared), pod addresses included.
    Networks(Vec<IpNet>),
    /// `nodes` (egress): the addresses of the nodes this selects.
    Nodes(SelectorSpec),
    /// `domainNames` (egress, Accept rules only). Palisade has no DNS-aware dataplane: such a peer
    /// matches no address (the loader warns).
    DomainNames(Vec<String>),
    /// A peer with no field Palisade knows (written for a newer API version). It fails closed,
    /// as the API says: in an Accept rule it matches nothing; in a Deny or Pass rule, everything.
    Unknown,
}

/// One entry of a rule's `protocols` (v1alpha2) or `ports` (v1alpha1).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TierPort {
    /// Ports `first..=last` of `protocol` (a single port: `first == last`).
    Range {
        /// TCP, UDP or SCTP.
        protocol: Protocol,
        /// First port (1–65535).
        first: u16,
        /// Last port, inclusive.
        last: u16,
    },
    /// A named container port of the destination pod, of whatever protocol it has there.
    Named(String),
    /// An entry with no field Palisade knows: fails closed like [`TierPeer::Unknown`] (an Accept
    /// rule matches no port through it; a Deny or Pass rule, every port).
    Unknown,
}

/// One ingress or egress rule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TierRule {
    /// `name`, for observability (at most 100 characters); `None` when omitted or empty.
    pub name: Option<String>,
    /// `action`.
    pub action: TierAction,
    /// `from` / `to`: 1–25 peers.
    pub peers: Vec<TierPeer>,
    /// `protocols` / `ports`; `None` when omitted: every port of every protocol.
    pub ports: Option<Vec<TierPort>>,
}

/// A cluster-wide policy's spec.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TierPolicySpec {
    /// `spec.tier` (v1alpha1: Admin for AdminNetworkPolicy, Baseline for
    /// BaselineAdminNetworkPolicy).
    pub tier: Tier,
    /// `spec.priority`, 0–1000, lower first; `None` for a BaselineAdminNetworkPolicy, which has
    /// none.
    pub priority: Option<u32>,
    /// `spec.subject`.
    pub subject: Subject,
    /// `spec.ingress`, in written order (empty: the policy does not affect ingress).
    pub ingress: Vec<TierRule>,
    /// `spec.egress`, in written order.
    pub egress: Vec<TierRule>,
}

/// The kinds that are cluster-wide policies.
pub const TIER_KINDS: [Kind; 3] = [
    Kind::ClusterNetworkPolicy,
    Kind::AdminNetworkPolicy,
    Kind::BaselineAdminNetworkPolicy,
];

/// A cluster-wide policy object as read: its kind, metadata and spec (kept as given, for the
/// manifest a snapshot writes).
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct TierObject {
    /// The API version.
    #[serde(rename = "apiVersion", default)]
    pub api_version: String,
    /// One of [`TIER_KINDS`].
    #[serde(default)]
    pub kind: String,
    /// Standard object metadata.
    #[serde(default)]
    pub metadata: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
    /// The spec as read.
    #[serde(default)]
    pub spec: serde_json::Value,
}

/// A cluster-wide policy that passed validation: the object as read and its spec decoded. Made
/// only by [`ValidTierPolicy::new`], so the two always agree.
#[derive(Debug, PartialEq)]
pub struct ValidTierPolicy {
    kind: Kind,
    object: TierObject,
    spec: TierPolicySpec,
}

impl ValidTierPolicy {
    /// Validates `object`, a `kind` (one of [`TIER_KINDS`]), with the API's rules (§7 of the
    /// reference) and decodes its spec in the same walk: the policy with the warnings found (a
    /// peer or port entry of no known field fails closed; `domainNames` are not enforced), or the
    /// issues (at least one an error) that reject it.
    pub fn new(kind: Kind, object: TierObject) -> Result<(ValidTierPolicy, Issues), Issues> {
        match decode::policy(kind, &object) {
            (issues, Some(spec)) => Ok((ValidTierPolicy { kind, object, spec }, issues)),
            (issues, None) => Err(issues),
        }
    }

    /// Its kind (one of [`TIER_KINDS`]).
    pub fn kind(&self) -> Kind {
        self.kind
    }

    /// The object as read.
    pub fn object(&self) -> &TierObject {
        &self.object
    }

    /// The spec, decoded.
    pub fn spec(&self) -> &TierPolicySpec {
        &self.spec
    }

    /// `metadata.name`.
    pub fn name(&self) -> &str {
        self.object.metadata.name.as_deref().unwrap_or_default()
    }

    /// `metadata.generation` (0 where the API server gives none: manifests).
    pub fn generation(&self) -> i64 {
        self.object.metadata.generation.unwrap_or(0)
    }

    /// Annotated `policy.palisade.dev/audit-mode: "true"` (what that means is the engine's).
    pub fn audit_annotated(&self) -> bool {
        crate::logging::audit_annotated(&self.object.metadata)
    }

    /// `Kind/name`: how an agent's status and `palisade status` name it (a NetworkPolicy is
    /// `ns/name`, and no namespace is spelt like a kind).
    pub fn qualified_name(&self) -> String {
        format!("{}/{}", self.kind, self.name())
    }
}

//! Palisade's view of a Kubernetes cluster: the objects we read, loaded from manifests (multi-document
//! YAML or JSON, `kind: List`, workloads whose pod templates stand in for missing pods), validated with
//! field paths, and indexed into one [`ClusterState`].
//!
//! Kubernetes types come from `k8s-openapi` (feature `v1_34`, the API version Palisade targets). YAML is
//! read event by event from libyaml (`unsafe-libyaml`, the parser under `serde_yaml_ng`) and composed
//! here, with kubectl's rules for keys written twice and merge keys and with limits on nesting and
//! aliases; typed decoding goes through `serde_path_to_error` so a wrong field type is reported with
//! its path.
//! A valid NetworkPolicy is decoded once, into typed values with the API's defaults ([`ValidPolicy`]).
//! This crate knows nothing else of policy semantics: it never decides who may reach whom.

mod agent_status;
mod cache;
mod diagnostic;
mod document;
pub mod id;
mod info;
mod key;
mod loader;
pub mod logging;
mod netpol;
mod objects;
mod read;
mod rejection;
pub mod selector;
mod snapshot;
mod state;
mod store;
mod text;
mod tier;
pub mod validate;
mod workload;
mod yaml;

pub use agent_status::{fresh, AgentStatus, StatusRecord};
pub use cache::DocumentCache;
pub use diagnostic::{summarize, Diagnostic, FieldIssue, Origin, Severity, Summary};
pub use document::{decode_utf8, is_blank, MAX_DEPTH};
pub use id::{Id, IdVec};
pub use key::{foreign_policy_groups, unenforced_policy_kind, Kind, ObjectKey, PodKey};
pub use loader::{Limits, Load, Loader, DEFAULT_POD_CIDR};
pub use netpol::{IpBlock, PolicyPeer, PolicyRule, PolicySpec, PortMatch, PortSpec, ValidPolicy};
pub use objects::UNENFORCED;
pub use read::{is_manifest_name, read_bounded, Symlinks};
pub use rejection::{Held, HeldReason, RejectReason, Rejection};
pub use snapshot::{InForce, Snapshot};
pub use state::{
    ClusterState, ContainerPortInfo, NamespaceId, NamespaceInfo, NodeInfo, OwnerRef, PodId,
    PodInfo, PolicyInfo, ServiceInfo, ServicePortInfo, TierPolicyInfo,
};
pub use store::{ObjectEvent, ObjectStore};
pub use text::printable;
pub use tier::{
    NamespacedPods, Subject, Tier, TierAction, TierObject, TierPeer, TierPolicySpec, TierPort,
    TierRule, ValidTierPolicy, TIER_KINDS,
};

use std::fmt;

/// The transport protocols Kubernetes port specifications know, plus ICMP for flows that have no port.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "UPPERCASE")]
pub enum Protocol {
    /// TCP (the Kubernetes default).
    Tcp,
    /// UDP.
    Udp,
    /// SCTP.
    Sctp,
    /// ICMP / ICMPv6: never matched by a port rule; only rules without `ports` allow it.
    Icmp,
}

impl Protocol {
    /// The three protocols a Kubernetes port may name.
    pub const PORTED: [Protocol; 3] = [Protocol::Tcp, Protocol::Udp, Protocol::Sctp];

    /// The IP protocol number (ICMP: 1, the IPv4 one).
    pub fn ip_number(self) -> u8 {
        match self {
            Protocol::Tcp => 6,
            Protocol::Udp => 17,
            Protocol::Sctp => 132,
            Protocol::Icmp => 1,
        }
    }

    /// The protocol of a packet with IP protocol number `number`: a ported one, else ICMP (the
    /// only other kind a flow is analysed as).
    pub fn from_ip_number(number: u8) -> Protocol {
        Protocol::PORTED
            .into_iter()
            .find(|p| p.ip_number() == number)
            .unwrap_or(Protocol::Icmp)
    }

    /// The Kubernetes spelling (`TCP`, `UDP`, `SCTP`, `ICMP`).
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Tcp => "TCP",
            Protocol::Udp => "UDP",
            Protocol::Sctp => "SCTP",
            Protocol::Icmp => "ICMP",
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Protocol {
    type Err = String;

    /// Parses a protocol name, case-insensitively (command-line convenience).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_uppercase().as_str() {
            "TCP" => Ok(Protocol::Tcp),
            "UDP" => Ok(Protocol::Udp),
            "SCTP" => Ok(Protocol::Sctp),
            "ICMP" => Ok(Protocol::Icmp),
            _ => Err(format!(
                "unknown protocol {s:?}; valid: TCP, UDP, SCTP, ICMP"
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Protocol;

    #[test]
    fn ip_numbers_round_trip_and_the_rest_is_icmp() {
        for p in Protocol::PORTED {
            assert_eq!(Protocol::from_ip_number(p.ip_number()), p);
        }
        assert_eq!(Protocol::from_ip_number(1), Protocol::Icmp);
        assert_eq!(Protocol::from_ip_number(58), Protocol::Icmp);
        assert_eq!(Protocol::Tcp.ip_number(), 6);
    }
}

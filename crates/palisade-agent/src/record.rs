//! One line of `policy_action.log`, in GKE Dataplane V2's format: field order and omission rules as in
//! `shared/reference/logging.md` §2.

use palisade_model::{ClusterState, Protocol};
use palisade_policy::Direction;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::collections::HashMap;
use std::net::IpAddr;
use std::time::SystemTime;
use time::format_description::FormatItem;
use time::macros::format_description;
use time::OffsetDateTime;

/// RFC 3339, UTC, always nine fractional digits.
const TIMESTAMP: &[FormatItem<'static>] =
    format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:9]Z");

/// `time` as an RFC 3339 UTC timestamp with nanoseconds.
pub fn timestamp(time: SystemTime) -> String {
    OffsetDateTime::from(time)
        .format(TIMESTAMP)
        .unwrap_or_else(|_| "1970-01-01T00:00:00.000000000Z".into())
}

pub(crate) fn parse_timestamp<'de, D: Deserializer<'de>>(d: D) -> Result<SystemTime, D::Error> {
    let text = String::deserialize(d)?;
    OffsetDateTime::parse(&text, &time::format_description::well_known::Rfc3339)
        .map(SystemTime::from)
        .map_err(|e| serde::de::Error::custom(format!("timestamp {text:?}: {e}")))
}

pub(crate) fn parse_protocol<'de, D: Deserializer<'de>>(d: D) -> Result<Protocol, D::Error> {
    String::deserialize(d)?
        .parse()
        .map_err(serde::de::Error::custom)
}

pub(crate) fn one() -> u64 {
    1
}

pub(crate) fn is_zero(port: &u16) -> bool {
    *port == 0
}

pub(crate) fn lowercase<S: Serializer>(p: &Protocol, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&p.as_str().to_ascii_lowercase())
}

pub(crate) fn rfc3339<S: Serializer>(t: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&timestamp(*t))
}

/// `connection`: the 5-tuple after Service translation, and the enforcing side.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Connection {
    /// Source address.
    pub src_ip: IpAddr,
    /// Destination address (the backend pod for a Service).
    pub dest_ip: IpAddr,
    /// Source port; omitted when 0.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub src_port: u16,
    /// Destination port (the targetPort for a Service); omitted when 0.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub dest_port: u16,
    /// `tcp`, `udp`, `sctp` or `icmp`.
    #[serde(serialize_with = "lowercase", deserialize_with = "parse_protocol")]
    pub protocol: Protocol,
    /// `ingress` (enforced at the destination) or `egress` (at the source).
    pub direction: Direction,
}

/// `allow` or `deny`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Disposition {
    /// The connection was allowed.
    Allow,
    /// The connection was denied (or, in audit mode, would have been).
    Deny,
}

impl Disposition {
    /// `allow` or `deny`.
    pub fn as_str(self) -> &'static str {
        match self {
            Disposition::Allow => "allow",
            Disposition::Deny => "deny",
        }
    }
}

/// A policy that allowed the connection (or, as `denied_by`, the cluster-wide rule that denied
/// it; as `staged_by`, what would decide with the staged policies).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyName {
    /// Name.
    pub name: String,
    /// Namespace (empty for the cluster-scoped kinds).
    pub namespace: String,
    /// `NetworkPolicy`, `ClusterNetworkPolicy`, `AdminNetworkPolicy` or
    /// `BaselineAdminNetworkPolicy`.
    pub kind: String,
    /// A cluster-wide policy's tier (`Admin`, `Baseline`); omitted for a NetworkPolicy.
    #[serde(default, skip_serializing_if = "is_empty")]
    pub tier: String,
    /// The cluster-wide rule that decided: its `name`, or `ingress[0]` / `egress[0]` when it has
    /// none; omitted for a NetworkPolicy.
    #[serde(default, skip_serializing_if = "is_empty")]
    pub rule: String,
}

fn is_empty(s: &str) -> bool {
    s.is_empty()
}

/// `src` / `dest`: a pod, a node, or an address outside the cluster; empty fields are omitted.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged, from = "PeerFields")]
pub enum Peer {
    /// A pod; `pod_namespace` repeats `namespace` for older consumers.
    Pod {
        /// Pod name.
        #[serde(skip_serializing_if = "is_empty")]
        pod_name: String,
        /// Kind of the pod's first owner (ReplicaSet, StatefulSet, DaemonSet, Job…).
        #[serde(skip_serializing_if = "is_empty")]
        workload_kind: String,
        /// Name of the pod's first owner.
        #[serde(skip_serializing_if = "is_empty")]
        workload_name: String,
        /// Namespace (again).
        #[serde(skip_serializing_if = "is_empty")]
        pod_namespace: String,
        /// Namespace.
        #[serde(skip_serializing_if = "is_empty")]
        namespace: String,
    },
    /// A node (its address is a pod's `status.hostIP`).
    Node {
        /// Node name.
        #[serde(skip_serializing_if = "is_empty")]
        node_name: String,
        /// Always `Node`.
        workload_kind: String,
    },
    /// Anything else.
    External {
        /// The address.
        instance: String,
    },
}

/// Every field a peer may have, for reading records back.
#[derive(Deserialize)]
struct PeerFields {
    #[serde(default)]
    pod_name: String,
    #[serde(default)]
    workload_kind: String,
    #[serde(default)]
    workload_name: String,
    #[serde(default)]
    pod_namespace: String,
    #[serde(default)]
    namespace: String,
    #[serde(default)]
    node_name: String,
    #[serde(default)]
    instance: String,
}

impl From<PeerFields> for Peer {
    fn from(f: PeerFields) -> Peer {
        if !f.instance.is_empty() {
            Peer::External {
                instance: f.instance,
            }
        } else if f.workload_kind == "Node" {
            Peer::Node {
                node_name: f.node_name,
                workload_kind: f.workload_kind,
            }
        } else {
            let namespace = if f.namespace.is_empty() {
                f.pod_namespace.clone()
            } else {
                f.namespace
            };
            Peer::Pod {
                pod_name: f.pod_name,
                workload_kind: f.workload_kind,
                workload_name: f.workload_name,
                pod_namespace: f.pod_namespace,
                namespace,
            }
        }
    }
}

/// The record peer that has `ip`: a pod of `state`, a node of `nodes` (by address), or external.
pub fn peer(state: &ClusterState, nodes: &HashMap<IpAddr, String>, ip: IpAddr) -> Peer {
    if let Some(i) = state.pod_by_ip(ip) {
        let pod = &state.pods[i];
        let (workload_kind, workload_name) = pod
            .owner
            .as_ref()
            .map(|o| (o.kind.clone(), o.name.clone()))
            .unwrap_or_default();
        return Peer::Pod {
            pod_name: pod.name.clone(),
            workload_kind,
            workload_name,
            pod_namespace: pod.namespace.clone(),
            namespace: pod.namespace.clone(),
        };
    }
    match nodes.get(&ip) {
        Some(name) => Peer::Node {
            node_name: name.clone(),
            workload_kind: "Node".into(),
        },
        None => Peer::External {
            instance: ip.to_string(),
        },
    }
}

/// One policy action record.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// The connection.
    pub connection: Connection,
    /// Allowed or denied.
    pub disposition: Disposition,
    /// Allow records: every permitting policy of the enforcing pod (deduplicated); omitted when empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub policies: Vec<PolicyName>,
    /// The source.
    pub src: Peer,
    /// The destination.
    pub dest: Peer,
    /// 1 for allow; the number of aggregated attempts for deny.
    #[serde(default = "one")]
    pub count: u64,
    /// The node that wrote the record.
    #[serde(default)]
    pub node_name: String,
    /// Time of the (first) event.
    #[serde(serialize_with = "rfc3339", deserialize_with = "parse_timestamp")]
    pub timestamp: SystemTime,
    /// Audit mode: the connection was let through but policy would have denied it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub audit: bool,
    /// Deny records: the Admin or Baseline rule that denied (GKE's format has no field for it);
    /// omitted when NetworkPolicy denied.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub denied_by: Option<PolicyName>,
    /// Staged policies (annotated `policy.palisade.dev/audit-mode: "true"`; not in GKE's format):
    /// what they would do with a connection whose enforced verdict they change — such a record
    /// is `"audit": true` with the would-be disposition; omitted on every other record.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub would: Option<Disposition>,
    /// With `would`: the policies (or the cluster-wide rule) that decide it with the staged
    /// policies in force; omitted when empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub staged_by: Vec<PolicyName>,
    /// Deny records not of a dropped packet (not in GKE's format): `strict` when the agent cut an
    /// established connection that a policy change denies (`--strict`); omitted otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<DenyReason>,
}

/// Why a deny record was written other than for a dropped packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DenyReason {
    /// Strict mode removed the established connection's conntrack entry: its next packet is
    /// judged as new, and dropped.
    Strict,
}

impl Record {
    /// The record as one JSON line (with the trailing newline).
    pub fn to_line(&self) -> String {
        let mut line = serde_json::to_string(self).expect("records always serialize");
        line.push('\n');
        line
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn timestamps_are_utc_with_nanoseconds() {
        let t = UNIX_EPOCH + Duration::new(1_795_341_600, 123_456_789);
        assert_eq!(timestamp(t), "2026-11-22T10:00:00.123456789Z");
        assert_eq!(timestamp(UNIX_EPOCH), "1970-01-01T00:00:00.000000000Z");
    }

    #[test]
    fn field_order_and_omissions_match_the_reference() {
        let record = Record {
            connection: Connection {
                src_ip: "10.8.1.20".parse().unwrap(),
                dest_ip: "10.8.0.7".parse().unwrap(),
                src_port: 40312,
                dest_port: 6379,
                protocol: Protocol::Tcp,
                direction: Direction::Ingress,
            },
            disposition: Disposition::Deny,
            policies: vec![],
            src: Peer::Pod {
                pod_name: "rogue-1".into(),
                workload_kind: String::new(),
                workload_name: String::new(),
                pod_namespace: "default".into(),
                namespace: "default".into(),
            },
            dest: Peer::Pod {
                pod_name: "redis-cart-6d9c7b5f4-x2kqp".into(),
                workload_kind: "ReplicaSet".into(),
                workload_name: "redis-cart-6d9c7b5f4".into(),
                pod_namespace: "default".into(),
                namespace: "default".into(),
            },
            count: 3,
            node_name: "node-a".into(),
            timestamp: UNIX_EPOCH + Duration::new(1_795_341_600, 123_456_789),
            audit: false,
            denied_by: None,
            would: None,
            staged_by: Vec::new(),
            reason: None,
        };
        assert_eq!(
            record.to_line(),
            r#"{"connection":{"src_ip":"10.8.1.20","dest_ip":"10.8.0.7","src_port":40312,"dest_port":6379,"protocol":"tcp","direction":"ingress"},"disposition":"deny","src":{"pod_name":"rogue-1","pod_namespace":"default","namespace":"default"},"dest":{"pod_name":"redis-cart-6d9c7b5f4-x2kqp","workload_kind":"ReplicaSet","workload_name":"redis-cart-6d9c7b5f4","pod_namespace":"default","namespace":"default"},"count":3,"node_name":"node-a","timestamp":"2026-11-22T10:00:00.123456789Z"}"#.to_owned() + "\n"
        );
        let icmp = Record {
            connection: Connection {
                src_port: 0,
                dest_port: 0,
                protocol: Protocol::Icmp,
                direction: Direction::Egress,
                ..record.connection.clone()
            },
            disposition: Disposition::Allow,
            policies: vec![PolicyName {
                name: "p".into(),
                namespace: "default".into(),
                kind: "NetworkPolicy".into(),
                tier: String::new(),
                rule: String::new(),
            }],
            dest: Peer::External {
                instance: "192.0.2.1".into(),
            },
            src: Peer::Node {
                node_name: "node-a".into(),
                workload_kind: "Node".into(),
            },
            audit: true,
            denied_by: None,
            count: 1,
            ..record.clone()
        };
        let line = icmp.to_line();
        assert!(line.starts_with(r#"{"connection":{"src_ip":"10.8.1.20","dest_ip":"10.8.0.7","protocol":"icmp","direction":"egress"},"disposition":"allow","policies":[{"name":"p","namespace":"default","kind":"NetworkPolicy"}],"src":{"node_name":"node-a","workload_kind":"Node"},"dest":{"instance":"192.0.2.1"},"count":1,"#), "{line}");
        assert!(line.trim_end().ends_with(r#","audit":true}"#), "{line}");
        // Strict mode's cut: the reason last, the other fields as before.
        let cut = Record {
            reason: Some(DenyReason::Strict),
            ..record.clone()
        };
        let line = cut.to_line();
        assert_eq!(
            line,
            record.to_line().replace("}\n", ",\"reason\":\"strict\"}\n"),
            "{line}"
        );
        // Records read back equal what was written.
        for r in [&record, &icmp, &cut] {
            let back: Record = serde_json::from_str(&r.to_line()).unwrap();
            assert_eq!(&back, r);
        }
    }
}

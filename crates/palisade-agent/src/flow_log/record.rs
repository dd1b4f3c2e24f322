//! One line of the flow log: a connection's traffic in one interval, who its ends are, and what
//! the policies in force say of it. Field names follow the policy action log (`connection`, `src`,
//! `dest`, `node_name`) and GKE's VPC flow logs (`bytes_sent`, `packets_sent`, `start_time`,
//! `end_time`); `received` counts the answers.

use crate::record::{
    is_zero, lowercase, one, parse_protocol, parse_timestamp, rfc3339, Disposition, Peer,
    PolicyName,
};
use palisade_model::Protocol;
use serde::{Deserialize, Serialize};
use std::net::IpAddr;
use std::time::SystemTime;

fn is_one(n: &u64) -> bool {
    *n == 1
}

/// `connection`: the flow as the policies judged it — to the backend of a Service, after its
/// translation.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct FlowConnection {
    /// Source address.
    pub src_ip: IpAddr,
    /// Destination address (the backend pod for a Service).
    pub dest_ip: IpAddr,
    /// Source port; omitted when 0, and for a record that sums several connections.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub src_port: u16,
    /// Destination port (the targetPort for a Service).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub dest_port: u16,
    /// `tcp`, `udp` or `sctp`.
    #[serde(serialize_with = "lowercase", deserialize_with = "parse_protocol")]
    pub protocol: Protocol,
}

/// The Service a connection was addressed to, when it went through one.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceName {
    /// Name.
    pub name: String,
    /// Namespace.
    pub namespace: String,
    /// The address the client used (the ClusterIP).
    pub ip: IpAddr,
    /// The port the client used.
    pub port: u16,
}

/// What the policies in force say of one side of a connection: the source pod's egress or the
/// destination pod's ingress.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SideVerdict {
    /// `allow` or `deny` (a connection denied now: established before the policy changed, or let
    /// through by audit mode).
    pub disposition: Disposition,
    /// Who decides: the allowing NetworkPolicies, the Admin or Baseline rule, or (denied) the
    /// isolating policies; omitted when no policy isolates the pod this way.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub policies: Vec<PolicyName>,
}

/// One flow log record.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FlowRecord {
    /// The connection.
    pub connection: FlowConnection,
    /// The source.
    pub src: Peer,
    /// The destination.
    pub dest: Peer,
    /// The Service the client addressed; omitted when it addressed the destination directly.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<ServiceName>,
    /// `allow`, or `deny` when a side's policies deny the connection now.
    pub disposition: Disposition,
    /// The source pod's egress; omitted when the source is not a pod.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub egress: Option<SideVerdict>,
    /// The destination pod's ingress; omitted when the destination is not a pod.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ingress: Option<SideVerdict>,
    /// Packets from the source in the interval (omitted, with the other counters, when the kernel
    /// does not count this connection's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub packets_sent: Option<u64>,
    /// Bytes from the source in the interval.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes_sent: Option<u64>,
    /// Packets back to the source in the interval.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub packets_received: Option<u64>,
    /// Bytes back to the source in the interval.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes_received: Option<u64>,
    /// Connections this record sums: 1, or more for short connections (started and ended in the
    /// interval) of the same source, destination, port and protocol; omitted when 1.
    #[serde(default = "one", skip_serializing_if = "is_one")]
    pub connections: u64,
    /// The connection started in the interval.
    pub started: bool,
    /// The connection ended in the interval.
    pub ended: bool,
    /// Start of the interval.
    #[serde(serialize_with = "rfc3339", deserialize_with = "parse_timestamp")]
    pub start_time: SystemTime,
    /// End of the interval.
    #[serde(serialize_with = "rfc3339", deserialize_with = "parse_timestamp")]
    pub end_time: SystemTime,
    /// The node that wrote the record.
    #[serde(default)]
    pub node_name: String,
    /// Which ends that node enforces (a connection between nodes is told by both: each says its
    /// end); omitted when it enforces neither.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reporter: Option<Reporter>,
}

/// The ends of a connection the reporting node enforces.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Reporter {
    /// The source pod.
    Src,
    /// The destination pod.
    Dest,
    /// Both (pods of one node).
    Both,
}

impl Reporter {
    /// Which of the ends (source, destination) are enforced here.
    pub fn of(src: bool, dest: bool) -> Option<Reporter> {
        match (src, dest) {
            (true, true) => Some(Reporter::Both),
            (true, false) => Some(Reporter::Src),
            (false, true) => Some(Reporter::Dest),
            (false, false) => None,
        }
    }
}

impl FlowRecord {
    /// The record as one JSON line (with the trailing newline).
    pub fn to_line(&self) -> String {
        let mut line = serde_json::to_string(self).expect("records always serialize");
        line.push('\n');
        line
    }

    /// Bytes both ways (0 when not counted).
    pub fn bytes(&self) -> u64 {
        self.bytes_sent
            .unwrap_or(0)
            .saturating_add(self.bytes_received.unwrap_or(0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    fn pod(name: &str, workload: &str) -> Peer {
        Peer::Pod {
            pod_name: name.into(),
            workload_kind: "ReplicaSet".into(),
            workload_name: workload.into(),
            pod_namespace: "shop".into(),
            namespace: "shop".into(),
        }
    }

    #[test]
    fn a_record_is_one_json_line_read_back_as_written() {
        let at = |s: u64| UNIX_EPOCH + Duration::from_secs(1_795_341_600 + s);
        let record = FlowRecord {
            connection: FlowConnection {
                src_ip: "10.8.1.20".parse().unwrap(),
                dest_ip: "10.8.0.7".parse().unwrap(),
                src_port: 40312,
                dest_port: 8080,
                protocol: Protocol::Tcp,
            },
            src: pod("web-1", "web-5d"),
            dest: pod("api-1", "api-7c"),
            service: Some(ServiceName {
                name: "api".into(),
                namespace: "shop".into(),
                ip: "10.96.0.12".parse().unwrap(),
                port: 80,
            }),
            disposition: Disposition::Allow,
            egress: None,
            ingress: Some(SideVerdict {
                disposition: Disposition::Allow,
                policies: vec![PolicyName {
                    name: "api".into(),
                    namespace: "shop".into(),
                    kind: "NetworkPolicy".into(),
                    tier: String::new(),
                    rule: String::new(),
                }],
            }),
            packets_sent: Some(4),
            bytes_sent: Some(310),
            packets_received: Some(3),
            bytes_received: Some(5120),
            connections: 1,
            started: true,
            ended: false,
            start_time: at(0),
            end_time: at(5),
            node_name: "node-a".into(),
            reporter: Some(Reporter::Both),
        };
        let line = record.to_line();
        assert_eq!(
            line,
            r#"{"connection":{"src_ip":"10.8.1.20","dest_ip":"10.8.0.7","src_port":40312,"dest_port":8080,"protocol":"tcp"},"src":{"pod_name":"web-1","workload_kind":"ReplicaSet","workload_name":"web-5d","pod_namespace":"shop","namespace":"shop"},"dest":{"pod_name":"api-1","workload_kind":"ReplicaSet","workload_name":"api-7c","pod_namespace":"shop","namespace":"shop"},"service":{"name":"api","namespace":"shop","ip":"10.96.0.12","port":80},"disposition":"allow","ingress":{"disposition":"allow","policies":[{"name":"api","namespace":"shop","kind":"NetworkPolicy"}]},"packets_sent":4,"bytes_sent":310,"packets_received":3,"bytes_received":5120,"started":true,"ended":false,"start_time":"2026-11-22T10:00:00.000000000Z","end_time":"2026-11-22T10:00:05.000000000Z","node_name":"node-a","reporter":"both"}"#.to_owned() + "\n"
        );
        assert_eq!(record.bytes(), 5430);
        let summed = FlowRecord {
            connections: 12,
            packets_sent: None,
            bytes_sent: None,
            packets_received: None,
            bytes_received: None,
            ..record.clone()
        };
        assert!(summed.to_line().contains(r#""connections":12,"#));
        assert!(!summed.to_line().contains("bytes"));
        for r in [&record, &summed] {
            let back: FlowRecord = serde_json::from_str(&r.to_line()).unwrap();
            assert_eq!(&back, r);
        }
    }
}

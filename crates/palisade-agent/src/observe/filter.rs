//! Hubble-like flow filters: values of one flag OR, different flags AND.

use super::Observable;
use crate::record::{Disposition, Peer};
use palisade_model::Protocol;
use serde::{Deserialize, Serialize};
use std::str::FromStr;

/// A pod name prefix in a namespace: `[namespace/]name-prefix` (namespace `default` when omitted,
/// as in Hubble).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PodPattern {
    /// Namespace.
    pub namespace: String,
    /// Pod name prefix (empty: every pod of the namespace).
    pub prefix: String,
}

impl FromStr for PodPattern {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let (namespace, prefix) = s.split_once('/').unwrap_or(("default", s));
        if namespace.is_empty() || prefix.contains('/') {
            return Err(format!("{s:?}: expected [namespace/]pod-name-prefix"));
        }
        Ok(PodPattern {
            namespace: namespace.into(),
            prefix: prefix.into(),
        })
    }
}

impl PodPattern {
    fn matches(&self, peer: &Peer) -> bool {
        matches!(peer, Peer::Pod { pod_name, namespace, .. }
            if *namespace == self.namespace && pod_name.starts_with(&self.prefix))
    }
}

/// What happened to a flow, as `--verdict` names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum VerdictFilter {
    /// Allowed by a policy rule.
    Allowed,
    /// Denied by policy (dropped, or let through by audit mode).
    Denied,
    /// Denied by policy but let through by audit mode.
    Audit,
}

impl FromStr for VerdictFilter {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "allowed" | "allow" => Ok(VerdictFilter::Allowed),
            "denied" | "deny" => Ok(VerdictFilter::Denied),
            "audit" => Ok(VerdictFilter::Audit),
            _ => Err(format!("{s:?}: valid verdicts are allowed, denied, audit")),
        }
    }
}

/// A flow filter; empty lists match everything.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Filter {
    /// The source is one of these pods.
    pub from_pods: Vec<PodPattern>,
    /// The destination is one of these pods.
    pub to_pods: Vec<PodPattern>,
    /// Either end is one of these pods.
    pub pods: Vec<PodPattern>,
    /// Either end is in one of these namespaces.
    pub namespaces: Vec<String>,
    /// The verdict is one of these.
    pub verdicts: Vec<VerdictFilter>,
    /// The source or destination port is one of these.
    pub ports: Vec<u16>,
    /// The protocol is one of these.
    pub protocols: Vec<Protocol>,
}

fn any<T>(values: &[T], f: impl Fn(&T) -> bool) -> bool {
    values.is_empty() || values.iter().any(f)
}

fn namespace(peer: &Peer) -> Option<&str> {
    match peer {
        Peer::Pod { namespace, .. } => Some(namespace),
        _ => None,
    }
}

impl Filter {
    /// True when `r` passes every flag.
    pub fn matches<R: Observable>(&self, r: &R) -> bool {
        let ((src, dest), (src_port, dest_port)) = (r.ends(), r.ports());
        any(&self.from_pods, |p| p.matches(src))
            && any(&self.to_pods, |p| p.matches(dest))
            && any(&self.pods, |p| p.matches(src) || p.matches(dest))
            && any(&self.namespaces, |n| {
                namespace(src) == Some(n) || namespace(dest) == Some(n)
            })
            && any(&self.verdicts, |v| match v {
                VerdictFilter::Allowed => r.disposition() == Disposition::Allow,
                VerdictFilter::Denied => r.disposition() == Disposition::Deny,
                VerdictFilter::Audit => r.audit(),
            })
            && any(&self.ports, |&p| src_port == p || dest_port == p)
            && any(&self.protocols, |&p| r.protocol() == p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flow_log::record::FlowRecord;
    use crate::record::{Connection, Record};
    use palisade_policy::Direction;
    use std::time::UNIX_EPOCH;

    fn pod(ns: &str, name: &str) -> Peer {
        Peer::Pod {
            pod_name: name.into(),
            workload_kind: String::new(),
            workload_name: String::new(),
            pod_namespace: ns.into(),
            namespace: ns.into(),
        }
    }

    fn record(disposition: Disposition, audit: bool) -> Record {
        Record {
            connection: Connection {
                src_ip: "10.0.0.1".parse().unwrap(),
                dest_ip: "10.0.0.2".parse().unwrap(),
                src_port: 40000,
                dest_port: 6379,
                protocol: Protocol::Tcp,
                direction: Direction::Ingress,
            },
            disposition,
            policies: vec![],
            src: pod("default", "rogue"),
            dest: pod("shop", "redis-cart-abc"),
            count: 1,
            node_name: "n".into(),
            timestamp: UNIX_EPOCH,
            audit,
            denied_by: None,
            would: None,
            staged_by: Vec::new(),
            reason: None,
        }
    }

    fn parse(patterns: &[&str]) -> Vec<PodPattern> {
        patterns.iter().map(|p| p.parse().unwrap()).collect()
    }

    #[test]
    fn flags_and_values() {
        let denied = record(Disposition::Deny, false);
        let yes = |f: Filter| assert!(f.matches(&denied), "{f:?}");
        let no = |f: Filter| assert!(!f.matches(&denied), "{f:?}");
        yes(Filter::default());
        yes(Filter {
            from_pods: parse(&["rogue"]),
            to_pods: parse(&["shop/redis-cart", "shop/other"]),
            ..Default::default()
        });
        no(Filter {
            from_pods: parse(&["shop/rogue"]),
            ..Default::default()
        });
        yes(Filter {
            pods: parse(&["shop/"]),
            namespaces: vec!["nowhere".into(), "shop".into()],
            ports: vec![6379],
            protocols: vec![Protocol::Tcp],
            ..Default::default()
        });
        no(Filter {
            ports: vec![6379],
            protocols: vec![Protocol::Udp],
            ..Default::default()
        });
        let verdicts = |v: Vec<VerdictFilter>| Filter {
            verdicts: v,
            ..Default::default()
        };
        yes(verdicts(vec![VerdictFilter::Denied]));
        no(verdicts(vec![VerdictFilter::Allowed, VerdictFilter::Audit]));
        let audited = record(Disposition::Deny, true);
        assert!(verdicts(vec![VerdictFilter::Audit]).matches(&audited));
        assert!(verdicts(vec![VerdictFilter::Denied]).matches(&audited));
        assert!(verdicts(vec![VerdictFilter::Allowed]).matches(&record(Disposition::Allow, false)));
        assert!("a/b/c".parse::<PodPattern>().is_err());
        assert!("/x".parse::<PodPattern>().is_err());
    }

    #[test]
    fn flow_records_pass_the_same_flags() {
        let line = r#"{"connection":{"src_ip":"10.0.0.1","dest_ip":"10.0.0.2","src_port":40000,"dest_port":6379,"protocol":"tcp"},"src":{"pod_name":"rogue","namespace":"default"},"dest":{"pod_name":"redis-cart-abc","namespace":"shop"},"disposition":"deny","started":true,"ended":false,"start_time":"2026-11-22T10:00:00Z","end_time":"2026-11-22T10:00:05Z"}"#;
        let flow: FlowRecord = serde_json::from_str(line).unwrap();
        let yes = |f: Filter| assert!(f.matches(&flow), "{f:?}");
        let no = |f: Filter| assert!(!f.matches(&flow), "{f:?}");
        yes(Filter {
            from_pods: parse(&["rogue"]),
            to_pods: parse(&["shop/redis"]),
            namespaces: vec!["shop".into()],
            ports: vec![40000],
            protocols: vec![Protocol::Tcp],
            verdicts: vec![VerdictFilter::Denied],
            ..Default::default()
        });
        no(Filter {
            to_pods: parse(&["rogue"]),
            ..Default::default()
        });
        no(Filter {
            pods: parse(&["shop/cart"]),
            ..Default::default()
        });
        no(Filter {
            namespaces: vec!["kube-system".into()],
            ..Default::default()
        });
        no(Filter {
            ports: vec![80],
            ..Default::default()
        });
        no(Filter {
            protocols: vec![Protocol::Udp],
            ..Default::default()
        });
        no(Filter {
            verdicts: vec![VerdictFilter::Allowed],
            ..Default::default()
        });
        // A flow record does not tell audit mode.
        no(Filter {
            verdicts: vec![VerdictFilter::Audit],
            ..Default::default()
        });
    }
}

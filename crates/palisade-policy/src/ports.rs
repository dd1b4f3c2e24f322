//! Port specifications of NetworkPolicy rules: a protocol and a number, a range or a named port.

use k8s_openapi::api::networking::v1::NetworkPolicyPort;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use palisade_model::{validate, Protocol};

/// Which ports of a protocol a rule allows.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum PortMatch {
    /// Every port of the protocol (`port` omitted).
    Any,
    /// `port` or `[port, endPort]`, inclusive.
    Range(u16, u16),
    /// A named container port, resolved on the destination pod.
    Named(String),
}

/// One entry of a rule's `ports` list.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct PortSpec {
    /// Protocol (TCP when omitted).
    pub protocol: Protocol,
    /// The ports of that protocol.
    pub port: PortMatch,
}

impl PortSpec {
    /// Compiles a validated `NetworkPolicyPort`.
    pub fn compile(p: &NetworkPolicyPort) -> PortSpec {
        let protocol = validate::protocol(p.protocol.as_deref()).unwrap_or(Protocol::Tcp);
        let port = match &p.port {
            None => PortMatch::Any,
            Some(IntOrString::String(name)) => PortMatch::Named(name.clone()),
            Some(IntOrString::Int(n)) => {
                let lo = (*n).clamp(0, 65535) as u16;
                let hi = p.end_port.unwrap_or(*n).clamp(0, 65535) as u16;
                PortMatch::Range(lo, hi.max(lo))
            }
        };
        PortSpec { protocol, port }
    }

    /// True if this spec allows `port`/`protocol` when the named port (if any) resolves to
    /// `named` (the destination pod's port of that name and protocol; `None` if it has none).
    /// ICMP and other portless protocols never match a port spec.
    pub fn matches(&self, port: u16, protocol: Protocol, named: Option<u16>) -> bool {
        self.protocol == protocol
            && match &self.port {
                PortMatch::Any => true,
                PortMatch::Range(lo, hi) => (*lo..=*hi).contains(&port),
                PortMatch::Named(_) => named == Some(port),
            }
    }

    /// The name, for named port specs.
    pub fn name(&self) -> Option<&str> {
        match &self.port {
            PortMatch::Named(n) => Some(n),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn spec(v: serde_json::Value) -> PortSpec {
        PortSpec::compile(&serde_json::from_value(v).unwrap())
    }

    #[test]
    fn protocol_defaults_to_tcp_and_must_match() {
        let s = spec(json!({"port": 80}));
        assert!(s.matches(80, Protocol::Tcp, None));
        assert!(!s.matches(80, Protocol::Udp, None));
        assert!(!s.matches(81, Protocol::Tcp, None));
        assert!(!s.matches(80, Protocol::Sctp, None));
    }

    #[test]
    fn missing_port_means_every_port_of_the_protocol() {
        let s = spec(json!({"protocol": "UDP"}));
        assert!(s.matches(1, Protocol::Udp, None) && s.matches(65535, Protocol::Udp, None));
        assert!(!s.matches(53, Protocol::Tcp, None));
        assert_eq!(s.port, PortMatch::Any);
    }

    #[test]
    fn end_port_is_an_inclusive_range() {
        let s = spec(json!({"port": 80, "endPort": 82}));
        assert!(s.matches(80, Protocol::Tcp, None) && s.matches(82, Protocol::Tcp, None));
        assert!(!s.matches(83, Protocol::Tcp, None) && !s.matches(79, Protocol::Tcp, None));
        assert_eq!(s.port, PortMatch::Range(80, 82));
    }

    #[test]
    fn named_port_matches_what_it_resolves_to() {
        let s = spec(json!({"port": "http"}));
        assert!(s.matches(8080, Protocol::Tcp, Some(8080)));
        assert!(!s.matches(8080, Protocol::Tcp, Some(9090)));
        assert!(!s.matches(8080, Protocol::Tcp, None));
        assert_eq!(s.name(), Some("http"));
    }

    #[test]
    fn icmp_never_matches_a_port_spec() {
        assert!(!spec(json!({})).matches(0, Protocol::Icmp, None));
    }
}

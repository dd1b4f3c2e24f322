//! Probes: a destination port and protocol to evaluate every pod pair on.

use palisade_model::{ClusterState, PodId, Protocol};
use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

/// A destination port and protocol, written `80`, `80/TCP` or `53/udp`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Probe {
    /// Destination port.
    pub port: u16,
    /// Protocol.
    pub protocol: Protocol,
}

impl fmt::Display for Probe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.port, self.protocol)
    }
}

impl FromStr for Probe {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (port, protocol) = match s.split_once('/') {
            Some((p, proto)) => (p, proto.parse::<Protocol>()?),
            None => (s, Protocol::Tcp),
        };
        let port: u16 = port
            .parse()
            .ok()
            .filter(|p| *p > 0 || protocol == Protocol::Icmp)
            .ok_or_else(|| format!("invalid probe {s:?}: expected PORT[/PROTO] with PORT 1-65535, e.g. 80/TCP or 53/UDP"))?;
        Ok(Probe { port, protocol })
    }
}

/// Every distinct container (port, protocol) of `pods`, sorted by port then protocol.
pub fn default_probes(state: &ClusterState, pods: &[PodId]) -> Vec<Probe> {
    let set: BTreeSet<Probe> = pods
        .iter()
        .flat_map(|&i| state.pods[i].ports.iter())
        .map(|p| Probe {
            port: p.port,
            protocol: p.protocol,
        })
        .collect();
    set.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_port_and_protocol() {
        assert_eq!(
            "80".parse::<Probe>().unwrap(),
            Probe {
                port: 80,
                protocol: Protocol::Tcp
            }
        );
        assert_eq!(
            "53/udp".parse::<Probe>().unwrap(),
            Probe {
                port: 53,
                protocol: Protocol::Udp
            }
        );
        assert_eq!("80/SCTP".parse::<Probe>().unwrap().protocol, Protocol::Sctp);
        assert!("0/TCP".parse::<Probe>().is_err());
        assert!("70000".parse::<Probe>().is_err());
        assert!("80/XTP".parse::<Probe>().is_err());
        assert_eq!("80/TCP".parse::<Probe>().unwrap().to_string(), "80/TCP");
    }
}

//! Services in the lab: a ClusterIP per Service (from the manifest, or allocated from 10.96.0.0/16)
//! and DNAT in the node namespace to the pods its selector matches, `port` → `targetPort` (numeric or
//! named), so a connection to a Service is policed on the backend pod's IP and port.

use crate::topology::Lab;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use palisade_model::{ClusterState, PodInfo, Protocol};
use std::collections::HashSet;
use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr};

/// One Service port and its backends.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServicePortPlan {
    /// Protocol.
    pub protocol: Protocol,
    /// The Service port.
    pub port: u16,
    /// Backend pod IP and target port.
    pub backends: Vec<(IpAddr, u16)>,
}

/// A Service as the lab installs it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServicePlan {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// ClusterIP.
    pub cluster_ip: Ipv4Addr,
    /// Ports with their backends.
    pub ports: Vec<ServicePortPlan>,
}

impl Lab {
    /// Plans every selector Service of `state` whose ClusterIP is IPv4 or absent, to the backends'
    /// addresses in this lab (a lab of several nodes may have given a pod another).
    pub fn plan_services(&self, state: &ClusterState) -> Vec<ServicePlan> {
        plan_services(state, |pod| Some(self.pod(&pod.key())?.ip))
    }
}

/// Plans every selector Service of `state` whose ClusterIP is IPv4 or absent, each pod reached at
/// `address`.
fn plan_services(
    state: &ClusterState,
    address: impl Fn(&PodInfo) -> Option<IpAddr>,
) -> Vec<ServicePlan> {
    let mut used: HashSet<Ipv4Addr> = state
        .services
        .iter()
        .filter_map(|s| s.cluster_ip.as_deref()?.parse().ok())
        .collect();
    let mut out = Vec::new();
    for svc in &state.services {
        let Some(selector) = svc.selector.as_ref().filter(|s| !s.is_empty()) else {
            continue;
        };
        let cluster_ip = match svc.cluster_ip.as_deref() {
            Some("None") => continue, // headless
            Some(ip) => match ip.parse::<Ipv4Addr>() {
                Ok(ip) => ip,
                Err(_) => continue,
            },
            None => {
                // Stable: hash of ns/name into 10.96.0.0/16, probing past addresses in use.
                let h = fnv(&format!("{}/{}", svc.namespace, svc.name));
                let ip = (0..65_000u32)
                    .map(|i| Ipv4Addr::from(0x0a60_0000 + 10 + ((h + i) % 65_000)))
                    .find(|ip| !used.contains(ip))
                    .expect("10.96.0.0/16 has room");
                used.insert(ip);
                ip
            }
        };
        let pods: Vec<_> = state
            .pods
            .iter()
            .filter(|p| {
                p.namespace == svc.namespace
                    && !p.host_network
                    && selector.iter().all(|(k, v)| p.labels.get(k) == Some(v))
            })
            .collect();
        let ports = svc
            .ports
            .iter()
            .map(|sp| ServicePortPlan {
                protocol: sp.protocol,
                port: sp.port,
                backends: pods
                    .iter()
                    .filter_map(|p| {
                        let target = match &sp.target_port {
                            IntOrString::Int(n) => u16::try_from(*n).ok(),
                            IntOrString::String(name) => p.named_port(name, sp.protocol),
                        };
                        // The lab's ClusterIPs are IPv4: IPv6 pods are reached on their own address.
                        Some((address(p).filter(IpAddr::is_ipv4)?, target?))
                    })
                    .collect(),
            })
            .collect();
        out.push(ServicePlan {
            namespace: svc.namespace.clone(),
            name: svc.name.clone(),
            cluster_ip,
            ports,
        });
    }
    out
}

fn fnv(s: &str) -> u32 {
    s.bytes().fold(0x811c9dc5u32, |h, b| {
        (h ^ b as u32).wrapping_mul(0x0100_0193)
    })
}

/// The `ip palisade_lab` table: DNAT of every Service port to its backends, round robin.
pub fn render_services(services: &[ServicePlan]) -> String {
    let mut rules = String::new();
    for s in services {
        for p in &s.ports {
            let proto = p.protocol.as_str().to_ascii_lowercase();
            let target = match p.backends.as_slice() {
                [] => continue,
                [(ip, port)] => format!("dnat ip to {ip}:{port}"),
                many => {
                    let elements: Vec<String> = many
                        .iter()
                        .enumerate()
                        .map(|(i, (ip, port))| format!("{i} : {ip} . {port}"))
                        .collect();
                    format!(
                        "dnat ip to numgen inc mod {} map {{ {} }}",
                        many.len(),
                        elements.join(", ")
                    )
                }
            };
            let _ = writeln!(
                rules,
                "    ip daddr {} meta l4proto {proto} th dport {} {target} comment \"{}/{}\"",
                s.cluster_ip, p.port, s.namespace, s.name
            );
        }
    }
    format!(
        "table ip palisade_lab\ndelete table ip palisade_lab\ntable ip palisade_lab {{\n  chain prerouting {{\n    type nat hook prerouting priority dstnat; policy accept;\n{rules}  }}\n}}\n"
    )
}

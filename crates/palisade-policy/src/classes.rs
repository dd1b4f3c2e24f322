//! Endpoint equivalence classes: pods with the same namespace, labels, named ports, host-network flag
//! and ipBlock membership are indistinguishable to every policy, so selection, matrices and
//! compilation work on classes and expand to pods only for output.

use crate::bitset::BitSet;
use crate::policy::IpBlock;
use crate::selector::LabelSet;
use foldhash::{HashMap, HashMapExt};
use ipnet::IpNet;
use palisade_model::{ClusterState, Protocol};
use std::net::IpAddr;

/// A named container port: `(name, protocol, number)`.
pub type NamedPort = (String, Protocol, u16);

/// A set of pods that every policy treats alike.
#[derive(Clone, Debug)]
pub struct Class {
    /// Namespace index.
    pub namespace: usize,
    /// Interned pod labels.
    pub labels: LabelSet,
    /// Named ports, sorted.
    pub named_ports: Vec<NamedPort>,
    /// `hostNetwork` pods are never selected, and are peers only through ipBlocks.
    pub host_network: bool,
    /// Which of the engine's distinct ipBlocks contain the pods' IP.
    pub blocks: BitSet,
    /// Member pods (indexes into `ClusterState::pods`), in state order.
    pub pods: Vec<usize>,
}

impl Class {
    /// The port `name` resolves to for `protocol` on this class's pods.
    pub fn named_port(&self, name: &str, protocol: Protocol) -> Option<u16> {
        self.named_ports
            .iter()
            .find(|(n, p, _)| n == name && *p == protocol)
            .map(|(_, _, port)| *port)
    }
}

/// The partition of all pods into classes.
#[derive(Clone, Debug, Default)]
pub struct Classes {
    /// The classes, in order of their first pod.
    pub list: Vec<Class>,
    /// Pod index → class index.
    pub of_pod: Vec<usize>,
    /// Namespace index → its classes.
    pub by_namespace: Vec<Vec<usize>>,
}

impl Classes {
    /// Partitions the pods of `state`, whose interned labels are `pod_labels` (in pod order).
    pub fn build(state: &ClusterState, pod_labels: Vec<LabelSet>, blocks: &[IpBlock]) -> Classes {
        type Key = (usize, LabelSet, Vec<NamedPort>, bool, BitSet);
        let mut index: HashMap<Key, usize> = HashMap::new();
        let mut classes = Classes {
            list: Vec::new(),
            of_pod: Vec::with_capacity(state.pods.len()),
            by_namespace: vec![Vec::new(); state.namespaces.len()],
        };
        // Only blocks that overlap the pods' address range can hold a pod.
        let span = address_span(state);
        let candidates: Vec<(usize, &IpBlock)> = blocks
            .iter()
            .enumerate()
            .filter(|(_, b)| {
                span.iter()
                    .any(|&(first, last)| overlaps(&b.cidr, first, last))
            })
            .collect();
        for ((pi, pod), labels) in state.pods.iter().enumerate().zip(pod_labels) {
            let namespace = state
                .namespace_idx(&pod.namespace)
                .expect("every pod's namespace exists in the state");
            let mut named_ports: Vec<NamedPort> = pod
                .ports
                .iter()
                .filter_map(|p| p.name.clone().map(|n| (n, p.protocol, p.port)))
                .collect();
            named_ports.sort();
            let mut sig = BitSet::new(blocks.len());
            if let Some(ip) = pod.ip {
                for &(bi, b) in &candidates {
                    if b.contains(ip) {
                        sig.insert(bi);
                    }
                }
            }
            let key = (namespace, labels, named_ports, pod.host_network, sig);
            let ci = match index.get(&key) {
                Some(&ci) => ci,
                None => {
                    let ci = classes.list.len();
                    let (namespace, labels, named_ports, host_network, blocks) = key.clone();
                    classes.list.push(Class {
                        namespace,
                        labels,
                        named_ports,
                        host_network,
                        blocks,
                        pods: Vec::new(),
                    });
                    classes.by_namespace[namespace].push(ci);
                    index.insert(key, ci);
                    ci
                }
            };
            classes.list[ci].pods.push(pi);
            classes.of_pod.push(ci);
        }
        classes
    }
}

/// The lowest and highest pod address of each family (IPv4, IPv6), where there is one.
fn address_span(state: &ClusterState) -> Vec<(IpAddr, IpAddr)> {
    let mut spans: [Option<(IpAddr, IpAddr)>; 2] = [None, None];
    for ip in state.pods.iter().filter_map(|p| p.ip) {
        let span = &mut spans[usize::from(ip.is_ipv6())];
        *span = Some(span.map_or((ip, ip), |(lo, hi)| (lo.min(ip), hi.max(ip))));
    }
    spans.into_iter().flatten().collect()
}

/// True if `net` holds an address of `first..=last` (same family).
fn overlaps(net: &IpNet, first: IpAddr, last: IpAddr) -> bool {
    first.is_ipv6() == net.network().is_ipv6() && net.network() <= last && first <= net.broadcast()
}

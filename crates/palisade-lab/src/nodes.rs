//! Several nodes in one lab (`lab up --nodes N`): which node each pod is on, the pod CIDR of each,
//! and the fabric that joins them.
//!
//! Layout of a lab `L` of N > 1 nodes: nodes `node-0` … `node-<N-1>` (the names `spec.nodeName` and
//! the agents' `--node-name` use), namespaces `pal-L-node-<i>`; a namespace `pal-L-fabric` holding a
//! bridge, and a veth per node (`n<i>` on the bridge, `fabric` in the node, with 169.254.100.<i+1>
//! and fe80::a:<i+1>). Node `i`'s pod CIDR is 10.244.<16i>.0/20; each node routes every other
//! node's CIDR through the fabric, and a /32 (/128) for each of its pods whose address, given by the
//! manifests, lies outside it. A single-node lab keeps its one namespace `pal-L-node` and no fabric.

use crate::error::LabError;
use crate::process::RecordedProcess;
use crate::topology::{lab_pods, run, Lab, LabPod};
use ipnet::{IpNet, Ipv4Net};
use palisade_model::{PodInfo, PodKey};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeSet, HashSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Most nodes a lab may have: each takes a /20 of 10.244.0.0/16.
pub const MAX_NODES: usize = 16;

/// The first addresses of a node's CIDR are left out, as the loader leaves them out of its pod CIDR.
const FIRST_HOST: u32 = 10;

type Result<T> = std::result::Result<T, LabError>;

/// One node of a lab.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LabNode {
    /// Its name, as pods' `spec.nodeName` and its agent's `--node-name` give it.
    pub name: String,
    /// Its network namespace, where its agent enforces.
    pub netns: String,
    /// Its pod CIDR (none for the one node of a single-node lab).
    pub pod_cidr: Option<Ipv4Net>,
    /// Its agent, once started (also in [`Lab::processes`], which `down` stops).
    pub agent: Option<RecordedProcess>,
}

impl LabNode {
    /// The one node of a single-node lab, named after its namespace (as its records are).
    pub(crate) fn single(netns: &str) -> LabNode {
        LabNode {
            name: netns.to_string(),
            netns: netns.to_string(),
            pod_cidr: None,
            agent: None,
        }
    }

    /// Node `i` of lab `lab`, one of several.
    fn nth(lab: &str, i: usize) -> LabNode {
        let name = format!("node-{i}");
        let base = Ipv4Addr::new(10, 244, (16 * i) as u8, 0);
        LabNode {
            netns: format!("pal-{lab}-{name}"),
            name,
            pod_cidr: Some(Ipv4Net::new(base, 20).expect("a /20")),
            agent: None,
        }
    }
}

/// The fabric's namespace of lab `lab`.
fn fabric_netns(lab: &str) -> String {
    format!("pal-{lab}-fabric")
}

/// Node `i`'s addresses on the fabric.
fn fabric_addresses(i: usize) -> (Ipv4Addr, Ipv6Addr) {
    let host = i as u8 + 1;
    (
        Ipv4Addr::new(169, 254, 100, host),
        Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0xa, host.into()),
    )
}

impl Lab {
    /// Plans a lab of `nodes` nodes (1 ..= [`MAX_NODES`]) for the pods [`Lab::plan`] takes: each
    /// pod goes to the node its `spec.nodeName` names, the others round-robin in pod order; a pod
    /// whose address was allocated (its manifest gives none) gets one in its node's CIDR instead.
    /// One node is [`Lab::plan`]'s lab, whatever the pods' `spec.nodeName`.
    pub fn plan_nodes(
        name: &str,
        state: &palisade_model::ClusterState,
        nodes: usize,
    ) -> Result<Lab> {
        if !(1..=MAX_NODES).contains(&nodes) {
            return Err(LabError::Nodes { nodes });
        }
        let mut lab = Lab::plan(name, state);
        if nodes == 1 {
            return Ok(lab);
        }
        lab.nodes = (0..nodes).map(|i| LabNode::nth(name, i)).collect();
        lab.node = lab.nodes[0].netns.clone();
        let infos: Vec<&PodInfo> = lab_pods(state).map(|(p, _)| p).collect();
        let placement = place(name, &lab.nodes, &infos)?;
        for (pod, node) in lab.pods.iter_mut().zip(placement) {
            pod.node = node;
        }
        // Every address a manifest gives, the lab's pods' or not, is the loader's before a pin.
        let given: HashSet<IpAddr> = (state.pods.iter())
            .filter(|p| !p.ip_allocated)
            .filter_map(|p| p.ip)
            .collect();
        let allocated: Vec<bool> = infos.iter().map(|p| p.ip_allocated).collect();
        readdress(&mut lab.pods, &allocated, &lab.nodes, &given)?;
        Ok(lab)
    }

    /// The pods lab node `node` holds, for its agent's enforcement; `None` (every pod) in a
    /// single-node lab, or for no node. A name that is not one of the lab's nodes is an error.
    pub fn placed_on(&self, node: Option<&str>) -> Result<Option<BTreeSet<PodKey>>> {
        let Some(node) = node.filter(|_| self.nodes.len() > 1) else {
            return Ok(None);
        };
        let i = self.node_index(node).ok_or_else(|| LabError::NoNode {
            node: node.to_string(),
            lab: self.name.clone(),
            nodes: self.node_names(),
        })?;
        let pods = self.pods.iter().filter(|p| p.node == i);
        Ok(Some(pods.map(|p| p.key.clone()).collect()))
    }

    fn node_index(&self, name: &str) -> Option<usize> {
        self.nodes.iter().position(|n| n.name == name)
    }

    /// The nodes' names, for messages.
    fn node_names(&self) -> String {
        let names: Vec<&str> = self.nodes.iter().map(|n| n.name.as_str()).collect();
        names.join(", ")
    }

    /// The node pod `pod` is on (none only in a state file edited by hand).
    pub fn node_of(&self, pod: &LabPod) -> Option<&LabNode> {
        self.nodes.get(pod.node)
    }

    /// The fabric: a bridge in its own namespace, a veth from it to each node with the node's
    /// fabric addresses, and in each node a route to every other node's pods.
    pub(crate) fn build_fabric(&self) -> Result<()> {
        let fabric = fabric_netns(&self.name);
        let ip = |ns: &str, args: &[&str]| run(&[&["ip", "-n", ns][..], args].concat());
        run(&["ip", "netns", "add", &fabric])?;
        ip(&fabric, &["link", "add", "br0", "type", "bridge"])?;
        ip(&fabric, &["link", "set", "br0", "up"])?;
        for (i, node) in self.nodes.iter().enumerate() {
            let (port, ns) = (format!("n{i}"), node.netns.as_str());
            ip(
                &fabric,
                &[
                    "link", "add", &port, "type", "veth", "peer", "name", "fabric", "netns", ns,
                ],
            )?;
            ip(&fabric, &["link", "set", &port, "master", "br0", "up"])?;
            let (v4, v6) = fabric_addresses(i);
            ip(ns, &["addr", "add", &format!("{v4}/24"), "dev", "fabric"])?;
            ip(
                ns,
                &["addr", "add", &format!("{v6}/64"), "dev", "fabric", "nodad"],
            )?;
            ip(ns, &["link", "set", "fabric", "up"])?;
        }
        for (i, node) in self.nodes.iter().enumerate() {
            for route in self.remote_routes(i) {
                let args: Vec<&str> = ["route", "add"]
                    .into_iter()
                    .chain(route.split(' '))
                    .collect();
                ip(&node.netns, &args)?;
            }
        }
        Ok(())
    }

    /// Node `i`'s routes (`ip route add` arguments) to the other nodes' pods: their CIDRs, and
    /// each of their pods outside its node's CIDR.
    fn remote_routes(&self, i: usize) -> Vec<String> {
        let via = |node: usize, to: String, v6: bool| {
            let (gateway4, gateway6) = fabric_addresses(node);
            let gateway = if v6 {
                gateway6.to_string()
            } else {
                gateway4.to_string()
            };
            format!("{to} via {gateway} dev fabric")
        };
        let cidrs = (self.nodes.iter().enumerate())
            .filter(|&(j, _)| j != i)
            .filter_map(|(j, n)| Some(via(j, n.pod_cidr?.to_string(), false)));
        let strays = (self.pods.iter())
            .filter(|p| p.node != i && !self.in_cidr(p))
            .map(|p| {
                let host = IpNet::from(p.ip);
                via(p.node, host.to_string(), p.ip.is_ipv6())
            });
        cidrs.chain(strays).collect()
    }

    /// True when `pod`'s address lies in its node's CIDR.
    fn in_cidr(&self, pod: &LabPod) -> bool {
        match (self.node_of(pod).and_then(|n| n.pod_cidr), pod.ip) {
            (Some(cidr), IpAddr::V4(ip)) => cidr.contains(&ip),
            _ => false,
        }
    }
}

/// The node (index into `nodes`) of each pod: the one its `spec.nodeName` names, else the next in
/// turn over the pods that name none. A `spec.nodeName` naming no node of the lab is an error.
fn place(lab: &str, nodes: &[LabNode], pods: &[&PodInfo]) -> Result<Vec<usize>> {
    let mut turn = 0;
    pods.iter()
        .map(|p| match &p.node_name {
            Some(name) => {
                nodes
                    .iter()
                    .position(|n| n.name == *name)
                    .ok_or_else(|| LabError::UnknownNode {
                        origin: p.origin.to_string(),
                        pod: p.key().to_string(),
                        node: name.clone(),
                        lab: lab.to_string(),
                        last: nodes.len() - 1,
                    })
            }
            None => {
                turn += 1;
                Ok((turn - 1) % nodes.len())
            }
        })
        .collect()
}

/// Gives each pod whose address was allocated (`allocated`, in pod order) and is IPv4 the next
/// address of its node's CIDR that no manifest gives (`given`); given addresses are kept.
fn readdress(
    pods: &mut [LabPod],
    allocated: &[bool],
    nodes: &[LabNode],
    given: &HashSet<IpAddr>,
) -> Result<()> {
    let mut next: Vec<u32> = vec![FIRST_HOST; nodes.len()];
    for (pod, _) in pods
        .iter_mut()
        .zip(allocated)
        .filter(|(p, a)| **a && p.ip.is_ipv4())
    {
        let node = &nodes[pod.node];
        let cidr = node.pod_cidr.expect("a node of several has a CIDR");
        let base = u32::from(cidr.network());
        let last = u32::from(cidr.broadcast()) - base;
        let free = (next[pod.node]..last)
            .map(|offset| IpAddr::V4(Ipv4Addr::from(base + offset)))
            .position(|ip| !given.contains(&ip));
        let Some(skip) = free else {
            return Err(LabError::NodeFull {
                node: node.name.clone(),
                cidr,
            });
        };
        let offset = next[pod.node] + skip as u32;
        pod.ip = IpAddr::V4(Ipv4Addr::from(base + offset));
        next[pod.node] = offset + 1;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use palisade_model::Loader;

    fn state(yaml: &str) -> palisade_model::ClusterState {
        let mut loader = Loader::new();
        loader.load_str("pods.yaml", yaml);
        loader.finish().0
    }

    /// Pod `n/name`, with `spec.nodeName` and `status.podIP` when given.
    fn pod(name: &str, node: Option<&str>, ip: Option<&str>) -> String {
        let node = node.map(|n| format!(", nodeName: {n}")).unwrap_or_default();
        let status = ip
            .map(|ip| format!("status: {{podIP: {ip}}}\n"))
            .unwrap_or_default();
        format!(
            "---\napiVersion: v1\nkind: Pod\nmetadata: {{name: {name}, namespace: n}}\n\
             spec: {{containers: [{{name: c, image: i}}]{node}}}\n{status}"
        )
    }

    #[test]
    fn pods_go_round_robin_or_to_the_node_they_name_and_get_addresses_of_its_cidr() {
        let yaml = [
            pod("a", None, None),
            pod("b", Some("node-0"), None),
            pod("c", None, None),
            pod("d", None, None),
            pod("e", None, Some("10.244.16.10")),
        ]
        .concat();
        let lab = Lab::plan_nodes("t", &state(&yaml), 3).unwrap();
        let on: Vec<(&str, &str, String)> = (lab.pods.iter())
            .map(|p| {
                (
                    p.key.name.as_str(),
                    lab.node_of(p).unwrap().name.as_str(),
                    p.ip.to_string(),
                )
            })
            .collect();
        assert_eq!(
            on,
            [
                ("a", "node-0", "10.244.0.10".to_string()),
                ("b", "node-0", "10.244.0.11".to_string()),
                ("c", "node-1", "10.244.16.11".to_string()), // .10 is e's, from its manifest
                ("d", "node-2", "10.244.32.10".to_string()),
                ("e", "node-0", "10.244.16.10".to_string()),
            ]
        );
        assert_eq!(lab.node, "pal-t-node-0");
        // e lives on node-0 with an address of node-1's CIDR: routed on its own, to node-0.
        let routes = |i| lab.remote_routes(i);
        assert_eq!(
            routes(1),
            [
                "10.244.0.0/20 via 169.254.100.1 dev fabric",
                "10.244.32.0/20 via 169.254.100.3 dev fabric",
                "10.244.16.10/32 via 169.254.100.1 dev fabric",
            ]
        );
        assert_eq!(routes(0).len(), 2, "{:?}", routes(0));
        let placed = lab.placed_on(Some("node-1")).unwrap().unwrap();
        assert_eq!(
            placed.into_iter().collect::<Vec<_>>(),
            [PodKey::new("n", "c")]
        );
        assert_eq!(lab.placed_on(None).unwrap(), None);
        let err = lab.placed_on(Some("node-7")).unwrap_err().to_string();
        assert_eq!(
            err,
            "lab t has no node \"node-7\"; its nodes are node-0, node-1, node-2"
        );
    }

    #[test]
    fn a_node_name_of_no_lab_node_is_an_error_except_in_a_single_node_lab() {
        let yaml = [pod("a", None, None), pod("b", Some("worker-1"), None)].concat();
        let err = Lab::plan_nodes("t", &state(&yaml), 2)
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "pods.yaml:7: Pod n/b: spec.nodeName \"worker-1\" is not a node of lab t: name one of node-0 .. node-1, or none to place it round-robin"
        );
        let single = Lab::plan_nodes("t", &state(&yaml), 1).unwrap();
        assert_eq!(single.nodes.len(), 1);
        assert_eq!(single.placed_on(Some("pal-t-node")).unwrap(), None);
        for bad in [0, MAX_NODES + 1] {
            let err = Lab::plan_nodes("t", &state(&yaml), bad).unwrap_err();
            assert_eq!(
                err.to_string(),
                format!("a lab has 1 to 16 nodes, not {bad}")
            );
        }
    }
}

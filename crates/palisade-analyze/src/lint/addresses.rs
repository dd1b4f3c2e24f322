//! Addresses: ipBlocks that cover pod or Service addresses (`ipblock-covers-pods`: whether an
//! ipBlock matches pod traffic, or Service traffic before or after translation, differs between
//! network plugins), and namespaces left open while others are isolated
//! (`namespace-not-isolated`).

use super::index::{rules, Index};
use super::{peer_field, plural, some_of, Finding, Rule};
use ipnet::IpNet;
use palisade_model::{IpBlock, Kind, ObjectKey, PodId, PolicyPeer};
use std::net::IpAddr;

pub(super) fn check(ix: &Index, out: &mut Vec<Finding>) {
    ip_blocks(ix, out);
    open_namespaces(ix, out);
}

/// `ipblock-covers-pods`, per ipBlock peer: the pods (not `hostNetwork`: theirs is the node's
/// address) and Service cluster IPs it holds.
fn ip_blocks(ix: &Index, out: &mut Vec<Finding>) {
    let mut pods: Vec<(IpAddr, PodId)> = (ix.state.pods.iter_enumerated())
        .filter(|(_, p)| !p.host_network)
        .filter_map(|(i, p)| Some((p.ip?, i)))
        .collect();
    pods.sort_unstable();
    let services: Vec<(IpAddr, usize)> = (ix.state.services.iter().enumerate())
        .filter_map(|(i, s)| Some((s.cluster_ip.as_deref()?.parse().ok()?, i)))
        .collect();
    for policy in &ix.state.policies {
        for (direction, ri, rule) in rules(policy.policy.spec()) {
            for (j, peer) in rule.peers.iter().flatten().enumerate() {
                let PolicyPeer::IpBlock(block) = peer else {
                    continue;
                };
                let (first, last) = (block.cidr.network(), block.cidr.broadcast());
                let lo = pods.partition_point(|(ip, _)| *ip < first);
                let hi = pods.partition_point(|(ip, _)| *ip <= last);
                let held: Vec<(IpAddr, String)> = (pods[lo..hi].iter())
                    .filter(|(ip, _)| block.contains(*ip))
                    .map(|&(ip, i)| (ip, ix.state.pods[i].key().to_string()))
                    .collect();
                let vips: Vec<(IpAddr, String)> = (services.iter())
                    .filter(|(ip, _)| block.contains(*ip))
                    .map(|&(ip, i)| {
                        let s = &ix.state.services[i];
                        (ip, format!("{}/{}", s.namespace, s.name))
                    })
                    .collect();
                if held.is_empty() && vips.is_empty() {
                    continue;
                }
                let mut what = Vec::new();
                if !held.is_empty() {
                    let e = held.iter().map(|(ip, name)| format!("{name} {ip}"));
                    what.push(format!(
                        "the addresses of {} ({})",
                        plural(held.len(), "pod"),
                        some_of(e, 2)
                    ));
                }
                if !vips.is_empty() {
                    let e = vips.iter().map(|(ip, name)| format!("{name} {ip}"));
                    what.push(format!(
                        "the clusterIP of {} ({})",
                        plural(vips.len(), "Service"),
                        some_of(e, 2)
                    ));
                }
                let pods_at: Vec<IpAddr> = held.iter().map(|(ip, _)| *ip).collect();
                let vips_at: Vec<IpAddr> = vips.iter().map(|(ip, _)| *ip).collect();
                out.push(Finding::policy(
                    Rule::IpBlockCoversPods,
                    policy,
                    Some(format!("{}.ipBlock.cidr", peer_field(direction, ri, j))),
                    format!(
                        "ipBlock {} holds {}: whether an ipBlock matches traffic between pods, and traffic to a \
                         Service before or after its address is translated, differs between network plugins, so \
                         this peer may allow more or less than it seems",
                        block.cidr,
                        what.join(" and ")
                    ),
                    fix(block, &[&pods_at, &vips_at]),
                ));
            }
        }
    }
}

/// Carve the pods' and the Services' addresses out of `block` (each group as the smallest network
/// holding it), and select pods by label.
fn fix(block: &IpBlock, groups: &[&[IpAddr]]) -> String {
    let nets: Option<Vec<String>> = (groups.iter().filter(|g| !g.is_empty()))
        .map(|g| {
            cover(g)
                .filter(|net| net.prefix_len() > block.cidr.prefix_len())
                .map(|net| net.to_string())
        })
        .collect();
    match nets {
        Some(nets) => format!(
            "add `except: [{}]` (the cluster addresses it holds) and reach pods with podSelector or \
             namespaceSelector peers instead",
            nets.join(", ")
        ),
        None => "replace this ipBlock with podSelector / namespaceSelector peers for the pods it means".into(),
    }
}

/// The smallest network holding every address of `addresses` (of one family).
fn cover(addresses: &[IpAddr]) -> Option<IpNet> {
    let (&min, &max) = (addresses.iter().min()?, addresses.iter().max()?);
    let prefix = match (min, max) {
        (IpAddr::V4(a), IpAddr::V4(b)) => (u32::from(a) ^ u32::from(b)).leading_zeros() as u8,
        (IpAddr::V6(a), IpAddr::V6(b)) => (u128::from(a) ^ u128::from(b)).leading_zeros() as u8,
        _ => return None,
    };
    IpNet::new(min, prefix).ok().map(|n| n.trunc())
}

/// `namespace-not-isolated`: namespaces with pods none of which is isolated for ingress, while
/// other namespaces have isolated pods.
fn open_namespaces(ix: &Index, out: &mut Vec<Finding>) {
    let isolated =
        |ns: &[palisade_policy::ClassId]| ns.iter().any(|&c| !ix.selecting[c].ingress.is_empty());
    let closed = ix
        .by_namespace
        .iter()
        .filter(|classes| isolated(classes))
        .count();
    if closed == 0 {
        return;
    }
    for (id, classes) in ix.by_namespace.iter_enumerated() {
        if classes.is_empty() || isolated(classes) {
            continue;
        }
        let ns = &ix.state.namespaces[id];
        out.push(Finding {
            rule: Rule::NamespaceNotIsolated,
            object: ObjectKey::new(Kind::Namespace, None, &ns.name).into(),
            origin: ns.origin.clone(),
            field: None,
            message: format!(
                "no pod of this namespace (of {}) is isolated for ingress, while {} {} theirs: every pod \
                 can connect to them",
                ix.pods_in(classes.iter().copied()),
                plural(closed, "other namespace"),
                if closed == 1 { "isolates" } else { "isolate" }
            ),
            fix: format!(
                "add a default deny, then allow what they need: `{{apiVersion: networking.k8s.io/v1, kind: NetworkPolicy, \
                 metadata: {{name: default-deny-ingress, namespace: {}}}, spec: {{podSelector: {{}}, policyTypes: [Ingress]}}}}`",
                ns.name
            ),
        });
    }
}

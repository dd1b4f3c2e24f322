//! Addresses: ipBlocks that cover pod or Service addresses (`ipblock-covers-pods`: whether an
//! ipBlock matches pod traffic, or Service traffic before or after translation, differs between
//! network plugins), and namespaces left open while others are isolated
//! (`namespace-not-isolated`).

use super::index::{rules, Index};
use super::{peer_field, plural, Finding, Rule};
use ipnet::IpNet;
use palisade_model::{IpBlock, Kind, ObjectKey, PodId, PolicyPeer};
use std::net::IpAddr;

pub(super) fn check(ix: &Index, out: &mut Vec<Finding>) {
    ip_blocks(ix, out);
    open_namespaces(ix, out);
}

/// The addresses of one kind an ipBlock holds: how many, the first two (named), the lowest and
/// the highest.
#[derive(Default)]
struct Held {
    count: usize,
    examples: Vec<String>,
    span: Option<(IpAddr, IpAddr)>,
}

impl Held {
    /// The addresses of `sorted` (with what they are) in `block`.
    fn find<T: Copy>(sorted: &[(IpAddr, T)], block: &IpBlock, name: impl Fn(T) -> String) -> Held {
        let lo = sorted.partition_point(|(ip, _)| *ip < block.cidr.network());
        let hi = sorted.partition_point(|(ip, _)| *ip <= block.cidr.broadcast());
        let mut held = Held::default();
        for &(ip, what) in sorted[lo..hi].iter().filter(|(ip, _)| block.contains(*ip)) {
            if held.examples.len() < 2 {
                held.examples.push(format!("{} {ip}", name(what)));
            }
            held.count += 1;
            held.span = Some((held.span.map_or(ip, |s| s.0), ip));
        }
        held
    }

    /// `the addresses of 3 pods (a 10.0.0.1, b 10.0.0.2 and 1 more)`.
    fn describe(&self, what: &str, thing: &str) -> Option<String> {
        let more = match self.count.saturating_sub(self.examples.len()) {
            0 => String::new(),
            n => format!(" and {n} more"),
        };
        (self.count > 0).then(|| {
            let examples = self.examples.join(", ");
            format!("{what} {} ({examples}{more})", plural(self.count, thing))
        })
    }
}

/// `ipblock-covers-pods`, per ipBlock peer: the pods (not `hostNetwork`: theirs is the node's
/// address; not those whose address the loader allocated: the cluster may give them another) and
/// Service cluster IPs it holds.
fn ip_blocks(ix: &Index, out: &mut Vec<Finding>) {
    let mut pods: Vec<(IpAddr, PodId)> = (ix.state.pods.iter_enumerated())
        .filter(|(_, p)| !p.host_network && !p.ip_allocated)
        .filter_map(|(i, p)| Some((p.ip?, i)))
        .collect();
    pods.sort_unstable();
    let mut services: Vec<(IpAddr, usize)> = (ix.state.services.iter().enumerate())
        .filter_map(|(i, s)| Some((s.address()?, i)))
        .collect();
    services.sort_unstable();
    for policy in &ix.state.policies {
        for (direction, ri, rule) in rules(policy.policy.spec()) {
            for (j, peer) in rule.peers.iter().flatten().enumerate() {
                let PolicyPeer::IpBlock(block) = peer else {
                    continue;
                };
                let held = Held::find(&pods, block, |i| ix.state.pods[i].key().to_string());
                let vips = Held::find(&services, block, |i| {
                    let s = &ix.state.services[i];
                    format!("{}/{}", s.namespace, s.name)
                });
                let what: Vec<String> = [
                    held.describe("the addresses of", "pod"),
                    vips.describe("the clusterIP of", "Service"),
                ]
                .into_iter()
                .flatten()
                .collect();
                if what.is_empty() {
                    continue;
                }
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
                    fix(block, &[held.span, vips.span]),
                ));
            }
        }
    }
}

/// Carve the pods' and the Services' addresses out of `block` (each group's span as the smallest
/// network holding it), and select pods by label.
fn fix(block: &IpBlock, spans: &[Option<(IpAddr, IpAddr)>]) -> String {
    let nets: Option<Vec<String>> = (spans.iter().flatten())
        .map(|&(first, last)| {
            cover(first, last)
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

/// The smallest network holding `first` to `last` (of one family).
fn cover(first: IpAddr, last: IpAddr) -> Option<IpNet> {
    let prefix = match (first, last) {
        (IpAddr::V4(a), IpAddr::V4(b)) => (u32::from(a) ^ u32::from(b)).leading_zeros() as u8,
        (IpAddr::V6(a), IpAddr::V6(b)) => (u128::from(a) ^ u128::from(b)).leading_zeros() as u8,
        _ => return None,
    };
    IpNet::new(first, prefix).ok().map(|n| n.trunc())
}

/// The system namespaces left out of `namespace-not-isolated`: the default deny it suggests would
/// cut off what runs there (the cluster DNS in `kube-system`).
const SYSTEM_NAMESPACES: [&str; 3] = ["kube-system", "kube-public", "kube-node-lease"];

/// `namespace-not-isolated`: namespaces with pods none of which is isolated for ingress, while
/// other namespaces have isolated pods (system namespaces are not reported).
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
        let ns = &ix.state.namespaces[id];
        if classes.is_empty() || isolated(classes) || SYSTEM_NAMESPACES.contains(&ns.name.as_str())
        {
            continue;
        }
        out.push(Finding {
            rule: Rule::NamespaceNotIsolated,
            severity: Rule::NamespaceNotIsolated.severity(),
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

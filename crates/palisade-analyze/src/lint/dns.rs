//! `egress-without-dns`: pods isolated for egress whose policies let no query reach the cluster
//! DNS on UDP 53 and TCP 53 (TCP for answers too large for UDP). Where the input holds the DNS pods
//! (the pods of Service `kube-system/kube-dns`, or pods labelled `k8s-app: kube-dns` there), the
//! check is what the dataplane enforces toward them or the Service address; otherwise a rule must allow port 53
//! to anywhere, to an ipBlock, or to peers that would match `kube-system`'s `k8s-app: kube-dns`.

use super::index::{rules, Index};
use super::{plural, Finding, Rule};
use palisade_model::selector::SelectorSpec;
use palisade_model::{PolicyPeer, PolicyRule, Protocol, ServiceInfo};
use palisade_policy::{ClassId, Direction};
use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

const DNS_NAMESPACE: &str = "kube-system";
/// The label the API server gives every namespace: its name.
const NAMESPACE_NAME_LABEL_KEY: &str = "kubernetes.io/metadata.name";
const DNS_LABEL: (&str, &str) = ("k8s-app", "kube-dns");
const PROTOCOLS: [Protocol; 2] = [Protocol::Udp, Protocol::Tcp];

/// Where queries go: the DNS pods' addresses and the Service's, when the input has the pods (the
/// Service's address alone would make a rule to the pods, as they are not in the input, look
/// like it allows nothing).
struct Dns {
    addresses: Vec<IpAddr>,
}

impl Dns {
    fn find(ix: &Index) -> Option<Dns> {
        let service = (ix.state.services.iter())
            .find(|s| s.namespace == DNS_NAMESPACE && s.name == "kube-dns");
        let classes: Vec<ClassId> = match service {
            Some(s) => ix.service_classes(s),
            None => (ix.state.namespace_id(DNS_NAMESPACE))
                .map(|ns| {
                    (ix.by_namespace[ns].iter().copied())
                        .filter(|&c| {
                            ix.pod(c).labels.get(DNS_LABEL.0).map(String::as_str)
                                == Some(DNS_LABEL.1)
                        })
                        .collect()
                })
                .unwrap_or_default(),
        };
        let mut addresses: Vec<IpAddr> = (classes.iter())
            .flat_map(|&c| ix.engine.class_pods(c))
            .filter_map(|&p| ix.state.pods[p].ip)
            .collect();
        if addresses.is_empty() {
            return None;
        }
        addresses.extend(service.and_then(ServiceInfo::address));
        Some(Dns { addresses })
    }
}

pub(super) fn check(ix: &Index, out: &mut Vec<Finding>) {
    let dns = Dns::find(ix);
    // Per egress-selecting policy and missing protocols, the classes concerned.
    let mut missing: BTreeMap<(usize, Vec<Protocol>), Vec<ClassId>> = BTreeMap::new();
    for c in ix.by_namespace.iter().flatten().copied() {
        let policies = &ix.selecting[c].egress;
        if policies.is_empty() {
            continue;
        }
        let lacking: Vec<Protocol> = (PROTOCOLS.into_iter())
            .filter(|&p| !reaches(ix, dns.as_ref(), c, policies, p))
            .collect();
        if lacking.is_empty() {
            continue;
        }
        for &policy in policies {
            missing
                .entry((policy, lacking.clone()))
                .or_default()
                .push(c);
        }
    }
    for ((policy, lacking), classes) in missing {
        let info = &ix.state.policies[policy];
        let what: Vec<String> = lacking.iter().map(|p| format!("{p} 53")).collect();
        let others: BTreeSet<&str> = (classes.iter())
            .flat_map(|&c| ix.selecting[c].egress.iter())
            .filter(|&&p| p != policy)
            .map(|&p| ix.state.policies[p].name.as_str())
            .collect();
        let along = if others.is_empty() {
            String::new()
        } else {
            format!(
                " (nor do {})",
                super::some_of(others.iter().map(|n| n.to_string()), 3)
            )
        };
        let ports: Vec<String> = (lacking.iter())
            .map(|p| format!("{{protocol: {p}, port: 53}}"))
            .collect();
        out.push(Finding::policy(
            Rule::EgressWithoutDns,
            info,
            Some("spec.egress".into()),
            format!(
                "isolates {} for egress ({}) and allows no {} to the cluster DNS{along}: \
                 name lookups from them time out{}",
                plural(ix.pods_in(classes.iter().copied()), "pod"),
                ix.examples(&classes),
                what.join(" or "),
                if lacking == [Protocol::Tcp] {
                    " when an answer is too large for UDP"
                } else {
                    ""
                },
            ),
            format!(
                "add to spec.egress: `- to: [{{namespaceSelector: {{matchLabels: {{{NAMESPACE_NAME_LABEL_KEY}: {DNS_NAMESPACE}}}}}, \
                 podSelector: {{matchLabels: {{{}: {}}}}}}}]` with `ports: [{}]`",
                DNS_LABEL.0,
                DNS_LABEL.1,
                ports.join(", ")
            ),
        ));
    }
}

/// True if the egress of `class` (selected by `policies`) lets queries of `protocol` reach the
/// cluster DNS: to anywhere; to the DNS pods or Service address when the input has them (as the
/// dataplane enforces it), or else to peers that would match them; or to an ipBlock (a node-local
/// cache or an upstream resolver, which the input cannot show).
fn reaches(
    ix: &Index,
    dns: Option<&Dns>,
    class: ClassId,
    policies: &[usize],
    protocol: Protocol,
) -> bool {
    let compiled = ix.class_rules(class);
    if compiled.allows(Direction::Egress, None, 53, protocol) {
        return true; // to anywhere
    }
    let to_dns = dns.is_some_and(|dns| {
        (dns.addresses.iter()).any(|&ip| compiled.allows(Direction::Egress, Some(ip), 53, protocol))
    });
    to_dns
        || policies.iter().any(|&p| {
            let info = &ix.state.policies[p];
            rules(info.policy.spec())
                .filter(|(d, _, rule)| *d == Direction::Egress && allows_53(rule, protocol))
                .flat_map(|(_, _, rule)| rule.peers.iter().flatten())
                .any(|peer| match peer {
                    PolicyPeer::IpBlock(_) => true,
                    PolicyPeer::Pods { namespaces, pods } => {
                        dns.is_none() && would_match_dns(namespaces.as_ref(), pods, &info.namespace)
                    }
                })
        })
}

/// True if `rule` allows port 53 of `protocol` (a named port is given the benefit of the doubt).
fn allows_53(rule: &PolicyRule, protocol: Protocol) -> bool {
    rule.ports.as_ref().is_none_or(|specs| {
        specs.iter().any(|s| {
            s.matches(53, protocol, None) || (s.protocol == protocol && s.name().is_some())
        })
    })
}

/// True if a selector peer of a policy in `namespace` would match the DNS pods of `kube-system`.
fn would_match_dns(
    namespaces: Option<&SelectorSpec>,
    pods: &SelectorSpec,
    namespace: &str,
) -> bool {
    let dns_namespace = BTreeMap::from([(
        NAMESPACE_NAME_LABEL_KEY.to_string(),
        DNS_NAMESPACE.to_string(),
    )]);
    let dns_pod = BTreeMap::from([(DNS_LABEL.0.to_string(), DNS_LABEL.1.to_string())]);
    let namespace_ok = match namespaces {
        Some(sel) => sel.matches(&dns_namespace),
        None => namespace == DNS_NAMESPACE,
    };
    namespace_ok && pods.matches(&dns_pod)
}

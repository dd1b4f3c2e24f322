//! NetworkPolicies: how many each namespace gets, and what they say.
//!
//! Every namespace with policies starts with the baseline teams usually apply (default-deny ingress,
//! then default-deny egress with a DNS exception, or one default-deny-all for both directions); the
//! rest are drawn, with weights, from [`Template`]: allows between tiers, cross-namespace peers,
//! `ipBlock` with `except`, port ranges, UDP and SCTP rules, egress to the internet, and so on.

use crate::cluster::{Namespace, NsKind, Workload, INGRESS_NGINX, MONITORING, TEAMS};
use crate::pick;
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde_json::{json, Value};
use std::collections::BTreeSet;

/// Splits `total` policies over `namespaces` namespaces.
///
/// With at least two policies per namespace, everyone gets two (the baseline) and the rest goes to
/// namespaces at random, weighted 1–8 so that some teams write many more policies than others. With
/// fewer, a random subset gets one (or two) each.
pub(crate) fn allocate(total: usize, namespaces: usize, rng: &mut ChaCha8Rng) -> Vec<usize> {
    let mut counts = vec![0; namespaces];
    if namespaces == 0 {
        return counts;
    }
    let base = (total / namespaces).min(2);
    counts.iter_mut().for_each(|c| *c = base);
    let mut rest = total - base * namespaces;
    if base < 2 {
        // rest < namespaces: a random subset gets one more (partial Fisher–Yates).
        let mut order: Vec<usize> = (0..namespaces).collect();
        for i in 0..rest {
            let j = rng.random_range(i..namespaces);
            order.swap(i, j);
            counts[order[i]] += 1;
        }
        return counts;
    }
    let weights: Vec<u32> = (0..namespaces).map(|_| rng.random_range(1..=8)).collect();
    let mut cumulative = Vec::with_capacity(namespaces);
    let mut sum = 0u64;
    for w in &weights {
        sum += u64::from(*w);
        cumulative.push(sum);
    }
    while rest > 0 {
        let r = rng.random_range(0..sum);
        let i = cumulative.partition_point(|&c| c <= r);
        counts[i] += 1;
        rest -= 1;
    }
    counts
}

/// The kinds of policy drawn after the baseline, with their weights.
#[derive(Clone, Copy, Debug)]
enum Template {
    SameNamespace,
    TierToTier,
    TierExpressions,
    FromTeamNamespaces,
    CrossNamespaceAndPeer,
    OrPeers,
    MetricsScrape,
    FromIngressController,
    PortRange,
    PodNetworkIpBlock,
    EgressInternet,
    EgressSharedData,
    EgressSameNamespace,
    Udp,
    Lockdown,
    Partners,
    PublicFrontend,
    AllowAllIngress,
    AllNamespaces,
    Compliance,
    Isolate,
    Sctp,
}

const TEMPLATES: [(Template, u32); 22] = [
    (Template::SameNamespace, 5),
    (Template::TierToTier, 14),
    (Template::TierExpressions, 8),
    (Template::FromTeamNamespaces, 7),
    (Template::CrossNamespaceAndPeer, 10),
    (Template::OrPeers, 3),
    (Template::MetricsScrape, 6),
    (Template::FromIngressController, 6),
    (Template::PortRange, 5),
    (Template::PodNetworkIpBlock, 4),
    (Template::EgressInternet, 6),
    (Template::EgressSharedData, 6),
    (Template::EgressSameNamespace, 8),
    (Template::Udp, 5),
    (Template::Lockdown, 6),
    (Template::Partners, 2),
    (Template::PublicFrontend, 3),
    (Template::AllowAllIngress, 1),
    (Template::AllNamespaces, 3),
    (Template::Compliance, 2),
    (Template::Isolate, 2),
    (Template::Sctp, 1),
];

fn draw_template(rng: &mut ChaCha8Rng) -> Template {
    let total: u32 = TEMPLATES.iter().map(|(_, w)| w).sum();
    let mut r = rng.random_range(0..total);
    for (t, w) in TEMPLATES {
        if r < w {
            return t;
        }
        r -= w;
    }
    unreachable!("r < total")
}

/// `{"matchLabels": {k: v, ...}}`.
fn labels(pairs: &[(&str, &str)]) -> Value {
    let map: serde_json::Map<String, Value> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), json!(v)))
        .collect();
    json!({ "matchLabels": map })
}

/// One `matchExpressions` requirement.
fn req(key: &str, operator: &str, values: &[&str]) -> Value {
    if values.is_empty() {
        json!({"key": key, "operator": operator})
    } else {
        let mut v: Vec<&str> = values.to_vec();
        v.sort_unstable();
        v.dedup();
        json!({"key": key, "operator": operator, "values": v})
    }
}

fn exprs(reqs: Vec<Value>) -> Value {
    json!({ "matchExpressions": reqs })
}

/// Selects the namespace called `name` through the label the apiserver puts on every namespace.
fn ns_named(name: &str) -> Value {
    labels(&[("kubernetes.io/metadata.name", name)])
}

/// Egress to the cluster DNS, by number (usually) or by the CoreDNS pods' port names.
fn dns_rule(rng: &mut ChaCha8Rng) -> Value {
    let ports = if rng.random_bool(0.2) {
        json!([{"port": "dns", "protocol": "UDP"}, {"port": "dns-tcp", "protocol": "TCP"}])
    } else {
        json!([{"port": 53, "protocol": "UDP"}, {"port": 53, "protocol": "TCP"}])
    };
    json!({
        "to": [{"namespaceSelector": ns_named("kube-system"), "podSelector": labels(&[("k8s-app", "kube-dns")])}],
        "ports": ports
    })
}

/// A workload of `ns` whose tier is one of `prefer` (any workload if none is).
fn target<'a>(ns: &'a Namespace, prefer: &[&str], rng: &mut ChaCha8Rng) -> &'a Workload {
    let preferred: Vec<&Workload> = ns
        .workloads
        .iter()
        .filter(|w| prefer.contains(&w.tier))
        .collect();
    if preferred.is_empty() {
        &ns.workloads[rng.random_range(0..ns.workloads.len())]
    } else {
        preferred[rng.random_range(0..preferred.len())]
    }
}

/// Selects a workload's pods by `app` or by `tier`.
fn select(w: &Workload, rng: &mut ChaCha8Rng) -> Value {
    if rng.random_bool(0.6) {
        labels(&[("app", &w.name)])
    } else {
        labels(&[("tier", w.tier)])
    }
}

/// Up to `max` TCP ports of `w`, mostly by name (which resolves differently per workload).
fn tcp_ports(w: &Workload, max: usize, rng: &mut ChaCha8Rng) -> Vec<Value> {
    let mut ports: Vec<_> = w.ports().filter(|p| p.protocol == "TCP").collect();
    if ports.is_empty() {
        return vec![json!({"port": 8080})];
    }
    let keep = rng.random_range(1..=max.min(ports.len()));
    while ports.len() > keep {
        ports.remove(rng.random_range(0..ports.len()));
    }
    ports
        .into_iter()
        .map(|p| match rng.random_range(0..10) {
            0..=5 => json!({"port": p.name}),
            6 | 7 => json!({"port": p.name, "protocol": "TCP"}),
            _ => json!({"port": p.number}),
        })
        .collect()
}

/// Ingress-only spec, with `policyTypes` written out or left to defaulting.
fn ingress_spec(pod_selector: Value, ingress: Vec<Value>, rng: &mut ChaCha8Rng) -> Value {
    let mut spec = json!({"podSelector": pod_selector, "ingress": ingress});
    if rng.random_bool(0.3) {
        spec["policyTypes"] = json!(["Ingress"]);
    }
    spec
}

fn egress_spec(pod_selector: Value, egress: Vec<Value>) -> Value {
    json!({"podSelector": pod_selector, "policyTypes": ["Egress"], "egress": egress})
}

/// A random /24 of the default pod CIDR (10.244.0.0/16).
fn pod_slash24(rng: &mut ChaCha8Rng) -> String {
    format!("10.244.{}.0/24", rng.random_range(0..64))
}

/// A policy of `template` for `ns`: its base name and spec.
fn instantiate(template: Template, ns: &Namespace, rng: &mut ChaCha8Rng) -> (String, Value) {
    match template {
        Template::SameNamespace => (
            "allow-same-namespace".into(),
            ingress_spec(json!({}), vec![json!({"from": [{"podSelector": {}}]})], rng),
        ),
        Template::TierToTier => {
            let dst = target(ns, &["api", "db", "cache", "worker"], rng);
            let sources: &[&str] = match dst.tier {
                "api" => &["frontend", "worker", "api"],
                "db" => &["api", "worker", "batch"],
                "cache" => &["api", "worker"],
                "worker" => &["api"],
                _ => &["frontend", "api"],
            };
            let present: Vec<&Workload> = ns
                .workloads
                .iter()
                .filter(|w| sources.contains(&w.tier) && w.name != dst.name)
                .collect();
            let (src_name, from) = if present.is_empty() {
                let tier = pick(rng, sources);
                (tier.to_string(), labels(&[("tier", tier)]))
            } else {
                let src = present[rng.random_range(0..present.len())];
                (src.name.clone(), select(src, rng))
            };
            let ports = tcp_ports(dst, 2, rng);
            (
                format!("allow-{}-from-{src_name}", dst.name),
                ingress_spec(
                    select(dst, rng),
                    vec![json!({"from": [{"podSelector": from}], "ports": ports})],
                    rng,
                ),
            )
        }
        Template::TierExpressions => {
            let dst = target(ns, &["db", "cache", "api"], rng);
            let pod_selector = if rng.random_bool(0.5) {
                exprs(vec![req("tier", "In", &[dst.tier, "cache"])])
            } else {
                json!({"matchLabels": {"app": dst.name}, "matchExpressions": [req("canary", "DoesNotExist", &[])]})
            };
            let from = match rng.random_range(0..4) {
                0 => exprs(vec![
                    req("tier", "In", &["api", "worker", "batch"]),
                    req("canary", "DoesNotExist", &[]),
                ]),
                1 => exprs(vec![req("tier", "NotIn", &["frontend", "batch"])]),
                2 => exprs(vec![
                    req("app", "Exists", &[]),
                    req("version", "NotIn", &["v1"]),
                ]),
                _ => {
                    json!({"matchLabels": {"team": ns.team}, "matchExpressions": [req("tier", "In", &["api"])]})
                }
            };
            let ports = tcp_ports(dst, 2, rng);
            (
                format!("allow-{}-from-backends", dst.name),
                ingress_spec(
                    pod_selector,
                    vec![json!({"from": [{"podSelector": from}], "ports": ports})],
                    rng,
                ),
            )
        }
        Template::FromTeamNamespaces => {
            let dst = target(ns, &["api", "frontend"], rng);
            let team = pick(rng, &TEAMS);
            let (suffix, namespace_selector) = match rng.random_range(0..3) {
                0 => (format!("team-{team}"), labels(&[("team", team)])),
                1 => {
                    let other = pick(rng, &TEAMS);
                    (
                        format!("teams-{team}"),
                        exprs(vec![
                            req("team", "In", &[team, other]),
                            req("env", "NotIn", &["dev"]),
                        ]),
                    )
                }
                _ => (
                    format!("{}-tenants", ns.env),
                    json!({"matchLabels": {"env": ns.env}, "matchExpressions": [req("role", "In", &["tenant", "shared"])]}),
                ),
            };
            let ports = tcp_ports(dst, 2, rng);
            (
                format!("allow-{}-from-{suffix}", dst.name),
                ingress_spec(
                    select(dst, rng),
                    vec![
                        json!({"from": [{"namespaceSelector": namespace_selector}], "ports": ports}),
                    ],
                    rng,
                ),
            )
        }
        Template::CrossNamespaceAndPeer => {
            let dst = target(ns, &["api", "db", "cache"], rng);
            let team = pick(rng, &TEAMS);
            let namespace_selector = if rng.random_bool(0.5) {
                json!({"matchLabels": {"team": team}, "matchExpressions": [req("env", "In", &[ns.env, "staging"])]})
            } else {
                json!({"matchLabels": {"role": "shared"}, "matchExpressions": [req("env", "NotIn", &["dev"])]})
            };
            let pod_selector = if rng.random_bool(0.5) {
                exprs(vec![req("tier", "In", &["frontend", "api"])])
            } else {
                json!({"matchLabels": {"tier": "api"}, "matchExpressions": [req("canary", "DoesNotExist", &[])]})
            };
            let ports = tcp_ports(dst, 2, rng);
            (
                format!("allow-{}-from-{team}-clients", dst.name),
                ingress_spec(
                    select(dst, rng),
                    vec![json!({
                        "from": [{"namespaceSelector": namespace_selector, "podSelector": pod_selector}],
                        "ports": ports
                    })],
                    rng,
                ),
            )
        }
        Template::OrPeers => {
            // Two peers, OR-ed: the classic mistake of meaning "api pods of shared namespaces".
            let dst = target(ns, &["api", "db"], rng);
            let ports = tcp_ports(dst, 1, rng);
            (
                format!("allow-{}-from-shared-or-api", dst.name),
                ingress_spec(
                    select(dst, rng),
                    vec![json!({
                        "from": [{"namespaceSelector": labels(&[("role", "shared")])},
                                 {"podSelector": labels(&[("tier", "api")])}],
                        "ports": ports
                    })],
                    rng,
                ),
            )
        }
        Template::MetricsScrape => {
            let pod_selector = if rng.random_bool(0.5) {
                json!({})
            } else {
                exprs(vec![req("app", "Exists", &[])])
            };
            let mut ports = vec![json!({"port": "metrics"})];
            if rng.random_bool(0.4) {
                ports.push(json!({"port": 9100, "endPort": 9199}));
            }
            (
                "allow-prometheus-scrape".into(),
                ingress_spec(
                    pod_selector,
                    vec![json!({
                        "from": [{"namespaceSelector": ns_named(MONITORING), "podSelector": labels(&[("app", "prometheus")])}],
                        "ports": ports
                    })],
                    rng,
                ),
            )
        }
        Template::FromIngressController => {
            let dst = target(ns, &["frontend"], rng);
            let ports = tcp_ports(dst, 1, rng);
            (
                format!("allow-{}-from-ingress", dst.name),
                ingress_spec(
                    select(dst, rng),
                    vec![json!({
                        "from": [{"namespaceSelector": ns_named(INGRESS_NGINX),
                                  "podSelector": labels(&[("app.kubernetes.io/name", "ingress-nginx")])}],
                        "ports": ports
                    })],
                    rng,
                ),
            )
        }
        Template::PortRange => {
            let dst = target(ns, &["api", "worker", "frontend"], rng);
            let start: u16 = pick(rng, &[3000, 8000, 9000, 30000]);
            let width: u16 = pick(rng, &[10, 99, 100, 999]);
            let mut ports = vec![json!({"port": start, "endPort": start + width})];
            if rng.random_bool(0.3) {
                ports.push(json!({"port": 10000, "endPort": 10100, "protocol": "UDP"}));
            }
            if rng.random_bool(0.2) {
                ports.push(json!({"port": 8443, "endPort": 8443}));
            }
            let from = if rng.random_bool(0.5) {
                json!({"namespaceSelector": exprs(vec![req("env", "In", &["prod", "staging"])])})
            } else {
                json!({"podSelector": {}})
            };
            (
                format!("allow-{}-port-range", dst.name),
                ingress_spec(
                    select(dst, rng),
                    vec![json!({"from": [from], "ports": ports})],
                    rng,
                ),
            )
        }
        Template::PodNetworkIpBlock => {
            let dst = target(ns, &["api", "frontend"], rng);
            let mut except = vec![pod_slash24(rng)];
            if rng.random_bool(0.4) {
                except.push("10.244.128.0/17".to_string());
            }
            except.sort();
            except.dedup();
            let ports = tcp_ports(dst, 1, rng);
            (
                format!("allow-{}-from-pod-network", dst.name),
                ingress_spec(
                    select(dst, rng),
                    vec![
                        json!({"from": [{"ipBlock": {"cidr": "10.244.0.0/16", "except": except}}], "ports": ports}),
                    ],
                    rng,
                ),
            )
        }
        Template::EgressInternet => {
            let src = target(ns, &["api", "worker", "batch"], rng);
            let mut to = vec![json!({"ipBlock": {"cidr": "0.0.0.0/0",
                "except": ["10.0.0.0/8", "169.254.0.0/16", "172.16.0.0/12", "192.168.0.0/16"]}})];
            if rng.random_bool(0.3) {
                to.push(json!({"ipBlock": {"cidr": "::/0", "except": ["fc00::/7", "fe80::/10"]}}));
            }
            let mut ports = vec![json!({"port": 443})];
            if rng.random_bool(0.4) {
                ports.push(json!({"port": 80, "protocol": "TCP"}));
            }
            let mut egress = vec![json!({"to": to, "ports": ports})];
            if rng.random_bool(0.5) {
                egress.push(dns_rule(rng));
            }
            (
                format!("allow-{}-egress-internet", src.name),
                egress_spec(select(src, rng), egress),
            )
        }
        Template::EgressSharedData => {
            let pod_selector = exprs(vec![req("tier", "In", &["api", "worker", "batch"])]);
            let peer = json!({
                "namespaceSelector": labels(&[("role", "shared")]),
                "podSelector": exprs(vec![req("tier", "In", &["db", "cache"])])
            });
            let ports = if rng.random_bool(0.6) {
                json!([{"port": "db"}, {"port": "cache"}])
            } else {
                json!([{"port": 5432}, {"port": 3306}, {"port": 6379}, {"port": 11211}])
            };
            (
                "allow-egress-to-shared-data".into(),
                egress_spec(pod_selector, vec![json!({"to": [peer], "ports": ports})]),
            )
        }
        Template::EgressSameNamespace => (
            "allow-egress-same-namespace".into(),
            egress_spec(json!({}), vec![json!({"to": [{"podSelector": {}}]})]),
        ),
        Template::Udp => match rng.random_range(0..3) {
            0 => {
                let ports = if rng.random_bool(0.5) {
                    json!([{"port": "statsd", "protocol": "UDP"}])
                } else {
                    json!([{"port": 8125, "protocol": "UDP"}])
                };
                (
                    "allow-egress-statsd".into(),
                    egress_spec(
                        exprs(vec![req("tier", "In", &["api", "worker"])]),
                        vec![json!({
                            "to": [{"namespaceSelector": ns_named(MONITORING), "podSelector": labels(&[("app", "statsd-exporter")])}],
                            "ports": ports
                        })],
                    ),
                )
            }
            1 => (
                "allow-egress-syslog".into(),
                egress_spec(
                    json!({}),
                    vec![json!({
                        "to": [{"ipBlock": {"cidr": "10.0.0.0/8", "except": ["10.244.0.0/16", "10.96.0.0/12"]}}],
                        "ports": [{"port": 514, "protocol": "UDP"}, {"port": 6514, "protocol": "TCP"}]
                    })],
                ),
            ),
            _ => {
                let dst = target(ns, &["cache", "api"], rng);
                let udp: Vec<Value> = dst
                    .ports()
                    .filter(|p| p.protocol == "UDP")
                    .map(|p| json!({"port": p.name, "protocol": "UDP"}))
                    .collect();
                let ports = if udp.is_empty() {
                    vec![json!({"protocol": "UDP"})]
                } else {
                    udp
                };
                (
                    format!("allow-{}-udp", dst.name),
                    ingress_spec(
                        select(dst, rng),
                        vec![json!({"from": [{"podSelector": {}}], "ports": ports})],
                        rng,
                    ),
                )
            }
        },
        Template::Lockdown => {
            let dst = target(ns, &["db", "cache"], rng);
            let ports = tcp_ports(dst, 2, rng);
            let mut spec = json!({
                "podSelector": labels(&[("app", &dst.name)]),
                "ingress": [{"from": [{"podSelector": exprs(vec![req("tier", "In", &["api", "worker"])])}], "ports": ports}],
                "egress": [dns_rule(rng)]
            });
            // Without policyTypes, a non-empty egress list makes it Ingress + Egress by defaulting.
            if rng.random_bool(0.5) {
                spec["policyTypes"] = json!(["Ingress", "Egress"]);
            }
            (format!("lockdown-{}", dst.name), spec)
        }
        Template::Partners => {
            let dst = target(ns, &["api", "frontend"], rng);
            let from = json!([
                {"ipBlock": {"cidr": format!("192.0.2.{}/28", 16 * rng.random_range(0..16))}},
                {"ipBlock": {"cidr": "198.51.100.0/24", "except": [format!("198.51.100.{}/28", 16 * rng.random_range(0..16))]}},
                {"ipBlock": {"cidr": "2001:db8::/32", "except": [format!("2001:db8:{:x}::/48", rng.random_range(1..0xffff))]}}
            ]);
            (
                format!("allow-{}-from-partners", dst.name),
                ingress_spec(
                    select(dst, rng),
                    vec![
                        json!({"from": from, "ports": [{"port": 443}, {"port": 8443, "protocol": "TCP"}]}),
                    ],
                    rng,
                ),
            )
        }
        Template::PublicFrontend => {
            let dst = target(ns, &["frontend"], rng);
            let ports = tcp_ports(dst, 1, rng);
            (
                format!("allow-{}-from-anywhere", dst.name),
                ingress_spec(select(dst, rng), vec![json!({"ports": ports})], rng),
            )
        }
        Template::AllowAllIngress => {
            let dst = target(ns, &["frontend", "api"], rng);
            (
                format!("allow-all-ingress-{}", dst.name),
                ingress_spec(select(dst, rng), vec![json!({})], rng),
            )
        }
        Template::AllNamespaces => {
            let dst = target(ns, &["api", "frontend"], rng);
            let peer = if rng.random_bool(0.5) {
                json!({"namespaceSelector": {}})
            } else {
                json!({"namespaceSelector": {}, "podSelector": labels(&[("tier", "frontend")])})
            };
            let ports = tcp_ports(dst, 2, rng);
            (
                format!("allow-{}-from-all-namespaces", dst.name),
                ingress_spec(
                    select(dst, rng),
                    vec![json!({"from": [peer], "ports": ports})],
                    rng,
                ),
            )
        }
        Template::Compliance => {
            let dst = target(ns, &["db", "api"], rng);
            let (suffix, peer) = match rng.random_range(0..3) {
                0 => (
                    "pci",
                    json!({"namespaceSelector": exprs(vec![req("compliance", "In", &["pci"])]),
                           "podSelector": labels(&[("tier", "api")])}),
                ),
                1 => (
                    "non-pci",
                    json!({"namespaceSelector": exprs(vec![
                        req("compliance", "DoesNotExist", &[]),
                        req("env", "In", &[ns.env]),
                    ])}),
                ),
                _ => (
                    "regulated",
                    json!({"namespaceSelector": exprs(vec![req("compliance", "Exists", &[])])}),
                ),
            };
            let ports = tcp_ports(dst, 1, rng);
            (
                format!("allow-{}-from-{suffix}", dst.name),
                ingress_spec(
                    select(dst, rng),
                    vec![json!({"from": [peer], "ports": ports})],
                    rng,
                ),
            )
        }
        Template::Isolate => {
            let dst = target(ns, &["batch", "worker"], rng);
            (
                format!("isolate-{}", dst.name),
                json!({
                    "podSelector": {"matchLabels": {"app": dst.name}, "matchExpressions": [req("canary", "DoesNotExist", &[])]},
                    "policyTypes": ["Ingress", "Egress"],
                    "ingress": [],
                    "egress": [dns_rule(rng), {"to": [{"namespaceSelector": labels(&[("team", ns.team)])}]}]
                }),
            )
        }
        Template::Sctp => {
            let dst = target(ns, &["api"], rng);
            (
                format!("allow-{}-sctp", dst.name),
                ingress_spec(
                    select(dst, rng),
                    vec![
                        json!({"from": [{"podSelector": {}}], "ports": [{"port": 9899, "protocol": "SCTP"}]}),
                    ],
                    rng,
                ),
            )
        }
    }
}

/// The policies platform teams write for `monitoring` and `ingress-nginx`, in the order they are
/// added (a namespace given fewer policies gets the first ones).
fn platform_policies(ns: &Namespace, rng: &mut ChaCha8Rng) -> Vec<(String, Value)> {
    let from_prometheus = json!({"namespaceSelector": ns_named(MONITORING), "podSelector": labels(&[("app", "prometheus")])});
    let from_ingress = json!({"namespaceSelector": ns_named(INGRESS_NGINX),
                              "podSelector": labels(&[("app.kubernetes.io/name", "ingress-nginx")])});
    let deny_ingress = json!({"podSelector": {}, "policyTypes": ["Ingress"]});
    let deny_egress =
        json!({"podSelector": {}, "policyTypes": ["Egress"], "egress": [dns_rule(rng)]});
    match ns.kind {
        NsKind::Monitoring => vec![
            ("default-deny-ingress".into(), deny_ingress),
            (
                "allow-prometheus-scrape-egress".into(),
                egress_spec(
                    labels(&[("app", "prometheus")]),
                    vec![
                        json!({"to": [{"namespaceSelector": {}}],
                               "ports": [{"port": "metrics"}, {"port": 9100, "endPort": 9199}, {"port": "http"}]}),
                        dns_rule(rng),
                    ],
                ),
            ),
            (
                "allow-grafana-from-ingress".into(),
                json!({"podSelector": labels(&[("app", "grafana")]),
                       "ingress": [{"from": [from_ingress], "ports": [{"port": "http"}]}]}),
            ),
            (
                "allow-prometheus-from-grafana".into(),
                json!({"podSelector": labels(&[("app", "prometheus")]),
                       "ingress": [{"from": [{"podSelector": labels(&[("app", "grafana")])}], "ports": [{"port": "http"}]}]}),
            ),
            (
                "allow-alertmanager-mesh".into(),
                json!({"podSelector": labels(&[("app", "alertmanager")]),
                "policyTypes": ["Ingress"],
                "ingress": [
                    {"from": [{"podSelector": labels(&[("app", "alertmanager")])}],
                     "ports": [{"port": "mesh-tcp"}, {"port": "mesh-udp", "protocol": "UDP"}]},
                    {"from": [{"podSelector": labels(&[("app", "prometheus")])}], "ports": [{"port": "http"}]}
                ]}),
            ),
            (
                "allow-statsd-from-tenants".into(),
                json!({"podSelector": labels(&[("app", "statsd-exporter")]),
                "ingress": [
                    {"from": [{"namespaceSelector": exprs(vec![req("role", "In", &["tenant", "shared"])])}],
                     "ports": [{"port": "statsd", "protocol": "UDP"}]},
                    {"from": [{"podSelector": labels(&[("app", "prometheus")])}], "ports": [{"port": "metrics"}]}
                ]}),
            ),
            (
                "allow-egress-same-namespace".into(),
                egress_spec(json!({}), vec![json!({"to": [{"podSelector": {}}]})]),
            ),
            ("default-deny-egress-allow-dns".into(), deny_egress),
        ],
        NsKind::IngressNginx => vec![
            (
                "allow-controller-from-internet".into(),
                json!({"podSelector": labels(&[("app.kubernetes.io/name", "ingress-nginx")]),
                       "ingress": [{"from": [{"ipBlock": {"cidr": "0.0.0.0/0", "except": ["169.254.0.0/16"]}},
                                             {"ipBlock": {"cidr": "::/0", "except": ["fe80::/10"]}}],
                                    "ports": [{"port": "http"}, {"port": "https"}]}]}),
            ),
            (
                "allow-controller-metrics".into(),
                json!({"podSelector": labels(&[("app.kubernetes.io/name", "ingress-nginx")]),
                       "ingress": [{"from": [from_prometheus], "ports": [{"port": "metrics"}]}]}),
            ),
            ("default-deny-ingress".into(), deny_ingress),
            (
                "allow-controller-egress-to-frontends".into(),
                egress_spec(
                    labels(&[("app.kubernetes.io/name", "ingress-nginx")]),
                    vec![
                        json!({"to": [{"namespaceSelector": {}, "podSelector": labels(&[("tier", "frontend")])}],
                               "ports": [{"port": "http"}]}),
                        json!({"to": [{"ipBlock": {"cidr": "172.18.0.0/16"}}], "ports": [{"port": 6443}]}),
                    ],
                ),
            ),
            ("default-deny-egress-allow-dns".into(), deny_egress),
        ],
        NsKind::KubeSystem | NsKind::Tenant => Vec::new(),
    }
}

/// The `count` policies of `ns` (which has at least one workload).
pub(crate) fn namespace_policies(ns: &Namespace, count: usize, rng: &mut ChaCha8Rng) -> Vec<Value> {
    let mut names = BTreeSet::new();
    let mut out = Vec::with_capacity(count);
    let mut push = |base: String, spec: Value| {
        let mut name = base.clone();
        let mut n = 2;
        while names.contains(&name) {
            name = format!("{base}-{n}");
            n += 1;
        }
        names.insert(name.clone());
        out.push(json!({
            "apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": {"name": name, "namespace": ns.name},
            "spec": spec
        }));
    };
    if count == 0 {
        return Vec::new();
    }
    let mut placed = 0;
    let platform = platform_policies(ns, rng);
    if !platform.is_empty() {
        for (name, spec) in platform.into_iter().take(count) {
            push(name, spec);
            placed += 1;
        }
    } else if rng.random_bool(0.2) {
        push(
            "default-deny-all".into(),
            json!({"podSelector": {}, "policyTypes": ["Ingress", "Egress"], "egress": [dns_rule(rng)]}),
        );
        placed += 1;
    } else {
        push(
            "default-deny-ingress".into(),
            json!({"podSelector": {}, "policyTypes": ["Ingress"]}),
        );
        placed += 1;
        if count > 1 {
            push(
                "default-deny-egress-allow-dns".into(),
                json!({"podSelector": {}, "policyTypes": ["Egress"], "egress": [dns_rule(rng)]}),
            );
            placed += 1;
        }
    }
    while placed < count {
        let (name, spec) = instantiate(draw_template(rng), ns, rng);
        push(name, spec);
        placed += 1;
    }
    out
}

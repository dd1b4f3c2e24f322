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

/// A policy's base name and spec.
type Policy = (String, Value);

/// A policy of `template` for `ns`.
///
/// Each template draws from `rng` in its own fixed order: the generated manifests (and the figures
/// measured on them) depend on it, so a template's draws are never reordered.
fn instantiate(template: Template, ns: &Namespace, rng: &mut ChaCha8Rng) -> Policy {
    match template {
        Template::SameNamespace => same_namespace(rng),
        Template::TierToTier => tier_to_tier(ns, rng),
        Template::TierExpressions => tier_expressions(ns, rng),
        Template::FromTeamNamespaces => from_team_namespaces(ns, rng),
        Template::CrossNamespaceAndPeer => cross_namespace_and_peer(ns, rng),
        Template::OrPeers => or_peers(ns, rng),
        Template::MetricsScrape => metrics_scrape(rng),
        Template::FromIngressController => from_ingress_controller(ns, rng),
        Template::PortRange => port_range(ns, rng),
        Template::PodNetworkIpBlock => pod_network_ip_block(ns, rng),
        Template::EgressInternet => egress_internet(ns, rng),
        Template::EgressSharedData => egress_shared_data(rng),
        Template::EgressSameNamespace => egress_same_namespace(),
        Template::Udp => match rng.random_range(0..3) {
            0 => egress_statsd(rng),
            1 => egress_syslog(),
            _ => udp_ingress(ns, rng),
        },
        Template::Lockdown => lockdown(ns, rng),
        Template::Partners => partners(ns, rng),
        Template::PublicFrontend => public_frontend(ns, rng),
        Template::AllowAllIngress => allow_all_ingress(ns, rng),
        Template::AllNamespaces => all_namespaces(ns, rng),
        Template::Compliance => compliance(ns, rng),
        Template::Isolate => isolate(ns, rng),
        Template::Sctp => sctp(ns, rng),
    }
}

/// `allow-<dst>-<what>`: ingress to `dst`'s pods (selected by `app` or `tier`) by `rules`.
fn allow_into(dst: &Workload, what: &str, rules: Vec<Value>, rng: &mut ChaCha8Rng) -> Policy {
    (
        format!("allow-{}-{what}", dst.name),
        ingress_spec(select(dst, rng), rules, rng),
    )
}

/// [`allow_into`] with one rule: from `peers`, on up to `max_ports` of `dst`'s TCP ports.
fn allow_from(
    dst: &Workload,
    what: &str,
    peers: Vec<Value>,
    max_ports: usize,
    rng: &mut ChaCha8Rng,
) -> Policy {
    let ports = tcp_ports(dst, max_ports, rng);
    allow_into(dst, what, vec![json!({"from": peers, "ports": ports})], rng)
}

/// The Prometheus pods of `monitoring`.
fn prometheus_peer() -> Value {
    json!({"namespaceSelector": ns_named(MONITORING), "podSelector": labels(&[("app", "prometheus")])})
}

/// The controller pods of `ingress-nginx`.
fn ingress_controller_peer() -> Value {
    json!({"namespaceSelector": ns_named(INGRESS_NGINX),
           "podSelector": labels(&[("app.kubernetes.io/name", "ingress-nginx")])})
}

fn default_deny_ingress() -> Policy {
    (
        "default-deny-ingress".into(),
        json!({"podSelector": {}, "policyTypes": ["Ingress"]}),
    )
}

fn default_deny_egress_allow_dns(rng: &mut ChaCha8Rng) -> Policy {
    (
        "default-deny-egress-allow-dns".into(),
        json!({"podSelector": {}, "policyTypes": ["Egress"], "egress": [dns_rule(rng)]}),
    )
}

fn same_namespace(rng: &mut ChaCha8Rng) -> Policy {
    (
        "allow-same-namespace".into(),
        ingress_spec(json!({}), vec![json!({"from": [{"podSelector": {}}]})], rng),
    )
}

/// From the tier that usually calls `dst`'s (a workload of the namespace if there is one).
fn tier_to_tier(ns: &Namespace, rng: &mut ChaCha8Rng) -> Policy {
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
    allow_from(
        dst,
        &format!("from-{src_name}"),
        vec![json!({"podSelector": from})],
        2,
        rng,
    )
}

/// Within the namespace, with `matchExpressions` on both sides.
fn tier_expressions(ns: &Namespace, rng: &mut ChaCha8Rng) -> Policy {
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

/// From whole namespaces, chosen by team or environment (`namespaceSelector` alone).
fn from_team_namespaces(ns: &Namespace, rng: &mut ChaCha8Rng) -> Policy {
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
    allow_from(
        dst,
        &format!("from-{suffix}"),
        vec![json!({"namespaceSelector": namespace_selector})],
        2,
        rng,
    )
}

/// From some pods of some namespaces: `namespaceSelector` AND-ed with `podSelector` in one peer.
fn cross_namespace_and_peer(ns: &Namespace, rng: &mut ChaCha8Rng) -> Policy {
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
    allow_from(
        dst,
        &format!("from-{team}-clients"),
        vec![json!({"namespaceSelector": namespace_selector, "podSelector": pod_selector})],
        2,
        rng,
    )
}

/// Two peers, OR-ed: the classic mistake of meaning "api pods of shared namespaces".
fn or_peers(ns: &Namespace, rng: &mut ChaCha8Rng) -> Policy {
    let dst = target(ns, &["api", "db"], rng);
    allow_from(
        dst,
        "from-shared-or-api",
        vec![
            json!({"namespaceSelector": labels(&[("role", "shared")])}),
            json!({"podSelector": labels(&[("tier", "api")])}),
        ],
        1,
        rng,
    )
}

fn metrics_scrape(rng: &mut ChaCha8Rng) -> Policy {
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
            vec![json!({"from": [prometheus_peer()], "ports": ports})],
            rng,
        ),
    )
}

fn from_ingress_controller(ns: &Namespace, rng: &mut ChaCha8Rng) -> Policy {
    let dst = target(ns, &["frontend"], rng);
    allow_from(dst, "from-ingress", vec![ingress_controller_peer()], 1, rng)
}

/// `endPort` ranges, some of them UDP or one port wide.
fn port_range(ns: &Namespace, rng: &mut ChaCha8Rng) -> Policy {
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
    allow_into(
        dst,
        "port-range",
        vec![json!({"from": [from], "ports": ports})],
        rng,
    )
}

/// From the pod network by `ipBlock`, with `except` holes in it.
fn pod_network_ip_block(ns: &Namespace, rng: &mut ChaCha8Rng) -> Policy {
    let dst = target(ns, &["api", "frontend"], rng);
    let mut except = vec![pod_slash24(rng)];
    if rng.random_bool(0.4) {
        except.push("10.244.128.0/17".to_string());
    }
    except.sort();
    except.dedup();
    allow_from(
        dst,
        "from-pod-network",
        vec![json!({"ipBlock": {"cidr": "10.244.0.0/16", "except": except}})],
        1,
        rng,
    )
}

/// Egress to public addresses (IPv4, sometimes IPv6) on 443 (and 80), sometimes DNS too.
fn egress_internet(ns: &Namespace, rng: &mut ChaCha8Rng) -> Policy {
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

fn egress_shared_data(rng: &mut ChaCha8Rng) -> Policy {
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

fn egress_same_namespace() -> Policy {
    (
        "allow-egress-same-namespace".into(),
        egress_spec(json!({}), vec![json!({"to": [{"podSelector": {}}]})]),
    )
}

/// UDP egress to the statsd exporter in `monitoring`, by port name or number.
fn egress_statsd(rng: &mut ChaCha8Rng) -> Policy {
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

/// Syslog egress to the node network: UDP 514 and TCP 6514.
fn egress_syslog() -> Policy {
    (
        "allow-egress-syslog".into(),
        egress_spec(
            json!({}),
            vec![json!({
                "to": [{"ipBlock": {"cidr": "10.0.0.0/8", "except": ["10.244.0.0/16", "10.96.0.0/12"]}}],
                "ports": [{"port": 514, "protocol": "UDP"}, {"port": 6514, "protocol": "TCP"}]
            })],
        ),
    )
}

/// Ingress within the namespace on `dst`'s UDP ports by name (or any UDP port if it has none).
fn udp_ingress(ns: &Namespace, rng: &mut ChaCha8Rng) -> Policy {
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
    allow_into(
        dst,
        "udp",
        vec![json!({"from": [{"podSelector": {}}], "ports": ports})],
        rng,
    )
}

/// Both directions for a data store: in from the back ends, out to DNS only.
fn lockdown(ns: &Namespace, rng: &mut ChaCha8Rng) -> Policy {
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

/// From partner networks by `ipBlock` (IPv4 and IPv6, with `except`).
fn partners(ns: &Namespace, rng: &mut ChaCha8Rng) -> Policy {
    let dst = target(ns, &["api", "frontend"], rng);
    let from = json!([
        {"ipBlock": {"cidr": format!("192.0.2.{}/28", 16 * rng.random_range(0..16))}},
        {"ipBlock": {"cidr": "198.51.100.0/24", "except": [format!("198.51.100.{}/28", 16 * rng.random_range(0..16))]}},
        {"ipBlock": {"cidr": "2001:db8::/32", "except": [format!("2001:db8:{:x}::/48", rng.random_range(1..0xffff))]}}
    ]);
    allow_into(
        dst,
        "from-partners",
        vec![json!({"from": from, "ports": [{"port": 443}, {"port": 8443, "protocol": "TCP"}]})],
        rng,
    )
}

/// From anywhere (no `from`), on some of the frontend's ports.
fn public_frontend(ns: &Namespace, rng: &mut ChaCha8Rng) -> Policy {
    let dst = target(ns, &["frontend"], rng);
    let ports = tcp_ports(dst, 1, rng);
    allow_into(dst, "from-anywhere", vec![json!({"ports": ports})], rng)
}

/// One empty rule: everything in.
fn allow_all_ingress(ns: &Namespace, rng: &mut ChaCha8Rng) -> Policy {
    let dst = target(ns, &["frontend", "api"], rng);
    (
        format!("allow-all-ingress-{}", dst.name),
        ingress_spec(select(dst, rng), vec![json!({})], rng),
    )
}

/// From every namespace (`namespaceSelector: {}`), sometimes only their frontends.
fn all_namespaces(ns: &Namespace, rng: &mut ChaCha8Rng) -> Policy {
    let dst = target(ns, &["api", "frontend"], rng);
    let peer = if rng.random_bool(0.5) {
        json!({"namespaceSelector": {}})
    } else {
        json!({"namespaceSelector": {}, "podSelector": labels(&[("tier", "frontend")])})
    };
    allow_from(dst, "from-all-namespaces", vec![peer], 2, rng)
}

/// From namespaces chosen by their `compliance` label (`In`, `Exists`, `DoesNotExist`).
fn compliance(ns: &Namespace, rng: &mut ChaCha8Rng) -> Policy {
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
    allow_from(dst, &format!("from-{suffix}"), vec![peer], 1, rng)
}

/// Nothing in (an empty ingress list), out only to DNS and the team's namespaces.
fn isolate(ns: &Namespace, rng: &mut ChaCha8Rng) -> Policy {
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

fn sctp(ns: &Namespace, rng: &mut ChaCha8Rng) -> Policy {
    let dst = target(ns, &["api"], rng);
    allow_into(
        dst,
        "sctp",
        vec![json!({"from": [{"podSelector": {}}], "ports": [{"port": 9899, "protocol": "SCTP"}]})],
        rng,
    )
}

/// The policies platform teams write for `monitoring` and `ingress-nginx`, in the order they are
/// added (a namespace given fewer policies gets the first ones).
fn platform_policies(ns: &Namespace, rng: &mut ChaCha8Rng) -> Vec<Policy> {
    // Drawn for every namespace, tenants included (where it is dropped): the draws that follow, and
    // so the output, depend on it.
    let deny_egress = default_deny_egress_allow_dns(rng);
    match ns.kind {
        NsKind::Monitoring => monitoring_policies(deny_egress, rng),
        NsKind::IngressNginx => ingress_nginx_policies(deny_egress),
        NsKind::KubeSystem | NsKind::Tenant => Vec::new(),
    }
}

/// `monitoring`: Prometheus scrapes every namespace; Grafana, Alertmanager and statsd take their
/// own traffic; `deny_egress` comes last.
fn monitoring_policies(deny_egress: Policy, rng: &mut ChaCha8Rng) -> Vec<Policy> {
    vec![
        default_deny_ingress(),
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
                   "ingress": [{"from": [ingress_controller_peer()], "ports": [{"port": "http"}]}]}),
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
        egress_same_namespace(),
        deny_egress,
    ]
}

/// `ingress-nginx`: the controller takes traffic from the internet and Prometheus, and sends it to
/// frontends (and the API server); `deny_egress` comes last.
fn ingress_nginx_policies(deny_egress: Policy) -> Vec<Policy> {
    let controller = || labels(&[("app.kubernetes.io/name", "ingress-nginx")]);
    vec![
        (
            "allow-controller-from-internet".into(),
            json!({"podSelector": controller(),
                   "ingress": [{"from": [{"ipBlock": {"cidr": "0.0.0.0/0", "except": ["169.254.0.0/16"]}},
                                         {"ipBlock": {"cidr": "::/0", "except": ["fe80::/10"]}}],
                                "ports": [{"port": "http"}, {"port": "https"}]}]}),
        ),
        (
            "allow-controller-metrics".into(),
            json!({"podSelector": controller(),
                   "ingress": [{"from": [prometheus_peer()], "ports": [{"port": "metrics"}]}]}),
        ),
        default_deny_ingress(),
        (
            "allow-controller-egress-to-frontends".into(),
            egress_spec(
                controller(),
                vec![
                    json!({"to": [{"namespaceSelector": {}, "podSelector": labels(&[("tier", "frontend")])}],
                           "ports": [{"port": "http"}]}),
                    json!({"to": [{"ipBlock": {"cidr": "172.18.0.0/16"}}], "ports": [{"port": 6443}]}),
                ],
            ),
        ),
        deny_egress,
    ]
}

/// The `count` policies of `ns` (which has at least one workload).
pub(crate) fn namespace_policies(ns: &Namespace, count: usize, rng: &mut ChaCha8Rng) -> Vec<Value> {
    let mut names = BTreeSet::new();
    let mut out = Vec::with_capacity(count);
    let mut push = |(base, spec): Policy| {
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
        for policy in platform.into_iter().take(count) {
            push(policy);
            placed += 1;
        }
    } else if rng.random_bool(0.2) {
        push((
            "default-deny-all".into(),
            json!({"podSelector": {}, "policyTypes": ["Ingress", "Egress"], "egress": [dns_rule(rng)]}),
        ));
        placed += 1;
    } else {
        push(default_deny_ingress());
        placed += 1;
        if count > 1 {
            push(default_deny_egress_allow_dns(rng));
            placed += 1;
        }
    }
    while placed < count {
        push(instantiate(draw_template(rng), ns, rng));
        placed += 1;
    }
    out
}

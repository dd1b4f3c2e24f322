//! Property tests on random small clusters: the class-based reachability, the per-flow verdict and
//! the rule sets compiled for the dataplane all equal a naive per-pair evaluation written here
//! directly from `shared/reference/networkpolicy.md`, on the raw Kubernetes objects.
//!
//! Clusters are generated from a proptest-chosen seed (reported on failure) so a failing case can be
//! replayed exactly.

use k8s_openapi::api::networking::v1::{NetworkPolicy, NetworkPolicyPeer, NetworkPolicyPort};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use palisade_model::selector::matches;
use palisade_model::{
    ClusterState, ContainerPortInfo, IdVec, Kind, NamespaceInfo, Origin, PodId, PodInfo,
    PolicyInfo, Protocol, TierAction, TierObject, TierPolicyInfo, ValidPolicy, ValidTierPolicy,
    TIER_KINDS,
};
use palisade_policy::{AddrCache, Class, ClassId, Decision, Direction, Endpoint, Engine, Flow};
use proptest::prelude::*;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;

const KEYS: [&str; 3] = ["app", "tier", "env"];
const VALUES: [&str; 3] = ["a", "b", "c"];
const NAMES: [&str; 3] = ["http", "dns", "metrics"];
const PORTS: [u16; 4] = [53, 80, 81, 8080];
const PROTOS: [Protocol; 3] = [Protocol::Tcp, Protocol::Udp, Protocol::Sctp];

fn pick<T: Clone>(rng: &mut ChaCha8Rng, items: &[T]) -> T {
    items[rng.random_range(0..items.len())].clone()
}

fn labels(rng: &mut ChaCha8Rng) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for k in KEYS {
        if rng.random_bool(0.6) {
            out.insert(k.to_string(), pick(rng, &VALUES).to_string());
        }
    }
    out
}

fn selector(rng: &mut ChaCha8Rng) -> Value {
    let mut sel = json!({});
    if rng.random_bool(0.5) {
        sel["matchLabels"] = json!({pick(rng, &KEYS): pick(rng, &VALUES)});
    }
    if rng.random_bool(0.4) {
        let op = pick(rng, &["In", "NotIn", "Exists", "DoesNotExist"]);
        let mut e = json!({"key": pick(rng, &KEYS), "operator": op});
        if op == "In" || op == "NotIn" {
            e["values"] = json!([pick(rng, &VALUES), pick(rng, &VALUES)]);
        }
        sel["matchExpressions"] = json!([e]);
    }
    sel
}

fn peer(rng: &mut ChaCha8Rng, namespaces: &[String]) -> Value {
    match rng.random_range(0..5) {
        0 => json!({"podSelector": selector(rng)}),
        1 => json!({"namespaceSelector": selector(rng)}),
        2 => {
            // Namespace selection by the automatic name label, AND a pod selector.
            let ns = pick(rng, namespaces);
            json!({"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": ns}}, "podSelector": selector(rng)})
        }
        3 => json!({"namespaceSelector": selector(rng), "podSelector": selector(rng)}),
        _ => {
            let (cidr, except) = match rng.random_range(0..4) {
                0 => ("10.0.0.0/24", vec!["10.0.0.0/28"]),
                1 => ("10.0.0.0/16", vec![]),
                2 => ("10.0.0.8/29", vec!["10.0.0.12/30"]),
                _ => ("fd00::/64", vec!["fd00::/120"]),
            };
            json!({"ipBlock": {"cidr": cidr, "except": except}})
        }
    }
}

fn ports(rng: &mut ChaCha8Rng) -> Value {
    let n = rng.random_range(0..3);
    let list: Vec<Value> = (0..n)
        .map(|_| {
            let proto = pick(rng, &PROTOS).as_str();
            match rng.random_range(0..4) {
                0 => json!({"protocol": proto}),
                1 => json!({"port": pick(rng, &PORTS), "protocol": proto}),
                2 => {
                    let lo = pick(rng, &PORTS);
                    json!({"port": lo, "endPort": lo + rng.random_range(0..30), "protocol": proto})
                }
                _ => json!({"port": pick(rng, &NAMES), "protocol": proto}),
            }
        })
        .collect();
    json!(list)
}

fn rules(rng: &mut ChaCha8Rng, namespaces: &[String], field: &str) -> Value {
    let n = rng.random_range(0..3);
    let list: Vec<Value> = (0..n)
        .map(|_| {
            let mut r = json!({});
            match rng.random_range(0..4) {
                0 => {}
                1 => r[field] = json!([]),
                _ => {
                    let peers: Vec<Value> = (0..rng.random_range(1..3))
                        .map(|_| peer(rng, namespaces))
                        .collect();
                    r[field] = json!(peers);
                }
            }
            if rng.random_bool(0.7) {
                r["ports"] = ports(rng);
            }
            r
        })
        .collect();
    json!(list)
}

/// A random pod called `p{i}` in one of `namespaces`.
fn pod(rng: &mut ChaCha8Rng, i: usize, namespaces: &[String]) -> PodInfo {
    let ip: IpAddr = if rng.random_bool(0.15) {
        format!("fd00::{}", rng.random_range(1..400))
            .parse()
            .unwrap()
    } else {
        format!(
            "10.0.{}.{}",
            rng.random_range(0..2),
            rng.random_range(1..32)
        )
        .parse()
        .unwrap()
    };
    let mut ports: Vec<ContainerPortInfo> = Vec::new();
    for name in NAMES {
        if rng.random_bool(0.5) {
            ports.push(ContainerPortInfo {
                name: Some(name.into()),
                port: pick(rng, &PORTS),
                protocol: pick(rng, &PROTOS),
            });
        }
    }
    PodInfo {
        namespace: pick(rng, namespaces),
        name: format!("p{i}"),
        labels: labels(rng),
        ip: Some(ip),
        ip_allocated: false,
        host_network: rng.random_bool(0.1),
        host_ip: None,
        node_name: None,
        finished: false,
        ports,
        owner: None,
        from_template: false,
        origin: Origin::default(),
    }
}

/// A random valid policy called `name` in one of `namespaces`.
fn policy(rng: &mut ChaCha8Rng, name: &str, namespaces: &[String]) -> PolicyInfo {
    let mut spec = json!({"podSelector": selector(rng)});
    match rng.random_range(0..4) {
        0 => {}
        1 => spec["policyTypes"] = json!(["Ingress"]),
        2 => spec["policyTypes"] = json!(["Egress"]),
        _ => spec["policyTypes"] = json!(["Ingress", "Egress"]),
    }
    if rng.random_bool(0.7) {
        spec["ingress"] = rules(rng, namespaces, "from");
    }
    if rng.random_bool(0.6) {
        spec["egress"] = rules(rng, namespaces, "to");
    }
    let ns = pick(rng, namespaces);
    let policy: NetworkPolicy = serde_json::from_value(json!({
        "apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
        "metadata": {"name": name, "namespace": ns}, "spec": spec
    }))
    .unwrap();
    valid(policy)
}

/// `policy`, which must be valid, as the loader makes it.
fn valid(policy: NetworkPolicy) -> PolicyInfo {
    let (policy, _warnings) = ValidPolicy::new(policy).expect("a valid policy");
    PolicyInfo::new(policy, Origin::default())
}

const CIDRS: [&str; 4] = ["10.0.0.0/24", "10.0.0.8/29", "fd00::/64", "10.0.1.0/24"];
const ACTIONS: [&str; 3] = ["Accept", "Deny", "Pass"];

/// The peers of a random cluster-wide rule: selectors, `networks` (egress), and now and then a
/// peer of no field Palisade knows (which fails closed).
fn tier_peers(rng: &mut ChaCha8Rng, egress: bool) -> Vec<Value> {
    (0..rng.random_range(1..3))
        .map(|_| match rng.random_range(0..if egress { 6 } else { 4 }) {
            0 => json!({"namespaces": selector(rng)}),
            1 | 2 => {
                json!({"pods": {"namespaceSelector": selector(rng), "podSelector": selector(rng)}})
            }
            3 => json!({"fromTheFuture": {}}),
            _ => {
                let n = rng.random_range(1..3);
                json!({"networks": (0..n).map(|_| pick(rng, &CIDRS)).collect::<Vec<_>>()})
            }
        })
        .collect()
}

/// The port entries of a random cluster-wide rule, in `kind`'s shape; no named port with
/// `networks` (the API refuses it).
fn tier_ports(rng: &mut ChaCha8Rng, v1alpha1: bool, named_ok: bool) -> Vec<Value> {
    (0..rng.random_range(1..3))
        .map(|_| {
            let proto = pick(rng, &PROTOS).as_str();
            let port = pick(rng, &PORTS);
            let end = port + rng.random_range(1..30);
            match (rng.random_range(0..if named_ok { 4 } else { 3 }), v1alpha1) {
                (0, false) => json!({proto.to_lowercase(): {"destinationPort": {"number": port}}}),
                (1, false) => json!({proto.to_lowercase(): {"destinationPort": {"range": {"start": port, "end": end}}}}),
                (2, false) => json!({"icmpFromTheFuture": {}}),
                (_, false) => json!({"destinationNamedPort": pick(rng, &NAMES)}),
                (0 | 2, true) => json!({"portNumber": {"protocol": proto, "port": port}}),
                (1, true) => json!({"portRange": {"protocol": proto, "start": port, "end": end}}),
                (_, true) => json!({"namedPort": pick(rng, &NAMES)}),
            }
        })
        .collect()
}

/// A random valid cluster-wide policy: a ClusterNetworkPolicy, or a v1alpha1 AdminNetworkPolicy
/// or BaselineAdminNetworkPolicy (named `default`, as it must be).
fn tier_policy(rng: &mut ChaCha8Rng, name: &str) -> TierPolicyInfo {
    let kind = pick(rng, &TIER_KINDS);
    let v1alpha1 = kind != Kind::ClusterNetworkPolicy;
    let baseline = kind == Kind::BaselineAdminNetworkPolicy;
    let subject = match rng.random_range(0..2) {
        0 => json!({"namespaces": selector(rng)}),
        _ => json!({"pods": {"namespaceSelector": selector(rng), "podSelector": selector(rng)}}),
    };
    let mut spec = json!({"subject": subject});
    if !baseline {
        spec["priority"] = json!(rng.random_range(0..4));
    }
    if kind == Kind::ClusterNetworkPolicy {
        spec["tier"] = json!(pick(rng, &["Admin", "Baseline"]));
    }
    for (field, peers, egress) in [("ingress", "from", false), ("egress", "to", true)] {
        let rules: Vec<Value> = (0..rng.random_range(0..4))
            .map(|i| {
                let action = pick(rng, &ACTIONS[..if baseline { 2 } else { 3 }]);
                let action = match (action, v1alpha1) {
                    ("Accept", true) => "Allow",
                    (a, _) => a,
                };
                let to = tier_peers(rng, egress);
                let named_ok = !to.iter().any(|p| p.get("networks").is_some());
                let mut rule = json!({"action": action, peers: to});
                if rng.random_bool(0.5) {
                    rule["name"] = json!(format!("{field}-{i}"));
                }
                if rng.random_bool(0.7) {
                    let key = if v1alpha1 { "ports" } else { "protocols" };
                    rule[key] = json!(tier_ports(rng, v1alpha1, named_ok));
                }
                rule
            })
            .collect();
        if !rules.is_empty() {
            spec[field] = json!(rules);
        }
    }
    let name = if baseline { "default" } else { name };
    let object: TierObject = serde_json::from_value(json!({
        "apiVersion": kind.api_version(), "kind": kind.as_str(),
        "metadata": {"name": name}, "spec": spec
    }))
    .unwrap();
    let (policy, _warnings) = ValidTierPolicy::new(kind, object)
        .unwrap_or_else(|issues| panic!("a valid {kind}: {issues:?}"));
    TierPolicyInfo::new(policy, Origin::default())
}

/// Random cluster-wide policies, each kind's names distinct (one BaselineAdminNetworkPolicy at
/// most, as it is a singleton).
fn tier_policies(rng: &mut ChaCha8Rng, n: usize) -> Vec<TierPolicyInfo> {
    let mut seen = std::collections::HashSet::new();
    (0..n)
        .map(|i| tier_policy(rng, &format!("t{i}")))
        .filter(|p| seen.insert(p.key()))
        .collect()
}

fn cluster(seed: u64) -> ClusterState {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let namespaces: Vec<String> = (0..rng.random_range(1..4))
        .map(|i| format!("ns{i}"))
        .collect();
    let ns_infos = namespaces
        .iter()
        .map(|n| NamespaceInfo {
            name: n.clone(),
            labels: labels(&mut rng),
            annotations: BTreeMap::new(),
            origin: None,
        })
        .collect();
    let pods = (0..rng.random_range(1..11))
        .map(|i| pod(&mut rng, i, &namespaces))
        .collect::<Vec<_>>();
    // Distinct IPs, as in a real cluster.
    let mut seen = std::collections::HashSet::new();
    let pods: Vec<PodInfo> = pods.into_iter().filter(|p| seen.insert(p.ip)).collect();
    let policies = (0..rng.random_range(0..7))
        .map(|i| policy(&mut rng, &format!("np{i}"), &namespaces))
        .collect();
    let n = if rng.random_bool(0.6) {
        rng.random_range(1..5)
    } else {
        0
    };
    let tiers = tier_policies(&mut rng, n);
    ClusterState::new(ns_infos, pods, Vec::new(), policies).with_tier_policies(tiers)
}

// ---- The naive evaluator: the reference, statement by statement. ----

fn types(p: &NetworkPolicy) -> (bool, bool) {
    let spec = p.spec.clone().unwrap_or_default();
    match spec.policy_types.filter(|t| !t.is_empty()) {
        Some(t) => (
            t.iter().any(|x| x == "Ingress"),
            t.iter().any(|x| x == "Egress"),
        ),
        None => (true, spec.egress.is_some_and(|e| !e.is_empty())),
    }
}

/// The (peers, ports) of every rule of `p` for `direction`.
type RuleParts = (
    Option<Vec<NetworkPolicyPeer>>,
    Option<Vec<NetworkPolicyPort>>,
);

fn rule_parts(p: &PolicyInfo, direction: Direction) -> Vec<RuleParts> {
    let spec = p.policy.object().spec.clone().unwrap_or_default();
    match direction {
        Direction::Ingress => spec
            .ingress
            .into_iter()
            .flatten()
            .map(|r| (r.from, r.ports))
            .collect(),
        Direction::Egress => spec
            .egress
            .into_iter()
            .flatten()
            .map(|r| (r.to, r.ports))
            .collect(),
    }
}

fn selects(p: &PolicyInfo, pod: &PodInfo, direction: Direction) -> bool {
    let (ing, eg) = types(p.policy.object());
    let governs = match direction {
        Direction::Ingress => ing,
        Direction::Egress => eg,
    };
    governs
        && !pod.host_network
        && p.namespace == pod.namespace
        && matches(
            &p.policy
                .object()
                .spec
                .clone()
                .unwrap_or_default()
                .pod_selector
                .unwrap_or_default(),
            &pod.labels,
        )
}

fn in_block(peer: &NetworkPolicyPeer, ip: Option<IpAddr>) -> bool {
    let Some(b) = &peer.ip_block else {
        return false;
    };
    let Some(ip) = ip else { return false };
    let net: ipnet::IpNet = b.cidr.parse().unwrap();
    net.contains(&ip)
        && !b
            .except
            .iter()
            .flatten()
            .any(|e| e.parse::<ipnet::IpNet>().unwrap().contains(&ip))
}

fn by_selector(
    state: &ClusterState,
    policy: &PolicyInfo,
    peer: &NetworkPolicyPeer,
    pod: &PodInfo,
) -> bool {
    if peer.ip_block.is_some() || pod.host_network {
        return false;
    }
    let ns_ok = match &peer.namespace_selector {
        Some(sel) => matches(sel, &state.namespace(&pod.namespace).unwrap().labels),
        None => pod.namespace == policy.namespace,
    };
    ns_ok && matches(&peer.pod_selector.clone().unwrap_or_default(), &pod.labels)
}

fn port_ok(
    spec: &NetworkPolicyPort,
    port: u16,
    protocol: Protocol,
    named_on: Option<&PodInfo>,
) -> bool {
    let proto = spec.protocol.as_deref().unwrap_or("TCP");
    if proto != protocol.as_str() {
        return false;
    }
    match &spec.port {
        None => true,
        Some(IntOrString::Int(n)) => (*n..=spec.end_port.unwrap_or(*n)).contains(&(port as i32)),
        Some(IntOrString::String(name)) => {
            named_on.and_then(|p| p.named_port(name, protocol)) == Some(port)
        }
    }
}

/// Does rule (peers, ports) of `policy` allow `peer` for the enforcing pod `me`?
#[allow(clippy::too_many_arguments)]
fn rule_allows(
    state: &ClusterState,
    policy: &PolicyInfo,
    peers: Option<&Vec<NetworkPolicyPeer>>,
    ports: Option<&Vec<NetworkPolicyPort>>,
    direction: Direction,
    me: &PodInfo,
    other: &PodInfo,
    port: u16,
    protocol: Protocol,
) -> bool {
    let peers = peers.filter(|p| !p.is_empty());
    let sel = peers.is_none_or(|ps| ps.iter().any(|p| by_selector(state, policy, p, other)));
    let blk = peers.is_none_or(|ps| ps.iter().any(|p| in_block(p, other.ip)));
    let Some(ports) = ports.filter(|p| !p.is_empty()) else {
        return sel || blk;
    };
    ports.iter().any(|spec| {
        let named = spec
            .port
            .as_ref()
            .is_some_and(|p| matches!(p, IntOrString::String(_)));
        match direction {
            Direction::Ingress => (sel || blk) && port_ok(spec, port, protocol, Some(me)),
            Direction::Egress if named => sel && port_ok(spec, port, protocol, Some(other)),
            Direction::Egress => (sel || blk) && port_ok(spec, port, protocol, None),
        }
    })
}

// ---- The cluster-wide tiers (§7), on the manifests' JSON. ----

/// A JSON label selector matches `labels` (an absent selector: everything).
fn json_matches(sel: Option<&Value>, labels: &BTreeMap<String, String>) -> bool {
    let sel = sel.cloned().unwrap_or(json!({}));
    matches(&serde_json::from_value(sel).unwrap(), labels)
}

/// `pod`'s namespace labels.
fn ns_labels<'a>(state: &'a ClusterState, pod: &PodInfo) -> &'a BTreeMap<String, String> {
    &state.namespace(&pod.namespace).unwrap().labels
}

/// A subject or selector peer (`namespaces` / `pods`) holds `pod` (never a hostNetwork one).
fn json_selects(state: &ClusterState, v: &Value, pod: &PodInfo) -> Option<bool> {
    let hit = if let Some(sel) = v.get("namespaces") {
        json_matches(Some(sel), ns_labels(state, pod))
    } else if let Some(p) = v.get("pods") {
        json_matches(p.get("namespaceSelector"), ns_labels(state, pod))
            && json_matches(p.get("podSelector"), &pod.labels)
    } else {
        return None;
    };
    Some(hit && !pod.host_network)
}

/// Who decided one direction of a flow, per the naive evaluation.
#[derive(Debug, PartialEq)]
enum Decider {
    /// A tier rule: kind, name, rule index; and whether it allowed.
    Tier(Kind, String, usize, bool),
    /// NetworkPolicy isolates: whether it allowed.
    Policy(bool),
    /// Nothing decided: allowed.
    Default,
}

/// The cluster-wide policies of `tier` whose subject holds `me` and that have rules for
/// `direction`, in evaluation order: priority (none last), kind, name.
fn naive_tier<'a>(
    state: &'a ClusterState,
    tier: &str,
    direction: Direction,
    me: &PodInfo,
) -> Vec<&'a TierPolicyInfo> {
    let mut list: Vec<&TierPolicyInfo> = (state.tier_policies.iter())
        .filter(|p| {
            let spec = &p.policy.object().spec;
            let its = match p.kind() {
                Kind::ClusterNetworkPolicy => spec["tier"].as_str().unwrap(),
                Kind::AdminNetworkPolicy => "Admin",
                _ => "Baseline",
            };
            its == tier
                && json_selects(state, &spec["subject"], me).unwrap()
                && spec
                    .get(direction.as_str())
                    .is_some_and(|r| !r.as_array().unwrap().is_empty())
        })
        .collect();
    list.sort_by_key(|p| {
        let priority = p
            .policy
            .object()
            .spec
            .get("priority")
            .and_then(Value::as_u64);
        (priority.unwrap_or(u64::MAX), p.kind(), p.name.clone())
    });
    list
}

/// Does the cluster-wide `rule` match the flow between `me` (enforcing) and `other`?
fn naive_rule_matches(
    state: &ClusterState,
    rule: &Value,
    direction: Direction,
    me: &PodInfo,
    other: &PodInfo,
    port: u16,
    protocol: Protocol,
) -> bool {
    let fails_open = !matches!(rule["action"].as_str(), Some("Accept" | "Allow"));
    let peers = rule[if direction == Direction::Ingress {
        "from"
    } else {
        "to"
    }]
    .as_array()
    .unwrap();
    let mut by_selector = false;
    let mut by_network = false;
    for peer in peers {
        match json_selects(state, peer, other) {
            Some(hit) => by_selector |= hit,
            None => match peer.get("networks") {
                Some(nets) => {
                    by_network |= nets.as_array().unwrap().iter().any(|n| {
                        let net: ipnet::IpNet = n.as_str().unwrap().parse().unwrap();
                        other.ip.is_some_and(|ip| net.contains(&ip))
                    })
                }
                // No field known: fails closed.
                None => by_selector |= fails_open,
            },
        }
    }
    if !(by_selector || by_network) {
        return false;
    }
    let entries = rule.get("protocols").or(rule.get("ports"));
    let Some(entries) = entries else {
        return true;
    };
    // A named port resolves on the destination pod: `me` for ingress; for egress the peer, when a
    // selector matched it.
    let target = match direction {
        Direction::Ingress => Some(me),
        Direction::Egress => Some(other).filter(|_| by_selector),
    };
    let named = |name: &Value| {
        let name = name.as_str().unwrap();
        target.and_then(|p| p.named_port(name, protocol)) == Some(port)
    };
    let range = |proto: &str, lo: u64, hi: u64| {
        proto.eq_ignore_ascii_case(protocol.as_str()) && (lo..=hi).contains(&u64::from(port))
    };
    entries.as_array().unwrap().iter().any(|e| {
        if let Some(name) = e.get("destinationNamedPort").or(e.get("namedPort")) {
            return named(name);
        }
        if let Some(p) = e.get("portNumber") {
            let n = p["port"].as_u64().unwrap();
            return range(p["protocol"].as_str().unwrap_or("TCP"), n, n);
        }
        if let Some(p) = e.get("portRange") {
            let proto = p["protocol"].as_str().unwrap_or("TCP");
            return range(
                proto,
                p["start"].as_u64().unwrap(),
                p["end"].as_u64().unwrap(),
            );
        }
        for proto in ["tcp", "udp", "sctp"] {
            if let Some(d) = e.get(proto).map(|p| &p["destinationPort"]) {
                return match d.get("number") {
                    Some(n) => range(proto, n.as_u64().unwrap(), n.as_u64().unwrap()),
                    None => range(
                        proto,
                        d["range"]["start"].as_u64().unwrap(),
                        d["range"]["end"].as_u64().unwrap(),
                    ),
                };
            }
        }
        // No field known: fails closed.
        fails_open
    })
}

/// The first rule of `tier`'s policies matching the flow: Some((kind, name, index, action)).
fn naive_first(
    state: &ClusterState,
    tier: &str,
    direction: Direction,
    me: &PodInfo,
    other: &PodInfo,
    port: u16,
    protocol: Protocol,
) -> Option<(Kind, String, usize, String)> {
    for p in naive_tier(state, tier, direction, me) {
        let rules = p.policy.object().spec[direction.as_str()]
            .as_array()
            .unwrap();
        for (i, rule) in rules.iter().enumerate() {
            if naive_rule_matches(state, rule, direction, me, other, port, protocol) {
                let action = rule["action"].as_str().unwrap().to_string();
                return Some((p.kind(), p.name.clone(), i, action));
            }
        }
    }
    None
}

/// Who decides one direction (§7): Admin's first match (Pass goes on), NetworkPolicy where it
/// isolates, else Baseline's first match, else the default.
fn decider(
    state: &ClusterState,
    direction: Direction,
    me: &PodInfo,
    other: &PodInfo,
    port: u16,
    protocol: Protocol,
) -> Decider {
    for tier in ["Admin", "NetworkPolicy", "Baseline"] {
        if tier == "NetworkPolicy" {
            if state.policies.iter().any(|p| selects(p, me, direction)) {
                return Decider::Policy(side_allows(state, direction, me, other, port, protocol));
            }
            continue;
        }
        if let Some((kind, name, i, action)) =
            naive_first(state, tier, direction, me, other, port, protocol)
        {
            if action != "Pass" {
                return Decider::Tier(kind, name, i, action != "Deny");
            }
        }
    }
    Decider::Default
}

fn allows(decider: &Decider) -> bool {
    match decider {
        Decider::Tier(.., allowed) | Decider::Policy(allowed) => *allowed,
        Decider::Default => true,
    }
}

/// NetworkPolicy alone (§1–4): allowed unless isolated, then by any selecting policy's rule.
fn side_allows(
    state: &ClusterState,
    direction: Direction,
    me: &PodInfo,
    other: &PodInfo,
    port: u16,
    protocol: Protocol,
) -> bool {
    let selecting: Vec<&PolicyInfo> = state
        .policies
        .iter()
        .filter(|p| selects(p, me, direction))
        .collect();
    selecting.is_empty()
        || selecting.iter().any(|p| {
            rule_parts(p, direction).iter().any(|(peers, ports)| {
                rule_allows(
                    state,
                    p,
                    peers.as_ref(),
                    ports.as_ref(),
                    direction,
                    me,
                    other,
                    port,
                    protocol,
                )
            })
        })
}

fn naive(state: &ClusterState, src: PodId, dst: PodId, port: u16, protocol: Protocol) -> bool {
    let (s, d) = (&state.pods[src], &state.pods[dst]);
    let enforced = |me: &PodInfo| !me.host_network;
    src == dst
        || ((!enforced(s) || allows(&decider(state, Direction::Egress, s, d, port, protocol)))
            && (!enforced(d) || allows(&decider(state, Direction::Ingress, d, s, port, protocol))))
}

fn check(seed: u64) -> Result<(), TestCaseError> {
    let state = cluster(seed);
    let engine = Engine::new(Arc::new(state.clone()));
    let mut cache = AddrCache::default();
    let compiled: IdVec<Class, _> = (engine.class_ids())
        .map(|c| engine.compile_class(c, &mut cache))
        .collect();
    for protocol in [Protocol::Tcp, Protocol::Udp, Protocol::Sctp, Protocol::Icmp] {
        for port in [53u16, 80, 81, 90, 8080] {
            let reach = engine.reach(port, protocol);
            for src in state.pods.ids() {
                for dst in state.pods.ids() {
                    let expected = naive(&state, src, dst, port, protocol);
                    let what = format!(
                        "seed {seed}: {} -> {} {protocol} {port}",
                        state.pods[src].key(),
                        state.pods[dst].key()
                    );
                    let class_level =
                        src == dst || reach.allowed(engine.class_of(src), engine.class_of(dst));
                    prop_assert_eq!(class_level, expected, "class reach, {}", what);
                    let verdict = engine.verdict(&Flow {
                        src: Endpoint::Pod(src),
                        dst: Endpoint::Pod(dst),
                        port,
                        protocol,
                    });
                    prop_assert_eq!(verdict.allowed, expected, "verdict, {}", what);
                    if src != dst {
                        let (s, d) = (&state.pods[src], &state.pods[dst]);
                        let kernel = compiled[engine.class_of(src)].allows(
                            Direction::Egress,
                            d.ip,
                            port,
                            protocol,
                        ) && compiled[engine.class_of(dst)].allows(
                            Direction::Ingress,
                            s.ip,
                            port,
                            protocol,
                        );
                        prop_assert_eq!(kernel, expected, "compiled rules, {}", what);
                        // What a kernel chain is: the rules flattened to one first-match list.
                        let flat = |c: ClassId, direction, peer: Option<IpAddr>| {
                            let rules = &compiled[c];
                            let rules = match direction {
                                Direction::Ingress => &rules.ingress,
                                Direction::Egress => &rules.egress,
                            };
                            (rules.as_ref()).is_none_or(|r| {
                                r.flatten(&mut AddrCache::default())
                                    .allows(peer, port, protocol)
                            })
                        };
                        let chains = flat(engine.class_of(src), Direction::Egress, d.ip)
                            && flat(engine.class_of(dst), Direction::Ingress, s.ip);
                        prop_assert_eq!(chains, expected, "flattened rules, {}", what);
                        for (side, me, other) in [(&verdict.egress, s, d), (&verdict.ingress, d, s)]
                        {
                            let selecting: Vec<String> = state
                                .policies
                                .iter()
                                .filter(|p| selects(p, me, side.direction))
                                .map(|p| format!("{}/{}", p.namespace, p.name))
                                .collect();
                            let decided =
                                decider(&state, side.direction, me, other, port, protocol);
                            let by_policy = matches!(decided, Decider::Policy(_));
                            match &side.decision {
                                Decision::Allowed { by } => {
                                    prop_assert!(by_policy, "{:?}, {}", decided, what);
                                    for r in by {
                                        let p = state
                                            .policies
                                            .iter()
                                            .find(|p| {
                                                p.name == r.policy.name
                                                    && p.namespace == r.policy.namespace
                                            })
                                            .unwrap();
                                        let (peers, ports) = &rule_parts(p, side.direction)[r.rule];
                                        let ok = rule_allows(
                                            &state,
                                            p,
                                            peers.as_ref(),
                                            ports.as_ref(),
                                            side.direction,
                                            me,
                                            other,
                                            port,
                                            protocol,
                                        );
                                        prop_assert!(
                                            ok,
                                            "listed rule {:?} does not allow, {}",
                                            r,
                                            what
                                        );
                                    }
                                }
                                Decision::Denied { isolating } => {
                                    prop_assert!(by_policy, "{:?}, {}", decided, what);
                                    let listed: Vec<String> = isolating
                                        .iter()
                                        .map(|m| {
                                            format!("{}/{}", m.policy.namespace, m.policy.name)
                                        })
                                        .collect();
                                    prop_assert_eq!(
                                        listed,
                                        selecting,
                                        "isolating policies, {}",
                                        what
                                    );
                                }
                                Decision::NotIsolated => {
                                    prop_assert!(selecting.is_empty(), "not isolated, {}", what);
                                    prop_assert_eq!(&decided, &Decider::Default, "{}", what);
                                }
                                Decision::Unenforced { .. } => {
                                    prop_assert!(me.host_network, "unenforced, {}", what)
                                }
                                Decision::Tier { rule } => {
                                    let named = Decider::Tier(
                                        rule.policy.kind,
                                        rule.policy.name.clone(),
                                        rule.rule,
                                        rule.action != TierAction::Deny,
                                    );
                                    prop_assert_eq!(&decided, &named, "{}", what);
                                }
                            }
                        }
                    }
                }
            }
        }
    }
    // Addresses outside the cluster (inside `networks` and ipBlocks or not): the verdict of a
    // pod's side, its compiled rules and their flattened chain agree.
    let outside: [IpAddr; 4] =
        ["203.0.113.7", "10.0.0.9", "10.0.1.200", "fd00::7"].map(|a| a.parse().unwrap());
    for (id, pod) in state.pods.iter_enumerated() {
        if pod.host_network {
            continue;
        }
        let rules = &compiled[engine.class_of(id)];
        for ip in outside
            .into_iter()
            .filter(|ip| state.pod_by_ip(*ip).is_none())
        {
            for (port, protocol) in [
                (80u16, Protocol::Tcp),
                (53, Protocol::Udp),
                (0, Protocol::Icmp),
            ] {
                for (direction, src, dst) in [
                    (Direction::Egress, Endpoint::Pod(id), Endpoint::Ip(ip)),
                    (Direction::Ingress, Endpoint::Ip(ip), Endpoint::Pod(id)),
                ] {
                    let flow = Flow {
                        src,
                        dst,
                        port,
                        protocol,
                    };
                    let side = engine.side(direction, &flow).decision.allows();
                    let kernel = rules.allows(direction, Some(ip), port, protocol);
                    let governed = match direction {
                        Direction::Ingress => &rules.ingress,
                        Direction::Egress => &rules.egress,
                    };
                    let chain = (governed.as_ref()).is_none_or(|r| {
                        r.flatten(&mut AddrCache::default())
                            .allows(Some(ip), port, protocol)
                    });
                    let what = format!(
                        "seed {seed}: {} {direction:?} {ip} {protocol} {port}",
                        pod.key()
                    );
                    prop_assert_eq!(side, kernel, "compiled rules, {}", &what);
                    prop_assert_eq!(chain, kernel, "flattened rules, {}", &what);
                }
            }
        }
    }
    Ok(())
}

/// `state` after random churn: some pods relabelled, re-ported, moved to another address (as new
/// objects), copied unchanged (a new object equal to the old), or gone, and new ones added; the
/// rest shared with `state`, as the loader shares unchanged pods. Now and then a namespace is
/// relabelled, and policies are edited, removed or added.
fn churned(state: &ClusterState, seed: u64) -> ClusterState {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x9e37_79b9);
    let namespaces: Vec<String> = state.namespaces.iter().map(|n| n.name.clone()).collect();
    let mut pods: Vec<Arc<PodInfo>> = Vec::new();
    for shared in &state.pods {
        let mut p = PodInfo::clone(shared);
        match rng.random_range(0..7) {
            0 => continue,
            1 => p.labels = labels(&mut rng),
            2 => p.ports = pod(&mut rng, 0, &namespaces).ports,
            3 => p.ip = pod(&mut rng, 0, &namespaces).ip,
            4 => {}
            _ => {
                pods.push(shared.clone());
                continue;
            }
        }
        pods.push(Arc::new(p));
    }
    for i in 0..rng.random_range(0..4) {
        pods.push(Arc::new(pod(&mut rng, 100 + i, &namespaces)));
    }
    let mut seen = std::collections::HashSet::new();
    pods.retain(|p| seen.insert(p.ip));
    let mut namespaces = state.namespaces.as_slice().to_vec();
    if rng.random_bool(0.1) {
        namespaces[0].labels = labels(&mut rng);
    }
    let names: Vec<String> = namespaces.iter().map(|n| n.name.clone()).collect();
    let mut policies = state.policies.clone();
    if !policies.is_empty() && rng.random_bool(0.3) {
        let i = rng.random_range(0..policies.len());
        match rng.random_range(0..2) {
            0 => {
                policies.remove(i);
            }
            _ => {
                // Another policy of the same name and namespace.
                let edited = policy(&mut rng, &policies[i].name, &names);
                let mut object = edited.policy.object().clone();
                object.metadata.namespace = Some(policies[i].namespace.clone());
                policies[i] = valid(object);
            }
        }
    }
    if rng.random_bool(0.3) {
        policies.push(policy(&mut rng, "added", &names));
    }
    let mut tiers = state.tier_policies.clone();
    if !tiers.is_empty() && rng.random_bool(0.3) {
        let i = rng.random_range(0..tiers.len());
        match rng.random_range(0..2) {
            0 => {
                tiers.remove(i);
            }
            // Another spec under the same name (the kind may change: another key).
            _ => tiers[i] = tier_policy(&mut rng, &tiers[i].name.clone()),
        }
    }
    if rng.random_bool(0.2) {
        tiers.push(tier_policy(&mut rng, "tadded"));
    }
    let mut seen = std::collections::HashSet::new();
    tiers.retain(|p| seen.insert(p.key()));
    ClusterState::new(namespaces, pods, state.services.clone(), policies).with_tier_policies(tiers)
}

/// An engine compiled from the previous one after pod churn is the engine compiled from scratch:
/// same classes (same ids, same pods), the same reachability and the same dataplane rules, whether
/// compiled afresh or taken from the previous engine's rules where they cannot have changed.
fn check_incremental(seed: u64) -> Result<(), TestCaseError> {
    let before = Arc::new(cluster(seed));
    let after = Arc::new(churned(&before, seed));
    let fresh = Engine::new(after.clone());
    let previous = Engine::new(before);
    let previous_rules = previous.compile_classes(None);
    let reused = Engine::new_from(&previous, after.clone());
    let recompiled = reused.compile_classes(Some((&previous, &previous_rules)));
    prop_assert_eq!(fresh.class_count(), reused.class_count(), "seed {}", seed);
    for p in after.pods.ids() {
        prop_assert_eq!(fresh.class_of(p), reused.class_of(p), "seed {}", seed);
    }
    for protocol in [Protocol::Tcp, Protocol::Udp, Protocol::Sctp, Protocol::Icmp] {
        for port in [53u16, 80, 81, 90, 8080] {
            prop_assert_eq!(
                fresh.reach(port, protocol),
                reused.reach(port, protocol),
                "seed {} {}/{:?}",
                seed,
                port,
                protocol
            );
        }
    }
    let (mut a, mut b) = (AddrCache::default(), AddrCache::default());
    prop_assert_eq!(recompiled.len(), fresh.class_count());
    for (c, taken) in recompiled.iter_enumerated() {
        let rules = fresh.compile_class(c, &mut a);
        let again = reused.compile_class(c, &mut b);
        prop_assert_eq!(&rules, &again, "seed {} class {:?}", seed, c);
        prop_assert_eq!(
            &rules,
            &**taken,
            "seed {} class {:?} (reused rules)",
            seed,
            c
        );
    }
    // Each class's counterpart: a pod that stayed alike (same name, labels, ports, address) is in
    // the counterpart of its previous class; counterparts are distinct and look alike.
    prop_assert!(fresh.counterparts(&previous).is_none());
    let old = previous.state();
    let (before, now) = (blocks(old), blocks(&after));
    // With an ipBlock gone, classes that differed only by it merge (one of theirs the counterpart).
    let kept = before.keys().all(|b| now.contains_key(b));
    let counterparts = reused.counterparts(&previous);
    prop_assert!(counterparts.is_some(), "seed {}: compiled afresh", seed);
    let counterparts = counterparts.unwrap();
    // A pod in an ipBlock new since has left its class.
    let added: Vec<_> = (now.iter())
        .filter(|(b, _)| !before.contains_key(*b))
        .map(|(_, block)| block)
        .collect();
    let in_added = |ip: Option<IpAddr>| {
        ip.is_some_and(|ip| {
            (added.iter())
                .any(|(cidr, except)| cidr.contains(&ip) && !except.iter().any(|e| e.contains(&ip)))
        })
    };
    for (p, pod) in after.pods.iter_enumerated() {
        let Some(q) = old.pod_id(&pod.namespace, &pod.name) else {
            continue;
        };
        let was = &old.pods[q];
        if (&was.labels, &was.ports, was.ip, was.host_network)
            == (&pod.labels, &pod.ports, pod.ip, pod.host_network)
        {
            let c = reused.class_of(p);
            if kept && added.is_empty() {
                prop_assert_eq!(counterparts[c], Some(previous.class_of(q)), "seed {}", seed);
            } else if !in_added(pod.ip) && kept {
                // Its class, or a part of it that new ipBlocks split off, kept the counterpart.
                let o = previous.class_of(q);
                let split_off = |d: ClassId| counterparts[d] == Some(o);
                prop_assert!(
                    counterparts[c] == Some(o) || reused.class_ids().any(split_off),
                    "seed {}",
                    seed
                );
            }
        }
    }
    let mut seen = std::collections::HashSet::new();
    for (c, o) in counterparts.iter_enumerated() {
        let Some(o) = *o else { continue };
        prop_assert!(
            seen.insert(o),
            "seed {}: class {:?} is a counterpart twice",
            seed,
            o
        );
        let (p, q) = (
            &after.pods[reused.class_pods(c)[0]],
            &old.pods[previous.class_pods(o)[0]],
        );
        prop_assert_eq!(
            (&p.namespace, &p.labels),
            (&q.namespace, &q.labels),
            "seed {}",
            seed
        );
    }
    // The agent chains engines: a second step, from the derived engine (whose ipBlocks may be in
    // another order than a fresh engine's), gives the same answers again.
    let again = Arc::new(churned(&after, seed.wrapping_add(1)));
    let chained = Engine::new_from(&reused, again.clone());
    let fresh = Engine::new(again.clone());
    prop_assert_eq!(
        chained.class_count(),
        fresh.class_count(),
        "seed {} step 2",
        seed
    );
    for p in again.pods.ids() {
        prop_assert_eq!(
            chained.class_of(p),
            fresh.class_of(p),
            "seed {} step 2",
            seed
        );
    }
    for (port, protocol) in [(80u16, Protocol::Tcp), (53, Protocol::Udp)] {
        prop_assert_eq!(
            chained.reach(port, protocol),
            fresh.reach(port, protocol),
            "seed {} step 2",
            seed
        );
    }
    let chained_rules = chained.compile_classes(Some((&reused, &recompiled)));
    let mut cache = AddrCache::default();
    for (c, taken) in chained_rules.iter_enumerated() {
        let rules = fresh.compile_class(c, &mut cache);
        prop_assert_eq!(&rules, &**taken, "seed {} step 2 class {:?}", seed, c);
    }
    Ok(())
}

/// The distinct ipBlocks of `state`'s policies, in the directions they govern.
fn blocks(state: &ClusterState) -> BTreeMap<String, (ipnet::IpNet, Vec<ipnet::IpNet>)> {
    let peers = |p: &PolicyInfo| {
        let (ingress, egress) = types(p.policy.object());
        let spec = p.policy.object().spec.clone().unwrap_or_default();
        let from = (spec.ingress.into_iter().flatten().filter(|_| ingress))
            .flat_map(|r| r.from.into_iter().flatten());
        let to = (spec.egress.into_iter().flatten().filter(|_| egress))
            .flat_map(|r| r.to.into_iter().flatten());
        from.chain(to).collect::<Vec<_>>()
    };
    let net = |text: &str| text.parse::<ipnet::IpNet>().unwrap().trunc();
    let block = |cidr: ipnet::IpNet, except: Vec<ipnet::IpNet>| {
        (format!("{cidr} {except:?}"), (cidr, except))
    };
    let policies = (state.policies.iter())
        .flat_map(peers)
        .filter_map(|peer| peer.ip_block)
        .map(|b| {
            block(
                net(&b.cidr),
                b.except.iter().flatten().map(|e| net(e)).collect(),
            )
        });
    // The cluster-wide policies' `networks` are blocks too.
    let networks = (state.tier_policies.iter()).flat_map(|p| {
        let spec = &p.policy.object().spec;
        let rules = ["ingress", "egress"].map(|d| spec.get(d).and_then(Value::as_array));
        let peers = rules.into_iter().flatten().flatten();
        let peers = peers.flat_map(|r| r.get("to").or(r.get("from")).and_then(Value::as_array));
        let nets = peers
            .flatten()
            .flat_map(|peer| peer.get("networks").and_then(Value::as_array));
        let nets: Vec<ipnet::IpNet> = nets.flatten().map(|n| net(n.as_str().unwrap())).collect();
        nets
    });
    policies
        .chain(networks.map(|n| block(n, Vec::new())))
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]
    #[test]
    fn engine_equals_naive_evaluation(seed in any::<u64>()) {
        check(seed)?;
    }

    #[test]
    fn engine_from_the_previous_one_equals_a_fresh_engine(seed in any::<u64>()) {
        check_incremental(seed)?;
    }
}

/// A relabel to a value no pod carried before, which a policy selects: the compiled policies the
/// new engine reuses must see it (they were compiled when no pod had the value).
#[test]
fn reused_policies_see_label_values_that_appear_later() {
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let namespaces = vec!["ns0".to_string()];
    let mut a = pod(&mut rng, 0, &namespaces);
    a.labels = BTreeMap::from([("app".to_string(), "old".to_string())]);
    a.host_network = false;
    let policy: NetworkPolicy = serde_json::from_value(json!({
        "apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
        "metadata": {"name": "np", "namespace": "ns0"},
        "spec": {"podSelector": {"matchLabels": {"app": "new"}}, "policyTypes": ["Ingress"]}
    }))
    .unwrap();
    let policies = vec![valid(policy)];
    let ns = vec![NamespaceInfo {
        name: "ns0".into(),
        labels: BTreeMap::new(),
        annotations: BTreeMap::new(),
        origin: None,
    }];
    let before = ClusterState::new(ns.clone(), vec![a.clone()], Vec::new(), policies.clone());
    a.labels.insert("app".into(), "new".into());
    let after = Arc::new(ClusterState::new(ns, vec![a], Vec::new(), policies));
    let engine = Engine::new_from(&Engine::new(Arc::new(before)), after);
    let rules = engine.compile_class(engine.class_of(PodId::new(0)), &mut AddrCache::default());
    let ingress = rules.ingress.expect("governed");
    assert_eq!(ingress.policy, Some(Vec::new()), "isolated by the policy");
}

/// A namespace relabelled into what a policy's namespace selector matches: the rules of the
/// classes the policy selects change (their peers now hold that namespace's pods), even though no
/// class and no policy changed.
#[test]
fn a_namespace_relabelled_into_a_selector_changes_the_rules_of_who_uses_it() {
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    let names = vec!["ns0".to_string(), "ns1".to_string()];
    let mut pods = Vec::new();
    for (i, ns) in names.iter().enumerate() {
        let mut p = pod(&mut rng, i, &names);
        p.namespace = ns.clone();
        p.host_network = false;
        p.ip = Some(format!("10.9.0.{}", i + 1).parse().unwrap());
        pods.push(p);
    }
    let policy: NetworkPolicy = serde_json::from_value(json!({
        "apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
        "metadata": {"name": "np", "namespace": "ns0"},
        "spec": {"podSelector": {}, "ingress": [{"from": [{"namespaceSelector": {"matchLabels": {"team": "a"}}}]}]}
    }))
    .unwrap();
    let policies = vec![valid(policy)];
    let namespace = |name: &str, team: &str| NamespaceInfo {
        name: name.into(),
        labels: BTreeMap::from([("team".to_string(), team.to_string())]),
        annotations: BTreeMap::new(),
        origin: None,
    };
    let before = ClusterState::new(
        vec![namespace("ns0", "a"), namespace("ns1", "b")],
        pods.clone(),
        Vec::new(),
        policies.clone(),
    );
    let after = Arc::new(ClusterState::new(
        vec![namespace("ns0", "a"), namespace("ns1", "a")],
        pods,
        Vec::new(),
        policies,
    ));
    let previous = Engine::new(Arc::new(before));
    let previous_rules = previous.compile_classes(None);
    let engine = Engine::new_from(&previous, after.clone());
    assert!(
        engine.counterparts(&previous).is_some(),
        "compiled from the previous engine"
    );
    let rules = engine.compile_classes(Some((&previous, &previous_rules)));
    let fresh = Engine::new(after);
    let class = fresh.class_of(PodId::new(0));
    let expected = fresh.compile_class(class, &mut AddrCache::default());
    assert_eq!(*rules[engine.class_of(PodId::new(0))], expected);
}

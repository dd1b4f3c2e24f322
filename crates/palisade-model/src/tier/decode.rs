//! Validation and decoding of a cluster-wide policy in one walk ([`ValidTierPolicy::new`]), with
//! the API's rules (`shared/reference/networkpolicy.md` §7) and field paths such as
//! `spec.egress[2].to[0].networks[1]`. The spec is walked as JSON, not through serde types: the
//! API says a peer (or a protocols entry) with no field the reader knows fails closed, which a
//! typed decoder cannot tell from an empty one. Unknown fields anywhere else reject the object, as
//! for NetworkPolicy: a misspelt field changes what a policy does.
//!
//! [`ValidTierPolicy::new`]: super::ValidTierPolicy::new

use super::{
    NamespacedPods, Subject, Tier, TierAction, TierObject, TierPeer, TierPolicySpec, TierPort,
    TierRule,
};
use crate::key::Kind;
use crate::selector::SelectorSpec;
use crate::validate::{self, Issues};
use crate::Protocol;
use ipnet::IpNet;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use serde_json::{Map, Value};

/// What differs between the kinds: fields, limits and actions.
struct Shape {
    kind: Kind,
    /// The fields of `spec`.
    spec_fields: &'static [&'static str],
    /// The most rules per direction, and peers and port entries per rule.
    max_rules: usize,
    max_peers: usize,
    max_ports: usize,
    /// `protocols` (v1alpha2) or `ports` (v1alpha1).
    ports_field: &'static str,
    /// The fields of a port entry, which hold exactly one.
    port_fields: &'static [&'static str],
    /// The one of them that names a port.
    named_port: &'static str,
    /// The actions as spelt, and what each is.
    actions: &'static [(&'static str, TierAction)],
    /// The fields of an egress peer.
    egress_peers: &'static [&'static str],
}

const INGRESS_PEERS: &[&str] = &["namespaces", "pods"];
const V1ALPHA1_ACTIONS: &[(&str, TierAction)] = &[
    ("Allow", TierAction::Accept),
    ("Deny", TierAction::Deny),
    ("Pass", TierAction::Pass),
];
const V1ALPHA1_PORTS: &[&str] = &["portNumber", "namedPort", "portRange"];
const V1ALPHA1_EGRESS_PEERS: &[&str] = &["namespaces", "pods", "nodes", "networks"];

const CLUSTER: Shape = Shape {
    kind: Kind::ClusterNetworkPolicy,
    spec_fields: &["tier", "priority", "subject", "ingress", "egress"],
    max_rules: 25,
    max_peers: 25,
    max_ports: 25,
    ports_field: "protocols",
    port_fields: &["tcp", "udp", "sctp", "destinationNamedPort"],
    named_port: "destinationNamedPort",
    actions: &[
        ("Accept", TierAction::Accept),
        ("Deny", TierAction::Deny),
        ("Pass", TierAction::Pass),
    ],
    egress_peers: &["namespaces", "pods", "networks", "nodes", "domainNames"],
};

const ADMIN: Shape = Shape {
    kind: Kind::AdminNetworkPolicy,
    spec_fields: &["priority", "subject", "ingress", "egress"],
    max_rules: 100,
    max_peers: 100,
    max_ports: 100,
    ports_field: "ports",
    port_fields: V1ALPHA1_PORTS,
    named_port: "namedPort",
    actions: V1ALPHA1_ACTIONS,
    egress_peers: V1ALPHA1_EGRESS_PEERS,
};

const BASELINE: Shape = Shape {
    kind: Kind::BaselineAdminNetworkPolicy,
    spec_fields: &["subject", "ingress", "egress"],
    actions: &[("Allow", TierAction::Accept), ("Deny", TierAction::Deny)],
    ..ADMIN
};

/// Most CIDRs of a `networks` peer, and names of a `domainNames` one.
const MAX_ADDRESSES: usize = 25;
/// Longest rule name.
const MAX_RULE_NAME: usize = 100;
/// The name a BaselineAdminNetworkPolicy must have: it is a singleton.
const BASELINE_NAME: &str = "default";

/// Validates `object`, a `kind` (one of [`super::TIER_KINDS`]), and decodes its spec: the spec is
/// there exactly when no issue is an error.
pub(super) fn policy(kind: Kind, object: &TierObject) -> (Issues, Option<TierPolicySpec>) {
    let mut issues = Issues::default();
    let shape = match kind {
        Kind::ClusterNetworkPolicy => &CLUSTER,
        Kind::AdminNetworkPolicy => &ADMIN,
        Kind::BaselineAdminNetworkPolicy => &BASELINE,
        other => {
            issues.error(
                "kind",
                format!("{other} is not a cluster-wide policy; valid: ClusterNetworkPolicy, AdminNetworkPolicy, BaselineAdminNetworkPolicy"),
            );
            return (issues, None);
        }
    };
    header(shape, object, &mut issues);
    let spec = fields(&object.spec, "spec", &mut issues)
        .and_then(|spec| decode_spec(shape, spec, &mut issues));
    let spec = spec.filter(|_| !issues.has_errors());
    (issues, spec)
}

/// `apiVersion`, `kind` and `metadata`.
fn header(shape: &Shape, object: &TierObject, issues: &mut Issues) {
    let kind = shape.kind;
    if object.api_version != kind.api_version() {
        issues.error(
            "apiVersion",
            format!(
                "{:?} is not read for {kind}; use {}",
                object.api_version,
                kind.api_version()
            ),
        );
    }
    if object.kind != kind.as_str() {
        issues.error("kind", format!("{:?} is not {kind}", object.kind));
    }
    crate::objects::meta(&object.metadata, validate::dns1123_subdomain, issues);
    let name = object.metadata.name.as_deref();
    if kind == Kind::BaselineAdminNetworkPolicy && name.is_some_and(|n| n != BASELINE_NAME) {
        issues.error(
            "metadata.name",
            format!(
                "a BaselineAdminNetworkPolicy is a singleton: it must be named {BASELINE_NAME:?}"
            ),
        );
    }
}

fn decode_spec(
    shape: &Shape,
    spec: &Map<String, Value>,
    issues: &mut Issues,
) -> Option<TierPolicySpec> {
    only(spec, shape.spec_fields, "spec", issues);
    let tier = match shape.kind {
        Kind::ClusterNetworkPolicy => tier(get(spec, "tier"), issues),
        Kind::AdminNetworkPolicy => Some(Tier::Admin),
        _ => Some(Tier::Baseline),
    };
    let priority = match shape.kind {
        Kind::BaselineAdminNetworkPolicy => Some(None),
        _ => priority(get(spec, "priority"), issues).map(Some),
    };
    let subject = match get(spec, "subject") {
        Some(value) => subject(value, issues),
        None => {
            issues.error(
                "spec.subject",
                "spec.subject is required: exactly one of namespaces (a label selector) or pods ({namespaceSelector, podSelector})",
            );
            None
        }
    };
    let ingress = rules(shape, spec, &INGRESS, issues);
    let egress = rules(shape, spec, &Direction::egress(shape), issues);
    Some(TierPolicySpec {
        tier: tier?,
        priority: priority?,
        subject: subject?,
        ingress: ingress?,
        egress: egress?,
    })
}

fn tier(value: Option<&Value>, issues: &mut Issues) -> Option<Tier> {
    let valid = "valid: Admin (before NetworkPolicy), Baseline (after it)";
    match value.map(Value::as_str) {
        Some(Some("Admin")) => Some(Tier::Admin),
        Some(Some("Baseline")) => Some(Tier::Baseline),
        None => {
            issues.error("spec.tier", format!("spec.tier is required; {valid}"));
            None
        }
        Some(_) => {
            let given = value.map(shown).unwrap_or_default();
            issues.error("spec.tier", format!("unknown tier {given}; {valid}"));
            None
        }
    }
}

fn priority(value: Option<&Value>, issues: &mut Issues) -> Option<u32> {
    let valid = "an integer from 0 to 1000 (lower is evaluated first)";
    let Some(value) = value else {
        issues.error(
            "spec.priority",
            format!("spec.priority is required: {valid}"),
        );
        return None;
    };
    match value.as_u64().filter(|p| *p <= 1000) {
        Some(p) => u32::try_from(p).ok(),
        None => {
            issues.error(
                "spec.priority",
                format!("{} is out of range: must be {valid}", shown(value)),
            );
            None
        }
    }
}

fn subject(value: &Value, issues: &mut Issues) -> Option<Subject> {
    let path = "spec.subject";
    let map = fields(value, path, issues)?;
    match one_of(map, INGRESS_PEERS, path, "the subject", false, issues) {
        OneOf::Field("namespaces", value) => {
            selector(value, &format!("{path}.namespaces"), issues).map(Subject::Namespaces)
        }
        OneOf::Field(_, value) => {
            namespaced_pods(value, &format!("{path}.pods"), issues).map(Subject::Pods)
        }
        OneOf::Unknown(_) | OneOf::Invalid => None,
    }
}

/// One direction's field names.
struct Direction {
    field: &'static str,
    peers_field: &'static str,
    peers: &'static [&'static str],
}

const INGRESS: Direction = Direction {
    field: "ingress",
    peers_field: "from",
    peers: INGRESS_PEERS,
};

impl Direction {
    fn egress(shape: &Shape) -> Direction {
        Direction {
            field: "egress",
            peers_field: "to",
            peers: shape.egress_peers,
        }
    }
}

/// `spec.ingress` or `spec.egress` (absent: no rule).
fn rules(
    shape: &Shape,
    spec: &Map<String, Value>,
    direction: &Direction,
    issues: &mut Issues,
) -> Option<Vec<TierRule>> {
    let path = format!("spec.{}", direction.field);
    let Some(value) = get(spec, direction.field) else {
        return Some(Vec::new());
    };
    let items = list(value, &path, 0, shape.max_rules, "rules", issues)?;
    let rules: Vec<_> = (items.iter().enumerate())
        .map(|(i, r)| rule(shape, direction, r, &format!("{path}[{i}]"), issues))
        .collect();
    rules.into_iter().collect()
}

fn rule(
    shape: &Shape,
    direction: &Direction,
    value: &Value,
    path: &str,
    issues: &mut Issues,
) -> Option<TierRule> {
    let map = fields(value, path, issues)?;
    let known = ["name", "action", direction.peers_field, shape.ports_field];
    only(map, &known, path, issues);
    let name = rule_name(get(map, "name"), path, issues);
    let action = action(shape, get(map, "action"), &format!("{path}.action"), issues);
    let peers_path = format!("{path}.{}", direction.peers_field);
    let peers = match get(map, direction.peers_field) {
        Some(value) => list(value, &peers_path, 1, shape.max_peers, "peers", issues).map(|items| {
            (items.iter().enumerate())
                .map(|(j, p)| {
                    peer(
                        direction.peers,
                        action,
                        p,
                        &format!("{peers_path}[{j}]"),
                        issues,
                    )
                })
                .collect::<Vec<_>>()
        }),
        None => {
            issues.error(
                &peers_path,
                format!(
                    "{} is required: 1-{} peers, each one of {}",
                    direction.peers_field,
                    shape.max_peers,
                    direction.peers.join(", ")
                ),
            );
            None
        }
    };
    let ports_path = format!("{path}.{}", shape.ports_field);
    let ports = match get(map, shape.ports_field) {
        None => Some(None),
        Some(value) => {
            list(value, &ports_path, 1, shape.max_ports, "entries", issues).map(|items| {
                Some(
                    (items.iter().enumerate())
                        .map(|(j, p)| port(shape, p, &format!("{ports_path}[{j}]"), issues))
                        .collect::<Vec<_>>(),
                )
            })
        }
    };
    named_ports_need_pods(
        shape,
        direction,
        peers.as_deref(),
        ports.as_ref(),
        path,
        issues,
    );
    Some(TierRule {
        name: name?,
        action: action?,
        peers: peers?.into_iter().collect::<Option<_>>()?,
        ports: match ports? {
            Some(ports) => Some(ports.into_iter().collect::<Option<_>>()?),
            None => None,
        },
    })
}

/// A named port resolves on a destination pod: not in a rule whose peers are addresses (the API's
/// CEL rule).
fn named_ports_need_pods(
    shape: &Shape,
    direction: &Direction,
    peers: Option<&[Option<TierPeer>]>,
    ports: Option<&Option<Vec<Option<TierPort>>>>,
    path: &str,
    issues: &mut Issues,
) {
    let addresses = (peers.into_iter().flatten().enumerate()).find(|(_, p)| {
        matches!(
            p,
            Some(TierPeer::Networks(_) | TierPeer::Nodes(_) | TierPeer::DomainNames(_))
        )
    });
    let Some((at, _)) = addresses else { return };
    for (j, port) in ports.into_iter().flatten().flatten().enumerate() {
        if matches!(port, Some(TierPort::Named(_))) {
            issues.error(
                format!("{path}.{}[{j}].{}", shape.ports_field, shape.named_port),
                format!(
                    "a named port cannot be used in a rule with networks, nodes or domainNames peers ({}[{at}]): they have no named ports; use a port number or range, or put those peers in a rule of their own",
                    direction.peers_field
                ),
            );
        }
    }
}

fn rule_name(value: Option<&Value>, path: &str, issues: &mut Issues) -> Option<Option<String>> {
    let Some(value) = value else {
        return Some(None);
    };
    let path = format!("{path}.name");
    let name = string(value, &path, issues)?;
    let length = name.chars().count();
    if length > MAX_RULE_NAME {
        issues.error(
            path,
            format!("a rule name is at most {MAX_RULE_NAME} characters ({length} given)"),
        );
        return None;
    }
    Some((!name.is_empty()).then(|| name.to_string()))
}

fn action(
    shape: &Shape,
    value: Option<&Value>,
    path: &str,
    issues: &mut Issues,
) -> Option<TierAction> {
    let valid: Vec<&str> = shape.actions.iter().map(|(name, _)| *name).collect();
    let valid = format!("valid for {}: {}", shape.kind, valid.join(", "));
    let Some(value) = value else {
        issues.error(path, format!("action is required; {valid}"));
        return None;
    };
    let found =
        (value.as_str()).and_then(|given| shape.actions.iter().find(|(name, _)| *name == given));
    match found {
        Some((_, action)) => Some(*action),
        None => {
            issues.error(path, format!("unknown action {}; {valid}", shown(value)));
            None
        }
    }
}

/// One peer of `from` / `to`: exactly one of `known`. `action` (when valid) says what failing
/// closed means for a peer of no known field.
fn peer(
    known: &'static [&'static str],
    action: Option<TierAction>,
    value: &Value,
    path: &str,
    issues: &mut Issues,
) -> Option<TierPeer> {
    let map = fields(value, path, issues)?;
    let at = |field: &str| format!("{path}.{field}");
    match one_of(map, known, path, "a peer", true, issues) {
        OneOf::Field("namespaces", v) => {
            selector(v, &at("namespaces"), issues).map(TierPeer::Namespaces)
        }
        OneOf::Field("pods", v) => namespaced_pods(v, &at("pods"), issues).map(TierPeer::Pods),
        OneOf::Field("nodes", v) => selector(v, &at("nodes"), issues).map(TierPeer::Nodes),
        OneOf::Field("networks", v) => networks(v, &at("networks"), issues).map(TierPeer::Networks),
        OneOf::Field(_, v) => {
            domain_names(v, action, &at("domainNames"), issues).map(TierPeer::DomainNames)
        }
        OneOf::Unknown(fields) => {
            let effect = match action {
                Some(TierAction::Accept) => "this Accept rule matches nothing through it",
                Some(TierAction::Deny | TierAction::Pass) => {
                    "this rule matches all traffic through it (as if it selected everyone)"
                }
                None => {
                    "an Accept rule matches nothing through it; a Deny or Pass rule, all traffic"
                }
            };
            issues.warning(
                path,
                format!(
                    "a peer with no field Palisade knows ({}; known: {}), perhaps of a newer API version: it fails closed, as the API says: {effect}",
                    fields.join(", "),
                    known.join(", ")
                ),
            );
            Some(TierPeer::Unknown)
        }
        OneOf::Invalid => None,
    }
}

/// `{namespaceSelector, podSelector}`: `podSelector` required, `namespaceSelector` `{}` (every
/// namespace) when omitted.
fn namespaced_pods(value: &Value, path: &str, issues: &mut Issues) -> Option<NamespacedPods> {
    let map = fields(value, path, issues)?;
    only(map, &["namespaceSelector", "podSelector"], path, issues);
    let namespaces = match get(map, "namespaceSelector") {
        Some(v) => selector(v, &format!("{path}.namespaceSelector"), issues),
        None => Some(SelectorSpec::default()),
    };
    let pods = match get(map, "podSelector") {
        Some(v) => selector(v, &format!("{path}.podSelector"), issues),
        None => {
            issues.error(
                format!("{path}.podSelector"),
                "podSelector is required (`{}` selects every pod of the namespaces)",
            );
            None
        }
    };
    Some(NamespacedPods {
        namespaces: namespaces?,
        pods: pods?,
    })
}

/// A label selector, validated as any other (`validate::selector`); its unknown fields rejected.
fn selector(value: &Value, path: &str, issues: &mut Issues) -> Option<SelectorSpec> {
    let selector = match serde_path_to_error::deserialize::<_, LabelSelector>(value) {
        Ok(selector) => selector,
        Err(e) => {
            let inner = e.path().to_string();
            let at = if inner == "." {
                path.to_string()
            } else {
                format!("{path}.{inner}")
            };
            issues.error(
                at,
                format!(
                    "{}; expected a label selector (matchLabels, matchExpressions)",
                    e.into_inner()
                ),
            );
            return None;
        }
    };
    let mut unknown = Vec::new();
    if let Ok(known) = serde_json::to_value(&selector) {
        crate::objects::unknown_fields(value, &known, path, &mut unknown);
    }
    for field in &unknown {
        issues.error(
            field,
            "unknown field of a label selector; valid: matchLabels, matchExpressions (key, operator, values)",
        );
    }
    let spec = validate::selector(&selector, path, issues);
    spec.filter(|_| unknown.is_empty())
}

/// `networks`: 1-25 CIDRs, read with host bits cleared (a warning when they were set), as an
/// ipBlock's.
fn networks(value: &Value, path: &str, issues: &mut Issues) -> Option<Vec<IpNet>> {
    let items = list(value, path, 1, MAX_ADDRESSES, "CIDRs", issues)?;
    let nets: Vec<_> = (items.iter().enumerate())
        .map(|(i, item)| {
            let at = format!("{path}[{i}]");
            let text = string(item, &at, issues)?;
            validate::cidr_at(text, &at, issues)
        })
        .collect();
    nets.into_iter().collect()
}

/// `domainNames`: 1-25 names, exact or with a `*.` prefix, in Accept rules only. Palisade does
/// not enforce them: the peer matches no address, and a warning says so.
fn domain_names(
    value: &Value,
    action: Option<TierAction>,
    path: &str,
    issues: &mut Issues,
) -> Option<Vec<String>> {
    let items = list(value, path, 1, MAX_ADDRESSES, "domain names", issues)?;
    let names: Vec<_> = (items.iter().enumerate())
        .map(|(i, item)| {
            let at = format!("{path}[{i}]");
            let name = string(item, &at, issues)?;
            if domain_name(name) {
                Some(name.to_string())
            } else {
                issues.error(
                    at,
                    format!("{name:?} is not a domain name: dot-separated labels of letters, digits, '-' and '_' (not at a label's start or end), optionally after '*.' (e.g. 'example.com' or '*.example.com')"),
                );
                None
            }
        })
        .collect();
    if let Some(action) = action.filter(|a| *a != TierAction::Accept) {
        issues.error(
            path,
            format!("domainNames may only be used in Accept rules (this rule's action is {}); match addresses with networks instead", action.as_str()),
        );
        return None;
    }
    issues.warning(
        path,
        "Palisade does not enforce domain names: this peer matches no address, so nothing is accepted through it",
    );
    names.into_iter().collect()
}

/// The API's pattern `^(\*\.)?([a-zA-Z0-9]([-a-zA-Z0-9_]*[a-zA-Z0-9])?\.)+[a-zA-Z0-9]([-a-zA-Z0-9_]*[a-zA-Z0-9])?\.?$`.
fn domain_name(name: &str) -> bool {
    let name = name.strip_prefix("*.").unwrap_or(name);
    let name = name.strip_suffix('.').unwrap_or(name);
    let label = |l: &str| {
        let alnum = |c: char| c.is_ascii_alphanumeric();
        l.starts_with(alnum)
            && l.ends_with(alnum)
            && l.chars().all(|c| alnum(c) || c == '-' || c == '_')
    };
    name.split('.').count() >= 2 && name.split('.').all(label)
}

/// One entry of `protocols` (v1alpha2) or `ports` (v1alpha1): exactly one field.
fn port(shape: &Shape, value: &Value, path: &str, issues: &mut Issues) -> Option<TierPort> {
    let map = fields(value, path, issues)?;
    let at = |field: &str| format!("{path}.{field}");
    match one_of(map, shape.port_fields, path, "a port entry", true, issues) {
        OneOf::Field(field, v) if field == shape.named_port => {
            let at = at(field);
            let name = string(v, &at, issues)?;
            issues.check(at, validate::port_name(name))?;
            Some(TierPort::Named(name.to_string()))
        }
        OneOf::Field(field @ ("tcp" | "udp" | "sctp"), v) => {
            let protocol = match field {
                "tcp" => Protocol::Tcp,
                "udp" => Protocol::Udp,
                _ => Protocol::Sctp,
            };
            destination_port(protocol, v, &at(field), issues)
        }
        OneOf::Field("portNumber", v) => {
            let at = at("portNumber");
            let map = fields(v, &at, issues)?;
            only(map, &["protocol", "port"], &at, issues);
            let protocol = port_protocol(map, &at, issues);
            let number = required_port(map, "port", &at, issues);
            Some(TierPort::Range {
                protocol: protocol?,
                first: number?,
                last: number?,
            })
        }
        OneOf::Field(_, v) => {
            let at = at("portRange");
            let map = fields(v, &at, issues)?;
            only(map, &["protocol", "start", "end"], &at, issues);
            let protocol = port_protocol(map, &at, issues);
            let range = range(map, &at, issues);
            let (first, last) = range?;
            Some(TierPort::Range {
                protocol: protocol?,
                first,
                last,
            })
        }
        OneOf::Unknown(fields) => {
            issues.warning(
                path,
                format!(
                    "a port entry with no field Palisade knows ({}; known: {}), perhaps of a newer API version: it fails closed, as the API says: an Accept rule matches no port through it, a Deny or Pass rule every port",
                    fields.join(", "),
                    shape.port_fields.join(", ")
                ),
            );
            Some(TierPort::Unknown)
        }
        OneOf::Invalid => None,
    }
}

/// `tcp|udp|sctp: {destinationPort: {number: N} | {range: {start, end}}}`.
fn destination_port(
    protocol: Protocol,
    value: &Value,
    path: &str,
    issues: &mut Issues,
) -> Option<TierPort> {
    let map = fields(value, path, issues)?;
    only(map, &["destinationPort"], path, issues);
    let at = format!("{path}.destinationPort");
    let Some(port) = get(map, "destinationPort") else {
        issues.error(
            at,
            "destinationPort is required: {number: N} or {range: {start, end}} (omit protocols to match every port of every protocol)",
        );
        return None;
    };
    let map = fields(port, &at, issues)?;
    let (first, last) = match one_of(
        map,
        &["number", "range"],
        &at,
        "destinationPort",
        false,
        issues,
    ) {
        OneOf::Field("number", _) => {
            let n = required_port(map, "number", &at, issues)?;
            (n, n)
        }
        OneOf::Field(_, range_value) => {
            let at = format!("{at}.range");
            let map = fields(range_value, &at, issues)?;
            only(map, &["start", "end"], &at, issues);
            range(map, &at, issues)?
        }
        OneOf::Unknown(_) | OneOf::Invalid => return None,
    };
    Some(TierPort::Range {
        protocol,
        first,
        last,
    })
}

/// `start` and `end` of a range: both ports, `start < end`.
fn range(map: &Map<String, Value>, path: &str, issues: &mut Issues) -> Option<(u16, u16)> {
    let start = required_port(map, "start", path, issues);
    let end = required_port(map, "end", path, issues);
    let (start, end) = (start?, end?);
    if start >= end {
        issues.error(
            format!("{path}.end"),
            format!("end {end} must be greater than start {start} (for a single port, use a port number)"),
        );
        return None;
    }
    Some((start, end))
}

/// A v1alpha1 port's `protocol`: TCP, UDP or SCTP, TCP when omitted.
fn port_protocol(map: &Map<String, Value>, path: &str, issues: &mut Issues) -> Option<Protocol> {
    let at = format!("{path}.protocol");
    let given = match get(map, "protocol") {
        Some(v) => Some(string(v, &at, issues)?),
        None => None,
    };
    issues.check(at, validate::protocol(given))
}

/// The port number `map[field]`, required.
fn required_port(
    map: &Map<String, Value>,
    field: &str,
    path: &str,
    issues: &mut Issues,
) -> Option<u16> {
    let at = format!("{path}.{field}");
    let Some(value) = get(map, field) else {
        issues.error(at, format!("{field} is required: a port number 1-65535"));
        return None;
    };
    let Some(n) = value.as_i64() else {
        issues.error(
            at,
            format!("{} is not a port number: an integer 1-65535", shown(value)),
        );
        return None;
    };
    let n = i32::try_from(n).unwrap_or(if n < 0 { i32::MIN } else { i32::MAX });
    issues.check(at, validate::port_number(n))
}

/// Which one field of an object is set.
enum OneOf<'a> {
    /// Exactly one known field, and no other.
    Field(&'static str, &'a Value),
    /// Only fields not known (an API newer than Palisade's): these.
    Unknown(Vec<&'a str>),
    /// None, or more than one: reported.
    Invalid,
}

/// The one field of `known` that `map` sets (the API's MinProperties=1, MaxProperties=1). With
/// `fail_closed`, an object of fields none known is [`OneOf::Unknown`] for the caller to decode as
/// failing closed; otherwise, and beside a known field, unknown fields are errors.
fn one_of<'a>(
    map: &'a Map<String, Value>,
    known: &'static [&'static str],
    path: &str,
    what: &str,
    fail_closed: bool,
    issues: &mut Issues,
) -> OneOf<'a> {
    let set: Vec<(&'static str, &Value)> = (known.iter())
        .filter_map(|&k| get(map, k).map(|v| (k, v)))
        .collect();
    let unknown: Vec<&str> = (map.iter())
        .filter(|(k, v)| !v.is_null() && !known.contains(&k.as_str()))
        .map(|(k, _)| k.as_str())
        .collect();
    match set.as_slice() {
        [] if fail_closed && !unknown.is_empty() => return OneOf::Unknown(unknown),
        [] if unknown.is_empty() => issues.error(
            path,
            format!("{what} needs exactly one of: {}", known.join(", ")),
        ),
        [(field, value)] if unknown.is_empty() => return OneOf::Field(field, value),
        [_, _, ..] => {
            let names: Vec<&str> = set.iter().map(|(k, _)| *k).collect();
            issues.error(
                path,
                format!(
                    "{what} sets {}: exactly one of {} may be set (use one {what} each)",
                    names.join(" and "),
                    known.join(", ")
                ),
            );
        }
        _ => {}
    }
    only(map, known, path, issues);
    OneOf::Invalid
}

/// `value` as an object (`what` it is for the message), or an error.
fn fields<'a>(value: &'a Value, path: &str, issues: &mut Issues) -> Option<&'a Map<String, Value>> {
    match value {
        Value::Object(map) => Some(map),
        Value::Null => {
            issues.error(path, "is empty: a mapping of fields is expected here");
            None
        }
        other => {
            issues.error(
                path,
                format!("expected a mapping of fields, not {}", json_type(other)),
            );
            None
        }
    }
}

/// The field `key` of `map`; a null one is absent, as the API server reads it.
fn get<'a>(map: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    map.get(key).filter(|v| !v.is_null())
}

/// Reports the fields of `map` not in `known`.
fn only(map: &Map<String, Value>, known: &[&str], path: &str, issues: &mut Issues) {
    let unknown = (map.iter()).filter(|(k, v)| !v.is_null() && !known.contains(&k.as_str()));
    for (key, _) in unknown {
        issues.error(
            format!("{path}.{key}"),
            format!(
                "unknown field; valid here: {} (check its spelling and indentation)",
                known.join(", ")
            ),
        );
    }
}

/// `value` as a list of `min..=max` items (`what` they are); its items are not walked past the
/// limit.
fn list<'a>(
    value: &'a Value,
    path: &str,
    min: usize,
    max: usize,
    what: &str,
    issues: &mut Issues,
) -> Option<&'a [Value]> {
    let Value::Array(items) = value else {
        issues.error(
            path,
            format!("expected a list of {what}, not {}", json_type(value)),
        );
        return None;
    };
    let n = items.len();
    if n > max {
        issues.error(
            path,
            format!("at most {max} {what} are allowed ({n} given)"),
        );
        return None;
    }
    if n < min {
        issues.error(
            path,
            format!("at least {min} of {what} is required (an empty list is not valid; omit the field where it is optional)"),
        );
        return None;
    }
    Some(items)
}

/// `value` as a string, or an error.
fn string<'a>(value: &'a Value, path: &str, issues: &mut Issues) -> Option<&'a str> {
    let text = value.as_str();
    if text.is_none() {
        issues.error(path, format!("expected a string, not {}", json_type(value)));
    }
    text
}

/// What a JSON value is, for messages (the value itself may be large).
fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a mapping",
    }
}

/// A scalar as written; what anything else is.
fn shown(value: &Value) -> String {
    match value {
        Value::Array(_) | Value::Object(_) => json_type(value).to_string(),
        scalar => scalar.to_string(),
    }
}

//! `explain`: resolve the endpoints a user names, evaluate the flow and say why, in words (the
//! engine's reasons worded by [`crate::reason`]), as text or JSON.

use crate::reason;
use palisade_model::{ClusterState, Kind, ObjectKey, Protocol, TierAction};
use palisade_policy::{
    Decision, Direction, Endpoint, Engine, Engines, Flow, PolicyRef, Side, TierRuleRef, TierWalk,
    Verdict,
};
use serde::{Serialize, Serializer};
use std::fmt::Write as _;
use std::net::IpAddr;

/// Resolves `ns/pod`, `ns/workload` (its first pod) or an IP address. `default_ns` applies to a
/// bare name.
pub fn resolve_endpoint(
    state: &ClusterState,
    text: &str,
    default_ns: &str,
) -> Result<Endpoint, String> {
    if let Ok(ip) = text.parse::<IpAddr>() {
        return Ok(state.pod_by_ip(ip).map_or(Endpoint::Ip(ip), Endpoint::Pod));
    }
    let (ns, name) = text.split_once('/').unwrap_or((default_ns, text));
    if let Some(i) = state.pod_id(ns, name) {
        return Ok(Endpoint::Pod(i));
    }
    // A workload name: the pods it owns (directly, or through a ReplicaSet/Job named after it).
    let owned = state.pods.iter_enumerated().find(|(_, p)| {
        p.namespace == ns
            && p.owner.as_ref().is_some_and(|o| {
                o.name == name
                    || (o.name.starts_with(name)
                        && o.name[name.len()..].starts_with('-')
                        && matches!(o.kind.as_str(), "ReplicaSet" | "Job")
                        && !o.name[name.len() + 1..].contains('-'))
            })
    });
    owned.map(|(i, _)| Endpoint::Pod(i)).ok_or_else(|| {
        if state.namespace(ns).is_none() {
            format!("{text:?}: namespace {ns:?} not found")
        } else {
            format!("{text:?}: no pod or workload named {name:?} in namespace {ns:?}; use ns/pod or an IP address")
        }
    })
}

/// A destination port as given on the command line (`6379`, `53/UDP`, `http/TCP`): a number
/// (1-65535; 0 only with ICMP) or a port name (IANA_SVC_NAME) of the destination pod, with its
/// protocol (TCP when none is given). Checked when parsed, with what would be valid.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PortArg {
    /// The port.
    pub port: PortRef,
    /// Its protocol.
    pub protocol: Protocol,
}

/// A port by number, or by the name the destination pod gives one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PortRef {
    /// A port number.
    Number(u16),
    /// A named container port.
    Named(String),
}

impl std::str::FromStr for PortArg {
    type Err = String;

    fn from_str(text: &str) -> Result<PortArg, String> {
        let (port, protocol) = match text.split_once('/') {
            Some((port, proto)) => (port, proto.parse::<Protocol>()?),
            None => (text, Protocol::Tcp),
        };
        let port = if !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) {
            let number = port.parse::<u32>().unwrap_or(u32::MAX);
            match u16::try_from(number) {
                Ok(n) if n > 0 || protocol == Protocol::Icmp => PortRef::Number(n),
                _ => {
                    return Err(format!(
                        "port {port} is out of range: a port number is 1-65535 (or a port name such as http)"
                    ))
                }
            }
        } else {
            palisade_model::validate::port_name(port)?;
            PortRef::Named(port.to_string())
        };
        Ok(PortArg { port, protocol })
    }
}

/// The port number `port` stands for on `dst`: a number as it is, a name as the destination
/// pod's container port of that name and protocol.
pub fn resolve_port(state: &ClusterState, dst: Endpoint, port: &PortArg) -> Result<u16, String> {
    let name = match &port.port {
        PortRef::Number(n) => return Ok(*n),
        PortRef::Named(name) => name,
    };
    let Endpoint::Pod(i) = dst else {
        return Err(format!("named port {name:?} needs a destination pod"));
    };
    let pod = &state.pods[i];
    let protocol = port.protocol;
    pod.named_port(name, protocol)
        .ok_or_else(|| format!("pod {} has no {protocol} port named {name:?}", pod.key()))
}

/// The explanation of one flow; it serializes to what `explain -o json` prints.
pub struct Explanation {
    /// Source, as `pod ns/name (ip)` or an address.
    pub from: String,
    /// Destination.
    pub to: String,
    /// Destination port.
    pub port: u16,
    /// Protocol.
    pub protocol: Protocol,
    /// The verdict with reasons.
    pub verdict: Verdict,
    /// What the staged policies would change, when they change a side's decision.
    pub staged: Option<Staged>,
}

/// The verdict with the staged policies (annotated `policy.palisade.dev/audit-mode: "true"`) in
/// force, where it differs from the enforced one.
pub struct Staged {
    /// The verdict with reasons, staged policies in force.
    pub verdict: Verdict,
    /// The sides whose decision they change.
    pub changed: Vec<Direction>,
    /// The staged policies (to mark them where they decide).
    pub policies: Vec<ObjectKey>,
}

impl Staged {
    fn side(&self, direction: Direction) -> &Side {
        match direction {
            Direction::Egress => &self.verdict.egress,
            Direction::Ingress => &self.verdict.ingress,
        }
    }

    /// `(audit-mode)` after a staged policy's name.
    fn mark(&self, key: &ObjectKey) -> &'static str {
        match self.policies.contains(key) {
            true => " (audit-mode)",
            false => "",
        }
    }

    /// Who decides `side` with the staged policies in force, in words.
    fn deciders(&self, side: &Side) -> String {
        let network = |p: &PolicyRef| {
            let key = ObjectKey::new(Kind::NetworkPolicy, Some(&p.namespace), &p.name);
            format!(
                "NetworkPolicy {}/{}{}",
                p.namespace,
                p.name,
                self.mark(&key)
            )
        };
        let names: Vec<String> = match &side.decision {
            Decision::Tier { rule } => {
                let key = ObjectKey::new(rule.policy.kind, None, &rule.policy.name);
                vec![reason::tier_rule(rule, side.direction) + self.mark(&key)]
            }
            Decision::Allowed { by } => (by.iter())
                .map(|r| {
                    format!(
                        "{} {}",
                        network(&r.policy),
                        rule_field(side.direction, r.rule)
                    )
                })
                .collect(),
            Decision::Denied { isolating } => {
                isolating.iter().map(|m| network(&m.policy)).collect()
            }
            Decision::Unenforced { reason } => vec![reason::unenforced(reason, side.direction)],
            Decision::NotIsolated => vec!["the default (not isolated)".into()],
        };
        names.join(", ")
    }
}

/// `explain -o json`: the explanation with every reason in words.
#[derive(Serialize)]
struct Json<'a> {
    from: &'a str,
    to: &'a str,
    port: u16,
    protocol: Protocol,
    allowed: bool,
    egress: SideJson<'a>,
    ingress: SideJson<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    staged: Option<StagedJson<'a>>,
}

/// What the staged policies would change.
#[derive(Serialize)]
struct StagedJson<'a> {
    /// The verdict with them in force.
    allowed: bool,
    /// The sides they change, as they would decide.
    changed: Vec<SideJson<'a>>,
    /// Who would decide each changed side, in words (`(audit-mode)` marks a staged policy).
    by: Vec<String>,
}

#[derive(Serialize)]
struct SideJson<'a> {
    direction: Direction,
    /// `ns/name`.
    pod: Option<String>,
    #[serde(flatten)]
    decision: DecisionJson<'a>,
    /// How the Admin tier went, when a policy of it holds the pod.
    #[serde(skip_serializing_if = "Option::is_none")]
    admin: Option<TierWalkJson>,
    /// How the Baseline tier went, when it was reached and a policy of it holds the pod.
    #[serde(skip_serializing_if = "Option::is_none")]
    baseline: Option<TierWalkJson>,
}

/// A cluster-wide rule.
#[derive(Serialize)]
struct TierRuleJson {
    kind: &'static str,
    policy: String,
    tier: &'static str,
    priority: Option<u32>,
    rule: usize,
    name: Option<String>,
    action: &'static str,
    /// In words.
    text: String,
}

impl TierRuleJson {
    fn new(rule: &TierRuleRef, direction: Direction) -> Self {
        TierRuleJson {
            kind: rule.policy.kind.as_str(),
            policy: rule.policy.name.clone(),
            tier: rule.policy.tier.as_str(),
            priority: rule.policy.priority,
            rule: rule.rule,
            name: rule.name.clone(),
            action: rule.action.as_str(),
            text: reason::tier_rule(rule, direction),
        }
    }
}

/// One tier's walk.
#[derive(Serialize)]
struct TierWalkJson {
    /// The tier's policies holding the pod, as `Kind name`, in the order they are evaluated.
    policies: Vec<String>,
    /// The first rule that matched.
    matched: Option<TierRuleJson>,
    /// In words.
    text: String,
}

impl TierWalkJson {
    fn new(walk: &TierWalk, direction: Direction) -> Self {
        TierWalkJson {
            policies: (walk.policies.iter())
                .map(|p| format!("{} {}", p.kind, p.name))
                .collect(),
            matched: (walk.matched.as_ref()).map(|r| TierRuleJson::new(r, direction)),
            text: reason::tier_walk(walk, direction),
        }
    }
}

#[derive(Serialize)]
#[serde(tag = "decision", rename_all = "snake_case")]
enum DecisionJson<'a> {
    Unenforced {
        reason: String,
    },
    NotIsolated,
    Allowed {
        by: Vec<RuleRefJson<'a>>,
    },
    Denied {
        isolating: Vec<PolicyMissJson<'a>>,
    },
    /// A cluster-wide rule decided.
    Tier {
        rule: TierRuleJson,
    },
}

#[derive(Serialize)]
struct PolicyJson<'a> {
    namespace: &'a str,
    name: &'a str,
}

#[derive(Serialize)]
struct RuleRefJson<'a> {
    policy: PolicyJson<'a>,
    rule: usize,
}

#[derive(Serialize)]
struct PolicyMissJson<'a> {
    policy: PolicyJson<'a>,
    rules: Vec<RuleMissJson>,
}

#[derive(Serialize)]
struct RuleMissJson {
    rule: usize,
    /// Every `ports` entry of a rule that missed on its ports (`80/TCP`, `http/TCP`, `any/UDP`).
    #[serde(skip_serializing_if = "Option::is_none")]
    ports: Option<Vec<String>>,
    reasons: Vec<String>,
}

impl<'a> PolicyJson<'a> {
    fn new(policy: &'a PolicyRef) -> Self {
        PolicyJson {
            namespace: &policy.namespace,
            name: &policy.name,
        }
    }
}

impl<'a> SideJson<'a> {
    fn new(side: &'a Side) -> Self {
        let direction = side.direction;
        let decision = match &side.decision {
            Decision::Unenforced { reason } => DecisionJson::Unenforced {
                reason: reason::unenforced(reason, direction),
            },
            Decision::NotIsolated => DecisionJson::NotIsolated,
            Decision::Allowed { by } => DecisionJson::Allowed {
                by: by
                    .iter()
                    .map(|r| RuleRefJson {
                        policy: PolicyJson::new(&r.policy),
                        rule: r.rule,
                    })
                    .collect(),
            },
            Decision::Tier { rule } => DecisionJson::Tier {
                rule: TierRuleJson::new(rule, direction),
            },
            Decision::Denied { isolating } => DecisionJson::Denied {
                isolating: isolating
                    .iter()
                    .map(|m| PolicyMissJson {
                        policy: PolicyJson::new(&m.policy),
                        rules: (m.rules.iter())
                            .map(|r| RuleMissJson {
                                rule: r.rule,
                                ports: (r.ports.as_ref())
                                    .map(|p| p.allowed.iter().map(reason::port_spec).collect()),
                                reasons: reason::rule_miss(r, direction),
                            })
                            .collect(),
                    })
                    .collect(),
            },
        };
        let walk = |w: &Option<TierWalk>| w.as_ref().map(|w| TierWalkJson::new(w, direction));
        SideJson {
            direction,
            pod: side.pod.as_ref().map(reason::pod_key),
            decision,
            admin: walk(&side.admin),
            baseline: walk(&side.baseline),
        }
    }
}

impl Serialize for Explanation {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        Json {
            from: &self.from,
            to: &self.to,
            port: self.port,
            protocol: self.protocol,
            allowed: self.verdict.allowed,
            egress: SideJson::new(&self.verdict.egress),
            ingress: SideJson::new(&self.verdict.ingress),
            staged: self.staged.as_ref().map(|s| StagedJson {
                allowed: s.verdict.allowed,
                changed: (s.changed.iter())
                    .map(|&d| SideJson::new(s.side(d)))
                    .collect(),
                by: (s.changed.iter()).map(|&d| s.deciders(s.side(d))).collect(),
            }),
        }
        .serialize(serializer)
    }
}

fn describe(state: &ClusterState, e: Endpoint) -> String {
    match e {
        Endpoint::Pod(i) => {
            let p = &state.pods[i];
            match p.ip {
                Some(ip) => format!("pod {} ({ip})", p.key()),
                None => format!("pod {}", p.key()),
            }
        }
        Endpoint::Ip(ip) => ip.to_string(),
    }
}

/// Evaluates `flow` and packages the answer.
pub fn explain(engine: &Engine, flow: Flow) -> Explanation {
    let state = engine.state();
    Explanation {
        from: describe(state, flow.src),
        to: describe(state, flow.dst),
        port: flow.port,
        protocol: flow.protocol,
        verdict: engine.verdict(&flow),
        staged: None,
    }
}

/// Evaluates `flow` as enforced, and with the staged policies in force where they change a
/// side's decision.
pub fn explain_staged(engines: &Engines, flow: Flow) -> Explanation {
    let mut explanation = explain(&engines.enforced, flow);
    let Some(would) = engines.would.as_deref() else {
        return explanation;
    };
    let verdict = would.verdict(&flow);
    let enforced = &explanation.verdict;
    let changed: Vec<Direction> = [
        (Direction::Egress, &enforced.egress, &verdict.egress),
        (Direction::Ingress, &enforced.ingress, &verdict.ingress),
    ]
    .into_iter()
    .filter(|(_, e, w)| e.decision.allows() != w.decision.allows())
    .map(|(d, _, _)| d)
    .collect();
    if changed.is_empty() {
        return explanation;
    }
    let state = would.state();
    let network = (state.policies.iter())
        .filter(|p| p.policy.audit_annotated())
        .map(|p| p.key());
    let tier = (state.tier_policies.iter())
        .filter(|p| p.policy.audit_annotated())
        .map(|p| p.key());
    explanation.staged = Some(Staged {
        verdict,
        changed,
        policies: network.chain(tier).collect(),
    });
    explanation
}

fn rule_field(direction: Direction, rule: usize) -> String {
    format!("spec.{}[{rule}]", direction.as_str())
}

fn side_text(side: &Side, out: &mut String) {
    let title = match side.direction {
        Direction::Egress => "Egress",
        Direction::Ingress => "Ingress",
    };
    let on = side
        .pod
        .as_ref()
        .map(|p| format!(" of {}", reason::pod_key(p)))
        .unwrap_or_default();
    let direction = side.direction.as_str();
    let tiers = side.admin.is_some() || side.baseline.is_some();
    match &side.decision {
        Decision::Unenforced { reason } => {
            let reason = reason::unenforced(reason, side.direction);
            let _ = writeln!(out, "{title}{on}: allowed ({reason})");
        }
        Decision::NotIsolated if tiers => {
            let _ = writeln!(
                out,
                "{title}{on}: allowed (no NetworkPolicy isolates the pod for {direction}, and no cluster-wide rule decides)"
            );
        }
        Decision::NotIsolated => {
            let _ = writeln!(
                out,
                "{title}{on}: allowed (no NetworkPolicy selects the pod for {direction}: not isolated)"
            );
        }
        Decision::Tier { rule } => {
            let verdict = match rule.action {
                TierAction::Deny => "DENIED",
                TierAction::Accept | TierAction::Pass => "allowed",
            };
            let _ = writeln!(
                out,
                "{title}{on}: {verdict} by the {} tier",
                rule.policy.tier.as_str()
            );
        }
        Decision::Allowed { .. } if tiers => {
            let _ = writeln!(out, "{title}{on}: allowed by NetworkPolicy");
        }
        Decision::Allowed { .. } => {
            let _ = writeln!(out, "{title}{on}: allowed by");
        }
        Decision::Denied { isolating } => {
            let _ = writeln!(
                out,
                "{title}{on}: DENIED (isolated for {direction} by {} {}; no rule allows this flow)",
                isolating.len(),
                if isolating.len() == 1 {
                    "policy"
                } else {
                    "policies"
                }
            );
        }
    }
    if let Some(walk) = &side.admin {
        let _ = writeln!(out, "  Admin: {}", reason::tier_walk(walk, side.direction));
    }
    match &side.decision {
        Decision::Allowed { by } => {
            for r in by {
                let _ = writeln!(
                    out,
                    "  - NetworkPolicy {}/{} {}",
                    r.policy.namespace,
                    r.policy.name,
                    rule_field(side.direction, r.rule)
                );
            }
        }
        Decision::Denied { isolating } => {
            for miss in isolating {
                let _ = writeln!(
                    out,
                    "  - NetworkPolicy {}/{}",
                    miss.policy.namespace, miss.policy.name
                );
                if miss.rules.is_empty() {
                    let _ = writeln!(
                        out,
                        "      has no {direction} rules: it allows no {direction} traffic"
                    );
                }
                for rule in &miss.rules {
                    for reason in reason::rule_miss(rule, side.direction) {
                        let _ = writeln!(out, "      rule {}: {reason}", rule.rule);
                    }
                }
            }
        }
        _ => {}
    }
    if let Some(walk) = &side.baseline {
        let _ = writeln!(
            out,
            "  Baseline: {}",
            reason::tier_walk(walk, side.direction)
        );
    }
    if tiers && matches!(side.decision, Decision::NotIsolated) {
        let _ = writeln!(out, "  default: allowed");
    }
}

/// The plain-words explanation.
pub fn to_text(e: &Explanation) -> String {
    let mut out = String::new();
    let verdict = if e.verdict.allowed {
        "ALLOWED"
    } else {
        "DENIED"
    };
    let _ = writeln!(
        out,
        "{} -> {} {} {}: {verdict}",
        e.from, e.to, e.protocol, e.port
    );
    side_text(&e.verdict.egress, &mut out);
    side_text(&e.verdict.ingress, &mut out);
    if let Some(staged) = &e.staged {
        staged_text(staged, &mut out);
    }
    out
}

/// What the staged policies would change, side by side.
fn staged_text(staged: &Staged, out: &mut String) {
    let verdict = match staged.verdict.allowed {
        true => "ALLOW",
        false => "DENY",
    };
    let _ = writeln!(
        out,
        "staged: would {verdict} (policies annotated policy.palisade.dev/audit-mode: logged, not enforced)"
    );
    for &direction in &staged.changed {
        let side = staged.side(direction);
        let title = match direction {
            Direction::Egress => "Egress",
            Direction::Ingress => "Ingress",
        };
        let on = (side.pod.as_ref())
            .map(|p| format!(" of {}", reason::pod_key(p)))
            .unwrap_or_default();
        let would = match side.decision.allows() {
            true => "ALLOW",
            false => "DENY",
        };
        let _ = writeln!(
            out,
            "  {title}{on}: would {would} — by {}",
            staged.deciders(side)
        );
    }
}

//! Services and policies that disagree: a policy written with a Service's port where its pods
//! listen on another (`service-port-not-target-port`), a policy selecting part of a Service's pods
//! (`policy-splits-service`), and pods of a Service left out while their siblings are isolated
//! (`service-pods-uncovered`).

use super::index::{rules, Index};
use super::{plural, selector_text, Finding, Rule, Severity};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use palisade_model::{PodInfo, PolicyRule, PortMatch, Protocol, ServiceInfo, ServicePortInfo};
use palisade_policy::{ClassId, Direction};
use std::collections::HashMap;

pub(super) fn check(ix: &Index, out: &mut Vec<Finding>) {
    let backends: Vec<Vec<ClassId>> = (ix.state.services.iter())
        .map(|s| ix.service_classes(s))
        .collect();
    target_ports(ix, &backends, out);
    splits(ix, &backends, out);
    uncovered(ix, &backends, out);
}

/// The port `target` resolves to on `pod` for `protocol`.
fn resolve(target: &IntOrString, pod: &PodInfo, protocol: Protocol) -> Option<u16> {
    match target {
        IntOrString::Int(n) => u16::try_from(*n).ok(),
        IntOrString::String(name) => pod.named_port(name, protocol),
    }
}

/// True if `rule`'s ports allow `port`/`protocol` on `pod`.
fn allows(rule: &PolicyRule, port: u16, protocol: Protocol, pod: &PodInfo) -> bool {
    rule.ports.as_ref().is_none_or(|specs| {
        specs.iter().any(|s| {
            let named = s.name().and_then(|n| pod.named_port(n, s.protocol));
            s.matches(port, protocol, named)
        })
    })
}

/// `service-port-not-target-port`: a rule's single port is the `port` of a Service in front of
/// the rule's destination pods, the Service forwards it to another port there, and neither this
/// rule nor another to the same peers allows that one (nor do the pods listen on the Service's
/// port themselves, nor does another Service forward it to itself there). A warning, not an error,
/// where the pods declare no port: they may listen on it undeclared.
fn target_ports(ix: &Index, backends: &[Vec<ClassId>], out: &mut Vec<Finding>) {
    let mut by_port: HashMap<(u16, Protocol), Vec<(usize, &ServicePortInfo)>> = HashMap::new();
    for (i, s) in ix.state.services.iter().enumerate() {
        for p in &s.ports {
            by_port
                .entry((p.port, p.protocol))
                .or_default()
                .push((i, p));
        }
    }
    for (pi, policy) in ix.state.policies.iter().enumerate() {
        for (direction, ri, rule) in rules(policy.policy.spec()) {
            for (j, spec) in rule.ports.iter().flatten().enumerate() {
                let PortMatch::Range(port, last) = spec.port else {
                    continue;
                };
                let Some(services) = by_port.get(&(port, spec.protocol)).filter(|_| port == last)
                else {
                    continue;
                };
                let destinations = ix.destinations(pi, direction, rule);
                for &(si, sp) in services {
                    let service = &ix.state.services[si];
                    let hit: Vec<(ClassId, u16)> = (backends[si].iter().copied())
                        .filter(|&c| destinations.contains(c))
                        .filter_map(|c| {
                            let pod = ix.pod(c);
                            let target = resolve(&sp.target_port, pod, sp.protocol)?;
                            let listens = pod
                                .ports
                                .iter()
                                .any(|p| p.port == port && p.protocol == spec.protocol);
                            let to_itself = services.iter().any(|&(other, op)| {
                                backends[other].contains(&c)
                                    && resolve(&op.target_port, pod, op.protocol) == Some(port)
                            });
                            (target != port
                                && !listens
                                && !to_itself
                                && !allowed_elsewhere(
                                    ix,
                                    pi,
                                    direction,
                                    rule,
                                    c,
                                    target,
                                    spec.protocol,
                                ))
                            .then_some((c, target))
                        })
                        .collect();
                    if let Some(&(_, target)) = hit.first() {
                        let classes: Vec<ClassId> = hit.iter().map(|h| h.0).collect();
                        let field = format!("{}.ports[{j}].port", super::rule_field(direction, ri));
                        let mut finding = Finding::policy(
                            Rule::ServicePortNotTargetPort,
                            policy,
                            Some(field),
                            target_message(ix, service, sp, port, target, &classes, direction),
                            target_fix(sp, port, target),
                        );
                        if classes.iter().all(|&c| ix.pod(c).ports.is_empty()) {
                            finding.severity = Severity::Warning;
                        }
                        out.push(finding);
                    }
                }
            }
        }
    }
}

/// True if a rule to the same peers as `rule` (of policy `pi`) allows `target`/`protocol` on
/// `class`'s pods: a rule of a policy selecting `class` for ingress, or of policy `pi` for egress,
/// whose peers are written alike (in the same namespace) or are every peer.
fn allowed_elsewhere(
    ix: &Index,
    pi: usize,
    direction: Direction,
    rule: &PolicyRule,
    class: ClassId,
    target: u16,
    protocol: Protocol,
) -> bool {
    let own = &ix.state.policies[pi];
    let policies = match direction {
        Direction::Ingress => &ix.selecting[class].ingress[..],
        Direction::Egress => std::slice::from_ref(&pi),
    };
    policies.iter().any(|&q| {
        let other = &ix.state.policies[q];
        rules(other.policy.spec())
            .filter(|&(d, _, r)| {
                d == direction
                    && (r.peers.is_none()
                        || (r.peers == rule.peers && other.namespace == own.namespace))
            })
            .any(|(_, _, r)| allows(r, target, protocol, ix.pod(class)))
    })
}

fn target_message(
    ix: &Index,
    service: &ServiceInfo,
    sp: &ServicePortInfo,
    port: u16,
    target: u16,
    classes: &[ClassId],
    direction: Direction,
) -> String {
    let named = match &sp.target_port {
        IntOrString::String(name) => format!(" (container port {name:?})"),
        IntOrString::Int(_) => String::new(),
    };
    let pods = plural(ix.pods_in(classes.iter().copied()), "pod");
    let whose = match direction {
        Direction::Ingress => "pods this policy selects",
        Direction::Egress => "pods this rule sends to",
    };
    format!(
        "port {port}/{} is the port of Service {}/{}, which forwards it to targetPort {target}{named} on {pods} \
         ({}); policies see the pod's port, so connections through the Service to the {whose} are not allowed by it",
        sp.protocol,
        service.namespace,
        service.name,
        ix.examples(classes),
    )
}

fn target_fix(sp: &ServicePortInfo, port: u16, target: u16) -> String {
    match &sp.target_port {
        IntOrString::String(name) => format!(
            "write `port: {target}` (or the container port's name, `port: {name}`) instead of {port}"
        ),
        IntOrString::Int(_) => format!("write `port: {target}` (the container port) instead of {port}"),
    }
}

/// The Services whose selector picks pods in `classes`' namespace, with their backend classes.
fn services_of<'s>(
    ix: &'s Index,
    backends: &'s [Vec<ClassId>],
    namespace: &'s str,
) -> impl Iterator<Item = (&'s ServiceInfo, &'s [ClassId])> + 's {
    (ix.state.services.iter().zip(backends))
        .filter(move |(s, b)| s.namespace == namespace && !b.is_empty())
        .map(|(s, b)| (s, b.as_slice()))
}

/// `policy-splits-service`: a policy selects some, not all, of a Service's pods.
fn splits(ix: &Index, backends: &[Vec<ClassId>], out: &mut Vec<Finding>) {
    for (pi, policy) in ix.state.policies.iter().enumerate() {
        let selected = &ix.selected[pi];
        let chosen = |c: &ClassId| selected.ingress.contains(c) || selected.egress.contains(c);
        for (service, classes) in services_of(ix, backends, &policy.namespace) {
            let (inside, outside): (Vec<ClassId>, Vec<ClassId>) =
                classes.iter().copied().partition(|c| chosen(c));
            if inside.is_empty() || outside.is_empty() {
                continue;
            }
            let service_selector = service_selector_text(service);
            out.push(Finding::policy(
                Rule::PolicySplitsService,
                policy,
                Some("spec.podSelector".into()),
                format!(
                    "selects {} of the {} of Service {}/{}: not {} ({}); when a release's pods \
                     join the Service without matching this selector, they get other rules",
                    ix.pods_in(inside.iter().copied()),
                    plural(ix.pods_in(classes.iter().copied()), "pod"),
                    service.namespace,
                    service.name,
                    plural(ix.pods_in(outside.iter().copied()), "pod"),
                    ix.examples(&outside),
                ),
                format!(
                    "select the Service's pods as the Service does: `podSelector: {service_selector}`"
                ),
            ));
        }
    }
}

fn service_selector_text(service: &ServiceInfo) -> String {
    let spec = palisade_model::selector::SelectorSpec {
        match_labels: service.selector.clone().unwrap_or_default(),
        match_expressions: Vec::new(),
    };
    selector_text(&spec)
}

/// `service-pods-uncovered`: some pods of a Service isolated (per direction), others not.
fn uncovered(ix: &Index, backends: &[Vec<ClassId>], out: &mut Vec<Finding>) {
    for (service, classes) in
        (ix.state.services.iter().zip(backends)).map(|(s, b)| (s, b.as_slice()))
    {
        for direction in Direction::BOTH {
            let isolated = |c: &ClassId| !ix.selecting[*c][direction].is_empty();
            let (covered, bare): (Vec<ClassId>, Vec<ClassId>) =
                classes.iter().copied().partition(isolated);
            if covered.is_empty() || bare.is_empty() {
                continue;
            }
            let mut by: Vec<&str> = (covered.iter())
                .flat_map(|&c| ix.selecting[c][direction].iter())
                .map(|&p| ix.state.policies[p].name.as_str())
                .collect();
            by.sort_unstable();
            by.dedup();
            out.push(Finding {
                rule: Rule::ServicePodsUncovered,
                severity: Rule::ServicePodsUncovered.severity(),
                object: palisade_model::ObjectKey::new(
                    palisade_model::Kind::Service,
                    Some(&service.namespace),
                    &service.name,
                )
                .into(),
                origin: Some(service.origin.clone()),
                field: Some("spec.selector".into()),
                message: format!(
                    "{} of this Service ({}) {} isolated for {} by no policy, while its other {} {} (by {})",
                    plural(ix.pods_in(bare.iter().copied()), "pod"),
                    ix.examples(&bare),
                    if ix.pods_in(bare.iter().copied()) == 1 { "is" } else { "are" },
                    direction.as_str(),
                    plural(ix.pods_in(covered.iter().copied()), "pod"),
                    if ix.pods_in(covered.iter().copied()) == 1 { "is" } else { "are" },
                    super::some_of(by.iter().map(|n| format!("NetworkPolicy {}/{n}", service.namespace)), 3),
                ),
                fix: format!(
                    "make the podSelector of {} select every pod of the Service (`podSelector: {}`), \
                     or add a policy for the pods left out",
                    by[0],
                    service_selector_text(service)
                ),
            });
        }
    }
}

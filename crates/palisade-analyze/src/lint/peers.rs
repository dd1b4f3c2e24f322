//! Selectors and ports that cannot mean what was written: selectors that match nothing
//! (`selector-matches-nothing`), named ports no destination pod declares (`named-port-unresolved`),
//! and a namespaceSelector and a podSelector written as two peers (`peers-look-like-and`).

use super::index::{rules, Index};
use super::{peer_field, rule_field, selector_text, some_of, Finding, Input, Rule};
use palisade_model::selector::SelectorSpec;
use palisade_model::{PolicyInfo, PolicyPeer, PolicyRule};
use palisade_policy::Direction;
use std::collections::{BTreeMap, BTreeSet};

pub(super) fn check(ix: &Index, out: &mut Vec<Finding>) {
    for (pi, policy) in ix.state.policies.iter().enumerate() {
        pod_selector(ix, pi, policy, out);
        for (direction, ri, rule) in rules(policy.policy.spec()) {
            peers(ix, pi, policy, direction, ri, rule, out);
            named_ports(ix, pi, policy, direction, ri, rule, out);
            looks_like_and(policy, direction, ri, rule, out);
        }
    }
}

/// What to write instead of `sel`, which matches none of `candidates` (label sets): for its first
/// requirement none of them meets, the values in use for that key, or the keys in use.
fn hint<'a>(
    sel: &SelectorSpec,
    candidates: impl Iterator<Item = &'a BTreeMap<String, String>> + Clone,
    what: &str,
) -> String {
    let mut keys: Vec<&str> = Vec::new();
    let unmet = (sel
        .match_labels
        .iter()
        .map(|(k, v)| (k.as_str(), Some(v.as_str()), None)))
    .chain(
        sel.match_expressions
            .iter()
            .map(|e| (e.key.as_str(), None, Some(e))),
    )
    .find(|(k, v, e)| {
        !candidates.clone().any(|labels| match (v, e) {
            (Some(v), _) => labels.get(*k).map(String::as_str) == Some(*v),
            (None, Some(e)) => SelectorSpec {
                match_labels: BTreeMap::new(),
                match_expressions: vec![(*e).clone()],
            }
            .matches(labels),
            _ => true,
        })
    });
    let Some((key, value, expression)) = unmet else {
        return format!("no single {what} meets all of it together; loosen one requirement");
    };
    let values: BTreeSet<&str> = (candidates.clone())
        .filter_map(|labels| labels.get(key).map(String::as_str))
        .collect();
    let written = match (value, expression) {
        (Some(v), _) => format!("{key}: {v}"),
        (None, Some(e)) => format!("{key} {:?}", e.operator),
        _ => key.to_string(),
    };
    if values.is_empty() {
        for labels in candidates {
            keys.extend(labels.keys().map(String::as_str));
        }
        keys.sort_unstable();
        keys.dedup();
        format!(
            "no {what} has a label {key:?}; use a label they have ({})",
            some_of(keys.iter().map(|k| k.to_string()), 6)
        )
    } else {
        format!(
            "`{written}` matches no {what}; the values in use for {key:?} are {}",
            some_of(values.iter().map(|v| v.to_string()), 6)
        )
    }
}

/// `spec.podSelector` selecting none of the namespace's pods (when it has some).
fn pod_selector(ix: &Index, pi: usize, policy: &PolicyInfo, out: &mut Vec<Finding>) {
    let classes = &ix.by_namespace[ix.policy_namespace(pi)];
    let selects = ix.selected[pi].ingress.len() + ix.selected[pi].egress.len();
    if classes.is_empty() || selects > 0 {
        return;
    }
    let sel = &policy.policy.spec().pod_selector;
    let labels = classes.iter().map(|&c| &ix.pod(c).labels);
    out.push(Finding::policy(
        Rule::SelectorMatchesNothing,
        policy,
        Some("spec.podSelector".into()),
        format!(
            "podSelector {} selects no pod of namespace {} (of {}): this policy applies to nothing",
            selector_text(sel),
            policy.namespace,
            ix.pods_in(classes.iter().copied())
        ),
        hint(sel, labels, "pod"),
    ));
}

/// A peer's namespaceSelector matching no namespace (only in a whole cluster: manifests may leave
/// namespaces out), or its podSelector no pod of the namespaces it looks in (only when all of them
/// are known and have pods in the input).
fn peers(
    ix: &Index,
    pi: usize,
    policy: &PolicyInfo,
    direction: Direction,
    ri: usize,
    rule: &PolicyRule,
    out: &mut Vec<Finding>,
) {
    let own = ix.policy_namespace(pi);
    for (j, peer) in rule.peers.iter().flatten().enumerate() {
        let PolicyPeer::Pods { namespaces, pods } = peer else {
            continue;
        };
        let field = peer_field(direction, ri, j);
        let scope = match namespaces {
            Some(sel) => ix.namespaces_matching(sel),
            None => vec![own],
        };
        if namespaces.is_some() && ix.input != Input::Cluster {
            continue;
        }
        if let (Some(sel), true) = (namespaces, scope.is_empty()) {
            let labels = ix.state.namespaces.iter().map(|n| &n.labels);
            out.push(Finding::policy(
                Rule::SelectorMatchesNothing,
                policy,
                Some(format!("{field}.namespaceSelector")),
                format!(
                    "namespaceSelector {} matches no namespace (of {}): this peer matches nothing",
                    selector_text(sel),
                    ix.state.namespaces.len()
                ),
                hint(sel, labels, "namespace"),
            ));
            continue;
        }
        if scope.iter().any(|&ns| ix.by_namespace[ns].is_empty())
            || !ix.peer_classes(own, namespaces.as_ref(), pods).is_empty()
        {
            continue;
        }
        let classes: Vec<_> = scope
            .iter()
            .flat_map(|&ns| ix.by_namespace[ns].iter().copied())
            .collect();
        let names: Vec<String> = scope
            .iter()
            .map(|&ns| ix.state.namespaces[ns].name.clone())
            .collect();
        out.push(Finding::policy(
            Rule::SelectorMatchesNothing,
            policy,
            Some(format!("{field}.podSelector")),
            format!(
                "podSelector {} matches no pod of namespace{} {} (of {}): this peer matches nothing",
                selector_text(pods),
                if names.len() == 1 { "" } else { "s" },
                some_of(names, 3),
                ix.pods_in(classes.iter().copied())
            ),
            hint(pods, classes.iter().map(|&c| &ix.pod(c).labels), "pod"),
        ));
    }
}

/// A named port declared by none of the pods the rule lets traffic reach (when there are some).
fn named_ports(
    ix: &Index,
    pi: usize,
    policy: &PolicyInfo,
    direction: Direction,
    ri: usize,
    rule: &PolicyRule,
    out: &mut Vec<Finding>,
) {
    let named: Vec<(usize, &str, _)> = (rule.ports.iter().flatten().enumerate())
        .filter_map(|(j, s)| Some((j, s.name()?, s.protocol)))
        .collect();
    if named.is_empty() {
        return;
    }
    let destinations: Vec<_> = ix.destinations(pi, direction, rule).iter().collect();
    if destinations.is_empty() {
        return;
    }
    for (j, name, protocol) in named {
        if destinations
            .iter()
            .any(|&c| ix.pod(c).named_port(name, protocol).is_some())
        {
            continue;
        }
        let declared: BTreeSet<String> = (destinations.iter())
            .flat_map(|&c| ix.pod(c).ports.iter())
            .filter_map(|p| Some(format!("{} ({}/{})", p.name.as_ref()?, p.port, p.protocol)))
            .collect();
        let whose = match direction {
            Direction::Ingress => "pods this policy selects",
            Direction::Egress => "pods this rule sends to",
        };
        let fix = if declared.is_empty() {
            format!("none of them names a port: write the port number, or name the containerPort {name:?}")
        } else {
            format!(
                "write a name they declare — {} — or the port number",
                some_of(declared, 5)
            )
        };
        out.push(Finding::policy(
            Rule::NamedPortUnresolved,
            policy,
            Some(format!("{}.ports[{j}].port", rule_field(direction, ri))),
            format!(
                "named port {name:?} ({protocol}) is declared by none of the {whose} ({}: {}): this port allows nothing",
                ix.pods_in(destinations.iter().copied()),
                ix.examples(&destinations)
            ),
            fix,
        ));
    }
}

/// A namespaceSelector-only peer and a podSelector-only peer in one `from`/`to`: an OR of two
/// peers, where one peer with both selectors (an AND) is the common intent.
fn looks_like_and(
    policy: &PolicyInfo,
    direction: Direction,
    ri: usize,
    rule: &PolicyRule,
    out: &mut Vec<Finding>,
) {
    let peers = rule.peers.as_deref().unwrap_or_default();
    let namespace_only = peers.iter().enumerate().find_map(|(j, p)| match p {
        PolicyPeer::Pods {
            namespaces: Some(ns),
            pods,
        } if pods.is_empty() => Some((j, ns)),
        _ => None,
    });
    let pod_only = peers.iter().enumerate().find_map(|(k, p)| match p {
        PolicyPeer::Pods {
            namespaces: None,
            pods,
        } if !pods.is_empty() => Some((k, pods)),
        _ => None,
    });
    let (Some((j, ns)), Some((k, pods))) = (namespace_only, pod_only) else {
        return;
    };
    let list = match direction {
        Direction::Ingress => "from",
        Direction::Egress => "to",
    };
    out.push(Finding::policy(
        Rule::PeersLookLikeAnd,
        policy,
        Some(peer_field(direction, ri, k)),
        format!(
            "{list}[{j}] (namespaceSelector only) and {list}[{k}] (podSelector only) are two peers, either of which \
             matches: every pod of the namespaces matching {}, or the pods matching {} in namespace {} only",
            selector_text(ns),
            selector_text(pods),
            policy.namespace
        ),
        format!(
            "if the pods matching the podSelector in the namespaces matching the namespaceSelector were meant, \
             write one peer: `- {{namespaceSelector: {}, podSelector: {}}}`",
            selector_text(ns),
            selector_text(pods)
        ),
    ));
}

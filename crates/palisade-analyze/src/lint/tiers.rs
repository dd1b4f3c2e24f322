//! The cluster-wide tiers' ambiguities (`shared/reference/networkpolicy.md` §7):
//! `tier-priority-tie`, two policies of one tier with the same priority whose subjects hold the same
//! pods for a direction both have rules for (the API leaves their order undefined; Palisade
//! evaluates them by kind, then name); `tier-versions-mixed`, v1alpha1 and v1alpha2 policies in one
//! tier whose subjects hold the same pods (their relative order is undefined too; Palisade orders
//! by priority, then kind).
//!
//! One pass over the classes, each class's policies per direction from the engine; a pair is
//! reported once, with a pod both hold as the example. And `tier-rule-matches-everything`: a Deny
//! or Pass rule with a peer or port entry Palisade cannot read, which fails closed by matching
//! everything — after it, no rule of the tier is reached for that traffic (a typo in an Admin Pass
//! skips every Admin Deny below it).

use super::index::Index;
use super::{Finding, Rule};
use palisade_model::{Kind, TierAction, TierPeer, TierPort, ValidTierPolicy};
use palisade_policy::Direction;
use std::collections::BTreeSet;

pub(super) fn check(ix: &Index, out: &mut Vec<Finding>) {
    unreadable_entries(ix, out);
    let engine = ix.engine;
    let state = engine.state();
    let mut tied: BTreeSet<(String, String)> = BTreeSet::new();
    let mut mixed: BTreeSet<(String, String)> = BTreeSet::new();
    for class in engine.class_ids() {
        let holding = engine.tier_policies_selecting(class);
        if holding.len() < 2 {
            continue;
        }
        let pod = &state.pods[engine.class_pods(class)[0]];
        for (i, a) in holding.iter().enumerate() {
            for b in &holding[i + 1..] {
                let (sa, sb) = (a.spec(), b.spec());
                if sa.tier != sb.tier || !share_a_direction(a, b) {
                    continue;
                }
                let pair = (a.qualified_name(), b.qualified_name());
                let v1alpha1 = |p: &ValidTierPolicy| p.kind() != Kind::ClusterNetworkPolicy;
                if sa.priority == sb.priority && tied.insert(pair.clone()) {
                    out.push(finding(
                        ix,
                        Rule::TierPriorityTie,
                        a,
                        b,
                        &pod.key().to_string(),
                    ));
                } else if v1alpha1(a) != v1alpha1(b) && mixed.insert(pair) {
                    out.push(finding(
                        ix,
                        Rule::TierVersionsMixed,
                        a,
                        b,
                        &pod.key().to_string(),
                    ));
                }
            }
        }
    }
}

/// True when `a` and `b` both have rules for some direction.
fn share_a_direction(a: &ValidTierPolicy, b: &ValidTierPolicy) -> bool {
    Direction::BOTH.iter().any(|&d| {
        let has = |p: &ValidTierPolicy| match d {
            Direction::Ingress => !p.spec().ingress.is_empty(),
            Direction::Egress => !p.spec().egress.is_empty(),
        };
        has(a) && has(b)
    })
}

/// A finding on `a` (the one evaluated first, at its file and line) about `b`, with `pod` as an
/// example both hold.
fn finding(ix: &Index, rule: Rule, a: &ValidTierPolicy, b: &ValidTierPolicy, pod: &str) -> Finding {
    let tier = a.spec().tier.as_str();
    let priority = |p: &ValidTierPolicy| match p.spec().priority {
        Some(n) => format!("priority {n}"),
        None => "no priority".to_string(),
    };
    let (message, fix) = match rule {
        Rule::TierPriorityTie => (
            format!(
                "{} and {} are both in the {tier} tier at {} and both hold pod {pod}: the API leaves their order undefined (Palisade evaluates {} first, by kind then name; other implementations may not)",
                a.qualified_name(),
                b.qualified_name(),
                priority(a),
                a.qualified_name()
            ),
            "give one of them another spec.priority, lower for the one that must decide first"
                .into(),
        ),
        _ => (
            format!(
                "{} ({}) and {} ({}) are in the {tier} tier in two API versions and both hold pod {pod}: their relative order is undefined (Palisade orders by priority, then kind)",
                a.qualified_name(),
                priority(a),
                b.qualified_name(),
                priority(b)
            ),
            "move the v1alpha1 policy to a policy.networking.k8s.io/v1alpha2 ClusterNetworkPolicy".into(),
        ),
    };
    Finding {
        rule,
        severity: rule.severity(),
        object: palisade_model::ObjectKey::new(a.kind(), None, a.name()).into(),
        origin: (ix.state.tier_policies.iter())
            .find(|p| p.kind() == a.kind() && p.name == a.name())
            .map(|p| p.origin.clone()),
        field: Some("spec.priority".into()),
        message,
        fix,
    }
}

/// `tier-rule-matches-everything`: each entry of a Deny or Pass rule that fails closed.
fn unreadable_entries(ix: &Index, out: &mut Vec<Finding>) {
    for info in &ix.state.tier_policies {
        let spec = info.policy.spec();
        for (direction, rules) in [
            (Direction::Ingress, &spec.ingress),
            (Direction::Egress, &spec.egress),
        ] {
            let (list, what) = match direction {
                Direction::Ingress => ("from", "source"),
                Direction::Egress => ("to", "destination"),
            };
            for (r, rule) in rules
                .iter()
                .enumerate()
                .filter(|(_, r)| r.action != TierAction::Accept)
            {
                let rule_at = format!("spec.{}[{r}]", direction.as_str());
                let peers = (rule.peers.iter().enumerate())
                    .filter(|(_, p)| matches!(p, TierPeer::Unknown))
                    .map(|(i, _)| (format!("{rule_at}.{list}[{i}]"), format!("every {what}")));
                let ports = (rule.ports.iter().flatten().enumerate())
                    .filter(|(_, p)| matches!(p, TierPort::Unknown))
                    .map(|(i, _)| {
                        (
                            format!("{rule_at}.protocols[{i}]"),
                            "every port".to_string(),
                        )
                    });
                for (field, matched) in peers.chain(ports) {
                    out.push(Finding {
                        rule: Rule::TierRuleMatchesEverything,
                        severity: Rule::TierRuleMatchesEverything.severity(),
                        object: info.key().into(),
                        origin: Some(info.origin.clone()),
                        field: Some(field),
                        message: format!(
                            "this {} rule has an entry with no field Palisade knows: as the API says, it fails closed, matching {matched} — no later rule of the {} tier is reached for that traffic",
                            rule.action.as_str(),
                            spec.tier.as_str()
                        ),
                        fix: "spell the entry with one known field (peers: namespaces, pods, networks, nodes; protocols: tcp, udp, sctp, destinationNamedPort), or check the CRD version this policy was written for".into(),
                    });
                }
            }
        }
    }
}

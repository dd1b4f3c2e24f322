//! `redundant-policy` and `redundant-rule`: what allows nothing the others do not already allow.
//!
//! Decided on what the dataplane enforces per endpoint class (`Engine::compile_classes`: per class
//! and direction, `Allow` entries of peer addresses × ports, each from a rule): a rule is redundant
//! when, at every class it applies to, the entries of other rules cover its entries; a policy when
//! that holds for all its rules against other policies and every class it isolates stays isolated
//! by another. Candidates are taken last first and, once found redundant, no longer count as
//! cover for the others, so that deleting every one reported changes nothing. Policies with no
//! rule at all (a default deny) are left alone: they isolate, and are kept for pods to come.
//!
//! The input may not hold every pod, so what is judged on its pods alone is never reported: a rule
//! with a selector peer matching no pod here (it may match pods elsewhere), and a policy whose pods
//! are not selected, as written, by another policy's podSelector (the same selector, or `{}` in the
//! same namespace), since it may isolate pods to come that the others do not.

use super::index::{governs, rules, Index};
use super::{plural, rule_field, some_of, Finding, Rule};
use palisade_model::{PolicyPeer, PolicyRule, Protocol};
use palisade_policy::{AddrSet, Allow, ClassId, Direction, Peers};
use std::collections::{BTreeSet, HashMap, HashSet};
use std::net::IpAddr;

/// The most entries of one class and direction whose coverage is worked out.
const MAX_ENTRIES: usize = 256;

/// An inclusive address range: (IPv6?, first, last).
type Range = (bool, u128, u128);

/// Ports as (protocol, first, last); ICMP as port 0.
type PortSpan = (Protocol, u16, u16);

/// Which rule an entry comes from: (policy in state order, direction, rule index).
type Origin = (usize, Direction, usize);

pub(super) fn check(ix: &Index, out: &mut Vec<Finding>) {
    let position: HashMap<(&str, &str), usize> = (ix.state.policies.iter().enumerate())
        .map(|(i, p)| ((p.namespace.as_str(), p.name.as_str()), i))
        .collect();
    let origin_of = |a: &Allow| -> Option<Origin> {
        let key = &a.origin.policy;
        let policy = position.get(&(key.namespace().unwrap_or_default(), key.name()))?;
        Some((*policy, a.origin.direction, a.origin.rule))
    };
    let entries = |c: ClassId, d: Direction| -> Option<Vec<Entry>> {
        let compiled = ix.class_rules(c);
        let list = match d {
            Direction::Ingress => &compiled.ingress,
            Direction::Egress => &compiled.egress,
        };
        // NetworkPolicy's allows (the tiers around them are not this rule's business).
        let allows = list.as_ref().and_then(|rules| rules.policy.as_ref());
        let list: Vec<Entry> = (allows.iter().copied().flatten())
            .filter_map(|a| Some((origin_of(a)?, a)))
            .collect();
        // Beyond this many entries, coverage is not worked out (it grows with their square): no
        // finding rather than unbounded time.
        (list.len() <= MAX_ENTRIES).then_some(list)
    };
    let mut gone_policies = vec![false; ix.state.policies.len()];
    for (pi, policy) in ix.state.policies.iter().enumerate().rev() {
        let spec = policy.policy.spec();
        if rules(spec).next().is_none()
            || !allows_anything(ix, pi, &entries)
            || rules(spec).any(|(_, _, r)| selects_unknown(ix, pi, r))
        {
            continue;
        }
        let mut by = HashSet::new();
        let redundant = governs(spec).all(|d| {
            ix.selected[pi][d].iter().all(|&c| {
                let isolated_by_others = ix.selecting[c][d]
                    .iter()
                    .any(|&q| q != pi && !gone_policies[q] && selects_as_written(ix, q, pi));
                let Some(list) = entries(c, d) else {
                    return false;
                };
                let (mine, others) = split(&list, |o| !gone_policies[o.0], |o| o.0 == pi);
                isolated_by_others && mine.iter().all(|(_, a)| covered(a, &others, &mut by))
            })
        });
        if redundant {
            gone_policies[pi] = true;
            let names = by
                .iter()
                .map(|&(q, _, _)| ix.state.policies[q].name.clone());
            let names: BTreeSet<String> = names.collect();
            let pods = ix.pods_in(
                governs(spec)
                    .flat_map(|d| ix.selected[pi][d].iter().copied())
                    .collect::<BTreeSet<_>>(),
            );
            out.push(Finding::policy(
                Rule::RedundantPolicy,
                policy,
                None,
                format!(
                    "allows the {1} it selects nothing that the other policies ({0}) do not already allow, and \
                     they isolate them too: this policy changes nothing",
                    some_of(names.iter().map(|n| format!("NetworkPolicy {}/{n}", policy.namespace)), 3),
                    plural(pods, "pod")
                ),
                "delete this policy, or narrow the others if it was meant to be the one that allows this".into(),
            ));
        }
    }
    let mut gone_rules: HashSet<Origin> = HashSet::new();
    for (pi, policy) in ix.state.policies.iter().enumerate().rev() {
        if gone_policies[pi] {
            continue;
        }
        let all: Vec<_> = rules(policy.policy.spec()).collect();
        for &(d, ri, rule) in all.iter().rev() {
            if selects_unknown(ix, pi, rule) {
                continue;
            }
            let me = (pi, d, ri);
            let classes = &ix.selected[pi][d];
            let mut by = HashSet::new();
            let mut anything = false;
            let redundant = !classes.is_empty()
                && classes.iter().all(|&c| {
                    let Some(list) = entries(c, d) else {
                        return false;
                    };
                    let (mine, others) = split(
                        &list,
                        |o| !gone_policies[o.0] && !gone_rules.contains(o),
                        |o| *o == me,
                    );
                    anything |= mine.iter().any(|(_, a)| !is_empty(a));
                    mine.iter().all(|(_, a)| covered(a, &others, &mut by))
                });
            if redundant && anything {
                gone_rules.insert(me);
                let others: BTreeSet<String> = (by.iter())
                    .map(|&(q, od, ori)| {
                        let p = &ix.state.policies[q];
                        if q == pi {
                            rule_field(od, ori)
                        } else {
                            format!(
                                "NetworkPolicy {}/{} {}",
                                p.namespace,
                                p.name,
                                rule_field(od, ori)
                            )
                        }
                    })
                    .collect();
                out.push(Finding::policy(
                    Rule::RedundantRule,
                    policy,
                    Some(rule_field(d, ri)),
                    format!(
                        "everything this rule allows the {} it applies to is already allowed by {}",
                        plural(ix.pods_in(classes.iter().copied()), "pod"),
                        some_of(others, 3)
                    ),
                    format!(
                        "delete {} (or make it allow what the others do not)",
                        rule_field(d, ri)
                    ),
                ));
            }
        }
    }
}

/// An entry and the rule it comes from.
type Entry<'a> = (Origin, &'a Allow);

/// Of `list`'s entries that count (`counts`), those that are `mine` and the others.
fn split<'l, 'a>(
    list: &'l [Entry<'a>],
    counts: impl Fn(&Origin) -> bool,
    mine: impl Fn(&Origin) -> bool,
) -> (Vec<&'l Entry<'a>>, Vec<&'l Entry<'a>>) {
    (list.iter())
        .filter(|(o, _)| counts(o))
        .partition(|(o, _)| mine(o))
}

/// True if a selector peer of `rule` (of policy `pi`) matches no pod in the input: it may match
/// pods that are not, so what it allows is not known to be allowed elsewhere.
fn selects_unknown(ix: &Index, pi: usize, rule: &PolicyRule) -> bool {
    let own = ix.policy_namespace(pi);
    (rule.peers.iter().flatten()).any(|peer| match peer {
        PolicyPeer::Pods { namespaces, pods } => {
            ix.peer_classes(own, namespaces.as_ref(), pods).is_empty()
        }
        PolicyPeer::IpBlock(_) => false,
    })
}

/// True if policy `q`'s podSelector, as written, selects every pod policy `pi`'s does, those to
/// come included: the same selector, or `{}`, in the same namespace.
fn selects_as_written(ix: &Index, q: usize, pi: usize) -> bool {
    let (theirs, mine) = (&ix.state.policies[q], &ix.state.policies[pi]);
    let (theirs_sel, mine_sel) = (
        &theirs.policy.spec().pod_selector,
        &mine.policy.spec().pod_selector,
    );
    theirs.namespace == mine.namespace && (theirs_sel.is_empty() || theirs_sel == mine_sel)
}

/// True if some rule of policy `pi` allows something somewhere.
fn allows_anything<'a>(
    ix: &Index,
    pi: usize,
    entries: &impl Fn(ClassId, Direction) -> Option<Vec<Entry<'a>>>,
) -> bool {
    Direction::BOTH.iter().any(|&d| {
        (ix.selected[pi][d].iter()).any(|&c| {
            entries(c, d).is_some_and(|l| l.iter().any(|(o, a)| o.0 == pi && !is_empty(a)))
        })
    })
}

/// True if `allow` admits nothing.
fn is_empty(allow: &Allow) -> bool {
    matches!(&allow.peers, Peers::Addrs(set) if set.is_empty())
        || allow.ports.as_ref().is_some_and(Vec::is_empty)
}

fn ports_of(allow: &Allow) -> Vec<PortSpan> {
    match &allow.ports {
        None => (Protocol::PORTED.iter().map(|&p| (p, 1, u16::MAX)))
            .chain([(Protocol::Icmp, 0, 0)])
            .collect(),
        Some(ports) => ports
            .iter()
            .map(|r| (r.protocol, r.first, r.last))
            .collect(),
    }
}

fn bits(ip: IpAddr) -> (bool, u128) {
    match ip {
        IpAddr::V4(a) => (false, u32::from(a).into()),
        IpAddr::V6(a) => (true, u128::from(a)),
    }
}

fn ranges_of(allow: &Allow) -> Vec<Range> {
    match &allow.peers {
        Peers::Any => vec![(false, 0, u32::MAX.into()), (true, 0, u128::MAX)],
        Peers::Addrs(set) => addr_ranges(set),
    }
}

fn addr_ranges(set: &AddrSet) -> Vec<Range> {
    (set.ranges.iter())
        .map(|r| {
            let (v6, first) = bits(r.first);
            (v6, first, bits(r.last).1)
        })
        .collect()
}

/// True if `a`'s peers × ports lie within the union of `others`' (each of which that overlaps it
/// is added to `by`).
fn covered(a: &Allow, others: &[&Entry], by: &mut HashSet<Origin>) -> bool {
    let (mine, addresses) = (ports_of(a), ranges_of(a));
    if addresses.is_empty() || mine.is_empty() {
        return true;
    }
    let theirs: Vec<(Origin, Vec<PortSpan>, Vec<Range>)> = (others.iter())
        .map(|(o, b)| (*o, ports_of(b), ranges_of(b)))
        .collect();
    for (o, ports, ranges) in &theirs {
        let ports_meet = ports.iter().any(|p| mine.iter().any(|m| overlap(m, p)));
        let peers_meet = ranges.iter().any(|r| {
            addresses
                .iter()
                .any(|m| m.0 == r.0 && m.1 <= r.2 && r.1 <= m.2)
        });
        if ports_meet && peers_meet {
            by.insert(*o);
        }
    }
    // Cut `a`'s ports where any other entry's port spans start or end: within one piece, each
    // other entry admits all ports or none.
    mine.iter().all(|&(protocol, first, last)| {
        let mut cuts: BTreeSet<u32> = BTreeSet::from([u32::from(first), u32::from(last) + 1]);
        for (_, ports, _) in &theirs {
            for &(_, f, l) in ports.iter().filter(|s| s.0 == protocol) {
                for edge in [u32::from(f), u32::from(l) + 1] {
                    if edge > u32::from(first) && edge <= u32::from(last) {
                        cuts.insert(edge);
                    }
                }
            }
        }
        let cuts: Vec<u32> = cuts.into_iter().collect();
        cuts.windows(2).all(|w| {
            let piece = (protocol, w[0], w[1] - 1);
            let union: Vec<Range> = (theirs.iter())
                .filter(|(_, ports, _)| {
                    ports.iter().any(|&(p, f, l)| {
                        p == piece.0 && u32::from(f) <= piece.1 && piece.2 <= u32::from(l)
                    })
                })
                .flat_map(|(_, _, ranges)| ranges.iter().copied())
                .collect();
            contains(&merge(union), &addresses)
        })
    })
}

fn overlap(a: &PortSpan, b: &PortSpan) -> bool {
    a.0 == b.0 && a.1 <= b.2 && b.1 <= a.2
}

/// Sorted, merged ranges.
fn merge(mut ranges: Vec<Range>) -> Vec<Range> {
    ranges.sort_unstable();
    let mut out: Vec<Range> = Vec::with_capacity(ranges.len());
    for r in ranges {
        match out.last_mut() {
            Some(last) if last.0 == r.0 && r.1 <= last.2.saturating_add(1) => {
                last.2 = last.2.max(r.2)
            }
            _ => out.push(r),
        }
    }
    out
}

/// True if every range of `inner` lies within one range of `outer` (sorted and merged).
fn contains(outer: &[Range], inner: &[Range]) -> bool {
    inner.iter().all(|&(v6, first, last)| {
        let i = outer.partition_point(|r| (r.0, r.2) < (v6, first));
        outer
            .get(i)
            .is_some_and(|r| r.0 == v6 && r.1 <= first && last <= r.2)
    })
}

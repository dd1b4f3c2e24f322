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
use super::{plural, rule_field, some_of, Finding, Rule, Severity};
use palisade_model::{PolicyPeer, PolicyRule, Protocol};
use palisade_policy::{AddrSet, Allow, ClassId, Direction, Peers, PortRange, RawRange};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::hash::Hash;
use std::rc::Rc;
use std::sync::Arc;

/// The most entries of one class and direction whose coverage is worked out (coverage grows with
/// their square); past it, what depends on that class is not judged, and a finding says so.
const MAX_ENTRIES: usize = 256;

/// Ports as (protocol, first, last); ICMP as port 0.
type PortSpan = (Protocol, u16, u16);

/// Which rule an entry comes from: (policy in state order, direction, rule index).
type Origin = (usize, Direction, usize);

/// The most comparisons the check makes — one address range or port span of an entry looked at
/// while judging whether other rules' entries cover a candidate's — before it stops and says so:
/// 1–2 s on the project machine (`BENCHMARKS.md`).
pub(super) const MAX_COMPARISONS: u64 = 50_000_000;

/// The check ran out of [`MAX_COMPARISONS`].
pub(super) struct Stopped;

/// How far the check goes: [`MAX_COMPARISONS`] and [`MAX_ENTRIES`] (smaller in tests).
#[derive(Clone, Copy)]
struct Bounds {
    comparisons: u64,
    entries: usize,
}

const BOUNDS: Bounds = Bounds {
    comparisons: MAX_COMPARISONS,
    entries: MAX_ENTRIES,
};

/// A class and direction past [`Bounds::entries`], and how many entries it has.
type Over = (ClassId, Direction, usize);

/// A class's entries for one direction, and the id of that list.
type Listed<'i> = (usize, Rc<[Entry<'i>]>);

/// What makes two lists the same: per entry its rule, its peer set's address (`0`: any peer)
/// and its ports.
type Signature = Vec<(Origin, usize, Option<Vec<PortRange>>)>;

/// The entries of each class and direction, read once, and an id per distinct list: classes with
/// the same list (the same rules, peers and ports) are decided alike, so a candidate is judged
/// once per list, not once per class.
struct Lists<'i> {
    ix: &'i Index<'i>,
    position: HashMap<(&'i str, &'i str), usize>,
    /// Per class and direction: the list's id and its entries, or how many entries it has past
    /// [`Bounds::entries`].
    read: HashMap<(ClassId, Direction), Result<Listed<'i>, usize>>,
    ids: HashMap<Signature, usize>,
    budget: Budget,
    max_entries: usize,
    /// The candidates (rule, policy) left unjudged for a list past the bound: the first such.
    unjudged: BTreeMap<(Rule, usize), Over>,
}

/// Comparisons left of [`MAX_COMPARISONS`].
pub(super) struct Budget {
    pub left: u64,
}

impl Budget {
    /// Takes `n` comparisons, or fails once none are left.
    pub fn spend(&mut self, n: usize) -> Result<(), Stopped> {
        self.left = self.left.checked_sub(n as u64).ok_or(Stopped)?;
        Ok(())
    }
}

impl<'i> Lists<'i> {
    fn new(ix: &'i Index<'i>, bounds: Bounds) -> Lists<'i> {
        let position = (ix.state.policies.iter().enumerate())
            .map(|(i, p)| ((p.namespace.as_str(), p.name.as_str()), i))
            .collect();
        Lists {
            ix,
            position,
            read: HashMap::new(),
            ids: HashMap::new(),
            budget: Budget {
                left: bounds.comparisons,
            },
            max_entries: bounds.entries,
            unjudged: BTreeMap::new(),
        }
    }

    /// The entries of class `c` for direction `d` with their list's id; past the bound on
    /// entries, how many there are.
    fn get(&mut self, c: ClassId, d: Direction) -> Result<Listed<'i>, usize> {
        if let Some(known) = self.read.get(&(c, d)) {
            return known.clone();
        }
        let compiled = self.ix.class_rules(c);
        let list = match d {
            Direction::Ingress => &compiled.ingress,
            Direction::Egress => &compiled.egress,
        };
        // NetworkPolicy's allows (the tiers around them are not this rule's business).
        let allows = list.as_ref().and_then(|rules| rules.policy.as_ref());
        let list: Vec<Entry<'i>> = (allows.iter().copied().flatten())
            .filter_map(|a| {
                let key = &a.origin.policy;
                let policy = self
                    .position
                    .get(&(key.namespace().unwrap_or_default(), key.name()));
                Some(((*policy?, a.origin.direction, a.origin.rule), a))
            })
            .collect();
        let entries = list.len();
        let found = (entries <= self.max_entries).then(|| {
            // Peer sets are shared: the same address is the same peers (the sets live as long as
            // the index, so no address is reused for another).
            let signature = (list.iter())
                .map(|(o, a)| {
                    let peers = match &a.peers {
                        Peers::Any => 0,
                        Peers::Addrs(set) => Arc::as_ptr(set) as usize,
                    };
                    (*o, peers, a.ports.clone())
                })
                .collect();
            let next = self.ids.len();
            (*self.ids.entry(signature).or_insert(next), Rc::from(list))
        });
        let found = found.ok_or(entries);
        self.read.insert((c, d), found.clone());
        found
    }

    /// The entries of class `c` for direction `d`, as [`Lists::get`]; past the bound, notes that
    /// `rule` was not judged on policy `pi` because of them.
    fn judging(&mut self, rule: Rule, pi: usize, c: ClassId, d: Direction) -> Option<Listed<'i>> {
        self.get(c, d)
            .map_err(|n| self.unjudged.entry((rule, pi)).or_insert((c, d, n)))
            .ok()
    }
}

pub(super) fn check(ix: &Index, out: &mut Vec<Finding>) {
    check_within(ix, out, BOUNDS);
}

/// [`check`] within `bounds`.
fn check_within(ix: &Index, out: &mut Vec<Finding>, bounds: Bounds) {
    let max = bounds.comparisons;
    let mut lists = Lists::new(ix, bounds);
    let mut gone_policies = vec![false; ix.state.policies.len()];
    let mut at = 0;
    if policies(&mut lists, &mut gone_policies, &mut at, out).is_err() {
        out.extend(stopped(ix, at, Rule::RedundantPolicy, false, max));
        out.extend(stopped(ix, at, Rule::RedundantRule, true, max));
    } else if policy_rules(&mut lists, &gone_policies, &mut at, out).is_err() {
        out.extend(stopped(ix, at, Rule::RedundantRule, false, max));
    }
    out.extend(too_many(ix, &lists.unjudged, bounds));
}

/// What is said of the candidates left unjudged for the entries of a class they apply to: per
/// rule and namespace, a notice on the first such policy naming the others — never silence.
fn too_many(ix: &Index, unjudged: &BTreeMap<(Rule, usize), Over>, bounds: Bounds) -> Vec<Finding> {
    let mut groups: BTreeMap<(Rule, &str), Vec<(usize, Over)>> = BTreeMap::new();
    for (&(rule, pi), &over) in unjudged {
        let namespace = ix.state.policies[pi].namespace.as_str();
        groups
            .entry((rule, namespace))
            .or_default()
            .push((pi, over));
    }
    let notice = |(rule, namespace): (Rule, &str), group: Vec<(usize, Over)>| {
        let (pi, (class, direction, entries)) = group[0];
        let others = match group.len() - 1 {
            0 => String::new(),
            1 => format!(
                ", nor the other policy of namespace {namespace} it holds for ({})",
                ix.state.policies[group[1].0].name
            ),
            n => format!(
                ", nor the {n} other policies of namespace {namespace} it holds for ({})",
                some_of(
                    (group[1..].iter()).map(|&(q, _)| ix.state.policies[q].name.clone()),
                    3
                )
            ),
        };
        Finding {
            severity: Severity::Info,
            ..Finding::policy(
                rule,
                &ix.state.policies[pi],
                None,
                format!(
                    "not checked for {rule}{others}: at pods it applies to ({}), {} is allowed \
                     by {entries} entries (of the policies' rules and peers), more than the \
                     redundancy check's bound of {} per pod (its time grows with their square)",
                    ix.examples(&[class]),
                    direction.as_str(),
                    bounds.entries,
                ),
                "judge by hand whether these allow anything the other policies selecting those \
                 pods do not; fewer policies with rules for the same pods (one per set of peers) \
                 bring them under the bound"
                    .into(),
            )
        }
    };
    groups.into_iter().map(|(k, g)| notice(k, g)).collect()
}

/// What is said of `rule` when the check ran out of comparisons at policy `at` (candidates are
/// taken last first, in namespace and name order; `none`: before `rule`'s turn came) after `max`
/// comparisons: a notice on that policy, never silence.
fn stopped(ix: &Index, at: usize, rule: Rule, none: bool, max: u64) -> Option<Finding> {
    let policy = ix.state.policies.get(at)?;
    let unchecked = if none {
        format!("no policy was checked for {rule}")
    } else {
        format!(
            "this policy and the {at} before it (in namespace and name order) were not checked \
             for {rule}"
        )
    };
    Some(Finding {
        severity: Severity::Info,
        ..Finding::policy(
            rule,
            policy,
            None,
            format!("redundancy check stopped after {max} comparisons (its bound): {unchecked}"),
            "lint fewer policies at a time (a folder or a namespace) to check them all, or \
             --disable redundant-policy --disable redundant-rule to skip the check"
                .into(),
        )
    })
}

/// `redundant-policy`: candidates last first, each judged at every class it selects. Sets
/// `at` to the candidate being judged.
fn policies(
    lists: &mut Lists,
    gone_policies: &mut [bool],
    at: &mut usize,
    out: &mut Vec<Finding>,
) -> Result<(), Stopped> {
    let ix = lists.ix;
    for (pi, policy) in ix.state.policies.iter().enumerate().rev() {
        *at = pi;
        let spec = policy.policy.spec();
        if rules(spec).next().is_none()
            || !allows_anything(lists, pi)
            || rules(spec).any(|(_, _, r)| selects_unknown(ix, pi, r))
        {
            continue;
        }
        let mut by = HashSet::new();
        // Per direction and list id, whether the others cover this policy's entries there.
        let mut judged: HashMap<(Direction, usize), bool> = HashMap::new();
        let mut redundant = true;
        'directions: for d in governs(spec) {
            for &c in &ix.selected[pi][d] {
                let isolated_by_others = ix.selecting[c][d]
                    .iter()
                    .any(|&q| q != pi && !gone_policies[q] && selects_as_written(ix, q, pi));
                let list = match isolated_by_others {
                    true => lists.judging(Rule::RedundantPolicy, pi, c, d),
                    false => None,
                };
                let Some((id, list)) = list else {
                    redundant = false;
                    break 'directions;
                };
                let covers = match judged.get(&(d, id)) {
                    Some(&known) => known,
                    None => {
                        let (mine, others) = split(&list, |o| !gone_policies[o.0], |o| o.0 == pi);
                        let covers = all_covered(lists, &mine, &others, &mut by)?;
                        *judged.entry((d, id)).or_default() = covers;
                        covers
                    }
                };
                if !covers {
                    redundant = false;
                    break 'directions;
                }
            }
        }
        if redundant {
            gone_policies[pi] = true;
            out.push(redundant_policy(ix, pi, &by));
        }
    }
    Ok(())
}

/// The `redundant-policy` finding on policy `pi`, covered by the rules `by`.
fn redundant_policy(ix: &Index, pi: usize, by: &HashSet<Origin>) -> Finding {
    let policy = &ix.state.policies[pi];
    let spec = policy.policy.spec();
    let names = by
        .iter()
        .map(|&(q, _, _)| ix.state.policies[q].name.clone());
    let names: BTreeSet<String> = names.collect();
    let pods = ix.pods_in(
        governs(spec)
            .flat_map(|d| ix.selected[pi][d].iter().copied())
            .collect::<BTreeSet<_>>(),
    );
    Finding::policy(
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
    )
}

/// `redundant-rule`: the rules of the policies left, last first, each judged at every class it
/// applies to. Sets `at` to the policy whose rules are being judged.
fn policy_rules(
    lists: &mut Lists,
    gone_policies: &[bool],
    at: &mut usize,
    out: &mut Vec<Finding>,
) -> Result<(), Stopped> {
    let ix = lists.ix;
    let mut gone_rules: HashSet<Origin> = HashSet::new();
    for (pi, policy) in ix.state.policies.iter().enumerate().rev() {
        *at = pi;
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
            // Per list id: whether this rule allows anything there, and whether it is covered.
            let mut judged: HashMap<usize, (bool, bool)> = HashMap::new();
            let mut redundant = !classes.is_empty();
            for &c in classes {
                let Some((id, list)) = lists.judging(Rule::RedundantRule, pi, c, d) else {
                    redundant = false;
                    break;
                };
                let (some, covers) = match judged.get(&id) {
                    Some(&known) => known,
                    None => {
                        let (mine, others) = split(
                            &list,
                            |o| !gone_policies[o.0] && !gone_rules.contains(o),
                            |o| *o == me,
                        );
                        let some = mine.iter().any(|(_, a)| !is_empty(a));
                        let covers = all_covered(lists, &mine, &others, &mut by)?;
                        *judged.entry(id).or_default() = (some, covers);
                        (some, covers)
                    }
                };
                anything |= some;
                if !covers {
                    redundant = false;
                    break;
                }
            }
            if redundant && anything {
                gone_rules.insert(me);
                out.push(redundant_rule(ix, me, classes, &by));
            }
        }
    }
    Ok(())
}

/// The `redundant-rule` finding on rule `me` (applying to `classes`), covered by the rules `by`.
fn redundant_rule(ix: &Index, me: Origin, classes: &[ClassId], by: &HashSet<Origin>) -> Finding {
    let (pi, d, ri) = me;
    let policy = &ix.state.policies[pi];
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
    Finding::policy(
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
    )
}

/// True if each of `mine` is [`covered`] by `others`.
fn all_covered(
    lists: &mut Lists,
    mine: &[&Entry],
    others: &[&Entry],
    by: &mut HashSet<Origin>,
) -> Result<bool, Stopped> {
    for (_, a) in mine {
        if !covered(a, others, by, &mut lists.budget)? {
            return Ok(false);
        }
    }
    Ok(true)
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

/// True if some rule of policy `pi` allows something somewhere, or may (a list past the bound:
/// left to the judgement, which says it was not made).
fn allows_anything(lists: &mut Lists, pi: usize) -> bool {
    let ix = lists.ix;
    Direction::BOTH.iter().any(|&d| {
        (ix.selected[pi][d].iter()).any(|&c| match lists.get(c, d) {
            Ok((_, l)) => l.iter().any(|(o, a)| o.0 == pi && !is_empty(a)),
            Err(_) => true,
        })
    })
}

/// True if `allow` admits nothing.
pub(super) fn is_empty(allow: &Allow) -> bool {
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

fn ranges_of(allow: &Allow) -> Vec<RawRange> {
    match &allow.peers {
        Peers::Any => vec![(false, 0, u32::MAX.into()), (true, 0, u128::MAX)],
        Peers::Addrs(set) => set.raw().collect(),
    }
}

/// Adds to `by` each of `others` that shares a peer and a port with `a`.
pub(super) fn overlapping<O: Copy + Eq + Hash>(
    a: &Allow,
    others: &[&(O, &Allow)],
    by: &mut HashSet<O>,
    budget: &mut Budget,
) -> Result<(), Stopped> {
    let (mine, addresses) = (ports_of(a), ranges_of(a));
    for (o, b) in others {
        let (ports, ranges) = (ports_of(b), ranges_of(b));
        budget.spend(ports.len() * mine.len() + ranges.len() + addresses.len())?;
        let ports_meet = ports.iter().any(|p| mine.iter().any(|m| overlap(m, p)));
        if ports_meet && meet(&ranges, &addresses) {
            by.insert(*o);
        }
    }
    Ok(())
}

/// True if `a`'s peers × ports lie within the union of `others`' (each of which that overlaps it
/// is added to `by`).
pub(super) fn covered<O: Copy + Eq + Hash>(
    a: &Allow,
    others: &[&(O, &Allow)],
    by: &mut HashSet<O>,
    budget: &mut Budget,
) -> Result<bool, Stopped> {
    let (mine, addresses) = (ports_of(a), ranges_of(a));
    if addresses.is_empty() || mine.is_empty() {
        return Ok(true);
    }
    overlapping(a, others, by, budget)?;
    let theirs: Vec<(Vec<PortSpan>, Vec<RawRange>)> = (others.iter())
        .map(|(_, b)| (ports_of(b), ranges_of(b)))
        .collect();
    // Cut `a`'s ports where any other entry's port spans start or end: within one piece, each
    // other entry admits all ports or none.
    for &(protocol, first, last) in &mine {
        let mut cuts: BTreeSet<u32> = BTreeSet::from([u32::from(first), u32::from(last) + 1]);
        for (ports, _) in &theirs {
            for &(_, f, l) in ports.iter().filter(|s| s.0 == protocol) {
                for edge in [u32::from(f), u32::from(l) + 1] {
                    if edge > u32::from(first) && edge <= u32::from(last) {
                        cuts.insert(edge);
                    }
                }
            }
        }
        let cuts: Vec<u32> = cuts.into_iter().collect();
        for w in cuts.windows(2) {
            let piece = (protocol, w[0], w[1] - 1);
            let union: Vec<RawRange> = (theirs.iter())
                .filter(|(ports, _)| {
                    ports.iter().any(|&(p, f, l)| {
                        p == piece.0 && u32::from(f) <= piece.1 && piece.2 <= u32::from(l)
                    })
                })
                .flat_map(|(_, ranges)| ranges.iter().copied())
                .collect();
            budget.spend(theirs.len() + union.len() + addresses.len())?;
            if !contains(&AddrSet::merge_raw(union), &addresses) {
                return Ok(false);
            }
        }
    }
    Ok(true)
}

/// True if two sorted lists of disjoint ranges share an address: one walk over both.
fn meet(a: &[RawRange], b: &[RawRange]) -> bool {
    let (mut i, mut j) = (0, 0);
    while let (Some(x), Some(y)) = (a.get(i), b.get(j)) {
        if x.0 == y.0 && x.1 <= y.2 && y.1 <= x.2 {
            return true;
        }
        // Step past whichever ends first.
        if (x.0, x.2) < (y.0, y.2) {
            i += 1;
        } else {
            j += 1;
        }
    }
    false
}

fn overlap(a: &PortSpan, b: &PortSpan) -> bool {
    a.0 == b.0 && a.1 <= b.2 && b.1 <= a.2
}

/// True if every range of `inner` lies within one range of `outer` (sorted and merged).
fn contains(outer: &[RawRange], inner: &[RawRange]) -> bool {
    inner.iter().all(|&(v6, first, last)| {
        let i = outer.partition_point(|r| (r.0, r.2) < (v6, first));
        outer
            .get(i)
            .is_some_and(|r| r.0 == v6 && r.1 <= first && last <= r.2)
    })
}

#[cfg(test)]
mod tests {
    use super::super::Input;
    use super::*;
    use palisade_model::Loader;
    use palisade_policy::Engine;

    /// `pods` pods of distinct labels, and `policies` policies each allowing port 80 from every
    /// pod but one: every policy but the first is redundant.
    fn crafted(pods: usize, policies: usize) -> Engine {
        let mut text = String::from("apiVersion: v1\nkind: Namespace\nmetadata: {name: lab}\n");
        for i in 0..pods {
            text += &format!("---\napiVersion: v1\nkind: Pod\nmetadata: {{name: p{i}, namespace: lab, labels: {{app: p{i}}}}}\nspec: {{containers: [{{name: c, image: c}}]}}\n");
        }
        for i in 0..policies {
            text += &format!("---\napiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {{name: all-but-{i:02}, namespace: lab}}\nspec: {{podSelector: {{}}, ingress: [{{from: [{{podSelector: {{matchExpressions: [{{key: app, operator: NotIn, values: [p{i}]}}]}}}}], ports: [{{port: 80}}]}}]}}\n");
        }
        let mut loader = Loader::new();
        loader.load_str("lab.yaml", &text);
        let (state, diagnostics) = loader.finish();
        assert!(
            !diagnostics.iter().any(|d| d.is_error()),
            "{diagnostics:#?}"
        );
        Engine::new(std::sync::Arc::new(state))
    }

    fn run(engine: &Engine, max: u64) -> Vec<Finding> {
        let bounds = Bounds {
            comparisons: max,
            ..BOUNDS
        };
        run_within(engine, bounds)
    }

    fn run_within(engine: &Engine, bounds: Bounds) -> Vec<Finding> {
        let mut out = Vec::new();
        check_within(&Index::new(engine, Input::Manifests), &mut out, bounds);
        out
    }

    /// Past the bound on one class's entries, every candidate judged there says it was not
    /// judged; at the bound, everything is judged.
    #[test]
    fn classes_past_the_entries_bound_are_named_not_skipped_silently() {
        // 10 policies each with one ingress rule: 10 entries at every pod.
        let engine = crafted(4, 10);
        let all = run_within(&engine, BOUNDS);
        assert_eq!(all.len(), 8, "{all:#?}");
        let at_bound = Bounds {
            entries: 10,
            ..BOUNDS
        };
        assert_eq!(run_within(&engine, at_bound), all);
        let past = Bounds {
            entries: 9,
            ..BOUNDS
        };
        let notices = run_within(&engine, past);
        // Nothing judged, nothing found: per rule, one notice naming every policy.
        let rules: Vec<Rule> = notices.iter().map(|f| f.rule).collect();
        assert_eq!(rules, [Rule::RedundantPolicy, Rule::RedundantRule]);
        for f in &notices {
            assert_eq!(f.severity, Severity::Info);
            assert_eq!(f.object.to_string(), "NetworkPolicy lab/all-but-00");
            let said = format!(
                "not checked for {}, nor the 9 other policies of namespace lab it holds for \
                 (all-but-01, all-but-02, all-but-03 and 6 more): at pods it applies to (lab/p",
                f.rule
            );
            assert!(f.message.contains(&said), "{}", f.message);
            assert!(
                f.message.contains("ingress is allowed by 10 entries")
                    && f.message.contains("bound of 9 per pod"),
                "{}",
                f.message
            );
        }
    }

    #[test]
    fn the_check_stops_at_its_bound_and_says_where() {
        let engine = crafted(40, 10);
        let all = run(&engine, MAX_COMPARISONS);
        // Every policy but the first two (each the other's only cover).
        assert_eq!(all.len(), 8, "{all:#?}");
        assert!(all.iter().all(|f| !f.message.contains("stopped")));
        // Bounds from 1 comparison up, doubling: what was found is kept, both rules say where the
        // check stopped, until it no longer does.
        let mut partial = 0;
        for max in (0..40).map(|p| 1u64 << p) {
            let some = run(&engine, max);
            let (stopped, found): (Vec<_>, Vec<_>) =
                some.iter().partition(|f| f.message.contains("stopped"));
            assert!(found.iter().all(|f| all.contains(f)), "{some:#?}");
            if stopped.is_empty() {
                assert_eq!(found.len(), all.len());
                break;
            }
            if let [only] = stopped[..] {
                // Every policy judged; stopped among the rules.
                assert_eq!((only.rule, found.len()), (Rule::RedundantRule, all.len()));
                continue;
            }
            partial += usize::from(!found.is_empty());
            let rules: Vec<Rule> = stopped.iter().map(|f| f.rule).collect();
            assert_eq!(
                rules,
                [Rule::RedundantPolicy, Rule::RedundantRule],
                "{some:#?}"
            );
            let at = &stopped[0];
            assert_eq!(at.severity, Severity::Info);
            let before_it = format!("the {} before it", 9 - found.len());
            let said = format!("stopped after {max} comparisons");
            assert!(
                at.message.contains(&said) && at.message.contains(&before_it),
                "{}",
                at.message
            );
            assert!(stopped[1].message.contains("no policy was checked"));
        }
        assert!(partial > 0, "no bound stopped the check midway");
    }
}

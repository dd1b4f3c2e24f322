//! What the order of the tiers (`shared/reference/networkpolicy.md` §7) makes of a rule:
//! `tier-rule-shadowed`, a rule that never decides anything because, at every pod it applies to,
//! what it matches is decided first — by an earlier rule of its tier (a higher-priority policy's
//! or its own policy's: Accept, Deny or Pass), or, for a NetworkPolicy or a Baseline rule, by an
//! Admin Accept or Deny; and `tier-pass-to-nothing`, an Admin Pass that at some pods hands the
//! traffic to nothing (no NetworkPolicy isolates them, no Baseline rule matches it), so that it
//! allows it as an Accept would.
//!
//! Decided on what the dataplane enforces per endpoint class (`Engine::compile_classes`: per class
//! and direction the Admin entries in order, NetworkPolicy's allows or the Baseline entries, each
//! peer addresses × ports from a rule) with the redundancy check's coverage, so that `networks`
//! reaching outside the pods, named ports and ipBlocks count as the kernel counts them. A Baseline
//! rule is judged only at the pods no NetworkPolicy isolates: elsewhere that tier is never reached,
//! by design. What is judged is the input's pods: a rule matching only pods the input does not
//! hold matches nothing here and is left alone. The check is bounded by the redundancy check's
//! budget of comparisons: past it, an info finding says where it stopped.

use super::index::Index;
use super::redundant::{covered, is_empty, overlapping, Budget, Stopped, MAX_COMPARISONS};
use super::{plural, rule_field, some_of, Finding, Rule, Severity};
use palisade_model::{ObjectKey, Tier, TierAction};
use palisade_policy::{Allow, ClassId, Direction, DirectionRules, Peers, PortRange};
use std::collections::{BTreeSet, HashMap, HashSet};

/// The policy a rule is of: its index among the state's cluster-wide policies or NetworkPolicies.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Of {
    Tier(usize),
    Network(usize),
}

/// A rule: its policy, direction and index there.
type RuleId = (Of, Direction, usize);

/// The part of a class's rules for one direction that a rule's entries are in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Section {
    Admin,
    Policy,
    Baseline,
}

/// Where a rule's entries are: `start..end` of a section of `class`'s rules for `direction`,
/// whose entries are the list `list` (classes with the same list are judged once).
#[derive(Clone, Copy, Debug)]
struct Place {
    class: ClassId,
    direction: Direction,
    list: usize,
    section: Section,
    start: usize,
    end: usize,
}

/// One entry as far as judging goes: its rule, action, peer set's address (`0`: any peer; the
/// sets are shared and live as long as the index, so the same address is the same peers) and
/// ports.
type Signed = (
    Option<RuleId>,
    Option<TierAction>,
    usize,
    Option<Vec<PortRange>>,
);

/// What makes two classes' rules for a direction alike: the entries of each section (`None`: no
/// NetworkPolicy isolates).
type Signature = (Vec<Signed>, Option<Vec<Signed>>, Vec<Signed>);

/// What one rule's places say.
#[derive(Default)]
struct Judged {
    /// Everything it matches, wherever it applies, is decided first (and it matches something).
    shadowed: bool,
    /// The earlier rules that decide some of it.
    by: HashSet<RuleId>,
    /// The classes it applies to.
    classes: BTreeSet<ClassId>,
    /// For an Admin Pass: the classes where what it passes falls to the default.
    to_nothing: BTreeSet<ClassId>,
}

pub(super) fn check(ix: &Index, out: &mut Vec<Finding>) {
    check_within(ix, out, MAX_COMPARISONS);
}

/// [`check`] within `max` comparisons.
fn check_within(ix: &Index, out: &mut Vec<Finding>, max: u64) {
    if ix.state.tier_policies.is_empty() {
        return; // nothing comes before a NetworkPolicy rule
    }
    let of = policies(ix);
    let places = places(ix, &of);
    let mut order: Vec<&RuleId> = places.keys().collect();
    order.sort_by_key(|&&(p, d, r)| (p, d == Direction::Egress, r));
    let mut budget = Budget { left: max };
    let mut found: Vec<(RuleId, Judged)> = Vec::new();
    for (i, &&id) in order.iter().enumerate() {
        let Ok(judged) = judge(ix, &of, &places[&id], &mut budget) else {
            out.extend(
                [Rule::TierRuleShadowed, Rule::TierPassToNothing]
                    .map(|rule| stopped(ix, id, rule, order.len() - i - 1, max)),
            );
            break;
        };
        if !judged.to_nothing.is_empty() {
            out.push(to_nothing(ix, id, &judged.to_nothing));
        }
        if judged.shadowed {
            found.push((id, judged));
        }
    }
    // Name the rules that decide, not those shadowed themselves (unless no other is left).
    let gone: HashSet<RuleId> = found.iter().map(|(id, _)| *id).collect();
    for (id, mut judged) in found {
        let deciding: HashSet<RuleId> = judged.by.difference(&gone).copied().collect();
        if !deciding.is_empty() {
            judged.by = deciding;
        }
        out.push(shadowed(ix, id, &judged));
    }
}

/// Each policy's key, to read the origins of the compiled entries.
fn policies(ix: &Index) -> HashMap<ObjectKey, Of> {
    let tiers = (ix.state.tier_policies.iter().enumerate()).map(|(i, p)| (p.key(), Of::Tier(i)));
    let networks = (ix.state.policies.iter().enumerate()).map(|(i, p)| (p.key(), Of::Network(i)));
    tiers.chain(networks).collect()
}

/// `class`'s rules for `direction`, if any policy governs it there.
fn side<'i>(ix: &'i Index, class: ClassId, direction: Direction) -> Option<&'i DirectionRules> {
    let rules = ix.class_rules(class);
    match direction {
        Direction::Ingress => rules.ingress.as_ref(),
        Direction::Egress => rules.egress.as_ref(),
    }
}

/// The entries of `section` of `rules`, each with what a match does (`None`: a NetworkPolicy
/// allow).
fn section(rules: &DirectionRules, section: Section) -> Vec<(Option<TierAction>, &Allow)> {
    let entries = match section {
        Section::Admin => &rules.admin,
        Section::Policy => return (rules.policy.iter().flatten()).map(|a| (None, a)).collect(),
        Section::Baseline => &rules.baseline,
    };
    (entries.iter())
        .map(|e| (Some(e.action), &e.matches))
        .collect()
}

/// Where each rule's entries are, over every class and direction (a rule's entries are
/// consecutive).
fn places(ix: &Index, of: &HashMap<ObjectKey, Of>) -> HashMap<RuleId, Vec<Place>> {
    let mut out: HashMap<RuleId, Vec<Place>> = HashMap::new();
    let mut lists: HashMap<Signature, usize> = HashMap::new();
    for class in ix.engine.class_ids() {
        for direction in Direction::BOTH {
            let Some(rules) = side(ix, class, direction) else {
                continue;
            };
            let next = lists.len();
            let list = *lists.entry(signature(of, rules)).or_insert(next);
            for s in [Section::Admin, Section::Policy, Section::Baseline] {
                let entries = section(rules, s);
                let mut start = 0;
                while let Some((_, first)) = entries.get(start) {
                    let end = start
                        + (entries[start..].iter())
                            .take_while(|(_, a)| a.origin == first.origin)
                            .count();
                    if let Some(&policy) = of.get(&*first.origin.policy) {
                        out.entry((policy, direction, first.origin.rule))
                            .or_default()
                            .push(Place {
                                class,
                                direction,
                                list,
                                section: s,
                                start,
                                end,
                            });
                    }
                    start = end;
                }
            }
        }
    }
    out
}

/// The [`Signature`] of `rules`.
fn signature(of: &HashMap<ObjectKey, Of>, rules: &DirectionRules) -> Signature {
    let sign = |s: Section| -> Vec<Signed> {
        (section(rules, s).into_iter())
            .map(|(action, a)| {
                let peers = match &a.peers {
                    Peers::Any => 0,
                    Peers::Addrs(set) => std::sync::Arc::as_ptr(set) as usize,
                };
                let rule =
                    (of.get(&*a.origin.policy)).map(|&p| (p, a.origin.direction, a.origin.rule));
                (rule, action, peers, a.ports.clone())
            })
            .collect()
    };
    (
        sign(Section::Admin),
        rules.policy.is_some().then(|| sign(Section::Policy)),
        sign(Section::Baseline),
    )
}

/// What a rule's entries in one list say: all decided first (adding the rules deciding some to
/// `by`), and, for a Pass, whether what it passes falls to the default.
#[derive(Clone, Default)]
struct Here {
    covered: bool,
    to_nothing: bool,
    by: HashSet<RuleId>,
}

/// Judges a rule at its `places`.
fn judge(
    ix: &Index,
    of: &HashMap<ObjectKey, Of>,
    places: &[Place],
    budget: &mut Budget,
) -> Result<Judged, Stopped> {
    let mut judged = Judged {
        shadowed: true,
        ..Judged::default()
    };
    let mut anything = false;
    let id = |a: &Allow| {
        of.get(&*a.origin.policy)
            .map(|&p| (p, a.origin.direction, a.origin.rule))
    };
    let mut lists: HashMap<(usize, Section, usize), Here> = HashMap::new();
    for place in places {
        let Some(rules) = side(ix, place.class, place.direction) else {
            continue;
        };
        let entries = section(rules, place.section);
        let mine = &entries[place.start..place.end];
        let pass = mine
            .first()
            .is_some_and(|(action, _)| *action == Some(TierAction::Pass));
        if !judged.shadowed && !pass {
            break;
        }
        anything |= mine.iter().any(|(_, a)| !is_empty(a));
        judged.classes.insert(place.class);
        let here = match lists.get(&(place.list, place.section, place.start)) {
            Some(known) => known.clone(),
            None => {
                let here = judge_here(rules, place, pass, &id, budget)?;
                lists.insert((place.list, place.section, place.start), here.clone());
                here
            }
        };
        judged.by.extend(here.by);
        judged.shadowed &= here.covered;
        if here.to_nothing {
            judged.to_nothing.insert(place.class);
        }
    }
    judged.shadowed &= anything;
    Ok(judged)
}

/// Judges a rule's entries at one place of `rules` (`pass`: it is an Admin Pass); `id` names an
/// entry's rule.
fn judge_here(
    rules: &DirectionRules,
    place: &Place,
    pass: bool,
    id: &dyn Fn(&Allow) -> Option<RuleId>,
    budget: &mut Budget,
) -> Result<Here, Stopped> {
    let admin = section(rules, Section::Admin);
    let entries = section(rules, place.section);
    let mine = &entries[place.start..place.end];
    // What decides before it: its tier's earlier entries, and (after the Admin tier) the
    // Admin entries that do not hand on.
    let deciding = (admin.iter()).filter(|(action, _)| *action != Some(TierAction::Pass));
    let earlier: Vec<(RuleId, &Allow)> = match place.section {
        Section::Admin => admin[..place.start].iter().collect::<Vec<_>>(),
        Section::Policy => deciding.collect(),
        Section::Baseline => deciding.chain(&entries[..place.start]).collect(),
    }
    .into_iter()
    .filter_map(|(_, a)| Some((id(a)?, *a)))
    .collect();
    let earlier: Vec<&(RuleId, &Allow)> = earlier.iter().collect();
    let mut here = Here {
        covered: true,
        ..Here::default()
    };
    for (_, a) in mine {
        if !covered(a, &earlier, &mut here.by, budget)? {
            here.covered = false;
            break;
        }
    }
    here.to_nothing =
        pass && !here.covered && rules.policy.is_none() && !reaches_baseline(rules, mine, budget)?;
    Ok(here)
}

/// True if a Baseline entry of `rules` shares a peer and a port with one of `mine`.
fn reaches_baseline(
    rules: &DirectionRules,
    mine: &[(Option<TierAction>, &Allow)],
    budget: &mut Budget,
) -> Result<bool, Stopped> {
    let baseline: Vec<((), &Allow)> = (rules.baseline.iter()).map(|e| ((), &e.matches)).collect();
    let baseline: Vec<&((), &Allow)> = baseline.iter().collect();
    let mut met = HashSet::new();
    for (_, a) in mine {
        overlapping(a, &baseline, &mut met, budget)?;
    }
    Ok(!met.is_empty())
}

/// The tier of `policy` (`None`: a NetworkPolicy).
fn tier(ix: &Index, policy: Of) -> Option<Tier> {
    match policy {
        Of::Tier(i) => Some(ix.state.tier_policies[i].policy.spec().tier),
        Of::Network(_) => None,
    }
}

/// `spec.ingress[2]` in `from`, else `ClusterNetworkPolicy name spec.ingress[2]`.
fn rule_name(ix: &Index, (policy, direction, rule): RuleId, from: Of) -> String {
    let field = rule_field(direction, rule);
    if policy == from {
        return field;
    }
    let key = match policy {
        Of::Tier(i) => ix.state.tier_policies[i].key(),
        Of::Network(i) => ix.state.policies[i].key(),
    };
    format!("{key} {field}")
}

/// A finding of `rule` on rule `id`.
fn finding(ix: &Index, rule: Rule, id: RuleId, message: String, fix: String) -> Finding {
    let (policy, direction, index) = id;
    let field = Some(rule_field(direction, index));
    match policy {
        Of::Network(i) => Finding::policy(rule, &ix.state.policies[i], field, message, fix),
        Of::Tier(i) => {
            let info = &ix.state.tier_policies[i];
            Finding {
                rule,
                severity: rule.severity(),
                object: info.key().into(),
                origin: Some(info.origin.clone()),
                field,
                message,
                fix,
            }
        }
    }
}

/// The `tier-rule-shadowed` finding on rule `id`.
fn shadowed(ix: &Index, id: RuleId, judged: &Judged) -> Finding {
    let mut by: Vec<&RuleId> = judged.by.iter().collect();
    by.sort_by_key(|&&(p, d, r)| (p, d == Direction::Egress, r));
    let names: Vec<String> = by.iter().map(|&&b| rule_name(ix, b, id.0)).collect();
    let classes: Vec<ClassId> = judged.classes.iter().copied().collect();
    let reorder = match by.iter().any(|b| tier(ix, b.0) == tier(ix, id.0)) {
        true => ", or have this rule evaluated first (move it up, or give its policy a lower spec.priority)",
        false => "",
    };
    finding(
        ix,
        Rule::TierRuleShadowed,
        id,
        format!(
            "this rule never decides anything: at the {} it applies to ({}), everything it matches is decided first by {}",
            plural(ix.pods_in(classes.iter().copied()), "pod"),
            ix.examples(&classes),
            some_of(names.iter().cloned(), 3),
        ),
        format!(
            "delete {} if the earlier rule says what is meant; otherwise narrow the peers or protocols of {}{reorder}",
            rule_field(id.1, id.2),
            some_of(names, 3),
        ),
    )
}

/// The `tier-pass-to-nothing` finding on Admin Pass rule `id`, at `classes`.
fn to_nothing(ix: &Index, id: RuleId, classes: &BTreeSet<ClassId>) -> Finding {
    let namespaces: BTreeSet<&str> = (classes.iter())
        .map(|&c| {
            ix.state.namespaces[ix.engine.class_namespace(c)]
                .name
                .as_str()
        })
        .collect();
    let direction = id.1.as_str();
    finding(
        ix,
        Rule::TierPassToNothing,
        id,
        format!(
            "this Pass hands traffic to nothing at {} of its subject (namespace {}): no NetworkPolicy isolates their {direction} and no Baseline rule matches what it passes, so the default allows it, as an Accept would",
            plural(ix.pods_in(classes.iter().copied()), "pod"),
            some_of(namespaces.iter().map(|n| n.to_string()), 3),
        ),
        format!(
            "write `action: Accept` if allowing is meant; to delegate, give those namespaces a NetworkPolicy isolating {direction} (or add a Baseline rule for this traffic)"
        ),
    )
}

/// What is said of `rule` when the check ran out of comparisons at rule `at`, with `left` rules
/// after it: an info finding there, never silence.
fn stopped(ix: &Index, at: RuleId, rule: Rule, left: usize, max: u64) -> Finding {
    Finding {
        severity: Severity::Info,
        ..finding(
            ix,
            rule,
            at,
            format!(
                "the tier order check stopped after {max} comparisons (its bound): this rule and the {} after it were not checked for {rule}",
                plural(left, "rule"),
            ),
            "lint fewer policies at a time to check them all, or --disable tier-rule-shadowed --disable tier-pass-to-nothing to skip the check".into(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::super::Input;
    use super::*;
    use palisade_model::Loader;
    use palisade_policy::Engine;

    /// Two pods, an Admin Deny of all ingress first, then `accepts` Admin Accepts of the same:
    /// every Accept is shadowed.
    fn crafted(accepts: usize) -> Engine {
        let mut text = String::from("apiVersion: v1\nkind: Namespace\nmetadata: {name: lab}\n");
        for i in 0..2 {
            text += &format!("---\napiVersion: v1\nkind: Pod\nmetadata: {{name: p{i}, namespace: lab, labels: {{app: p{i}}}}}\nspec: {{containers: [{{name: c, image: c}}]}}\nstatus: {{podIP: 10.0.0.{i}}}\n");
        }
        let cnp = |name: String, priority: usize, action: &str| {
            format!("---\napiVersion: policy.networking.k8s.io/v1alpha2\nkind: ClusterNetworkPolicy\nmetadata: {{name: {name}}}\nspec: {{tier: Admin, priority: {priority}, subject: {{namespaces: {{}}}}, ingress: [{{action: {action}, from: [{{namespaces: {{}}}}]}}]}}\n")
        };
        text += &cnp("deny".into(), 0, "Deny");
        for i in 0..accepts {
            text += &cnp(format!("accept-{i}"), i + 1, "Accept");
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
        let mut out = Vec::new();
        check_within(&Index::new(engine, Input::Manifests), &mut out, max);
        out
    }

    /// Bounds from 1 comparison up, doubling: what was found is kept, and both rules say where
    /// the check stopped and how many rules were left, until it no longer stops.
    #[test]
    fn the_check_stops_at_its_bound_and_says_where() {
        let engine = crafted(5);
        let all = run(&engine, MAX_COMPARISONS);
        assert_eq!(all.len(), 5, "{all:#?}");
        assert!(all.iter().all(|f| f.rule == Rule::TierRuleShadowed));
        let mut partial = 0;
        for max in (0..40).map(|p| 1u64 << p) {
            let some = run(&engine, max);
            let (stopped, found): (Vec<_>, Vec<_>) =
                some.iter().partition(|f| f.severity == Severity::Info);
            assert!(found.iter().all(|f| all.contains(f)), "{some:#?}");
            if stopped.is_empty() {
                assert_eq!(found.len(), all.len());
                break;
            }
            partial += usize::from(!found.is_empty());
            let rules: Vec<Rule> = stopped.iter().map(|f| f.rule).collect();
            assert_eq!(rules, [Rule::TierRuleShadowed, Rule::TierPassToNothing]);
            // The rules are judged in order: the Deny, then the Accepts; each found one before.
            let at = &stopped[0];
            let said = format!("stopped after {max} comparisons");
            let left = format!("the {} after it", plural(5 - found.len(), "rule"));
            assert!(
                at.message.contains(&said) && at.message.contains(&left),
                "{}",
                at.message
            );
        }
        assert!(partial > 0, "no bound stopped the check midway");
    }
}

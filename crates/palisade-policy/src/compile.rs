//! Compilation for the dataplane: per endpoint class and direction, the cluster-wide tiers' entries
//! (peer addresses × ports, with an action) and NetworkPolicy's allowed (peer addresses, ports)
//! pairs, with peers as shared sets of disjoint address ranges (pod IPs of the matched classes,
//! ipBlocks with their `except` subtracted, `networks`, node addresses) — so a kernel lookup is set
//! membership, never a walk over rules; and the same flattened into one first-match list
//! ([`DirectionRules::flatten`]), which is what a kernel chain is.

use crate::bitset::BitSet;
use crate::classes::{Class, ClassId};
use crate::direction::{Direction, PerDirection};
use crate::engine::{Derived, Engine, RuleClasses};
use crate::policy::{CompiledPolicy, NamespaceScope, Peer, PolicyId, Rule};
use foldhash::HashMap;
use palisade_model::{Id, IdVec, IpBlock, ObjectKey, Protocol, TierAction};
use palisade_model::{PortMatch, PortSpec};
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;

/// An inclusive range of addresses of one family.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AddrRange {
    /// First address.
    pub first: IpAddr,
    /// Last address (same family as `first`).
    pub last: IpAddr,
}

/// A set of addresses as sorted, disjoint, non-adjacent ranges.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct AddrSet {
    /// The ranges, IPv4 before IPv6, ascending.
    pub ranges: Vec<AddrRange>,
}

fn to_u128(ip: IpAddr) -> (bool, u128) {
    match ip {
        IpAddr::V4(a) => (false, u32::from(a) as u128),
        IpAddr::V6(a) => (true, u128::from(a)),
    }
}

fn from_u128(v6: bool, v: u128) -> IpAddr {
    if v6 {
        IpAddr::V6(v.into())
    } else {
        IpAddr::V4((v as u32).into())
    }
}

/// An inclusive address range as integers, `(IPv6?, first, last)`: what set arithmetic walks.
pub type RawRange = (bool, u128, u128);

impl AddrSet {
    /// Sorts ranges and merges those of a family that overlap or touch.
    pub fn merge_raw(mut raw: Vec<RawRange>) -> Vec<RawRange> {
        raw.sort_unstable();
        let mut merged: Vec<RawRange> = Vec::with_capacity(raw.len());
        for (v6, lo, hi) in raw {
            match merged.last_mut() {
                Some((lv6, _, lhi)) if *lv6 == v6 && lo <= lhi.saturating_add(1) => {
                    *lhi = (*lhi).max(hi);
                }
                _ => merged.push((v6, lo, hi)),
            }
        }
        merged
    }

    /// Builds a set from possibly overlapping ranges: sorts and merges.
    pub fn from_ranges(raw: Vec<RawRange>) -> AddrSet {
        AddrSet {
            ranges: (AddrSet::merge_raw(raw).into_iter())
                .map(|(v6, lo, hi)| AddrRange {
                    first: from_u128(v6, lo),
                    last: from_u128(v6, hi),
                })
                .collect(),
        }
    }

    /// The ranges as integers, in order.
    pub fn raw(&self) -> impl Iterator<Item = RawRange> + '_ {
        self.ranges.iter().map(|r| {
            let (v6, first) = to_u128(r.first);
            (v6, first, to_u128(r.last).1)
        })
    }

    /// True if `ip` is in the set.
    pub fn contains(&self, ip: IpAddr) -> bool {
        self.ranges.iter().any(|r| {
            let (f6, lo) = to_u128(r.first);
            let (_, hi) = to_u128(r.last);
            let (v6, v) = to_u128(ip);
            f6 == v6 && (lo..=hi).contains(&v)
        })
    }

    /// True if empty.
    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }

    /// The addresses in both sets: one walk over both (each sorted, disjoint).
    pub fn intersection(&self, other: &AddrSet) -> AddrSet {
        let bounds = |(v6, lo, hi): RawRange| ((v6, lo), (v6, hi));
        let (a, b): (Vec<_>, Vec<_>) = (
            self.raw().map(bounds).collect(),
            other.raw().map(bounds).collect(),
        );
        let (mut i, mut j, mut ranges) = (0, 0, Vec::new());
        while i < a.len() && j < b.len() {
            let (first, last) = (a[i].0.max(b[j].0), a[i].1.min(b[j].1));
            if first <= last {
                ranges.push(AddrRange {
                    first: from_u128(first.0, first.1),
                    last: from_u128(last.0, last.1),
                });
            }
            if a[i].1 < b[j].1 {
                i += 1;
            } else {
                j += 1;
            }
        }
        AddrSet { ranges }
    }
}

/// The ranges of an ipBlock: `cidr` minus every `except`.
fn block_ranges(block: &IpBlock) -> Vec<(bool, u128, u128)> {
    let bounds = |net: &ipnet::IpNet| {
        let (v6, lo) = to_u128(net.network());
        let (_, hi) = to_u128(net.broadcast());
        (v6, lo, hi)
    };
    let (v6, lo, hi) = bounds(&block.cidr);
    let mut holes: Vec<(u128, u128)> = block
        .except
        .iter()
        .map(bounds)
        .filter(|(ev6, _, _)| *ev6 == v6)
        .map(|(_, l, h)| (l, h))
        .collect();
    holes.sort_unstable();
    let mut out = Vec::new();
    let mut next = lo;
    for (hl, hh) in holes {
        if hl > next {
            out.push((v6, next, hl - 1));
        }
        next = next.max(hh.saturating_add(1));
        if hh == u128::MAX {
            return out;
        }
    }
    if next <= hi {
        out.push((v6, next, hi));
    }
    out
}

/// Which peers an allow entry admits.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Peers {
    /// Every address (`from`/`to` missing or empty).
    Any,
    /// These addresses (shared between entries that have the same peers).
    Addrs(Arc<AddrSet>),
}

/// Ports of one protocol, inclusive.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PortRange {
    /// Protocol.
    pub protocol: Protocol,
    /// First port.
    pub first: u16,
    /// Last port.
    pub last: u16,
}

impl PortRange {
    /// Sorts port ranges and merges those of a protocol that overlap or touch: kernel interval
    /// sets reject overlapping elements, and people read `80-90` better than `80-85, 86-90`.
    pub fn merge(mut ports: Vec<PortRange>) -> Vec<PortRange> {
        ports.sort_unstable();
        let mut out: Vec<PortRange> = Vec::with_capacity(ports.len());
        for p in ports {
            match out.last_mut() {
                Some(last)
                    if last.protocol == p.protocol && p.first <= last.last.saturating_add(1) =>
                {
                    last.last = last.last.max(p.last);
                }
                _ => out.push(p),
            }
        }
        out
    }
}

/// Which policy rule something comes from: the policy's identity (kind, namespace and name), the
/// direction and the rule's index in it — never a position in a list, so that it, and what is named
/// after it in the kernel, survives any unrelated change.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct RuleOrigin {
    /// The policy (shared by every rule and entry compiled from it).
    pub policy: Arc<ObjectKey>,
    /// Ingress or egress.
    pub direction: Direction,
    /// The rule's index among the policy's rules of that direction.
    pub rule: usize,
}

/// One way a flow is allowed: peers × ports, from a rule of a policy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Allow {
    /// Allowed peers.
    pub peers: Peers,
    /// Allowed ports; `None`: every port of every protocol (ICMP included).
    pub ports: Option<Vec<PortRange>>,
    /// The rule it comes from.
    pub origin: RuleOrigin,
}

/// A cluster-wide rule's entry: what it matches (peers × ports, and the rule it comes from) and
/// what a match does.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TierEntry {
    /// Accept, Deny or Pass.
    pub action: TierAction,
    /// What it matches, and its rule.
    pub matches: Allow,
}

/// What the dataplane enforces for one direction of a class, in the order of evaluation.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct DirectionRules {
    /// The Admin tier's entries: the first that admits a flow decides (Pass: on to
    /// NetworkPolicy).
    pub admin: Vec<TierEntry>,
    /// `None`: no NetworkPolicy isolates the class; otherwise it decides what the Admin tier left,
    /// allowing the union of these entries.
    pub policy: Option<Vec<Allow>>,
    /// The Baseline tier's entries, for what the Admin tier left when `policy` is `None` (empty
    /// otherwise: never reached); what none of them decides is allowed.
    pub baseline: Vec<TierEntry>,
}

/// What a flattened entry, or the end of a chain, does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Disposition {
    /// Allowed in this direction.
    Allow,
    /// Dropped.
    Deny,
}

/// One entry of a first-match list ([`DirectionRules::flatten`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FlatEntry {
    /// What it matches, and the rule that decides.
    pub matches: Allow,
    /// What a match does.
    pub disposition: Disposition,
    /// Why: the rule's tier and action (`None`: a NetworkPolicy allow).
    pub by: Option<(palisade_model::Tier, TierAction)>,
}

/// A direction's rules as one first-match list, and what is left at its end.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Flat {
    /// The entries, in order.
    pub entries: Vec<FlatEntry>,
    /// What a flow no entry matches gets.
    pub otherwise: Disposition,
}

/// What the dataplane enforces for one class.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClassRules {
    /// `None`: no policy governs the class's ingress (everything is allowed).
    pub ingress: Option<DirectionRules>,
    /// `None`: no policy governs its egress.
    pub egress: Option<DirectionRules>,
}

impl Allow {
    /// True if this entry admits `peer` (its address, if known) on `port`/`protocol`.
    pub fn admits(&self, peer: Option<IpAddr>, port: u16, protocol: Protocol) -> bool {
        let peer_ok = match &self.peers {
            Peers::Any => true,
            Peers::Addrs(set) => peer.is_some_and(|ip| set.contains(ip)),
        };
        peer_ok
            && self.ports.as_ref().is_none_or(|ports| {
                ports
                    .iter()
                    .any(|r| r.protocol == protocol && (r.first..=r.last).contains(&port))
            })
    }

    /// What both this entry and `other` admit, with `other`'s origin; `None` when nothing.
    fn and(&self, other: &Allow, cache: &mut AddrCache) -> Option<Allow> {
        let peers = match (&self.peers, &other.peers) {
            (Peers::Any, p) | (p, Peers::Any) => p.clone(),
            (Peers::Addrs(a), Peers::Addrs(b)) => Peers::Addrs(cache.intersection(a, b)),
        };
        if matches!(&peers, Peers::Addrs(set) if set.is_empty()) {
            return None;
        }
        let ports = match (&self.ports, &other.ports) {
            (None, p) | (p, None) => p.clone(),
            (Some(a), Some(b)) => {
                let both = port_intersection(a, b);
                if both.is_empty() {
                    return None;
                }
                Some(both)
            }
        };
        Some(Allow {
            peers,
            ports,
            origin: other.origin.clone(),
        })
    }
}

/// The ports in both `a` and `b` (each sorted and merged, [`PortRange::merge`]).
fn port_intersection(a: &[PortRange], b: &[PortRange]) -> Vec<PortRange> {
    let mut out = Vec::new();
    for x in a {
        for y in b.iter().filter(|y| y.protocol == x.protocol) {
            let (first, last) = (x.first.max(y.first), x.last.min(y.last));
            if first <= last {
                out.push(PortRange {
                    protocol: x.protocol,
                    first,
                    last,
                });
            }
        }
    }
    PortRange::merge(out)
}

impl DirectionRules {
    /// What these rules decide for a flow: the Admin tier's first matching entry (Accept or Deny;
    /// Pass goes on); then NetworkPolicy if it isolates; else the Baseline tier's first matching
    /// entry (Pass or none: allowed). The dataplane enforces exactly this.
    pub fn allows(&self, peer: Option<IpAddr>, port: u16, protocol: Protocol) -> bool {
        let first = |entries: &[TierEntry]| {
            (entries.iter())
                .find(|e| e.matches.admits(peer, port, protocol))
                .map(|e| e.action)
        };
        match first(&self.admin) {
            Some(TierAction::Accept) => return true,
            Some(TierAction::Deny) => return false,
            Some(TierAction::Pass) | None => {}
        }
        if let Some(allows) = &self.policy {
            return allows.iter().any(|a| a.admits(peer, port, protocol));
        }
        first(&self.baseline) != Some(TierAction::Deny)
    }

    /// The same rules as one first-match list, which is what a kernel chain can be: the Admin
    /// entries in order, each Pass followed by what comes after the tier restricted to what it
    /// matches (an entry for each of those entries, the intersection of both); then what comes
    /// after the tier. `cache` shares the intersected address sets.
    pub fn flatten(&self, cache: &mut AddrCache) -> Flat {
        let tier_entry = |tier, e: &TierEntry| FlatEntry {
            matches: e.matches.clone(),
            disposition: match e.action {
                TierAction::Deny => Disposition::Deny,
                TierAction::Accept | TierAction::Pass => Disposition::Allow,
            },
            by: Some((tier, e.action)),
        };
        let (rest, otherwise): (Vec<FlatEntry>, Disposition) = match &self.policy {
            Some(allows) => {
                let entries = (allows.iter())
                    .map(|a| FlatEntry {
                        matches: a.clone(),
                        disposition: Disposition::Allow,
                        by: None,
                    })
                    .collect();
                (entries, Disposition::Deny)
            }
            None => {
                let baseline = palisade_model::Tier::Baseline;
                let entries = (self.baseline.iter())
                    .map(|e| tier_entry(baseline, e))
                    .collect();
                (entries, Disposition::Allow)
            }
        };
        let mut entries = Vec::new();
        for e in &self.admin {
            if e.action != TierAction::Pass {
                entries.push(tier_entry(palisade_model::Tier::Admin, e));
                continue;
            }
            for later in &rest {
                if let Some(matches) = e.matches.and(&later.matches, cache) {
                    entries.push(FlatEntry {
                        matches,
                        ..later.clone()
                    });
                }
            }
            entries.push(FlatEntry {
                matches: e.matches.clone(),
                disposition: otherwise,
                by: Some((palisade_model::Tier::Admin, TierAction::Pass)),
            });
        }
        entries.extend(rest);
        Flat { entries, otherwise }
    }
}

impl Flat {
    /// What the list decides for a flow: its first matching entry, or `otherwise`.
    pub fn allows(&self, peer: Option<IpAddr>, port: u16, protocol: Protocol) -> bool {
        let decided = (self.entries.iter())
            .find(|e| e.matches.admits(peer, port, protocol))
            .map_or(self.otherwise, |e| e.disposition);
        decided == Disposition::Allow
    }
}

impl ClassRules {
    /// What the kernel rules decide for one direction: allowed if no policy governs it, or as
    /// [`DirectionRules::allows`] says. The dataplane renders exactly this.
    pub fn allows(
        &self,
        direction: Direction,
        peer: Option<IpAddr>,
        port: u16,
        protocol: Protocol,
    ) -> bool {
        let rules = match direction {
            Direction::Ingress => &self.ingress,
            Direction::Egress => &self.egress,
        };
        (rules.as_ref()).is_none_or(|r| r.allows(peer, port, protocol))
    }
}

/// For the named ports of an egress rule: the destination classes that resolve a name, by the
/// (protocol, port) it resolves to there.
type NamedDestinations = BTreeMap<(Protocol, u16), BitSet<Class>>;

/// A rule's ports for one class: number ranges, and named ports by destination classes.
type RulePorts = (Vec<PortRange>, NamedDestinations);

/// A rule's peers: the classes its selectors match, and its ipBlocks.
type PeersKey = (BitSet<Class>, Vec<Id<IpBlock>>);

/// Shared peer address sets, built once per compile.
#[derive(Default)]
pub struct AddrCache {
    /// The engine (its id) the sets by classes and rules are of: class ids and rules are an
    /// engine's own, so a cache handed to another engine forgets them.
    engine: Option<u64>,
    by_classes: HashMap<BitSet<Class>, Arc<AddrSet>>,
    /// A rule's peers with ipBlocks: by the classes its selectors match and its blocks.
    with_blocks: HashMap<PeersKey, Arc<AddrSet>>,
    /// An egress rule's ports (numbers, and named ports by the destinations resolving them).
    egress_ports: HashMap<RuleOrigin, Arc<RulePorts>>,
    /// Intersections, by the addresses of the two sets (shared sets are the same `Arc`), each
    /// with both sets, which keeps those addresses from being reused.
    intersections: HashMap<(usize, usize), [Arc<AddrSet>; 3]>,
}

impl AddrCache {
    /// Forgets what was found for another engine than `engine`.
    fn for_engine(&mut self, engine: u64) {
        if self.engine != Some(engine) {
            self.by_classes.clear();
            self.with_blocks.clear();
            self.egress_ports.clear();
            self.engine = Some(engine);
        }
    }

    /// The addresses in both `a` and `b`.
    fn intersection(&mut self, a: &Arc<AddrSet>, b: &Arc<AddrSet>) -> Arc<AddrSet> {
        let key = (Arc::as_ptr(a) as usize, Arc::as_ptr(b) as usize);
        let [_, _, set] = (self.intersections.entry(key))
            .or_insert_with(|| [a.clone(), b.clone(), Arc::new(a.intersection(b))]);
        set.clone()
    }
}

impl Engine {
    fn class_ranges(&self, classes: &BitSet<Class>) -> Vec<(bool, u128, u128)> {
        let state = self.state();
        classes
            .iter()
            .flat_map(|c| self.class_pods(c).iter())
            .filter_map(|&p| state.pods[p].ip)
            .map(|ip| {
                let (v6, v) = to_u128(ip);
                (v6, v, v)
            })
            .collect()
    }

    fn peer_addrs(
        &self,
        rule: &Rule,
        classes: &BitSet<Class>,
        cache: &mut AddrCache,
    ) -> Arc<AddrSet> {
        let blocks: Vec<(Id<IpBlock>, &IpBlock)> = (rule.peers.iter().flatten())
            .filter_map(|p| match p {
                Peer::Block { block, id } => Some((*id, block)),
                Peer::Pods { .. } => None,
            })
            .collect();
        let compute = || {
            let mut raw = self.class_ranges(classes);
            for (_, b) in &blocks {
                raw.extend(block_ranges(b));
            }
            Arc::new(AddrSet::from_ranges(raw))
        };
        // Every class a cluster-wide rule applies to asks for the same set: computed once.
        if blocks.is_empty() {
            if let Some(set) = cache.by_classes.get(classes) {
                return set.clone();
            }
            let set = compute();
            cache.by_classes.insert(classes.clone(), set.clone());
            return set;
        }
        let key = (classes.clone(), blocks.iter().map(|(id, _)| *id).collect());
        if let Some(set) = cache.with_blocks.get(&key) {
            return set.clone();
        }
        let set = compute();
        cache.with_blocks.insert(key, set.clone());
        set
    }

    /// What the dataplane enforces for every class ([`Engine::compile_class`] of each, shared), taking
    /// from `previous` — an earlier engine this one was compiled from ([`Engine::new_from`]) and the
    /// rules of its classes — the rules of every class that has a class of the same key there, is
    /// selected by the same policies, and whose policies' peers cannot have changed. Same result as
    /// compiling every class.
    ///
    /// A rule's peers are the addresses of the classes its selectors match, and matching depends
    /// only on a class's key and, for namespace selectors, on the namespaces' labels: a rule can
    /// change only through its policy, a class that is new, gone, or whose addresses changed, or a
    /// namespace relabelled.
    pub fn compile_classes(
        &self,
        previous: Option<(&Engine, &IdVec<Class, Arc<ClassRules>>)>,
    ) -> IdVec<Class, Arc<ClassRules>> {
        let mut cache = AddrCache::default();
        let reusable = previous.and_then(|(old, rules)| {
            let derived = self.derived_from(old)?;
            (rules.len() == old.class_count()).then_some((old, rules, derived))
        });
        let Some((old, old_rules, derived)) = reusable else {
            return (self.class_ids())
                .map(|c| Arc::new(self.compile_class(c, &mut cache)))
                .collect();
        };
        let touched = self.touched_rules(old, derived);
        let counterpart = &derived.classes;
        (self.class_ids())
            .map(|c| {
                let reuse = counterpart[c].filter(|&o| {
                    Direction::BOTH.iter().all(|&direction| {
                        let lists = [
                            (&self.selecting[direction][c], &old.selecting[direction][o]),
                            (&self.tiers[direction][c], &old.tiers[direction][o]),
                        ];
                        lists.iter().all(|(now, was)| {
                            now.len() == was.len()
                                && (now.iter().zip(was.iter())).all(|(&pi, &o)| {
                                    derived.policies[pi] == Some(o) && !touched[pi][direction]
                                })
                        })
                    })
                });
                match reuse {
                    Some(o) => old_rules[o].clone(),
                    None => Arc::new(self.compile_class(c, &mut cache)),
                }
            })
            .collect()
    }

    /// Per policy and direction: can a rule's peers differ from what its counterpart's were in
    /// `old`? A new or changed policy has none: always.
    fn touched_rules(
        &self,
        old: &Engine,
        derived: &Derived,
    ) -> IdVec<CompiledPolicy, PerDirection<bool>> {
        let (n, m) = (self.class_count(), old.class_count());
        let counterpart = &derived.classes;
        // Classes whose pods have the addresses they had (all a class gives the rules that select
        // it, besides its key).
        let same_addresses = |c: ClassId, o: ClassId| {
            let (new, was) = (self.class_pods(c), old.class_pods(o));
            new.len() == was.len()
                && (new.iter().zip(was))
                    .all(|(&p, &q)| self.state().pods[p].ip == old.state().pods[q].ip)
        };
        let (mut changed, mut old_unchanged) = (BitSet::full(n), BitSet::new(m));
        for (c, o) in counterpart.iter_enumerated() {
            if let Some(o) = *o {
                if same_addresses(c, o) {
                    old_unchanged.insert(o);
                    changed.remove(c);
                }
            }
        }
        let mut old_changed = BitSet::full(m);
        for o in old_unchanged.iter() {
            old_changed.remove(o);
        }
        let anything_changed = !changed.is_empty() || !old_changed.is_empty();
        // Namespace selectors whose namespaces changed, when namespaces were relabelled.
        let moved = |rule: &Rule| {
            rule.peers.iter().flatten().any(|peer| match peer {
                Peer::Pods {
                    namespaces: NamespaceScope::Selected(sel),
                    ..
                } => derived.relabelled.iter().any(|&ns| {
                    sel.matches(&self.namespace_labels[ns])
                        != sel.matches(&old.namespace_labels[ns])
                }),
                _ => false,
            })
        };
        (self.policies.iter_enumerated())
            .map(|(pi, policy)| {
                PerDirection::from_fn(|direction| {
                    let Some(o) = derived.policies[pi] else {
                        return true;
                    };
                    let rules = policy.rules(direction).unwrap_or_default();
                    rules.iter().enumerate().any(|(ri, rule)| {
                        let (now, was) = (
                            &self.rule_classes[pi][direction][ri],
                            &old.rule_classes[o][direction][ri],
                        );
                        let named_anywhere = now.any
                            && direction == Direction::Egress
                            && rule
                                .ports
                                .iter()
                                .flatten()
                                .any(|s| matches!(s.port, PortMatch::Named(_)));
                        now.selected.intersects(&changed)
                            || was.selected.intersects(&old_changed)
                            || (named_anywhere && anything_changed)
                            || moved(rule)
                    })
                })
            })
            .collect()
    }

    /// Compiles what the dataplane enforces for class `class`. Named ports resolve on the class
    /// (ingress) or on each destination class (egress); `cache` shares peer sets across classes.
    pub fn compile_class(&self, class: ClassId, cache: &mut AddrCache) -> ClassRules {
        cache.for_engine(self.id());
        let compile = |direction: Direction, cache: &mut AddrCache| -> Option<DirectionRules> {
            let tiers = self.tier_policies(class, direction);
            let isolating = self.selecting(class, direction);
            if tiers.admin.is_empty() && isolating.is_empty() && tiers.baseline.is_empty() {
                return None;
            }
            let mut entries = |policies: &[PolicyId]| -> Vec<TierEntry> {
                let mut out = Vec::new();
                for &pi in policies {
                    let policy = &self.policies[pi];
                    let rules = policy.rules(direction).unwrap_or_default();
                    for (ri, rule) in rules.iter().enumerate() {
                        let rc = &self.rule_classes[pi][direction][ri];
                        let origin = RuleOrigin {
                            policy: policy.key.clone(),
                            direction,
                            rule: ri,
                        };
                        let mut allows = Vec::new();
                        self.compile_rule(class, origin, rule, rc, cache, &mut allows);
                        out.extend(allows.into_iter().map(|matches| TierEntry {
                            action: rule.action,
                            matches,
                        }));
                    }
                }
                out
            };
            let admin = entries(tiers.admin);
            let policy = (!isolating.is_empty())
                .then(|| entries(isolating).into_iter().map(|e| e.matches).collect());
            // Baseline is never reached where NetworkPolicy isolates.
            let baseline = match policy {
                None => entries(tiers.baseline),
                Some(_) => Vec::new(),
            };
            Some(DirectionRules {
                admin,
                policy,
                baseline,
            })
        };
        ClassRules {
            ingress: compile(Direction::Ingress, cache),
            egress: compile(Direction::Egress, cache),
        }
    }

    fn compile_rule(
        &self,
        class: ClassId,
        origin: RuleOrigin,
        rule: &Rule,
        rc: &RuleClasses,
        cache: &mut AddrCache,
        out: &mut Vec<Allow>,
    ) {
        let direction = origin.direction;
        let all_peers = |cache: &mut AddrCache| {
            if rc.any {
                Peers::Any
            } else {
                // Selected pods' IPs plus the ipBlock ranges (which hold any pod IPs they match).
                Peers::Addrs(self.peer_addrs(rule, &rc.selected, cache))
            }
        };
        let entry = |peers, ports| Allow {
            peers,
            ports,
            origin: origin.clone(),
        };
        let Some(specs) = &rule.ports else {
            out.push(entry(all_peers(cache), None));
            return;
        };
        // An egress rule's ports resolve on its destinations, whichever class it applies to:
        // found once per rule (a named port over every class would otherwise cost classes²).
        let ports = match direction {
            Direction::Egress => match cache.egress_ports.get(&origin) {
                Some(ports) => ports.clone(),
                None => {
                    let ports = Arc::new(self.rule_ports(class, direction, specs, rc));
                    cache.egress_ports.insert(origin.clone(), ports.clone());
                    ports
                }
            },
            Direction::Ingress => Arc::new(self.rule_ports(class, direction, specs, rc)),
        };
        let (numeric, named) = &*ports;
        if !numeric.is_empty() {
            out.push(entry(
                all_peers(cache),
                Some(PortRange::merge(numeric.clone())),
            ));
        }
        for (&(protocol, port), classes) in named {
            let set = match cache.by_classes.get(classes) {
                Some(s) => s.clone(),
                None => {
                    let s = Arc::new(AddrSet::from_ranges(self.class_ranges(classes)));
                    cache.by_classes.insert(classes.clone(), s.clone());
                    s
                }
            };
            out.push(entry(
                Peers::Addrs(set),
                Some(vec![PortRange {
                    protocol,
                    first: port,
                    last: port,
                }]),
            ));
        }
    }

    /// The ports a rule allows class `class`, as number ranges; and, for named ports of an egress
    /// rule, the destination classes that resolve each name, grouped by (protocol, port): a named
    /// port resolves on the destination pod.
    fn rule_ports(
        &self,
        class: ClassId,
        direction: Direction,
        specs: &[PortSpec],
        rc: &RuleClasses,
    ) -> RulePorts {
        let n = self.class_count();
        let (mut numeric, mut named) = (Vec::new(), BTreeMap::new());
        let range = |protocol, first, last| PortRange {
            protocol,
            first,
            last,
        };
        for s in specs {
            match (&s.port, direction) {
                (PortMatch::Any, _) => numeric.push(range(s.protocol, 1, 65535)),
                (PortMatch::Range(lo, hi), _) => numeric.push(range(s.protocol, *lo, *hi)),
                (PortMatch::Named(name), Direction::Ingress) => {
                    if let Some(p) = self.classes.list[class].named_port(name, s.protocol) {
                        numeric.push(range(s.protocol, p, p));
                    }
                }
                (PortMatch::Named(name), Direction::Egress) => {
                    let candidates = if rc.any {
                        BitSet::full(n)
                    } else {
                        rc.selected.clone()
                    };
                    for c in candidates.iter() {
                        if let Some(p) = self.classes.list[c].named_port(name, s.protocol) {
                            named
                                .entry((s.protocol, p))
                                .or_insert_with(|| BitSet::new(n))
                                .insert(c);
                        }
                    }
                }
            }
        }
        (numeric, named)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block(cidr: &str, except: &[&str]) -> IpBlock {
        IpBlock {
            cidr: cidr.parse().unwrap(),
            except: except.iter().map(|e| e.parse().unwrap()).collect(),
        }
    }

    #[test]
    fn block_minus_except_gives_disjoint_ranges() {
        let set = AddrSet::from_ranges(block_ranges(&block(
            "10.0.0.0/24",
            &["10.0.0.64/26", "10.0.0.0/30"],
        )));
        let text: Vec<String> = set
            .ranges
            .iter()
            .map(|r| format!("{}-{}", r.first, r.last))
            .collect();
        assert_eq!(text, vec!["10.0.0.4-10.0.0.63", "10.0.0.128-10.0.0.255"]);
        assert!(set.contains("10.0.0.200".parse().unwrap()));
        assert!(!set.contains("10.0.0.70".parse().unwrap()));
        let all = AddrSet::from_ranges(block_ranges(&block("0.0.0.0/0", &["10.0.0.0/8"])));
        assert_eq!(all.ranges.len(), 2);
        assert!(!all.contains("10.1.2.3".parse().unwrap()));
        assert!(all.contains("11.0.0.0".parse().unwrap()));
        let v6 = AddrSet::from_ranges(block_ranges(&block("::/0", &["fd00::/8"])));
        assert!(v6.contains("2001:db8::1".parse().unwrap()));
        assert!(!v6.contains("fd00::1".parse().unwrap()));
        assert!(!v6.contains("10.0.0.1".parse().unwrap()));
    }

    #[test]
    fn overlapping_and_touching_port_ranges_merge_per_protocol() {
        let r = |protocol, first, last| PortRange {
            protocol,
            first,
            last,
        };
        let merged = PortRange::merge(vec![
            r(Protocol::Tcp, 9102, 9102),
            r(Protocol::Tcp, 9100, 9199),
            r(Protocol::Udp, 53, 53),
            r(Protocol::Tcp, 9200, 9300),
            r(Protocol::Tcp, 80, 80),
            r(Protocol::Udp, 54, 60),
        ]);
        assert_eq!(
            merged,
            vec![
                r(Protocol::Tcp, 80, 80),
                r(Protocol::Tcp, 9100, 9300),
                r(Protocol::Udp, 53, 60)
            ]
        );
    }

    #[test]
    fn adjacent_single_addresses_merge() {
        let set = AddrSet::from_ranges(vec![
            (false, 5, 5),
            (false, 6, 6),
            (false, 8, 8),
            (true, 1, 1),
        ]);
        assert_eq!(set.ranges.len(), 3);
    }
}

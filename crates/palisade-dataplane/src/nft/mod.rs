//! Building the `inet palisade` table from a compiled table ([`CompiledTable`]: per class, its
//! addresses, rules and audit mode; [`build`]) as data
//! ([`Ruleset`]): sent to the kernel whole or as an update from the table it holds, over nf_tables
//! netlink ([`batch`], [`expr`]); written as an `nft -f` script for reading.

pub(crate) mod batch;
mod expr;
mod index;
mod patch;
mod rule;
mod ruleset;
mod sets;

pub use patch::Patch;
pub use ruleset::{Ruleset, Update, UpdateSize};

use crate::events::Action;
use foldhash::{HashMap, HashMapExt};
use palisade_model::{Tier, TierAction};
use palisade_policy::{
    AddrCache, Allow, CompiledTable, Direction, Disposition, Flat, Peers, PerDirection, TableClass,
};
use rule::{PeerMatch, PortsMatch, Rule, Verdict};
use sets::PeerSets;
use std::hash::BuildHasher;
use std::net::IpAddr;
use std::sync::Arc;

/// The table Palisade owns: `inet palisade`.
pub const TABLE: &str = "palisade";

/// A chain's name: its direction and a 64-bit hash of its rules, so that the same chain keeps its
/// name from one ruleset to the next. A hash collision with another body (`existing` gives the
/// body a name has) gets a suffix.
fn chain_name<'a>(
    direction: Direction,
    rules: &[Rule],
    existing: impl Fn(&str) -> Option<&'a [Rule]>,
) -> String {
    // A fixed seed: the same rules get the same name for the life of the agent.
    let hash = foldhash::fast::FixedState::with_seed(0).hash_one(rules);
    let base = format!("{}_{hash:016x}", direction.as_str());
    let mut name = base.clone();
    let mut n = 1;
    while existing(&name).is_some_and(|b| b != rules) {
        name = format!("{base}_{n}");
        n += 1;
    }
    name
}

/// An nft interval element: `first`, or `first-last`.
fn range_text<T: std::fmt::Display + PartialEq>(first: T, last: T) -> String {
    if first == last {
        first.to_string()
    } else {
        format!("{first}-{last}")
    }
}

/// The port matches of an entry, one per protocol (a rule is emitted for each); a single `None` for
/// every port of every protocol. Each is a one-dimension match (`meta l4proto tcp th dport { 80,
/// 8000-8080 }`): concatenated `l4proto . port` interval sets cost the kernel seconds to build at
/// this scale (measured: 20 s for 10,000 of them, against 2 s for the per-protocol form).
fn ports_matches(allow: &Allow) -> Vec<Option<PortsMatch>> {
    let Some(ports) = &allow.ports else {
        return vec![None];
    };
    let mut out = Vec::new();
    for p in ports {
        match out.last_mut() {
            Some(Some(PortsMatch { protocol, ranges })) if *protocol == p.protocol => {
                ranges.push((p.first, p.last))
            }
            _ => out.push(Some(PortsMatch {
                protocol: p.protocol,
                ranges: vec![(p.first, p.last)],
            })),
        }
    }
    out
}

/// The rules of one entry of a chain (one per peer family and protocol), with peer sets by id
/// (named later).
fn entry_rules(
    direction: Direction,
    entry: &Allow,
    action: Action,
    verdict: Verdict,
    sets: &mut PeerSets,
) -> Vec<Rule<usize>> {
    let peers: Vec<Option<PeerMatch<usize>>> = match &entry.peers {
        Peers::Any => vec![None],
        Peers::Addrs(set) => {
            let [v4, v6] = sets.refer(set, || rule::origin_text(&entry.origin));
            let v4 = v4.map(|set| PeerMatch { v6: false, set });
            let v6 = v6.map(|set| PeerMatch { v6: true, set });
            v4.into_iter().chain(v6).map(Some).collect()
        }
    };
    let mut out = Vec::new();
    for peer in &peers {
        for ports in ports_matches(entry) {
            out.push(Rule {
                direction,
                peer: peer.clone(),
                ports,
                action,
                verdict,
                origin: Some(entry.origin.clone()),
            });
        }
    }
    out
}

/// The verdict map (index in [`ruleset::MAPS`]) of `direction` for `ip`'s family.
fn map_of(direction: Direction, ip: IpAddr) -> usize {
    let direction = match direction {
        Direction::Ingress => 0,
        Direction::Egress => 1,
    };
    2 * direction + usize::from(ip.is_ipv6())
}

/// The chain bodies of `class`, with peer sets by id in `sets`: `None` for a direction no policy
/// governs and no staged policy watches (or whose rules, flattened, leave everything allowed
/// without logging). A chain is the direction's rules
/// as one first-match list ([`palisade_policy::DirectionRules::flatten`]): each entry allows (ingress: accept;
/// egress: return, so that the destination's ingress is still evaluated) or drops — in an audited
/// class, logs as audit and allows, except an Admin-tier Deny: audit mode (a namespace's or the
/// node's) never lifts the cluster administrator's guardrails —, and what no entry matches is dropped by a final rule or,
/// where the rules allow it, leaves the chain (through a final logged allow where a staged policy
/// governs the class: the agent compares those connections with what it would decide).
fn class_bodies(
    class: &TableClass,
    sets: &mut PeerSets,
    cache: &mut AddrCache,
) -> PerDirection<Option<Vec<Rule<usize>>>> {
    let (rules, audited) = (&class.rules, class.audited);
    PerDirection::from_fn(|direction| {
        let allow = match direction {
            Direction::Ingress => Verdict::Accept,
            Direction::Egress => Verdict::Return,
        };
        let rules = match direction {
            Direction::Ingress => rules.ingress.as_ref(),
            Direction::Egress => rules.egress.as_ref(),
        };
        let flat = match rules {
            Some(rules) => rules.flatten(cache),
            None => Flat {
                entries: Vec::new(),
                otherwise: Disposition::Allow,
            },
        };
        let admin_deny = Some((Tier::Admin, TierAction::Deny));
        let outcome = |disposition, by| match (disposition, audited && by != admin_deny) {
            (Disposition::Allow, _) => (Action::Allow, allow),
            (Disposition::Deny, false) => (Action::Deny, Verdict::Drop),
            (Disposition::Deny, true) => (Action::Audit, allow),
        };
        let mut body = Vec::new();
        for entry in &flat.entries {
            let (action, verdict) = outcome(entry.disposition, entry.by);
            body.extend(entry_rules(
                direction,
                &entry.matches,
                action,
                verdict,
                sets,
            ));
        }
        // Where a staged policy governs the class, what the rules leave allowed is logged too.
        if flat.otherwise == Disposition::Deny || class.staged[direction] {
            let (action, verdict) = outcome(flat.otherwise, None);
            body.push(Rule {
                direction,
                peer: None,
                ports: None,
                action,
                verdict,
                origin: None,
            });
        }
        (!body.is_empty()).then_some(body)
    })
}

/// A class's chains by draft id ([`Drafts`]).
type DraftIds = PerDirection<Option<usize>>;

/// Distinct chain bodies, before their peer sets are named: classes with the same rules share one
/// chain (labels no policy reads split classes, not rules).
#[derive(Default)]
struct Drafts {
    index: HashMap<Vec<Rule<usize>>, usize>,
    bodies: Vec<Vec<Rule<usize>>>,
}

impl Drafts {
    /// The id of `body`'s chain.
    fn add(&mut self, body: Vec<Rule<usize>>) -> usize {
        let next = self.bodies.len();
        *self.index.entry(body).or_insert_with_key(|body| {
            self.bodies.push(body.clone());
            next
        })
    }

    /// Names every chain (by id), given the names of the peer sets; `existing` gives the body a
    /// name already has elsewhere.
    fn named<'a>(
        self,
        sets: &[String],
        existing: impl Fn(&str) -> Option<&'a [Rule]>,
    ) -> Vec<(Arc<str>, Vec<Rule>)> {
        let mut out: Vec<(Arc<str>, Vec<Rule>)> = Vec::with_capacity(self.bodies.len());
        let mut mine: HashMap<Arc<str>, usize> = HashMap::new();
        for body in self.bodies {
            let direction = body[0].direction;
            let body: Vec<Rule> = body
                .into_iter()
                .map(|rule| rule.named(|id| sets[id].clone()))
                .collect();
            let name = chain_name(direction, &body, |n| {
                existing(n).or_else(|| mine.get(n).map(|&i| out[i].1.as_slice()))
            });
            let name: Arc<str> = name.into();
            mine.insert(name.clone(), out.len());
            out.push((name, body));
        }
        out
    }
}

/// Renders `table` as one `nft -f` script that replaces any previous `inet palisade` table
/// atomically.
pub fn render(table: &CompiledTable) -> String {
    build(table, None).script()
}

/// The ruleset of `table`. Peer sets reuse the names they have in `previous` (the ruleset the kernel
/// holds), so that [`Ruleset::update_from`]`(previous)` edits set members instead of replacing sets
/// and chains.
pub fn build(table: &CompiledTable, previous: Option<&Ruleset>) -> Ruleset {
    let (mut sets, mut cache) = (PeerSets::default(), AddrCache::default());
    let mut drafts = Drafts::default();
    // Per class: its addresses and its chains (by draft id), where it has addresses.
    let mut classes: Vec<Option<(&[IpAddr], DraftIds)>> = Vec::with_capacity(table.classes.len());
    for class in &table.classes {
        let ips = &class.addresses[..];
        classes.push((!ips.is_empty()).then(|| {
            let bodies = class_bodies(class, &mut sets, &mut cache);
            (ips, bodies.map(|body| body.map(|b| drafts.add(b))))
        }));
    }
    let names = sets.names(previous.map(|p| (&p.index, &p.sets)), &|_| true);
    let chains = drafts.named(&names, |_| None);
    let mut ruleset = Ruleset {
        strict: table.strict,
        ..Ruleset::default()
    };
    for (id, def) in sets.defs.into_iter().enumerate() {
        ruleset.add_set(names[id].clone(), def);
    }
    // Map elements are collected, sorted and built into the maps in one go.
    let mut jumps: [Vec<(IpAddr, String)>; 4] = Default::default();
    ruleset.index.built_for = Some(table.id());
    ruleset.index.class_chains = classes
        .into_iter()
        .map(|class| {
            let (ips, ids) = class?;
            let chains = ids.map(|id| id.map(|i| chains[i].0.clone()));
            for (direction, chain) in chains.iter() {
                if let Some(chain) = chain {
                    for &ip in ips {
                        jumps[map_of(direction, ip)].push((ip, chain.to_string()));
                    }
                }
            }
            Some(chains)
        })
        .collect();
    for (name, body) in chains {
        ruleset.add_chain(name.to_string(), body);
    }
    for (map, mut elements) in ruleset.maps.iter_mut().zip(jumps) {
        elements.sort_unstable_by_key(|(ip, _)| *ip);
        *map = elements.into_iter().collect();
    }
    // Counted from the maps (an address is one element, whatever the classes say).
    for chain in ruleset.maps.iter().flat_map(|m| m.values()) {
        *ruleset.index.chain_users.entry(chain.clone()).or_default() += 1;
    }
    ruleset
}

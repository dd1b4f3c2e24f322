//! Building the `inet palisade` table from the engine's per-class rule sets ([`build`]) as data
//! ([`Ruleset`]): sent to the kernel whole or as an update from the table it holds, over nf_tables
//! netlink ([`batch`], [`expr`]); written as an `nft -f` script for reading.

mod batch;
mod expr;
mod rule;
mod ruleset;
mod sets;

pub use ruleset::{Ruleset, Update};

use crate::events::Action;
use foldhash::{HashMap, HashMapExt};
use palisade_model::logging::{annotation_enabled, AUDIT_ANNOTATION};
use palisade_policy::{Allow, ClassRules, Direction, Engine, Peers};
use rule::{PeerMatch, PortsMatch, Rule, Verdict};
use sets::PeerSets;
use std::collections::BTreeMap;
use std::hash::BuildHasher;
use std::net::IpAddr;
use std::sync::Arc;

/// The table Palisade owns: `inet palisade`.
pub const TABLE: &str = "palisade";

/// A chain's name: its direction and a 64-bit hash of its rules, so that the same chain keeps its
/// name from one ruleset to the next. A hash collision within one ruleset gets a suffix.
fn chain_name(
    direction: Direction,
    rules: &[Rule],
    chains: &BTreeMap<String, Vec<Rule>>,
) -> String {
    // A fixed seed: the same rules get the same name for the life of the agent.
    let hash = foldhash::fast::FixedState::with_seed(0).hash_one(rules);
    let base = format!("{}_{hash:016x}", direction.as_str());
    let mut name = base.clone();
    let mut n = 1;
    while chains.get(&name).is_some_and(|b| b != rules) {
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

/// The allow rules of one direction's chain, with peer sets by id (named later).
fn allow_rules(
    engine: &Engine,
    direction: Direction,
    entries: &[Allow],
    verdict: Verdict,
    sets: &mut PeerSets,
) -> Vec<Rule<usize>> {
    let state = engine.state();
    let mut out = Vec::new();
    for allow in entries {
        let peers: Vec<Option<PeerMatch<usize>>> = match &allow.peers {
            Peers::Any => vec![None],
            Peers::Addrs(set) => {
                let policy = &state.policies[allow.policy];
                let key = || format!("{} {} {}", policy.key(), direction.as_str(), allow.rule);
                let [v4, v6] = sets.refer(set, key);
                let v4 = v4.map(|set| PeerMatch { v6: false, set });
                let v6 = v6.map(|set| PeerMatch { v6: true, set });
                v4.into_iter().chain(v6).map(Some).collect()
            }
        };
        for peer in &peers {
            for ports in ports_matches(allow) {
                out.push(Rule {
                    direction,
                    peer: peer.clone(),
                    ports,
                    action: Action::Allow,
                    verdict,
                    origin: Some((allow.policy, allow.rule)),
                });
            }
        }
    }
    out
}

/// Where audit mode applies: for those pods nothing is dropped; what policy would deny is let through
/// and logged as an audit event.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Audit {
    /// Only in namespaces annotated `policy.palisade.dev/audit-mode: "true"`.
    #[default]
    Annotated,
    /// Everywhere on this node (`--policy-audit-mode`).
    All,
}

/// A chain before its peer sets are named: its rules, and the (map, pod IP) elements jumping to it.
type ChainDraft = (Vec<Rule<usize>>, Vec<(usize, IpAddr)>);

/// Renders the whole table for `engine`'s state as one `nft -f` script that replaces any previous
/// `inet palisade` table atomically; audit mode only in annotated namespaces.
pub fn render(engine: &Engine) -> String {
    build(engine, Audit::Annotated, None).script()
}

/// The table for `engine`'s state, with audit mode applied as `audit` says. Peer sets reuse the
/// names they have in `previous` (the ruleset the kernel holds), so that
/// [`Ruleset::update_from`]`(previous)` edits set members instead of replacing sets and chains.
pub fn build(engine: &Engine, audit: Audit, previous: Option<&Ruleset>) -> Ruleset {
    build_compiled(engine, &engine.compile_classes(None), audit, previous)
}

/// [`build`] from the rules of `engine`'s classes, compiled already ([`Engine::compile_classes`]).
pub fn build_compiled(
    engine: &Engine,
    compiled: &[Arc<ClassRules>],
    audit: Audit,
    previous: Option<&Ruleset>,
) -> Ruleset {
    let state = engine.state();
    let mut sets = PeerSets::default();
    // Classes with the same rules share one chain (labels no policy reads split classes, not rules):
    // the distinct bodies, with their direction and the pod IPs per map that jump to them.
    let mut bodies: HashMap<Vec<Rule<usize>>, usize> = HashMap::new();
    let mut chains: Vec<ChainDraft> = Vec::new();
    for (class, rules) in compiled.iter().enumerate() {
        let ips: Vec<IpAddr> = engine
            .class_pods(class)
            .iter()
            .filter(|&&p| !state.pods[p].host_network)
            .filter_map(|&p| state.pods[p].ip)
            .collect();
        if ips.is_empty() {
            continue;
        }
        // A class never spans namespaces, so one pod's namespace decides for all.
        let namespace = &state.pods[engine.class_pods(class)[0]].namespace;
        let audited = audit == Audit::All
            || state
                .namespace(namespace)
                .is_some_and(|ns| annotation_enabled(&ns.annotations, AUDIT_ANNOTATION));
        for (direction, entries, verdict, map_base) in [
            (Direction::Ingress, &rules.ingress, Verdict::Accept, 0),
            (Direction::Egress, &rules.egress, Verdict::Return, 2),
        ] {
            let Some(entries) = entries else { continue };
            let mut body = allow_rules(engine, direction, entries, verdict, &mut sets);
            let (action, verdict) = match (audited, direction) {
                (false, _) => (Action::Deny, Verdict::Drop),
                (true, Direction::Ingress) => (Action::Audit, Verdict::Accept),
                // Audited egress returns, so that the destination's ingress is still evaluated.
                (true, Direction::Egress) => (Action::Audit, Verdict::Return),
            };
            body.push(Rule {
                direction,
                peer: None,
                ports: None,
                action,
                verdict,
                origin: None,
            });
            let next = chains.len();
            let i = *bodies.entry(body).or_insert_with_key(|body| {
                chains.push((body.clone(), Vec::new()));
                next
            });
            let elements = ips
                .iter()
                .map(|ip| (map_base + usize::from(ip.is_ipv6()), *ip));
            chains[i].1.extend(elements);
        }
    }
    let names = sets.names(previous);
    let mut ruleset = Ruleset::default();
    for (id, (def, key)) in sets.defs.into_iter().enumerate() {
        ruleset.set_keys.insert(names[id].clone(), key);
        ruleset.sets.insert(names[id].clone(), def);
    }
    // Map elements are collected, sorted and built into the maps in one go.
    let mut jumps: [Vec<(IpAddr, String)>; 4] = Default::default();
    for (body, elements) in chains {
        let direction = body[0].direction;
        let body: Vec<Rule> = body
            .into_iter()
            .map(|rule| rule.named(|id| names[id].clone()))
            .collect();
        let name = chain_name(direction, &body, &ruleset.chains);
        for (map, ip) in elements {
            jumps[map].push((ip, name.clone()));
        }
        ruleset.chains.insert(name, body);
    }
    for (map, mut elements) in ruleset.maps.iter_mut().zip(jumps) {
        elements.sort_unstable_by_key(|(ip, _)| *ip);
        *map = elements.into_iter().collect();
    }
    ruleset
}

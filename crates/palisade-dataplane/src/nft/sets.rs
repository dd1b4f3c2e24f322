//! Peer sets: one named interval set per distinct address content and family, shared by every rule
//! that needs it. Names are given after the whole ruleset is known, reusing the names of the ruleset
//! the kernel holds — first for a set with the same content, then for the set with the same stable key
//! (the first policy rule that uses it) — so that a membership change edits the elements of an existing
//! set instead of replacing the set and every chain that refers to it.

use super::index::Index;
use foldhash::{HashMap, HashSet, HashSetExt};
use palisade_policy::AddrSet;
use std::collections::BTreeMap;
use std::hash::BuildHasher;
use std::net::IpAddr;
use std::sync::Arc;

/// A peer set's content: its address family and its elements (sorted, disjoint, non-adjacent
/// ranges `first..=last`), exactly what the kernel holds for it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct SetDef {
    pub v6: bool,
    pub elements: Vec<(IpAddr, IpAddr)>,
}

/// Elements as nft text: `a, b-c, ...`.
pub(crate) fn elements_text(elements: &[(IpAddr, IpAddr)]) -> String {
    let text: Vec<String> = elements
        .iter()
        .map(|&(first, last)| super::range_text(first, last))
        .collect();
    text.join(", ")
}

impl SetDef {
    /// The set's declaration inside a `table` block.
    pub fn declaration(&self, name: &str) -> String {
        let family = if self.v6 { "ipv6_addr" } else { "ipv4_addr" };
        format!(
            "  set {name} {{\n    type {family}; flags interval;\n    elements = {{ {} }}\n  }}\n",
            elements_text(&self.elements)
        )
    }
}

/// An address set known by its allocation. The map that keys on it holds the `Arc`, so the
/// allocation cannot be freed and reused for another set while the key lives.
struct Shared(Arc<AddrSet>);

impl PartialEq for Shared {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for Shared {}

impl std::hash::Hash for Shared {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        Arc::as_ptr(&self.0).hash(state)
    }
}

/// The hash sets are known by (with [`SetDef`]'s equality): fixed, so that it holds for the life of
/// the agent.
pub(crate) fn content_hash(def: &SetDef) -> u64 {
    foldhash::fast::FixedState::with_seed(0).hash_one(def)
}

/// A set of the ruleset being built, not yet named.
pub(crate) struct NewSet {
    pub def: SetDef,
    /// The stable key: the first policy rule that uses it, and its family.
    pub key: String,
    /// [`content_hash`] of `def`.
    pub hash: u64,
}

/// The peer sets of a ruleset being built, not yet named.
#[derive(Default)]
pub(crate) struct PeerSets {
    /// Sets already referred to, by allocation (the engine shares one `Arc` between the rules with
    /// the same peers): their content is hashed once, not once per rule.
    by_addrs: HashMap<Shared, [Option<usize>; 2]>,
    /// Set ids by a hash of their content (the content itself is in `defs`, not copied here).
    by_content: HashMap<u64, Vec<usize>>,
    /// The sets, by id.
    pub defs: Vec<NewSet>,
}

impl PeerSets {
    /// The ids (IPv4, IPv6) of the sets holding `set`, to be named by [`PeerSets::names`]; `None`
    /// for a family it has no address of. `key` names the rule that asks, for new sets.
    pub fn refer(
        &mut self,
        set: &Arc<AddrSet>,
        key: impl FnOnce() -> String,
    ) -> [Option<usize>; 2] {
        let shared = Shared(set.clone());
        if let Some(ids) = self.by_addrs.get(&shared) {
            return *ids;
        }
        let key = key();
        let ids = [false, true].map(|v6| self.add(set, v6, &key));
        self.by_addrs.insert(shared, ids);
        ids
    }

    fn add(&mut self, set: &AddrSet, v6: bool, key: &str) -> Option<usize> {
        let elements: Vec<(IpAddr, IpAddr)> = set
            .ranges
            .iter()
            .filter(|r| r.first.is_ipv6() == v6)
            .map(|r| (r.first, r.last))
            .collect();
        if elements.is_empty() {
            return None;
        }
        let def = SetDef { v6, elements };
        let hash = content_hash(&def);
        let same = self.by_content.entry(hash).or_default();
        if let Some(&id) = same.iter().find(|&&id| self.defs[id].def == def) {
            return Some(id);
        }
        let id = self.defs.len();
        same.push(id);
        let family = if v6 { "ip6" } else { "ip" };
        let key = format!("{key} {family}");
        self.defs.push(NewSet { def, key, hash });
        Some(id)
    }

    /// A name for every set (by id), reusing the names of a previous ruleset (its index and sets)
    /// where it can: the name of the set
    /// with the same content, else that of the set with the same stable key when `free` says no
    /// rule of the new table needs that set's current content (its elements are then edited). Never
    /// another name `previous` has, so that adding and deleting sets in one transaction cannot
    /// collide.
    pub fn names(
        &self,
        previous: Option<(&Index, &BTreeMap<String, SetDef>)>,
        free: &dyn Fn(&str) -> bool,
    ) -> Vec<String> {
        let mut names: Vec<Option<String>> = vec![None; self.defs.len()];
        let mut taken: HashSet<&str> = HashSet::new();
        if let Some((index, sets)) = previous {
            for (slot, set) in names.iter_mut().zip(&self.defs) {
                let same = (index.set_by_content.get(&set.hash).into_iter().flatten())
                    .find(|name| sets[name.as_str()] == set.def);
                if let Some(name) = same.filter(|name| taken.insert(name.as_str())) {
                    *slot = Some(name.clone());
                }
            }
            for (slot, set) in names.iter_mut().zip(&self.defs) {
                let Some(name) = index.set_by_key.get(&set.key).filter(|_| slot.is_none()) else {
                    continue;
                };
                if sets[name].v6 == set.def.v6 && free(name) && taken.insert(name) {
                    *slot = Some(name.clone());
                }
            }
        }
        let used =
            |n: &str| taken.contains(n) || previous.is_some_and(|(_, sets)| sets.contains_key(n));
        let mut counter = 0;
        for (slot, set) in names.iter_mut().zip(&self.defs) {
            if slot.is_none() {
                let tag = if set.def.v6 { 6 } else { 4 };
                let name = loop {
                    let name = format!("peers{tag}_{counter}");
                    counter += 1;
                    if !used(&name) {
                        break name;
                    }
                };
                *slot = Some(name);
            }
        }
        names
            .into_iter()
            .map(|n| n.expect("every set named"))
            .collect()
    }
}

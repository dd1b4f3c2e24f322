//! The `inet palisade` table as data, the script that replaces it whole, and the script that turns
//! one ruleset into another touching only what differs.

use super::elements::ElementBatch;
use super::sets::{elements_text, SetDef};
use super::TABLE;
use crate::{apply, ApplyError};
use foldhash::HashSet;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::IpAddr;

/// The verdict maps, in the order of [`Ruleset::maps`]: name and key type.
pub(crate) const MAPS: [(&str, &str); 4] = [
    ("ingress4", "ipv4_addr"),
    ("ingress6", "ipv6_addr"),
    ("egress4", "ipv4_addr"),
    ("egress6", "ipv6_addr"),
];

/// The base chain: conntrack first, then the verdict maps (egress of the source, then ingress of
/// the destination).
const FORWARD: &str = "  chain forward {\n    type filter hook forward priority filter; policy accept;\n    ct state established,related accept\n    ct state invalid drop\n    ip saddr vmap @egress4\n    ip6 saddr vmap @egress6\n    ip daddr vmap @ingress4\n    ip6 daddr vmap @ingress6\n  }\n";

/// The `inet palisade` table as data: exactly what the kernel holds once it is applied. Chains are
/// named after their content and peer sets keep the names of the ruleset they were built against, so
/// two rulesets share the names of what they have in common and [`Ruleset::update_from`] changes only
/// the rest.
#[derive(Clone, Debug, Default)]
pub struct Ruleset {
    pub(crate) sets: BTreeMap<String, SetDef>,
    /// Set name → the stable key it was made for (the first rule that used it).
    pub(crate) set_keys: BTreeMap<String, String>,
    pub(crate) chains: BTreeMap<String, String>,
    /// Pod IP → chain, per map of [`MAPS`].
    pub(crate) maps: [BTreeMap<IpAddr, String>; 4],
}

/// Equal when the kernel would hold the same table (how sets came by their names does not count).
impl PartialEq for Ruleset {
    fn eq(&self, other: &Self) -> bool {
        self.sets == other.sets && self.chains == other.chains && self.maps == other.maps
    }
}

impl Eq for Ruleset {}

fn map_elements<'a>(elements: impl Iterator<Item = (&'a IpAddr, &'a String)>) -> String {
    elements
        .map(|(ip, chain)| format!("{ip} : jump {chain}"))
        .collect::<Vec<_>>()
        .join(", ")
}

impl Ruleset {
    /// The whole table as one `nft -f` script that atomically replaces any previous `inet palisade`
    /// table.
    pub fn script(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "table inet {TABLE}\ndelete table inet {TABLE}\ntable inet {TABLE} {{"
        );
        for (name, def) in &self.sets {
            out.push_str(&def.declaration(name));
        }
        for ((name, key), elements) in MAPS.iter().zip(&self.maps) {
            let _ = write!(out, "  map {name} {{\n    type {key} : verdict;\n");
            if !elements.is_empty() {
                let _ = writeln!(
                    out,
                    "    elements = {{ {} }}",
                    map_elements(elements.iter())
                );
            }
            let _ = writeln!(out, "  }}");
        }
        for (name, body) in &self.chains {
            let _ = write!(out, "  chain {name} {{\n{body}  }}\n");
        }
        out.push_str(FORWARD);
        out.push_str("}\n");
        out
    }

    /// What turns the table from `old` (what the kernel holds) into this one, touching only what
    /// differs: new sets and chains, the members of sets that changed, changed verdict-map elements,
    /// and the chains and sets no longer used.
    pub fn update_from(&self, old: &Ruleset) -> Update {
        let mut update = Update::default();
        let new_sets: Vec<_> = self
            .sets
            .iter()
            .filter(|(n, _)| !old.sets.contains_key(*n))
            .collect();
        let new_chains: Vec<_> = self
            .chains
            .iter()
            .filter(|(n, _)| !old.chains.contains_key(*n))
            .collect();
        if !new_sets.is_empty() || !new_chains.is_empty() {
            let adds = &mut update.adds;
            let _ = writeln!(adds, "table inet {TABLE} {{");
            for (name, def) in new_sets {
                adds.push_str(&def.declaration(name));
            }
            for (name, body) in new_chains {
                let _ = write!(adds, "  chain {name} {{\n{body}  }}\n");
            }
            let _ = writeln!(adds, "}}");
        }
        for (name, def) in &self.sets {
            let Some(before) = old.sets.get(name).filter(|b| *b != def) else {
                continue;
            };
            let (now, was): (HashSet<_>, HashSet<_>) = (
                def.elements.iter().collect(),
                before.elements.iter().collect(),
            );
            let gone: Vec<_> = before
                .elements
                .iter()
                .copied()
                .filter(|e| !now.contains(e))
                .collect();
            let added: Vec<_> = def
                .elements
                .iter()
                .copied()
                .filter(|e| !was.contains(e))
                .collect();
            for (add, ranges) in [(false, gone), (true, added)] {
                if ranges.is_empty() {
                    continue;
                }
                update.elements.ranges(add, TABLE, name, &ranges);
                let verb = if add { "add" } else { "delete" };
                let _ = writeln!(
                    update.text,
                    "{verb} element inet {TABLE} {name} {{ {} }}",
                    elements_text(&ranges)
                );
            }
        }
        for ((map, _), (new, old)) in MAPS.iter().zip(self.maps.iter().zip(&old.maps)) {
            let stale: Vec<IpAddr> = old
                .iter()
                .filter(|(ip, chain)| new.get(ip) != Some(chain))
                .map(|(ip, _)| *ip)
                .collect();
            if !stale.is_empty() {
                update.elements.delete_keys(TABLE, map, &stale);
                let list: Vec<String> = stale.iter().map(|ip| ip.to_string()).collect();
                let _ = writeln!(
                    update.text,
                    "delete element inet {TABLE} {map} {{ {} }}",
                    list.join(", ")
                );
            }
            let fresh: Vec<(&IpAddr, &String)> = new
                .iter()
                .filter(|(ip, chain)| old.get(ip) != Some(chain))
                .collect();
            if !fresh.is_empty() {
                let jumps: Vec<(IpAddr, &str)> =
                    fresh.iter().map(|(ip, c)| (**ip, c.as_str())).collect();
                update.elements.add_jumps(TABLE, map, &jumps);
                let _ = writeln!(
                    update.text,
                    "add element inet {TABLE} {map} {{ {} }}",
                    map_elements(fresh.into_iter())
                );
            }
        }
        for name in old.chains.keys().filter(|n| !self.chains.contains_key(*n)) {
            let _ = writeln!(update.deletes, "delete chain inet {TABLE} {name}");
        }
        for name in old.sets.keys().filter(|n| !self.sets.contains_key(*n)) {
            let _ = writeln!(update.deletes, "delete set inet {TABLE} {name}");
        }
        update
    }
}

/// The change from one ruleset to another, in three steps: `nft` adds the new sets and chains
/// (unused yet, so nothing changes); one netlink batch edits set members and verdict-map elements —
/// the moment the new policy takes effect, atomically; `nft` deletes what is no longer used.
#[derive(Clone, Default)]
pub struct Update {
    adds: String,
    elements: ElementBatch,
    deletes: String,
    /// The element edits in nft syntax, for reading.
    text: String,
}

impl Update {
    /// True when the two rulesets are the same.
    pub fn is_empty(&self) -> bool {
        self.adds.is_empty() && self.elements.is_empty() && self.deletes.is_empty()
    }

    /// Applies the update in network namespace `netns` (or the current one). On an error the kernel
    /// holds the old policy (or, after the switch, the new one with unused chains left over); a
    /// whole replacement of the table repairs either.
    pub fn apply(&self, netns: Option<&str>) -> Result<(), ApplyError> {
        if !self.adds.is_empty() {
            apply(&self.adds, netns)?;
        }
        if !self.elements.is_empty() {
            let batch = self.elements.clone();
            let committed = match netns {
                Some(ns) => crate::lab::in_netns(ns, move || batch.commit())
                    .join()
                    .map_err(|_| std::io::Error::other("netlink thread panicked"))
                    .and_then(|r| r.and_then(|r| r)),
                None => batch.commit(),
            };
            committed.map_err(|e| ApplyError::Rejected(e.to_string()))?;
        }
        if !self.deletes.is_empty() {
            apply(&self.deletes, netns)?;
        }
        Ok(())
    }
}

/// The update in nft syntax (element edits included), for logs.
impl std::fmt::Display for Update {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}{}{}", self.adds, self.text, self.deletes)
    }
}

//! The `inet palisade` table as data, the script that replaces it whole, and the script that turns
//! one ruleset into another touching only what differs.

use super::sets::SetDef;
use super::TABLE;
use std::collections::{BTreeMap, HashSet};
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

    /// An `nft -f` script that turns the table from `old` (what the kernel holds) into this one in
    /// one transaction, touching only what differs: new sets and chains are added, the elements of
    /// sets whose members changed are edited, changed verdict-map elements replaced, and chains and
    /// sets no longer used deleted. Empty when nothing differs.
    pub fn update_from(&self, old: &Ruleset) -> String {
        let mut out = String::new();
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
            let _ = writeln!(out, "table inet {TABLE} {{");
            for (name, def) in new_sets {
                out.push_str(&def.declaration(name));
            }
            for (name, body) in new_chains {
                let _ = write!(out, "  chain {name} {{\n{body}  }}\n");
            }
            let _ = writeln!(out, "}}");
        }
        for (name, def) in &self.sets {
            let Some(before) = old.sets.get(name).filter(|b| *b != def) else {
                continue;
            };
            let (now, was): (HashSet<&String>, HashSet<&String>) = (
                def.elements.iter().collect(),
                before.elements.iter().collect(),
            );
            let gone: Vec<&str> = before
                .elements
                .iter()
                .filter(|e| !now.contains(e))
                .map(String::as_str)
                .collect();
            let added: Vec<&str> = def
                .elements
                .iter()
                .filter(|e| !was.contains(e))
                .map(String::as_str)
                .collect();
            if !gone.is_empty() {
                let _ = writeln!(
                    out,
                    "delete element inet {TABLE} {name} {{ {} }}",
                    gone.join(", ")
                );
            }
            if !added.is_empty() {
                let _ = writeln!(
                    out,
                    "add element inet {TABLE} {name} {{ {} }}",
                    added.join(", ")
                );
            }
        }
        for ((map, _), (new, old)) in MAPS.iter().zip(self.maps.iter().zip(&old.maps)) {
            let stale: Vec<String> = old
                .iter()
                .filter(|(ip, chain)| new.get(ip) != Some(chain))
                .map(|(ip, _)| ip.to_string())
                .collect();
            if !stale.is_empty() {
                let _ = writeln!(
                    out,
                    "delete element inet {TABLE} {map} {{ {} }}",
                    stale.join(", ")
                );
            }
            let mut fresh = new
                .iter()
                .filter(|(ip, chain)| old.get(ip) != Some(chain))
                .peekable();
            if fresh.peek().is_some() {
                let _ = writeln!(
                    out,
                    "add element inet {TABLE} {map} {{ {} }}",
                    map_elements(fresh)
                );
            }
        }
        for name in old.chains.keys().filter(|n| !self.chains.contains_key(*n)) {
            let _ = writeln!(out, "delete chain inet {TABLE} {name}");
        }
        for name in old.sets.keys().filter(|n| !self.sets.contains_key(*n)) {
            let _ = writeln!(out, "delete set inet {TABLE} {name}");
        }
        out
    }
}

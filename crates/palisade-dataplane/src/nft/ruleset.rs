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
            let gone = before.elements.iter().copied().filter(|e| !now.contains(e));
            let added = def.elements.iter().copied().filter(|e| !was.contains(e));
            update.members.push(MemberEdit {
                set: name.clone(),
                gone: gone.collect(),
                added: added.collect(),
            });
        }
        for ((map, _), (new, old)) in MAPS.iter().zip(self.maps.iter().zip(&old.maps)) {
            let stale: Vec<IpAddr> = old
                .iter()
                .filter(|(ip, chain)| new.get(ip) != Some(chain))
                .map(|(ip, _)| *ip)
                .collect();
            let fresh: Vec<(IpAddr, String)> = new
                .iter()
                .filter(|(ip, chain)| old.get(ip) != Some(chain))
                .map(|(ip, chain)| (*ip, chain.clone()))
                .collect();
            if !stale.is_empty() || !fresh.is_empty() {
                update.jumps.push(MapEdit { map, stale, fresh });
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

/// The ranges a set that stays loses and gains.
#[derive(Clone)]
struct MemberEdit {
    set: String,
    gone: Vec<(IpAddr, IpAddr)>,
    added: Vec<(IpAddr, IpAddr)>,
}

/// The keys whose element a verdict map loses, and the `key : jump chain` elements it gains.
#[derive(Clone)]
struct MapEdit {
    map: &'static str,
    stale: Vec<IpAddr>,
    fresh: Vec<(IpAddr, String)>,
}

/// The change from one ruleset to another, in three steps: `nft` adds the new sets and chains
/// (unused yet, so nothing changes); one netlink batch edits set members and verdict-map elements —
/// the moment the new policy takes effect, atomically; `nft` deletes what is no longer used.
#[derive(Clone, Default)]
pub struct Update {
    /// New sets and chains, as an nft script.
    adds: String,
    /// Sets that stay, with members that change.
    members: Vec<MemberEdit>,
    /// Verdict maps whose elements change.
    jumps: Vec<MapEdit>,
    /// Chains and sets no longer used, as an nft script.
    deletes: String,
}

impl Update {
    /// True when the two rulesets are the same.
    pub fn is_empty(&self) -> bool {
        self.adds.is_empty()
            && self.members.is_empty()
            && self.jumps.is_empty()
            && self.deletes.is_empty()
    }

    /// The member and map edits as one batch.
    fn batch(&self) -> ElementBatch {
        let mut batch = ElementBatch::default();
        for MemberEdit { set, gone, added } in &self.members {
            batch.ranges(false, TABLE, set, gone);
            batch.ranges(true, TABLE, set, added);
        }
        for MapEdit { map, stale, fresh } in &self.jumps {
            batch.delete_keys(TABLE, map, stale);
            let fresh: Vec<(IpAddr, &str)> =
                fresh.iter().map(|(ip, c)| (*ip, c.as_str())).collect();
            batch.add_jumps(TABLE, map, &fresh);
        }
        batch
    }

    /// Applies the update in network namespace `netns` (or the current one). On an error the kernel
    /// holds the old policy (or, after the switch, the new one with unused chains left over); a
    /// whole replacement of the table repairs either.
    pub fn apply(&self, netns: Option<&str>) -> Result<(), ApplyError> {
        if !self.adds.is_empty() {
            apply(&self.adds, netns)?;
        }
        let batch = self.batch();
        if !batch.is_empty() {
            crate::lab::within_netns(netns, move || batch.commit())
                .map_err(|e| ApplyError::Rejected(e.to_string()))?;
        }
        if !self.deletes.is_empty() {
            apply(&self.deletes, netns)?;
        }
        Ok(())
    }
}

/// The update in nft syntax (element edits included), for reading.
impl std::fmt::Display for Update {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.adds)?;
        for MemberEdit { set, gone, added } in &self.members {
            for (verb, ranges) in [("delete", gone), ("add", added)] {
                if !ranges.is_empty() {
                    let text = elements_text(ranges);
                    writeln!(f, "{verb} element inet {TABLE} {set} {{ {text} }}")?;
                }
            }
        }
        for MapEdit { map, stale, fresh } in &self.jumps {
            if !stale.is_empty() {
                let keys: Vec<String> = stale.iter().map(IpAddr::to_string).collect();
                writeln!(
                    f,
                    "delete element inet {TABLE} {map} {{ {} }}",
                    keys.join(", ")
                )?;
            }
            if !fresh.is_empty() {
                let elements = map_elements(fresh.iter().map(|(ip, chain)| (ip, chain)));
                writeln!(f, "add element inet {TABLE} {map} {{ {elements} }}")?;
            }
        }
        f.write_str(&self.deletes)
    }
}

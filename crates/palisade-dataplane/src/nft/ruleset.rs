//! The `inet palisade` table as data; the transaction that replaces it whole, and the one that turns
//! one ruleset into another touching only what differs; both also as nft text, for reading.

use super::batch::Batch;
use super::expr;
use super::index::Index;
use super::rule::{looked_up, Rule};
use super::sets::{content_hash, elements_text, NewSet, SetDef};
use super::TABLE;
use crate::ApplyError;
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

/// The base chain's name.
const FORWARD: &str = "forward";

/// The base chain as nft text: conntrack first, then (in strict mode) TCP packets that would
/// start tracking a connection in mid-stream dropped, then the verdict maps (egress of the
/// source, then ingress of the destination).
fn forward_text(strict: bool) -> String {
    let pickup = match strict {
        true => "    ct state new tcp flags & (fin | syn | rst | ack) != syn drop\n",
        false => "",
    };
    format!(
        "  chain forward {{\n    type filter hook forward priority filter; policy accept;\n    ct state established,related accept\n    ct state invalid drop\n{pickup}    ip saddr vmap @egress4\n    ip6 saddr vmap @egress6\n    ip daddr vmap @ingress4\n    ip6 daddr vmap @ingress6\n  }}\n"
    )
}

/// Adds the base chain, exactly as [`forward_text`] says.
fn add_forward(batch: &mut Batch, strict: bool) {
    const INVALID: u32 = 1;
    const ESTABLISHED: u32 = 2;
    const RELATED: u32 = 4;
    const NEW: u32 = 8;
    batch.add_forward_chain(FORWARD);
    for (states, verdict) in [
        (ESTABLISHED | RELATED, expr::NF_ACCEPT),
        (INVALID, expr::NF_DROP),
    ] {
        let mut rule = Vec::new();
        expr::ct_state_any(&mut rule, states);
        expr::verdict(&mut rule, verdict);
        batch.add_expressions(FORWARD, &rule, None);
    }
    if strict {
        // Strict mode forgets the connections a change denies; an answer in flight must not start
        // one afresh (`nf_conntrack_tcp_loose` picks up mid-stream packets), judged by other rules.
        let mut rule = Vec::new();
        expr::ct_state_any(&mut rule, NEW);
        expr::tcp_flags_not_syn(&mut rule);
        expr::verdict(&mut rule, expr::NF_DROP);
        batch.add_expressions(FORWARD, &rule, None);
    }
    for (map, v6, source) in [
        ("egress4", false, true),
        ("egress6", true, true),
        ("ingress4", false, false),
        ("ingress6", true, false),
    ] {
        let mut rule = Vec::new();
        expr::address(&mut rule, v6, source);
        expr::lookup(&mut rule, map, None, true);
        batch.add_expressions(FORWARD, &rule, None);
    }
}

/// Chain `name` with `rules` as an nft block.
fn chain_text(name: &str, rules: &[Rule]) -> String {
    let mut out = format!("  chain {name} {{\n");
    for rule in rules {
        let _ = write!(out, "{rule}");
    }
    out.push_str("  }\n");
    out
}

fn add_chain(batch: &mut Batch, name: &str, rules: &[Rule]) {
    batch.add_chain(name);
    for rule in rules {
        batch.add_rule(name, rule);
    }
}

fn add_set(batch: &mut Batch, name: &str, def: &SetDef) {
    batch.add_peer_set(name, def.v6);
    batch.ranges(true, name, &def.elements);
}

/// The `inet palisade` table as data: exactly what the kernel holds once it is applied. Chains are
/// named after their content and peer sets keep the names of the ruleset they were built against, so
/// two rulesets share the names of what they have in common and [`Ruleset::update_from`] changes only
/// the rest.
#[derive(Clone, Debug, Default)]
pub struct Ruleset {
    pub(crate) sets: BTreeMap<String, SetDef>,
    /// Set name → the stable key it was made for (the first rule that used it).
    pub(crate) set_keys: BTreeMap<String, String>,
    pub(crate) chains: BTreeMap<String, Vec<Rule>>,
    /// Pod IP → chain, per map of [`MAPS`].
    pub(crate) maps: [BTreeMap<IpAddr, String>; 4],
    /// What it was built for, and its reference counts: what patching it needs.
    pub(crate) index: Index,
    /// Strict mode: the base chain drops TCP packets that would start tracking a connection in
    /// mid-stream.
    pub(crate) strict: bool,
}

/// Equal when the kernel would hold the same table (how sets came by their names does not count).
impl PartialEq for Ruleset {
    fn eq(&self, other: &Self) -> bool {
        self.sets == other.sets
            && self.chains == other.chains
            && self.maps == other.maps
            && self.strict == other.strict
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
    /// Adds set `name`.
    pub(crate) fn add_set(&mut self, name: String, set: NewSet) {
        let index = &mut self.index;
        index
            .set_by_content
            .entry(set.hash)
            .or_default()
            .push(name.clone());
        index.set_by_key.insert(set.key.clone(), name.clone());
        self.set_keys.insert(name.clone(), set.key);
        self.sets.insert(name, set.def);
    }

    /// Removes set `name`.
    pub(crate) fn remove_set(&mut self, name: &str) {
        let index = &mut self.index;
        if let Some(def) = self.sets.remove(name) {
            index.forget_content(name, content_hash(&def));
        }
        if let Some(key) = self.set_keys.remove(name) {
            if index.set_by_key.get(&key).is_some_and(|n| n == name) {
                index.set_by_key.remove(&key);
            }
        }
        index.set_users.remove(name);
    }

    /// Gives set `name` new elements.
    pub(crate) fn edit_set(&mut self, name: &str, def: SetDef) {
        let index = &mut self.index;
        let Some(slot) = self.sets.get_mut(name) else {
            return;
        };
        index.forget_content(name, content_hash(slot));
        (index.set_by_content.entry(content_hash(&def)).or_default()).push(name.to_string());
        *slot = def;
    }

    /// Adds chain `name` (counting its rules' references to sets).
    pub(crate) fn add_chain(&mut self, name: String, rules: Vec<Rule>) {
        for set in looked_up(&rules) {
            *self.index.set_users.entry(set.to_string()).or_default() += 1;
        }
        self.chains.insert(name, rules);
    }

    /// Removes chain `name` (and its rules' references to sets).
    pub(crate) fn remove_chain(&mut self, name: &str) {
        let rules = self.chains.remove(name).unwrap_or_default();
        for set in looked_up(&rules) {
            if let Some(users) = self.index.set_users.get_mut(set) {
                *users = users.saturating_sub(1);
            }
        }
        self.index.chain_users.remove(name);
    }

    /// How many objects the kernel counts in the table once this ruleset is in it
    /// ([`TableInfo::use_count`](crate::drift::TableInfo::use_count)): chains (the base chain
    /// too) and named sets (the verdict maps too). Anonymous sets — port lists — are not counted
    /// (measured on Linux 6.18), nor are rules and elements: an edit of those leaves the count as
    /// it is, so compare the count read after applying when the kernel may differ.
    pub fn table_use(&self) -> u32 {
        (self.chains.len() + 1 + self.sets.len() + MAPS.len()) as u32
    }

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
        for (name, rules) in &self.chains {
            out.push_str(&chain_text(name, rules));
        }
        out.push_str(&forward_text(self.strict));
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
        update.new_sets = new_sets
            .into_iter()
            .map(|(n, d)| (n.clone(), d.clone()))
            .collect();
        update.new_chains = new_chains
            .into_iter()
            .map(|(n, r)| (n.clone(), r.clone()))
            .collect();
        for (name, def) in &self.sets {
            if let Some(before) = old.sets.get(name).filter(|b| *b != def) {
                update.members.push(MemberEdit::between(name, before, def));
            }
        }
        for ((map, _), (new, old)) in MAPS.iter().zip(self.maps.iter().zip(&old.maps)) {
            let (mut stale, mut fresh) = (Vec::new(), Vec::new());
            sorted_diff(
                old.iter().map(|(ip, chain)| (*ip, chain)),
                new.iter().map(|(ip, chain)| (*ip, chain)),
                |(ip, _)| stale.push(ip),
                |(ip, chain)| fresh.push((ip, chain.clone())),
            );
            if !stale.is_empty() || !fresh.is_empty() {
                update.jumps.push(MapEdit { map, stale, fresh });
            }
        }
        update.old_chains = gone(&old.chains, &self.chains);
        update.old_sets = gone(&old.sets, &self.sets);
        update.forward = (self.strict != old.strict).then_some(self.strict);
        update
    }

    /// Replaces the table in network namespace `netns` (or the current one) with this one, in one
    /// transaction: the kernel holds either the old table or this one.
    pub fn apply(&self, netns: Option<&str>) -> Result<(), ApplyError> {
        let mut batch = Batch::default();
        batch.replace_table();
        for (name, def) in &self.sets {
            add_set(&mut batch, name, def);
        }
        for (name, rules) in &self.chains {
            add_chain(&mut batch, name, rules);
        }
        for ((map, key), jumps) in MAPS.iter().zip(&self.maps) {
            batch.add_verdict_map(map, *key == "ipv6_addr");
            let jumps: Vec<(IpAddr, &str)> =
                jumps.iter().map(|(ip, c)| (*ip, c.as_str())).collect();
            batch.add_jumps(map, &jumps);
        }
        add_forward(&mut batch, self.strict);
        commit(batch, netns)
    }
}

/// Walks two sequences of `(key, value)` sorted by key, with unique keys: `gone` gets what only
/// `old` has, or has with another value; `added` what only `new` has, or has with another value.
pub(super) fn sorted_diff<K: Ord + Copy, V: PartialEq>(
    old: impl Iterator<Item = (K, V)>,
    new: impl Iterator<Item = (K, V)>,
    mut gone: impl FnMut((K, V)),
    mut added: impl FnMut((K, V)),
) {
    let (mut old, mut new) = (old.peekable(), new.peekable());
    loop {
        let order = match (old.peek(), new.peek()) {
            (None, None) => return,
            (Some(_), None) => std::cmp::Ordering::Less,
            (None, Some(_)) => std::cmp::Ordering::Greater,
            (Some((a, _)), Some((b, _))) => a.cmp(b),
        };
        match order {
            std::cmp::Ordering::Less => gone(old.next().expect("peeked")),
            std::cmp::Ordering::Greater => added(new.next().expect("peeked")),
            std::cmp::Ordering::Equal => {
                let (was, now) = (old.next().expect("peeked"), new.next().expect("peeked"));
                if was.1 != now.1 {
                    gone(was);
                    added(now);
                }
            }
        }
    }
}

/// The names `old` has and `new` does not.
fn gone<T>(old: &BTreeMap<String, T>, new: &BTreeMap<String, T>) -> Vec<String> {
    old.keys()
        .filter(|n| !new.contains_key(*n))
        .cloned()
        .collect()
}

/// Commits `batch` in network namespace `netns` (or the current one).
fn commit(batch: Batch, netns: Option<&str>) -> Result<(), ApplyError> {
    crate::netns::within_netns(netns, move || batch.commit()).map_err(ApplyError::Kernel)
}

/// The ranges a set that stays loses and gains.
#[derive(Clone)]
pub(super) struct MemberEdit {
    pub set: String,
    pub gone: Vec<(IpAddr, IpAddr)>,
    pub added: Vec<(IpAddr, IpAddr)>,
}

impl MemberEdit {
    /// What set `name` loses and gains going from `before` to `after`.
    pub fn between(name: &str, before: &SetDef, after: &SetDef) -> MemberEdit {
        // Elements are sorted: one walk over both.
        let (mut gone, mut added) = (Vec::new(), Vec::new());
        let unit = |e: &(IpAddr, IpAddr)| (*e, ());
        sorted_diff(
            before.elements.iter().map(unit),
            after.elements.iter().map(unit),
            |(e, _)| gone.push(e),
            |(e, _)| added.push(e),
        );
        MemberEdit {
            set: name.to_string(),
            gone,
            added,
        }
    }
}

/// The keys whose element a verdict map loses, and the `key : jump chain` elements it gains.
#[derive(Clone)]
pub(super) struct MapEdit {
    pub map: &'static str,
    pub stale: Vec<IpAddr>,
    pub fresh: Vec<(IpAddr, String)>,
}

/// The change from one ruleset to another, as one transaction: new sets and chains are added, set
/// members and verdict-map elements edited — the switch to the new policy — and the chains and
/// sets no longer used deleted. The kernel holds either the old table or the new one.
#[derive(Clone, Default)]
pub struct Update {
    /// New sets.
    pub(super) new_sets: Vec<(String, SetDef)>,
    /// New chains.
    pub(super) new_chains: Vec<(String, Vec<Rule>)>,
    /// Sets that stay, with members that change.
    pub(super) members: Vec<MemberEdit>,
    /// Verdict maps whose elements change.
    pub(super) jumps: Vec<MapEdit>,
    /// Chains no longer used.
    pub(super) old_chains: Vec<String>,
    /// Sets no longer used.
    pub(super) old_sets: Vec<String>,
    /// The base chain again, when strict mode differs (`Some(strict)`).
    pub(super) forward: Option<bool>,
}

/// How much of the kernel's table an [`Update`] touches.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct UpdateSize {
    /// Sets added, and their address ranges.
    pub new_sets: usize,
    pub new_set_ranges: usize,
    /// Chains added, and their rules.
    pub new_chains: usize,
    pub new_rules: usize,
    /// Sets that stay with other members, and the ranges removed and added.
    pub edited_sets: usize,
    pub ranges_edited: usize,
    /// Verdict-map elements removed and added (a pod's address jumping to another chain is both).
    pub jumps_edited: usize,
    /// Chains and sets deleted.
    pub old_chains: usize,
    pub old_sets: usize,
}

impl std::fmt::Display for UpdateSize {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} chains added ({} rules), {} removed; {} sets added ({} ranges), {} edited ({} ranges), {} removed; {} map elements edited",
            self.new_chains,
            self.new_rules,
            self.old_chains,
            self.new_sets,
            self.new_set_ranges,
            self.edited_sets,
            self.ranges_edited,
            self.old_sets,
            self.jumps_edited
        )
    }
}

impl Update {
    /// How much of the table it touches.
    pub fn size(&self) -> UpdateSize {
        UpdateSize {
            new_sets: self.new_sets.len(),
            new_set_ranges: self.new_sets.iter().map(|(_, d)| d.elements.len()).sum(),
            new_chains: self.new_chains.len(),
            new_rules: self.new_chains.iter().map(|(_, r)| r.len()).sum(),
            edited_sets: self.members.len(),
            ranges_edited: (self.members.iter())
                .map(|m| m.gone.len() + m.added.len())
                .sum(),
            jumps_edited: (self.jumps.iter())
                .map(|j| j.stale.len() + j.fresh.len())
                .sum(),
            old_chains: self.old_chains.len(),
            old_sets: self.old_sets.len(),
        }
    }

    /// True when the two rulesets are the same.
    pub fn is_empty(&self) -> bool {
        self.new_sets.is_empty()
            && self.new_chains.is_empty()
            && self.members.is_empty()
            && self.jumps.is_empty()
            && self.old_chains.is_empty()
            && self.old_sets.is_empty()
            && self.forward.is_none()
    }

    /// The update as one batch, in an order the kernel accepts: what is added before what uses it,
    /// what is deleted after what used it.
    fn batch(&self) -> Batch {
        let mut batch = Batch::default();
        for (name, def) in &self.new_sets {
            add_set(&mut batch, name, def);
        }
        for (name, rules) in &self.new_chains {
            add_chain(&mut batch, name, rules);
        }
        for MemberEdit { set, gone, added } in &self.members {
            batch.ranges(false, set, gone);
            batch.ranges(true, set, added);
        }
        for MapEdit { map, stale, fresh } in &self.jumps {
            batch.delete_keys(map, stale);
            let fresh: Vec<(IpAddr, &str)> =
                fresh.iter().map(|(ip, c)| (*ip, c.as_str())).collect();
            batch.add_jumps(map, &fresh);
        }
        for name in &self.old_chains {
            batch.delete_chain(name);
        }
        for name in &self.old_sets {
            batch.delete_set(name);
        }
        if let Some(strict) = self.forward {
            // Deleting a chain deletes its rules: the base chain is replaced in the transaction.
            batch.delete_chain(FORWARD);
            add_forward(&mut batch, strict);
        }
        batch
    }

    /// Applies the update in network namespace `netns` (or the current one), in one transaction. On
    /// an error the kernel holds the old table; a whole replacement repairs a table that was altered
    /// behind the agent's back.
    pub fn apply(&self, netns: Option<&str>) -> Result<(), ApplyError> {
        if self.is_empty() {
            return Ok(());
        }
        commit(self.batch(), netns)
    }
}

/// The update in nft syntax (element edits included), for reading.
impl std::fmt::Display for Update {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if !self.new_sets.is_empty() || !self.new_chains.is_empty() {
            writeln!(f, "table inet {TABLE} {{")?;
            for (name, def) in &self.new_sets {
                f.write_str(&def.declaration(name))?;
            }
            for (name, rules) in &self.new_chains {
                f.write_str(&chain_text(name, rules))?;
            }
            writeln!(f, "}}")?;
        }
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
        for name in &self.old_chains {
            writeln!(f, "delete chain inet {TABLE} {name}")?;
        }
        for name in &self.old_sets {
            writeln!(f, "delete set inet {TABLE} {name}")?;
        }
        if let Some(strict) = self.forward {
            writeln!(f, "delete chain inet {TABLE} {FORWARD}")?;
            writeln!(f, "table inet {TABLE} {{\n{}}}", forward_text(strict))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::sorted_diff;

    #[test]
    fn sorted_diff_finds_what_left_what_came_and_what_changed() {
        let old = [(1, 'a'), (2, 'b'), (4, 'd'), (6, 'f')];
        let new = [(0, 'z'), (2, 'b'), (4, 'D'), (5, 'e')];
        let (mut gone, mut added) = (Vec::new(), Vec::new());
        sorted_diff(
            old.into_iter(),
            new.into_iter(),
            |e| gone.push(e),
            |e| added.push(e),
        );
        assert_eq!(gone, [(1, 'a'), (4, 'd'), (6, 'f')]);
        assert_eq!(added, [(0, 'z'), (4, 'D'), (5, 'e')]);
    }
}

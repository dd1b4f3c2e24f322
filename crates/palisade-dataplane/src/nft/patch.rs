//! Patching a ruleset: from the table built for one engine to the table of an engine compiled from
//! it ([`palisade_policy::Engine::new_from`]), working from the classes that changed only — the rest of the table is
//! neither rebuilt nor compared. The patch is the [`Update`] the kernel needs, and what turns the
//! ruleset itself into the new one ([`Ruleset::absorb`]).

use super::index::ClassChains;
use super::rule::{looked_up, Rule};
use super::ruleset::{sorted_diff, MapEdit, MemberEdit, Update, MAPS};
use super::sets::{content_hash, PeerSets, SetDef};
use super::{class_bodies, map_of, Drafts, Ruleset};
use foldhash::{HashMap, HashMapExt};
use palisade_model::IdVec;
use palisade_policy::{AddrCache, Class, ClassId, CompiledTable};
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;

/// The change from a ruleset to the ruleset of an engine compiled from its engine: the update for
/// the kernel, and what the ruleset needs to become the new one ([`Ruleset::absorb`]).
pub struct Patch {
    update: Update,
    /// The new content of the sets whose members change.
    edited: Vec<(String, SetDef)>,
    /// The stable keys of the new sets, in the order of `update.new_sets`.
    keys: Vec<(String, String)>,
    built_for: u64,
    class_chains: IdVec<Class, Option<ClassChains>>,
    /// The users of the chains whose users change (0: deleted).
    chain_users: Vec<(String, u32)>,
}

impl Patch {
    /// The update that turns the kernel's table into the new one.
    pub fn update(&self) -> &Update {
        &self.update
    }
}

/// A jump, or its removal: verdict map (index in [`MAPS`]), address, chain.
type Jump = (usize, IpAddr, Arc<str>);

/// The jumps of `ip` to `chains`.
fn jumps(out: &mut Vec<Jump>, chains: &ClassChains, ip: IpAddr) {
    for (direction, chain) in chains.iter() {
        if let Some(chain) = chain {
            out.push((map_of(direction, ip), ip, chain.clone()));
        }
    }
}

/// Sorted by map and address; `None` if an address is in a map twice (two pods with one address:
/// only a full build decides that case).
fn sorted(mut jumps: Vec<Jump>) -> Option<Vec<Jump>> {
    jumps.sort_unstable_by_key(|j| (j.0, j.1));
    let twice = jumps
        .windows(2)
        .any(|w| (w[0].0, w[0].1) == (w[1].0, w[1].1));
    (!twice).then_some(jumps)
}

/// The jumps of map `m` among `jumps` (sorted by map first), as (address, chain).
fn in_map(jumps: &[Jump], m: usize) -> impl Iterator<Item = (IpAddr, &Arc<str>)> {
    let start = jumps.partition_point(|j| j.0 < m);
    let end = jumps.partition_point(|j| j.0 <= m);
    jumps[start..end].iter().map(|(_, ip, chain)| (*ip, chain))
}

/// What becomes of the classes of a patched ruleset: the jumps removed and added so far, each new
/// class's chains where known, and the classes to rebuild.
struct Moves {
    removed: Vec<Jump>,
    added: Vec<Jump>,
    class_chains: IdVec<Class, Option<ClassChains>>,
    rebuilt: Vec<ClassId>,
}

/// The rebuilt classes' chains and peer sets, named; each rebuilt class with addresses, with its
/// chains.
struct Drafted {
    sets: PeerSets,
    names: Vec<String>,
    chains: Vec<(Arc<str>, Vec<Rule>)>,
    classes: Vec<(ClassId, ClassChains)>,
}

/// What a patch keeps of its set changes for [`Ruleset::absorb`]: the new content of the edited
/// sets, and the stable keys of the new ones.
struct SetChanges {
    edited: Vec<(String, SetDef)>,
    keys: Vec<(String, String)>,
}

/// How the number of map elements jumping to each chain changes with `removed` and `added`.
fn chain_delta(removed: &[Jump], added: &[Jump]) -> HashMap<Arc<str>, i64> {
    let mut delta: HashMap<Arc<str>, i64> = HashMap::new();
    for (_, _, chain) in removed {
        *delta.entry(chain.clone()).or_default() -= 1;
    }
    for (_, _, chain) in added {
        *delta.entry(chain.clone()).or_default() += 1;
    }
    delta
}

/// The verdict-map edits from sorted `removed` and `added` jumps: one walk per map.
fn map_edits(removed: Vec<Jump>, added: Vec<Jump>) -> Vec<MapEdit> {
    let mut out = Vec::new();
    for (m, (map, _)) in MAPS.iter().enumerate() {
        let (mut stale, mut fresh) = (Vec::new(), Vec::new());
        sorted_diff(
            in_map(&removed, m),
            in_map(&added, m),
            |(ip, _)| stale.push(ip),
            |(ip, chain)| fresh.push((ip, chain.to_string())),
        );
        if !stale.is_empty() || !fresh.is_empty() {
            out.push(MapEdit { map, stale, fresh });
        }
    }
    out
}

impl Ruleset {
    /// The patch from this ruleset — built for table `old` — to the ruleset of `new`, when `new`'s
    /// engine was compiled from `old`'s ([`palisade_policy::Engine::new_from`]); `None`
    /// otherwise. The patched ruleset enforces what [`build`](super::build) gives, and its update is
    /// as small: only new sets and chains may be named otherwise.
    ///
    /// Only the classes whose rules, audit mode, staged marks or addresses changed are looked at:
    /// a class with the rules, audit mode and marks it had keeps its chains (their peer sets keep
    /// their names and content), so only its addresses' jumps can change. A set takes new content (an edit of its
    /// elements) only when no rule of the new table still needs the old one.
    pub fn patch(&self, old: &CompiledTable, new: &CompiledTable) -> Option<Patch> {
        let fits = self.index.built_for == Some(old.id())
            && self.index.class_chains.len() == old.classes.len()
            && self.strict == new.strict;
        if !fits {
            return None;
        }
        let counterparts = new.counterparts(old)?;
        let mut moves = self.follow(old, new, counterparts);
        let mut delta = chain_delta(&moves.removed, &moves.added);
        let drafted = self.draft(new, &moves.rebuilt, &delta);
        let known = moves.added.len();
        for (c, named) in &drafted.classes {
            for &ip in &new.classes[*c].addresses {
                jumps(&mut moves.added, named, ip);
            }
            moves.class_chains[*c] = Some(named.clone());
        }
        for (_, _, chain) in &moves.added[known..] {
            *delta.entry(chain.clone()).or_default() += 1;
        }
        let mut update = Update::default();
        let chain_users = self.chain_changes(&delta, drafted.chains, &mut update);
        let SetChanges { edited, keys } =
            self.set_changes(drafted.sets, drafted.names, &mut update);
        update.jumps = map_edits(sorted(moves.removed)?, sorted(moves.added)?);
        Some(Patch {
            update,
            edited,
            keys,
            built_for: new.id(),
            class_chains: moves.class_chains,
            chain_users,
        })
    }

    /// What becomes of each class of `new`: one with its counterpart's rules (same `Arc`) and audit
    /// mode keeps its chains, and only its addresses' jumps change; the others are to be rebuilt.
    /// The classes of `old` that nothing follows lose their jumps.
    fn follow(
        &self,
        old: &CompiledTable,
        new: &CompiledTable,
        counterparts: &IdVec<Class, Option<ClassId>>,
    ) -> Moves {
        let index = &self.index;
        let mut moves = Moves {
            removed: Vec::new(),
            added: Vec::new(),
            class_chains: vec![None; new.classes.len()].into(),
            rebuilt: Vec::new(),
        };
        let mut followed: IdVec<Class, bool> = vec![false; old.classes.len()].into();
        for (c, counterpart) in counterparts.iter_enumerated() {
            let class = &new.classes[c];
            let ips = &class.addresses;
            let kept = counterpart.filter(|&o| {
                let was = &old.classes[o];
                Arc::ptr_eq(&class.rules, &was.rules)
                    && class.audited == was.audited
                    && class.staged == was.staged
                    && (ips.is_empty() || index.class_chains[o].is_some())
            });
            let Some(o) = kept else {
                moves.rebuilt.push(c);
                continue;
            };
            followed[o] = true;
            let Some(chains) = &index.class_chains[o] else {
                continue;
            };
            let was = &old.classes[o].addresses;
            if was != ips {
                let (mut was, mut now) = (was.clone(), ips.clone());
                was.sort_unstable();
                now.sort_unstable();
                let unit = |ip: &IpAddr| (*ip, ());
                sorted_diff(
                    was.iter().map(unit),
                    now.iter().map(unit),
                    |(ip, _)| jumps(&mut moves.removed, chains, ip),
                    |(ip, _)| jumps(&mut moves.added, chains, ip),
                );
            }
            if !ips.is_empty() {
                moves.class_chains[c] = Some(chains.clone());
            }
        }
        for (o, chains) in index.class_chains.iter_enumerated() {
            if let (false, Some(chains)) = (followed[o], chains) {
                for &ip in &old.classes[o].addresses {
                    jumps(&mut moves.removed, chains, ip);
                }
            }
        }
        moves
    }

    /// Users of chain or set `name` in `users` after a change of `delta`.
    fn users_after(users: &HashMap<String, u32>, name: &str, delta: i64) -> i64 {
        i64::from(users.get(name).copied().unwrap_or(0)) + delta
    }

    /// The chains and peer sets of the rebuilt classes, named: a set takes the name of a set of
    /// the same content, or of the same stable key when no rule still needs that set's content —
    /// counting as free the sets that only the chains left without users (by `delta`, before the
    /// rebuilt classes' jumps are known) look up.
    fn draft(
        &self,
        table: &CompiledTable,
        rebuilt: &[ClassId],
        delta: &HashMap<Arc<str>, i64>,
    ) -> Drafted {
        let index = &self.index;
        let mut set_delta: HashMap<&str, i64> = HashMap::new();
        for (chain, d) in delta {
            if Self::users_after(&index.chain_users, chain, *d) == 0 {
                for set in looked_up(&self.chains[&**chain]) {
                    *set_delta.entry(set).or_default() -= 1;
                }
            }
        }
        let free = |set: &str| {
            let delta = set_delta.get(set).copied().unwrap_or(0);
            Self::users_after(&index.set_users, set, delta) == 0
        };
        let (mut sets, mut cache) = (PeerSets::default(), AddrCache::default());
        let mut drafts = Drafts::default();
        let mut bodies = Vec::new();
        for &c in rebuilt {
            let class = &table.classes[c];
            if !class.addresses.is_empty() {
                let ids = class_bodies(class, &mut sets, &mut cache);
                bodies.push((c, ids.map(|body| body.map(|b| drafts.add(b)))));
            }
        }
        let names = sets.names(Some((&self.index, &self.sets)), &free);
        let chains = drafts.named(&names, |n| self.chains.get(n).map(Vec::as_slice));
        let classes = (bodies.into_iter())
            .map(|(c, ids)| (c, ids.map(|id| id.map(|i| chains[i].0.clone()))))
            .collect();
        Drafted {
            sets,
            names,
            chains,
            classes,
        }
    }

    /// The chains `update` adds (drafted and not in the table) and deletes (left without users by
    /// `delta`); the new user counts of the chains whose users change.
    fn chain_changes(
        &self,
        delta: &HashMap<Arc<str>, i64>,
        drafted: Vec<(Arc<str>, Vec<Rule>)>,
        update: &mut Update,
    ) -> Vec<(String, u32)> {
        let users = |chain: &str, d: i64| Self::users_after(&self.index.chain_users, chain, d);
        let chain_users: Vec<(String, u32)> = (delta.iter())
            .map(|(chain, d)| (chain.to_string(), users(chain, *d).max(0) as u32))
            .collect();
        update.old_chains = (chain_users.iter())
            .filter(|(chain, users)| *users == 0 && self.chains.contains_key(chain))
            .map(|(chain, _)| chain.clone())
            .collect();
        update.old_chains.sort_unstable();
        let new_chains: BTreeMap<String, Vec<Rule>> = (drafted.into_iter())
            .filter(|(name, _)| !self.chains.contains_key(&**name))
            .map(|(name, body)| (name.to_string(), body))
            .collect();
        update.new_chains = new_chains.into_iter().collect();
        chain_users
    }

    /// The sets `update` adds, edits (members) and deletes (no rule looks them up any more), after
    /// its chain changes; the new content of the edited sets and the stable keys of the new ones.
    fn set_changes(&self, sets: PeerSets, names: Vec<String>, update: &mut Update) -> SetChanges {
        let mut set_delta: HashMap<&str, i64> = HashMap::new();
        for chain in &update.old_chains {
            for set in looked_up(&self.chains[chain]) {
                *set_delta.entry(set).or_default() -= 1;
            }
        }
        for set in update
            .new_chains
            .iter()
            .flat_map(|(_, body)| looked_up(body))
        {
            *set_delta.entry(set).or_default() += 1;
        }
        update.old_sets = (set_delta.iter())
            .filter(|(set, d)| Self::users_after(&self.index.set_users, set, **d) == 0)
            .filter(|(set, _)| self.sets.contains_key(**set))
            .map(|(set, _)| set.to_string())
            .collect();
        update.old_sets.sort_unstable();
        let (mut edited, mut keys) = (Vec::new(), Vec::new());
        for (set, name) in sets.defs.into_iter().zip(names) {
            match self.sets.get(&name) {
                None => {
                    keys.push((name.clone(), set.key));
                    update.new_sets.push((name, set.def));
                }
                Some(before) if *before != set.def => {
                    update
                        .members
                        .push(MemberEdit::between(&name, before, &set.def));
                    edited.push((name, set.def));
                }
                Some(_) => {}
            }
        }
        // By name (`keys` in the same order).
        update.new_sets.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        keys.sort_unstable();
        update.members.sort_unstable_by(|a, b| a.set.cmp(&b.set));
        SetChanges { edited, keys }
    }

    /// Becomes the ruleset `patch` leads to (once the kernel holds it).
    pub fn absorb(&mut self, patch: Patch) {
        let Patch {
            update,
            edited,
            keys,
            built_for,
            class_chains,
            chain_users,
        } = patch;
        for ((name, def), (_, key)) in update.new_sets.into_iter().zip(keys) {
            let hash = content_hash(&def);
            self.add_set(name, super::sets::NewSet { def, key, hash });
        }
        for (name, def) in edited {
            self.edit_set(&name, def);
        }
        for (name, rules) in update.new_chains {
            self.add_chain(name, rules);
        }
        for MapEdit { map, stale, fresh } in update.jumps {
            let m = MAPS
                .iter()
                .position(|(n, _)| *n == map)
                .expect("one of MAPS");
            for ip in stale {
                self.maps[m].remove(&ip);
            }
            self.maps[m].extend(fresh);
        }
        for name in &update.old_chains {
            self.remove_chain(name);
        }
        for name in &update.old_sets {
            self.remove_set(name);
        }
        for (chain, users) in chain_users.into_iter().filter(|(_, users)| *users > 0) {
            self.index.chain_users.insert(chain, users);
        }
        self.index.built_for = Some(built_for);
        self.index.class_chains = class_chains;
    }
}

#[cfg(test)]
mod tests {
    use super::super::{build, rule::Rule, sets::SetDef, Ruleset, Update};
    use palisade_model::{ClusterState, Loader, Origin, PodInfo, PolicyInfo, ValidPolicy};
    use palisade_policy::{Audit, ClassId, CompiledTable, Engine};
    use palisade_synth::{generate, SynthConfig};
    use std::collections::{BTreeMap, HashMap};
    use std::net::IpAddr;
    use std::sync::Arc;

    /// What the kernel enforces, names aside: per verdict map, each address's chain with its sets'
    /// content in place of their names.
    type Resolved = Vec<BTreeMap<IpAddr, Vec<Rule<SetDef>>>>;

    fn resolved(r: &Ruleset) -> Resolved {
        let resolve = |chain: &String| -> Vec<Rule<SetDef>> {
            let rules = r.chains[chain].iter().cloned();
            rules
                .map(|rule| rule.named(|set| r.sets[&set].clone()))
                .collect()
        };
        (r.maps.iter())
            .map(|m| m.iter().map(|(ip, c)| (*ip, resolve(c))).collect())
            .collect()
    }

    /// The index says what the table holds: users counted from the maps and chains, every chain
    /// and set used, content and key indexes and each class's chains right.
    fn check_index(r: &Ruleset, table: &CompiledTable) {
        let mut chain_users: HashMap<&str, u32> = HashMap::new();
        for chain in r.maps.iter().flat_map(|m| m.values()) {
            *chain_users.entry(chain).or_default() += 1;
        }
        let mut set_users: HashMap<&str, u32> = HashMap::new();
        for peer in r
            .chains
            .values()
            .flatten()
            .filter_map(|rule| rule.peer.as_ref())
        {
            *set_users.entry(&peer.set).or_default() += 1;
        }
        assert_eq!(
            chain_users.len(),
            r.chains.len(),
            "a chain nothing jumps to"
        );
        assert_eq!(set_users.len(), r.sets.len(), "a set no rule looks up");
        let index = &r.index;
        for (chain, users) in &chain_users {
            assert_eq!(
                index.chain_users.get(*chain),
                Some(users),
                "users of {chain}"
            );
        }
        assert_eq!(index.chain_users.len(), chain_users.len());
        for (set, users) in &set_users {
            assert_eq!(index.set_users.get(*set), Some(users), "users of {set}");
        }
        for (name, def) in &r.sets {
            let named = &index.set_by_content[&super::content_hash(def)];
            assert!(named.contains(name), "{name} is not indexed by its content");
        }
        assert_eq!(
            index.set_by_content.values().map(Vec::len).sum::<usize>(),
            r.sets.len()
        );
        for (key, name) in &index.set_by_key {
            assert_eq!(r.set_keys.get(name), Some(key));
        }
        assert_eq!(index.class_chains.len(), table.classes.len());
        for (class, chains) in index.class_chains.iter_enumerated() {
            let ips = &table.classes[class].addresses;
            assert_eq!(chains.is_some(), !ips.is_empty(), "class {class:?}");
            for (d, chain) in chains.iter().flat_map(|c| c.iter()) {
                for ip in ips {
                    let jump = r.maps[super::map_of(d, *ip)].get(ip).map(String::as_str);
                    assert_eq!(jump, chain.as_deref(), "class {class:?} address {ip}");
                }
            }
        }
    }

    fn counts(u: &Update) -> [usize; 5] {
        let members = u.members.len();
        let (sets, chains) = (u.new_sets.len(), u.new_chains.len());
        [sets, chains, members, u.old_chains.len(), u.old_sets.len()]
    }

    /// A small deterministic generator (xorshift).
    struct Rng(u64);

    impl Rng {
        fn below(&mut self, n: usize) -> usize {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            (self.0 % n as u64) as usize
        }
    }

    /// `state` with some pods relabelled (to labels other pods have, or new ones), some gone (every
    /// fourth round, a third of them), some new, some readdressed (IPv4 and IPv6), some moved to
    /// or from the host network; and policies with ipBlocks added and deleted.
    fn churned(state: &ClusterState, rng: &mut Rng, round: usize) -> ClusterState {
        let mut pods = state.pods.as_slice().to_vec();
        let n = pods.len();
        for i in 0..1 + rng.below(6) {
            let (p, q) = (rng.below(n), rng.below(n));
            let labels = match i % 3 {
                0 => BTreeMap::from([("app".into(), format!("new-{round}-{i}"))]),
                _ => pods[q].labels.clone(),
            };
            Arc::make_mut(&mut pods[p]).labels = labels;
        }
        for i in 0..rng.below(3) {
            let p = rng.below(pods.len());
            let ip: IpAddr = if i.is_multiple_of(2) {
                format!("10.250.{round}.{i}").parse().unwrap()
            } else {
                format!("fd00:250::{round}:{i}").parse().unwrap()
            };
            Arc::make_mut(&mut pods[p]).ip = Some(ip);
        }
        if rng.below(3) == 0 {
            let p = rng.below(pods.len());
            let pod = Arc::make_mut(&mut pods[p]);
            pod.host_network = !pod.host_network;
        }
        for _ in 0..rng.below(4) {
            pods.remove(rng.below(pods.len()));
        }
        if round % 4 == 1 {
            // A third of the pods gone at once (a file cut short while it is being written).
            let start = rng.below(pods.len() / 2);
            pods.drain(start..start + pods.len() / 3);
        }
        for i in 0..rng.below(4) {
            let mut pod: PodInfo = (*pods[rng.below(pods.len())]).clone();
            pod.name = format!("added-{round}-{i}");
            pod.ip = Some(format!("10.251.{round}.{i}").parse().unwrap());
            pods.push(Arc::new(pod));
        }
        // Every third round, a policy whose ipBlock holds this round's readdressed pods (the
        // ipBlocks, which split classes, change), and the one of three rounds before goes.
        let mut policies = state.policies.clone();
        policies.retain(|p| p.name != format!("block-{}", round.wrapping_sub(3)));
        if round.is_multiple_of(3) {
            let namespace = &state.namespaces.as_slice()[rng.below(state.namespaces.len())].name;
            let object = serde_json::from_value(serde_json::json!({
                "apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
                "metadata": {"name": format!("block-{round}"), "namespace": namespace},
                "spec": {"podSelector": {}, "ingress": [{"from": [
                    {"ipBlock": {"cidr": format!("10.250.{round}.0/24")}}]}]},
            }))
            .unwrap();
            let (policy, _) = ValidPolicy::new(object).expect("a valid policy");
            let origin = Origin {
                file: "churn.yaml".into(),
                line: None,
            };
            policies.push(PolicyInfo::new(policy, origin));
        }
        ClusterState::new(
            state.namespaces.as_slice().to_vec(),
            pods,
            state.services.clone(),
            policies,
        )
    }

    fn cluster(seed: u64) -> ClusterState {
        let synth = generate(&SynthConfig {
            namespaces: 12,
            pods_per_ns: 8,
            policies: 60,
            seed,
        });
        synth.load().0
    }

    /// Patch after patch, the ruleset enforces what a full build of the same engine enforces, its
    /// index stays right, and the patch's update is exactly the difference between the two
    /// rulesets.
    #[test]
    fn patched_rulesets_enforce_what_full_builds_do() {
        for seed in 1..=6u64 {
            let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15));
            let audit = if seed.is_multiple_of(3) {
                Audit::All
            } else {
                Audit::Annotated
            };
            let mut engine = Engine::new(Arc::new(cluster(seed)));
            let mut table = CompiledTable::of(&engine, audit);
            let mut ruleset = build(&table, None);
            check_index(&ruleset, &table);
            let mut patched = 0;
            for round in 0..12 {
                let state = churned(engine.state(), &mut rng, round);
                let next = Engine::new_from(&engine, Arc::new(state));
                let next_table = CompiledTable::compile(&next, Some((&engine, &table)), audit);
                let patch = ruleset
                    .patch(&table, &next_table)
                    .expect("an engine compiled from the previous one is patched");
                let full = build(&next_table, Some(&ruleset));
                let before = ruleset.clone();
                let at = format!("seed {seed} round {round}");
                // As small as the full build's update: sets keep their names where it can.
                assert_eq!(
                    counts(patch.update()),
                    counts(&full.update_from(&before)),
                    "{at}: (new sets, new chains, member edits, old chains, old sets)"
                );
                let update = patch.update().to_string();
                ruleset.absorb(patch);
                assert!(
                    resolved(&ruleset) == resolved(&full),
                    "{at}: enforces otherwise"
                );
                check_index(&ruleset, &next_table);
                assert_eq!(update, ruleset.update_from(&before).to_string(), "{at}");
                patched += usize::from(!update.is_empty());
                (engine, table) = (next, next_table);
            }
            assert!(
                patched >= 10,
                "seed {seed}: only {patched} patches changed anything"
            );
        }
    }

    /// A set two policies' rules share (same peers), one of which changes: the set keeps serving
    /// the rule that did not change, and the changed rule gets a set of its own.
    #[test]
    fn a_set_still_looked_up_keeps_its_content() {
        let pod = |name: &str, app: &str, ip: &str| {
            format!("apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}, namespace: ns, labels: {{app: {app}}}}}\nspec: {{containers: [{{name: c, image: x}}]}}\nstatus: {{podIP: {ip}}}\n---\n")
        };
        let policy = |name: &str, target: &str, from: &str| {
            format!("apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {{name: {name}, namespace: ns}}\nspec:\n  podSelector: {{matchLabels: {{app: {target}}}}}\n  ingress: [{{from: [{{podSelector: {{matchExpressions: [{{key: app, operator: In, values: [{from}]}}]}}}}]}}]\n---\n")
        };
        let text = [
            pod("a", "a", "10.0.0.1"),
            pod("b", "b", "10.0.0.2"),
            pod("c", "c", "10.0.0.3"),
            pod("d", "d", "10.0.0.4"),
            // Both allow from {c}; a relabel of d to `e` changes only the first one's peers.
            policy("p1", "a", "c, e"),
            policy("p2", "b", "c"),
        ]
        .concat();
        let mut loader = Loader::new();
        loader.load_str("t.yaml", &text);
        let (state, diagnostics) = loader.finish();
        assert!(diagnostics.is_empty(), "{diagnostics:?}");
        let engine = Engine::new(Arc::new(state));
        let table = CompiledTable::of(&engine, Audit::Annotated);
        let ruleset = build(&table, None);
        assert_eq!(ruleset.sets.len(), 1, "one set for the two rules");
        let mut pods = engine.state().pods.as_slice().to_vec();
        Arc::make_mut(&mut pods[3]).labels = BTreeMap::from([("app".into(), "e".into())]);
        let state = engine.state();
        let (ns, services, policies) = (&state.namespaces, &state.services, &state.policies);
        let next = Engine::new_from(
            &engine,
            Arc::new(ClusterState::new(
                ns.as_slice().to_vec(),
                pods,
                services.clone(),
                policies.clone(),
            )),
        );
        let next_table = CompiledTable::compile(&next, Some((&engine, &table)), Audit::Annotated);
        let b = ClassId::new(1);
        let kept = Arc::ptr_eq(&table.classes[b].rules, &next_table.classes[b].rules);
        assert!(kept, "b's rules are kept");
        let patch = ruleset.patch(&table, &next_table);
        let mut patched = ruleset.clone();
        patched.absorb(patch.expect("patched"));
        let full = build(&next_table, Some(&ruleset));
        assert!(resolved(&patched) == resolved(&full));
        assert_eq!(patched.sets.len(), 2);
    }

    /// No patch but from the table the ruleset was built for to a table compiled from it; across
    /// audit modes (the node's, a namespace's annotation) a patch enforces what a full build does.
    #[test]
    fn patches_follow_audit_modes_and_only_the_tables_compiled_from_theirs() {
        let engine = Engine::new(Arc::new(cluster(1)));
        let table = CompiledTable::of(&engine, Audit::Annotated);
        let ruleset = build(&table, None);
        let same = Engine::new_from(&engine, engine.state_arc());
        let same_table = CompiledTable::compile(&same, Some((&engine, &table)), Audit::Annotated);
        let patch = ruleset.patch(&table, &same_table);
        assert!(patch.expect("the same cluster").update().is_empty());
        let fresh = Engine::new(engine.state_arc());
        let fresh_table = CompiledTable::of(&fresh, Audit::Annotated);
        assert!(
            ruleset.patch(&table, &fresh_table).is_none(),
            "an engine compiled afresh"
        );
        assert!(
            ruleset.patch(&same_table, &same_table).is_none(),
            "not the table it was built for"
        );
        // The node in audit mode, then one namespace annotated for it.
        let all = CompiledTable::compile(&same, Some((&engine, &table)), Audit::All);
        // The namespace of a class that policy isolates (an audit mode elsewhere changes nothing).
        let (isolated, _) = (table.classes.iter_enumerated())
            .find(|(_, class)| !class.addresses.is_empty() && class.rules.ingress.is_some())
            .expect("an isolated class");
        let mut state = engine.state().clone();
        state.namespaces[engine.class_namespace(isolated)]
            .annotations
            .insert(
                palisade_model::logging::AUDIT_ANNOTATION.into(),
                "true".into(),
            );
        let annotated = Engine::new_from(&engine, Arc::new(state));
        let annotated_table =
            CompiledTable::compile(&annotated, Some((&engine, &table)), Audit::Annotated);
        for (what, next) in [
            ("node audit mode", &all),
            ("a namespace annotated", &annotated_table),
        ] {
            let mut patched = ruleset.clone();
            let patch = ruleset.patch(&table, next).expect(what);
            assert!(!patch.update().is_empty(), "{what}");
            patched.absorb(patch);
            let full = build(next, Some(&ruleset));
            assert!(
                resolved(&patched) == resolved(&full),
                "{what}: enforces otherwise"
            );
            check_index(&patched, next);
        }
    }
}

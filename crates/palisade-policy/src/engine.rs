//! The policy engine: compiles a [`ClusterState`] once, then answers reachability per probe (on
//! endpoint classes, for matrices and the dataplane) and verdicts with reasons per flow.

use crate::bitset::BitSet;
use crate::classes::{Class, ClassId, Classes};
use crate::direction::{Direction, PerDirection};
use crate::policy::{
    Blocks, CompiledPolicy, Compiler, NamespaceScope, Peer, PolicyId, Scope, Source,
};
use crate::selector::{Interner, LabelSet, Selector};
use foldhash::{HashMap, HashMapExt};
use palisade_model::selector::SelectorSpec;
use palisade_model::{
    ClusterState, Id, IdVec, IpBlock, NamespaceId, NamespaceInfo, NodeInfo, ObjectKey, PodId,
    Protocol, Tier, TierAction, TierPolicyInfo,
};
use std::sync::Arc;

/// The classes a rule's peers match, computed once per engine.
#[derive(Clone, Debug)]
pub(crate) struct RuleClasses {
    /// `from`/`to` missing or empty: every endpoint.
    pub any: bool,
    /// Classes matched by a selector peer.
    pub selected: BitSet<Class>,
    /// Classes matched by an ipBlock peer (through their pods' IPs).
    pub blocked: BitSet<Class>,
}

/// A compiled cluster: policies, classes and the per-rule peer sets.
pub struct Engine {
    /// Unique among the engines of this process.
    id: u64,
    /// What this engine took from the engine it was compiled from ([`Engine::new_from`]).
    derived: Option<Derived>,
    state: Arc<ClusterState>,
    /// The label ids of this engine (kept for [`Engine::new_from`]).
    interner: Interner,
    pub(crate) namespace_labels: IdVec<NamespaceInfo, LabelSet>,
    /// The NetworkPolicies in the state's order, then the cluster-wide policies in the order they
    /// are evaluated ([`evaluation_order`]). Shared with the engines compiled from this one while
    /// unchanged ([`Engine::new_from`]).
    pub(crate) policies: IdVec<CompiledPolicy, Arc<CompiledPolicy>>,
    pub(crate) blocks: IdVec<IpBlock, IpBlock>,
    pub(crate) classes: Classes,
    /// Per direction, each class's NetworkPolicies that select it and govern that direction.
    pub(crate) selecting: PerDirection<IdVec<Class, Vec<PolicyId>>>,
    /// Per direction, each class's cluster-wide policies whose subject holds it and that have
    /// rules for that direction, in the order they are evaluated (Admin, then Baseline).
    pub(crate) tiers: PerDirection<IdVec<Class, Vec<PolicyId>>>,
    /// Per policy and direction, each rule's peer classes.
    pub(crate) rule_classes: IdVec<CompiledPolicy, PerDirection<Vec<RuleClasses>>>,
    /// The policies annotated `policy.palisade.dev/audit-mode: "true"` in this state (a policy
    /// reused from another engine may carry an older object, so this is read from the state).
    staged: BitSet<CompiledPolicy>,
}

/// How an engine compiled from another ([`Engine::new_from`]) relates to it.
#[derive(Clone, Debug)]
pub(crate) struct Derived {
    /// The other engine's id.
    pub from: u64,
    /// Each class's counterpart there: the class with the same key.
    pub classes: IdVec<Class, Option<ClassId>>,
    /// Each policy's counterpart there: the same policy (identity and spec), compiled once.
    pub policies: IdVec<CompiledPolicy, Option<PolicyId>>,
    /// The namespaces whose labels changed (both engines have the same namespaces): what
    /// namespace selectors match there may have.
    pub relabelled: Vec<NamespaceId>,
}

/// The policies of a state compiled from an engine's ([`Engine::new_from`]).
struct Recompiled {
    policies: IdVec<CompiledPolicy, Arc<CompiledPolicy>>,
    /// Each policy's counterpart in the engine compiled from.
    counterparts: IdVec<CompiledPolicy, Option<PolicyId>>,
    /// The ipBlocks: those of the engine compiled from still used, in the same order, then new
    /// ones.
    blocks: IdVec<IpBlock, IpBlock>,
    /// Each ipBlock of the engine compiled from: its id in `blocks`, if still used.
    renumbered: IdVec<IpBlock, Option<Id<IpBlock>>>,
}

/// Gives the ipBlock peers of `policy` the ids `ids` maps theirs to (a policy shared with another
/// engine is copied first, only if an id changes).
fn renumber(policy: &mut Arc<CompiledPolicy>, ids: &IdVec<IpBlock, Option<Id<IpBlock>>>) {
    let moved = |id: Id<IpBlock>| ids[id].filter(|now| *now != id);
    let names_moved = (policy.ingress.iter().chain(&policy.egress).flatten())
        .flat_map(|rule| rule.peers.iter().flatten())
        .any(|peer| matches!(peer, Peer::Block { id, .. } if moved(*id).is_some()));
    if !names_moved {
        return;
    }
    let policy = Arc::make_mut(policy);
    for rules in [&mut policy.ingress, &mut policy.egress] {
        for rule in rules.iter_mut().flatten() {
            for peer in rule.peers.iter_mut().flatten() {
                if let Peer::Block { id, .. } = peer {
                    *id = ids[*id].expect("a block a policy names is used");
                }
            }
        }
    }
}

impl Engine {
    /// Compiles `state`. Cost grows with classes × selectors, not pods × policies.
    pub fn new(state: Arc<ClusterState>) -> Engine {
        let mut interner = Interner::default();
        let namespace_labels: IdVec<NamespaceInfo, LabelSet> = (state.namespaces.iter())
            .map(|n| interner.labels(&n.labels))
            .collect();
        let pod_labels: Vec<LabelSet> = state
            .pods
            .iter()
            .map(|p| interner.labels(&p.labels))
            .collect();
        let mut compiler = Compiler {
            interner: &mut interner,
            blocks: Blocks::default(),
            state: &state,
        };
        let mut policies: IdVec<CompiledPolicy, Arc<CompiledPolicy>> = (state.policies.iter())
            .filter_map(|p| compiler.policy(p).map(Arc::new))
            .collect();
        for info in evaluation_order(&state) {
            policies.push(Arc::new(compiler.tier_policy(info)));
        }
        let blocks = compiler.blocks.list;
        let classes = Classes::build(&state, pod_labels, &blocks);
        Engine::assemble(state, interner, namespace_labels, policies, blocks, classes)
    }

    /// A number no other engine of this process has: what was built for an engine can say which.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// When this engine was compiled from `previous` ([`Engine::new_from`], reusing its compiled
    /// policies): for each class, the class of `previous` with the same key — the same policies
    /// select it and its pods match the same selectors — if any.
    pub fn counterparts(&self, previous: &Engine) -> Option<&IdVec<Class, Option<ClassId>>> {
        self.derived_from(previous).map(|d| &d.classes)
    }

    pub(crate) fn derived_from(&self, previous: &Engine) -> Option<&Derived> {
        self.derived.as_ref().filter(|d| d.from == previous.id)
    }

    /// Compiles `state` like [`Engine::new`], with the same answers, reusing the work of `previous`
    /// (an engine of an earlier state) when both have the same namespaces (labels may differ) — as
    /// after pods were added, removed or relabelled, or policies added, edited or deleted: the
    /// policies that did not change are not compiled again, and the pods that did not change keep
    /// their classes (split by new ipBlocks that hold some of them, merged where an ipBlock that
    /// split them is gone). Otherwise it is [`Engine::new`].
    pub fn new_from(previous: &Engine, state: Arc<ClusterState>) -> Engine {
        let old = previous.state();
        let same_names = old.namespaces.len() == state.namespaces.len()
            && (old.namespaces.iter().zip(&state.namespaces)).all(|(a, b)| a.name == b.name);
        if !same_names {
            return Engine::new(state);
        }
        let mut interner = previous.interner.clone();
        let Recompiled {
            policies,
            counterparts,
            blocks,
            renumbered,
        } = previous.policies_for(&state, &mut interner);
        let relabelled: Vec<NamespaceId> = (old.namespaces.iter_enumerated())
            .filter(|&(i, was)| was.labels != state.namespaces[i].labels)
            .map(|(i, _)| i)
            .collect();
        let namespace_labels = if !relabelled.is_empty() {
            (state.namespaces.iter())
                .map(|n| interner.labels(&n.labels))
                .collect()
        } else {
            previous.namespace_labels.clone()
        };
        let (classes, class_counterparts) = Classes::rebuild(
            &previous.classes,
            old,
            &state,
            &mut interner,
            &blocks,
            &renumbered,
        );
        let mut engine =
            Engine::assemble(state, interner, namespace_labels, policies, blocks, classes);
        engine.derived = Some(Derived {
            from: previous.id,
            classes: class_counterparts,
            policies: counterparts,
            relabelled,
        });
        engine
    }

    /// The policies of `state` compiled: those this engine compiled from the same policy (identity
    /// and spec) taken from it, the others compiled with `interner`; with each one's counterpart
    /// here, and their ipBlocks: this engine's still used (in their order), then new ones.
    fn policies_for(&self, state: &ClusterState, interner: &mut Interner) -> Recompiled {
        let by_key: HashMap<&ObjectKey, PolicyId> = (self.policies.iter_enumerated())
            .map(|(i, p)| (&*p.key, i))
            .collect();
        let nodes_alike = nodes_alike(&self.state.nodes, &state.nodes);
        let mut compiler = Compiler {
            interner,
            blocks: Blocks::from_list(self.blocks.clone()),
            state,
        };
        let mut counterparts = IdVec::with_capacity(state.policies.len());
        let mut policies = IdVec::with_capacity(state.policies.len());
        // What a policy compiles to depends on its identity and spec alone (an edit of its
        // annotations, say, keeps it) — and the nodes, for one with a `nodes` peer.
        let mut take =
            |key: ObjectKey,
             source: Source,
             compile: &mut dyn FnMut(&mut Compiler) -> Option<CompiledPolicy>| {
                let same = (by_key.get(&key).copied())
                    .filter(|&o| self.policies[o].compiles_from(&source, nodes_alike));
                let compiled = match same {
                    Some(o) => Some(self.policies[o].clone()),
                    None => compile(&mut compiler).map(Arc::new),
                };
                if let Some(compiled) = compiled {
                    policies.push(compiled);
                    counterparts.push(same);
                }
            };
        for info in &state.policies {
            let source = Source::Network(info.policy.clone());
            take(info.key(), source, &mut |c| c.policy(info));
        }
        for info in evaluation_order(state) {
            let source = Source::Tier(info.policy.clone());
            take(info.key(), source, &mut |c| Some(c.tier_policy(info)));
        }
        // The ipBlocks still used keep their order, new ones after: ids may shift, so the
        // policies that name one whose id changed are given the new ids.
        let combined = compiler.blocks.list;
        let mut used = BitSet::<IpBlock>::new(combined.len());
        for rule in (policies.iter()).flat_map(|p| p.ingress.iter().chain(&p.egress).flatten()) {
            for peer in rule.peers.iter().flatten() {
                if let Peer::Block { id, .. } = peer {
                    used.insert(*id);
                }
            }
        }
        let mut blocks = IdVec::new();
        let ids: IdVec<IpBlock, Option<Id<IpBlock>>> = (combined.iter_enumerated())
            .map(|(id, block)| used.contains(id).then(|| blocks.push(block.clone())))
            .collect();
        if ids.iter_enumerated().any(|(id, now)| *now != Some(id)) {
            for policy in policies.iter_mut() {
                renumber(policy, &ids);
            }
        } else {
            // Every ipBlock used, in place: the list as compiled.
            blocks = combined;
        }
        let renumbered = (self.blocks.ids()).map(|id| ids[id]).collect();
        Recompiled {
            policies,
            counterparts,
            blocks,
            renumbered,
        }
    }

    fn assemble(
        state: Arc<ClusterState>,
        interner: Interner,
        namespace_labels: IdVec<NamespaceInfo, LabelSet>,
        policies: IdVec<CompiledPolicy, Arc<CompiledPolicy>>,
        blocks: IdVec<IpBlock, IpBlock>,
        classes: Classes,
    ) -> Engine {
        static NEXT_ID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let mut engine = Engine {
            id: NEXT_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            derived: None,
            state,
            interner,
            namespace_labels,
            policies,
            blocks,
            classes,
            selecting: PerDirection::default(),
            tiers: PerDirection::default(),
            rule_classes: IdVec::new(),
            staged: BitSet::new(0),
        };
        engine.staged = engine.find_staged();
        engine.select();
        engine.rule_classes = engine.compute_rule_classes();
        engine
    }

    /// The policies of the state annotated `policy.palisade.dev/audit-mode: "true"`.
    fn find_staged(&self) -> BitSet<CompiledPolicy> {
        let mut staged = BitSet::new(self.policies.len());
        let network = (self.state.policies.iter())
            .filter(|p| p.policy.audit_annotated())
            .map(|p| p.key());
        let tier = (self.state.tier_policies.iter())
            .filter(|p| p.policy.audit_annotated())
            .map(|p| p.key());
        let keys: foldhash::HashSet<ObjectKey> = network.chain(tier).collect();
        if !keys.is_empty() {
            for (id, policy) in self.policies.iter_enumerated() {
                if keys.contains(&*policy.key) {
                    staged.insert(id);
                }
            }
        }
        staged
    }

    /// True when a staged policy governs `pod` for `direction` (a NetworkPolicy selecting it, or
    /// a cluster-wide one whose subject holds it): where its verdicts may differ from the enforced
    /// ones.
    pub fn staged_governs(&self, pod: PodId, direction: Direction) -> bool {
        let class = self.class_of(pod);
        let lists = [
            &self.selecting[direction][class],
            &self.tiers[direction][class],
        ];
        !self.staged.is_empty()
            && lists
                .iter()
                .any(|l| l.iter().any(|&id| self.staged.contains(id)))
    }

    /// The snapshot this engine was compiled from.
    pub fn state(&self) -> &ClusterState {
        &self.state
    }

    /// A shared handle on the snapshot.
    pub fn state_arc(&self) -> Arc<ClusterState> {
        self.state.clone()
    }

    /// Number of endpoint classes.
    pub fn class_count(&self) -> usize {
        self.classes.list.len()
    }

    /// Every class, in order.
    pub fn class_ids(&self) -> impl DoubleEndedIterator<Item = ClassId> {
        self.classes.list.ids()
    }

    /// The class of `pod`.
    pub fn class_of(&self, pod: PodId) -> ClassId {
        self.classes.of_pod[pod]
    }

    /// The namespace of `class`'s pods.
    pub fn class_namespace(&self, class: ClassId) -> NamespaceId {
        self.classes.list[class].key.namespace
    }

    /// The engine this one was compiled from (its id) and each class's counterpart there.
    pub(crate) fn derived_classes(&self) -> Option<(u64, IdVec<Class, Option<ClassId>>)> {
        self.derived.as_ref().map(|d| (d.from, d.classes.clone()))
    }

    /// The NetworkPolicies that select the pods of `class` (for either direction), each once, in
    /// the state's order: what must be in force wherever those pods are enforced.
    pub fn policies_selecting(&self, class: ClassId) -> Vec<&palisade_model::ValidPolicy> {
        (self.selecting_ids(&self.selecting, class).into_iter())
            .filter_map(|id| match &self.policies[id].source {
                Source::Network(policy) => Some(&**policy),
                Source::Tier(_) => None,
            })
            .collect()
    }

    /// The cluster-wide policies whose subject holds the pods of `class` (for either direction),
    /// each once, in the order they are evaluated.
    pub fn tier_policies_selecting(&self, class: ClassId) -> Vec<&palisade_model::ValidTierPolicy> {
        (self.selecting_ids(&self.tiers, class).into_iter())
            .filter_map(|id| match &self.policies[id].source {
                Source::Tier(policy) => Some(&**policy),
                Source::Network(_) => None,
            })
            .collect()
    }

    fn selecting_ids(
        &self,
        lists: &PerDirection<IdVec<Class, Vec<PolicyId>>>,
        class: ClassId,
    ) -> Vec<PolicyId> {
        let mut ids: Vec<PolicyId> = (Direction::BOTH.iter())
            .flat_map(|&d| lists[d][class].iter().copied())
            .collect();
        ids.sort_unstable();
        ids.dedup();
        ids
    }

    /// True when a cluster-wide policy's subject holds `pod` for `direction` (its verdicts there
    /// may be a tier rule's).
    pub fn tier_governed(&self, pod: PodId, direction: Direction) -> bool {
        !self.tiers[direction][self.class_of(pod)].is_empty()
    }

    /// The member pods of `class`.
    pub fn class_pods(&self, class: ClassId) -> &[PodId] {
        &self.classes.list[class].pods
    }

    /// Number of distinct ipBlocks across all policies.
    pub fn block_count(&self) -> usize {
        self.blocks.len()
    }

    fn select(&mut self) {
        let n = self.classes.list.len();
        let empty = || PerDirection::from_fn(|_| vec![Vec::new(); n].into());
        let (mut selecting, mut tiers): (PerDirection<IdVec<Class, Vec<PolicyId>>>, _) =
            (empty(), empty());
        for (pi, p) in self.policies.iter_enumerated() {
            let (lists, namespaces, pods) = match &p.scope {
                Scope::Namespace { namespace, pods } => (&mut selecting, vec![*namespace], pods),
                Scope::Cluster {
                    namespaces, pods, ..
                } => {
                    let matched = self.namespaces_of(namespaces).iter().collect();
                    (&mut tiers, matched, pods)
                }
            };
            for ns in namespaces {
                for &ci in &self.classes.by_namespace[ns] {
                    let class = &self.classes.list[ci].key;
                    if class.host_network || !pods.matches(&class.labels) {
                        continue;
                    }
                    for direction in Direction::BOTH {
                        if p.rules(direction).is_some() {
                            lists[direction][ci].push(pi);
                        }
                    }
                }
            }
        }
        self.selecting = selecting;
        self.tiers = tiers;
    }

    /// The cluster-wide policies whose subject holds `class` for `direction`, per tier, in the
    /// order they are evaluated.
    pub(crate) fn tier_policies(
        &self,
        class: ClassId,
        direction: Direction,
    ) -> PerTier<&[PolicyId]> {
        let all = &self.tiers[direction][class][..];
        let split = all.partition_point(|&pi| self.policies[pi].tier() == Some(Tier::Admin));
        let (admin, baseline) = all.split_at(split);
        PerTier { admin, baseline }
    }

    /// The policies selecting `class` for `direction`.
    pub(crate) fn selecting(&self, class: ClassId, direction: Direction) -> &[PolicyId] {
        &self.selecting[direction][class]
    }

    fn compute_rule_classes(&self) -> IdVec<CompiledPolicy, PerDirection<Vec<RuleClasses>>> {
        let n = self.classes.list.len();
        let mut ns_cache: HashMap<&Selector, BitSet<NamespaceInfo>> = HashMap::new();
        let mut peer_cache: HashMap<&Peer, BitSet<Class>> = HashMap::new();
        let mut out = IdVec::with_capacity(self.policies.len());
        for p in self.policies.iter() {
            let mut per_dir = PerDirection::<Vec<RuleClasses>>::default();
            for direction in Direction::BOTH {
                for rule in p.rules(direction).unwrap_or_default() {
                    let mut rc = RuleClasses {
                        any: rule.peers.is_none(),
                        selected: BitSet::new(n),
                        blocked: BitSet::new(n),
                    };
                    for peer in rule.peers.iter().flatten() {
                        let set = peer_cache
                            .entry(peer)
                            .or_insert_with(|| self.peer_classes(peer, &mut ns_cache));
                        match peer {
                            Peer::Pods { .. } => rc.selected.union_with(set),
                            Peer::Block { .. } => rc.blocked.union_with(set),
                        }
                    }
                    per_dir[direction].push(rc);
                }
            }
            out.push(per_dir);
        }
        out
    }

    fn peer_classes<'a>(
        &'a self,
        peer: &'a Peer,
        ns_cache: &mut HashMap<&'a Selector, BitSet<NamespaceInfo>>,
    ) -> BitSet<Class> {
        let n = self.classes.list.len();
        let mut set = BitSet::new(n);
        match peer {
            Peer::Block { id, .. } => {
                for (ci, c) in self.classes.list.iter_enumerated() {
                    if c.key.blocks.contains(*id) {
                        set.insert(ci);
                    }
                }
            }
            Peer::Pods { namespaces, pods } => {
                let mut add_namespace = |ns: NamespaceId| {
                    for &ci in &self.classes.by_namespace[ns] {
                        let c = &self.classes.list[ci].key;
                        if !c.host_network && pods.matches(&c.labels) {
                            set.insert(ci);
                        }
                    }
                };
                match namespaces {
                    NamespaceScope::Own(ns) => add_namespace(*ns),
                    NamespaceScope::Selected(sel) => {
                        let nss = ns_cache
                            .entry(sel)
                            .or_insert_with(|| self.namespaces_of(sel));
                        for ns in nss.iter() {
                            add_namespace(ns);
                        }
                    }
                }
            }
        }
        set
    }

    /// The namespaces whose labels `sel` matches.
    fn namespaces_of(&self, sel: &Selector) -> BitSet<NamespaceInfo> {
        let mut set = BitSet::new(self.namespace_labels.len());
        for (i, labels) in self.namespace_labels.iter_enumerated() {
            if sel.matches(labels) {
                set.insert(i);
            }
        }
        set
    }

    /// The namespaces a `namespaceSelector` as written matches.
    pub fn namespaces_matching(&self, sel: &SelectorSpec) -> BitSet<NamespaceInfo> {
        self.namespaces_of(&self.interner.known_selector(sel))
    }

    /// The classes a selector peer as written matches in a NetworkPolicy of namespace `own`:
    /// those (never `hostNetwork`) whose labels `pods` matches, in the namespaces `namespaces`
    /// matches or, without it, in `own` — matched as the engine matches its policies' peers.
    pub fn peer_classes_matching(
        &self,
        own: NamespaceId,
        namespaces: Option<&SelectorSpec>,
        pods: &SelectorSpec,
    ) -> BitSet<Class> {
        let peer = Peer::Pods {
            namespaces: match namespaces {
                Some(sel) => NamespaceScope::Selected(self.interner.known_selector(sel)),
                None => NamespaceScope::Own(own),
            },
            pods: self.interner.known_selector(pods),
        };
        self.peer_classes(&peer, &mut HashMap::new())
    }

    /// Class-level reachability for one probe (destination port and protocol).
    pub fn reach(&self, port: u16, protocol: Protocol) -> Reach {
        let mut named = NamedClasses::default();
        let mut scratch = Scratch::new(self.class_count());
        let mut per_direction = |direction| {
            (self.class_ids())
                .map(|class| {
                    let probe = Probe {
                        class,
                        direction,
                        port,
                        protocol,
                    };
                    self.direction_reach(&probe, &mut named, &mut scratch)
                })
                .collect()
        };
        Reach {
            ingress: per_direction(Direction::Ingress),
            egress: per_direction(Direction::Egress),
        }
    }

    /// The peer classes `probe.class` may reach (egress) or be reached from (ingress); `None`
    /// when no policy governs it in that direction. The tiers in order (§7): the Admin policies'
    /// rules, the first match deciding (Pass leaving the tier); then, if NetworkPolicy isolates
    /// the class, NetworkPolicy decides what is left; otherwise the Baseline policies' rules
    /// likewise, and what none decides is allowed.
    fn direction_reach(
        &self,
        probe: &Probe,
        named: &mut NamedClasses,
        scratch: &mut Scratch,
    ) -> Option<BitSet<Class>> {
        let tiers = self.tier_policies(probe.class, probe.direction);
        let isolating = self.selecting(probe.class, probe.direction);
        let n = self.class_count();
        let by_policy = |named: &mut NamedClasses| {
            let mut allowed = BitSet::new(n);
            for &pi in isolating {
                for ri in 0..self.policies[pi]
                    .rules(probe.direction)
                    .unwrap_or_default()
                    .len()
                {
                    self.rule_matches(pi, ri, probe, named, &mut allowed);
                }
            }
            allowed
        };
        if tiers.admin.is_empty() && tiers.baseline.is_empty() {
            // NetworkPolicy alone: the common case, one set.
            return (!isolating.is_empty()).then(|| by_policy(named));
        }
        let mut allowed = BitSet::new(n);
        scratch.open.fill();
        self.first_match(tiers.admin, probe, named, &mut allowed, scratch);
        if !isolating.is_empty() {
            scratch.open.intersect_with(&by_policy(named));
        } else {
            self.first_match(tiers.baseline, probe, named, &mut allowed, scratch);
        }
        allowed.union_with(&scratch.open);
        Some(allowed)
    }

    /// Walks the rules of one tier's `policies` in order over the classes still open
    /// (`scratch.open`): each rule's matches leave it, into `allowed` for Accept; those a Pass
    /// matched are open again for the next tier.
    fn first_match(
        &self,
        policies: &[PolicyId],
        probe: &Probe,
        named: &mut NamedClasses,
        allowed: &mut BitSet<Class>,
        scratch: &mut Scratch,
    ) {
        let Scratch {
            open,
            passed,
            matched,
        } = scratch;
        passed.clear();
        'walk: for &pi in policies {
            let rules = self.policies[pi].rules(probe.direction).unwrap_or_default();
            for (ri, rule) in rules.iter().enumerate() {
                if open.is_empty() {
                    break 'walk;
                }
                matched.clear();
                self.rule_matches(pi, ri, probe, named, matched);
                matched.intersect_with(open);
                match rule.action {
                    TierAction::Accept => allowed.union_with(matched),
                    TierAction::Pass => passed.union_with(matched),
                    TierAction::Deny => {}
                }
                open.difference_with(matched);
            }
        }
        open.union_with(passed);
    }

    /// Adds to `out` the peer classes rule `ri` of policy `pi` matches for `probe` (into the
    /// caller's set: NetworkPolicy's rules are a union, and reach is the hot path). Named ports
    /// resolve on the class itself for ingress; for egress on each destination class, and only
    /// for selector peers (never for ipBlocks).
    fn rule_matches(
        &self,
        pi: PolicyId,
        ri: usize,
        probe: &Probe,
        named: &mut NamedClasses,
        out: &mut BitSet<Class>,
    ) {
        let rule = &self.policies[pi].rules(probe.direction).unwrap_or_default()[ri];
        let rc = &self.rule_classes[pi][probe.direction][ri];
        let peers = |out: &mut BitSet<Class>| {
            if rc.any {
                out.fill();
            } else {
                out.union_with(&rc.selected);
                out.union_with(&rc.blocked);
            }
        };
        let Some(specs) = &rule.ports else {
            return peers(out);
        };
        let (port, protocol) = (probe.port, probe.protocol);
        if probe.direction == Direction::Ingress {
            let class = &self.classes.list[probe.class];
            let port_ok = specs.iter().any(|s| {
                let resolved = s.name().and_then(|nm| class.named_port(nm, protocol));
                s.matches(port, protocol, resolved)
            });
            if port_ok {
                peers(out);
            }
            return;
        }
        for s in specs {
            match s.name() {
                None if s.matches(port, protocol, None) => return peers(out),
                Some(name) if s.protocol == protocol => {
                    let set = named.classes(self, name, port, protocol);
                    if rc.any {
                        out.union_with(set);
                    } else {
                        out.union_intersection(set, &rc.selected);
                    }
                }
                _ => {}
            }
        }
    }
}

/// Sets a probe's tier walks reuse from class to class (reach is the hot path).
struct Scratch {
    /// The peer classes no rule decided yet.
    open: BitSet<Class>,
    /// Those a Pass of the current tier matched.
    passed: BitSet<Class>,
    /// The current rule's matches.
    matched: BitSet<Class>,
}

impl Scratch {
    fn new(n: usize) -> Scratch {
        Scratch {
            open: BitSet::new(n),
            passed: BitSet::new(n),
            matched: BitSet::new(n),
        }
    }
}

/// One direction of one class, for one probe.
struct Probe {
    class: ClassId,
    direction: Direction,
    port: u16,
    protocol: Protocol,
}

/// Per port name, the classes whose pods resolve it to the probe's port (one probe's worth).
#[derive(Default)]
struct NamedClasses(HashMap<String, BitSet<Class>>);

impl NamedClasses {
    fn classes(
        &mut self,
        engine: &Engine,
        name: &str,
        port: u16,
        protocol: Protocol,
    ) -> &BitSet<Class> {
        if !self.0.contains_key(name) {
            let mut set = BitSet::new(engine.class_count());
            for (ci, c) in engine.classes.list.iter_enumerated() {
                if c.named_port(name, protocol) == Some(port) {
                    set.insert(ci);
                }
            }
            self.0.insert(name.to_string(), set);
        }
        &self.0[name]
    }
}

/// Something per tier.
#[derive(Clone, Copy, Debug)]
pub(crate) struct PerTier<T> {
    pub admin: T,
    pub baseline: T,
}

/// The cluster-wide policies of `state` in the order they are evaluated: by tier, priority (a
/// BaselineAdminNetworkPolicy, which has none, last), kind (ClusterNetworkPolicy before the
/// v1alpha1 kinds: the API leaves their relative order undefined) and name.
pub(crate) fn evaluation_order(state: &ClusterState) -> Vec<&TierPolicyInfo> {
    let mut order: Vec<&TierPolicyInfo> = state.tier_policies.iter().collect();
    order.sort_by_key(|info| {
        let spec = info.policy.spec();
        (
            spec.tier,
            spec.priority.unwrap_or(u32::MAX),
            info.kind(),
            &info.name,
        )
    });
    order
}

/// True when two lists of nodes have the same names, labels and addresses: what `nodes` peers read.
fn nodes_alike(a: &[NodeInfo], b: &[NodeInfo]) -> bool {
    a.len() == b.len()
        && (a.iter().zip(b))
            .all(|(x, y)| x.name == y.name && x.labels == y.labels && x.addresses == y.addresses)
}

/// Which classes may talk to which for one probe: per destination class the allowed source classes
/// (`None`: not isolated for ingress) and per source class the allowed destination classes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reach {
    ingress: IdVec<Class, Option<BitSet<Class>>>,
    egress: IdVec<Class, Option<BitSet<Class>>>,
}

impl Reach {
    /// True if a pod of class `src` may open a connection to a pod of class `dst` (different pods).
    #[inline]
    pub fn allowed(&self, src: ClassId, dst: ClassId) -> bool {
        self.egress[src].as_ref().is_none_or(|s| s.contains(dst))
            && self.ingress[dst].as_ref().is_none_or(|s| s.contains(src))
    }

    /// True if class `class` is isolated for `direction`.
    pub fn isolated(&self, class: ClassId, direction: Direction) -> bool {
        match direction {
            Direction::Ingress => self.ingress[class].is_some(),
            Direction::Egress => self.egress[class].is_some(),
        }
    }
}

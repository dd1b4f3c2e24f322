//! The policy engine: compiles a [`ClusterState`] once, then answers reachability per probe (on
//! endpoint classes, for matrices and the dataplane) and verdicts with reasons per flow.

use crate::bitset::BitSet;
use crate::classes::{Class, ClassId, Classes};
use crate::direction::{Direction, PerDirection};
use crate::policy::{Blocks, CompiledPolicy, Compiler, NamespaceScope, Peer, PolicyId, Rule};
use crate::selector::{Interner, LabelSet, Selector};
use foldhash::{HashMap, HashMapExt};
use palisade_model::{
    ClusterState, Id, IdVec, IpBlock, NamespaceId, NamespaceInfo, PodId, Protocol,
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
    /// Shared with the engines compiled from this one while unchanged ([`Engine::new_from`]).
    pub(crate) policies: IdVec<CompiledPolicy, Arc<CompiledPolicy>>,
    pub(crate) blocks: IdVec<IpBlock, IpBlock>,
    pub(crate) classes: Classes,
    /// Per direction, each class's policies that select it and govern that direction.
    pub(crate) selecting: PerDirection<IdVec<Class, Vec<PolicyId>>>,
    /// Per policy and direction, each rule's peer classes.
    pub(crate) rule_classes: IdVec<CompiledPolicy, PerDirection<Vec<RuleClasses>>>,
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
        let policies: IdVec<CompiledPolicy, Arc<CompiledPolicy>> = (state.policies.iter())
            .filter_map(|p| compiler.policy(p).map(Arc::new))
            .collect();
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
        let by_key: HashMap<(&str, &str), PolicyId> = (self.policies.iter_enumerated())
            .map(|(i, p)| ((p.key.namespace().unwrap_or_default(), p.key.name()), i))
            .collect();
        let mut compiler = Compiler {
            interner,
            blocks: Blocks::from_list(self.blocks.clone()),
            state,
        };
        let mut counterparts = IdVec::with_capacity(state.policies.len());
        let mut policies = IdVec::with_capacity(state.policies.len());
        for info in &state.policies {
            // What a policy compiles to depends on its identity and spec alone (an edit of its
            // annotations, say, keeps it).
            let unchanged = |o: &PolicyId| {
                let was = &self.policies[*o].source;
                Arc::ptr_eq(was, &info.policy) || was.spec() == info.policy.spec()
            };
            let key = (&*info.namespace, &*info.name);
            let same = by_key.get(&key).copied().filter(unchanged);
            let compiled = match same {
                Some(o) => Some(self.policies[o].clone()),
                None => compiler.policy(info).map(Arc::new),
            };
            if let Some(compiled) = compiled {
                policies.push(compiled);
                counterparts.push(same);
            }
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
            rule_classes: IdVec::new(),
        };
        engine.select();
        engine.rule_classes = engine.compute_rule_classes();
        engine
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

    /// The policies that select the pods of `class` (for either direction), each once, in the
    /// state's order: what must be in force wherever those pods are enforced.
    pub fn policies_selecting(&self, class: ClassId) -> Vec<&palisade_model::ValidPolicy> {
        let mut ids: Vec<PolicyId> = (Direction::BOTH.iter())
            .flat_map(|&d| self.selecting[d][class].iter().copied())
            .collect();
        ids.sort_unstable();
        ids.dedup();
        ids.into_iter()
            .map(|id| &*self.policies[id].source)
            .collect()
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
        let mut selecting: PerDirection<IdVec<Class, Vec<PolicyId>>> =
            PerDirection::from_fn(|_| vec![Vec::new(); n].into());
        for (pi, p) in self.policies.iter_enumerated() {
            for &ci in &self.classes.by_namespace[p.namespace] {
                let class = &self.classes.list[ci].key;
                if class.host_network || !p.pod_selector.matches(&class.labels) {
                    continue;
                }
                for direction in Direction::BOTH {
                    if p.rules(direction).is_some() {
                        selecting[direction][ci].push(pi);
                    }
                }
            }
        }
        self.selecting = selecting;
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
                        let nss = ns_cache.entry(sel).or_insert_with(|| {
                            let mut s = BitSet::new(self.namespace_labels.len());
                            for (i, l) in self.namespace_labels.iter_enumerated() {
                                if sel.matches(l) {
                                    s.insert(i);
                                }
                            }
                            s
                        });
                        for ns in nss.iter() {
                            add_namespace(ns);
                        }
                    }
                }
            }
        }
        set
    }

    /// Class-level reachability for one probe (destination port and protocol).
    pub fn reach(&self, port: u16, protocol: Protocol) -> Reach {
        let n = self.classes.list.len();
        let mut named_cache: HashMap<String, BitSet<Class>> = HashMap::new();
        let mut named_classes = |name: &str| -> BitSet<Class> {
            named_cache
                .entry(name.to_string())
                .or_insert_with(|| {
                    let mut s = BitSet::new(n);
                    for (ci, c) in self.classes.list.iter_enumerated() {
                        if c.named_port(name, protocol) == Some(port) {
                            s.insert(ci);
                        }
                    }
                    s
                })
                .clone()
        };
        let mut ingress = IdVec::with_capacity(n);
        for (ci, class) in self.classes.list.iter_enumerated() {
            let selecting = self.selecting(ci, Direction::Ingress);
            if selecting.is_empty() {
                ingress.push(None);
                continue;
            }
            let mut allowed = BitSet::new(n);
            for &pi in selecting {
                let rules = self.policies[pi].ingress.as_deref().unwrap_or_default();
                for (ri, rule) in rules.iter().enumerate() {
                    let port_ok = rule.ports.as_ref().is_none_or(|specs| {
                        specs.iter().any(|s| {
                            let named = s.name().and_then(|nm| class.named_port(nm, protocol));
                            s.matches(port, protocol, named)
                        })
                    });
                    if port_ok {
                        let rc = &self.rule_classes[pi].ingress[ri];
                        if rc.any {
                            allowed = BitSet::full(n);
                        } else {
                            allowed.union_with(&rc.selected);
                            allowed.union_with(&rc.blocked);
                        }
                    }
                }
            }
            ingress.push(Some(allowed));
        }
        let mut egress = IdVec::with_capacity(n);
        for ci in self.classes.list.ids() {
            let selecting = self.selecting(ci, Direction::Egress);
            if selecting.is_empty() {
                egress.push(None);
                continue;
            }
            let mut allowed = BitSet::new(n);
            for &pi in selecting {
                let rules = self.policies[pi].egress.as_deref().unwrap_or_default();
                for (ri, rule) in rules.iter().enumerate() {
                    let rc = &self.rule_classes[pi].egress[ri];
                    self.egress_rule_reach(
                        rule,
                        rc,
                        port,
                        protocol,
                        &mut allowed,
                        &mut named_classes,
                    );
                }
            }
            egress.push(Some(allowed));
        }
        Reach { ingress, egress }
    }

    /// Adds to `allowed` the destination classes `rule` allows on `port`/`protocol`. Named ports
    /// resolve on each destination class, and only for selector peers (never for ipBlocks).
    fn egress_rule_reach(
        &self,
        rule: &Rule,
        rc: &RuleClasses,
        port: u16,
        protocol: Protocol,
        allowed: &mut BitSet<Class>,
        named_classes: &mut impl FnMut(&str) -> BitSet<Class>,
    ) {
        let n = self.classes.list.len();
        let peers_all = |allowed: &mut BitSet<Class>| {
            if rc.any {
                *allowed = BitSet::full(n);
            } else {
                allowed.union_with(&rc.selected);
                allowed.union_with(&rc.blocked);
            }
        };
        let Some(specs) = &rule.ports else {
            return peers_all(allowed);
        };
        for s in specs {
            match s.name() {
                None => {
                    if s.matches(port, protocol, None) {
                        return peers_all(allowed);
                    }
                }
                Some(name) if s.protocol == protocol => {
                    let mut set = named_classes(name);
                    if !rc.any {
                        set.intersect_with(&rc.selected);
                    }
                    allowed.union_with(&set);
                }
                Some(_) => {}
            }
        }
    }
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

//! The policy engine: compiles a [`ClusterState`] once, then answers reachability per probe (on
//! endpoint classes, for matrices and the dataplane) and verdicts with reasons per flow.

use crate::bitset::BitSet;
use crate::classes::Classes;
use crate::policy::{CompiledPolicy, Compiler, Direction, IpBlock, NamespaceScope, Peer, Rule};
use crate::selector::{Interner, LabelSet, Selector};
use foldhash::{HashMap, HashMapExt};
use palisade_model::{ClusterState, PolicyInfo, Protocol};
use std::sync::Arc;

/// The classes a rule's peers match, computed once per engine.
#[derive(Clone, Debug)]
pub(crate) struct RuleClasses {
    /// `from`/`to` missing or empty: every endpoint.
    pub any: bool,
    /// Classes matched by a selector peer.
    pub selected: BitSet,
    /// Classes matched by an ipBlock peer (through their pods' IPs).
    pub blocked: BitSet,
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
    pub(crate) namespace_labels: Vec<LabelSet>,
    /// Shared with the engines compiled from this one while unchanged ([`Engine::new_from`]).
    pub(crate) policies: Arc<[Arc<CompiledPolicy>]>,
    pub(crate) blocks: Vec<IpBlock>,
    pub(crate) classes: Classes,
    /// Class → policies (indexes into `policies`) that select it and govern ingress / egress.
    pub(crate) selecting: [Vec<Vec<usize>>; 2],
    /// Policy → direction → rule → peer classes.
    pub(crate) rule_classes: Vec<[Vec<RuleClasses>; 2]>,
}

/// How an engine compiled from another ([`Engine::new_from`]) relates to it.
#[derive(Clone, Debug)]
pub(crate) struct Derived {
    /// The other engine's id.
    pub from: u64,
    /// Each class's counterpart there: the class with the same key.
    pub classes: Vec<Option<usize>>,
    /// Each policy's counterpart there: the same policy (identity and content), compiled once.
    pub policies: Vec<Option<usize>>,
    /// The namespaces whose labels changed (indexes into `ClusterState::namespaces`, the same in
    /// both): what namespace selectors match there may have.
    pub relabelled: Vec<usize>,
}

/// The policies of a state compiled from an engine's ([`Engine::new_from`]).
struct Recompiled {
    policies: Arc<[Arc<CompiledPolicy>]>,
    /// Each policy's counterpart in the engine compiled from.
    counterparts: Vec<Option<usize>>,
}

pub(crate) fn dir_index(d: Direction) -> usize {
    match d {
        Direction::Ingress => 0,
        Direction::Egress => 1,
    }
}

impl Engine {
    /// Compiles `state`. Cost grows with classes × selectors, not pods × policies.
    pub fn new(state: Arc<ClusterState>) -> Engine {
        let mut interner = Interner::default();
        let namespace_labels: Vec<LabelSet> = state
            .namespaces
            .iter()
            .map(|n| interner.labels(&n.labels))
            .collect();
        let pod_labels: Vec<LabelSet> = state
            .pods
            .iter()
            .map(|p| interner.labels(&p.labels))
            .collect();
        let ns_idx = |name: &str| state.namespace_idx(name);
        let mut compiler = Compiler {
            interner: &mut interner,
            blocks: Vec::new(),
            namespace_idx: &ns_idx,
        };
        let policies: Arc<[Arc<CompiledPolicy>]> = (state.policies.iter())
            .filter_map(|p| compiler.policy(p).map(Arc::new))
            .collect();
        let blocks = compiler.blocks;
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
    pub fn counterparts(&self, previous: &Engine) -> Option<&[Option<usize>]> {
        self.derived_from(previous).map(|d| &d.classes[..])
    }

    pub(crate) fn derived_from(&self, previous: &Engine) -> Option<&Derived> {
        self.derived.as_ref().filter(|d| d.from == previous.id)
    }

    /// Compiles `state` like [`Engine::new`], with the same result, reusing the work of `previous`
    /// (an engine of an earlier state) when both have the same namespaces (labels may differ) and
    /// their policies the same ipBlocks — as after pods were added, removed or relabelled, or
    /// policies added, edited or deleted that bring no new ipBlock: the policies that did not
    /// change are not compiled again, and the pods that did not change keep their classes.
    /// Otherwise it is [`Engine::new`].
    pub fn new_from(previous: &Engine, state: Arc<ClusterState>) -> Engine {
        let old = previous.state();
        let same_names = old.namespaces.len() == state.namespaces.len()
            && (old.namespaces.iter().zip(&state.namespaces)).all(|(a, b)| a.name == b.name);
        if !same_names {
            return Engine::new(state);
        }
        let mut interner = previous.interner.clone();
        let Some(Recompiled {
            policies,
            counterparts,
        }) = previous.policies_for(&state, &mut interner)
        else {
            return Engine::new(state);
        };
        let blocks = previous.blocks.clone();
        let relabelled: Vec<usize> = (old.namespaces.iter().zip(&state.namespaces))
            .enumerate()
            .filter(|(_, (a, b))| a.labels != b.labels)
            .map(|(i, _)| i)
            .collect();
        let namespace_labels = if !relabelled.is_empty() {
            (state.namespaces.iter())
                .map(|n| interner.labels(&n.labels))
                .collect()
        } else {
            previous.namespace_labels.clone()
        };
        let (classes, class_counterparts) =
            Classes::rebuild(&previous.classes, old, &state, &mut interner, &blocks);
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
    /// and content) taken from it, the others compiled with `interner`; with each one's counterpart
    /// here. `None` when their ipBlocks differ from this engine's (they partition the pods into
    /// classes: the classes would have to be made afresh).
    fn policies_for(&self, state: &ClusterState, interner: &mut Interner) -> Option<Recompiled> {
        let was: HashMap<(&str, &str), &PolicyInfo> = (self.state().policies.iter())
            .map(|p| ((&*p.namespace, &*p.name), p))
            .collect();
        let by_key: HashMap<(&str, &str), usize> = (self.policies.iter())
            .enumerate()
            .map(|(i, p)| ((p.key.namespace().unwrap_or_default(), p.key.name()), i))
            .collect();
        let ns_idx = |name: &str| state.namespace_idx(name);
        let mut compiler = Compiler {
            interner,
            blocks: self.blocks.clone(),
            namespace_idx: &ns_idx,
        };
        let mut counterparts = Vec::with_capacity(state.policies.len());
        let mut policies = Vec::with_capacity(state.policies.len());
        for info in &state.policies {
            let key = (&*info.namespace, &*info.name);
            let unchanged = was.get(&key).is_some_and(|was| {
                Arc::ptr_eq(&was.policy, &info.policy) || was.policy == info.policy
            });
            let same = by_key.get(&key).copied().filter(|_| unchanged);
            let compiled = match same {
                Some(o) => Some(self.policies[o].clone()),
                None => compiler.policy(info).map(Arc::new),
            };
            if let Some(compiled) = compiled {
                policies.push(compiled);
                counterparts.push(same);
            }
        }
        let blocks = compiler.blocks;
        let mut used = vec![false; blocks.len()];
        for rule in policies
            .iter()
            .flat_map(|p| p.ingress.iter().chain(&p.egress).flatten())
        {
            for peer in rule.peers.iter().flatten() {
                if let Peer::Block { id, .. } = peer {
                    used[*id] = true;
                }
            }
        }
        let same_blocks = blocks.len() == self.blocks.len() && used.iter().all(|&u| u);
        same_blocks.then(|| Recompiled {
            policies: policies.into(),
            counterparts,
        })
    }

    fn assemble(
        state: Arc<ClusterState>,
        interner: Interner,
        namespace_labels: Vec<LabelSet>,
        policies: Arc<[Arc<CompiledPolicy>]>,
        blocks: Vec<IpBlock>,
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
            selecting: [Vec::new(), Vec::new()],
            rule_classes: Vec::new(),
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

    /// The class of pod `pod` (index into `ClusterState::pods`).
    pub fn class_of(&self, pod: usize) -> usize {
        self.classes.of_pod[pod]
    }

    /// The namespace (index into `ClusterState::namespaces`) of class `class`'s pods.
    pub fn class_namespace(&self, class: usize) -> usize {
        self.classes.list[class].namespace
    }

    /// The engine this one was compiled from (its id) and each class's counterpart there.
    pub(crate) fn derived_classes(&self) -> Option<(u64, Vec<Option<usize>>)> {
        self.derived.as_ref().map(|d| (d.from, d.classes.clone()))
    }

    /// The member pods of class `class`.
    pub fn class_pods(&self, class: usize) -> &[usize] {
        &self.classes.list[class].pods
    }

    /// Number of distinct ipBlocks across all policies.
    pub fn block_count(&self) -> usize {
        self.blocks.len()
    }

    fn select(&mut self) {
        let n = self.classes.list.len();
        let mut selecting = [vec![Vec::new(); n], vec![Vec::new(); n]];
        for (pi, p) in self.policies.iter().enumerate() {
            for &ci in &self.classes.by_namespace[p.namespace] {
                let class = &self.classes.list[ci];
                if class.host_network || !p.pod_selector.matches(&class.labels) {
                    continue;
                }
                if p.ingress.is_some() {
                    selecting[0][ci].push(pi);
                }
                if p.egress.is_some() {
                    selecting[1][ci].push(pi);
                }
            }
        }
        self.selecting = selecting;
    }

    /// Policies (indexes into the engine's policy list) selecting class `class` for `direction`.
    pub(crate) fn selecting(&self, class: usize, direction: Direction) -> &[usize] {
        &self.selecting[dir_index(direction)][class]
    }

    fn compute_rule_classes(&self) -> Vec<[Vec<RuleClasses>; 2]> {
        let n = self.classes.list.len();
        let mut ns_cache: HashMap<&Selector, BitSet> = HashMap::new();
        let mut peer_cache: HashMap<&Peer, BitSet> = HashMap::new();
        let mut out = Vec::with_capacity(self.policies.len());
        for p in self.policies.iter() {
            let mut per_dir = [Vec::new(), Vec::new()];
            for (d, rules) in [(0, &p.ingress), (1, &p.egress)] {
                for rule in rules.iter().flatten() {
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
                    per_dir[d].push(rc);
                }
            }
            out.push(per_dir);
        }
        out
    }

    fn peer_classes<'a>(
        &'a self,
        peer: &'a Peer,
        ns_cache: &mut HashMap<&'a Selector, BitSet>,
    ) -> BitSet {
        let n = self.classes.list.len();
        let mut set = BitSet::new(n);
        match peer {
            Peer::Block { id, .. } => {
                for (ci, c) in self.classes.list.iter().enumerate() {
                    if c.blocks.contains(*id) {
                        set.insert(ci);
                    }
                }
            }
            Peer::Pods { namespaces, pods } => {
                let mut add_namespace = |ns: usize| {
                    for &ci in &self.classes.by_namespace[ns] {
                        let c = &self.classes.list[ci];
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
                            for (i, l) in self.namespace_labels.iter().enumerate() {
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
        let mut named_cache: HashMap<String, BitSet> = HashMap::new();
        let mut named_classes = |name: &str| -> BitSet {
            named_cache
                .entry(name.to_string())
                .or_insert_with(|| {
                    let mut s = BitSet::new(n);
                    for (ci, c) in self.classes.list.iter().enumerate() {
                        if c.named_port(name, protocol) == Some(port) {
                            s.insert(ci);
                        }
                    }
                    s
                })
                .clone()
        };
        let mut ingress = Vec::with_capacity(n);
        for (ci, class) in self.classes.list.iter().enumerate() {
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
                        let rc = &self.rule_classes[pi][0][ri];
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
        let mut egress = Vec::with_capacity(n);
        for ci in 0..n {
            let selecting = self.selecting(ci, Direction::Egress);
            if selecting.is_empty() {
                egress.push(None);
                continue;
            }
            let mut allowed = BitSet::new(n);
            for &pi in selecting {
                let rules = self.policies[pi].egress.as_deref().unwrap_or_default();
                for (ri, rule) in rules.iter().enumerate() {
                    let rc = &self.rule_classes[pi][1][ri];
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
        allowed: &mut BitSet,
        named_classes: &mut impl FnMut(&str) -> BitSet,
    ) {
        let n = self.classes.list.len();
        let peers_all = |allowed: &mut BitSet| {
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
    ingress: Vec<Option<BitSet>>,
    egress: Vec<Option<BitSet>>,
}

impl Reach {
    /// True if a pod of class `src` may open a connection to a pod of class `dst` (different pods).
    #[inline]
    pub fn allowed(&self, src: usize, dst: usize) -> bool {
        self.egress[src].as_ref().is_none_or(|s| s.contains(dst))
            && self.ingress[dst].as_ref().is_none_or(|s| s.contains(src))
    }

    /// True if class `class` is isolated for `direction`.
    pub fn isolated(&self, class: usize, direction: Direction) -> bool {
        match direction {
            Direction::Ingress => self.ingress[class].is_some(),
            Direction::Egress => self.egress[class].is_some(),
        }
    }
}

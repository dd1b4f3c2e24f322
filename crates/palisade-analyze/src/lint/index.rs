//! What the rules ask of the cluster, on the engine's endpoint classes: which classes each policy
//! selects and which policies select each class (from [`Engine::policies_selecting`]), and which
//! classes a selector or a Service matches. A class's first pod stands for all of its pods: they
//! share namespace, labels and named ports.

use super::Input;
use palisade_model::selector::SelectorSpec;
use palisade_model::{
    ClusterState, IdVec, NamespaceId, NamespaceInfo, PodInfo, PolicyRule, PolicySpec, ServiceInfo,
    ValidPolicy,
};
use palisade_policy::ClassRules;
use palisade_policy::{BitSet, Class, ClassId, Direction, Engine, PerDirection};
use std::cell::{OnceCell, RefCell};
use std::collections::HashMap;
use std::sync::Arc;

/// The engine's answers, arranged for the rules.
pub(super) struct Index<'a> {
    /// The engine.
    pub engine: &'a Engine,
    /// Its cluster.
    pub state: &'a ClusterState,
    /// Where the cluster was read from.
    pub input: Input,
    /// Each namespace's classes that selectors can match (not `hostNetwork`).
    pub by_namespace: IdVec<NamespaceInfo, Vec<ClassId>>,
    /// Per policy (in the state's order) and direction, the classes it selects.
    pub selected: Vec<PerDirection<Vec<ClassId>>>,
    /// Per class and direction, the policies (state order) that select it.
    pub selecting: IdVec<Class, PerDirection<Vec<usize>>>,
    /// What the dataplane enforces per class, compiled when a rule first asks.
    class_rules: OnceCell<IdVec<Class, Arc<ClassRules>>>,
    /// Selector peers already matched, by what they are written as (policies repeat them).
    peers: RefCell<HashMap<String, BitSet<Class>>>,
    /// Namespace selectors already matched, likewise.
    namespaces: RefCell<HashMap<String, Vec<NamespaceId>>>,
}

impl<'a> Index<'a> {
    /// Arranges `engine`'s answers: one pass over its classes.
    pub fn new(engine: &'a Engine, input: Input) -> Index<'a> {
        let state = engine.state();
        let position: HashMap<*const ValidPolicy, usize> = (state.policies.iter().enumerate())
            .map(|(i, p)| (Arc::as_ptr(&p.policy), i))
            .collect();
        let mut by_namespace: IdVec<NamespaceInfo, Vec<ClassId>> =
            state.namespaces.iter().map(|_| Vec::new()).collect();
        let mut selected = vec![PerDirection::<Vec<ClassId>>::default(); state.policies.len()];
        let mut selecting = IdVec::with_capacity(engine.class_count());
        for class in engine.class_ids() {
            let pod = &state.pods[engine.class_pods(class)[0]];
            if !pod.host_network {
                by_namespace[engine.class_namespace(class)].push(class);
            }
            let mut mine = PerDirection::<Vec<usize>>::default();
            for policy in engine.policies_selecting(class) {
                let Some(&i) = position.get(&(policy as *const ValidPolicy)) else {
                    continue; // not one of the state's: cannot happen, and never a panic
                };
                for direction in governs(policy.spec()) {
                    mine[direction].push(i);
                    selected[i][direction].push(class);
                }
            }
            selecting.push(mine);
        }
        Index {
            engine,
            state,
            input,
            by_namespace,
            selected,
            selecting,
            class_rules: OnceCell::new(),
            peers: RefCell::default(),
            namespaces: RefCell::default(),
        }
    }

    /// What the dataplane enforces for `class` (the engine's compiled rules).
    pub fn class_rules(&self, class: ClassId) -> &ClassRules {
        &self
            .class_rules
            .get_or_init(|| self.engine.compile_classes(None))[class]
    }

    /// The pod standing for `class`.
    pub fn pod(&self, class: ClassId) -> &'a PodInfo {
        &self.state.pods[self.engine.class_pods(class)[0]]
    }

    /// How many pods `class` has.
    pub fn pod_count(&self, class: ClassId) -> usize {
        self.engine.class_pods(class).len()
    }

    /// Pods in `classes`.
    pub fn pods_in(&self, classes: impl IntoIterator<Item = ClassId>) -> usize {
        classes.into_iter().map(|c| self.pod_count(c)).sum()
    }

    /// `ns/name` of a few pods of `classes`, for messages.
    pub fn examples(&self, classes: &[ClassId]) -> String {
        let names = (classes.iter())
            .flat_map(|&c| self.engine.class_pods(c))
            .map(|&p| self.state.pods[p].key().to_string());
        super::some_of(names, 3)
    }

    /// An empty class set.
    pub fn no_classes(&self) -> BitSet<Class> {
        BitSet::new(self.engine.class_count())
    }

    /// Every class selectors can match.
    pub fn selectable(&self) -> BitSet<Class> {
        let mut set = self.no_classes();
        for c in self.by_namespace.iter().flatten() {
            set.insert(*c);
        }
        set
    }

    /// The namespaces `sel` matches (the engine's matching).
    pub fn namespaces_matching(&self, sel: &SelectorSpec) -> Vec<NamespaceId> {
        let key = super::selector_text(sel);
        if let Some(found) = self.namespaces.borrow().get(&key) {
            return found.clone();
        }
        let found: Vec<NamespaceId> = self.engine.namespaces_matching(sel).iter().collect();
        self.namespaces.borrow_mut().insert(key, found.clone());
        found
    }

    /// The classes a selector peer matches: pods matching `pods` in the namespaces `namespaces`
    /// selects, or in `own` without it (the engine's matching).
    pub fn peer_classes(
        &self,
        own: NamespaceId,
        namespaces: Option<&SelectorSpec>,
        pods: &SelectorSpec,
    ) -> BitSet<Class> {
        let key = match namespaces {
            Some(sel) => format!(
                "{} {}",
                super::selector_text(sel),
                super::selector_text(pods)
            ),
            None => format!("{} {}", own.index(), super::selector_text(pods)),
        };
        if let Some(found) = self.peers.borrow().get(&key) {
            return found.clone();
        }
        let set = (self.engine).peer_classes_matching(own, namespaces, pods);
        self.peers.borrow_mut().insert(key, set.clone());
        set
    }

    /// The namespace of policy `policy`.
    pub fn policy_namespace(&self, policy: usize) -> NamespaceId {
        let ns = &self.state.policies[policy].namespace;
        (self.state.namespace_id(ns)).expect("every policy's namespace is in the state")
    }

    /// The classes rule `rule` of policy `policy` lets traffic reach: for ingress those the policy
    /// selects; for egress those its selector peers match (all, without peers). ipBlock peers are
    /// left out: named ports never resolve through them.
    pub fn destinations(
        &self,
        policy: usize,
        direction: Direction,
        rule: &PolicyRule,
    ) -> BitSet<Class> {
        match direction {
            Direction::Ingress => {
                let mut set = self.no_classes();
                for &c in &self.selected[policy].ingress {
                    set.insert(c);
                }
                set
            }
            Direction::Egress => match &rule.peers {
                None => self.selectable(),
                Some(peers) => {
                    let own = self.policy_namespace(policy);
                    let mut set = self.no_classes();
                    for peer in peers {
                        if let palisade_model::PolicyPeer::Pods { namespaces, pods } = peer {
                            set.union_with(&self.peer_classes(own, namespaces.as_ref(), pods));
                        }
                    }
                    set
                }
            },
        }
    }

    /// The classes whose pods `service` selects (none for a Service without a selector).
    pub fn service_classes(&self, service: &ServiceInfo) -> Vec<ClassId> {
        let Some(ns) = self.state.namespace_id(&service.namespace) else {
            return Vec::new();
        };
        (self.by_namespace[ns].iter().copied())
            .filter(|&c| service_selects(service, self.pod(c)))
            .collect()
    }
}

/// True if `service` sends traffic to `pod`: a pod of its namespace whose labels its selector (not
/// empty: a Service without one has no pods) matches.
pub(crate) fn service_selects(service: &ServiceInfo, pod: &PodInfo) -> bool {
    let selector = service.selector.as_ref().filter(|s| !s.is_empty());
    pod.namespace == service.namespace
        && selector.is_some_and(|sel| sel.iter().all(|(k, v)| pod.labels.get(k) == Some(v)))
}

/// The directions `spec` governs.
pub(super) fn governs(spec: &PolicySpec) -> impl Iterator<Item = Direction> + '_ {
    Direction::BOTH.into_iter().filter(|&d| match d {
        Direction::Ingress => spec.ingress.is_some(),
        Direction::Egress => spec.egress.is_some(),
    })
}

/// Every rule of `spec`, with its direction and index.
pub(super) fn rules(spec: &PolicySpec) -> impl Iterator<Item = (Direction, usize, &PolicyRule)> {
    let ingress = spec.ingress.iter().flatten().enumerate();
    let egress = spec.egress.iter().flatten().enumerate();
    (ingress.map(|(i, r)| (Direction::Ingress, i, r)))
        .chain(egress.map(|(i, r)| (Direction::Egress, i, r)))
}

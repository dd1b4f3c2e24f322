//! `palisade diff`: the connectivity a change adds and removes between two clusters (before and
//! after), pod pairs decided end to end (egress and ingress together, as the matrix decides them),
//! grouped by workload, with the ports and the policies that made the difference.
//!
//! Computed on the engines' classes, never pod pair by pod pair: pods present on both sides are
//! grouped into *joint classes* (same class before, same class after, same facts), and only pairs
//! with a joint class whose answer may have changed are asked — one whose pods changed (labels,
//! ports, addresses, namespace labels) or whose selecting policies differ. Every other pair is
//! decided by unchanged policies on unchanged keys, so its answer cannot differ. Ports are asked
//! per *port class*: the ports that no rule's list of ports (`port`, `endPort`) and no named
//! container port tells apart, each decided alike by both engines (ICMP is not compared). The
//! work is bounded ([`MAX_WORK`]): past it, an error before the work, never minutes of it.

mod output;

pub use output::{ports_text, to_json, to_markdown, to_text, unlisted, why_text};

use crate::matrix::Scope;
use foldhash::{HashMap, HashMapExt, HashSet};
use palisade_model::{ClusterState, PodId, PodInfo, PortMatch, Protocol, TierAction, TierPort};
pub use palisade_policy::PortRange;
use palisade_policy::{ClassId, Decision, Endpoint, Engine, Flow, Side};
use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::rc::Rc;

/// At most so many changed (joint class, joint class) pairs are held: beyond, the answer would be
/// unreadable anyway (narrow it with `-n`), and memory stays bounded.
pub const MAX_CHANGED_CLASS_PAIRS: usize = 1_000_000;

/// Whether a group's connections are allowed after the change and were not, or the reverse.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Change {
    /// Denied before, allowed after.
    Added,
    /// Allowed before, denied after.
    Removed,
}

impl Change {
    /// `added` or `removed`.
    pub fn as_str(self) -> &'static str {
        match self {
            Change::Added => "added",
            Change::Removed => "removed",
        }
    }
}

/// Why one direction decided as it did, for one side of the change.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum DirectionWhy {
    /// Policy does not apply: a pod and its node, a hostNetwork pod.
    Unenforced,
    /// No policy selects the pod for this direction.
    Open,
    /// Isolated; these policies allow (`ns/name`).
    AllowedBy(Vec<String>),
    /// Isolated by these policies, none of which allows.
    DeniedBy(Vec<String>),
}

/// Why a connection was decided as it was on one side: the egress of the source, the ingress of
/// the destination (for a representative pod pair; alike on every port of its group).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Why {
    /// The source's egress.
    pub egress: DirectionWhy,
    /// The destination's ingress.
    pub ingress: DirectionWhy,
}

impl Why {
    /// True unless a direction denies.
    pub fn allowed(&self) -> bool {
        ![&self.egress, &self.ingress]
            .iter()
            .any(|w| matches!(w, DirectionWhy::DeniedBy(_)))
    }
}

/// Pods of one workload (its owner; a pod without one stands alone).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Workload {
    /// Namespace.
    pub namespace: String,
    /// The owner's kind (`ReplicaSet`, `StatefulSet`…), `None` for a pod without owner.
    pub kind: Option<String>,
    /// The owner's name, or the pod's.
    pub name: String,
}

impl Workload {
    /// The workload of `pod`.
    pub fn of(pod: &PodInfo) -> Workload {
        let (kind, name) = match &pod.owner {
            Some(o) => (Some(o.kind.clone()), o.name.clone()),
            None => (None, pod.name.clone()),
        };
        Workload {
            namespace: pod.namespace.clone(),
            kind,
            name,
        }
    }
}

/// Connections between the pods of two workloads that a change adds or removes, alike for every
/// pod pair: each of `from_pods` to each of `to_pods` (a pod never counts with itself).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Group {
    /// Added or removed.
    pub change: Change,
    /// The sources' workload.
    pub from: Workload,
    /// The sources, `ns/name`, sorted.
    pub from_pods: Vec<String>,
    /// The destinations' workload.
    pub to: Workload,
    /// The destinations, `ns/name`, sorted.
    pub to_pods: Vec<String>,
    /// The ports and protocols concerned, sorted, adjacent ranges merged.
    pub ports: Vec<PortRange>,
    /// How many pod pairs.
    pub pairs: usize,
    /// Why it was decided so before the change.
    pub before: Why,
    /// Why it is decided so after.
    pub after: Why,
}

/// The difference between two clusters.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Report {
    /// Pods only after the change (`ns/name`).
    pub added_pods: Vec<String>,
    /// Pods only before the change.
    pub removed_pods: Vec<String>,
    /// Connectivity changes, added first, then by source and destination workload.
    pub groups: Vec<Group>,
}

impl Report {
    /// True if connectivity between pods present on both sides changed.
    pub fn connectivity_changed(&self) -> bool {
        !self.groups.is_empty()
    }

    /// Groups and pod pairs of one kind of change.
    pub fn count(&self, change: Change) -> (usize, usize) {
        (self.groups.iter().filter(|g| g.change == change))
            .fold((0, 0), |(g, p), group| (g + 1, p + group.pairs))
    }
}

/// The most work one diff may do, in steps: a step is one pair of pod classes asked for one port
/// class, one bit-set word of an engine's reachability for one port class (classes² / 64 per
/// engine), or one list of policy ports holding one segment of ports while port classes are made.
/// A step takes about 5 ns on the project machine (`BENCHMARKS.md`), so the bound refuses, before
/// starting, a diff that would run for more than about 10 s, rather than let it run for minutes.
pub const MAX_WORK: u64 = 2_000_000_000;

/// Why the difference could not be computed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DiffError {
    /// More changed class pairs than [`MAX_CHANGED_CLASS_PAIRS`]: connectivity did change, too
    /// widely to group and show.
    TooManyChanges,
    /// The comparison would take more than [`MAX_WORK`] steps; what would have taken them.
    TooMuchWork(String),
}

impl std::fmt::Display for DiffError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DiffError::TooManyChanges => write!(
                f,
                "connectivity changed between more than {MAX_CHANGED_CLASS_PAIRS} pairs of pod \
                 classes: too many to group and show; compare fewer namespaces at a time (-n NS)"
            ),
            DiffError::TooMuchWork(what) => write!(
                f,
                "the comparison would take more than its bound of {MAX_WORK} steps ({what}), \
                 so it was not made; comparing fewer namespaces at a time (-n NS) asks fewer \
                 pairs of pod classes, but as many port classes (the policies' distinct lists of \
                 ports)"
            ),
        }
    }
}

/// What is left of [`MAX_WORK`].
struct Budget {
    left: u64,
}

impl Budget {
    fn new() -> Budget {
        Budget { left: MAX_WORK }
    }

    /// Takes `steps`, or fails saying `what` would have taken them.
    fn spend(&mut self, steps: u64, what: impl FnOnce() -> String) -> Result<(), DiffError> {
        self.left = (self.left.checked_sub(steps)).ok_or_else(|| DiffError::TooMuchWork(what()))?;
        Ok(())
    }
}

/// Pods present on both sides with the same class on each side and the same facts.
struct Joint {
    before: ClassId,
    after: ClassId,
    /// Its answers may differ: its pods changed, or the policies selecting them did.
    dirty: bool,
    in_scope: bool,
    /// (before, after) ids of its pods, in state order.
    pods: Vec<(PodId, PodId)>,
}

/// The connectivity `after` adds and removes relative to `before`, for pairs with an end in
/// `scope`, within [`MAX_WORK`].
pub fn diff(before: &Engine, after: &Engine, scope: &Scope) -> Result<Report, DiffError> {
    diff_within(before, after, scope, Budget::new())
}

/// [`diff`] within `budget`.
fn diff_within(
    before: &Engine,
    after: &Engine,
    scope: &Scope,
    mut budget: Budget,
) -> Result<Report, DiffError> {
    let (b, a) = (before.state(), after.state());
    let in_scope = |pod: &PodInfo| match scope {
        Scope::All => true,
        Scope::Namespaces(nss) => nss.contains(&pod.namespace),
    };
    let mut report = Report::default();
    for (state, other, out) in [
        (a, b, &mut report.added_pods),
        (b, a, &mut report.removed_pods),
    ] {
        out.extend(
            (state.pods.iter())
                .filter(|p| in_scope(p) && other.pod_id(&p.namespace, &p.name).is_none())
                .map(|p| p.key().to_string()),
        );
    }
    let local = NodeLocal::of(before, after);
    let joints = joint_classes(before, after, &local, &in_scope);
    let ports = port_classes([b, a], &mut budget)?;
    let changed = changed_pairs(before, after, &joints, &local, &ports, &mut budget)?;
    report.groups = group([before, after], &joints, &ports, changed);
    Ok(report)
}

/// Pod pairs always allowed whatever the policies — a pod and a hostNetwork pod on its node —
/// on each side, by the pods' ids before. Their pods get joint classes of their own, so that a
/// pair of them is one pod pair, asked as such.
struct NodeLocal {
    before: HashSet<(PodId, PodId)>,
    after: HashSet<(PodId, PodId)>,
    pods: HashSet<PodId>,
}

impl NodeLocal {
    fn of(before: &Engine, after: &Engine) -> NodeLocal {
        let (b, a) = (before.state(), after.state());
        let before_id = |pa: PodId| b.pod_id(&a.pods[pa].namespace, &a.pods[pa].name);
        let before: HashSet<_> = node_local_pairs(before).collect();
        let after: HashSet<_> = (node_local_pairs(after))
            .filter_map(|(s, d)| Some((before_id(s)?, before_id(d)?)))
            .collect();
        let pods = (before.iter().chain(&after))
            .flat_map(|&(s, d)| [s, d])
            .collect();
        NodeLocal {
            before,
            after,
            pods,
        }
    }
}

/// Both orders of every pair `engine` always allows: pods whose node address (`hostIP`) is a
/// hostNetwork pod's.
fn node_local_pairs(engine: &Engine) -> impl Iterator<Item = (PodId, PodId)> + '_ {
    let state = engine.state();
    let mut by_node: HashMap<IpAddr, Vec<PodId>> = HashMap::new();
    for (i, pod) in state
        .pods
        .iter_enumerated()
        .filter(|(_, p)| !p.host_network)
    {
        if let Some(node) = pod.host_ip {
            by_node.entry(node).or_default().push(i);
        }
    }
    (state.pods.iter_enumerated())
        .filter(|(_, p)| p.host_network)
        .flat_map(move |(h, host)| {
            let pods = host.ip.and_then(|ip| by_node.get(&ip)).cloned();
            pods.into_iter().flatten().map(move |p| (p, h))
        })
        .filter(|&(p, h)| engine.always_allowed(p, h))
        .flat_map(|(p, h)| [(p, h), (h, p)])
}

/// The facts of a pod that its class, and the classes of selectors and ipBlocks, depend on.
fn same_facts(b: &ClusterState, pb: &PodInfo, a: &ClusterState, pa: &PodInfo) -> bool {
    let ns_labels =
        |s: &ClusterState, p: &PodInfo| s.namespace(&p.namespace).map(|n| n.labels.clone());
    pb.labels == pa.labels
        && pb.ip == pa.ip
        && pb.host_network == pa.host_network
        && pb.host_ip == pa.host_ip
        && pb.ports == pa.ports
        && ns_labels(b, pb) == ns_labels(a, pa)
}

/// The joint classes of the pods present on both sides.
fn joint_classes(
    before: &Engine,
    after: &Engine,
    local: &NodeLocal,
    in_scope: &impl Fn(&PodInfo) -> bool,
) -> Vec<Joint> {
    let (b, a) = (before.state(), after.state());
    let mut index: HashMap<(ClassId, ClassId, bool, Option<PodId>), usize> = HashMap::new();
    let mut joints: Vec<Joint> = Vec::new();
    for (pb, pod) in b.pods.iter_enumerated() {
        let Some(pa) = a.pod_id(&pod.namespace, &pod.name) else {
            continue;
        };
        let same = same_facts(b, pod, a, &a.pods[pa]);
        let alone = local.pods.contains(&pb).then_some(pb);
        let key = (before.class_of(pb), after.class_of(pa), same, alone);
        let j = *index.entry(key).or_insert_with(|| {
            joints.push(Joint {
                before: key.0,
                after: key.1,
                dirty: !same,
                in_scope: in_scope(pod),
                pods: Vec::new(),
            });
            joints.len() - 1
        });
        joints[j].pods.push((pb, pa));
    }
    for joint in joints.iter_mut().filter(|j| !j.dirty) {
        joint.dirty = selecting(before, joint.before) != selecting(after, joint.after);
    }
    joints
}

/// The policies selecting `class` (either direction), by name and spec: NetworkPolicies, then
/// the cluster-wide policies whose subject holds it.
fn selecting(engine: &Engine, class: ClassId) -> Selecting<'_> {
    let policies = (engine.policies_selecting(class).into_iter())
        .map(|p| (p.namespaced_name(), p.spec()))
        .collect();
    let tiers = (engine.tier_policies_selecting(class).into_iter())
        .map(|p| (p.kind(), p.name(), p.spec()))
        .collect();
    (policies, tiers)
}

/// What [`selecting`] gives.
type Selecting<'a> = (
    Vec<(String, &'a palisade_model::PolicySpec)>,
    Vec<(
        palisade_model::Kind,
        &'a str,
        &'a palisade_model::TierPolicySpec,
    )>,
);

/// Port ranges decided alike by both engines, asked once through `probe` (its first port).
struct PortClass {
    probe: PortRange,
    ranges: Vec<PortRange>,
}

/// The port classes of both sides. A rule's ports match a port through their numbers (`port`,
/// `endPort`) or through a name that resolves to it on a pod; so, per ported protocol, two ports
/// are decided alike by every rule when the same rules' numbered ports hold both and neither is
/// the number of a container port whose name a policy names (each such number is a class of its
/// own). Rules are counted by their list of numbered ports: rules listing the same ports match the
/// same ports, and a rule listing 2,000 single ports makes one class of them, not 2,000; a
/// policy's rules of one direction with the same peers count as one rule, listing all their ports.
fn port_classes(
    states: [&ClusterState; 2],
    budget: &mut Budget,
) -> Result<Vec<PortClass>, DiffError> {
    // Each distinct list of numbered ports (sorted), and the port names policies use.
    let mut lists: BTreeSet<Vec<(Protocol, u16, u16)>> = BTreeSet::new();
    let mut names: BTreeSet<(Protocol, &str)> = BTreeSet::new();
    for policy in states.iter().flat_map(|s| s.policies.iter()) {
        let spec = policy.policy.spec();
        for rules in [&spec.ingress, &spec.egress].into_iter().flatten() {
            // A direction's rules with the same peers (as written) allow them the union of their
            // ports: one list (one rule per port is common).
            let mut by_peers: HashMap<String, Vec<(Protocol, u16, u16)>> = HashMap::new();
            for rule in rules {
                let list = by_peers.entry(format!("{:?}", rule.peers)).or_default();
                for port in rule.ports.iter().flatten() {
                    match &port.port {
                        PortMatch::Range(first, last) => list.push((port.protocol, *first, *last)),
                        PortMatch::Named(name) => {
                            names.insert((port.protocol, name));
                        }
                        PortMatch::Any => {}
                    }
                }
            }
            for mut list in by_peers.into_values().filter(|l| !l.is_empty()) {
                list.sort_unstable();
                lists.insert(list);
            }
        }
    }
    // A cluster-wide rule decides first-match: each rule's list on its own.
    for policy in states.iter().flat_map(|s| s.tier_policies.iter()) {
        let spec = policy.policy.spec();
        for rule in spec.ingress.iter().chain(&spec.egress) {
            let mut list = Vec::new();
            for port in rule.ports.iter().flatten() {
                match port {
                    TierPort::Range {
                        protocol,
                        first,
                        last,
                    } => list.push((*protocol, *first, *last)),
                    TierPort::Named(name) => {
                        names.extend(Protocol::PORTED.map(|protocol| (protocol, name.as_str())));
                    }
                    TierPort::Unknown => {}
                }
            }
            if !list.is_empty() {
                list.sort_unstable();
                lists.insert(list);
            }
        }
    }
    let named: BTreeSet<(Protocol, u16)> = (states.iter().flat_map(|s| s.pods.iter()))
        .flat_map(|p| p.ports.iter())
        .filter(|c| (c.name.as_deref()).is_some_and(|n| names.contains(&(c.protocol, n))))
        .map(|c| (c.protocol, c.port))
        .collect();
    let mut classes: Vec<PortClass> = Vec::new();
    let mut index: HashMap<(Protocol, Vec<usize>, Option<u16>), usize> = HashMap::new();
    for protocol in Protocol::PORTED {
        // Where each list starts and stops holding a port: (port, list, +1 or -1).
        let mut edges: Vec<(u32, usize, i32)> = Vec::new();
        for (id, list) in lists.iter().enumerate() {
            for &(_, first, last) in list.iter().filter(|r| r.0 == protocol) {
                edges.push((u32::from(first), id, 1));
                edges.push((u32::from(last) + 1, id, -1));
            }
        }
        edges.sort_unstable();
        let singles = named.iter().filter(|n| n.0 == protocol);
        let mut starts = BTreeSet::from([1u32]);
        starts.extend(edges.iter().map(|e| e.0));
        starts.extend(singles.flat_map(|&(_, p)| [u32::from(p), u32::from(p) + 1]));
        let starts: Vec<u16> = (starts.into_iter())
            .filter_map(|s| u16::try_from(s).ok())
            .collect();
        // Per list, how many of its ranges hold the current segment; the lists holding it.
        let mut holding: HashMap<usize, i32> = HashMap::new();
        let mut active: BTreeSet<usize> = BTreeSet::new();
        let mut next_edge = 0;
        for (i, &first) in starts.iter().enumerate() {
            while let Some(&(_, id, step)) =
                edges.get(next_edge).filter(|e| e.0 <= u32::from(first))
            {
                let count = holding.entry(id).or_default();
                *count += step;
                if *count > 0 {
                    active.insert(id);
                } else {
                    active.remove(&id);
                }
                next_edge += 1;
            }
            let last = starts.get(i + 1).map_or(u16::MAX, |next| next - 1);
            let single = named.contains(&(protocol, first)).then_some(first);
            let range = PortRange {
                protocol,
                first,
                last,
            };
            budget.spend(active.len() as u64, || {
                format!(
                    "telling apart the ports of {} distinct lists of policy ports",
                    lists.len()
                )
            })?;
            let key = (protocol, active.iter().copied().collect(), single);
            let class = *index.entry(key).or_insert_with(|| {
                classes.push(PortClass {
                    probe: range,
                    ranges: Vec::new(),
                });
                classes.len() - 1
            });
            classes[class].ranges.push(range);
        }
    }
    Ok(classes)
}

/// Per changed pair of joint classes (source, destination), the port classes (indices) added and
/// removed.
type Changed = HashMap<(usize, usize), [Vec<usize>; 2]>;

/// Asks every pair with a dirty joint class and an end in scope, per port class.
fn changed_pairs(
    before: &Engine,
    after: &Engine,
    joints: &[Joint],
    local: &NodeLocal,
    ports: &[PortClass],
    budget: &mut Budget,
) -> Result<Changed, DiffError> {
    // The destinations to ask for each source: a pair needs a dirty end and an end in scope.
    let which = |dirty: Option<bool>, scope: Option<bool>| -> Vec<usize> {
        (0..joints.len())
            .filter(|&j| dirty.is_none_or(|d| joints[j].dirty == d))
            .filter(|&j| scope.is_none_or(|s| joints[j].in_scope == s))
            .collect()
    };
    let [all, in_scope, dirty, dirty_in_scope] = [
        which(None, None),
        which(None, Some(true)),
        which(Some(true), None),
        which(Some(true), Some(true)),
    ];
    let destinations = |s: &Joint| match (s.dirty, s.in_scope) {
        (true, true) => &all,
        (true, false) => &in_scope,
        (false, true) => &dirty,
        (false, false) => &dirty_in_scope,
    };
    let mut changed = Changed::new();
    if dirty.is_empty() {
        return Ok(changed);
    }
    // Charged before any work: per port class, every pair asked and both reachabilities.
    let pairs: u64 = (joints.iter()).map(|j| destinations(j).len() as u64).sum();
    let words = |e: &Engine| (e.class_count() as u64).pow(2) / 64;
    let per_port = pairs + words(before) + words(after);
    budget.spend(per_port.saturating_mul(ports.len() as u64), || {
        format!(
            "{} port classes × {pairs} pairs of pod classes to ask, over {} and {} classes",
            ports.len(),
            before.class_count(),
            after.class_count()
        )
    })?;
    for (index, class) in ports.iter().enumerate() {
        let (port, protocol) = (class.probe.first, class.probe.protocol);
        let (reach_b, reach_a) = (before.reach(port, protocol), after.reach(port, protocol));
        let mut ask = |s: usize, d: usize| -> Result<(), DiffError> {
            let (js, jd) = (&joints[s], &joints[d]);
            if s == d && js.pods.len() < 2 {
                return Ok(());
            }
            // A pair of pods alone in their joint classes may be node-local.
            let pair =
                (js.pods.len() == 1 && jd.pods.len() == 1).then(|| (js.pods[0].0, jd.pods[0].0));
            let always = |set: &HashSet<_>| pair.is_some_and(|p| set.contains(&p));
            let was = always(&local.before) || reach_b.allowed(js.before, jd.before);
            if was == (always(&local.after) || reach_a.allowed(js.after, jd.after)) {
                return Ok(());
            }
            if changed.len() >= MAX_CHANGED_CLASS_PAIRS && !changed.contains_key(&(s, d)) {
                return Err(DiffError::TooManyChanges);
            }
            changed.entry((s, d)).or_default()[usize::from(was)].push(index);
            Ok(())
        };
        for (s, joint) in joints.iter().enumerate() {
            for &d in destinations(joint) {
                ask(s, d)?;
            }
        }
    }
    Ok(changed)
}

/// Why `engine` decides a connection from `src` to `dst` on `port` as it does.
fn why(engine: &Engine, src: PodId, dst: PodId, port: PortRange) -> Why {
    let verdict = engine.verdict(&Flow {
        src: Endpoint::Pod(src),
        dst: Endpoint::Pod(dst),
        port: port.first,
        protocol: port.protocol,
    });
    let side = |side: &Side| match &side.decision {
        Decision::Unenforced { .. } => DirectionWhy::Unenforced,
        Decision::NotIsolated => DirectionWhy::Open,
        Decision::Allowed { by } => DirectionWhy::AllowedBy(names(by.iter().map(|r| &r.policy))),
        Decision::Denied { isolating } => {
            DirectionWhy::DeniedBy(names(isolating.iter().map(|m| &m.policy)))
        }
        Decision::Tier { rule } => {
            let name = vec![format!("{} {}", rule.policy.kind, rule.policy.name)];
            match rule.action {
                TierAction::Deny => DirectionWhy::DeniedBy(name),
                TierAction::Accept | TierAction::Pass => DirectionWhy::AllowedBy(name),
            }
        }
    };
    Why {
        egress: side(&verdict.egress),
        ingress: side(&verdict.ingress),
    }
}

/// Policies as `ns/name`, sorted, each once.
fn names<'a>(policies: impl Iterator<Item = &'a palisade_policy::PolicyRef>) -> Vec<String> {
    let set: BTreeSet<String> = policies
        .map(|p| format!("{}/{}", p.namespace, p.name))
        .collect();
    set.into_iter().collect()
}

/// What the parts of one group share: the change, the source's and destination's workloads,
/// the ports, and the reasons before and after.
type Alike = (Change, Workload, Workload, Vec<PortRange>, Why, Why);

/// One changed pair of joint classes, narrowed to one source and one destination workload.
struct Part {
    src: usize,
    dst: usize,
    from_pods: Rc<BTreeSet<String>>,
    to_pods: Rc<BTreeSet<String>>,
}

/// The changed pairs as groups: per change, workload pair, ports and reasons, one group when its
/// parts together cover every pod pair of the two workloads' parts; else one group per part, so
/// that a group never claims a pair that did not change so. A pair's ports decided for different
/// reasons (other policies) are parts apart, so that a group's reasons hold for each of its ports.
fn group(
    [before, after]: [&Engine; 2],
    joints: &[Joint],
    port_classes: &[PortClass],
    changed: Changed,
) -> Vec<Group> {
    let b = before.state();
    let mut parts: BTreeMap<Alike, Vec<Part>> = BTreeMap::new();
    // Per joint class, its pods by workload (`ns/name`), shared by the parts naming them.
    let workloads: Vec<Vec<(Workload, Rc<BTreeSet<String>>)>> = (joints.iter())
        .map(|j| {
            let mut by: BTreeMap<Workload, BTreeSet<String>> = BTreeMap::new();
            for &(pb, _) in &j.pods {
                let pod = &b.pods[pb];
                (by.entry(Workload::of(pod)).or_default()).insert(pod.key().to_string());
            }
            by.into_iter().map(|(w, pods)| (w, Rc::new(pods))).collect()
        })
        .collect();
    let mut changed: Vec<_> = changed.into_iter().collect();
    changed.sort_unstable_by_key(|(pair, _)| *pair);
    for ((s, d), [added, removed]) in changed {
        let (js, jd) = (&joints[s], &joints[d]);
        // A representative pair of distinct pods.
        let src = js.pods[0];
        let dst = *jd.pods.iter().find(|p| p.0 != src.0).unwrap_or(&jd.pods[0]);
        for (change, classes) in [(Change::Added, added), (Change::Removed, removed)] {
            // Per reasons before and after (asked on each port class's probe), its ports.
            let mut by_why: BTreeMap<(Why, Why), Vec<PortRange>> = BTreeMap::new();
            for class in classes.into_iter().map(|c| &port_classes[c]) {
                let whys = (
                    why(before, src.0, dst.0, class.probe),
                    why(after, src.1, dst.1, class.probe),
                );
                (by_why.entry(whys).or_default()).extend_from_slice(&class.ranges);
            }
            for ((before_why, after_why), ports) in by_why {
                let ports = PortRange::merge(ports);
                for (from, from_pods) in &workloads[s] {
                    for (to, to_pods) in &workloads[d] {
                        let (w, why) = ((from.clone(), to.clone()), (&before_why, &after_why));
                        let alike = (
                            change,
                            w.0,
                            w.1,
                            ports.clone(),
                            why.0.clone(),
                            why.1.clone(),
                        );
                        parts.entry(alike).or_default().push(Part {
                            src: s,
                            dst: d,
                            from_pods: from_pods.clone(),
                            to_pods: to_pods.clone(),
                        });
                    }
                }
            }
        }
    }
    let mut groups = Vec::new();
    for ((change, from, to, ports, before, after), parts) in parts {
        let sources: BTreeSet<usize> = parts.iter().map(|p| p.src).collect();
        let destinations: BTreeSet<usize> = parts.iter().map(|p| p.dst).collect();
        // Every (source, destination) part present, but a lone pod with itself.
        let lone = (sources.intersection(&destinations))
            .filter(|&&j| joints[j].pods.len() < 2)
            .count();
        let whole = parts.len() + lone == sources.len() * destinations.len();
        let merged: Vec<Part> = if whole {
            let union = |pods: &dyn Fn(&Part) -> &BTreeSet<String>| {
                Rc::new(parts.iter().flat_map(|p| pods(p).iter().cloned()).collect())
            };
            let (from_pods, to_pods) = (union(&|p| &p.from_pods), union(&|p| &p.to_pods));
            let first = parts.into_iter().next().expect("a group has parts");
            vec![Part {
                from_pods,
                to_pods,
                ..first
            }]
        } else {
            parts
        };
        for p in merged {
            if p.from_pods.len() == 1 && p.from_pods == p.to_pods {
                continue; // a lone pod with itself: no pair
            }
            let same = p.from_pods.intersection(&p.to_pods).count();
            groups.push(Group {
                change,
                from: from.clone(),
                to: to.clone(),
                pairs: p.from_pods.len() * p.to_pods.len() - same,
                from_pods: p.from_pods.iter().cloned().collect(),
                to_pods: p.to_pods.iter().cloned().collect(),
                ports: ports.clone(),
                before: before.clone(),
                after: after.clone(),
            });
        }
    }
    groups
}

#[cfg(test)]
mod tests {
    use super::*;
    use palisade_model::Loader;
    use std::sync::Arc;

    fn engine(text: &str) -> Engine {
        let mut loader = Loader::new();
        loader.load_str("test.yaml", text);
        let (state, diagnostics) = loader.finish();
        assert!(
            !diagnostics.iter().any(|d| d.is_error()),
            "{diagnostics:#?}"
        );
        Engine::new(Arc::new(state))
    }

    const PODS: &str = "apiVersion: v1\nkind: Pod\nmetadata: {name: a, namespace: shop, labels: {app: a}}\nspec: {containers: [{name: c, image: c}]}\n---\napiVersion: v1\nkind: Pod\nmetadata: {name: b, namespace: shop, labels: {app: b}}\nspec: {containers: [{name: c, image: c}]}\n";

    /// `PODS` and a policy letting `b` reach `a` on `ports` only.
    fn with_ports(ports: &str) -> String {
        format!("{PODS}---\napiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {{name: a-in, namespace: shop}}\nspec: {{podSelector: {{matchLabels: {{app: a}}}}, ingress: [{{from: [{{podSelector: {{matchLabels: {{app: b}}}}}}], ports: [{ports}]}}]}}\n")
    }

    #[test]
    fn ports_one_rule_lists_are_one_port_class() {
        // 2,000 single ports, every other one, in one rule: the ports it lists and all the others
        // are two classes, not 4,001 (the review's 24 s).
        let ports: Vec<String> = (0..2000)
            .map(|i| format!("{{port: {}}}", 20_000 + 2 * i))
            .collect();
        let wide = engine(&with_ports(&ports.join(", ")));
        let classes = port_classes([wide.state(), wide.state()], &mut Budget::new()).unwrap();
        let tcp: Vec<&PortClass> = (classes.iter())
            .filter(|c| c.probe.protocol == Protocol::Tcp)
            .collect();
        assert_eq!(tcp.len(), 2, "{}", tcp.len());
        // Two rules listing different ports keep them apart.
        let two = engine(&format!(
            "{}---\napiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {{name: b-in, namespace: shop}}\nspec: {{podSelector: {{}}, ingress: [{{ports: [{{port: 81}}]}}]}}\n",
            with_ports("{port: 80}")
        ));
        let classes = port_classes([two.state(), two.state()], &mut Budget::new()).unwrap();
        let tcp = classes.iter().filter(|c| c.probe.protocol == Protocol::Tcp);
        assert_eq!(tcp.count(), 3, "80, 81 and the rest");
        // The 2,000 ports in a rule each, all with the same peers: one list again.
        let each: Vec<String> = (ports.iter())
            .map(|p| {
                format!("{{from: [{{podSelector: {{matchLabels: {{app: b}}}}}}], ports: [{p}]}}")
            })
            .collect();
        let text = with_ports("{port: 1}").replace(
            "ingress: [{from: [{podSelector: {matchLabels: {app: b}}}], ports: [{port: 1}]}]",
            &format!("ingress: [{}]", each.join(", ")),
        );
        let rules = engine(&text);
        assert_eq!(
            rules.state().policies[0]
                .policy
                .spec()
                .ingress
                .as_ref()
                .map(Vec::len),
            Some(2000)
        );
        let classes = port_classes([rules.state(), rules.state()], &mut Budget::new()).unwrap();
        let tcp = classes.iter().filter(|c| c.probe.protocol == Protocol::Tcp);
        assert_eq!(tcp.count(), 2);
    }

    #[test]
    fn a_diff_over_its_work_bound_is_refused_before_the_work() {
        let (before, after) = (
            engine(&with_ports("{port: 80}")),
            engine(&with_ports("{port: 81}")),
        );
        let report = diff(&before, &after, &Scope::All).unwrap();
        assert_eq!(report.groups.len(), 2, "{:#?}", report.groups);
        let refused = diff_within(&before, &after, &Scope::All, Budget { left: 10 });
        let Err(DiffError::TooMuchWork(what)) = refused else {
            panic!("{refused:?}");
        };
        assert!(what.contains("port classes"), "{what}");
        let said = DiffError::TooMuchWork(what).to_string();
        assert!(
            said.contains("-n NS") && said.contains(&MAX_WORK.to_string()),
            "{said}"
        );
    }
}

//! Endpoint equivalence classes: pods with the same namespace, labels, named ports, host-network flag
//! and ipBlock membership are indistinguishable to every policy, so selection, matrices and
//! compilation work on classes and expand to pods only for output.

use crate::bitset::BitSet;
use crate::selector::{Interner, LabelSet};
use foldhash::{HashMap, HashMapExt};
use ipnet::IpNet;
use palisade_model::{
    ClusterState, Id, IdVec, IpBlock, NamespaceId, NamespaceInfo, PodId, PodInfo, Protocol,
};
use std::net::IpAddr;
use std::sync::Arc;

/// A named container port of a class's pods.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ClassPort {
    /// The port's name.
    pub name: String,
    /// Its protocol.
    pub protocol: Protocol,
    /// Its number.
    pub port: u16,
}

/// A class of an engine (its position among the engine's classes).
pub type ClassId = Id<Class>;

/// What makes two pods alike: every policy treats pods with the same key the same way.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ClassKey {
    /// Their namespace.
    pub namespace: NamespaceId,
    /// Interned pod labels.
    pub labels: LabelSet,
    /// Named ports, sorted.
    pub named_ports: Vec<ClassPort>,
    /// `hostNetwork` pods are never selected, and are peers only through ipBlocks.
    pub host_network: bool,
    /// Which of the engine's distinct ipBlocks contain the pods' IP.
    pub blocks: BitSet<IpBlock>,
}

/// A set of pods that every policy treats alike.
#[derive(Clone, Debug)]
pub struct Class {
    /// What its pods have in common.
    pub key: ClassKey,
    /// Member pods, in state order.
    pub pods: Vec<PodId>,
}

impl Class {
    /// The port `name` resolves to for `protocol` on this class's pods.
    pub fn named_port(&self, name: &str, protocol: Protocol) -> Option<u16> {
        (self.key.named_ports.iter())
            .find(|p| p.name == name && p.protocol == protocol)
            .map(|p| p.port)
    }
}

/// The partition of all pods into classes.
#[derive(Clone, Debug, Default)]
pub struct Classes {
    /// The classes, in order of their first pod.
    pub list: IdVec<Class, Class>,
    /// Each pod's class.
    pub of_pod: IdVec<PodInfo, ClassId>,
    /// Each namespace's classes.
    pub by_namespace: IdVec<NamespaceInfo, Vec<ClassId>>,
}

/// The key of one pod, given its interned labels.
struct Keys<'a> {
    state: &'a ClusterState,
    blocks: &'a IdVec<IpBlock, IpBlock>,
    /// The blocks that overlap the pods' address range (only they can hold a pod); found when
    /// first needed.
    candidates: std::cell::OnceCell<Vec<(Id<IpBlock>, &'a IpBlock)>>,
}

impl<'a> Keys<'a> {
    fn new(state: &'a ClusterState, blocks: &'a IdVec<IpBlock, IpBlock>) -> Keys<'a> {
        Keys {
            state,
            blocks,
            candidates: std::cell::OnceCell::new(),
        }
    }

    fn candidates(&self) -> &[(Id<IpBlock>, &'a IpBlock)] {
        self.candidates.get_or_init(|| {
            let span = address_span(self.state);
            (self.blocks.iter_enumerated())
                .filter(|(_, b)| {
                    span.iter()
                        .any(|&(first, last)| overlaps(&b.cidr, first, last))
                })
                .collect()
        })
    }

    /// The blocks from `first` on that hold `pod`'s address.
    fn holding(&self, pod: &PodInfo, first: usize) -> BitSet<IpBlock> {
        let mut blocks = BitSet::new(self.blocks.len());
        if let Some(ip) = pod.ip {
            for &(bi, b) in self.candidates() {
                if bi.index() >= first && b.contains(ip) {
                    blocks.insert(bi);
                }
            }
        }
        blocks
    }

    fn key(&self, pod: &PodInfo, labels: LabelSet) -> ClassKey {
        let namespace = (self.state.namespace_id(&pod.namespace))
            .expect("every pod's namespace exists in the state");
        let mut named_ports: Vec<ClassPort> = (pod.ports.iter())
            .filter_map(|p| {
                let name = p.name.clone()?;
                let (protocol, port) = (p.protocol, p.port);
                Some(ClassPort {
                    name,
                    protocol,
                    port,
                })
            })
            .collect();
        named_ports.sort();
        ClassKey {
            namespace,
            labels,
            named_ports,
            host_network: pod.host_network,
            blocks: self.holding(pod, 0),
        }
    }
}

/// True when `a` and `b` (pods of the same name, in states with the same namespaces and ipBlocks)
/// fall in the same class.
fn alike(a: &PodInfo, b: &PodInfo) -> bool {
    a.labels == b.labels && a.ports == b.ports && a.host_network == b.host_network && a.ip == b.ip
}

/// A pod's key: that of a class of the previous partition, that key with the new ipBlocks that
/// hold the pod, or a key of its own.
enum PodKey {
    Previous(ClassId),
    Split(ClassId, ClassKey),
    Own(ClassKey),
}

/// The partition a new one is made from: its classes, the one a key here is (if any), and a
/// class's key here.
struct Earlier<'a> {
    classes: &'a Classes,
    find: &'a dyn Fn(&ClassKey) -> Option<ClassId>,
    key: &'a dyn Fn(ClassId) -> ClassKey,
}

/// `blocks` (ipBlock ids of an earlier engine) with the ids `renumbered` gives them here, over
/// `len` ipBlocks; the ones gone are dropped.
fn renumber(
    blocks: &BitSet<IpBlock>,
    renumbered: &IdVec<IpBlock, Option<Id<IpBlock>>>,
    len: usize,
) -> BitSet<IpBlock> {
    let mut out = BitSet::new(len);
    for id in blocks.iter() {
        if let Some(now) = renumbered[id] {
            out.insert(now);
        }
    }
    out
}

impl Classes {
    /// Partitions the pods of `state`, whose interned labels are `pod_labels` (in pod order).
    pub fn build(
        state: &ClusterState,
        pod_labels: Vec<LabelSet>,
        blocks: &IdVec<IpBlock, IpBlock>,
    ) -> Classes {
        let keys = Keys::new(state, blocks);
        let pod_keys = state
            .pods
            .iter()
            .zip(pod_labels)
            .map(|(pod, labels)| PodKey::Own(keys.key(pod, labels)));
        Classes::assign(state, None, pod_keys).0
    }

    /// Partitions the pods of `state` like [`Classes::build`], with the same result, taking the
    /// class of every pod that is alike in `old` (whose classes are `previous`) from there: only new
    /// and changed pods have their labels interned and their ipBlocks looked up — and every pod
    /// for the ipBlocks new here. `renumbered` gives each ipBlock `previous` was built with its id
    /// here (`None`: no longer used); new ones come after: a new ipBlock splits the classes whose
    /// pods it holds, a gone one merges the classes it split. Both states must have the same
    /// namespaces. With the partition, each class's counterpart in `previous`: a class it was made
    /// from (the same key but for ipBlocks), each at most once.
    pub fn rebuild(
        previous: &Classes,
        old: &ClusterState,
        state: &ClusterState,
        interner: &mut Interner,
        blocks: &IdVec<IpBlock, IpBlock>,
        renumbered: &IdVec<IpBlock, Option<Id<IpBlock>>>,
    ) -> (Classes, IdVec<Class, Option<ClassId>>) {
        let keys = Keys::new(state, blocks);
        let same = renumbered
            .iter_enumerated()
            .all(|(id, now)| *now == Some(id));
        // The first id of the ipBlocks new here.
        let first_new = renumbered.iter().flatten().count();
        let rekey = |class: ClassId| {
            let mut key = previous.list[class].key.clone();
            key.blocks = renumber(&key.blocks, renumbered, blocks.len());
            key
        };
        // A pod alike in `old` keeps its class's key, renumbered, with the new ipBlocks that hold
        // it.
        let reuse = |class: ClassId, pod: &PodInfo| {
            let new = (blocks.len() > first_new)
                .then(|| keys.holding(pod, first_new))
                .filter(|new| !new.is_empty());
            if same && new.is_none() {
                return PodKey::Previous(class);
            }
            let mut key = rekey(class);
            if let Some(new) = new {
                key.blocks.union_with(&new);
            }
            PodKey::Split(class, key)
        };
        let earlier = Earlier {
            classes: previous,
            // With ipBlocks gone, the keys of the previous classes are not those here.
            find: &|key: &ClassKey| same.then(|| previous.find(key)).flatten(),
            key: &rekey,
        };
        // Both pod lists are sorted by namespace, then name: one walk pairs them.
        let (mut j, old_pods) = (0, old.pods.as_slice());
        let pod_keys = state.pods.iter().map(|pod| {
            // The loader shares unchanged pods: the same object is the same pod.
            if old_pods.get(j).is_some_and(|o| Arc::ptr_eq(o, pod)) {
                j += 1;
                return reuse(previous.of_pod[Id::new(j - 1)], pod);
            }
            let name = (pod.namespace.as_str(), pod.name.as_str());
            while old_pods
                .get(j)
                .is_some_and(|o| (o.namespace.as_str(), o.name.as_str()) < name)
            {
                j += 1;
            }
            match old_pods.get(j) {
                Some(o) if (o.namespace.as_str(), o.name.as_str()) == name && alike(o, pod) => {
                    reuse(previous.of_pod[Id::new(j)], pod)
                }
                _ => PodKey::Own(keys.key(pod, interner.labels(&pod.labels))),
            }
        });
        Classes::assign(state, Some(earlier), pod_keys)
    }

    /// Classes in order of their first pod, from every pod's key (in pod order), and each one's
    /// counterpart in `previous`; keys of `previous` classes are looked up once per class, not once
    /// per pod.
    fn assign(
        state: &ClusterState,
        previous: Option<Earlier>,
        pod_keys: impl Iterator<Item = PodKey>,
    ) -> (Classes, IdVec<Class, Option<ClassId>>) {
        let mut index: HashMap<ClassKey, ClassId> = HashMap::new();
        let mut classes = Classes {
            list: IdVec::new(),
            of_pod: IdVec::with_capacity(state.pods.len()),
            by_namespace: vec![Vec::new(); state.namespaces.len()].into(),
        };
        // Keys of previous classes are not hashed: a pod's own key that equals one is found among
        // the previous classes of its namespace (own keys are few when pods are reused).
        let mut renumbered: IdVec<Class, Option<ClassId>> =
            vec![None; previous.as_ref().map_or(0, |p| p.classes.list.len())].into();
        let mut counterparts = IdVec::new();
        // A previous class is the counterpart of one class at most: the first made from it (a
        // class split by new ipBlocks may keep it: a class's rules do not depend on its own
        // ipBlocks, and its addresses are compared where they matter).
        let mut claimed: IdVec<Class, bool> = vec![false; renumbered.len()].into();
        let mut claim = |old: ClassId| (!std::mem::replace(&mut claimed[old], true)).then_some(old);
        for (pi, pod_key) in pod_keys.enumerate() {
            let pod_key = match (pod_key, &previous) {
                (PodKey::Own(key), Some(previous)) => match (previous.find)(&key) {
                    Some(old) => PodKey::Previous(old),
                    None => PodKey::Own(key),
                },
                (pod_key, _) => pod_key,
            };
            let ci = match pod_key {
                PodKey::Own(key) | PodKey::Split(_, key) if index.contains_key(&key) => index[&key],
                PodKey::Own(key) => {
                    let ci = classes.add(key.clone());
                    counterparts.push(None);
                    index.insert(key, ci);
                    ci
                }
                PodKey::Split(old, key) => {
                    let ci = classes.add(key.clone());
                    counterparts.push(claim(old));
                    index.insert(key, ci);
                    ci
                }
                PodKey::Previous(old) => *renumbered[old].get_or_insert_with(|| {
                    counterparts.push(claim(old));
                    let previous = previous.as_ref().expect("a previous partition");
                    classes.add((previous.key)(old))
                }),
            };
            classes.list[ci].pods.push(Id::new(pi));
            classes.of_pod.push(ci);
        }
        (classes, counterparts)
    }

    /// The class whose key is `key`, which may know more ipBlocks (the class's then hold none
    /// of them), if any.
    fn find(&self, key: &ClassKey) -> Option<ClassId> {
        (self.by_namespace[key.namespace].iter().copied()).find(|&ci| {
            let had = &self.list[ci].key;
            (&had.labels, &had.named_ports, had.host_network)
                == (&key.labels, &key.named_ports, key.host_network)
                && key.blocks.extends(&had.blocks)
        })
    }

    /// Adds a class with `key` and no pods yet.
    fn add(&mut self, key: ClassKey) -> ClassId {
        let namespace = key.namespace;
        let ci = self.list.push(Class {
            key,
            pods: Vec::new(),
        });
        self.by_namespace[namespace].push(ci);
        ci
    }
}

/// The lowest and highest pod address of each family (IPv4, IPv6), where there is one.
fn address_span(state: &ClusterState) -> Vec<(IpAddr, IpAddr)> {
    let mut spans: [Option<(IpAddr, IpAddr)>; 2] = [None, None];
    for ip in state.pods.iter().filter_map(|p| p.ip) {
        let span = &mut spans[usize::from(ip.is_ipv6())];
        *span = Some(span.map_or((ip, ip), |(lo, hi)| (lo.min(ip), hi.max(ip))));
    }
    spans.into_iter().flatten().collect()
}

/// True if `net` holds an address of `first..=last` (same family).
fn overlaps(net: &IpNet, first: IpAddr, last: IpAddr) -> bool {
    first.is_ipv6() == net.network().is_ipv6() && net.network() <= last && first <= net.broadcast()
}

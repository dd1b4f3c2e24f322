//! Loads made of what changed since the last load. Both sources say which objects changed — the
//! store by its journal of events, a folder by comparing the objects in force after its walk
//! with the last load's (unchanged documents keep their `Arc`s) — and each changed object's pods,
//! Service, policy (cluster-wide ones too), node or namespace is put in place in the last load's [`ClusterState`]: a pod event
//! costs that pod, not the cluster. What cannot be decided for one object alone (two pods with one
//! address, a namespace coming or going, the pod limit, which workloads stand for pods, addresses
//! allocated in another order) makes the loader build the state afresh, as it would without a last
//! load; the result is the same either way (`tests/incremental.rs`).

use super::{logging_config, namespace_info, Load, Loader, Maker};
use crate::cache::{CachedFile, ObjectPods, Source, Version};
use crate::info::{node_info, service_info};
use crate::key::{Kind, ObjectKey, PodKey};
use crate::objects::{Accepted, Decoded, Loaded, Objects, Typed};
use crate::rejection::{HeldReason, RejectReason};
use crate::state::{ClusterState, PodInfo, PolicyInfo, Rebuild, TierPolicyInfo};
use crate::store::ObjectStore;
use crate::tier::TIER_KINDS;
use foldhash::HashMap;
use ipnet::IpNet;
use std::collections::BTreeSet;
use std::hash::{BuildHasher, Hash, Hasher};
use std::net::IpAddr;
use std::sync::Arc;

/// What a load leaves for the next one to start from.
pub(crate) struct LastLoad {
    /// The state it made.
    pub state: ClusterState,
    /// How it gave pods addresses: the next load carries them over only if it gives them alike.
    pub allocation: Allocation,
    /// A load of a store: which, at which revision, and what its objects said.
    pub store: Option<StoreMark>,
}

/// How a load gives addresses to pods without their own: allocated pods keep theirs across a
/// change only when everything that decides them is the same.
pub(crate) struct Allocation {
    allocate: bool,
    pod_cidr: IpNet,
    pinned: HashMap<PodKey, IpAddr>,
    /// The order of the objects that make pods (a digest): allocation goes in that order.
    order: u64,
}

/// What a load of a store said, for the next load of it to say again.
pub(crate) struct StoreMark {
    /// The store and its revision, as loaded.
    pub at: (u64, u64),
    /// Objects whose decoding said something (a diagnostic, a rejection).
    pub noisy: BTreeSet<ObjectKey>,
    /// Objects held at their last good version (their update was rejected).
    pub held: BTreeSet<ObjectKey>,
}

/// One object whose version in force changed since the last load: what both sources give the
/// state.
struct ObjectChange {
    key: ObjectKey,
    before: Option<Arc<Accepted>>,
    after: Option<Arc<Accepted>>,
}

impl ObjectChange {
    /// Whether the version in force changed (a rejected update holds the same one).
    fn moves(&self) -> bool {
        match (&self.before, &self.after) {
            (Some(before), Some(after)) => !Arc::ptr_eq(before, after),
            (before, after) => before.is_some() || after.is_some(),
        }
    }
}

/// A store object changed since the last load.
struct StoreChange {
    object: ObjectChange,
    /// Its document now.
    now: Now,
    /// `after` is `before`, held: the new version was rejected.
    held: bool,
    /// Decoding it said something.
    noisy: bool,
}

enum Now {
    /// Deleted.
    Gone,
    /// The version the cache holds.
    Cached,
    /// A new version, decoded.
    Fresh(CachedFile),
}

/// The pods an object made, replaced: what the cache's pods per object become.
struct Made {
    before: Option<usize>,
    after: Option<ObjectPods>,
}

/// The one object an API object's document decodes to: none when it is anything else, for the
/// full load to report.
pub(super) fn single(file: &CachedFile) -> Option<&Decoded> {
    let mut decoded = file.decoded();
    match (decoded.next(), decoded.next()) {
        (Some(d), None) if file.diagnostics.is_empty() => Some(d),
        _ => None,
    }
}

/// A digest of the order in which `objects` make pods.
pub(super) fn maker_order(objects: &Objects) -> u64 {
    let mut hasher = foldhash::fast::FixedState::with_seed(0).build_hasher();
    (objects.pods.iter().map(|p| p.key())).for_each(|key| key.hash(&mut hasher));
    (objects.workloads.iter().map(|w| w.key())).for_each(|key| key.hash(&mut hasher));
    hasher.finish()
}

impl Allocation {
    /// Whether `loader` gives the pods of `objects` addresses as this allocation did (no copy of
    /// its pinned addresses made to tell).
    fn alike(&self, loader: &Loader, objects: &Objects) -> bool {
        self.allocate == loader.allocate
            && self.pod_cidr == loader.pod_cidr
            && self.pinned == loader.pinned
            && (!loader.allocate || self.order == maker_order(objects))
    }
}

impl Loader {
    /// How this load gives pods addresses (the maker order of `objects`, only while allocating).
    pub(super) fn allocation(&self, objects: &Objects) -> Allocation {
        Allocation {
            allocate: self.allocate,
            pod_cidr: self.pod_cidr,
            pinned: self.pinned.clone(),
            order: if self.allocate {
                maker_order(objects)
            } else {
                0
            },
        }
    }

    /// The load of `store` as the changes since the last load of it, applied to what that load
    /// made; `None` when it has to be a full load (another store, changes no longer known, a kind
    /// unknown, or a change the state cannot take in place).
    pub(super) fn load_changes(&mut self, store: &ObjectStore) -> Option<Load> {
        let unknown = Kind::ALL.into_iter().any(|kind| store.unknown(kind));
        if !self.incremental || !self.nothing_loaded() || self.unavailable || unknown {
            return None;
        }
        let last = self.documents.last_load.as_ref()?;
        if !last.allocation.alike(self, &self.documents.objects) {
            return None;
        }
        let keys: BTreeSet<&ObjectKey> = store.changed_since(last.store.as_ref()?.at)?.collect();
        // Past a quarter of the cluster, a full load costs less.
        if keys.len() > store.len() / 4 + 64 {
            return None;
        }
        let changes = (keys.into_iter())
            .map(|key| self.store_change(store, key))
            .collect::<Option<Vec<StoreChange>>>()?;
        let mut state = last.state.clone();
        let objects = changes.iter().map(|c| &c.object);
        let Ok(made) = self.patch(&mut state, objects, &self.documents.objects) else {
            // The full load that follows would find the same changes cannot be put in place.
            self.documents.last_load = None;
            return None;
        };
        let mut last = self.documents.last_load.take()?;
        let mut mark = last.store.take()?;
        mark.at = store.revision();
        Some(self.commit(state, changes, made, last, mark))
    }

    /// What became of `key`; `None` when its document is not one object of that key.
    fn store_change(&self, store: &ObjectStore, key: &ObjectKey) -> Option<StoreChange> {
        let cache = &self.documents;
        let now = match (store.get(key), cache.api.get(key)) {
            (None, _) => Now::Gone,
            (Some(stored), Some(file))
                if file.version == Version::Resource(stored.version.clone()) =>
            {
                Now::Cached
            }
            (Some(stored), _) => Now::Fresh(CachedFile::object(
                &store.url(key),
                stored.version.clone(),
                stored.value.clone(),
                self.limits.decode_limits(),
            )),
        };
        let file = match &now {
            Now::Gone => None,
            Now::Cached => cache.api.get(key),
            Now::Fresh(file) => Some(file),
        };
        let decoded = match file {
            Some(file) => Some(single(file)?),
            None => None,
        };
        let before = cache.objects.get(key).cloned();
        let (after, held) = match decoded.map(|d| (d.accepted(), d.rejected())) {
            None | Some((None, None)) => (None, false),
            Some((Some(accepted), _)) if accepted.key == *key => (Some(accepted.clone()), false),
            Some((Some(_), _)) => return None,
            // A rejected update keeps the last good version (a NetworkLogging's is dropped: the
            // agent keeps its switches and says why it is invalid).
            Some((None, Some(reason))) => {
                let holds = matches!(
                    reason,
                    RejectReason::Decode | RejectReason::Invalid | RejectReason::Syntax
                ) && key.kind() != Kind::NetworkLogging;
                match &before {
                    Some(before) if holds => (Some(before.clone()), true),
                    _ => (None, false),
                }
            }
        };
        Some(StoreChange {
            noisy: decoded.is_some_and(|d| !d.is_quiet()),
            object: ObjectChange {
                key: key.clone(),
                before,
                after,
            },
            now,
            held,
        })
    }

    /// The state of this load (its objects in force decided: `self.objects`), made from the last
    /// load's by the objects that changed since, and how many changed; `None` when it has to be
    /// built afresh. The pods made per object go into the next cache, as [`Loader::state`] does.
    pub(super) fn state_from_changes(&mut self) -> Option<(ClusterState, usize)> {
        let last = self.documents.last_load.as_ref()?;
        if !self.incremental || !last.allocation.alike(self, &self.objects) {
            return None;
        }
        let mut changes = Vec::new();
        for accepted in self.objects.all() {
            match self.previous.get(&accepted.key) {
                Some(before) if Arc::ptr_eq(before, accepted) => {}
                before => changes.push(ObjectChange {
                    key: accepted.key.clone(),
                    before: before.cloned(),
                    after: Some(accepted.clone()),
                }),
            }
        }
        for before in self.previous.all() {
            if !self.objects.contains(&before.key) {
                changes.push(ObjectChange {
                    key: before.key.clone(),
                    before: Some(before.clone()),
                    after: None,
                });
            }
        }
        let mut state = last.state.clone();
        let made = self
            .patch(&mut state, changes.iter(), &self.previous)
            .ok()?;
        let mut pods = std::mem::take(&mut self.documents.pods);
        update_pods(&mut pods, made);
        self.visited.pods = pods;
        let objects = std::mem::take(&mut self.objects);
        let invalid = objects.invalid_network_logging.clone();
        state.network_logging = logging_config(&objects, invalid);
        self.visited.objects = objects;
        Some((state, changes.len()))
    }

    /// Puts each changed object's pods, Service, policy, node or namespace in place in `state`
    /// (`previous`: the objects in force before); the pods made per object.
    fn patch<'a>(
        &self,
        state: &mut ClusterState,
        changes: impl Iterator<Item = &'a ObjectChange>,
        previous: &Objects,
    ) -> Result<Vec<Made>, Rebuild> {
        let changes: Vec<&ObjectChange> = changes.collect();
        // Which workloads stand for pods depends on every Pod object and workload: only one of
        // the two kinds may change, and only while the other is absent.
        let adds = |kind: fn(&Typed) -> bool| {
            (changes.iter()).any(|c| c.after.as_ref().is_some_and(|a| kind(&a.object)))
        };
        let is_pod = |t: &Typed| matches!(t, Typed::Pod(_));
        let is_workload = |t: &Typed| matches!(t, Typed::Workload(_));
        let pods_exist = !previous.pods.is_empty() || adds(is_pod);
        let workloads_exist = !previous.workloads.is_empty() || adds(is_workload);
        let mut made = Vec::new();
        for change in changes.into_iter().filter(|c| c.moves()) {
            let ObjectChange { key, before, after } = change;
            let (namespace, name) = (key.namespace().unwrap_or_default(), key.name());
            let typed = after.as_ref().map(|a| (&a.object, a));
            match (key.kind(), typed) {
                (Kind::Pod, _) if workloads_exist => return Err(Rebuild),
                (Kind::Pod, _) => made.push(self.place_pods(state, before, after.as_ref())?),
                (kind, _) if kind.is_workload() => {
                    let (Some(b), Some(a)) = (before, after) else {
                        return Err(Rebuild);
                    };
                    let owners = |x: &Accepted| match &x.object {
                        Typed::Workload(w) => w.metadata.owner_references.clone(),
                        _ => None,
                    };
                    if pods_exist || owners(b) != owners(a) {
                        return Err(Rebuild);
                    }
                    made.push(self.place_pods(state, before, after.as_ref())?);
                }
                (Kind::Service, None) => state.set_service(namespace, name, None)?,
                (Kind::Service, Some((Typed::Service(service), accepted))) => {
                    let loaded = Loaded {
                        object: service.clone(),
                        accepted: accepted.clone(),
                    };
                    state.set_service(namespace, name, Some(service_info(&loaded)))?;
                }
                (Kind::NetworkPolicy, None) => state.set_policy(namespace, name, None)?,
                (Kind::NetworkPolicy, Some((Typed::Policy(policy), accepted))) => {
                    let info = PolicyInfo::new(policy.clone(), accepted.origin.clone());
                    state.set_policy(namespace, name, Some(info))?;
                }
                (kind, None) if TIER_KINDS.contains(&kind) => {
                    state.set_tier_policy(kind, name, None)
                }
                (kind, Some((Typed::TierPolicy(policy), accepted))) => {
                    let info = TierPolicyInfo::new(policy.clone(), accepted.origin.clone());
                    state.set_tier_policy(kind, name, Some(info));
                }
                (Kind::Node, None) => state.set_node(name, None),
                (Kind::Node, Some((Typed::Node(node), accepted))) => {
                    let loaded = Loaded {
                        object: node.clone(),
                        accepted: accepted.clone(),
                    };
                    state.set_node(name, Some(node_info(&loaded)));
                }
                (Kind::Namespace, Some((Typed::Namespace(ns), accepted))) if before.is_some() => {
                    state.set_namespace(namespace_info(ns, &accepted.origin))?;
                }
                // Decided from every NetworkLogging object once the changes are in.
                (Kind::NetworkLogging, _) => {}
                _ => return Err(Rebuild),
            }
        }
        if state.pods.len() > self.limits.max_pods {
            return Err(Rebuild);
        }
        Ok(made)
    }

    /// Replaces the pods `before` (a Pod or a workload, as in force before) made by those `after`
    /// makes. The same pods (by name, in order, with the same addresses of their own) keep the
    /// addresses they were given; other pods only while no address is allocated at all (a given
    /// address taken or freed moves allocated ones). The pods replaced must be those in force: a
    /// pod whose name an earlier one took was left out, which only a full build decides again.
    fn place_pods(
        &self,
        state: &mut ClusterState,
        before: &Option<Arc<Accepted>>,
        after: Option<&Arc<Accepted>>,
    ) -> Result<Made, Rebuild> {
        let source = |accepted: &Arc<Accepted>| match &accepted.object {
            Typed::Pod(pod) => Some(Source::Pod(pod.clone())),
            Typed::Workload(workload) => Some(Source::Workload(workload.clone())),
            _ => None,
        };
        let was = match before {
            Some(before) => {
                let address = source(before).ok_or(Rebuild)?.address();
                let made = self.documents.pods.get(&address).ok_or(Rebuild)?;
                Some((address, made.pods.as_slice()))
            }
            None => None,
        };
        let old: &[Arc<PodInfo>] = was.map_or(&[], |(_, pods)| pods);
        let in_force = |pod: &Arc<PodInfo>| {
            (state.pod_id(&pod.namespace, &pod.name))
                .is_some_and(|id| Arc::ptr_eq(&state.pods[id], pod))
        };
        if !old.iter().all(in_force) {
            return Err(Rebuild);
        }
        let new: Vec<PodInfo> = match after.map(|a| (&a.object, a)) {
            None => Vec::new(),
            Some((Typed::Pod(pod), accepted)) => Maker::Pod(&Loaded {
                object: pod.clone(),
                accepted: accepted.clone(),
            })
            .make(),
            Some((Typed::Workload(workload), accepted)) => Maker::Workload(&Loaded {
                object: workload.clone(),
                accepted: accepted.clone(),
            })
            .make(),
            Some(_) => return Err(Rebuild),
        };
        let given = |p: &PodInfo| p.ip.filter(|_| !p.ip_allocated);
        let pending = |p: &PodInfo| given(p).is_none() && !p.host_network && !p.finished;
        let alike = old.len() == new.len()
            && (old.iter().zip(&new)).all(|(o, n)| {
                (&o.namespace, &o.name) == (&n.namespace, &n.name)
                    && pending(o) == pending(n)
                    && given(o) == given(n)
            });
        let mut pods = Vec::with_capacity(new.len());
        if alike {
            for (old, mut new) in old.iter().zip(new) {
                if pending(&new) {
                    (new.ip, new.ip_allocated) = (old.ip, old.ip_allocated);
                }
                let pod = if **old == new {
                    old.clone()
                } else {
                    Arc::new(new)
                };
                state.set_pod(&pod.namespace, &pod.name, Some(pod.clone()))?;
                pods.push(pod);
            }
        } else {
            // Others, or other addresses: where addresses are allocated, every pod's may move.
            if self.allocate {
                return Err(Rebuild);
            }
            for pod in old {
                state.set_pod(&pod.namespace, &pod.name, None)?;
            }
            for pod in new {
                // A name another object's pod has: the first one read wins, decided afresh.
                if state.pod_id(&pod.namespace, &pod.name).is_some() {
                    return Err(Rebuild);
                }
                let pod = Arc::new(pod);
                state.set_pod(&pod.namespace, &pod.name, Some(pod.clone()))?;
                pods.push(pod);
            }
        }
        Ok(Made {
            before: was.map(|(address, _)| address),
            after: after
                .and_then(source)
                .map(|object| ObjectPods { object, pods }),
        })
    }

    /// Writes the store's changes into the cache and says, as a full load would, what every
    /// object's decoding said and what is held.
    fn commit(
        &mut self,
        mut state: ClusterState,
        changes: Vec<StoreChange>,
        made: Vec<Made>,
        mut last: LastLoad,
        mut mark: StoreMark,
    ) -> Load {
        let mut cache = std::mem::take(&mut self.documents);
        let examined = changes.len();
        let patched = changes.iter().filter(|c| c.object.moves()).count();
        update_pods(&mut cache.pods, made);
        // A document read anew or gone; not an object added and deleted between two loads.
        let mut changed = false;
        for change in changes {
            let moves = change.object.moves();
            let StoreChange {
                object: ObjectChange { key, after, .. },
                now,
                held,
                noisy,
            } = change;
            changed |= match now {
                Now::Gone => cache.api.remove(&key).is_some(),
                Now::Cached => false,
                Now::Fresh(file) => {
                    cache.api.insert(key.clone(), file);
                    true
                }
            };
            if moves {
                cache.objects.remove(&key);
                if let Some(after) = &after {
                    cache.objects.add_object(after, &mut self.diagnostics);
                }
            }
            set(&mut mark.noisy, &key, noisy);
            set(&mut mark.held, &key, held);
        }
        // Said again, as every load says them: what decoding said, what is held.
        for key in &mark.noisy {
            if let Some(d) = cache.api.get(key).and_then(single) {
                self.objects.add(d, &mut self.diagnostics);
            }
        }
        let held = (mark.held.iter())
            .filter_map(|key| cache.objects.get(key).cloned())
            .map(|accepted| (accepted, HeldReason::Rejected))
            .collect();
        self.hold(held);
        let invalid = self.objects.invalid_network_logging.clone();
        state.network_logging = logging_config(&cache.objects, invalid);
        last.state = state.clone();
        last.store = Some(mark);
        cache.last_load = Some(last);
        let mut rejections = std::mem::take(&mut self.objects.rejections);
        rejections.append(&mut self.rejections);
        Load {
            state,
            diagnostics: std::mem::take(&mut self.diagnostics),
            rejections,
            held: std::mem::take(&mut self.held),
            revisit: None,
            changed,
            examined,
            patched: Some(patched),
            cache,
        }
    }
}

/// The pods per object after `made`.
fn update_pods(pods: &mut HashMap<usize, ObjectPods>, made: Vec<Made>) {
    for Made { before, after } in made {
        if let Some(before) = before {
            pods.remove(&before);
        }
        if let Some(after) = after {
            pods.insert(after.object.address(), after);
        }
    }
}

/// Puts `key` in `set` or takes it out.
fn set(set: &mut BTreeSet<ObjectKey>, key: &ObjectKey, member: bool) {
    if member {
        set.insert(key.clone());
    } else {
        set.remove(key);
    }
}
